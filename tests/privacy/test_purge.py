"""purge_table on real tables (embedded catalog, and S3 on moto): after it, no snapshot, file, manifest
bound or metadata file holds the erased subject, other rows and ingest state are untouched, and
concurrent writers keep their files."""

from __future__ import annotations

import json
import struct
import threading
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import EqualTo

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.iceberg.state import read_state
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.iceberg import files as files_module
from dativo_provider.privacy.erase import delete_rows
from dativo_provider.privacy.purge import PurgeIncompleteError, RefsPinErasedDataError, purge_table
from tests.memory_source import TableSource
from tests.privacy.test_erase import (
    BASE,
    SUBJECT,
    TABLE,
    load_in_batches,
    others_checksum,
    people,
    read_all,
    standard_batches,
    subject_rows,
)

SOURCES = ("memory://customers", "memory://signups")


def build_lake(catalog: CatalogConfig) -> dict:
    """Three loads of one source, one of another; tag ``v1`` on the first, branch ``dev`` on the second."""
    snapshots = load_in_batches(catalog, standard_batches())
    snapshots += load_in_batches(catalog, [[BASE + 5000 + i for i in range(100)]], source=SOURCES[1])
    table = catalog.load().load_table(TABLE)
    table.manage_snapshots().create_tag(snapshots[0], "v1").create_branch(snapshots[1], "dev").commit()
    table = catalog.load().load_table(TABLE)
    return {
        "snapshots": snapshots,
        "rows": read_all(table),
        "states": {s: read_state(table, s) for s in SOURCES},
    }


SUBJECT_FILTER = EqualTo("id", SUBJECT)


def erase(catalog: CatalogConfig) -> int:
    """Delete the subject on every branch (main and ``dev``); main's erasure snapshot."""
    deletion = delete_rows(catalog, TABLE, SUBJECT_FILTER, request_id="dsr-1")
    assert deletion.rows_deleted == 4 and set(deletion.branches) == {"main", "dev"}
    return deletion.snapshot_id


def erase_and_subject(catalog: CatalogConfig) -> dict:
    erase(catalog)
    return {"subject": SUBJECT_FILTER, "request_id": "dsr-1"}


def subject_in_any_snapshot(table) -> int:
    return sum(subject_rows(table, s.snapshot_id) for s in table.snapshots())


def traces(fs: pafs.FileSystem, root: str, subject: int = SUBJECT) -> list[str]:
    """Decode every file under ``root`` (Parquet, Avro, metadata JSON) and name those holding the subject."""
    email = f"person{subject}@example.com"
    packed = struct.pack("<q", subject)
    found = []
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        if info.path.endswith(".parquet"):
            rows = pq.read_table(info.path, filesystem=fs)
            hit = subject in rows["id"].to_pylist() or email in rows["email"].to_pylist()
        elif info.path.endswith(".avro"):
            hit = any(v == subject or v == packed or (isinstance(v, str) and email in v)
                      for v in _avro_values(fs, info.path))
        elif info.path.endswith(".metadata.json"):
            with fs.open_input_stream(info.path) as f:
                text = json.dumps(json.loads(f.read()))
            hit = str(subject) in text or email in text
        else:
            raise AssertionError(f"unexpected file {info.path}")
        if hit:
            found.append(info.path)
    return found


def _avro_values(fs: pafs.FileSystem, path: str):
    """Every leaf value of every record of an Avro file (manifest or manifest list), decoded."""
    from pyiceberg.avro.file import AvroFile
    from pyiceberg.io.pyarrow import PyArrowFile

    with AvroFile(PyArrowFile(location=path, path=path, fs=fs)) as reader:
        for record in reader:
            yield from _leaves(record)


def _leaves(value):
    from pyiceberg.typedef import Record

    if isinstance(value, Record):
        for i in range(len(value)):
            yield from _leaves(value[i])
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(k)
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def table_root(table) -> tuple[pafs.FileSystem, str]:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = PyArrowFileIO(dict(table.io.properties))
    scheme, netloc, path = io.parse_location(table.metadata.location)
    return io.fs_by_scheme(scheme, netloc), path


def path_of(location: str) -> str:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    return PyArrowFileIO.parse_location(location)[2]


def metadata_files(fs, root) -> set[str]:
    return {i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
            if i.path.endswith(".metadata.json")}


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def test_the_delete_alone_leaves_the_subject_everywhere(catalog):
    """The trap the purge exists for: time travel, old files and manifest bounds still hold the subject."""
    build_lake(catalog)
    erase(catalog)
    table = catalog.load().load_table(TABLE)
    assert subject_rows(table) == 0
    assert subject_in_any_snapshot(table) > 0
    found = traces(*table_root(table))
    assert any(p.endswith(".parquet") for p in found)
    assert any(p.endswith(".avro") for p in found)  # bounds of the deleted files, in E's own manifests


