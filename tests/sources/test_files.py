"""The files source against real files in a temp dir and a real (moto) S3 server."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import MAX_REJECT_SAMPLES, ReadBounds
from dativo_provider.sources.file_stream import MAX_FILE_DETAILS, manifest_entries
from dativo_provider.sources.files import FilesSource, FilesStream, from_spec
from tests.sources.s3_server import S3Endpoint, moto_s3_server

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def write(path: Path, content: str | bytes, mtime: dt.datetime | None = None) -> Path:
    """Write a file and set its modification time (to the microsecond, as pyarrow reports it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if mtime is not None:
        ns = int(mtime.timestamp()) * 10**9 + mtime.microsecond * 1000
        os.utime(path, ns=(ns, ns))
    return path


def source(path: Path | str, connection=None, **spec) -> FilesSource:
    return from_spec({"type": "files", "path": str(path), **spec}, connection)


def read(src: FilesSource, state=None, bounds: ReadBounds | None = None) -> tuple[pa.Table, FilesStream]:
    with src.open(state, bounds or ReadBounds()) as stream:
        batches = list(stream)
    return pa.Table.from_batches(batches, schema=stream.schema), stream


@pytest.fixture(scope="module")
def s3() -> S3Endpoint:
    with moto_s3_server() as endpoint:
        yield endpoint


# --- formats ------------------------------------------------------------------------------------

CUSTOMERS = """id,name,balance,signed_up,born,active,score,visits,tag
1,Ada Lovelace,1234.50,2024-01-02T03:04:05.123456Z,1815-12-10,true,9.5,7,a1
2,"Grace ""Amazing"" Hopper",-0.01,2024-01-02 05:04:05+02:00,1906-12-09,false,,12,
3,Zoë Ünïcode,,2024-02-29T23:59:59Z,,TRUE,1e3,-2147483648,ff
"""

CUSTOMER_COLUMNS = {
    "id": "int64",
    "name": "string",
    "balance": "decimal(12,2)",
    "signed_up": "timestamptz",
    "born": "date",
    "active": "bool",
    "score": "float64",
    "visits": "int32",
    "tag": "binary",
}


def test_csv_values_arrive_with_the_declared_types_exactly(tmp_path):
    write(tmp_path / "customers.csv", CUSTOMERS)
    table, stream = read(source(tmp_path, glob="*.csv", columns=CUSTOMER_COLUMNS))

    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("balance", pa.decimal128(12, 2)),
            ("signed_up", pa.timestamp("us", tz="UTC")),
            ("born", pa.date32()),
            ("active", pa.bool_()),
            ("score", pa.float64()),
            ("visits", pa.int32()),
            ("tag", pa.binary()),
        ]
    )
    assert table.to_pylist() == [
        {
            "id": 1,
            "name": "Ada Lovelace",
            "balance": Decimal("1234.50"),
            "signed_up": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
            "born": dt.date(1815, 12, 10),
            "active": True,
            "score": 9.5,
            "visits": 7,
            "tag": b"a1",
        },
        {
            "id": 2,
            "name": 'Grace "Amazing" Hopper',
            "balance": Decimal("-0.01"),
            "signed_up": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "born": dt.date(1906, 12, 9),
            "active": False,
            "score": None,
            "visits": 12,
            "tag": None,
        },
        {
            "id": 3,
            "name": "Zoë Ünïcode",
            "balance": None,
            "signed_up": dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
            "born": None,
            "active": True,
            "score": 1000.0,
            "visits": -2147483648,
            "tag": b"ff",
        },
    ]
    assert stream.report.details["schema_from"] == "declared"
    assert stream.report.rows_rejected == 0


