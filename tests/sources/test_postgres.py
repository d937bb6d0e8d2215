"""The Postgres source against the real server: types, streaming, incremental windows, hostile names,
errors. Every test works in its own schema (fixture ``pg_schema``)."""

from __future__ import annotations

import dataclasses
import json
import struct
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError, SourceError, TransientError, UnsupportedTypeError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds

pytestmark = pytest.mark.postgres

ALL_TYPES = {
    "c_smallint": ("smallint", pa.int16()),
    "c_integer": ("integer", pa.int32()),
    "c_bigint": ("bigint", pa.int64()),
    "c_numeric": ("numeric(38,10)", pa.decimal128(38, 10)),
    "c_numeric_small": ("numeric(5,2)", pa.decimal128(5, 2)),
    "c_numeric_free": ("numeric", pa.decimal128(38, 18)),
    "c_real": ("real", pa.float32()),
    "c_double": ("double precision", pa.float64()),
    "c_bool": ("boolean", pa.bool_()),
    "c_text": ("text", pa.string()),
    "c_varchar": ("varchar(20)", pa.string()),
    "c_char": ("char(4)", pa.string()),
    "c_date": ("date", pa.date32()),
    "c_time": ("time", pa.time64("us")),
    "c_ts": ("timestamp", pa.timestamp("us")),
    "c_tstz": ("timestamptz", pa.timestamp("us", tz="UTC")),
    "c_uuid": ("uuid", pa.uuid()),
    "c_json": ("json", pa.string()),
    "c_jsonb": ("jsonb", pa.string()),
    "c_bytea": ("bytea", pa.binary()),
    "c_int_array": ("int[]", pa.list_(pa.int32())),
    "c_text_array": ("text[]", pa.list_(pa.string())),
    "c_numeric_array": ("numeric(6,2)[]", pa.list_(pa.decimal128(6, 2))),
}

EDGE_ROWS = [
    (1, 32767, 2147483647, 9223372036854775807, "9999999999999999999999999999.9999999999", "999.99",
     "12345678901234567890.123456789012345678", 3.4028235e38, 1.7976931348623157e308, True,
     "héllo wörld ✓ 日本語 🎉", "x" * 20, "ab", "9999-12-31", "23:59:59.999999", "9999-12-31 23:59:59.999999",
     "2024-03-10 01:02:03.123456-07:00", str(uuid.uuid4()), '{"a": [1, 2, {"b": null}]}',
     '{"z": 1, "a": "é"}', b"\x00\xff\x10", [2147483647, -2147483648, None], ["a", "", None, "é"],
     ["1.50", "-9999.99"]),
    (2, -32768, -2147483648, -9223372036854775808, "-9999999999999999999999999999.9999999999", "-999.99",
     "-0.000000000000000001", -1.17549435e-38, 5e-324, False, "", "", "", "0001-01-01", "00:00:00",
     "0001-01-01 00:00:00", "1900-01-01 00:00:00.000001+05:30", "00000000-0000-0000-0000-000000000000", "[]",
     "{}", b"", [], [], []),
    (3, *([None] * len(ALL_TYPES))),
    (4, 0, 0, 0, "0", "0.01", "0", 0.0, -0.0, False, " ", " ", " ", "1969-12-31", "12:00:00.000001",
     "1969-12-31 23:59:59.999999", "1970-01-01 00:00:00+00", str(uuid.uuid4()), "null", "[1, 2.5, \"x\"]",
     b"\x00", [0], [" "], ["0.00"]),
]


