"""Table maintenance on every catalog kind: compaction, snapshot expiry and orphan-file removal keep every
row (main and a tag read the same before and after) and the ingest state, and the files they drop are
really gone from storage — for the REST catalog, listed in its S3 bucket with boto3."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dativo_provider.iceberg.maintenance import maintain_table
from dativo_provider.iceberg.state import CARRIED_FROM_KEY, read_state
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from tests.catalogs.storage import referenced_files, s3_client, stored_files, table_location
from tests.memory_source import TableSource

ORDERS = "memory://orders"
RUNS = 8
OPTIONS = WriteOptions(partition_by=("region",), sort_by=("id",))


def rows(first: int, last: int) -> pa.Table:
    ids = pa.array(range(first, last), pa.int64())
    return pa.table({"id": ids, "seq": ids, "region": [("eu", "us")[i % 2] for i in range(first, last)],
                     "note": [f"order {i}" for i in range(first, last)]})


def history(lake) -> list[int]:
    """Eight incremental runs (two small files each, one per region); tag ``v1`` on the third."""
    snapshots = []
    for run in range(RUNS):
        source = TableSource(rows(0, 40 * (run + 1)), identity=ORDERS, cursor="seq")
        snapshots.append(run_ingest(source, lake.config, lake.table("orders"), OPTIONS).snapshot_id)
    table = lake.load().load_table(lake.table("orders"))
    table.manage_snapshots().create_tag(snapshots[2], "v1").commit()
    return snapshots


def put_stray(lake, name: str) -> str:
    """A Parquet file under the table's data folder that no snapshot names (a killed writer's)."""
    buffer = io.BytesIO()
    pq.write_table(rows(9000, 9010), buffer)
    location = f"{table_location(lake, 'orders').rstrip('/')}/data/{name}"
    if location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        s3_client(lake).put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    else:
        Path(location.removeprefix("file://")).write_bytes(buffer.getvalue())
    return location


def read(table, snapshot_id: int | None = None) -> pa.Table:
    return table.scan(snapshot_id=snapshot_id).to_arrow().sort_by("id")


def test_compaction_expiry_and_orphan_removal_keep_every_row_and_delete_the_files(lake):
    snapshots = history(lake)
    table = lake.load().load_table(lake.table("orders"))
    main, tagged = read(table), read(table, snapshots[2])
    assert len(list(table.scan().plan_files())) == 2 * RUNS
    before = stored_files(lake, "orders")
    stray = put_stray(lake, "killed-writer.parquet")

    result = maintain_table(lake.config, lake.table("orders"), compact=True, expire_older_than=None,
                            retain_last=1, orphan_safety_window=timedelta(hours=1),
                            now=datetime.now(timezone.utc) + timedelta(hours=2))

    table = lake.load().load_table(lake.table("orders"))
    assert (result.files_compacted, result.files_written, result.partitions_compacted) == (2 * RUNS, 2, 2)
    assert read(table).equals(main) and read(table, table.metadata.refs["v1"].snapshot_id).equals(tagged)
    # Left: v1's snapshot, the compaction and, on top of it, the source state expiry would have cut off.
    carrier = table.current_snapshot()
    assert carrier.parent_snapshot_id == result.compaction_snapshot_id and result.states_carried == [ORDERS]
    assert carrier.summary.get(CARRIED_FROM_KEY) == str(snapshots[-1])
    assert {s.snapshot_id for s in table.snapshots()} == {snapshots[2], result.compaction_snapshot_id,
                                                          carrier.snapshot_id}
    assert result.snapshots_expired == RUNS - 1
    assert read_state(table, ORDERS).state["watermark"] == 40 * RUNS - 1
    # Storage holds exactly what the remaining snapshots need: the stray, the expired snapshots' lists and
    # manifests, the compacted files no snapshot names any more and old metadata files are gone.
    listed = stored_files(lake, "orders")
    live, named = referenced_files(table)
    assert listed == live and stray not in listed
    gone = before - listed
    assert sum(f.endswith(".parquet") for f in gone) == 2 * RUNS - 6  # v1 keeps its six files
    assert result.files_removed["data"] == 2 * RUNS - 6 + 1  # and the stray
    assert result.files_removed["manifest_list"] == RUNS - 1
    # Metadata files stay while the metadata log names them (write.metadata.previous-versions-max).
    assert sum(1 for f in listed if f.endswith(".metadata.json")) == 1 + len(table.metadata.metadata_log)
    for location in live:  # every file a snapshot names can be read
        if location.endswith(".parquet"):
            assert table.io.new_input(location).open().read(4) == b"PAR1"
    # The next incremental run reads only the new rows: the state survived.
    after = run_ingest(TableSource(rows(0, 40 * RUNS + 10), identity=ORDERS, cursor="seq"), lake.config,
                       lake.table("orders"), OPTIONS)
    assert after.rows_written == 10


def test_a_young_orphan_stays_until_the_safety_window_passes(lake):
    history(lake)
    stray = put_stray(lake, "in-flight-writer.parquet")

    young = maintain_table(lake.config, lake.table("orders"), expire_snapshots=False)
    assert young.orphans_kept_younger_than_window == 1 and stray in stored_files(lake, "orders")

    later = maintain_table(lake.config, lake.table("orders"), expire_snapshots=False,
                           now=datetime.now(timezone.utc) + timedelta(days=3, minutes=1))
    assert later.files_removed["data"] == 1 and stray not in stored_files(lake, "orders")
    assert later.orphans_kept_younger_than_window == 0


def test_metadata_files_the_log_no_longer_names_are_removed_at_once(lake):
    """Old metadata files are dead by their version number (``00012-<uuid>.metadata.json`` from the SQL
    catalogs, ``v12.metadata.json`` from the REST catalog): removed whatever the safety window."""
    run_ingest(TableSource(rows(0, 10), identity=ORDERS, cursor="seq"), lake.config, lake.table("orders"),
               WriteOptions(table_properties={"write.metadata.previous-versions-max": "2"}))
    for run in range(2, 7):
        source = TableSource(rows(0, 10 * run), identity=ORDERS, cursor="seq")
        run_ingest(source, lake.config, lake.table("orders"))
    table = lake.load().load_table(lake.table("orders"))
    old = {f for f in stored_files(lake, "orders") if f.endswith(".metadata.json")}
    # Six commits; on a REST catalog the first run creates the table in a commit of its own (docs/catalogs.md).
    assert len(old) == (7 if lake.kind == "rest" else 6) and len(table.metadata.metadata_log) == 2

    result = maintain_table(lake.config, lake.table("orders"), expire_snapshots=False)

    table = lake.load().load_table(lake.table("orders"))
    left = {f for f in stored_files(lake, "orders") if f.endswith(".metadata.json")}
    assert left == {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
    assert result.files_removed["metadata"] == len(old) - 3 and result.orphans_kept_younger_than_window == 0
    assert table.scan().to_arrow().num_rows == 60