def test_csv_schema_is_inferred_from_the_oldest_file(tmp_path):
    write(tmp_path / "b_new.csv", "id,amount,at,note\n3,1.5,2024-01-03T00:00:00Z,x\n", at(2))
    old_rows = "id,amount,at,note\n1,2.25,2024-01-01T00:00:00Z,\n2,3,2024-01-02T00:00:00Z,\n"
    write(tmp_path / "a_old.csv", old_rows, at(1))
    table, stream = read(source(tmp_path, glob="*.csv"))

    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("amount", pa.float64()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("note", pa.string()),
        ]
    )
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("note").to_pylist() == [None, None, "x"]
    assert stream.report.details["schema_from"] == str(tmp_path / "a_old.csv")


def test_csv_dialect_options(tmp_path):
    text = '1;Müller;"two\nlines";NA\n2;Weiß;plain;4.5\n'
    write(tmp_path / "latin.csv.gz", gzip.compress(text.encode("latin-1")))
    src = source(
        tmp_path,
        glob="*.csv.gz",
        columns={"id": "int64", "name": "string", "memo": "string", "score": "float64"},
        csv={"delimiter": ";", "header": False, "null_values": ["NA"], "encoding": "latin-1"},
    )
    table, _ = read(src)

    assert table.to_pylist() == [
        {"id": 1, "name": "Müller", "memo": "two\nlines", "score": None},
        {"id": 2, "name": "Weiß", "memo": "plain", "score": 4.5},
    ]


def test_parquet_is_read_by_row_group_and_cast_to_the_declared_schema(tmp_path):
    data = pa.table({"id": pa.array(range(10), pa.int32()), "name": [f"n{i}" for i in range(10)]})
    pq.write_table(data.slice(0, 6), tmp_path / "one.parquet", row_group_size=4)
    pq.write_table(data.slice(6), tmp_path / "two.parquet")
    os.utime(tmp_path / "two.parquet", (T0.timestamp() + 60,) * 2)
    os.utime(tmp_path / "one.parquet", (T0.timestamp(),) * 2)

    src = source(tmp_path, glob="*.parquet", columns={"name": "string", "id": "int64"}, batch_rows=3)
    table, stream = read(src)

    assert table.schema == pa.schema([("name", pa.string()), ("id", pa.int64())])
    assert table.column("id").to_pylist() == list(range(10))
    assert [f["rows"] for f in stream.report.details["files"]] == [6, 4]


def test_parquet_schema_is_inferred_and_widened(tmp_path):
    data = pa.table(
        {
            "at": pa.array([1_700_000_000_000_000_000], pa.timestamp("ns", tz="UTC")),
            "kind": pa.array(["a"]).dictionary_encode(),
            "nothing": pa.nulls(1),
        }
    )
    pq.write_table(data, tmp_path / "x.parquet")
    table, _ = read(source(tmp_path, glob="*.parquet"))

    assert table.schema == pa.schema(
        [("at", pa.timestamp("us", tz="UTC")), ("kind", pa.string()), ("nothing", pa.string())]
    )
    assert table.to_pylist() == [
        {"at": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "kind": "a", "nothing": None}
    ]


def test_jsonl_with_declared_columns_missing_keys_and_blank_lines(tmp_path):
    lines = [
        '{"id": 1, "day": "2024-03-01", "at": "2024-03-01T10:00:00.5+01:00", "price": 1.5}',
        "",
        '{"id": 2, "day": null, "price": "2.25"}',
        '{"id": 3}',
    ]
    write(tmp_path / "events.jsonl", "\n".join(lines) + "\n")
    columns = {"id": "int64", "day": "date", "at": "timestamptz", "price": "decimal(10,2)"}
    table, _ = read(source(tmp_path, glob="*.jsonl", columns=columns))

    assert table.to_pylist() == [
        {
            "id": 1,
            "day": dt.date(2024, 3, 1),
            "at": dt.datetime(2024, 3, 1, 9, 0, 0, 500000, tzinfo=UTC),
            "price": Decimal("1.50"),
        },
        {"id": 2, "day": None, "at": None, "price": Decimal("2.25")},
        {"id": 3, "day": None, "at": None, "price": None},
    ]


