"""Ingest on every catalog kind: each write mode, exactly-once reruns and a killed writer, concurrent writers.

Each test runs on the embedded SQLite catalog, a Postgres SQL catalog and the REST catalog with S3
(``lake`` fixture, tests/catalogs/conftest.py). Expected table contents are computed independently
with pyarrow from the rows the test fed in, and compared with what a fresh scan of the table returns.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dativo_provider.exceptions import ConcurrentRunError, ConfigError
from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.iceberg.state import SOURCE_KEY, STATE_KEY
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.base import ReadBounds
from tests.memory_source import TableSource, _Stream

REPO = Path(__file__).resolve().parents[2]


def people(ids, *, region=None, version=1) -> pa.Table:
    """Rows keyed by ``id``; ``region`` cycles a/b/c unless given; ``version`` marks which load wrote them."""
    ids = list(ids)
    regions = [region or "abc"[i % 3] for i in ids]
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "region": pa.array(regions, pa.string()),
        "name": pa.array([f"person {i} v{version}" for i in ids], pa.string()),
        "version": pa.array([version] * len(ids), pa.int32()),
    })


def read_back(lake, name: str) -> pa.Table:
    return lake.load().load_table(lake.table(name)).scan().to_arrow().sort_by("id")


def assert_rows(lake, name: str, expected: pa.Table) -> None:
    back = read_back(lake, name)
    expected = expected.sort_by("id").cast(back.schema)
    assert back.num_rows == expected.num_rows
    assert back.equals(expected), f"{lake.kind}: {name} differs from the expected rows"


def head_summary(lake, name: str) -> dict[str, str]:
    snapshot = lake.load().load_table(lake.table(name)).current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    return {"operation": snapshot.summary.operation.value, **snapshot.summary.additional_properties}


# --- every write mode -----------------------------------------------------------------------------


def test_append_adds_each_run_as_one_snapshot(lake):
    first, second = people(range(0, 1_500)), people(range(1_500, 2_000), version=2)
    run_ingest(TableSource(first, identity="memory://first"), lake.config, lake.table("people"))
    result = run_ingest(TableSource(second, identity="memory://second"), lake.config, lake.table("people"))
    assert_rows(lake, "people", pa.concat_tables([first, second]))
    summary = head_summary(lake, "people")
    assert summary["operation"] == "append"
    assert (summary["added-records"], summary["total-records"]) == ("500", "2000")
    assert summary[SOURCE_KEY] == "memory://second"
    assert (result.rows_written, result.rows_deleted, result.committed) == (500, 0, True)
    assert len(lake.load().load_table(lake.table("people")).snapshots()) == 2


def test_overwrite_replaces_only_the_partitions_present_in_the_new_rows(lake):
    options = WriteOptions(mode="overwrite", partition_by=("region",))
    before = people(range(3_000))
    run_ingest(TableSource(before), lake.config, lake.table("people"), options)
    new_b = people(range(10_000, 10_400), region="b", version=2)
    result = run_ingest(TableSource(new_b), lake.config, lake.table("people"), options)

    kept = before.filter(pc.not_equal(before["region"], "b"))
    assert_rows(lake, "people", pa.concat_tables([kept, new_b]))
    table = lake.load().load_table(lake.table("people"))
    assert [f.name for f in table.spec().fields] == ["region"]
    rows_in_b = before.filter(pc.equal(before["region"], "b")).num_rows
    assert (result.rows_written, result.rows_deleted, result.files_removed) == (400, rows_in_b, 1)
    summary = head_summary(lake, "people")
    assert summary["operation"] == "overwrite"
    assert (summary["deleted-records"], summary["added-records"]) == (str(rows_in_b), "400")
    assert summary["total-records"] == str(kept.num_rows + 400)


def test_replace_swaps_the_whole_table_in_one_snapshot(lake):
    options = WriteOptions(mode="replace")
    run_ingest(TableSource(people(range(2_000))), lake.config, lake.table("people"), options)
    fresh = people(range(5_000, 5_700), version=2)
    result = run_ingest(TableSource(fresh), lake.config, lake.table("people"), options)
    assert_rows(lake, "people", fresh)
    summary = head_summary(lake, "people")
    assert summary["operation"] == "overwrite"
    counts = (summary["deleted-records"], summary["added-records"], summary["total-records"])
    assert counts == ("2000", "700", "700")
    assert (result.rows_written, result.rows_deleted) == (700, 2_000)


def test_merge_replaces_rows_with_the_same_keys_and_appends_the_rest(lake):
    options = WriteOptions(mode="merge", merge_keys=("id",))
    before = people(range(2_000))
    run_ingest(TableSource(before, batch_rows=500), lake.config, lake.table("people"), options)
    # 300 updates spread over the existing files, and 200 new keys.
    changes = people([*range(0, 1_500, 5), *range(2_000, 2_200)], version=2)
    result = run_ingest(TableSource(changes), lake.config, lake.table("people"), options)

    untouched = before.filter(pc.invert(pc.is_in(before["id"], value_set=changes["id"])))
    assert_rows(lake, "people", pa.concat_tables([untouched, changes]))
    assert (result.rows_written, result.rows_deleted) == (500, 300)
    summary = head_summary(lake, "people")
    assert summary["operation"] == "overwrite"
    assert summary["total-records"] == "2200"
    # A second merge of the same rows changes nothing visible (the rows replace themselves).
    run_ingest(TableSource(changes), lake.config, lake.table("people"), options)
    assert_rows(lake, "people", pa.concat_tables([untouched, changes]))


# --- exactly once ---------------------------------------------------------------------------------


def committed_state(lake, name: str, identity: str) -> dict | None:
    from dativo_provider.iceberg.state import read_state

    found = read_state(lake.load().load_table(lake.table(name)), identity)
    return found.state if found else None


def test_incremental_reruns_with_a_cursor_never_repeat_a_row(lake):
    rows = people(range(1, 3_001))
    source = TableSource(rows.slice(0, 1_000), identity="memory://orders", cursor="id")
    assert run_ingest(source, lake.config, lake.table("orders")).rows_written == 1_000
    source.table = rows  # 2,000 new rows arrive at the source
    bounded = [run_ingest(source, lake.config, lake.table("orders"), bounds=ReadBounds(upper=2_000))
               for _ in range(2)]
    assert [r.rows_written for r in bounded] == [1_000, 0]  # the same interval twice
    assert (bounded[1].watermark_before, bounded[1].watermark_after) == (2_000, 2_000)
    assert run_ingest(source, lake.config, lake.table("orders")).rows_written == 1_000
    assert run_ingest(source, lake.config, lake.table("orders")).rows_written == 0
    assert_rows(lake, "orders", rows)
    assert committed_state(lake, "orders", "memory://orders") == {"watermark": 3_000, "cursor": "id"}
    # Three runs wrote rows, so three snapshots; runs that found nothing new committed nothing.
    assert len(lake.load().load_table(lake.table("orders")).snapshots()) == 3


def test_a_source_failing_mid_stream_leaves_no_rows_no_state_and_no_files(lake):
    rows = people(range(1, 6_001))
    run_ingest(TableSource(rows.slice(0, 1_000), identity="memory://orders", cursor="id"), lake.config,
               lake.table("orders"))
    table = lake.load().load_table(lake.table("orders"))
    head, files_before = table.current_snapshot().snapshot_id, stored_data_files(lake, table.location())

    failing = TableSource(rows, identity="memory://orders", cursor="id", batch_rows=1_000,
                          fail_after_batches=3)
    with pytest.raises(ConnectionError, match="lost mid-stream"):
        run_ingest(failing, lake.config, lake.table("orders"), WriteOptions(target_file_size_mb=1))
    table = lake.load().load_table(lake.table("orders"))
    assert table.current_snapshot().snapshot_id == head
    assert committed_state(lake, "orders", "memory://orders")["watermark"] == 1_000
    assert stored_data_files(lake, table.location()) == files_before, "the failed run left files behind"

    result = run_ingest(TableSource(rows, identity="memory://orders", cursor="id"), lake.config,
                        lake.table("orders"))
    assert (result.watermark_before, result.rows_written) == (1_000, 5_000)
    assert_rows(lake, "orders", rows)


_KILLED_WRITER = """
import json, os, sys
from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from tests.catalogs.test_ingest_suite import SlowSource, people

