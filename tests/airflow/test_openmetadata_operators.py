"""The OpenMetadata connection, hook and operators, and the example DAG, against the loopback double."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import dativo_provider
from tests.airflow.conftest import connection_env
from tests.airflow.helpers import return_values, run_dag
from tests.doubles.openmetadata import OpenMetadataDouble
from tests.lineage.conftest import JWT

pytestmark = pytest.mark.airflow

CUSTOMERS = "dativo_iceberg.dativo.examples.customers"
CUSTOMERS_CONTRACT = str(
    Path(dativo_provider.__file__).parent / "sample_data" / "contracts" / "customers.odcs.yaml"
)
#: Personal data in the sample customers.csv: none may reach OpenMetadata.
SAMPLE_PII = ("nora.ito1@example.org", "layla.andersen2@example.net")


@pytest.fixture
def openmetadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenMetadataDouble]:
    """The double, with the customers contract's team and domain, as ``openmetadata_default``."""
    with OpenMetadataDouble(token=JWT) as om:
        om.add_team("customer-data")
        om.add_domain("sales")
        monkeypatch.setenv(
            *connection_env(
                "openmetadata_default",
                conn_type="dativo_openmetadata",
                host=om.url,
                password=JWT,
                extra={"max_workers": 4},
            )
        )
        yield om


def test_the_hook_reads_the_connection_and_its_test_calls_the_server(openmetadata, connect) -> None:
    from dativo_provider.hooks.openmetadata import OpenMetadataHook

    config = OpenMetadataHook().get_conn()
    assert (config.base_url, config.max_workers, config.conn_id) == (
        openmetadata.url,
        4,
        "openmetadata_default",
    )
    assert JWT not in repr(config)
    expected = f"OpenMetadata 2.0.7 at {openmetadata.url} accepted the token"
    assert OpenMetadataHook().test_connection() == (True, expected)
    assert [r.path for r in openmetadata.requests] == [
        "/api/v1/system/version",
        "/api/v1/services/databaseServices",
    ]
    connect("om_wrong", conn_type="dativo_openmetadata", host=openmetadata.url, password="eyJ.not.it")
    ok, message = OpenMetadataHook("om_wrong").test_connection()
    assert not ok and "rejected the token (401)" in message and "eyJ.not.it" not in message


def test_a_connection_without_token_or_url_says_which_field(connect) -> None:
    from dativo_provider.exceptions import ConfigError
    from dativo_provider.hooks.openmetadata import OpenMetadataHook

    connect("om_bare", conn_type="dativo_openmetadata", host="om.example.org", port=8585)
    with pytest.raises(ConfigError, match="'om_bare': put an OpenMetadata bot's JWT in the password field"):
        OpenMetadataHook("om_bare").get_conn()
    connect(
        "om_host",
        conn_type="dativo_openmetadata",
        host="om.example.org",
        port=8585,
        password="t",
        extra={"verify_ssl": "false", "max_retries": 0},
    )
    config = OpenMetadataHook("om_host").get_conn()
    assert (config.base_url, config.verify_ssl, config.max_retries) == (
        "https://om.example.org:8585",
        False,
        0,
    )


def test_example_dag_syncs_checks_and_posts_and_a_second_sync_writes_nothing(
    airflow_db, iceberg_default, openmetadata
) -> None:
    run = run_dag("example_openmetadata_sync", datetime(2024, 1, 2, 12, tzinfo=UTC))
    (synced,) = return_values(run, "sync_openmetadata")
    assert synced["created"] == [CUSTOMERS] and synced["writes"] == 4  # service, database, schema, table
    assert synced["test_cases"]["unmapped"] == {}
    table = openmetadata.table(CUSTOMERS)
    columns = {c["name"]: c for c in table["columns"]}
    assert columns["customer_id"]["constraint"] == "PRIMARY_KEY"
    assert [t["tagFQN"] for t in columns["email"]["tags"]] == ["PII.Sensitive"]
    assert [o["name"] for o in table["owners"]] == ["customer-data"]
    (posted,) = return_values(run, "post_quality_results")
    assert posted["posted"] == {
        f"{CUSTOMERS}.customer_id.customer_id_unique": "Success",
        f"{CUSTOMERS}.email.email_well_formed": "Success",
        f"{CUSTOMERS}.country.country_is_iso_code": "Success",
        f"{CUSTOMERS}.birth_year.birth_year_plausible": "Success",
        f"{CUSTOMERS}.customers_not_empty": "Success",
    }

    # A second sync (the operator itself, without the rest of the DAG): nothing to write.
    from dativo_provider.operators.openmetadata import OpenMetadataSyncOperator

    writes = len(openmetadata.writes)
    again = OpenMetadataSyncOperator(
        task_id="again", tables="examples.customers", contracts=CUSTOMERS_CONTRACT, tier="Tier.Tier2"
    ).execute({})
    assert (again["writes"], again["unchanged"], again["test_cases"]["unchanged"]) == (0, 1, 5)
    assert len(openmetadata.writes) == writes
    assert len(openmetadata.results[f"{CUSTOMERS}.customers_not_empty"]) == 1
    received = openmetadata.payloads()
    assert [received.count(value) for value in (JWT, *SAMPLE_PII)] == [0, 0, 0]


def test_the_lineage_operator_sends_edges_between_synced_tables(openmetadata, iceberg_default) -> None:
    from pyiceberg import types as it
    from pyiceberg.schema import Schema

    from dativo_provider.compat import AirflowFailException
    from dativo_provider.lineage.openmetadata_client import OpenMetadataClient, OpenMetadataConfig
    from dativo_provider.lineage.openmetadata_mapping import table_spec
    from dativo_provider.lineage.openmetadata_sync import ServiceTarget, sync_tables
    from dativo_provider.operators.openmetadata import OpenMetadataLineageOperator

    target = ServiceTarget()  # dativo_iceberg.dativo: the embedded catalog is called dativo
    schema = Schema(
        it.NestedField(1, "customer_id", it.LongType()), it.NestedField(2, "email", it.StringType())
    )
    specs = [
        table_spec(schema, schema_fqn=target.schema_fqn("examples"), name=n)
        for n in ("customers", "contacts")
    ]
    sync_tables(OpenMetadataClient(OpenMetadataConfig(openmetadata.url, JWT)), specs, target)

    edge = {"source": "examples.customers", "target": "examples.contacts", "columns": {"email": ["email"]}}
    assert OpenMetadataLineageOperator(task_id="lineage", edges=[edge]).execute({}) == 1
    (stored,) = openmetadata.edges.values()
    assert stored["lineageDetails"]["columnsLineage"] == [
        {"fromColumns": [f"{CUSTOMERS}.email"], "toColumn": "dativo_iceberg.dativo.examples.contacts.email"}
    ]
    missing = {"source": "examples.customers", "target": "examples.nowhere"}
    with pytest.raises(
        AirflowFailException, match="no table 'dativo_iceberg.dativo.examples.nowhere'; sync it"
    ):
        OpenMetadataLineageOperator(task_id="lineage2", edges=[missing]).execute({})