def test_jsonl_schema_is_inferred_with_nested_types(tmp_path):
    lines = [
        '{"id": 1, "tags": ["a"], "ctx": {"ip": null, "n": 2}}',
        '{"id": 2, "ctx": {"n": 3}}',
        '{"id": 3, "tags": []}',
    ]
    write(tmp_path / "events.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode()))
    table, _ = read(source(tmp_path, glob="*.jsonl.gz"))

    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("tags", pa.list_(pa.string())),
            ("ctx", pa.struct([("ip", pa.string()), ("n", pa.int64())])),
        ]
    )
    assert table.column("tags").to_pylist() == [["a"], None, []]
    assert table.column("ctx").to_pylist() == [{"ip": None, "n": 2}, {"ip": None, "n": 3}, None]


def test_format_comes_from_the_glob_extension(tmp_path):
    write(tmp_path / "a.ndjson", '{"x": 1}\n')
    assert source(tmp_path, glob="*.ndjson").format == "jsonl"
    assert source(tmp_path, glob="**/*.PARQUET").format == "parquet"
    assert source(tmp_path, glob="data-*", format="csv").format == "csv"
    assert read(source(tmp_path, glob="*.ndjson"))[0].to_pylist() == [{"x": 1}]


# --- listing and S3 -----------------------------------------------------------------------------


def test_s3_prefix_with_a_recursive_glob(s3):
    bucket = s3.new_bucket()
    client = s3.client()
    objects = {
        "landing/orders/2024/01/a.csv": "id,v\n1,a\n",
        "landing/orders/2024/02/b.csv": "id,v\n2,b\n",
        "landing/orders/top.csv": "id,v\n3,c\n",
        "landing/orders/2024/_SUCCESS": "",
        "landing/orders/2024/notes.txt": "not csv",
        "landing/other/c.csv": "id,v\n99,z\n",
    }
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body.encode())

    src = source(f"s3://{bucket}/landing/orders/", s3.config(), glob="**/*.csv")
    table, stream = read(src)

    assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
    assert sorted(f["path"] for f in stream.report.details["files"]) == [
        f"s3://{bucket}/landing/orders/2024/01/a.csv",
        f"s3://{bucket}/landing/orders/2024/02/b.csv",
        f"s3://{bucket}/landing/orders/top.csv",
    ]
    assert src.identity == f"files://{bucket}/landing/orders?glob=**/*.csv&format=csv"
    assert (src.lineage.namespace, src.lineage.name) == (f"s3://{bucket}", "landing/orders")
    assert read(source(f"s3://{bucket}/landing/orders", s3.config(), glob="*/*/*.csv"))[0].num_rows == 2


def test_s3_incremental_tells_same_second_objects_apart(s3):
    bucket = s3.new_bucket()
    client = s3.client()
    client.put_object(Bucket=bucket, Key="in/a.jsonl", Body=b'{"id": 1}\n')
    src = source(f"s3://{bucket}/in", s3.config(), glob="*.jsonl")
    first, stream = read(src)
    state = stream.state()

    # S3 times are whole seconds, so b is very likely at the same watermark as a: the path list decides.
    client.put_object(Bucket=bucket, Key="in/b.jsonl", Body=b'{"id": 2}\n')
    second, stream = read(src, state)

    assert first.column("id").to_pylist() == [1]
    assert second.column("id").to_pylist() == [2]
    assert read(src, stream.state())[0].num_rows == 0


def test_s3_missing_bucket_and_a_file_as_path_are_clear_errors(s3, tmp_path):
    with pytest.raises(SourceError, match="no files match"):
        read(source("s3://no-such-bucket-here/x", s3.config(), glob="*.csv"))
    file = write(tmp_path / "single.csv", "a\n1\n")
    with pytest.raises(SourceError, match="listing"):
        read(source(file, glob="*.csv"))


