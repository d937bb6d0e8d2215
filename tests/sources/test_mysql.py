"""The MySQL source against the real server (MariaDB here): types, streaming, incremental windows,
hostile names, errors. Every test works in its own database (fixture ``my_db``)."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError, SourceError, TransientError, UnsupportedTypeError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds

pytestmark = pytest.mark.mysql

ALL_TYPES = {
    "c_bool": ("tinyint(1)", pa.bool_()),
    "c_tinyint": ("tinyint", pa.int8()),
    "c_tinyint_u": ("tinyint unsigned", pa.int16()),
    "c_smallint": ("smallint", pa.int16()),
    "c_smallint_u": ("smallint unsigned", pa.int32()),
    "c_mediumint": ("mediumint", pa.int32()),
    "c_mediumint_u": ("mediumint unsigned", pa.int32()),
    "c_int": ("int", pa.int32()),
    "c_int_u": ("int unsigned", pa.int64()),
    "c_bigint": ("bigint", pa.int64()),
    "c_bigint_u": ("bigint unsigned", pa.decimal128(20, 0)),
    "c_decimal": ("decimal(38,9)", pa.decimal128(38, 9)),
    "c_decimal_u": ("decimal(5,2) unsigned", pa.decimal128(5, 2)),
    "c_float": ("float", pa.float32()),
    "c_double": ("double", pa.float64()),
    "c_datetime": ("datetime(6)", pa.timestamp("us")),
    "c_datetime0": ("datetime", pa.timestamp("us")),
    "c_timestamp": ("timestamp(6) NULL", pa.timestamp("us", tz="UTC")),
    "c_date": ("date", pa.date32()),
    "c_time": ("time(6)", pa.time64("us")),
    "c_json": ("json", pa.string()),
    "c_blob": ("blob", pa.binary()),
    "c_binary": ("binary(4)", pa.binary()),
    "c_varbinary": ("varbinary(10)", pa.binary()),
    "c_enum": ("enum('a','b','ü')", pa.string()),
    "c_set": ("set('x','y')", pa.string()),
    "c_varchar": ("varchar(50)", pa.string()),
    "c_text": ("text", pa.string()),
    "c_char": ("char(3)", pa.string()),
    "c_year": ("year", pa.int16()),
    "c_bit": ("bit(10)", pa.int64()),
    "c_bit64": ("bit(64)", pa.decimal128(20, 0)),
}

EDGE_ROWS = [
    (1, 1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
     18446744073709551615, "99999999999999999999999999999.999999999", "999.99", 3.4028234e38,
     1.7976931348623157e308, "9999-12-31 23:59:59.999999", "9999-12-31 23:59:59",
     "2038-01-19 03:14:07.999999", "9999-12-31", "23:59:59.999999", '{"a": [1, 2, {"b": null}], "é": "ü"}',
     b"\x00\xff", b"ab",
     b"\x00\x01", "ü", "x,y", "héllo wörld ✓ 日本語 🎉", "t" * 1000, "abc", 2155, 0b1111111111, 2**64 - 1),
    (2, 0, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
     "-99999999999999999999999999999.999999999", "0.00", -3.4028234e38, 2.2250738585072014e-308,
     "1000-01-01 00:00:00.000000", "1000-01-01 00:00:00", "1970-01-01 00:00:01.000000", "1000-01-01",
     "00:00:00", "[]", b"", b"\x00\x00\x00\x00", b"", "a", "", "", "", "", 1901, 0, 0),
    (3, *([None] * len(ALL_TYPES))),
    (4, None, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, "0.000000001", "0.01", 0.1, -0.0, "2024-03-10 01:02:03.123456",
     "1969-12-31 23:59:59", "2024-03-10 01:02:03.123456", "1969-12-31", "12:00:00.000001", "null", b"\x00",
     b"\x01", b" ", "b", "y", " ", " ", " ", 2000, 1, 1),
]


UPPER_BOUNDS = [
    datetime(2024, 1, 1, 14, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
    "2024-01-01T12:00:00.999999Z",
]


def source(config, **spec):
    return build_source({"type": "mysql", **spec}, config)


def open_source(config, **spec):
    """Open (and close) a source: enough to raise the errors found while connecting and planning."""
    source(config, **spec).open(None, ReadBounds()).close()


def create_table(my, name, columns: dict[str, str]):
    body = ", ".join(f"`{col}` {decl}" for col, decl in columns.items())
    with my.cursor() as cur:
        cur.execute(f"CREATE TABLE `{name}` ({body})")


def execute(my, sql, args=None):
    with my.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def as_reference(column, value):
    """The driver's value in the form the Arrow value takes (pymysql decodes to other Python types)."""
    if value is None:
        return None
    if column == "c_time":
        return (datetime.min + value).time()
    if column in ("c_bit", "c_bit64"):
        return int.from_bytes(value, "big")
    if column == "c_timestamp":
        return value.replace(tzinfo=timezone.utc)
    return value


