"""The SQL sources' ``key_range``: a server-side slice of a table or query (one part of a split ingest),
against the real Postgres and MySQL servers."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds


def _read(source, state=None, bounds=None):
    with source.open(state, bounds or ReadBounds()) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema), stream.state(), stream.report.details


@pytest.fixture
def pg_events(pg, pg_schema):
    pg.execute(f'create table "{pg_schema}".events (id int primary key, k bigint, at timestamp, day date)')
    pg.execute(f'insert into "{pg_schema}".events select g, case when g % 10 = 0 then null else g end, '
               "timestamp '2024-01-01' + g * interval '1 hour', date '2024-01-01' + g from generate_series(1, 100) g")
    return f"{pg_schema}.events"


@pytest.mark.postgres
def test_postgres_ranges_cover_every_row_once_and_run_on_the_server(pg_events, postgres_config):
    ranges = [(None, 30), (30, 70), (70, None)]
    ids = []
    for lower, upper in ranges:
        spec = {"type": "postgres", "table": pg_events, "columns": ["id"],
                "key_range": {"column": "k", "lower": lower, "upper": upper}}
        source = build_source(spec, postgres_config)
        table, _, details = _read(source)
        ids.append(sorted(table["id"].to_pylist()))
        assert "WHERE" in details["sql"] and "dativo.key_" in details["sql"]
    nulls = list(range(10, 101, 10))
    assert ids[0] == sorted({*range(1, 30), *nulls}), "null keys go to the range without a lower bound"
    assert ids[1] == [i for i in range(30, 70) if i % 10]
    assert ids[2] == [i for i in range(70, 101) if i % 10]
    assert source.identity == build_source({"type": "postgres", "table": pg_events, "columns": ["id"]},
                                           postgres_config).identity
    assert source.primary_key() == ["id"]


@pytest.mark.postgres
def test_postgres_key_range_combines_with_the_cursor_window_on_dates_and_timestamps(pg_events, postgres_config):
    spec = {"type": "postgres", "table": pg_events, "cursor": "at",
            "key_range": {"column": "day", "lower": "2024-01-11", "upper": "2024-01-21"}}
    source = build_source(spec, postgres_config)
    table, state, _ = _read(source, {"watermark": "2024-01-01T15:00:00", "cursor": "at"},
                            ReadBounds(upper="2024-01-01T17:00:00"))
    assert sorted(table["id"].to_pylist()) == [16, 17]
    assert state["watermark"] == "2024-01-01T17:00:00.000000"
    extent = source.extent("id", None, ReadBounds())
    assert (extent.low, extent.high) == (10, 19)


@pytest.mark.postgres
def test_postgres_key_range_errors_name_the_column(pg_events, postgres_config):
    bad_column = {"type": "postgres", "table": pg_events, "key_range": {"column": "nope", "upper": 3}}
    with pytest.raises(SourceError, match="'key_range' column 'nope' not found"):
        _read(build_source(bad_column, postgres_config))
    wrong_type = {"type": "postgres", "table": pg_events, "key_range": {"column": "at", "lower": 5}}
    with pytest.raises(ConfigError, match="bound 5 cannot be compared with cursor 'at'"):
        _read(build_source(wrong_type, postgres_config))


@pytest.mark.mysql
def test_mysql_ranges_cover_every_row_once(my, my_db):
    with my.cursor() as cur:
        cur.execute("create table events (id int primary key, k bigint null, at datetime(6))")
        cur.execute("insert into events with recursive g(n) as (select 1 union all select n + 1 from g where n < 100) "
                    "select n, if(n % 10 = 0, null, n), timestamp('2024-01-01') + interval n hour from g")
    ids = []
    for lower, upper in [(None, 30), (30, 70), (70, None)]:
        spec = {"type": "mysql", "table": "events", "key_range": {"column": "K", "lower": lower, "upper": upper}}
        ids.append(sorted(_read(build_source(spec, my_db))[0]["id"].to_pylist()))
    assert sorted(ids[0] + ids[1] + ids[2]) == list(range(1, 101))
    assert ids[1] == [i for i in range(30, 70) if i % 10]
    source = build_source({"type": "mysql", "table": "events", "cursor": "at",
                           "key_range": {"column": "at", "lower": "2024-01-02 00:00:00"}}, my_db)
    assert source.primary_key() == ["id"]
    extent = source.extent("at", {"watermark": "2024-01-04T00:00:00", "cursor": "at"}, ReadBounds())
    assert (extent.low.isoformat(), extent.high.isoformat()) == ("2024-01-04T01:00:00", "2024-01-05T04:00:00")


@pytest.mark.parametrize(("key_range", "message"), [
    ("id", "must be a mapping"),
    ({"column": "id", "lowr": 1}, r"unknown key\(s\) \['lowr'\]"),
    ({"lower": 1}, "'column' must be a column name"),
    ({"column": "id", "lower": True}, "'lower' must be a number, a date"),
    ({"column": "id", "lower": 5, "upper": 5}, r"'lower' \(5\) must be below 'upper' \(5\)"),
])
def test_key_range_spec_errors_name_the_key(key_range, message):
    from dativo_provider.connections import DatabaseConfig

    spec = {"type": "postgres", "table": "t", "key_range": key_range}
    with pytest.raises(ConfigError, match=message):
        build_source(spec, DatabaseConfig(host="h", user="u", database="d"))