def test_hidden_files_and_other_names_are_skipped(tmp_path):
    write(tmp_path / "a.csv", "x\n1\n")
    write(tmp_path / "_SUCCESS", "")
    write(tmp_path / ".a.csv.crc", "junk")
    write(tmp_path / "_tmp" / "b.csv", "x\n2\n")
    write(tmp_path / "sub" / "c.csv", "x\n3\n")
    assert read(source(tmp_path, glob="*.csv"))[0].column("x").to_pylist() == [1]
    assert sorted(read(source(tmp_path, glob="**/*.csv"))[0].column("x").to_pylist()) == [1, 3]
    assert read(source(tmp_path, glob="s[!x]b/?.csv"))[0].column("x").to_pylist() == [3]


@pytest.mark.parametrize(
    "name",
    [
        "with space.csv",
        'it\'s "quoted".csv',
        "ünïcödé 数据.csv",
        "hash#and%20percent.csv",
        "semi;colon,comma.csv",
    ],
)
def test_hostile_file_names(tmp_path, name):
    write(tmp_path / "dir with space" / name, "id,v\n1,ok\n2,x,extra\n")
    src = source(tmp_path / "dir with space", glob="*.csv", bad_rows="skip")
    table, stream = read(src)

    assert table.to_pylist() == [{"id": 1, "v": "ok"}]
    assert stream.report.rejected_samples[0].location == f"{tmp_path / 'dir with space' / name}:3"
    assert list(manifest_entries(stream.state())) == [name]


def test_hostile_s3_keys(s3):
    bucket = s3.new_bucket()
    key = 'in/it\'s a "file" ü #1.csv'
    s3.client().put_object(Bucket=bucket, Key=key, Body=b"id\n7\n")
    table, stream = read(source(f"s3://{bucket}/in", s3.config(), glob="*.csv"))
    assert table.column("id").to_pylist() == [7]
    assert stream.report.details["files"][0]["path"] == f"s3://{bucket}/{key}"


# --- incremental --------------------------------------------------------------------------------


def test_watermark_mode_reads_each_file_version_once_over_three_runs(tmp_path):
    write(tmp_path / "a.csv", "id,v\n1,a1\n", at(1))
    write(tmp_path / "b.csv", "id,v\n2,b1\n", at(2))
    src = source(tmp_path, glob="*.csv", incremental="watermark")

    run1, stream = read(src)
    state1 = stream.state()
    assert run1.to_pylist() == [{"id": 1, "v": "a1"}, {"id": 2, "v": "b1"}]
    assert state1 == {"watermark": "2024-05-01T12:02:00.000000+00:00", "files_at_watermark": ["b.csv"]}

    write(tmp_path / "c.csv", "id,v\n3,c1\n", at(3))
    write(tmp_path / "b.csv", "id,v\n2,b2\n22,b2\n", at(4))  # rewritten: a new version
    run2, stream = read(src, state1)
    state2 = stream.state()
    assert run2.to_pylist() == [{"id": 3, "v": "c1"}, {"id": 2, "v": "b2"}, {"id": 22, "v": "b2"}]
    assert state2 == {"watermark": "2024-05-01T12:04:00.000000+00:00", "files_at_watermark": ["b.csv"]}
    assert [(f["path"], f["rows"]) for f in stream.report.details["files"]] == [
        (str(tmp_path / "c.csv"), 1),
        (str(tmp_path / "b.csv"), 2),
    ]

    run3, stream = read(src, state2)
    assert run3.num_rows == 0
    assert stream.state() == state2
    assert stream.report.details["files_read"] == 0


def test_files_sharing_the_watermark_time_are_told_apart_by_path(tmp_path):
    write(tmp_path / "a.csv", "id\n1\n", at(1))
    src = source(tmp_path, glob="*.csv", incremental="watermark")
    _, stream = read(src)
    write(tmp_path / "b.csv", "id\n2\n", at(1))
    table, stream = read(src, stream.state())

    assert table.column("id").to_pylist() == [2]
    assert stream.state()["files_at_watermark"] == ["a.csv", "b.csv"]