def test_every_type_matches_the_driver(my, my_db, read_all):
    create_table(my, "all_types", {"id": "int primary key", **{c: d for c, (d, _) in ALL_TYPES.items()}})
    with my.cursor() as cur:
        placeholders = ", ".join(["%s"] * (len(ALL_TYPES) + 1))
        cur.executemany(f"INSERT INTO all_types VALUES ({placeholders})", EDGE_ROWS)
        cur.execute("SET time_zone = '+05:30'")  # a TIMESTAMP written at a non-UTC offset
        cur.execute("UPDATE all_types SET c_timestamp = '2024-03-10 01:02:03.123456' WHERE id = 4")
        cur.execute("SET time_zone = '+00:00'")
    table, state = read_all(source(my_db, table="all_types"))

    assert state is None
    # The primary key is NOT NULL, so its field is not nullable (a required Iceberg column).
    id_field = pa.field("id", pa.int32(), nullable=False)
    assert table.schema == pa.schema([id_field] + [(c, t) for c, (_, t) in ALL_TYPES.items()])
    # The text protocol prints FLOAT with 6 digits; the source reads it as DOUBLE, exactly: so does
    # the reference query.
    select = ", ".join("CAST(c_float AS DOUBLE)" if c == "c_float" else f"`{c}`" for c in ["id", *ALL_TYPES])
    theirs = execute(my, f"SELECT {select} FROM all_types ORDER BY id")
    ours = table.sort_by("id").to_pylist()
    for our_row, their_row in zip(ours, theirs, strict=True):
        for (column, ours_value), theirs_value in zip(our_row.items(), their_row, strict=True):
            if column == "c_float" and theirs_value is not None:
                theirs_value = pa.scalar(theirs_value, pa.float32()).as_py()
            assert ours_value == as_reference(column, theirs_value), (our_row["id"], column)
    assert all(value is None for key, value in ours[2].items() if key != "id")
    assert ours[0]["c_float"] == pa.scalar(3.4028234e38, pa.float32()).as_py()
    assert ours[0]["c_bigint_u"] == Decimal(2**64 - 1) and ours[0]["c_bool"] is True
    assert ours[3]["c_timestamp"] == datetime(2024, 3, 9, 19, 32, 3, 123456, tzinfo=timezone.utc)
    assert ours[1]["c_text"] == "" and ours[1]["c_binary"] == b"\x00" * 4


@pytest.mark.parametrize(
    ("declaration", "value", "message"),
    [
        ("tinyint(1)", 2, "tinyint\\(1\\), read as boolean, but holds 2"),
        ("time", "-01:00:00", "not a time of day"),
        ("time", "25:00:00", "not a time of day"),
        ("date", "0000-00-00", "not an exact date32"),
    ],
)
def test_values_arrow_cannot_hold_fail_naming_the_column(my, my_db, read_all, declaration, value, message):
    execute(my, "SET SESSION sql_mode = ''")  # lets the zero date in
    create_table(my, "edge", {"odd value": declaration})
    execute(my, "INSERT INTO edge VALUES (%s)", (value,))
    with pytest.raises(SourceError, match=message) as caught:
        read_all(source(my_db, table="edge"))
    assert "'odd value'" in str(caught.value) and f"{my_db.database}.edge" in str(caught.value)


def test_unsupported_types_are_named_and_can_be_cast_in_a_query(my, my_db, read_all):
    create_table(my, "odd", {"id": "int", "wide": "decimal(65,30)", "shape": "point"})
    execute(my, "INSERT INTO odd VALUES (1, 1.5, POINT(1, 2))")
    with pytest.raises(UnsupportedTypeError) as caught:
        read_all(source(my_db, table="odd"))
    assert "'wide' has type decimal(65,30)" in str(caught.value)
    assert "'shape' has MySQL type geometry" in str(caught.value)
    query = "SELECT id, CAST(wide AS DECIMAL(38,30)) AS wide, ST_AsText(shape) AS shape FROM odd"
    table, _ = read_all(source(my_db, query=query))
    assert table.to_pylist() == [{"id": 1, "wide": Decimal("1.5"), "shape": "POINT(1 2)"}]