UPPER_BOUNDS = [
    datetime(2024, 1, 1, 14, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
    "2024-01-01T12:00:00.999999Z",
]


def source(config, **spec):
    return build_source({"type": "postgres", **spec}, config)


def open_source(config, state=None, **spec):
    """Open (and close) a source: enough to raise the errors found while connecting and planning."""
    source(config, **spec).open(state, ReadBounds()).close()


def fill_big(pg, schema, rows=300_000):
    create_table(pg, schema, "big", {"id": "int", "payload": "text"})
    pg.execute(f"INSERT INTO \"{schema}\".big SELECT g, repeat('x', 200) FROM generate_series(1, {rows}) g")


def server_queries(pg, marker, state="%"):
    """How many other sessions run a query mentioning ``marker`` (in the given state)."""
    return pg.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE state LIKE %s AND query LIKE %s AND pid <> pg_backend_pid()",
        (state, f"%{marker}%"),
    ).fetchone()[0]


def create_table(pg, schema, name, columns: dict[str, str]):
    body = ", ".join(f'"{col}" {decl}' for col, decl in columns.items())
    pg.execute(f'CREATE TABLE "{schema}"."{name}" ({body})')


def float32(value):
    return None if value is None else struct.unpack("f", struct.pack("f", value))[0]


def test_every_type_matches_the_driver(pg, pg_schema, postgres_config, read_all):
    columns = {"id": "int primary key", **{c: d for c, (d, _) in ALL_TYPES.items()}}
    create_table(pg, pg_schema, "all_types", columns)
    placeholders = ", ".join(["%s"] * (len(ALL_TYPES) + 1))
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{pg_schema}".all_types VALUES ({placeholders})', EDGE_ROWS)
    table, state = read_all(source(postgres_config, table=f"{pg_schema}.all_types"))

    assert state is None
    # The primary key is NOT NULL, so its field is not nullable (a required Iceberg column).
    id_field = pa.field("id", pa.int32(), nullable=False)
    assert table.schema == pa.schema([id_field] + [(c, t) for c, (_, t) in ALL_TYPES.items()])
    ours = table.sort_by("id").to_pylist()
    theirs = pg.execute(f'SELECT * FROM "{pg_schema}".all_types ORDER BY id').fetchall()
    for our_row, their_row in zip(ours, theirs, strict=True):
        for (column, ours_value), theirs_value in zip(our_row.items(), their_row, strict=True):
            if column == "c_real":
                ours_value, theirs_value = float32(ours_value), float32(theirs_value)
            if column in ("c_json", "c_jsonb") and ours_value is not None:
                ours_value = json.loads(ours_value)
            assert ours_value == theirs_value, (our_row["id"], column)
    assert all(value is None for key, value in ours[2].items() if key != "id")
    assert ours[1]["c_text"] == "" and ours[1]["c_int_array"] == []
    assert ours[0]["c_tstz"] == datetime(2024, 3, 10, 8, 2, 3, 123456, tzinfo=timezone.utc)
    assert str(ours[0]["c_numeric"]) == "9999999999999999999999999999.9999999999"


def test_numeric_that_does_not_fit_fails_naming_the_column(pg, pg_schema, postgres_config, read_all):
    create_table(pg, pg_schema, "big", {"amount": "numeric"})
    pg.execute(f'INSERT INTO "{pg_schema}".big VALUES (123456789012345678901.5)')  # 21 integer digits
    with pytest.raises(SourceError, match="'amount'.*decimal128\\(38, 18\\)"):
        read_all(source(postgres_config, table=f"{pg_schema}.big"))
    pg.execute(f"UPDATE \"{pg_schema}\".big SET amount = 'NaN'")
    with pytest.raises(SourceError, match="'amount'"):
        read_all(source(postgres_config, table=f"{pg_schema}.big"))
    query = f'SELECT amount::numeric(30,2) AS amount FROM "{pg_schema}".big WHERE amount <> \'NaN\''
    table, _ = read_all(source(postgres_config, query=query))
    assert table.schema.field("amount").type == pa.decimal128(30, 2)