def test_a_rerun_from_the_same_state_reads_the_same_files(tmp_path):
    # The engine reruns a crashed run from the state of the last commit: it must get the same rows.
    write(tmp_path / "a.csv", "id\n1\n", at(1))
    src = source(tmp_path, glob="*.csv")
    _, stream = read(src)
    state = stream.state()
    write(tmp_path / "b.csv", "id\n2\n", at(2))
    assert read(src, state)[0].column("id").to_pylist() == [2]
    assert read(src, state)[0].column("id").to_pylist() == [2]


def test_upper_bound_reads_only_files_that_existed_by_then(tmp_path):
    for minute, name in [(1, "a"), (2, "b"), (3, "c")]:
        write(tmp_path / f"{name}.csv", f"id\n{minute}\n", at(minute))
    src = source(tmp_path, glob="*.csv")

    first, stream = read(src, bounds=ReadBounds(upper=at(2)))
    second, _ = read(src, stream.state(), ReadBounds(upper=at(3).isoformat()))

    assert first.column("id").to_pylist() == [1, 2]
    assert second.column("id").to_pylist() == [3]
    naive_upper = at(1).replace(tzinfo=None)  # naive bounds are UTC
    assert read(src, bounds=ReadBounds(upper=naive_upper))[0].column("id").to_pylist() == [1]


def test_not_incremental_reads_everything_and_keeps_no_state(tmp_path):
    write(tmp_path / "a.csv", "id\n1\n", at(1))
    src = source(tmp_path, glob="*.csv", incremental=False)
    table, stream = read(src, {"watermark": at(5).isoformat(), "files_at_watermark": []})
    assert table.column("id").to_pylist() == [1]
    assert stream.state() is None


def test_lookback_is_not_supported(tmp_path):
    with pytest.raises(ConfigError, match="lookback"):
        src = source(tmp_path, glob="*.csv", columns={"a": "int64"})
        src.open(None, ReadBounds(lookback=dt.timedelta(days=1)))


def test_a_foreign_state_is_refused(tmp_path):
    write(tmp_path / "a.csv", "id\n1\n")
    with pytest.raises(SourceError, match="not a files-source state"):
        source(tmp_path, glob="*.csv").open({"watermark": 17}, ReadBounds())


# --- bad rows -----------------------------------------------------------------------------------

BAD_CSV = "id,amount\n1,1.00\n2,2.00,oops\n3,abc\n4\n5,5.00\n"


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("id,amount\n1,1.00\n2,2.00,oops\n", 3, "expected 2 columns, found 3"),
        ("id,amount\n1,1.00\n2,2.00\n3,abc\n", 4, "column 'amount': value does not convert to decimal128"),
        (b"id,amount\n1,1.00\n2,\xff\n", 3, "column 'amount': value does not convert"),
        (BAD_CSV, 3, "expected 2 columns"),
    ],
)
def test_a_malformed_csv_row_fails_naming_file_and_line(tmp_path, content, line, reason):
    path = write(tmp_path / "in put.csv", content)
    with pytest.raises(SourceError) as failure:
        read(source(tmp_path, glob="*.csv", columns={"id": "int64", "amount": "decimal(8,2)"}))
    assert str(failure.value).startswith(f"{path}:{line}: {reason}")
    assert "bad_rows='skip'" in str(failure.value)


def test_skipped_csv_rows_are_counted_exactly_across_blocks(tmp_path):
    # ~2.5 MB, so bad rows land in several 1 MB blocks; line = record number as the header is 1.
    lines, bad = ["id,amount,name"], {}
    for i in range(1, 80_001):
        if i % 9_973 == 0:
            lines.append(f"{i},1.00,x,extra")
            bad[i + 1] = "expected 3 columns, found 4"
        elif i % 7_919 == 0:
            lines.append(f"{i},not-a-number,x")
            bad[i + 1] = "column 'amount': value does not convert to decimal128(12, 2)"
        elif i % 15_013 == 0:
            lines.append(f"{i}")
            bad[i + 1] = "expected 3 columns, found 1"
        else:
            lines.append(f"{i},{i}.25,name-{i:08d}")
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    columns = {"id": "int64", "amount": "decimal(12,2)", "name": "string"}
    table, stream = read(source(tmp_path, glob="*.csv", columns=columns, bad_rows="skip"))

    kept = [i for i in range(1, 80_001) if i + 1 not in bad]
    assert table.column("id").to_pylist() == kept
    assert stream.report.rows_rejected == len(bad) == 80_000 - table.num_rows
    expected = [(f"{path}:{line}", reason) for line, reason in sorted(bad.items())][:MAX_REJECT_SAMPLES]
    assert [(r.location, r.reason) for r in stream.report.rejected_samples] == expected
    assert stream.report.details["files"][0]["rejected"] == len(bad)