def test_query_columns_case_identity_and_lineage(my, my_db, read_all):
    create_table(my, "t", {"id": "bigint", "Name": "varchar(10)"})
    execute(my, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    query = "SELECT id, UPPER(Name) AS shout, id * 2 AS twice FROM t WHERE Name LIKE '%'"
    table, _ = read_all(source(my_db, query=query, columns=["TWICE", "shout"]))
    assert table.sort_by("twice").to_pylist() == [{"twice": 2, "shout": "A"}, {"twice": 4, "shout": "B"}]
    newer, state = read_all(source(my_db, query=query, cursor="twice"), {"watermark": 2, "cursor": "twice"})
    assert newer.to_pylist() == [{"id": 2, "shout": "B", "twice": 4}] and state["watermark"] == 4
    src = source(my_db, table="t", cursor="id", columns=["name"])
    assert read_all(src)[0].column_names == ["Name", "id"]
    assert src.identity == f"mysql://127.0.0.1:3306/{my_db.database}/{my_db.database}.t?cursor=id"
    assert (src.lineage.namespace, src.lineage.name) == ("mysql://127.0.0.1:3306", f"{my_db.database}.t")


def fill_big(my, rows=300_000):
    create_table(my, "big", {"id": "int", "payload": "varchar(200)"})
    with my.cursor() as cur:
        cur.executemany("INSERT INTO big VALUES (%s, %s)", [(i, "x" * 200) for i in range(rows)])


def test_reads_stream_from_the_server_in_small_batches(my, my_db):
    fill_big(my)
    with source(my_db, table="big", batch_rows=5_000).open(None, ReadBounds()) as stream:
        batches = iter(stream)
        first = next(batches)
        # The unbuffered query is still sending while we hold the first batch: nothing was fetched whole.
        running = execute(
            my,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
            (f"%{my_db.database}%",),
        )[0][0]
        rest = list(batches)
    sizes = [first.num_rows] + [b.num_rows for b in rest]
    assert running == 1
    assert sum(sizes) == 300_000 and max(sizes) == 5_000 and len(sizes) == 60
    assert stream.report.details["rows"] == 300_000


def test_stopping_early_drops_the_query_without_draining_it(my, my_db):
    fill_big(my)
    started = time.monotonic()
    with source(my_db, table="big", batch_rows=1_000).open(None, ReadBounds()) as stream:
        next(iter(stream))
    assert time.monotonic() - started < 5


@pytest.fixture
def events(my, my_db):
    create_table(my, "events", {"id": "int", "updated_at": "datetime(6)", "stamped": "timestamp(6) NULL"})
    insert_events(my, [
        (1, "2024-01-01 08:00:00.000001"), (2, "2024-01-01 14:30:00.5"), (3, "2024-01-01 12:00:00.999999"),
    ])
    return my_db


def insert_events(my, rows):
    with my.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s)", [(i, at, at) for i, at in rows])


def ids(table):
    return sorted(table.column("id").to_pylist())


@pytest.mark.parametrize(("cursor", "suffix"), [("updated_at", ""), ("stamped", "+00:00")])
def test_incremental_second_run_reads_exactly_the_new_rows(my, events, read_all, cursor, suffix):
    src = source(events, table="events", cursor=cursor)
    first, state = read_all(src)
    assert ids(first) == [1, 2, 3]
    assert state == {"watermark": f"2024-01-01T14:30:00.500000{suffix}", "cursor": cursor}
    insert_events(my, [
        (4, "2024-01-01 14:30:00.500001"), (5, "2024-01-01 15:00:00"), (6, "2024-01-01 14:30:00.5"),
    ])
    second, state2 = read_all(src, state)
    assert ids(second) == [4, 5]
    assert state2["watermark"] == f"2024-01-01T15:00:00.000000{suffix}"
    third, state3 = read_all(src, state2)
    assert third.num_rows == 0 and state3 == state2


def test_lookback_rereads_late_rows(my, events, read_all):
    src = source(events, table="events", cursor="updated_at", lookback="1h")
    _, state = read_all(src)
    insert_events(my, [(7, "2024-01-01 14:00:00"), (8, "2024-01-01 13:00:00")])
    again, state2 = read_all(src, state)
    assert src.may_repeat_rows is True
    assert ids(again) == [2, 7] and state2 == state
    assert ids(read_all(src, state, ReadBounds(lookback=timedelta(hours=3)))[0]) == [2, 3, 7, 8]