catalog = json.loads(os.environ["SUITE_CATALOG"])
source = SlowSource(people(range(1, int(sys.argv[2]) + 1)), identity="memory://orders", cursor="id",
                    batch_rows=2_000)
run_ingest(source, CatalogConfig(catalog["name"], catalog["properties"]), sys.argv[1],
           WriteOptions(target_file_size_mb=1))
"""


class SlowSource(TableSource):
    """Delivers its batches slowly, so a test can kill the run while its files are being written."""

    def open(self, state, bounds):
        stream = super().open(state, bounds)
        return _SlowStream(self, stream.rows, stream.previous)


class _SlowStream(_Stream):
    def __iter__(self):
        for batch in super().__iter__():
            time.sleep(0.05)
            yield batch


def test_a_writer_killed_mid_write_leaves_nothing_and_the_rerun_lands_every_row_once(lake):
    rows = people(range(1, 60_001))
    run_ingest(TableSource(rows.slice(0, 1_000), identity="memory://orders", cursor="id"), lake.config,
               lake.table("orders"))
    table = lake.load().load_table(lake.table("orders"))
    head, files_before = table.current_snapshot().snapshot_id, stored_data_files(lake, table.location())

    catalog = json.dumps({"name": lake.config.name, "properties": dict(lake.config.properties)})
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, lake.table("orders"), str(rows.num_rows)],
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "SUITE_CATALOG": catalog})
    deadline = time.monotonic() + 60
    while not stored_data_files(lake, table.location()) - files_before:
        assert child.poll() is None, "the writer finished before it could be killed"
        assert time.monotonic() < deadline, "the writer wrote no data file within a minute"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    table = lake.load().load_table(lake.table("orders"))
    assert table.current_snapshot().snapshot_id == head, "a killed run must commit nothing"
    assert_rows(lake, "orders", rows.slice(0, 1_000))
    assert committed_state(lake, "orders", "memory://orders")["watermark"] == 1_000
    # The killed run's finished files stay in storage, referenced by nothing (orphan cleanup removes them).
    assert stored_data_files(lake, table.location()) - files_before

    result = run_ingest(TableSource(rows, identity="memory://orders", cursor="id", batch_rows=20_000),
                        lake.config, lake.table("orders"))
    assert (result.watermark_before, result.watermark_after, result.rows_written) == (1_000, 60_000, 59_000)
    back = read_back(lake, "orders")
    assert back["id"].to_pylist() == list(range(1, 60_001))


def stored_data_files(lake, location: str) -> set[str]:
    """The Parquet files under the table's ``data/`` folder in storage, referenced or not."""
    from pyarrow import fs

    if location.startswith("s3://"):
        props = lake.config.properties
        storage = fs.S3FileSystem(endpoint_override=props["s3.endpoint"],
                                  access_key=props["s3.access-key-id"],
                                  secret_key=props["s3.secret-access-key"], region=props["s3.region"])
        root = location.removeprefix("s3://")
    else:
        storage, root = fs.LocalFileSystem(), location.removeprefix("file://")
    try:
        found = storage.get_file_info(fs.FileSelector(f"{root}/data", recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return set()
    return {f.path for f in found if f.path.endswith(".parquet")}


# --- concurrent writers ---------------------------------------------------------------------------

WRITERS = 4
ROWS_PER_WRITER = 5_000


def _append_in_process(config: CatalogConfig, table: str, number: int, ready, results) -> None:
    ids = range(number * ROWS_PER_WRITER, (number + 1) * ROWS_PER_WRITER)
    source = TableSource(people(ids, version=number), identity=f"memory://writer-{number}", batch_rows=1_000)
    # Import and connect everything first, so the writers start together when all are ready.
    config.load().load_table(table).scan().to_arrow()
    ready.wait(timeout=120)
    started = time.monotonic()
    result = run_ingest(source, config, table, WriteOptions(max_commit_attempts=30))
    results.put((number, result.rows_written, result.commit_attempts, time.monotonic() - started))


def test_processes_appending_at_once_each_land_every_row_once(lake):
    name = lake.table("shared")
    run_ingest(TableSource(people([])), lake.config, name)  # the race under test is on commits
    # Writers fork from a server that imported the engine once: spawning four fresh interpreters
    # costs far more than the appends (and plain fork is unsafe once pyarrow's threads run).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.catalogs.test_ingest_suite", "pyiceberg.io.pyarrow",
                                    "pyiceberg.catalog.sql", "pyiceberg.catalog.rest"])
    results, ready = context.Queue(), context.Barrier(WRITERS)
    workers = [context.Process(target=_append_in_process, args=(lake.config, name, n, ready, results))
               for n in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert [w.exitcode for w in workers] == [0] * WRITERS
    outcomes = sorted(results.get(timeout=5) for _ in range(WRITERS))
    assert [rows for _, rows, _, _ in outcomes] == [ROWS_PER_WRITER] * WRITERS

    back = read_back(lake, "shared")
    assert back["id"].to_pylist() == list(range(WRITERS * ROWS_PER_WRITER))
    table = lake.load().load_table(name)
    sources = sorted(s.summary[SOURCE_KEY] for s in table.snapshots())
    assert sources == [f"memory://writer-{n}" for n in range(WRITERS)]
    assert table.current_snapshot().summary["total-records"] == str(WRITERS * ROWS_PER_WRITER)


class _MeetingSource(TableSource):
    """A source whose runs each read their state, then wait until every racer has, before streaming."""

    def __init__(self, rows: pa.Table, meeting: threading.Barrier) -> None:
        super().__init__(rows, identity="memory://same-source", cursor="id")
        self.meeting = meeting

    def open(self, state, bounds):
        stream = super().open(state, bounds)
        self.meeting.wait(timeout=60)
        return stream


def test_two_runs_of_the_same_source_racing_commit_once(lake):
    rows = people(range(1, 2_001))
    run_ingest(TableSource(rows.slice(0, 500), identity="memory://same-source", cursor="id"), lake.config,
               lake.table("orders"))
    meeting = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def race(slot: int) -> None:
        try:
            outcomes[slot] = run_ingest(_MeetingSource(rows, meeting), lake.config, lake.table("orders"))
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted below
            outcomes[slot] = exc

    racers = [threading.Thread(target=race, args=(slot,)) for slot in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    refused = [o for o in outcomes if isinstance(o, ConcurrentRunError)]
    landed = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(refused) == 1 and len(landed) == 1, outcomes
    assert "another run of memory://same-source committed" in str(refused[0])
    assert landed[0].rows_written == 1_500
    assert_rows(lake, "orders", rows)
    assert committed_state(lake, "orders", "memory://same-source")["watermark"] == 2_000
    # The refused run removed the files it had written.
    table = lake.load().load_table(lake.table("orders"))
    referenced = {task.file.file_path.split("://", 1)[1] for task in table.scan().plan_files()}
    assert stored_data_files(lake, table.location()) == referenced


class _MeetingFirstRun(TableSource):
    """A first run that stages the table's creation, then waits until the other first run has too."""

    def __init__(self, rows: pa.Table, identity: str, meeting: threading.Barrier) -> None:
        super().__init__(rows, identity=identity)
        self.meeting = meeting

    def open(self, state, bounds):
        stream = super().open(state, bounds)
        return _MeetingStream(self, stream.rows, stream.previous)


class _MeetingStream(_Stream):
    def __iter__(self):
        # The first batch arrives after the engine staged the creation; meet before writing it.
        for number, batch in enumerate(super().__iter__()):
            if number == 0:
                self.source.meeting.wait(timeout=60)
            yield batch


def test_two_first_runs_racing_to_create_the_table_both_land(lake):
    """The loser of the creation race (REST: HTTP 409 "table already exists") commits its files to the
    winner's table."""
    meeting = threading.Barrier(2)
    parts = [people(range(0, 1_000)), people(range(1_000, 1_800), version=2)]
    outcomes: list[object] = [None, None]

    def race(slot: int) -> None:
        try:
            source = _MeetingFirstRun(parts[slot], f"memory://first-{slot}", meeting)
            outcomes[slot] = run_ingest(source, lake.config, lake.table("people"))
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted below
            outcomes[slot] = exc

    racers = [threading.Thread(target=race, args=(slot,)) for slot in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    assert [o.rows_written for o in outcomes] == [1_000, 800], outcomes
    assert_rows(lake, "people", pa.concat_tables(parts))
    table = lake.load().load_table(lake.table("people"))
    sources = sorted(s.summary[SOURCE_KEY] for s in table.snapshots())
    assert sources == ["memory://first-0", "memory://first-1"]


class _StaleOnce:
    """A catalog whose first load returns an outdated table: exactly what a lost race looks like."""

    def __init__(self, catalog, stale):
        self.catalog = catalog
        self.stale = stale

    def load_table(self, identifier):
        stale, self.stale = self.stale, None
        return stale or self.catalog.load_table(identifier)


def test_a_lost_commit_race_is_recognised_and_retried(lake):
    """Each catalog reports a lost race its own way (REST: HTTP 409, CommitFailedException); the commit
    retries on the new head with the files it already wrote."""
    from dativo_provider.iceberg.commit import CommitPlan, commit
    from dativo_provider.iceberg.races import disable_builtin_retries, is_lost_race
    from dativo_provider.iceberg.writer import DataFileWriter

    name = lake.table("t")
    run_ingest(TableSource(people([1, 2]), identity="memory://a"), lake.config, name)
    catalog = lake.load()
    stale = catalog.load_table(name)
    run_ingest(TableSource(people([3]), identity="memory://b"), lake.config, name)

    writer = DataFileWriter(stale, [], 1 << 20)
    writer.write(people([4, 5]).cast(writer.arrow_schema))
    plan = CommitPlan(identifier=name, mode="append", branch="main", new_files=writer.close(), properties={},
                      source_identity="memory://c", expected_state_snapshot=None, track_state=False)
    outcome = commit(_StaleOnce(catalog, stale), plan, max_attempts=3)
    assert outcome.attempts == 2
    assert read_back(lake, "t")["id"].to_pylist() == [1, 2, 3, 4, 5]

    # What the catalog itself says when a stale commit reaches it, without our retries.
    with pytest.raises(Exception) as lost:  # noqa: PT011 - each catalog raises its own type; asserted below
        disable_builtin_retries(stale).append(people([6]).cast(stale.schema().as_arrow()))
    assert is_lost_race(lost.value), repr(lost.value)
    if lake.kind == "rest":
        from pyiceberg.exceptions import CommitFailedException

        assert isinstance(lost.value, CommitFailedException)
        assert 'branch "main" has changed' in str(lost.value)


# --- storage credentials --------------------------------------------------------------------------


def test_a_rest_catalog_that_vends_no_credentials_needs_storage_keys_in_the_connection(rest_lake,
                                                                                     monkeypatch):
    """SeaweedFS's catalog authenticates the client (``credential``) but vends no storage credentials:
    neither ``/v1/config`` nor ``loadTable`` carries ``s3.*`` keys, so the connection must give them."""
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    keys = ("s3.access-key-id", "s3.secret-access-key")
    full = CatalogConfig("with_keys", rest_lake.catalog_properties())
    without = CatalogConfig("without_keys", {k: v for k, v in full.properties.items() if k not in keys})
    namespace = f"t_{uuid.uuid4().hex[:10]}"
    run_ingest(TableSource(people(range(10))), full, f"{namespace}.people")

    loaded = without.load().load_table(f"{namespace}.people")
    assert not set(keys) & set(loaded.io.properties), "the catalog vended storage credentials after all"
    with pytest.raises(ConfigError, match="access denied.*give s3.access-key-id and s3.secret-access-key"):
        run_ingest(TableSource(people(range(10, 20))), without, f"{namespace}.people")
    with pytest.raises(ConfigError, match="access denied"):
        run_ingest(TableSource(people(range(10))), without, f"{namespace}.other")
    assert not full.load().table_exists(f"{namespace}.other")
    assert full.load().load_table(f"{namespace}.people").scan().to_arrow().num_rows == 10