def test_bad_rows_in_every_position_of_a_small_file(tmp_path):
    path = write(tmp_path / "a.csv", BAD_CSV)
    columns = {"id": "int64", "amount": "float64"}
    table, stream = read(source(tmp_path, glob="*.csv", columns=columns, bad_rows="skip"))
    assert table.column("id").to_pylist() == [1, 5]
    assert [r.location for r in stream.report.rejected_samples] == [f"{path}:{n}" for n in (3, 4, 5)]


def test_jsonl_bad_lines_fail_or_are_skipped_with_exact_lines(tmp_path):
    good = '{"id": %d, "day": "2024-01-01", "name": "n"}'
    lines = [good % i for i in range(40_000)]  # ~1.8 MB: two blocks
    problems = {
        3: ('{"id": 3, "day": "2024-01-01", "name": ', "not valid JSON (Expecting value at column 40)"),
        10: ('{"id": 10, "day": "yesterday"}', "column 'day': value does not convert to date32[day]"),
        25_000: ('{"id": 25000, "extra": 1}', "field 'extra' is not in the schema; declare it in 'columns'"),
        39_000: ("[1, 2]", "not a JSON object"),
        39_500: ('{"id": "x", "name": "n"}', "Column(/id) changed from number to string"),
    }
    for number, (text, _) in problems.items():
        lines[number - 1] = text
    lines.insert(5, "   ")  # a blank line is no row, but still a line
    problems = {(n + 1 if n > 5 else n): p for n, p in problems.items()}
    path = write(tmp_path / "e.jsonl", "\n".join(lines) + "\n")
    columns = {"id": "int64", "day": "date", "name": "string"}

    with pytest.raises(SourceError, match=f"^{re.escape(str(path))}:3: not valid JSON"):
        read(source(tmp_path, glob="*.jsonl", columns=columns))

    table, stream = read(source(tmp_path, glob="*.jsonl", columns=columns, bad_rows="skip"))
    assert table.num_rows == 40_000 - len(problems)
    assert stream.report.rows_rejected == len(problems)
    assert [(r.location, r.reason) for r in stream.report.rejected_samples] == [
        (f"{path}:{n}", reason) for n, (_, reason) in sorted(problems.items())
    ]


def test_parquet_values_that_do_not_fit_are_rejected_by_row(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 2**40, 3, 2**41], pa.int64())}), path)
    table, stream = read(source(tmp_path, glob="*.parquet", columns={"id": "int32"}, bad_rows="skip"))
    assert table.column("id").to_pylist() == [1, 3]
    assert [r.location for r in stream.report.rejected_samples] == [f"{path}:2", f"{path}:4"]


# --- columns that do not fit --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", "id\n1\n", "column 'amount' is missing"),
        ("extra.csv", "id,amount,secret\n1,2,3\n", "column 'secret' is not in the schema"),
        ("twice.csv", "id,amount,id\n1,2,3\n", "column 'id' appears more than once"),
        ("extra.jsonl", '{"id": 1, "amount": 2, "secret": 3}\n', "field 'secret' is not in the schema"),
    ],
)
def test_a_file_with_a_wrong_column_fails_naming_file_and_column(tmp_path, name, content, message):
    write(tmp_path / "ok.csv", "id,amount\n1,2\n", at(1))
    path = write(tmp_path / name, content, at(2))
    with pytest.raises(SourceError, match=f"^{re.escape(str(path))}.*{re.escape(message)}"):
        read(source(tmp_path, glob=f"*{path.suffix}", columns={"id": "int64", "amount": "int64"}))


