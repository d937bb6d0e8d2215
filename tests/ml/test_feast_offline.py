"""Feast's ``get_historical_features`` over Iceberg tables (SQLite catalog, local warehouse) equals our
training set row for row: same TTL nulls, no leakage, the pinned snapshots rather than main's head, and
the table as its snapshot says after merges and deletes (not the data files lying in the warehouse)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.feast_offline import snapshots_of_training_set
from dativo_provider.ml.feast_registry import (
    FeastFeatureTable,
    apply_features,
    definitions_for,
    feast_definitions,
    feature_store,
)
from dativo_provider.ml.training_set import FeatureTable
from tests.memory_source import TableSource
from tests.ml.test_training_set import (
    CONTRACT,
    ORDER_SCHEMA,
    at,
    build,
    later_commits,
    load,
    read_output,
    sample,
)

FEATURES = ["customer_features:orders_30d", "customer_features:spend_30d",
            "customer_features:days_since_last_order", "segments:segment"]
TS_US = pa.timestamp("us", tz="UTC")


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def feast_tables() -> list[FeastFeatureTable]:
    return [FeastFeatureTable.from_contract(str(CONTRACT), table="ml.customer_features"),
            FeastFeatureTable(FeatureTable("ml.segments", ("customer_id",), "segment_ts", ("segment",)))]


def store_for(catalog, tmp_path: Path, snapshots=None):
    store = feature_store(project="churn", registry=str(tmp_path / "registry.db"),
                          online_store=str(tmp_path / "online.db"), catalog=catalog, snapshots=snapshots)
    apply_features(store, definitions_for(catalog, feast_tables()))
    return store


def label_rows(catalog, snapshot_id: int | None = None):
    """The label table as Feast takes entity rows: a pandas DataFrame (the event time is its one
    timestamp column, which Feast infers)."""
    return catalog.load().load_table("ml.labels").scan(snapshot_id=snapshot_id).to_pandas()


def rows_of(table: pa.Table) -> list[dict]:
    """Rows in key order, the event time at microseconds (pandas carried it at nanoseconds)."""
    table = table.set_column(table.schema.get_field_index("event_ts"), "event_ts",
                             table.column("event_ts").cast(TS_US))
    return sorted(table.to_pylist(), key=lambda r: (r["customer_id"], r["event_ts"]))


def retrieve(store, labels) -> pa.Table:
    return store.get_historical_features(entity_df=labels, features=FEATURES).to_arrow()


def test_historical_features_equal_the_training_set_row_for_row(catalog, tmp_path):
    data = sample()
    load(catalog, data)
    result = build(catalog, tmp_path)
    store = store_for(catalog, tmp_path, snapshots_of_training_set(result.manifest))
    got = retrieve(store, label_rows(catalog, result.manifest.inputs[0].snapshot_id))
    assert got.column_names == list(result.manifest.columns)
    expected = read_output(catalog, result)
    assert rows_of(got) == rows_of(pa.Table.from_pylist(expected)) and len(expected) == 65
    edge = {r["event_ts"]: r for r in rows_of(got) if r["customer_id"] == 99}
    assert edge[at(9.99)]["orders_30d"] == 2  # a label before the update gets the old value
    assert edge[at(10)]["orders_30d"] == 5  # feature time equal to event time is not the future
    assert edge[at(13)]["orders_30d"] is None  # the newest row is 3 days old, the TTL 2 days
    assert edge[at(4)]["orders_30d"] is None  # before any feature row
    assert sum(r["orders_30d"] is None for r in rows_of(got)) > 5
    assert got.schema.field("orders_30d").type == pa.int64()  # nulls did not turn integers into floats


def test_pinned_snapshots_ignore_later_commits_and_main_follows_them(catalog, tmp_path):
    data = sample()
    load(catalog, data)
    pinned_set = build(catalog, tmp_path)
    labels = label_rows(catalog, pinned_set.manifest.inputs[0].snapshot_id)
    later_commits(catalog, data)
    # A later feature row inside the TTL of customer 99's day-13 label (null in the pinned set).
    update = {"customer_id": 99, "feature_ts": at(12), "orders_30d": 7, "spend_30d": 70.0,
              "days_since_last_order": 0}
    run_ingest(TableSource(pa.Table.from_pylist([update], ORDER_SCHEMA), identity="memory://late"), catalog,
               "ml.customer_features", WriteOptions(mode="append"))
    pinned = store_for(catalog, tmp_path / "pinned", snapshots_of_training_set(pinned_set.manifest))
    pinned_rows = rows_of(retrieve(pinned, labels))
    assert pinned_rows == rows_of(pa.Table.from_pylist(read_output(catalog, pinned_set)))
    # The same pin carried by the views' sources (in the registry) instead of the store's config.
    (tmp_path / "sources").mkdir()
    by_source = feature_store(project="churn", registry=str(tmp_path / "sources" / "registry.db"),
                              online_store=str(tmp_path / "sources" / "online.db"), catalog=catalog)
    iceberg = catalog.load()
    pin = pinned_set.manifest.inputs[1].ref
    apply_features(by_source, [feast_definitions(spec, iceberg.load_table(spec.feature_table.table).schema(),
                                                 ref=pin) for spec in feast_tables()])
    assert rows_of(retrieve(by_source, labels)) == pinned_rows
    head_set = build(catalog, tmp_path, run_id="run-2", output="ml.churn_head")
    head = store_for(catalog, tmp_path / "head")
    head_rows = rows_of(retrieve(head, label_rows(catalog)))
    assert head_rows == rows_of(pa.Table.from_pylist(read_output(catalog, head_set)))
    assert (len(pinned_rows), len(head_rows)) == (65, 68)  # later_commits added three labels
    day_13 = [{r["customer_id"]: r["orders_30d"] for r in rows if r["event_ts"] == at(13)} for rows in
              (pinned_rows, head_rows)]
    assert (day_13[0][99], day_13[1][99]) == (None, 7)


def test_merge_and_delete_read_as_the_snapshot_says_not_as_the_data_files(catalog, tmp_path):
    data = sample()
    load(catalog, data)
    changed = [{**o, "orders_30d": o["orders_30d"] + 1000} for o in data["orders"]
               if o["customer_id"] in (3, 4)]
    run_ingest(TableSource(pa.Table.from_pylist(changed, ORDER_SCHEMA), identity="memory://merge"), catalog,
               "ml.customer_features", WriteOptions(mode="merge", merge_keys=["customer_id", "feature_ts"]))
    features = catalog.load().load_table("ml.customer_features")
    features.delete("customer_id == 7")
    features = catalog.load().load_table("ml.customer_features")
    on_disk = sum(pq.read_metadata(p).num_rows for p in Path(features.location().removeprefix("file://"))
                  .rglob("*.parquet"))
    in_snapshot = features.scan().to_arrow().num_rows
    assert in_snapshot == len(data["orders"]) - 4 and on_disk > in_snapshot  # replaced files still lie there
    result = build(catalog, tmp_path)
    got = rows_of(retrieve(store_for(catalog, tmp_path), label_rows(catalog)))
    assert got == rows_of(pa.Table.from_pylist(read_output(catalog, result)))
    merged = [r["orders_30d"] for r in got if r["customer_id"] in (3, 4) and r["orders_30d"] is not None]
    assert merged and all(value >= 1000 for value in merged)
    assert all(r["orders_30d"] is None for r in got if r["customer_id"] == 7)


def test_position_delete_files_are_applied(catalog, tmp_path):
    """A merge-on-read writer (Spark, Flink) leaves rows in data files and lists them in delete files:
    the rows are not in the table, and Feast must not see them."""
    data = sample()
    load(catalog, data)
    table = catalog.load().load_table("ml.customer_features")
    data_file = next(iter(table.scan().plan_files())).file
    rows = pq.read_table(data_file.file_path.removeprefix("file://"))
    gone = [i for i, c in enumerate(rows.column("customer_id").to_pylist()) if c == 99]
    assert gone, "customer 99's feature rows are in the first data file"
    add_position_deletes(table, data_file.file_path, gone, tmp_path / "deletes.parquet")
    table = catalog.load().load_table("ml.customer_features")
    assert [len(task.delete_files) for task in table.scan().plan_files() if task.file.file_path ==
            data_file.file_path] == [1]  # the data file is unchanged; a delete file now applies to it
    assert table.scan().to_arrow().num_rows == len(data["orders"]) - len(gone)
    result = build(catalog, tmp_path)
    got = rows_of(retrieve(store_for(catalog, tmp_path), label_rows(catalog)))
    assert got == rows_of(pa.Table.from_pylist(read_output(catalog, result)))
    assert [r["orders_30d"] for r in got if r["customer_id"] == 99] == [None] * 4


def test_two_rows_for_one_entity_and_time_are_refused_like_the_training_set(catalog, tmp_path):
    data = sample()
    data["orders"].append({**data["orders"][0], "orders_30d": 77})
    load(catalog, data)
    store = store_for(catalog, tmp_path)
    with pytest.raises(SourceError, match="holds 2 rows for"):
        retrieve(store, label_rows(catalog))


def test_a_missing_ref_is_named(catalog, tmp_path):
    load(catalog, sample())
    store = store_for(catalog, tmp_path, {"ml.segments": "no-such-tag"})
    with pytest.raises(ConfigError, match="ml.segments has no tag or branch 'no-such-tag'"):
        retrieve(store, label_rows(catalog))


def test_materialize_reads_iceberg_through_the_offline_store(catalog, tmp_path):
    """``feast materialize`` pulls the latest row per entity through this offline store."""
    data = sample()
    load(catalog, data)
    store = store_for(catalog, tmp_path)
    store.materialize(at(0) - dt.timedelta(days=1), at(40), feature_views=["segments"])
    online = store.get_online_features(features=["segments:segment"],
                                       entity_rows=[{"customer_id": 1}, {"customer_id": 2}]).to_dict()
    newest = {c: max((s for s in data["segments"] if s["customer_id"] == c), key=lambda s: s["segment_ts"])
              for c in (1, 2)}
    assert online["segment"] == [newest[1]["segment"], newest[2]["segment"]]


def add_position_deletes(table, data_file_path: str, positions: list[int], where: Path) -> None:
    """Commit a position-delete file for ``positions`` of one data file, as a merge-on-read writer does
    (pyiceberg 0.12 writes no delete files itself, but reads them)."""
    from pyiceberg.manifest import (
        DataFile,
        DataFileContent,
        FileFormat,
        ManifestContent,
        ManifestEntry,
        ManifestEntryStatus,
        ManifestWriterV2,
    )
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _FastAppendFiles
    from pyiceberg.typedef import Record

    pq.write_table(pa.table({"file_path": [data_file_path] * len(positions),
                             "pos": pa.array(positions, pa.int64())}), where)

    class DeleteManifestWriter(ManifestWriterV2):
        def content(self) -> ManifestContent:
            return ManifestContent.DELETES

        @property
        def _meta(self) -> dict[str, str]:
            return {**super()._meta, "content": "deletes"}

    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES, file_path=f"file://{where}", file_format=FileFormat.PARQUET,
        partition=Record(), record_count=len(positions), file_size_in_bytes=where.stat().st_size)
    delete_file.spec_id = table.spec().spec_id

    class AddDeletes(_FastAppendFiles):
        def _manifests(self):
            writer = DeleteManifestWriter(self._transaction.table_metadata.spec(), self.schema(),
                                          self.new_manifest_output(), self._snapshot_id, self._compression)
            with writer:
                writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED,
                                                   snapshot_id=self._snapshot_id, data_file=delete_file))
            return [writer.to_manifest_file(), *super()._manifests()]

    with table.transaction() as transaction:
        AddDeletes(operation=Operation.DELETE, transaction=transaction, io=table.io).commit()