def test_purge_leaves_no_trace_and_every_other_row(catalog):
    lake = build_lake(catalog)
    erased = erase(catalog)

    result = purge_table(catalog, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1", refs_policy="repoint")

    table = catalog.load().load_table(TABLE)
    fs, root = table_root(table)
    assert subject_in_any_snapshot(table) == 0
    assert traces(fs, root) == []
    assert others_checksum(read_all(table), {SUBJECT}) == others_checksum(lake["rows"], {SUBJECT})
    for snapshot in table.snapshots():  # every remaining snapshot is readable (no file missing)
        read_all(table, snapshot.snapshot_id)
    referenced = [table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)]
    assert metadata_files(fs, root) == {path_of(p) for p in referenced}
    assert len(table.metadata.metadata_log) <= 2
    assert result.snapshots_expired >= 5 and result.files_removed > 0 and result.metadata_files_removed > 0
    assert result.kept_files_younger_than_window == 0


def test_refs_policy_fail_changes_nothing(catalog):
    lake = build_lake(catalog)
    erased = erase(catalog)
    before = catalog.load().load_table(TABLE)
    fs, root = table_root(before)
    listing = {i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))}

    with pytest.raises(RefsPinErasedDataError) as error:
        purge_table(catalog, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1")

    assert {r["ref"] for r in error.value.refs} == {"v1"}  # the delete cleaned branch dev itself
    assert "refs_policy" in str(error.value)
    after = catalog.load().load_table(TABLE)
    assert after.metadata_location == before.metadata_location
    assert {i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))} == listing
    assert after.metadata.refs["v1"].snapshot_id == lake["snapshots"][0]