def test_a_parquet_column_of_another_kind_fails_naming_it(tmp_path):
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"id": [1], "amount": [{"value": 2}]}), path)
    with pytest.raises(SourceError, match=re.escape(f"{path}: column 'amount' is struct<value: int64>")):
        read(source(tmp_path, glob="*.parquet", columns={"id": "int64", "amount": "int64"}))


def test_a_later_file_that_drifts_from_the_inferred_schema_fails(tmp_path):
    write(tmp_path / "a.parquet", b"", at(0))  # empty files are read as no rows, and never a sample
    pq.write_table(pa.table({"id": [1]}), tmp_path / "b.parquet")
    pq.write_table(pa.table({"id": [2], "new": ["x"]}), tmp_path / "c.parquet")
    os.utime(tmp_path / "b.parquet", (at(1).timestamp(),) * 2)
    os.utime(tmp_path / "c.parquet", (at(2).timestamp(),) * 2)
    with pytest.raises(SourceError, match=re.escape("c.parquet: column 'new' is not in the schema")):
        read(source(tmp_path, glob="*.parquet"))


# --- size ---------------------------------------------------------------------------------------


def test_a_large_csv_streams_in_many_small_batches(tmp_path):
    rows = 500_000
    body = "".join(f"{i},{i % 7},label-{i}\n" for i in range(rows))
    write(tmp_path / "large.csv", "id,group,label\n" + body)
    with source(tmp_path, glob="*.csv", batch_rows=4_096).open(None, ReadBounds()) as stream:
        sizes, total, groups = [], 0, 0
        for batch in stream:
            sizes.append(batch.num_rows)
            total += sum(batch.column("id").to_numpy())
            groups += sum(batch.column("group").to_numpy())

    assert sum(sizes) == rows
    assert len(sizes) >= rows // 4_096 and max(sizes) <= 4_096
    assert total == rows * (rows - 1) // 2
    assert groups == sum(i % 7 for i in range(rows))


def test_the_file_list_in_the_report_is_capped_but_counted(tmp_path):
    for i in range(MAX_FILE_DETAILS + 5):
        write(tmp_path / f"f{i:03d}.jsonl", json.dumps({"i": i}) + "\n", at(i))
    table, stream = read(source(tmp_path, glob="*.jsonl"))
    assert table.num_rows == MAX_FILE_DETAILS + 5
    assert len(stream.report.details["files"]) == MAX_FILE_DETAILS
    assert stream.report.details["files_read"] == MAX_FILE_DETAILS + 5
    assert stream.report.details["files"][0] == {
        "path": str(tmp_path / "f000.jsonl"),
        "mtime": "2024-05-01T12:00:00.000000+00:00",
        "size": 9,
        "rows": 1,
        "rejected": 0,
    }


# --- nothing to read, and spec errors -----------------------------------------------------------


def test_no_matching_files(tmp_path):
    columns = {"id": "int64", "at": "timestamptz"}
    table, stream = read(source(tmp_path / "empty", glob="*.csv", columns=columns))
    assert table.num_rows == 0
    assert stream.schema == pa.schema([("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC"))])
    assert stream.state() is None
    with pytest.raises(SourceError, match=r"no files match glob '\*\.csv' .* no 'columns' are declared"):
        source(tmp_path, glob="*.csv").open(None, ReadBounds())


