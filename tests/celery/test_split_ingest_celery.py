"""The split ingest on a real CeleryExecutor deployment (Redis broker, Postgres metadata database, two
workers; see tests/celery/deployment.py): 5M Postgres rows land in Iceberg exactly once, also when a
worker is killed with SIGKILL in the middle of a part and Airflow retries the part on the other worker.

Values are checked against aggregates Postgres computes on the source (count, distinct ids, sums,
minima and maxima of every column); the runs' figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.celery.conftest import SourceTable
from tests.celery.deployment import HEARTBEAT_TIMEOUT, TRY_COLUMNS, WORKERS, CeleryDeployment, TaskTry, poll

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

PART_TASK = "orders.write_part"
#: A data file's name as DataFileWriter writes it: counter, then the writer's (one attempt's) uuid.
DATA_FILE_NAME = re.compile(r"^(\d{5})-0-([0-9a-f-]{36})\.parquet$")
RUN_TIMEOUT = 300


def test_split_ingest_lands_every_row_once_across_two_workers(
        celery_airflow: CeleryDeployment, source_table: SourceTable, lake: Any) -> None:
    dag_id = "celery_split_ingest"
    run_id = celery_airflow.trigger(dag_id)
    assert celery_airflow.wait_for_run(dag_id, run_id, RUN_TIMEOUT) == "success"

    tries = celery_airflow.task_tries(dag_id, run_id)
    parts = [t for t in tries if t.task_id == PART_TASK]
    print_figures(celery_airflow, dag_id, run_id, tries, source_table.rows)
    assert sorted(t.map_index for t in parts) == [0, 1, 2, 3]
    assert {t.state for t in parts} == {"success"}
    assert {t.hostname for t in parts} == set(WORKERS), "both workers should have run parts"

    table = lake.load_table("celery.orders")
    assert iceberg_aggregates(table) == source_table.reference
    assert_one_split_snapshot(table, source_table.rows)


def test_worker_killed_mid_part_retries_on_the_other_worker_and_lands_once(
        celery_airflow: CeleryDeployment, source_table: SourceTable, lake: Any) -> None:
    dag_id = "celery_split_ingest_worker_killed"
    run_id = celery_airflow.trigger(dag_id)
    killed = kill_worker_mid_part(celery_airflow, dag_id, lake.load_table, "celery.orders_killed")
    noticed = wait_until_noticed(celery_airflow, dag_id, run_id, killed)
    assert celery_airflow.wait_for_run(dag_id, run_id, RUN_TIMEOUT) == "success"

    tries = celery_airflow.task_tries(dag_id, run_id)
    print_figures(celery_airflow, dag_id, run_id, tries, source_table.rows)
    print(f"killed {killed.worker} {killed.seconds_into_part:.1f} s into part {killed.map_index} (its file "
          f"{killed.open_file} open); Airflow noticed after {noticed:.1f} s (heartbeat timeout "
          f"{HEARTBEAT_TIMEOUT} s)")
    killed_part = [t for t in tries if t.task_id == PART_TASK and t.map_index == killed.map_index]
    first, last = killed_part[0], killed_part[-1]
    assert (first.try_number, first.hostname) == (1, killed.worker)
    assert first.state != "success"
    survivor = next(w for w in WORKERS if w != killed.worker)
    assert (last.state, last.hostname) == ("success", survivor)

    table = lake.load_table("celery.orders_killed")
    assert iceberg_aggregates(table) == source_table.reference
    assert_one_split_snapshot(table, source_table.rows)
    # The killed attempt's files (closed ones and the one it was writing) are orphans: on disk, in no
    # snapshot; every other file on disk is in the table (failed attempts in Python delete theirs).
    on_disk = {str(p) for p in data_dir(table).rglob("*.parquet")}
    referenced = {task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()}
    orphans = on_disk - referenced
    assert killed.open_file in orphans
    assert orphans == {p for p in on_disk if killed.write_uuid in p}
    assert len(orphans) >= 2, "the killed attempt had closed at least one file before the kill"


# -- killing a worker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KilledPart:
    worker: str
    map_index: int
    #: The uuid in every file name of the killed attempt's writer, and the file it had open.
    write_uuid: str
    open_file: str
    killed_at: float
    seconds_into_part: float


def kill_worker_mid_part(deployment: CeleryDeployment, dag_id: str, load_table: Any, table_name: str,
                         timeout: float = 240) -> KilledPart:
    """SIGKILL the process tree of the first worker seen writing a part's second data file (so the
    attempt already closed a file: rows were written)."""
    deadline = time.monotonic() + timeout
    location: Path | None = None
    while time.monotonic() < deadline:
        deployment.check_alive()
        for ti in running_parts(deployment, dag_id):
            location = location or data_dir(load_table(table_name))
            open_file = next((f for f in open_data_files(deployment.processes[ti.hostname].pid, location)
                              if data_file_name(f)[0] >= 2), None)
            if open_file is None:
                continue
            deployment.kill(ti.hostname)
            return KilledPart(ti.hostname, ti.map_index, data_file_name(open_file)[1], open_file,
                              killed_at=time.monotonic(),
                              seconds_into_part=time.time() - ti.start_date.timestamp())
        time.sleep(0.1)
    raise TimeoutError(f"no part of {dag_id} got to its second data file in {timeout} s\n"
                       f"{deployment.log_tails()}")


def data_file_name(path: str) -> tuple[int, str]:
    """The counter and the writer's uuid in a data file's name."""
    match = DATA_FILE_NAME.match(Path(path).name)
    assert match, f"not a data file name: {path}"
    return int(match[1]), match[2]


def running_parts(deployment: CeleryDeployment, dag_id: str) -> list[TaskTry]:
    rows = deployment.query(
        f"SELECT {TRY_COLUMNS} FROM task_instance WHERE dag_id = %s AND task_id = %s AND state = 'running' "
        "AND try_number = 1", dag_id, PART_TASK)
    return [TaskTry(*row) for row in rows if row[4] in WORKERS and row[5] is not None]


def open_data_files(pid: int, under: Path) -> list[str]:
    """The Parquet files under ``under`` that a process of the tree rooted at ``pid`` has open."""
    found = []
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for process in tree:
        try:
            found += [f.path for f in process.open_files()
                      if f.path.startswith(str(under)) and DATA_FILE_NAME.match(Path(f.path).name)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def wait_until_noticed(deployment: CeleryDeployment, dag_id: str, run_id: str, killed: KilledPart) -> float:
    """Seconds from the kill until Airflow took the killed try out of ``running``."""

    def first_try_over() -> bool:
        rows = deployment.query(
            "SELECT state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
            "AND map_index = %s", dag_id, run_id, PART_TASK, killed.map_index)
        return bool(rows) and (rows[0][0] != "running" or rows[0][1] > 1)

    poll(first_try_over, HEARTBEAT_TIMEOUT * 6, "Airflow to notice the killed worker", deployment,
         interval=0.2)
    return time.monotonic() - killed.killed_at


# -- checking the table ----------------------------------------------------------------------------------


def iceberg_aggregates(table: Any) -> dict[str, Any]:
    """The same aggregates as the source's REFERENCE_SQL, computed by Arrow over the whole table."""
    import pyarrow.compute as pc

    data = table.scan().to_arrow()

    def value(scalar: Any) -> Any:
        return scalar.as_py()

    return {
        "rows": data.num_rows,
        "distinct_ids": value(pc.count_distinct(data["id"])),
        "min_id": value(pc.min(data["id"])),
        "max_id": value(pc.max(data["id"])),
        "sum_id": Decimal(value(pc.sum(data["id"]))),
        "sum_customer_id": value(pc.sum(data["customer_id"])),
        "sum_amount": value(pc.sum(data["amount"])),
        "min_amount": value(pc.min(data["amount"])),
        "max_amount": value(pc.max(data["amount"])),
        "sum_quantity": value(pc.sum(data["quantity"])),
        "shipped": value(pc.sum(pc.equal(data["status"], "shipped"))),
        "notes": data.num_rows - data["note"].null_count,
        "min_created_at": value(pc.min(data["created_at"])),
        "max_created_at": value(pc.max(data["created_at"])),
    }


def assert_one_split_snapshot(table: Any, rows: int) -> None:
    """The table has exactly one snapshot on main: the split run's commit, adding every row."""
    snapshots = table.snapshots()
    assert len(snapshots) == 1
    summary = snapshots[0].summary
    assert summary["dativo.split-run"]
    assert int(summary["added-records"]) == int(summary["total-records"]) == rows
    assert table.current_snapshot().snapshot_id == snapshots[0].snapshot_id


def data_dir(table: Any) -> Path:
    return Path(table.location().removeprefix("file://")) / "data"


# -- figures ---------------------------------------------------------------------------------------------


def print_figures(deployment: CeleryDeployment, dag_id: str, run_id: str, tries: list[TaskTry],
                  rows: int) -> None:
    started, ended = deployment.query(
        "SELECT start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)[0]
    wall = (ended - started).total_seconds()
    print(f"\n{dag_id}: {rows:,} rows in {wall:.1f} s wall ({rows / wall:,.0f} rows/s), run {run_id}")
    for t in tries:
        print(f"  {t.task_id}[{t.map_index}] try {t.try_number} on {t.hostname or '-'}: {t.state}, "
              f"{t.duration or 0:.1f} s")
