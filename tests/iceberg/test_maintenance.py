"""maintain_table on real tables (embedded SQLite catalog, local warehouse): a SIGKILLed writer's files
are removed and nothing a snapshot references is; ingest state, tags and protected refs survive
expiry; compaction keeps every row and the sort order; progress is logged at a steady interval."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.files import ManifestCache, reachable_files
from dativo_provider.iceberg.maintenance import Retention, expiry_plan, maintain_table
from dativo_provider.iceberg.state import CARRIED_FROM_KEY, read_state
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.progress import ProgressLog
from tests.memory_source import TableSource

REPO = Path(__file__).resolve().parents[2]
TABLE = "lake.orders"
ORDERS, REFUNDS = "memory://orders", "memory://refunds"
LATER = timedelta(hours=1)

_KILLED_WRITER = """
import sys
import pyarrow as pa
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from tests.iceberg.test_maintenance import rows
from tests.memory_source import TableSource
source = TableSource(rows(0, 2_000_000), identity=sys.argv[2], cursor="seq", batch_rows=20_000)
run_ingest(source, embedded_catalog(sys.argv[1]), "lake.orders", WriteOptions(target_file_size_mb=1))
"""


def rows(first: int, last: int, regions: tuple[str, ...] = ("eu", "us")) -> pa.Table:
    """Rows ``first`` .. ``last - 1``; ``seq`` is the incremental cursor."""
    ids = pa.array(range(first, last), pa.int64())
    return pa.table({
        "id": ids,
        "seq": ids,
        "region": pa.array([regions[i % len(regions)] for i in range(first, last)]),
        "note": pa.array([f"order {i}" for i in range(first, last)]),
    })


def ingest(catalog, source: str, upto: int, options: WriteOptions | None = None, shuffle: bool = False):
    """One incremental run of ``source`` holding rows 0 .. upto-1 (the cursor reads only new ones)."""
    table = rows(0, upto)
    if shuffle:  # ids out of order inside each run, so sorting is visible
        table = table.take(pa.array(sorted(range(upto), key=lambda i: (i // 50, -i))))
    return run_ingest(TableSource(table, identity=source, cursor="seq"), catalog, TABLE, options)


def read_main(table) -> pa.Table:
    return table.scan().to_arrow().sort_by([("id", "ascending")])


def snapshot_files_readable(table) -> int:
    """Every file any remaining snapshot names exists; every data file decodes. Returns how many."""
    files = reachable_files(table, ManifestCache(table))
    for location in files:
        path = location.removeprefix("file://")
        assert os.path.exists(path), f"{location} is referenced but gone"
        if path.endswith(".parquet"):
            pq.read_table(path)
    for snapshot in table.snapshots():
        table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
    return len(files)


def data_dir(catalog) -> Path:
    return Path(catalog.properties["warehouse"].removeprefix("file://")) / "lake" / "orders" / "data"


def kill_mid_write(lake: Path, data: Path) -> set[Path]:
    """Start an ingest of 2M rows in a child process, SIGKILL it once it wrote 3 files; its files."""
    before = set(data.rglob("*.parquet"))
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(lake), ORDERS], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while len(set(data.rglob("*.parquet")) - before) < 3:
        assert child.poll() is None, "the writer finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return set(data.rglob("*.parquet")) - before


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


@pytest.fixture
def history(catalog):
    """Refunds loaded once, long ago; orders in 8 runs; tag v1, branch dev, tag training."""
    ingest(catalog, REFUNDS, 50)
    snapshots = [ingest(catalog, ORDERS, 100 * (run + 1)).snapshot_id for run in range(8)]
    table = catalog.load().load_table(TABLE)
    table.manage_snapshots().create_tag(snapshots[1], "v1").create_branch(snapshots[3], "dev") \
        .create_tag(snapshots[5], "training").commit()
    return snapshots


def test_after_a_sigkilled_writer_maintenance_removes_its_files_and_keeps_everything_referenced(
        catalog, history, tmp_path):
    table = catalog.load().load_table(TABLE)
    before = read_main(table)
    dev_history = {s.snapshot_id for s in table.snapshots()
                   if s.snapshot_id in _ancestry(table, table.metadata.refs["dev"].snapshot_id)}
    orphans = kill_mid_write(tmp_path / "lake", data_dir(catalog))
    assert read_main(catalog.load().load_table(TABLE)).equals(before), "a killed run leaves nothing visible"
    orphan_bytes = sum(p.stat().st_size for p in orphans)

    result = maintain_table(catalog, TABLE, expire_older_than=None, retain_last=1, protect_refs=["dev"],
                            orphan_safety_window=timedelta(minutes=30),
                            now=datetime.now(timezone.utc) + LATER)

    assert orphans and not any(p.exists() for p in orphans)
    assert result.files_removed["data"] >= len(orphans)
    assert result.bytes_reclaimed >= orphan_bytes
    assert result.snapshots_expired > 0
    table = catalog.load().load_table(TABLE)
    assert snapshot_files_readable(table) > 0
    assert read_main(table).equals(before)
    refs = {name: ref.snapshot_id for name, ref in table.metadata.refs.items()}
    assert refs["v1"] == history[1] and refs["training"] == history[5] and refs["dev"] == history[3]
    assert dev_history <= {s.snapshot_id for s in table.snapshots()}, "a protected ref keeps its history"
    assert result.states_carried == [REFUNDS]
    assert read_state(table, ORDERS).state["watermark"] == 799
    assert read_state(table, REFUNDS).state["watermark"] == 49

    # Source state survived expiry: the next incremental runs add only the new rows.
    assert ingest(catalog, ORDERS, 900).rows_written == 100
    assert ingest(catalog, REFUNDS, 60).rows_written == 10
    ids = catalog.load().load_table(TABLE).scan().to_arrow()["id"].to_pylist()
    assert len(ids) == 900 + 60 and sorted(set(ids)) == list(range(900))


def test_without_the_carry_an_expired_state_would_be_lost(catalog, history):
    """What the carry prevents: expiring main's history cuts read_state's walk to refunds' snapshot."""
    from pyiceberg.table.update.snapshot import ExpireSnapshots

    table = catalog.load().load_table(TABLE)
    expired = expiry_plan(table.metadata, Retention(older_than=None), datetime.now(timezone.utc))
    transaction = table.transaction()
    ExpireSnapshots(transaction).by_ids(sorted(expired)).commit()
    assert read_state(transaction.commit_transaction(), REFUNDS) is None  # a rerun would load it all again