def test_build_source_dispatches_to_the_files_source(tmp_path):
    src = build_source({"type": "files", "path": str(tmp_path), "glob": "*.parquet", "conn_id": "ignored"})
    assert isinstance(src, FilesSource)
    assert src.identity == f"files://{tmp_path}?glob=*.parquet&format=parquet"
    assert (src.lineage.namespace, src.lineage.name) == ("file", str(tmp_path))
    assert src.may_repeat_rows is False


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"globb": "*.csv"}, "unknown key 'globb'"),
        ({"glob": "*.txt"}, "set 'format'"),
        ({"glob": "*.csv", "format": "xml"}, "'format' is 'xml'"),
        ({"glob": "*.csv", "columns": {"a": "varchar"}}, "'columns.a' has type 'varchar'"),
        ({"glob": "*.csv", "columns": {"a": "decimal(39,2)"}}, "'columns.a' has type"),
        ({"glob": "*.csv", "columns": []}, "'columns' must be"),
        ({"glob": "*.csv", "csv": {"sep": ";"}}, "unknown key 'csv.sep'"),
        ({"glob": "*.csv", "csv": {"delimiter": ";;"}}, "'csv.delimiter' must be one character"),
        ({"glob": "*.csv", "csv": {"encoding": "klingon"}}, "'csv.encoding'"),
        ({"glob": "*.csv", "bad_rows": "ignore"}, "'bad_rows' is 'ignore'"),
        ({"glob": "*.csv", "batch_rows": 0}, "'batch_rows' must be at least 1"),
        ({"glob": "*.csv", "batch_rows": True}, "'batch_rows' must be"),
        ({"glob": "*.csv", "incremental": "yes"}, "'incremental' must be"),
        ({"glob": "*.csv", "path": "gs://bucket/x"}, "'path' must be"),
        ({"glob": "*.csv", "path": None}, "'path' must be"),
    ],
)
def test_spec_mistakes_name_the_key(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_spec({"type": "files", "path": str(tmp_path), **spec}, None)


def test_upper_bound_of_the_wrong_kind(tmp_path):
    with pytest.raises(ConfigError, match="upper bound"):
        source(tmp_path, glob="*.csv", columns={"a": "int64"}).open(None, ReadBounds(upper=12))


# --- bundled sample data ------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[2] / "dativo_provider" / "sample_data"
EVENT_TEXT = {
    "event_id": "string",
    "customer_id": "int64",
    "event_type": "string",
    "page": "string",
    "device": "string",
    "session_id": "string",
}


def test_the_bundled_sample_data_reads_cleanly_with_exact_types():
    orders = {
        "order_id": "int64",
        "ordered_at": "timestamptz",
        "customer_id": "int64",
        "product_id": "int64",
        "quantity": "int32",
        "amount": "decimal(12,2)",
        "currency": "string",
        "status": "string",
    }
    customers = {
        "customer_id": "int64",
        "email": "string",
        "first_name": "string",
        "last_name": "string",
        "country": "string",
        "signup_at": "timestamptz",
        "is_active": "bool",
        "marketing_opt_in": "bool",
        "birth_year": "int32",
    }
    order_rows, stream = read(source(SAMPLE, glob="orders_*.csv", columns=orders))
    customer_rows, _ = read(source(SAMPLE, glob="customers.csv", columns=customers))
    events, _ = read(
        source(SAMPLE, glob="events.jsonl", columns={"occurred_at": "timestamptz", **EVENT_TEXT})
    )
    products, _ = read(source(SAMPLE, glob="products.parquet"))

    assert (order_rows.num_rows, customer_rows.num_rows, events.num_rows, products.num_rows) == (
        2_100,
        1_000,
        1_500,
        120,
    )
    assert stream.report.details["files_read"] == 3
    assert set(order_rows.column("customer_id").to_pylist()) <= set(
        customer_rows.column("customer_id").to_pylist()
    )
    assert products.schema.field("price").type == pa.decimal128(10, 2)
    assert events.column("occurred_at")[0].as_py() == dt.datetime(2024, 1, 1, 0, 19, 18, 578000, tzinfo=UTC)
    assert events.column("customer_id").null_count > 0  # anonymous visitors
    assert sum(path.stat().st_size for path in SAMPLE.iterdir()) < 1_000_000
