"""The ingestion engine against a real SQLite-catalog Iceberg warehouse in a temp dir."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dativo_provider.exceptions import (
    ConfigError,
    ConcurrentRunError,
    SchemaDriftError,
    SourceError,
    UnsupportedTypeError,
)
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.commit import CommitPlan, commit
from dativo_provider.iceberg.state import SOURCE_KEY, STATE_KEY
from dativo_provider.ingest.engine import AuditDecision, AuditGate, AuditRejectedError, run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.base import ReadBounds
from tests.memory_source import TableSource


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def rows(n: int, start: int = 0, value: str = "v") -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "value": pa.array([f"{value}{i}" for i in ids]),
            "day": pa.array([dt.date(2024, 1, 1 + i % 5) for i in ids], pa.date32()),
        }
    )


def read(catalog, name="lake.t") -> pa.Table:
    return catalog.load().load_table(name).scan().to_arrow().sort_by("id")


def test_append_streams_many_batches_into_one_snapshot(catalog):
    result = run_ingest(TableSource(rows(10_000), batch_rows=700), catalog, "lake.t")
    table = catalog.load().load_table("lake.t")
    assert len(table.snapshots()) == 1
    assert read(catalog).equals(rows(10_000))
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (10_000, 10_000, 0)
    assert result.snapshot_id == table.current_snapshot().snapshot_id
    assert result.bytes_written == sum(f.file_size_in_bytes for f in _data_files(table))


def test_types_survive_exactly(catalog):
    source_rows = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "small": pa.array([-32768, None], pa.int16()),
            "price": pa.array([decimal.Decimal("12345678901234567890123456789.123456789"), None],
                              pa.decimal128(38, 9)),
            "ratio": pa.array([1.5, None], pa.float32()),
            "ok": pa.array([True, None]),
            "born": pa.array([dt.date(1970, 1, 1), None]),
            "at": pa.array([dt.time(23, 59, 59, 999999), None], pa.time64("us")),
            "local": pa.array([dt.datetime(2024, 2, 29, 12, 0, 0, 123456), None], pa.timestamp("us")),
            "instant": pa.array([dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=dt.timezone.utc), None],
                                pa.timestamp("us", tz="+02:00")),
            "uid": pa.array([uuid.UUID(int=7).bytes, None], pa.uuid()),
            "raw": pa.array([b"\x00\xff", None], pa.binary()),
            "tags": pa.array([[1, 2, None], None], pa.list_(pa.int32())),
            "doc": pa.array(['{"a": [1, "ü"]}', None]),
        }
    )
    run_ingest(TableSource(source_rows), catalog, "lake.t")
    back = read(catalog)
    for name in source_rows.column_names:
        assert back[name].to_pylist() == source_rows[name].to_pylist(), name
    assert back.schema.field("instant").type.tz == "UTC"


def test_unsupported_type_names_the_column(catalog):
    bad = pa.table({"id": pa.array([1], pa.int64()), "counter": pa.array([2**64 - 1], pa.uint64())})
    with pytest.raises(UnsupportedTypeError, match="'counter' is uint64"):
        run_ingest(TableSource(bad), catalog, "lake.t")


def test_hostile_column_names_round_trip(catalog):
    names = ['a "quoted" col', "semi;colon", "ünïcødé", "with space", "dot.ted"]
    table = pa.table({"id": pa.array([1, 2], pa.int64()), **{n: pa.array([n, None]) for n in names}})
    run_ingest(TableSource(table), catalog, "lake.t")
    assert read(catalog).equals(table)


def test_incremental_state_lives_in_the_snapshot_summary(catalog):
    source = TableSource(rows(100), cursor="id")
    first = run_ingest(source, catalog, "lake.t", run_id="run-1")
    summary = catalog.load().load_table("lake.t").current_snapshot().summary
    assert summary[SOURCE_KEY] == "memory://rows"
    assert json.loads(summary[STATE_KEY]) == {"watermark": 99, "cursor": "id"}
    assert (first.watermark_before, first.watermark_after) == (None, 99)

    source.table = rows(150)
    second = run_ingest(source, catalog, "lake.t")
    assert (second.rows_written, second.watermark_before, second.watermark_after) == (50, 99, 149)

    rerun = run_ingest(source, catalog, "lake.t")
    assert rerun.rows_written == 0 and not rerun.committed
    assert len(catalog.load().load_table("lake.t").snapshots()) == 2
    assert read(catalog).equals(rows(150))


def test_rerunning_a_data_interval_never_duplicates(catalog):
    source = TableSource(rows(100), cursor="id")
    for upper in (39, 79, 39, 79, 99, 79):
        run_ingest(source, catalog, "lake.t", bounds=ReadBounds(upper=upper))
    assert read(catalog).equals(rows(100))


def test_failure_mid_stream_commits_nothing_and_leaves_no_files(catalog):
    run_ingest(TableSource(rows(10), cursor="id"), catalog, "lake.t")
    before = catalog.load().load_table("lake.t")
    failing = TableSource(rows(5000), cursor="id", batch_rows=500, fail_after_batches=4)
    with pytest.raises(ConnectionError):
        run_ingest(failing, catalog, "lake.t")
    after = catalog.load().load_table("lake.t")
    assert after.current_snapshot().snapshot_id == before.current_snapshot().snapshot_id
    data_dir = _table_dir(after) / "data"
    assert sorted(p.name for p in data_dir.rglob("*.parquet")) == sorted(
        f.file_path.rsplit("/", 1)[-1] for f in _data_files(after)
    )
    failing.fail_after_batches = None
    run_ingest(failing, catalog, "lake.t")
    assert read(catalog).equals(rows(5000))


def test_replace_is_a_full_refresh(catalog):
    run_ingest(TableSource(rows(100)), catalog, "lake.t")
    result = run_ingest(TableSource(rows(30, start=500)), catalog, "lake.t", WriteOptions(mode="replace"))
    assert read(catalog).equals(rows(30, start=500))
    assert (result.rows_deleted, result.files_removed) == (100, 1)
    assert len(catalog.load().load_table("lake.t").snapshots()) == 2


def test_overwrite_replaces_only_the_partitions_present(catalog):
    options = WriteOptions(mode="overwrite", partition_by=("day",))
    run_ingest(TableSource(rows(50)), catalog, "lake.t", options)
    new = rows(10, start=1000, value="new").filter(pc.equal(rows(10, start=1000)["day"], dt.date(2024, 1, 1)))
    run_ingest(TableSource(new), catalog, "lake.t", options)
    back = read(catalog)
    old = rows(50)
    expected = pa.concat_tables([old.filter(pc.not_equal(old["day"], dt.date(2024, 1, 1))), new]).sort_by("id")
    assert back.equals(expected)


@pytest.mark.parametrize("keys", [("id",), ("id", "day")])
def test_merge_replaces_matching_keys_in_one_snapshot(catalog, keys):
    options = WriteOptions(mode="merge", merge_keys=keys, target_file_size_mb=1)
    run_ingest(TableSource(rows(20_000), batch_rows=4000), catalog, "lake.t", options)
    changes = pa.concat_tables([rows(300, start=19_900, value="changed")])  # 100 updates, 200 inserts
    result = run_ingest(TableSource(changes, identity="memory://changes"), catalog, "lake.t", options)
    back = read(catalog)
    assert back.num_rows == 20_200
    assert back.slice(19_900).equals(changes)
    assert back.slice(0, 19_900).equals(rows(19_900))
    assert result.rows_deleted == 100
    table = catalog.load().load_table("lake.t")
    assert result.files_rewritten >= 1 and result.files_removed >= 1
    summary = table.current_snapshot().summary
    assert int(summary["added-data-files"]) == result.files_written + result.files_rewritten
    assert int(summary["deleted-data-files"]) == result.files_removed
    assert catalog.load().load_table("lake.t").current_snapshot().summary.operation.value == "overwrite"


def test_merge_refuses_keys_repeated_in_one_run(catalog):
    doubled = pa.concat_tables([rows(3), rows(1)])
    with pytest.raises(SourceError, match=r"merge key \{'id': 0\} appears 2 times"):
        run_ingest(TableSource(doubled), catalog, "lake.t", WriteOptions(mode="merge", merge_keys=("id",)))


def test_lookback_needs_a_deduplicating_mode(catalog):
    with pytest.raises(ConfigError, match="use mode 'merge'"):
        run_ingest(TableSource(rows(5), cursor="id", lookback=2), catalog, "lake.t")


def test_lookback_with_merge_catches_late_rows_without_duplicates(catalog):
    options = WriteOptions(mode="merge", merge_keys=("id",))
    source = TableSource(rows(100), cursor="id", lookback=10)
    run_ingest(source, catalog, "lake.t", options)
    late = rows(100, value="late").to_pylist()
    late[95]["value"] = "updated late"
    source.table = pa.Table.from_pylist(late, schema=rows(1).schema)
    result = run_ingest(source, catalog, "lake.t", options)
    assert result.rows_read == 10
    back = read(catalog)
    assert back.num_rows == 100 and back["value"][95].as_py() == "updated late"


def test_strict_policy_fails_with_a_readable_diff(catalog):
    run_ingest(TableSource(rows(5)), catalog, "lake.t")
    drifted = rows(5, start=5).append_column("extra", pa.array([1.0] * 5)).drop_columns(["value"])
    with pytest.raises(SchemaDriftError) as error:
        run_ingest(TableSource(drifted), catalog, "lake.t", WriteOptions(schema_policy="strict"))
    assert "+ extra double (new in source)" in str(error.value)
    assert "- value string (absent from source)" in str(error.value)
    assert read(catalog).num_rows == 5


def test_evolve_policy_adds_columns_and_widens_types(catalog):
    narrow = pa.table({"id": pa.array([1], pa.int64()), "n": pa.array([1], pa.int32())})
    run_ingest(TableSource(narrow), catalog, "lake.t")
    wide = pa.table({"id": pa.array([2], pa.int64()), "n": pa.array([2**40], pa.int64()), "new": ["x"]})
    result = run_ingest(TableSource(wide), catalog, "lake.t", WriteOptions(schema_policy="evolve"))
    assert read(catalog).to_pylist() == [{"id": 1, "n": 1, "new": None}, {"id": 2, "n": 2**40, "new": "x"}]
    assert set(result.schema_changes) == {"+ new string (new in source)", "~ n int -> long (wider in source)"}


def test_warn_policy_never_drops_a_new_columns_values(catalog):
    run_ingest(TableSource(rows(2)), catalog, "lake.t")
    drifted = rows(2, start=2).append_column("extra", pa.array([1, 2]))
    with pytest.raises(SchemaDriftError, match=r"\+ extra long \(new in source\): policy warn never changes"):
        run_ingest(TableSource(drifted), catalog, "lake.t", WriteOptions(schema_policy="warn"))
    assert read(catalog).column_names == ["id", "value", "day"]
    assert read(catalog).num_rows == 2


def test_warn_policy_writes_nulls_for_a_column_the_source_lost_and_reports_it(catalog):
    run_ingest(TableSource(rows(2)), catalog, "lake.t")
    result = run_ingest(TableSource(rows(2, start=2).drop_columns(["value"])), catalog, "lake.t",
                        WriteOptions(schema_policy="warn"))
    assert read(catalog).column("value").to_pylist()[2:] == [None, None]
    assert "- value string (absent from source)" in result.warnings[0]


def test_warn_policy_refuses_values_wider_than_the_column(catalog):
    run_ingest(TableSource(pa.table({"id": pa.array([1], pa.int32())})), catalog, "lake.t")
    with pytest.raises(SchemaDriftError, match="cannot widen"):
        run_ingest(TableSource(pa.table({"id": pa.array([2**40], pa.int64())})), catalog, "lake.t",
                   WriteOptions(schema_policy="warn"))


def test_partition_spec_sort_order_and_column_metrics(catalog):
    options = WriteOptions(
        partition_by=("bucket(4, id)", "day"),
        sort_by=("value desc",),
        column_properties={"value": {"metrics": "counts", "doc": "customer e-mail"}},
    )
    run_ingest(TableSource(rows(200)), catalog, "lake.t", options)
    table = catalog.load().load_table("lake.t")
    assert [str(f.transform) for f in table.spec().fields] == ["bucket[4]", "identity"]
    assert table.properties["write.metadata.metrics.column.value"] == "counts"
    assert table.schema().find_field("value").doc == "customer e-mail"
    value_id = table.schema().find_field("value").field_id
    for data_file in _data_files(table):
        assert value_id not in (data_file.lower_bounds or {})
        values = pa.parquet.read_table(data_file.file_path.removeprefix("file://"))[1].to_pylist()
        assert values == sorted(values, reverse=True)
    assert read(catalog).equals(rows(200))


def test_audit_gate_publishes_or_holds_back(catalog):
    run_ingest(TableSource(rows(5)), catalog, "lake.t")
    head = catalog.load().load_table("lake.t").current_snapshot().snapshot_id
    seen = []

    class Reject(AuditGate):
        def audit(self, staged):
            seen.append(staged.table.scan(snapshot_id=staged.snapshot_id).to_arrow().num_rows)
            return AuditDecision(publish=False, reason="3 rows break rule 'positive_amount'")

    class Publish(AuditGate):
        def audit(self, staged):
            return AuditDecision(True)

    with pytest.raises(AuditRejectedError, match="positive_amount"):
        run_ingest(TableSource(rows(3, start=5)), catalog, "lake.t", audit=Reject())
    table = catalog.load().load_table("lake.t")
    assert seen == [8]
    assert table.current_snapshot().snapshot_id == head
    assert set(table.metadata.refs) == {"main"}

    run_ingest(TableSource(rows(3, start=5)), catalog, "lake.t", audit=Publish())
    assert read(catalog).equals(rows(8))
    assert set(catalog.load().load_table("lake.t").metadata.refs) == {"main"}


def test_commit_refuses_when_the_same_source_committed_meanwhile(catalog):
    source = TableSource(rows(10), cursor="id")
    run_ingest(source, catalog, "lake.t")
    plan = CommitPlan(identifier="lake.t", mode="append", branch="main", new_files=[], properties={},
                      source_identity=source.identity, expected_state_snapshot=None)
    with pytest.raises(ConcurrentRunError, match="another run of memory://rows committed"):
        commit(catalog.load(), plan, max_attempts=3)


def test_bad_write_options_name_the_parameter():
    with pytest.raises(ConfigError, match="'mode' is 'upsert'"):
        WriteOptions.from_mapping({"mode": "upsert"})
    with pytest.raises(ConfigError, match=r"unknown write option\(s\) \['partitions'\]"):
        WriteOptions.from_mapping({"partitions": ["day"]})
    with pytest.raises(ConfigError, match="'merge_keys' is required"):
        WriteOptions.from_mapping({"mode": "merge"})


def _data_files(table):
    return [task.file for task in table.scan().plan_files()]


def _table_dir(table):
    from pathlib import Path

    return Path(table.location().removeprefix("file://"))


def test_merge_rewrites_files_written_before_a_schema_change(catalog):
    options = WriteOptions(mode="merge", merge_keys=("id",))
    run_ingest(TableSource(rows(1000), batch_rows=100), catalog, "lake.t", options)
    changed = rows(2, start=998, value="changed").append_column("score", pa.array([1.5, 2.5]))
    run_ingest(TableSource(changed, identity="memory://changes"), catalog, "lake.t", options)
    back = read(catalog)
    assert back.column_names == ["id", "value", "day", "score"]
    assert back.slice(0, 998).drop_columns(["score"]).equals(rows(998))
    assert back["score"].null_count == 998
    assert back.slice(998).to_pylist() == changed.to_pylist()
