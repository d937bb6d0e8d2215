"""Export of a subject's rows: equal to the rows computed from the source data, in every format,
private on disk and on S3 (moto), with a manifest whose hashes match the files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from datetime import datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy.discovery import discover
from dativo_provider.privacy.export import export_subject
from dativo_provider.privacy.request import SubjectRequest
from tests.privacy.warehouse import build_warehouse, contract_paths
from tests.s3_server import moto_server

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return build_warehouse(embedded_catalog(tmp_path_factory.mktemp("dsr") / "lake"))


@pytest.fixture(scope="module")
def found(warehouse):
    request = SubjectRequest(request_id="dsr-2024-0001", kind="access", subject_kind="customer",
                             emails=[" Zoe.Tanaka87@EXAMPLE.net"])
    return discover(warehouse.catalog, contract_paths(), request)


def sort_key(table: pa.Table) -> str:
    return next(c for c in ("order_id", "event_id", "ticket_id", "customer_id") if c in table.column_names)


def sorted_rows(table: pa.Table) -> pa.Table:
    keys = [(sort_key(table), "ascending")] + ([("feature_ts", "ascending")] if "feature_ts" in table.column_names
                                               else [])
    return table.sort_by(keys)


def as_json(value):
    """The JSON export's conventions, applied to the independently computed rows."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_export_equals_the_subjects_rows(warehouse, found, tmp_path, fmt):
    manifest = export_subject(warehouse.catalog, found, tmp_path / "exports", fmt=fmt, now=NOW)
    folder = tmp_path / "exports" / "dsr-2024-0001"

    files = {t.table: t.file for t in manifest.tables}
    assert files == {table: f"{table}.{fmt}" for table in warehouse.expected}
    assert sorted(os.listdir(folder)) == sorted([*files.values(), "manifest.json"])
    for table, expected in warehouse.expected.items():
        expected = sorted_rows(expected)
        path = folder / files[table]
        if fmt == "json":
            got = json.loads(path.read_text())
            got.sort(key=lambda r: (r[sort_key(expected)], r.get("feature_ts", "")))
            assert got == [{k: as_json(v) for k, v in row.items()} for row in expected.to_pylist()], table
        elif fmt == "csv":
            got = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types=expected.schema, strings_can_be_null=False))
            assert got.column_names == expected.column_names
            assert sorted_rows(got.cast(expected.schema)).equals(expected), table
        else:
            got = pq.read_table(path)
            assert sorted_rows(got.cast(expected.schema)).equals(expected), table


def test_json_uses_iso_timestamps_and_decimal_strings(warehouse, found, tmp_path):
    export_subject(warehouse.catalog, found, tmp_path, now=NOW)
    orders = json.loads((tmp_path / "dsr-2024-0001" / "examples.orders.json").read_text())

    assert isinstance(orders[0]["amount"], str) and Decimal(orders[0]["amount"]) > 0
    assert datetime.fromisoformat(orders[0]["ordered_at"]).utcoffset().total_seconds() == 0
    held = json.loads((tmp_path / "dsr-2024-0001" / "examples.orders_quarantine.json").read_text())
    assert held[0]["currency"] == "XYZ" and not any(k.startswith("_dativo_") for k in held[0])


def test_manifest_lists_rows_hashes_and_snapshots(warehouse, found, tmp_path):
    manifest = export_subject(warehouse.catalog, found, tmp_path, fmt="parquet", now=NOW)
    folder = tmp_path / "dsr-2024-0001"
    written = json.loads((folder / "manifest.json").read_text())

    assert written == manifest.to_dict()
    assert (written["request_id"], written["format"], written["created_at"]) == (
        "dsr-2024-0001", "parquet", NOW.isoformat())
    assert written["total_rows"] == sum(warehouse.expected_rows.values())
    snapshots = {t.table: t.snapshot_id for t in found.tables}
    for entry in written["tables"]:
        data = (folder / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        assert entry["rows"] == warehouse.expected_rows[entry["table"]]
        assert entry["snapshot_id"] == snapshots[entry["table"]]
    assert "tanaka" not in json.dumps(written).lower()


def test_files_are_never_world_readable_even_with_a_permissive_umask(warehouse, found, tmp_path):
    old = os.umask(0)
    try:
        export_subject(warehouse.catalog, found, tmp_path / "out", now=NOW)
        export_subject(warehouse.catalog, found, tmp_path / "out", fmt="csv", now=NOW)  # re-run: same rules
    finally:
        os.umask(old)
    folder = tmp_path / "out" / "dsr-2024-0001"

    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in os.listdir(folder):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600, name


def test_unknown_subject_exports_an_empty_manifest(warehouse, tmp_path):
    request = SubjectRequest(request_id="dsr-nobody", kind="access", subject_kind="customer",
                             subject_ids=["424242"])
    manifest = export_subject(warehouse.catalog, discover(warehouse.catalog, contract_paths(), request), tmp_path)

    assert manifest.total_rows == 0
    assert {t.table for t in manifest.tables} == set(warehouse.expected)
    assert os.listdir(tmp_path / "dsr-nobody") == ["manifest.json"]


def test_bad_format_and_unsafe_request_id_are_refused(warehouse, found, tmp_path):
    with pytest.raises(ConfigError, match="format"):
        export_subject(warehouse.catalog, found, tmp_path, fmt="xml")  # type: ignore[arg-type]
    sneaky = discover(warehouse.catalog, contract_paths(), SubjectRequest(
        request_id="../escape", kind="access", subject_kind="customer", subject_ids=["87"]))
    with pytest.raises(ConfigError, match="request id"):
        export_subject(warehouse.catalog, sneaky, tmp_path)


def test_export_to_s3_is_private_and_matches_the_manifest(warehouse, found):
    with moto_server() as s3:
        client = s3.client("s3")
        client.create_bucket(Bucket="dsr-exports")
        store = ObjectStoreConfig(access_key_id=s3.access_key_id, secret_access_key=s3.secret_access_key,
                                  region=s3.region, endpoint_url=s3.url)
        manifest = export_subject(warehouse.catalog, found, "s3://dsr-exports/exports", object_store=store,
                                  now=NOW)

        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="dsr-exports")["Contents"])
        expected_keys = sorted([f"exports/dsr-2024-0001/{t.file}" for t in manifest.tables]
                               + ["exports/dsr-2024-0001/manifest.json"])
        assert keys == expected_keys
        assert manifest.location == "s3://dsr-exports/exports/dsr-2024-0001"
        for key in keys:
            grants = client.get_object_acl(Bucket="dsr-exports", Key=key)["Grants"]
            assert [g["Permission"] for g in grants] == ["FULL_CONTROL"], key
            assert all(g["Grantee"].get("Type") == "CanonicalUser" for g in grants), key
        for entry in manifest.tables:
            body = client.get_object(Bucket="dsr-exports", Key=f"exports/dsr-2024-0001/{entry.file}")["Body"].read()
            assert hashlib.sha256(body).hexdigest() == entry.sha256
        orders = json.load(io.BytesIO(client.get_object(
            Bucket="dsr-exports", Key="exports/dsr-2024-0001/examples.orders.json")["Body"].read()))
        assert sorted(r["order_id"] for r in orders) == sorted(
            warehouse.expected["examples.orders"]["order_id"].to_pylist())