def test_the_count_keeps_each_branchs_newest_and_carriers_do_not_count(catalog, history):
    maintain_table(catalog, TABLE, expire_older_than=None, retain_last=2, remove_orphans=False)
    table = catalog.load().load_table(TABLE)
    main = _ancestry(table, table.metadata.refs["main"].snapshot_id)
    summaries = [table.metadata.snapshot_by_id(s).summary for s in main]
    assert summaries[0].get(CARRIED_FROM_KEY)  # refunds' state, on top
    assert [s.get("dativo.source") for s in summaries] == [REFUNDS, ORDERS, ORDERS, ORDERS]
    assert main[1:] == [history[7], history[6], history[5]]  # the walk ends at the training tag's head
    assert history[4] not in {s.snapshot_id for s in table.snapshots()}

    again = maintain_table(catalog, TABLE, expire_older_than=None, retain_last=2, remove_orphans=False)
    assert again.snapshots_expired == 0 and again.states_carried == []  # stable: nothing to do twice


def test_expiry_by_age_keeps_younger_snapshots(catalog, history):
    table = catalog.load().load_table(TABLE)
    stamps = {s.snapshot_id: s.timestamp_ms for s in table.snapshots()}
    cutoff_ms = stamps[history[4]]
    now = datetime.fromtimestamp(cutoff_ms / 1000, timezone.utc) + timedelta(days=7)

    result = maintain_table(catalog, TABLE, expire_older_than=timedelta(days=7), retain_last=1,
                            remove_orphans=False, now=now)

    table = catalog.load().load_table(TABLE)
    left = {s.snapshot_id for s in table.snapshots()}
    assert {sid for sid in history if stamps[sid] >= cutoff_ms} <= left
    assert {history[1], history[3], history[5]} <= left  # tag and branch heads
    assert history[0] not in left and history[2] not in left
    assert result.snapshots_expired == len(set(stamps) - left)
    assert snapshot_files_readable(table) > 0


def test_young_orphans_stay_until_the_window_passes(catalog, history):
    stray = data_dir(catalog) / "in-flight-writer.parquet"
    pq.write_table(rows(5000, 5010), stray)

    young = maintain_table(catalog, TABLE, expire_snapshots=False)
    assert stray.exists() and young.orphans_kept_younger_than_window == 1

    later = datetime.now(timezone.utc) + timedelta(days=3, minutes=1)
    old = maintain_table(catalog, TABLE, expire_snapshots=False, now=later)
    assert not stray.exists() and old.files_removed["data"] == 1 and old.orphans_kept_younger_than_window == 0


