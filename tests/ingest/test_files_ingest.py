"""Files → Iceberg through the real engine: incremental runs, rewritten files, rejected rows, S3."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.files import from_spec
from tests.sources.s3_server import moto_s3_server

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
COLUMNS = {"id": "int64", "version": "string", "amount": "decimal(10,2)"}


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def write(path: Path, rows: list[tuple[int, str, str]], minutes: int, extra: str = "") -> None:
    body = "".join(f"{i},{version},{amount}\n" for i, version, amount in rows)
    path.write_text("id,version,amount\n" + body + extra)
    ns = int((T0 + dt.timedelta(minutes=minutes)).timestamp()) * 10**9
    os.utime(path, ns=(ns, ns))


def table_rows(catalog, name: str = "lake.orders") -> list[tuple]:
    table = catalog.load().load_table(name).scan().to_arrow()
    return sorted(zip(*(table.column(c).to_pylist() for c in ("id", "version", "amount")), strict=True))


def test_three_incremental_runs_load_each_file_version_once(tmp_path, catalog):
    landing = tmp_path / "landing"
    landing.mkdir()
    source = from_spec({"type": "files", "path": str(landing), "glob": "*.csv", "columns": COLUMNS}, None)
    a = [(1, "a1", "1.10"), (2, "a1", "2.20")]
    b1 = [(3, "b1", "3.30")]
    write(landing / "a.csv", a, 1)
    write(landing / "b.csv", b1, 2)

    first = run_ingest(source, catalog, "lake.orders")

    c = [(4, "c1", "4.40")]
    b2 = [(3, "b2", "3.35"), (5, "b2", "5.50")]  # b.csv rewritten: a new version, read once more
    write(landing / "c.csv", c, 3)
    write(landing / "b.csv", b2, 4)
    second = run_ingest(source, catalog, "lake.orders")
    third = run_ingest(source, catalog, "lake.orders")

    assert [r.rows_read for r in (first, second, third)] == [3, 3, 0]
    assert first.watermark_after == "2024-05-01T12:02:00.000000+00:00"
    assert second.watermark_before == first.watermark_after
    assert second.watermark_after == third.watermark_after == "2024-05-01T12:04:00.000000+00:00"
    assert [f["path"] for f in second.source_details["files"]] == [
        str(landing / "c.csv"),
        str(landing / "b.csv"),
    ]
    expected = sorted((i, version, Decimal(amount)) for i, version, amount in a + b1 + c + b2)
    assert table_rows(catalog) == expected


def test_a_rerun_of_the_same_interval_writes_nothing_twice(tmp_path, catalog):
    write(tmp_path / "a.csv", [(1, "a1", "1.00")], 1)
    write(tmp_path / "b.csv", [(2, "b1", "2.00")], 5)
    source = from_spec({"type": "files", "path": str(tmp_path), "glob": "*.csv", "columns": COLUMNS}, None)
    interval_end = ReadBounds(upper=T0 + dt.timedelta(minutes=2))

    run_ingest(source, catalog, "lake.orders", bounds=interval_end)
    rerun = run_ingest(source, catalog, "lake.orders", bounds=interval_end)
    run_ingest(source, catalog, "lake.orders", bounds=ReadBounds(upper=T0 + dt.timedelta(minutes=10)))

    assert rerun.rows_read == 0
    assert table_rows(catalog) == [(1, "a1", Decimal("1.00")), (2, "b1", Decimal("2.00"))]


def test_skipped_malformed_rows_reconcile_with_the_counts(tmp_path, catalog):
    bad_lines = "6,bad,not-money\n7,bad\n8,bad,8.00,surplus\n9,ok,9.90\n"
    write(tmp_path / "a.csv", [(1, "ok", "1.00"), (2, "ok", "2.00")], 1, extra=bad_lines)
    spec = {"type": "files", "path": str(tmp_path), "glob": "*.csv", "columns": COLUMNS, "bad_rows": "skip"}

    result = run_ingest(from_spec(spec, None), catalog, "lake.orders")

    assert (result.rows_read, result.rows_written, result.rows_rejected) == (6, 3, 3)
    assert [r.location for r in result.rejected_samples] == [f"{tmp_path / 'a.csv'}:{n}" for n in (4, 5, 6)]
    assert result.source_details["files"][0]["rejected"] == 3
    assert [row[0] for row in table_rows(catalog)] == [1, 2, 9]


def test_s3_files_land_in_iceberg(catalog):
    with moto_s3_server() as s3:
        bucket = s3.new_bucket()
        client = s3.client()
        client.put_object(
            Bucket=bucket, Key="in/2024/01.jsonl", Body=b'{"id": 1, "version": "x", "amount": 1.5}\n'
        )
        client.put_object(
            Bucket=bucket, Key="in/2024/02.jsonl", Body=b'{"id": 2, "version": "y", "amount": "2"}\n'
        )
        spec = {"type": "files", "path": f"s3://{bucket}/in", "glob": "**/*.jsonl", "columns": COLUMNS}

        result = run_ingest(from_spec(spec, s3.config()), catalog, "lake.orders", WriteOptions(mode="append"))

    assert result.rows_written == 2
    assert (result.inputs[0].namespace, result.inputs[0].name) == (f"s3://{bucket}", "in")
    assert table_rows(catalog) == [(1, "x", Decimal("1.50")), (2, "y", Decimal("2.00"))]