def test_unsupported_types_are_all_named_and_can_be_left_out(pg, pg_schema, postgres_config, read_all):
    create_table(pg, pg_schema, "odd", {"id": "int", "span": "interval", "price": "money", "ip": "inet"})
    pg.execute(f"INSERT INTO \"{pg_schema}\".odd VALUES (1, '1 day', 1.5, '10.0.0.1')")
    with pytest.raises(UnsupportedTypeError) as caught:
        read_all(source(postgres_config, table=f"{pg_schema}.odd"))
    for text in ("'span' has type interval", "'price' has type money", "'ip' has type inet"):
        assert text in str(caught.value)
    table, _ = read_all(source(postgres_config, table=f"{pg_schema}.odd", columns=["id"]))
    assert table.to_pylist() == [{"id": 1}]
    query = f'SELECT id, span::text AS span FROM "{pg_schema}".odd'
    assert read_all(source(postgres_config, query=query))[0].to_pylist() == [{"id": 1, "span": "1 day"}]


@pytest.mark.parametrize(
    ("declaration", "value", "message"),
    [
        ("int[]", "{{1,2},{3,4}}", "multi-dimensional"),
        ("timestamptz", "infinity", "infinity"),
        ("timestamp", "-infinity", "infinity"),
        ("date", "infinity", "infinity"),
        ("time", "24:00:00", "24:00:00"),
    ],
)
def test_values_arrow_cannot_hold_fail_naming_the_column(
    pg, pg_schema, postgres_config, read_all, declaration, value, message
):
    create_table(pg, pg_schema, "edge", {"odd value": declaration})
    pg.execute(f'INSERT INTO "{pg_schema}".edge VALUES (%s)', (value,))
    with pytest.raises(SourceError, match=message) as caught:
        read_all(source(postgres_config, table=f"{pg_schema}.edge"))
    assert "odd value" in str(caught.value)


def test_enums_read_as_text_and_domains_as_their_base_type(pg, pg_schema, postgres_config, read_all):
    pg.execute(f"CREATE TYPE \"{pg_schema}\".mood AS ENUM ('sad', 'ok')")
    pg.execute(f'CREATE DOMAIN "{pg_schema}".money3 AS numeric(8,3) CHECK (VALUE >= 0)')
    create_table(pg, pg_schema, "t", {"m": f'"{pg_schema}".mood', "v": f'"{pg_schema}".money3'})
    pg.execute(f"INSERT INTO \"{pg_schema}\".t VALUES ('ok', 12.345), (NULL, NULL)")
    table, _ = read_all(source(postgres_config, table=f"{pg_schema}.t"))
    assert table.schema == pa.schema([("m", pa.string()), ("v", pa.decimal128(8, 3))])
    assert table.to_pylist() == [{"m": "ok", "v": Decimal("12.345")}, {"m": None, "v": None}]


def test_query_with_columns_identity_and_lineage(pg, pg_schema, postgres_config, read_all):
    create_table(pg, pg_schema, "t", {"id": "bigint", "name": "text"})
    pg.execute(f"INSERT INTO \"{pg_schema}\".t VALUES (1, 'a'), (2, 'b')")
    query = f"SELECT id, upper(name) AS shout, id * 2 AS twice FROM \"{pg_schema}\".t;"
    src = source(postgres_config, query=query, columns=["twice", "shout"])
    table, _ = read_all(src)
    assert table.sort_by("twice").to_pylist() == [{"twice": 2, "shout": "A"}, {"twice": 4, "shout": "B"}]
    assert src.identity.startswith("postgres://127.0.0.1:5432/test?query=")
    assert src.identity == source(postgres_config, query=query).identity
    incremental = source(postgres_config, query=query, cursor="twice")
    newer, state = read_all(incremental, {"watermark": 2, "cursor": "twice"})
    assert newer.to_pylist() == [{"id": 2, "shout": "B", "twice": 4}] and state["watermark"] == 4
    tab = source(postgres_config, table=f"{pg_schema}.t", cursor="id")
    assert tab.identity == f"postgres://127.0.0.1:5432/test/{pg_schema}.t?cursor=id"
    assert (tab.lineage.namespace, tab.lineage.name) == ("postgres://127.0.0.1:5432", f"test.{pg_schema}.t")
    assert source(postgres_config, table="t").lineage.name == "test.public.t"


