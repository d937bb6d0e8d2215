"""The one place that decides "S3 or local": parsing, file systems (a real moto S3 server and the local
disk), and the S3 settings an Iceberg catalog carries."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from dativo_provider import objectstore
from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from tests.sources.s3_server import S3Endpoint, moto_s3_server


@pytest.fixture(scope="module")
def s3() -> S3Endpoint:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.mark.parametrize(
    ("given", "base", "bucket"),
    [
        ("s3://lake/raw/orders/", "lake/raw/orders", "lake"),
        ("s3://lake", "lake", "lake"),
        ("file:///srv/drop", "/srv/drop", None),
        ("/srv/drop/", "/srv/drop", None),
    ],
)
def test_parse_names_the_bucket_and_the_path_pyarrow_uses(given, base, bucket):
    where = objectstore.parse(given)
    assert (where.base, where.bucket, where.is_s3) == (base, bucket, bucket is not None)


def test_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert objectstore.parse("drop").base == str(tmp_path / "drop")


@pytest.mark.parametrize("given", ["gs://bucket/x", "s3://", "s3:///prefix", "", None, 7])
def test_parse_refuses_what_it_cannot_store_naming_the_setting(given):
    with pytest.raises(ConfigError) as refused:
        objectstore.parse(given, "files source: 'path'")
    assert str(refused.value) == (
        f"files source: 'path' must be a local directory or s3://bucket/prefix, not {given!r}"
    )


def test_names_for_messages_and_lineage():
    lake = objectstore.parse("s3://lake/raw")
    assert lake.display("lake/raw/a.csv") == "s3://lake/raw/a.csv"
    assert lake.openlineage_name() == ("s3://lake", "raw")
    assert objectstore.parse("s3://lake").openlineage_name() == ("s3://lake", "/")
    assert objectstore.parse("/srv/drop").openlineage_name() == ("file", "/srv/drop")


def test_a_local_location_reads_and_writes_the_local_disk(tmp_path: Path):
    fs, path = objectstore.resolve(f"file://{tmp_path}/out")
    assert isinstance(fs, pafs.LocalFileSystem) and path == f"{tmp_path}/out"
    fs.create_dir(path)
    with fs.open_output_stream(f"{path}/a.txt") as out:
        out.write(b"local")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"local"


def test_an_s3_location_reads_and_writes_the_bucket(s3: S3Endpoint):
    bucket = s3.new_bucket()
    fs, path = objectstore.resolve(f"s3://{bucket}/exports/", s3.config())
    assert isinstance(fs, pafs.S3FileSystem) and path == f"{bucket}/exports"
    with fs.open_output_stream(f"{path}/a.txt") as out:
        out.write(b"remote")
    body = s3.client().get_object(Bucket=bucket, Key="exports/a.txt")["Body"].read()
    assert body == b"remote"


def test_s3_credentials_must_come_in_pairs_and_the_endpoint_needs_a_scheme():
    with pytest.raises(ConfigError, match="both the access key id and the secret access key"):
        objectstore.s3_filesystem(ObjectStoreConfig(access_key_id="only-the-id"))
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        objectstore.s3_filesystem(ObjectStoreConfig(endpoint_url="127.0.0.1:9000"))


def test_is_s3_and_local_path():
    assert objectstore.is_s3("s3://b/k") and not objectstore.is_s3("/data/s3://")
    assert objectstore.local_path("file:///w/data/1.parquet") == "/w/data/1.parquet"
    assert objectstore.local_path("/w/data/1.parquet") == "/w/data/1.parquet"
    assert objectstore.local_path("s3://w/data/1.parquet") is None


def test_catalog_s3_properties_round_trip():
    config = ObjectStoreConfig(access_key_id="k", secret_access_key="s", session_token="t",
                               region="eu-west-1", endpoint_url="http://127.0.0.1:9000")
    properties = objectstore.catalog_s3_properties(config)
    assert properties == {"s3.endpoint": "http://127.0.0.1:9000", "s3.region": "eu-west-1",
                          "s3.access-key-id": "k", "s3.secret-access-key": "s", "s3.session-token": "t"}
    assert objectstore.config_from_catalog({**properties, "type": "sql"}) == config


def test_table_filesystem_is_the_tables_own(tmp_path: Path):
    from dativo_provider.iceberg.catalog import embedded_catalog

    catalog = embedded_catalog(tmp_path).load()
    catalog.create_namespace("ns")
    table = catalog.create_table("ns.t", pa.schema([pa.field("id", pa.int64())]))
    table.append(pa.table({"id": pa.array([1], pa.int64())}))
    fs, root, to_path = objectstore.table_filesystem(table.io.properties, table.metadata.location)
    data_file = next(iter(table.scan().plan_files())).file.file_path
    assert isinstance(fs, pafs.LocalFileSystem) and root == str(tmp_path / "warehouse" / "ns" / "t")
    assert to_path(data_file).startswith(root + "/data/") and os.path.isfile(to_path(data_file))


@pytest.mark.parametrize("uri", ["s3://lake/t/data/a.parquet", "s3a://lake/t/data/a.parquet",
                                 "s3n://lake/t/data/a.parquet"])
def test_every_s3_scheme_a_table_may_reference_reads_through_the_s3_filesystem(uri):
    marker = pafs.SubTreeFileSystem("/nowhere", pafs.LocalFileSystem())  # stands for the caller's S3 fs
    fs, path = objectstore.uri_filesystem(uri, lambda: marker)
    assert (fs, path) == (marker, "lake/t/data/a.parquet")


def test_local_table_files_read_from_the_disk_and_other_schemes_go_to_pyarrow(tmp_path: Path):
    data = tmp_path / "a.parquet"
    data.write_bytes(b"PAR1")

    def no_s3():
        raise AssertionError("a local file must not ask for S3")

    for uri in (f"file://{data}", str(data)):
        fs, path = objectstore.uri_filesystem(uri, no_s3)
        assert isinstance(fs, pafs.LocalFileSystem)
        assert fs.open_input_stream(path).read() == b"PAR1"
    with pytest.raises(pa.ArrowInvalid, match="Unrecognized filesystem type"):
        objectstore.uri_filesystem("nosuchscheme://x/y", no_s3)
