"""Lineage edges through the REST API, and a scan of everything OpenMetadata received for secrets and PII."""

from __future__ import annotations

import pytest
from pyiceberg import types as it
from pyiceberg.schema import Schema

from dativo_provider.exceptions import ConfigError
from dativo_provider.lineage.openmetadata_client import OpenMetadataError
from dativo_provider.lineage.openmetadata_lineage import LineageEdge, add_lineage
from dativo_provider.lineage.openmetadata_mapping import GovernanceOptions, table_spec
from dativo_provider.lineage.openmetadata_quality import post_results
from dativo_provider.lineage.openmetadata_sync import ServiceTarget, iceberg_specs, sync_tables
from dativo_provider.quality.runner import IcebergTarget, run_contract
from tests.doubles.openmetadata import OpenMetadataDouble
from tests.lineage.conftest import JWT
from tests.lineage.people import PII_VALUES, SUBJECT_IDS, people_contract, people_table

TARGET = ServiceTarget(service="lake", database="prod")


def _two_tables(client) -> None:
    schema = Schema(it.NestedField(1, "id", it.LongType()), it.NestedField(2, "email", it.StringType()))
    sync_tables(
        client,
        [
            table_spec(schema, schema_fqn=TARGET.schema_fqn("raw"), name="people"),
            table_spec(schema, schema_fqn=TARGET.schema_fqn("mart"), name="contacts"),
        ],
        TARGET,
    )


def test_an_edge_with_column_lineage_is_stored_and_sending_it_again_changes_nothing(
    om: OpenMetadataDouble, client
) -> None:
    _two_tables(client)
    edge = LineageEdge(
        "lake.prod.raw.people",
        "lake.prod.mart.contacts",
        columns={"id": ("id",), "email": ("email",)},
        description="dedup by id",
    )
    assert add_lineage(client, [edge, edge]) == 2
    source, target = om.table("lake.prod.raw.people"), om.table("lake.prod.mart.contacts")
    stored = client.get(f"/lineage/getLineageEdge/{source['id']}/{target['id']}")
    assert stored["lineageDetails"]["columnsLineage"] == [
        {"fromColumns": ["lake.prod.raw.people.email"], "toColumn": "lake.prod.mart.contacts.email"},
        {"fromColumns": ["lake.prod.raw.people.id"], "toColumn": "lake.prod.mart.contacts.id"},
    ]
    assert len(om.edges) == 1


def test_an_edge_to_an_unknown_table_or_column_fails_clearly(om: OpenMetadataDouble, client) -> None:
    _two_tables(client)
    with pytest.raises(ConfigError, match="no table 'lake.prod.mart.missing'; sync it first"):
        add_lineage(client, [LineageEdge("lake.prod.raw.people", "lake.prod.mart.missing")])
    with pytest.raises(OpenMetadataError, match="Invalid column name lake.prod.mart.contacts.phone"):
        add_lineage(
            client,
            [LineageEdge("lake.prod.raw.people", "lake.prod.mart.contacts", columns={"phone": ("email",)})],
        )


def test_no_payload_holds_the_token_or_personal_data(om: OpenMetadataDouble, client, tmp_path) -> None:
    """Everything: hierarchy, tables, test cases, results of a failing run, lineage, and error paths."""
    catalog, identifier = people_table(tmp_path)
    contract = people_contract(tmp_path)
    options = GovernanceOptions(tier="Tier.Tier1", glossary="Business")
    sync_tables(client, iceberg_specs(catalog.load(), [identifier], TARGET, [contract], options), TARGET)
    report = run_contract(contract, IcebergTarget(catalog, identifier))
    assert any(check.failing_keys for check in report.checks)  # the report itself holds failing rows' keys
    post_results(client, contract, report.to_dict(), "lake.prod.crm.people", timestamp_ms=1_704_067_200_000)
    _two_tables(client)
    add_lineage(
        client,
        [LineageEdge("lake.prod.crm.people", "lake.prod.mart.contacts", columns={"email": ("email",)})],
    )
    om.fail(500, {"code": 500, "message": "boom"}, times=1)
    client.version()

    received = om.payloads()
    assert len(om.requests) > 20
    assert received.count(JWT) == 0
    assert {value: received.count(value) for value in PII_VALUES} == dict.fromkeys(PII_VALUES, 0)
    assert [received.count(str(subject)) for subject in SUBJECT_IDS] == [0, 0, 0]
