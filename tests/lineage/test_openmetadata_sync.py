"""Iceberg tables into the OpenMetadata double: scale, idempotence, one patch per change, server rules."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from pyiceberg import types as it
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform

from dativo_provider.exceptions import ConfigError
from dativo_provider.lineage.openmetadata_client import (
    OpenMetadataClient,
    OpenMetadataConfig,
    OpenMetadataError,
)
from dativo_provider.lineage.openmetadata_mapping import GovernanceOptions, table_spec
from dativo_provider.lineage.openmetadata_sync import ServiceTarget, iceberg_specs, sync_tables
from tests.doubles.openmetadata import OpenMetadataDouble
from tests.lineage.conftest import JWT, wide_schema
from tests.lineage.people import people_contract, people_table

TARGET = ServiceTarget(service="lake", database="prod")
PEOPLE = "lake.prod.crm.people"
OPTIONS = GovernanceOptions(tier="Tier.Tier2", glossary="Business")


def test_500_tables_of_30_columns_sync_concurrently_in_bounded_time_and_a_resync_writes_nothing(
    om: OpenMetadataDouble,
) -> None:
    om.latency = 0.002  # a server's think time, so that concurrency shows
    schema = wide_schema(30)
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="c02_day"))
    specs = [
        table_spec(schema, schema_fqn=TARGET.schema_fqn(f"ns{n % 2}"), name=f"t{n:03d}", partition_spec=spec)
        for n in range(500)
    ]
    client = OpenMetadataClient(OpenMetadataConfig(om.url, JWT, max_workers=8))

    started = time.perf_counter()
    first = sync_tables(client, specs, TARGET)
    elapsed = time.perf_counter() - started

    assert (len(first.created), first.writes) == (500, 504)  # + service, database, two schemas
    assert len(om.entities["table"]) == 500
    assert 2 <= om.max_in_flight <= 8
    assert elapsed < 60, f"500 tables took {elapsed:.1f}s"
    stored = om.table("lake.prod.ns0.t000")
    assert (
        len(stored["columns"]) == 30 and stored["tablePartition"]["columns"][0]["intervalType"] == "TIME-UNIT"
    )

    writes_before = len(om.writes)
    om.clear_log()
    second = sync_tables(client, specs, TARGET)
    assert (second.writes, second.unchanged, len(om.writes)) == (0, 500, writes_before)
    pages = [r for r in om.requests if r.path == "/api/v1/tables"]
    assert len(pages) == 2 * math.ceil(250 / 100)  # every page of both schemas followed
    print(f"\n500 tables x 30 columns: first sync {elapsed:.2f}s, max {om.max_in_flight} requests in flight")


def _people_specs(tmp_path: Path, **contract_args: str) -> tuple[list, object]:
    catalog, identifier = people_table(tmp_path)
    contract = people_contract(tmp_path, **contract_args)
    return iceberg_specs(catalog.load(), [identifier], TARGET, [contract], OPTIONS), catalog


def test_a_contract_table_carries_types_constraints_governance(
    om: OpenMetadataDouble, client, tmp_path
) -> None:
    specs, _ = _people_specs(tmp_path)
    sync_tables(client, specs, TARGET)
    table = om.table(PEOPLE)
    columns = {c["name"]: c for c in table["columns"]}
    assert columns["person_id"]["constraint"] == "PRIMARY_KEY"
    assert (columns["email"]["dataType"], columns["email"]["dataLength"]) == ("VARCHAR", 320)
    assert columns["full_name"]["dataType"] == "STRING"
    assert [t["tagFQN"] for t in columns["email"]["tags"]] == ["PII.Sensitive"]
    assert [t["tagFQN"] for t in columns["person_id"]["tags"]] == ["PII.NonSensitive"]  # identifies a subject
    assert "tags" not in columns["country"] or columns["country"]["tags"] == []
    assert columns["email"]["fullyQualifiedName"] == f"{PEOPLE}.email"
    assert sorted(t["tagFQN"] for t in table["tags"]) == ["Business.customer", "Tier.Tier2"]
    assert [o["name"] for o in table["owners"]] == ["customer-data"]
    assert [d["name"] for d in table["domains"]] == ["sales"]
    assert table["retentionPeriod"] == "P2555D"  # 7 years of 365 days (the contract loader's reading)
    assert table["description"] == "One row per person."
    assert table["tableType"] == "Iceberg" and table["locationPath"].endswith("/crm/people")


def test_nested_types_keep_their_children_lengths_and_precision(om: OpenMetadataDouble, client) -> None:
    sync_tables(
        client, [table_spec(wide_schema(10), schema_fqn=TARGET.schema_fqn("ns"), name="wide")], TARGET
    )
    columns = {c["name"]: c for c in om.table("lake.prod.ns.wide")["columns"]}
    assert (columns["c10"]["dataType"], columns["c10"]["precision"], columns["c10"]["scale"]) == (
        "DECIMAL",
        18,
        4,
    )
    assert (columns["c04"]["dataType"], columns["c04"]["dataLength"]) == ("BINARY", 16)
    assert (columns["c06"]["dataType"], columns["c06"]["arrayDataType"]) == ("ARRAY", "STRING")
    struct = columns["c08"]
    assert struct["dataTypeDisplay"] == "struct<city:string,zip:int>"
    assert [(c["name"], c["fullyQualifiedName"]) for c in struct["children"]] == [
        ("city", "lake.prod.ns.wide.c08.city"),
        ("Zip", "lake.prod.ns.wide.c08.Zip"),
    ]
    assert columns["id"]["constraint"] == "NOT_NULL"


def test_a_rename_a_tag_change_and_an_owner_change_each_become_one_patch(
    om: OpenMetadataDouble, client, tmp_path
) -> None:
    specs, catalog = _people_specs(tmp_path)
    sync_tables(client, specs, TARGET)
    table_id = om.table(PEOPLE)["id"]
    om.table(PEOPLE)["tags"].append(
        {"tagFQN": "PII.None", "source": "Classification", "labelType": "Manual", "state": "Confirmed"}
    )  # added by hand in the UI: must survive

    with catalog.load().load_table("crm.people").update_schema() as update:
        update.rename_column("full_name", "display_name")
    for change in ("rename", "tag", "owner"):
        contract = people_contract(
            tmp_path,
            name_column="display_name",
            email_class="pii" if change == "rename" else "public",
            team="growth" if change == "owner" else "customer-data",
        )
        om.clear_log()
        specs = iceberg_specs(catalog.load(), ["crm.people"], TARGET, [contract], OPTIONS)
        result = sync_tables(client, specs, TARGET)
        patches = om.writes_to("PATCH")[-1:] if result.writes else []
        assert [w.path for w in om.requests if w.method != "GET"] == [f"/api/v1/tables/{table_id}"], change
        (patch,) = patches
        assert patch.headers["content-type"] == "application/json-patch+json"
        if change == "rename":
            assert patch.body == [{"op": "replace", "path": "/columns/2/name", "value": "display_name"}]
        elif change == "tag":
            assert patch.body == [{"op": "replace", "path": "/columns/1/tags", "value": []}]
        else:
            assert [(op["op"], op["path"]) for op in patch.body] == [("replace", "/owners")]
        assert sync_tables(client, specs, TARGET).writes == 0  # and now it is in step

    table = om.table(PEOPLE)
    assert [c["name"] for c in table["columns"]] == ["person_id", "email", "display_name", "country"]
    assert table["columns"][2]["fullyQualifiedName"] == f"{PEOPLE}.display_name"
    assert [o["name"] for o in table["owners"]] == ["growth"]
    assert "PII.None" in [t["tagFQN"] for t in table["tags"]]
    assert table["version"] == pytest.approx(0.4)


def test_the_double_rejects_a_varchar_without_length_as_the_server_does(
    om: OpenMetadataDouble, client
) -> None:
    TARGET_SCHEMA = TARGET.schema_fqn("ns")
    sync_tables(client, [], TARGET)
    from dativo_provider.lineage.openmetadata_sync import ensure_hierarchy

    ensure_hierarchy(client, TARGET, [TARGET_SCHEMA])
    request = {
        "name": "t",
        "databaseSchema": TARGET_SCHEMA,
        "columns": [{"name": "code", "dataType": "VARCHAR"}],
    }
    with pytest.raises(OpenMetadataError) as refused:
        client.post("/tables", request)
    assert refused.value.status == 400
    assert "dataLength must not be null" in str(refused.value)
    answer = om.dispatch(om.requests[-1])
    assert answer.body == {
        "code": 400,
        "message": "For column data types char, varchar, binary, varbinary dataLength must not be null",
    }
    request["columns"][0]["dataType"] = "VARCHAR2"
    with pytest.raises(OpenMetadataError, match=r"columns\.0\.dataType 'VARCHAR2' is not one of"):
        client.post("/tables", request)
    request["columns"][0] |= {"dataType": "VARCHAR", "dataLength": 8}
    assert client.post("/tables", request)["fullyQualifiedName"] == "lake.prod.ns.t"


def test_contract_columns_the_table_lacks_are_reported_not_fatal(
    om: OpenMetadataDouble, client, tmp_path
) -> None:
    catalog, identifier = people_table(tmp_path)
    contract = people_contract(tmp_path, name_column="nickname")
    (spec,) = iceberg_specs(catalog.load(), [identifier], TARGET, [contract], OPTIONS)
    assert spec.unmatched == ("nickname",)
    result = sync_tables(client, [spec], TARGET)
    assert result.unmatched == {PEOPLE: ["nickname"]}
    assert "full_name" in [c["name"] for c in om.table(PEOPLE)["columns"]]


def test_an_unknown_owner_or_domain_fails_naming_it(om: OpenMetadataDouble, client, tmp_path) -> None:
    specs, _ = _people_specs(tmp_path, team="nobody")
    with pytest.raises(ConfigError, match="owner 'nobody' .* neither a team nor a user"):
        sync_tables(client, specs, TARGET)
    assert om.entities["table"] == {}


def test_an_unknown_tag_is_refused_by_the_double(om: OpenMetadataDouble, client) -> None:
    spec = table_spec(
        Schema(it.NestedField(1, "id", it.LongType())),
        schema_fqn=TARGET.schema_fqn("ns"),
        name="t",
        options=GovernanceOptions(tier="Tier.Tier9"),
    )
    with pytest.raises(OpenMetadataError, match="tag instance for Tier.Tier9 not found"):
        sync_tables(client, [spec], TARGET)
