"""Snapshot export to Parquet on real tables (embedded SQLite catalog): the files hold exactly the tagged
snapshot's rows, not the current ones, in parts of bounded size; a rerun leaves one export; a bad ref
is named with the table's refs; S3 through the moto server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.export import export_snapshot_parquet, tag_snapshot
from tests.memory_source import TableSource

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def _commit(catalog, first: int, count: int, round_: int) -> None:
    rows = pa.table({"customer_id": pa.array(range(first, first + count), pa.int64()),
                     "feature_ts": [T0 + timedelta(hours=i) for i in range(count)],
                     "spend_30d": [float(i) / 4 for i in range(first, first + count)]})
    run_ingest(TableSource(rows, identity=f"memory://features/{round_}"), catalog, "ml.features",
               WriteOptions(mode="append"))


def _tagged(catalog, tag: str = "train-2024-01") -> pa.Table:
    table = catalog.load().load_table("ml.features")
    table.manage_snapshots().create_tag(table.metadata.current_snapshot_id, tag).commit()
    return table.scan().to_arrow()


def _sorted(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: row["customer_id"])


def test_export_holds_the_tagged_snapshot_not_the_current_rows(catalog, tmp_path):
    _commit(catalog, 0, 2500, 0)
    tagged = _tagged(catalog)
    _commit(catalog, 2500, 700, 1)  # later commits: not in the export
    _commit(catalog, 3200, 10, 2)
    result = export_snapshot_parquet(catalog, "ml.features", "train-2024-01", str(tmp_path / "out"),
                                     max_rows_per_file=1000)
    snapshot = catalog.load().load_table("ml.features").metadata.snapshot_by_name("train-2024-01")
    assert (result.ref, result.snapshot_id, result.rows) == ("train-2024-01", snapshot.snapshot_id, 2500)
    assert [p.rpartition("/")[2] for p in result.files] == ["part-00000.parquet", "part-00001.parquet",
                                                           "part-00002.parquet"]
    assert [pq.read_metadata(p).num_rows for p in result.files] == [1000, 1000, 500]
    exported = pa.concat_tables([pq.read_table(p) for p in result.files])
    assert _sorted(exported) == _sorted(tagged)
    assert catalog.load().load_table("ml.features").scan().count() == 3210

    # A shorter export into the same place leaves only its own files.
    again = export_snapshot_parquet(catalog, "ml.features", "train-2024-01", str(tmp_path / "out"),
                                    columns=["customer_id"], max_rows_per_file=5000)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000.parquet"]
    assert pq.read_table(again.files[0]).column_names == ["customer_id"] and again.rows == 2500


def test_refs_resolve_to_one_snapshot_and_a_bad_ref_is_named(catalog, tmp_path):
    _commit(catalog, 0, 10, 0)
    _tagged(catalog, "v1")
    first = catalog.load().load_table("ml.features").metadata.current_snapshot_id
    _commit(catalog, 10, 5, 1)
    by_id = export_snapshot_parquet(catalog, "ml.features", first, str(tmp_path / "by_id"))
    by_text = export_snapshot_parquet(catalog, "ml.features", str(first), str(tmp_path / "by_text"))
    main = export_snapshot_parquet(catalog, "ml.features", None, str(tmp_path / "main"))
    assert (by_id.rows, by_text.snapshot_id, by_id.ref) == (10, first, f"snapshot {first}")
    assert (main.ref, main.rows) == ("main", 15)
    with pytest.raises(ConfigError, match=r"ml.features has no tag or branch 'v2' \(its refs: main, v1\)"):
        export_snapshot_parquet(catalog, "ml.features", "v2", str(tmp_path / "bad"))
    with pytest.raises(ConfigError, match=r"ml.features: no snapshot 123 \(its refs: main, v1\)"):
        export_snapshot_parquet(catalog, "ml.features", 123, str(tmp_path / "bad"))
    with pytest.raises(ConfigError, match="ml.nope: no such table"):
        export_snapshot_parquet(catalog, "ml.nope", None, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_an_empty_snapshot_exports_one_file_with_the_schema(catalog, tmp_path):
    _commit(catalog, 0, 3, 0)
    table = catalog.load().load_table("ml.features")
    table.delete("customer_id >= 0")
    result = export_snapshot_parquet(catalog, "ml.features", None, str(tmp_path / "empty"))
    (path,) = result.files
    assert result.rows == 0 and pq.read_table(path).column_names == ["customer_id", "feature_ts", "spend_30d"]


def test_export_to_s3(catalog):
    from dativo_provider.connections import ObjectStoreConfig
    from tests.s3_server import moto_server

    _commit(catalog, 0, 40, 0)
    tagged = _tagged(catalog)
    with moto_server() as s3:
        s3.client("s3").create_bucket(Bucket="features")
        config = ObjectStoreConfig(access_key_id=s3.access_key_id, secret_access_key=s3.secret_access_key,
                                   region=s3.region, endpoint_url=s3.url)
        result = export_snapshot_parquet(catalog, "ml.features", "train-2024-01", "s3://features/vertex/v1",
                                         object_store=config)
        assert result.files == ("s3://features/vertex/v1/part-00000.parquet",)
        stored = s3.client("s3").get_object(Bucket="features", Key="vertex/v1/part-00000.parquet")
        body = stored["Body"].read()
    assert _sorted(pq.read_table(pa.BufferReader(body))) == _sorted(tagged)


def test_a_tag_is_made_once_and_a_rerun_exports_what_the_first_tagged(catalog, tmp_path):
    _commit(catalog, 0, 10, 0)
    first = tag_snapshot(catalog, "ml.features", "vertex-20240102")
    _commit(catalog, 10, 5, 1)
    assert tag_snapshot(catalog, "ml.features", "vertex-20240102") == first  # kept, not moved
    result = export_snapshot_parquet(catalog, "ml.features", "vertex-20240102", str(tmp_path / "out"))
    assert (result.snapshot_id, result.rows) == (first, 10)
    table = catalog.load().load_table("ml.features")
    table.manage_snapshots().create_branch(first, "audit").commit()
    with pytest.raises(ConfigError, match="'audit' is a branch, not a tag"):
        tag_snapshot(catalog, "ml.features", "audit")