def test_compaction_keeps_rows_sort_order_and_state_in_one_commit(catalog):
    options = WriteOptions(partition_by=("region",), sort_by=("id",))
    for run in range(12):
        ingest(catalog, ORDERS, 40 * (run + 1), options, shuffle=True)
    table = catalog.load().load_table(TABLE)
    before, state, head = read_main(table), read_state(table, ORDERS), table.current_snapshot().snapshot_id
    assert len(list(table.scan().plan_files())) == 24

    result = maintain_table(catalog, TABLE, compact=True, expire_snapshots=False, remove_orphans=False)

    table = catalog.load().load_table(TABLE)
    tasks = list(table.scan().plan_files())
    assert (result.files_compacted, result.files_written, result.partitions_compacted) == (24, 2, 2)
    assert len(tasks) == 2 and {t.file.partition[0] for t in tasks} == {"eu", "us"}
    assert read_main(table).equals(before)
    for task in tasks:
        ids = pq.read_table(task.file.file_path.removeprefix("file://"))["id"]
        assert ids.to_pylist() == sorted(ids.to_pylist())
    compaction = table.current_snapshot()
    assert compaction.parent_snapshot_id == head and compaction.summary.operation.value == "overwrite"
    assert read_state(table, ORDERS) == state
    assert ingest(catalog, ORDERS, 500, options).rows_written == 20  # state intact: only the new rows

    swept = maintain_table(catalog, TABLE, expire_older_than=None, retain_last=1,
                           now=datetime.now(timezone.utc) + timedelta(days=4))
    assert swept.files_removed["data"] == 24  # the compacted inputs, once no snapshot names them
    assert len(list(data_dir(catalog).rglob("*.parquet"))) == len(list(
        catalog.load().load_table(TABLE).scan().plan_files()))


def test_compaction_leaves_partitions_with_few_small_files(catalog):
    for run in range(3):
        ingest(catalog, ORDERS, 10 * (run + 1))
    result = maintain_table(catalog, TABLE, compact=True, expire_snapshots=False, remove_orphans=False)
    assert result.files_compacted == 0 and result.compaction_snapshot_id is None


def test_progress_is_logged_at_a_steady_interval(caplog):
    clock = iter(float(t) for t in range(0, 1000)).__next__
    progress = ProgressLog(logging.getLogger("t"), "lake.orders: sweep", total=100, unit="files",
                           interval=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(100):
            progress.advance()
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 100 // 10 + 1
    assert lines[0].startswith("lake.orders: sweep: 10/100 files running")
    assert lines[-1].startswith("lake.orders: sweep: 100/100 files done")


@pytest.mark.parametrize("arguments, named", [
    ({"retain_last": 0}, "retain_last"),
    ({"orphan_safety_window": timedelta(minutes=-1)}, "orphan_safety_window"),
    ({"min_files_to_compact": 1}, "min_files_to_compact"),
    ({"target_file_size_mb": 0}, "target_file_size_mb"),
])
def test_bad_parameters_are_named(catalog, arguments, named):
    with pytest.raises(ConfigError, match=named):
        maintain_table(catalog, TABLE, **arguments)


def _ancestry(table, snapshot_id: int) -> list[int]:
    from pyiceberg.table.snapshots import ancestors_of

    return [s.snapshot_id for s in ancestors_of(table.metadata.snapshot_by_id(snapshot_id), table.metadata)]


def test_maintenance_alongside_a_running_ingest_loses_and_repeats_no_row(catalog):
    """A real thread runs ten incremental loads while maintenance compacts, expires and sweeps three
    times with the default safety window: every row lands exactly once."""
    import threading

    ingest(catalog, ORDERS, 100)
    errors: list[BaseException] = []

    def load():
        try:
            for run in range(2, 12):
                ingest(catalog, ORDERS, 100 * run)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    for _ in range(3):
        maintain_table(catalog, TABLE, compact=True, min_files_to_compact=2, expire_older_than=None)
    worker.join(timeout=300)
    assert not worker.is_alive() and not errors, errors

    table = catalog.load().load_table(TABLE)
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == list(range(1100))
    assert snapshot_files_readable(table) > 0