@pytest.mark.parametrize("upper", UPPER_BOUNDS)
@pytest.mark.parametrize("cursor", ["updated_at", "stamped"])
def test_upper_bound_is_inclusive_and_cast_on_the_server(events, read_all, upper, cursor):
    table, state = read_all(source(events, table="events", cursor=cursor), None, ReadBounds(upper=upper))
    assert ids(table) == [1, 3]
    assert state["watermark"].startswith("2024-01-01T12:00:00.999999")


def test_numeric_cursors_keep_exact_watermarks(my, my_db, read_all):
    create_table(my, "n", {"id": "bigint unsigned", "amount": "decimal(20,6)"})
    execute(my, "INSERT INTO n VALUES (18446744073709551615, 12345678901234.123456), (1, 0.000001)")
    assert read_all(source(my_db, table="n", cursor="id"))[1]["watermark"] == "18446744073709551615"
    by_amount = source(my_db, table="n", cursor="amount", lookback="1")
    _, state = read_all(by_amount)
    assert state["watermark"] == "12345678901234.123456"
    execute(my, "INSERT INTO n VALUES (2, 12345678901233.5), (3, 12345678901233.1)")
    assert ids(read_all(by_amount, state)[0]) == [2, 18446744073709551615]


def test_hostile_names_are_quoted_not_executed(my, my_db, read_all):
    table = "ta`ble; DROP TABLE canary; -- ü.dot"
    columns = {"`quoted` col": "int", "semi;colon": "text", "ünïcode spaced": "text", "per%cent %s": "text",
               "up`dated at": "datetime(6)"}
    create_table(my, "canary", {"id": "int"})
    create_table(my, table.replace("`", "``"), {c.replace("`", "``"): d for c, d in columns.items()})
    execute(my, f"INSERT INTO `{table.replace('`', '``')}` VALUES (1, 'a', 'ü', '%s', '2024-01-01'), "
                "(2, 'b', 'ñ', '$1', '2024-02-01')")
    src = source(my_db, schema=my_db.database, table=table, cursor="up`dated at",
                 columns=["semi;colon", "`quoted` col", "per%cent %s"])
    rows, state = read_all(src, {"watermark": "2023-12-31T00:00:00", "cursor": "up`dated at"},
                           ReadBounds(upper="2024-01-15T00:00:00Z"))
    assert rows.to_pylist() == [
        {"semi;colon": "a", "`quoted` col": 1, "per%cent %s": "%s", "up`dated at": datetime(2024, 1, 1)}
    ]
    assert state["watermark"] == "2024-01-01T00:00:00.000000"
    assert execute(my, "SELECT COUNT(*) FROM canary")[0][0] == 0


def test_wrong_password_names_the_server_and_hides_the_password(mysql_config):
    secret = "Sup3r-S3cret%pass"
    with pytest.raises(SourceError) as caught:
        open_source(dataclasses.replace(mysql_config, password=secret), table="t")
    message = str(caught.value)
    assert "mysql://127.0.0.1:3306/test" in message and "Access denied" in message and "'root'" in message
    assert secret not in message


def test_unknown_database_and_unreachable_server(mysql_config):
    with pytest.raises(SourceError, match="Unknown database 'dativo_no_such_db'"):
        open_source(dataclasses.replace(mysql_config, database="dativo_no_such_db"), table="t")
    unreachable = dataclasses.replace(mysql_config, port=1, options={"connect_timeout": "2"})
    with pytest.raises(TransientError, match="127.0.0.1:1"):
        open_source(unreachable, table="t")
    with pytest.raises(ConfigError, match="unknown option"):
        open_source(dataclasses.replace(mysql_config, options={"sslmode": "require"}), table="t")


def test_missing_table_column_and_cursor_are_named(my, my_db):
    create_table(my, "t", {"id": "int", "at": "datetime", "name": "text"})
    db = my_db.database
    with pytest.raises(SourceError, match=f"{db}: describing table {db}.nope failed.*doesn.t exist"):
        open_source(my_db, table="nope")
    with pytest.raises(SourceError, match=r"column\(s\) \['ghost'\] not found in table"):
        open_source(my_db, table="t", columns=["id", "ghost"])
    with pytest.raises(SourceError, match="cursor column 'changed' not found"):
        open_source(my_db, table="t", cursor="changed")
    with pytest.raises(ConfigError, match="cursor column 'name' has type string"):
        open_source(my_db, table="t", cursor="name")
    with pytest.raises(ConfigError, match="must be a duration"):
        open_source(my_db, table="t", cursor="at", lookback=5)