def test_reads_stream_from_the_server_in_small_batches(pg, pg_schema, postgres_config):
    fill_big(pg, pg_schema)
    src = source(postgres_config, table=f"{pg_schema}.big", batch_rows=5_000)
    with src.open(None, ReadBounds()) as stream:
        batches = iter(stream)
        first = next(batches)
        # The COPY is still running on the server while we hold the first batch: nothing was fetched whole.
        active = server_queries(pg, pg_schema, state="active")
        rest = list(batches)
    sizes = [first.num_rows] + [b.num_rows for b in rest]
    assert active == 1
    assert sum(sizes) == 300_000 and max(sizes) <= 5_000 and len(sizes) >= 60
    assert stream.report.details["rows"] == 300_000


def test_stopping_early_cancels_the_server_query(pg, pg_schema, postgres_config):
    fill_big(pg, pg_schema)
    started = time.monotonic()
    src = source(postgres_config, table=f"{pg_schema}.big", batch_rows=1_000)
    with src.open(None, ReadBounds()) as stream:
        next(iter(stream))
    assert time.monotonic() - started < 5
    assert server_queries(pg, pg_schema) == 0


def insert_events(pg, schema, rows):
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{schema}".events VALUES (%s, %s)', rows)


def ids(table):
    return sorted(table.column("id").to_pylist())


@pytest.fixture
def events(pg, pg_schema):
    create_table(pg, pg_schema, "events", {"id": "int", "updated_at": "timestamptz"})
    insert_events(pg, pg_schema, [
        (1, "2024-01-01 10:00:00.000001+02:00"),
        (2, "2024-01-01 09:30:00.5-05:00"),
        (3, "2024-01-01 12:00:00.999999+00:00"),
    ])
    return pg_schema


def test_incremental_second_run_reads_exactly_the_new_rows(pg, events, postgres_config, read_all):
    src = source(postgres_config, table=f"{events}.events", cursor="updated_at")
    first, state = read_all(src)
    assert ids(first) == [1, 2, 3]
    assert state == {"watermark": "2024-01-01T14:30:00.500000+00:00", "cursor": "updated_at"}
    assert src.may_repeat_rows is False
    insert_events(pg, events, [
        (4, "2024-01-01 14:30:00.500001+00:00"),  # one microsecond after the watermark
        (5, "2024-01-02 00:00:00+09:00"),
        (6, "2024-01-01 14:30:00.5+00:00"),  # exactly the watermark: already read
    ])
    second, state2 = read_all(src, state)
    assert ids(second) == [4, 5]
    assert state2["watermark"] == "2024-01-01T15:00:00.000000+00:00"
    third, state3 = read_all(src, state2)
    assert third.num_rows == 0 and state3 == state2


def test_lookback_rereads_late_rows(pg, events, postgres_config, read_all):
    src = source(postgres_config, table=f"{events}.events", cursor="updated_at", lookback="1h")
    _, state = read_all(src)
    insert_events(pg, events, [(7, "2024-01-01 14:00:00+00:00"), (8, "2024-01-01 13:00:00+00:00")])
    again, state2 = read_all(src, state)
    assert src.may_repeat_rows is True
    assert ids(again) == [2, 7]  # within an hour of 14:30:00.5; row 8 is older
    assert state2 == state
    assert ids(read_all(src, state, ReadBounds(lookback=timedelta(hours=3)))[0]) == [2, 3, 7, 8]


