"""End to end with the official Iceberg provider installed: an ``iceberg`` connection in the official
provider's own shape (a SQL catalog through its extras) is the target of ``IcebergIngestOperator``
in a ``dag.test()`` run, and the rows are read back through another route."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow.conftest import connection_env
from tests.airflow.helpers import return_values, run_dag

pytestmark = pytest.mark.airflow


@pytest.fixture
def official_iceberg_default(tmp_path, monkeypatch) -> dict[str, str]:
    extra = {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": f"file://{tmp_path}/warehouse"}
    monkeypatch.setenv(*connection_env("iceberg_default", conn_type="iceberg", extra=extra))
    return extra


def _read_back(extra: dict[str, str], table: str):
    """Through the official hook where pyiceberg's SqlCatalog imports (SQLAlchemy 2); on Airflow 2.11
    straight from the catalog database with DbApiCatalog, named as the official hook names it."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.providers.apache.iceberg.hooks.iceberg import IcebergHook as OfficialIcebergHook

        return OfficialIcebergHook("iceberg_default").load_table(table).scan().to_arrow()
    from dativo_provider.iceberg.dbapi_catalog import DbApiCatalog

    return DbApiCatalog("iceberg_default", **extra).load_table(table).scan().to_arrow()


def test_an_official_iceberg_connection_drives_the_ingest_operator(airflow_db, official_iceberg_default):
    run = run_dag("example_files_to_iceberg", datetime(2024, 1, 2, tzinfo=UTC))
    (customers,) = return_values(run, "ingest_customers")
    assert customers["rows_written"] == 1000
    table = _read_back(official_iceberg_default, "examples.customers")
    assert table.num_rows == 1000
    first = {row["customer_id"]: row for row in table.to_pylist()}[1]
    assert (first["email"], first["first_name"], first["country"]) == ("nora.ito1@example.org", "Nora", "IN")
    orders = _read_back(official_iceberg_default, "examples.orders")
    assert orders.num_rows == 2100