def test_refs_policy_remove_drops_and_repoint_moves_tags_and_branches_keep_their_rows(catalog, tmp_path):
    lake = build_lake(catalog)
    dev_before = read_all(catalog.load().load_table(TABLE), lake["snapshots"][1])
    erase(catalog)
    removed = purge_table(catalog, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1", refs_policy="remove")
    table = catalog.load().load_table(TABLE)
    assert set(table.metadata.refs) == {"main", "dev"}
    assert [tuple(c.values()) for c in removed.refs_changed] == [("v1", "tag", lake["snapshots"][0], None)]
    dev_after = read_all(table, table.metadata.refs["dev"].snapshot_id)
    assert subject_rows(table, table.metadata.refs["dev"].snapshot_id) == 0
    assert others_checksum(dev_after, {SUBJECT}) == others_checksum(dev_before, {SUBJECT})

    other = embedded_catalog(tmp_path / "other")
    lake = build_lake(other)
    repointed = purge_table(other, TABLE, **erase_and_subject(other), refs_policy="repoint")
    table = other.load().load_table(TABLE)
    head = table.current_snapshot().snapshot_id
    assert table.metadata.refs["v1"].snapshot_id == head
    assert table.metadata.refs["dev"].snapshot_id != head  # its own head, cleaned, not main's
    assert {r["ref"]: r["to_snapshot"] for r in repointed.refs_changed} == {"v1": head}
    assert subject_rows(table, table.metadata.refs["v1"].snapshot_id) == 0


def test_every_source_keeps_its_state(catalog):
    lake = build_lake(catalog)
    result = purge_table(catalog, TABLE, **erase_and_subject(catalog), refs_policy="remove")

    table = catalog.load().load_table(TABLE)
    assert sorted(result.state_carried) == sorted(SOURCES)
    for source in SOURCES:
        assert read_state(table, source).state == lake["states"][source].state
    # the next incremental run continues from the watermark: nothing is read twice
    rows = pa.concat_tables([people(ids) for ids in standard_batches()])
    rows = rows.set_column(2, "seq", pa.array(range(rows.num_rows), pa.int64()))
    again = run_ingest(TableSource(rows, identity=SOURCES[0], cursor="seq"), catalog, TABLE)
    assert again.rows_written == 0


def test_a_commit_landing_between_listing_and_deleting_keeps_its_files(catalog, monkeypatch):
    """A writer's files exist (uncommitted) when the purge lists; it commits before the purge deletes.
    With no safety window at all, only the reload after listing protects them."""
    build_lake(catalog)
    erased = erase(catalog)
    table = catalog.load().load_table(TABLE)
    late = people([BASE + 9000 + i for i in range(50)])
    from dativo_provider.iceberg.writer import DataFileWriter

    writer = DataFileWriter(table, [], 64 * 1024 * 1024)
    writer.write(late.cast(writer.arrow_schema))
    files = writer.close()
    listing = files_module.list_files

    def list_then_commit(fs, root):
        listed = listing(fs, root)
        current = catalog.load().load_table(TABLE)
        with current.transaction() as tx, tx.update_snapshot().fast_append() as append:
            for data_file in files:
                append.append_data_file(data_file)
        return listed

    monkeypatch.setattr(files_module, "list_files", list_then_commit)
    result = purge_table(catalog, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1", refs_policy="remove",
                         safety_window=timedelta(0))

    table = catalog.load().load_table(TABLE)
    ids = set(read_all(table)["id"].to_pylist())
    assert {BASE + 9000 + i for i in range(50)} <= ids
    assert result.kept_files_younger_than_window == 0


def test_an_ingest_running_during_the_purge_loses_no_rows(catalog):
    """A real thread. Its files may be written before the listing and committed after the reload, so
    here (unlike above) only the safety window can protect them: it is left at its default."""
    build_lake(catalog)
    erased = erase(catalog)
    expected = read_all(catalog.load().load_table(TABLE)).num_rows
    live = people([BASE + 20_000 + i for i in range(2000)])
    errors: list[BaseException] = []
    done = threading.Event()

    def ingest():
        try:
            for upper in range(200, 2001, 200):  # ten incremental runs of a live source
                source = TableSource(live.slice(0, upper), identity="memory://live", cursor="id")
                run_ingest(source, catalog, TABLE)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=ingest)
    worker.start()
    purge_table(catalog, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1", refs_policy="remove")
    worker.join(timeout=120)
    assert done.is_set() and not errors, errors

    table = catalog.load().load_table(TABLE)
    assert read_all(table).num_rows == expected + 2000  # every file the ingest committed is still there
    assert subject_in_any_snapshot(table) == 0


def test_young_unknown_files_are_kept_until_the_window_passes(catalog, tmp_path):
    build_lake(catalog)
    erased = erase(catalog)
    table = catalog.load().load_table(TABLE)
    fs, root = table_root(table)
    stray = f"{root}/data/in-flight-writer.parquet"
    pq.write_table(people([BASE + 7]), stray, filesystem=fs)

    young = purge_table(catalog, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1", refs_policy="remove")
    assert young.kept_files_younger_than_window == 1
    assert fs.get_file_info(stray).type == pafs.FileType.File

    other = embedded_catalog(tmp_path / "other")
    build_lake(other)
    erased = erase(other)
    fs, root = table_root(other.load().load_table(TABLE))
    stray = f"{root}/data/abandoned-writer.parquet"
    pq.write_table(people([BASE + 7]), stray, filesystem=fs)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    old = purge_table(other, TABLE, subject=SUBJECT_FILTER, request_id="dsr-1", refs_policy="remove", now=later)
    assert old.kept_files_younger_than_window == 0
    assert fs.get_file_info(stray).type == pafs.FileType.NotFound


def test_a_purge_before_the_delete_is_refused(catalog):
    build_lake(catalog)
    with pytest.raises(PurgeIncompleteError, match="main's head still holds"):
        purge_table(catalog, TABLE, subject=SUBJECT_FILTER, refs_policy="remove")
    with pytest.raises(ConfigError, match="refs_policy"):
        purge_table(catalog, TABLE, subject=SUBJECT_FILTER, refs_policy="keep")


def test_purge_on_s3(tmp_path):
    from tests.s3_server import moto_server

    with moto_server() as moto:
        moto.client("s3").create_bucket(Bucket="lake")
        catalog = CatalogConfig("s3lake", {
            "type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": "s3://lake/warehouse",
            "s3.endpoint": moto.url, "s3.access-key-id": moto.access_key_id,
            "s3.secret-access-key": moto.secret_access_key, "s3.region": moto.region,
        })
        lake = build_lake(catalog)
        result = purge_table(catalog, TABLE, **erase_and_subject(catalog), refs_policy="repoint")

        table = catalog.load().load_table(TABLE)
        fs, root = table_root(table)
        assert root.startswith("lake/warehouse/")
        assert subject_in_any_snapshot(table) == 0
        assert traces(fs, root) == []
        assert others_checksum(read_all(table), {SUBJECT}) == others_checksum(lake["rows"], {SUBJECT})
        assert len(metadata_files(fs, root)) == 1 + len(table.metadata.metadata_log)
        assert result.files_removed > 0 and result.bytes_removed > 0


def test_a_run_of_the_same_source_in_flight_during_the_purge_still_commits(tmp_path):
    """The purge re-commits a source's state under a new snapshot id; a run that started from the
    original state must not be refused as a concurrent run of the same source."""
    from pyiceberg.expressions import EqualTo

    from dativo_provider.iceberg.commit import CommitPlan, commit
    from dativo_provider.iceberg.state import read_state
    from dativo_provider.privacy.erase import delete_rows

    catalog = embedded_catalog(tmp_path / "lake")
    rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "seq": pa.array([1, 2, 3], pa.int64())})
    source = TableSource(rows, identity="memory://in-flight", cursor="seq")
    run_ingest(source, catalog, "lake.t")
    started_from = read_state(catalog.load().load_table("lake.t"), source.identity).snapshot_id
    deletion = delete_rows(catalog, "lake.t", EqualTo("id", 2), request_id="dsr-1")
    purge_table(catalog, "lake.t", subject=EqualTo("id", 2), request_id="dsr-1", safety_window=timedelta(0))
    carried = read_state(catalog.load().load_table("lake.t"), source.identity)
    assert carried.snapshot_id != started_from and carried.state["watermark"] == 3
    plan = CommitPlan(identifier="lake.t", mode="append", branch="main", new_files=[],
                      properties={"dativo.source": source.identity, "dativo.state": '{"watermark": 4}'},
                      source_identity=source.identity, expected_state_snapshot=started_from)
    assert commit(catalog.load(), plan, max_attempts=3).snapshot_id is not None