@pytest.mark.parametrize("upper", UPPER_BOUNDS)
def test_upper_bound_is_inclusive_and_cast_on_the_server(events, postgres_config, read_all, upper):
    src = source(postgres_config, table=f"{events}.events", cursor="updated_at")
    table, state = read_all(src, None, ReadBounds(upper=upper))
    assert ids(table) == [1, 3]  # row 3 sits exactly on the bound; row 2 (14:30Z) is after it
    assert state["watermark"] == "2024-01-01T12:00:00.999999+00:00"


def test_numeric_and_integer_cursors_keep_exact_watermarks(pg, pg_schema, postgres_config, read_all):
    create_table(pg, pg_schema, "n", {"id": "bigint", "amount": "numeric(20,6)"})
    pg.execute(f'INSERT INTO "{pg_schema}".n VALUES (9007199254740993, 12345678901234.123456), (1, 0.000001)')
    by_id = source(postgres_config, table=f"{pg_schema}.n", cursor="id")
    assert read_all(by_id)[1]["watermark"] == 9007199254740993  # 2**53 + 1 survives
    by_amount = source(postgres_config, table=f"{pg_schema}.n", cursor="amount", lookback=1)
    _, state = read_all(by_amount)
    assert state["watermark"] == "12345678901234.123456"
    pg.execute(f"INSERT INTO \"{pg_schema}\".n VALUES (2, 12345678901233.5), (3, 12345678901233.1)")
    assert ids(read_all(by_amount, state)[0]) == [2, 9007199254740993]


def test_naive_timestamp_cursor_takes_aware_bounds_in_utc(pg, pg_schema, postgres_config, read_all):
    create_table(pg, pg_schema, "events", {"id": "int", "at": "timestamp"})
    insert_events(pg, pg_schema, [(1, "2024-01-01 10:00:00"), (2, "2024-01-01 11:00:00")])
    src = source(postgres_config, table=f"{pg_schema}.events", cursor="at")
    table, state = read_all(src, None, ReadBounds(upper="2024-01-01T12:30:00+02:00"))
    assert ids(table) == [1] and state["watermark"] == "2024-01-01T10:00:00.000000"


def test_hostile_names_are_quoted_not_executed(pg, pg_schema, postgres_config, read_all):
    schema, table = 'sch"ema; DROP SCHEMA x; --', 'ta"ble 🎉.dot; SELECT 1'
    pg.execute(f'CREATE SCHEMA "{schema.replace(chr(34), chr(34) * 2)}"')
    try:
        columns = {'"quoted" col': "int", "semi;colon": "text", "ünïcode spaced": "text",
                   "per%cent $1": "text", 'up"dated at': "timestamptz"}
        quoted = {c.replace('"', '""'): d for c, d in columns.items()}
        create_table(pg, schema.replace('"', '""'), table.replace('"', '""'), quoted)
        pg.execute(
            f'INSERT INTO "{schema.replace(chr(34), 2 * chr(34))}"."{table.replace(chr(34), 2 * chr(34))}" '
            "VALUES (1, 'a', 'ü', '%s', '2024-01-01Z'), (2, 'b', 'ñ', '$1', '2024-02-01Z')"
        )
        src = source(postgres_config, schema=schema, table=table, cursor='up"dated at',
                     columns=["semi;colon", '"quoted" col', "per%cent $1"])
        rows, state = read_all(src, {"watermark": "2023-12-31T00:00:00+00:00", "cursor": 'up"dated at'},
                               ReadBounds(upper="2024-01-15T00:00:00Z"))
        first = datetime(2024, 1, 1, tzinfo=timezone.utc)
        assert rows.to_pylist() == [
            {"semi;colon": "a", '"quoted" col': 1, "per%cent $1": "%s", 'up"dated at': first}
        ]
        assert state["watermark"] == "2024-01-01T00:00:00.000000+00:00"
        assert pg.execute("SELECT to_regnamespace(%s) IS NOT NULL", (f'"{pg_schema}"',)).fetchone()[0]
    finally:
        pg.execute(f'DROP SCHEMA "{schema.replace(chr(34), chr(34) * 2)}" CASCADE')


