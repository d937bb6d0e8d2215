"""A database password never reaches task logs, XCom, rendered template fields or the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dativo_provider.hooks.iceberg import IcebergHook
from tests.airflow.conftest import AIRFLOW_HOME, connection_env
from tests.airflow.helpers import return_values, run_dag

pytestmark = pytest.mark.airflow

PASSWORD = "Dativo-Pg-Secret-7f3a9c"  # trust auth accepts it; no character that URL quoting changes


@pytest.fixture
def postgres_with_password(postgres_config, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    with psycopg.connect(host=postgres_config.host, port=postgres_config.port, user=postgres_config.user,
                         dbname=postgres_config.database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dativo_example_orders")
    monkeypatch.setenv(*connection_env(
        "postgres_default", conn_type="postgres", host=postgres_config.host, port=postgres_config.port,
        login=postgres_config.user, password=PASSWORD, schema=postgres_config.database,
        extra={"sslmode": "disable"},
    ))


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret in path.read_bytes()]


def test_password_stays_out_of_logs_xcom_rendered_fields_and_table(
    airflow_db, iceberg_default, dativo_home, postgres_with_password, capfd, caplog
):
    run = run_dag("example_postgres_to_iceberg", datetime(2024, 1, 2, 12, tzinfo=UTC))
    (summary,) = return_values(run, "ingest_orders")
    assert summary["rows_written"] == 3, "the run must really have read through the connection"

    captured = capfd.readouterr()
    assert PASSWORD not in captured.out + captured.err + caplog.text, "password in task logs"
    assert PASSWORD not in json.dumps(summary, default=str), "password in XCom"
    # The metadata DB holds XCom and rendered template fields; the tree also holds log files and
    # OpenLineage events; DATIVO_HOME holds the embedded catalog and its snapshot summaries.
    assert _files_holding(AIRFLOW_HOME, PASSWORD.encode()) == []
    assert _files_holding(dativo_home, PASSWORD.encode()) == []
    table = IcebergHook().get_conn().load_table("examples.pg_orders")
    assert PASSWORD not in table.metadata.model_dump_json(), "password in table metadata"
