"""The split ingest operators and ``split_ingest()`` task group, run for real with ``dag.test()``: the
example DAG's mapped parts land in one snapshot; a failed part commits nothing; a rerun reads nothing new."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from dativo_provider.operators.split_ingest import (
    DEFAULT_PART_RETRIES,
    SplitIngestCommitOperator,
    SplitIngestPartOperator,
    SplitIngestPlanOperator,
    split_ingest,
)
from tests.airflow.helpers import dagbag, read_table, return_values, run_dag

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

DAG_ID = "example_split_ingest"
TABLE = "examples.pg_events_split"
GROUP = "split_events"


def _day(day: int) -> datetime:
    """Noon on a January 2024 day (see test_example_dags._day: rows below fall inside either way)."""
    return datetime(2024, 1, day, 12, tzinfo=UTC)


@pytest.fixture
def events(postgres_config, postgres_conn):
    """An empty source (the DAG's seed task creates and fills it)."""
    with psycopg.connect(host=postgres_config.host, port=postgres_config.port, user=postgres_config.user,
                         dbname=postgres_config.database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dativo_example_events")
        yield conn
        conn.execute("DROP TABLE IF EXISTS dativo_example_events")


def _source_rows(conn) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT id, customer, amount, shipped_on FROM dativo_example_events ORDER BY id").fetchall()
    return [tuple(row) for row in rows]


def _lake_rows() -> list[tuple[Any, ...]]:
    data = read_table(TABLE)
    return sorted(zip(*(data[c].to_pylist() for c in ("id", "customer", "amount", "shipped_on"))))


def _snapshot_count() -> int:
    from dativo_provider.hooks.iceberg import IcebergHook

    return len(IcebergHook("iceberg_default").get_conn().load_table(TABLE).snapshots())


def _run_states(logical_date: datetime) -> tuple[Any, dict[tuple[str, int], str]]:
    dag = dagbag().get_dag(DAG_ID)
    if AIRFLOW_V_3_0_PLUS:
        run = dag.test(logical_date=logical_date)
    else:
        import airflow.providers.fab.auth_manager.models  # noqa: F401 - see helpers.run_dag

        run = dag.test(execution_date=logical_date)
    return run, {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def test_example_dag_writes_mapped_parts_and_commits_them_once(airflow_db, iceberg_default, events):
    run = run_dag(DAG_ID, _day(2))
    parts = return_values(run, f"{GROUP}.write_part")
    assert len(parts) == 4 and sum(p["rows_written"] for p in parts) == 20_000
    (summary,) = return_values(run, f"{GROUP}.commit")
    assert (summary["rows_read"], summary["rows_written"], summary["rows_rejected"]) == (20_000, 20_000, 0)
    assert summary["committed"] and summary["source_details"]["split_by"] == "id"
    assert summary["asset_event"]["extra"]["rows_written"] == 20_000
    assert _lake_rows() == _source_rows(events)
    assert _snapshot_count() == 1

    (rerun,) = return_values(run_dag(DAG_ID, _day(2)), f"{GROUP}.commit")
    assert (rerun["rows_read"], rerun["committed"]) == (0, False)

    events.execute("INSERT INTO dativo_example_events SELECT g, 'late', 1.00, date '2024-01-02', "
                   "timestamptz '2024-01-02 06:00+00' + g * interval '1 second' FROM generate_series(20001, 20500) g")
    events.execute("INSERT INTO dativo_example_events VALUES (20501, 'bad', 1.00, 'infinity', '2024-01-02 08:00+00')")
    _, states = _run_states(_day(3))
    assert states[(f"{GROUP}.write_part", 3)] == "failed", states  # the part holding id 20501
    assert states[(f"{GROUP}.commit", -1)] == "upstream_failed"
    assert _snapshot_count() == 1, "a failed part means nothing is committed"
    assert len(read_table(TABLE)) == 20_000

    events.execute("UPDATE dativo_example_events SET shipped_on = date '2024-01-02' WHERE id = 20501")
    (summary,) = return_values(run_dag(DAG_ID, _day(3)), f"{GROUP}.commit")
    assert (summary["rows_read"], summary["rows_written"]) == (501, 501)
    assert _lake_rows() == _source_rows(events)
    assert _snapshot_count() == 2


def test_split_ingest_builds_plan_mapped_parts_and_commit_in_a_task_group(airflow_db):
    try:
        from airflow.sdk import DAG
    except ImportError:
        from airflow import DAG

    with DAG("split_shape", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        group = split_ingest("orders", source={"type": "postgres", "conn_id": "pg", "table": "orders"},
                             table="lake.orders", parts=8, pool="default_pool")
    tasks = {t.task_id: t for t in dag.tasks}
    assert sorted(tasks) == ["orders.commit", "orders.plan", "orders.write_part"]
    assert group.group_id == "orders"
    assert isinstance(tasks["orders.plan"], SplitIngestPlanOperator) and tasks["orders.plan"].parts == 8
    assert tasks["orders.write_part"].operator_class is SplitIngestPartOperator
    assert tasks["orders.write_part"].partial_kwargs["retries"] == DEFAULT_PART_RETRIES
    assert isinstance(tasks["orders.commit"], SplitIngestCommitOperator)
    assert tasks["orders.commit"].upstream_task_ids == {"orders.plan", "orders.write_part"}
    assert all(t.pool == "default_pool" for t in (tasks["orders.plan"], tasks["orders.commit"]))


def test_a_source_that_cannot_be_split_fails_the_plan_without_retries(iceberg_default):
    from dativo_provider.compat import AirflowFailException

    plan = SplitIngestPlanOperator(task_id="plan", source={"type": "markdown_kv", "path": "/tmp"},
                                   table="lake.docs", parts=2)
    with pytest.raises(AirflowFailException, match="ConfigError: split ingest cannot cut a 'markdown_kv' source"):
        plan.execute({"run_id": "manual"})