def test_bad_credentials_name_the_server_and_hide_the_password(postgres_config):
    secret = "Sup3r-S3cret'pass"
    bad = dataclasses.replace(postgres_config, user="dativo_no_such_role", password=secret)
    with pytest.raises(SourceError) as caught:
        open_source(bad, table="t")
    message = str(caught.value)
    assert "127.0.0.1:5432" in message and "dativo_no_such_role" in message and "does not exist" in message
    assert secret not in message and "S3cret" not in message


def test_unknown_database_and_unreachable_server(postgres_config):
    with pytest.raises(SourceError, match="dativo_no_such_db"):
        open_source(dataclasses.replace(postgres_config, database="dativo_no_such_db"), table="t")
    unreachable = dataclasses.replace(postgres_config, port=1, options={"connect_timeout": "2"})
    with pytest.raises(TransientError, match="127.0.0.1:1"):
        open_source(unreachable, table="t")


def test_missing_table_column_and_cursor_are_named(pg, pg_schema, postgres_config):
    create_table(pg, pg_schema, "t", {"id": "int", "at": "timestamptz", "name": "text"})
    table = f"{pg_schema}.t"
    with pytest.raises(SourceError, match=f"{pg_schema}.nope not found on postgres://127.0.0.1:5432/test"):
        open_source(postgres_config, table=f"{pg_schema}.nope")
    with pytest.raises(SourceError, match=r"column\(s\) \['ghost'\] not found in table"):
        open_source(postgres_config, table=table, columns=["id", "ghost"])
    with pytest.raises(SourceError, match="cursor column 'changed' not found"):
        open_source(postgres_config, table=table, cursor="changed")
    with pytest.raises(ConfigError, match="cursor column 'name' has type string"):
        open_source(postgres_config, table=table, cursor="name")
    with pytest.raises(ConfigError, match="must be a number"):
        open_source(postgres_config, table=table, cursor="id", lookback="2h")
    with pytest.raises(ConfigError, match="tracks cursor 'id'"):
        open_source(postgres_config, {"watermark": 5, "cursor": "id"}, table=table, cursor="at")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"table": "t", "tabel": "x"}, "unknown key.*'tabel'"),
        ({"table": "t", "query": "select 1"}, "exactly one of 'table' or 'query'"),
        ({}, "exactly one of 'table' or 'query'"),
        ({"table": "a.b.c"}, "ambiguous"),
        ({"query": "select 1", "schema": "s"}, "'schema' applies to 'table'"),
        ({"table": "t", "lookback": "2h"}, "'lookback' needs a 'cursor'"),
        ({"table": "t", "cursor": "c", "lookback": "2 fortnights"}, "not a duration"),
        ({"table": "t", "cursor": "c", "lookback": -1}, "non-negative"),
        ({"table": "t", "batch_rows": 0}, "'batch_rows' must be a positive integer"),
        ({"table": "t", "columns": "id"}, "'columns' must be a non-empty list"),
        ({"table": "t", "columns": ["a", "a"]}, "names a column twice"),
    ],
)
def test_spec_errors_name_the_key(spec, message):
    from dativo_provider.connections import DatabaseConfig

    with pytest.raises(ConfigError, match=message):
        source(DatabaseConfig(host="h", database="d"), **spec)


def test_lookback_forms():
    from dativo_provider.sources.sql_common import parse_lookback

    assert parse_lookback("90s", "x") == timedelta(seconds=90)
    assert parse_lookback("1h30m", "x") == timedelta(minutes=90)
    assert parse_lookback("1d", "x") == timedelta(days=1)
    assert parse_lookback(" 2H ", "x") == timedelta(hours=2)
    assert parse_lookback("100", "x") == Decimal(100)
    assert parse_lookback(0.5, "x") == Decimal("0.5")
    assert parse_lookback(timedelta(minutes=5), "x") == timedelta(minutes=5)
