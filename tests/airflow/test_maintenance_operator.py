"""IcebergMaintenanceOperator and the example maintenance DAG, run for real (``dag.test()``) on the
embedded catalog: orphans removed, small files compacted, ingest state intact, errors mapped."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_provider.compat import AirflowFailException
from dativo_provider.operators.maintenance import IcebergMaintenanceOperator
from tests.airflow.helpers import return_values, run_dag
from tests.memory_source import TableSource

pytestmark = pytest.mark.airflow

FOUR_DAYS = 4 * 24 * 3600


def catalog():
    from dativo_provider.hooks.iceberg import IcebergHook

    return IcebergHook("iceberg_default").get_catalog_config()


def seed(table: str, runs: int = 6) -> Path:
    """``runs`` incremental loads of 10 rows each, and an orphan Parquet file four days old; the orphan."""
    from dativo_provider.ingest.engine import run_ingest

    for run in range(runs):
        rows = pa.table({"id": pa.array(range(10 * (run + 1)), pa.int64())})
        run_ingest(TableSource(rows, identity=f"memory://{table}", cursor="id"), catalog(), table)
    location = catalog().load().load_table(table).metadata.location.removeprefix("file://")
    orphan = Path(location) / "data" / "killed-writer.parquet"
    pq.write_table(pa.table({"id": pa.array([999], pa.int64())}), orphan)
    os.utime(orphan, (time.time() - FOUR_DAYS, time.time() - FOUR_DAYS))
    return orphan


def ids(table: str) -> list[int]:
    return sorted(catalog().load().load_table(table).scan().to_arrow()["id"].to_pylist())


def test_the_operator_removes_orphans_compacts_and_keeps_the_state(iceberg_default):
    orphan = seed("tests.orders")

    result = IcebergMaintenanceOperator(task_id="maintain", tables="tests.orders", compact=True,
                                        retain_last=1, expire_older_than=None).execute({})

    (table,) = result["tables"]
    assert not orphan.exists()
    assert table["files_compacted"] == 6 and table["files_written"] == 1
    assert result["files_compacted"] == 6 and result["snapshots_expired"] == 6
    assert table["files_removed"]["data"] == 7  # the orphan and the six compacted files
    assert result["bytes_reclaimed"] == table["bytes_reclaimed"] > 0
    assert ids("tests.orders") == list(range(60))

    from dativo_provider.ingest.engine import run_ingest

    rows = pa.table({"id": pa.array(range(70), pa.int64())})
    again = run_ingest(TableSource(rows, identity="memory://tests.orders", cursor="id"), catalog(), "tests.orders")
    assert again.rows_written == 10  # the state survived: only the new rows


def test_several_tables_as_a_comma_separated_template(iceberg_default):
    seed("tests.a", runs=2)
    seed("tests.b", runs=2)
    result = IcebergMaintenanceOperator(task_id="maintain", tables="tests.a, tests.b").execute({})
    assert [t["table"] for t in result["tables"]] == ["tests.a", "tests.b"]
    assert result["files_removed"] == 2  # each table's orphan; nothing is old enough to expire


@pytest.mark.parametrize("tables, message", [
    ("tests.missing", "tests.missing: no such table"),
    ("", "'tables' is empty"),
])
def test_errors_fail_the_task_without_retry_and_name_the_cause(iceberg_default, tables, message):
    with pytest.raises(AirflowFailException, match=message):
        IcebergMaintenanceOperator(task_id="maintain", tables=tables).execute({})


def test_bad_parameters_fail_without_retry(iceberg_default):
    seed("tests.orders", runs=1)
    with pytest.raises(AirflowFailException, match="retain_last"):
        IcebergMaintenanceOperator(task_id="maintain", tables="tests.orders", retain_last=0).execute({})


def test_the_example_dag_maintains_each_table(airflow_db, iceberg_default):
    orphans = [seed("examples.orders"), seed("examples.events")]
    before = {t: ids(t) for t in ("examples.orders", "examples.events")}

    run = run_dag("example_iceberg_maintenance", datetime(2024, 1, 2, tzinfo=UTC))

    results = return_values(run, "maintain")
    assert [r["tables"][0]["table"] for r in results] == ["examples.orders", "examples.events"]
    assert all(r["files_compacted"] == 6 for r in results)
    assert not any(o.exists() for o in orphans)
    assert {t: ids(t) for t in before} == before
