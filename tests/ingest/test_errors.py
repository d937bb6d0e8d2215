"""Refused runs say what and where, and leave no table behind; racing creators both land their rows.

Database cases run on the real servers: PostgreSQL's BC dates, MariaDB's year 0, a zero-column table.
"""

from __future__ import annotations

import threading
import uuid

import pyarrow as pa
import pytest

from dativo_provider.connections import DatabaseConfig
from dativo_provider.exceptions import ConcurrentRunError, SourceError, TerminalError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds, Source, SourceStream
from tests.ingest.test_concurrency import CATALOG_VARIANTS
from tests.memory_source import TableSource


@pytest.fixture
def lake(tmp_path) -> CatalogConfig:
    return embedded_catalog(tmp_path / "lake")


def _exists(config: CatalogConfig, table: str) -> bool:
    return config.load().table_exists(table)


def _pg_source(config: DatabaseConfig, **spec) -> Source:
    return build_source({"type": "postgres", **spec}, config)


# --- dates outside the years 1-9999 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "bc_value"),
    [
        ("date", "date '0044-03-15 BC'"),
        ("timestamp", "timestamp '0044-03-15 12:00:00 BC'"),
        ("timestamptz", "timestamptz '0044-03-15 12:00:00+00 BC'"),
    ],
)
def test_a_bc_date_is_refused_naming_table_column_and_row(pg, pg_schema, postgres_config, lake, declared,
                                                           bc_value):
    pg.execute(f'CREATE TABLE "{pg_schema}".events (id int, happened {declared})')
    pg.execute(f"INSERT INTO \"{pg_schema}\".events VALUES (1, '2020-01-01'), (2, {bc_value}), (3, '2021-01-01')")
    with pytest.raises(SourceError) as caught:
        run_ingest(_pg_source(postgres_config, table=f"{pg_schema}.events"), lake, "raw.events")
    message = str(caught.value)
    assert message.startswith("raw.events: column 'happened' holds a date before year 1 (BC) in row 2 ")
    assert "CASE WHEN happened < '0001-01-01' THEN NULL ELSE happened END" in message
    assert "0044" not in message  # the value itself may be personal data
    assert isinstance(caught.value, TerminalError)
    assert not _exists(lake, "raw.events")


def test_a_bc_cursor_value_is_refused_naming_the_cursor(pg, pg_schema, postgres_config, lake):
    pg.execute(f'CREATE TABLE "{pg_schema}".events (id int, day date)')
    pg.execute(f"INSERT INTO \"{pg_schema}\".events VALUES (1, date '0044-03-15 BC')")
    source = _pg_source(postgres_config, table=f"{pg_schema}.events", cursor="day")
    with pytest.raises(SourceError, match="cursor column 'day' holds a date before year 1 \\(BC\\), which cannot "
                                          "be a watermark") as caught:
        run_ingest(source, lake, "raw.events")
    assert f"{pg_schema}.events" in str(caught.value)
    assert not _exists(lake, "raw.events")


def test_mariadb_cannot_store_bc_dates_but_year_zero_is_refused(my, my_db, lake):
    with my.cursor() as cur:
        cur.execute(f"CREATE TABLE `{my_db.database}`.t (id int, d date, at datetime)")
        with pytest.raises(Exception, match="Incorrect date value"):
            cur.execute(f"INSERT INTO `{my_db.database}`.t VALUES (1, '-0044-03-15', NULL)")
        cur.execute(f"INSERT INTO `{my_db.database}`.t VALUES (1, '2020-01-01', NULL), "
                    "(2, '0000-03-15', '0000-03-15 12:00:00')")
    source = build_source({"type": "mysql", "table": "t"}, my_db)
    with pytest.raises(SourceError) as caught:
        run_ingest(source, lake, "raw.t")
    assert str(caught.value).startswith("raw.t: column 'd' holds a date before year 1 (BC) in row 2 ")
    assert not _exists(lake, "raw.t")


def test_a_year_after_9999_is_refused_for_any_source(lake):
    days = pa.array([0, 3_000_000], pa.date32())  # 1970-01-01 and a day in year 10183
    rows = pa.table({"id": pa.array([1, 2], pa.int64()), "due": days})
    with pytest.raises(SourceError, match="raw.t: column 'due' holds a date after year 9999 in row 2 "):
        run_ingest(TableSource(rows), lake, "raw.t")


def test_rows_are_counted_across_batches(lake):
    days = pa.array([0] * 5 + [None, None, -800_000], pa.date32())  # row 8 is in year -221 (222 BC)
    rows = pa.table({"id": pa.array(range(8), pa.int64()), "d": days})
    with pytest.raises(SourceError, match="column 'd' holds a date before year 1 \\(BC\\) in row 8 "):
        run_ingest(TableSource(rows, batch_rows=3), lake, "raw.t")


# --- nothing left behind by a refused run ---------------------------------------------------------


def test_a_refused_first_run_leaves_no_table_and_a_refused_later_run_changes_nothing(lake):
    good = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    with pytest.raises(ConnectionError, match="lost mid-stream"):
        run_ingest(TableSource(good, batch_rows=1, fail_after_batches=1), lake, "raw.t")
    assert not _exists(lake, "raw.t")
    assert not list(_warehouse(lake).rglob("*.parquet"))

    first = run_ingest(TableSource(good), lake, "raw.t")
    assert first.schema_changes == ["created raw.t with 2 columns"]
    bad = pa.table({"id": pa.array([3], pa.int64()), "name": ["c"], "born": pa.array([-800_000], pa.date32())})
    with pytest.raises(SourceError, match="column 'born' holds a date before year 1"):
        run_ingest(TableSource(bad, identity="memory://other"), lake, "raw.t")
    table = lake.load().load_table("raw.t")
    assert table.current_snapshot().snapshot_id == first.snapshot_id
    assert table.scan().to_arrow()["id"].to_pylist() == [1, 2]


def _warehouse(config: CatalogConfig):
    from pathlib import Path

    return Path(config.properties["warehouse"].removeprefix("file://"))


def test_an_empty_first_run_still_creates_the_table(lake):
    empty = pa.table({"id": pa.array([], pa.int64())})
    result = run_ingest(TableSource(empty), lake, "raw.empty")
    assert _exists(lake, "raw.empty") and result.snapshot_id is None


def test_a_source_without_columns_is_refused(pg, pg_schema, postgres_config, lake):
    pg.execute(f'CREATE TABLE "{pg_schema}".nothing ()')
    pg.execute(f'INSERT INTO "{pg_schema}".nothing DEFAULT VALUES')
    with pytest.raises(SourceError) as caught:
        run_ingest(_pg_source(postgres_config, table=f"{pg_schema}.nothing"), lake, "raw.nothing")
    assert str(caught.value) == (
        f"postgres://127.0.0.1:5432/test/{pg_schema}.nothing has no columns, so there is nothing to load into "
        "raw.nothing; read a table or query that has columns (or list them in the source's 'columns')"
    )
    assert not _exists(lake, "raw.nothing")


# --- two runs creating one table at the same time -------------------------------------------------


class _HeldSource(TableSource):
    """Stops before its first batch (its table is staged by then) until ``go`` is set."""

    def __init__(self, rows: pa.Table, identity: str, staged: threading.Event, go: threading.Event):
        super().__init__(rows, identity=identity)
        self.staged, self.go = staged, go

    def open(self, state, bounds: ReadBounds) -> SourceStream:
        return _HeldStream(super().open(state, bounds), self.staged, self.go)


class _HeldStream(SourceStream):
    def __init__(self, stream: SourceStream, staged: threading.Event, go: threading.Event):
        self._stream, self._staged, self._go = stream, staged, go
        self.report = stream.report

    @property
    def schema(self) -> pa.Schema:
        return self._stream.schema

    def __iter__(self):
        self._staged.set()
        assert self._go.wait(60)
        yield from self._stream

    def state(self):
        return self._stream.state()


def _race(config: CatalogConfig, first_identity: str, second_identity: str):
    """The second run stages the table, the first creates it and commits, then the second commits."""
    staged, go, never = threading.Event(), threading.Event(), threading.Event()
    never.set()
    rows = {n: pa.table({"id": pa.array(range(n * 100, n * 100 + 100), pa.int64())}) for n in (1, 2)}
    outcome: dict[str, object] = {}

    def second():
        try:
            outcome["second"] = run_ingest(_HeldSource(rows[2], second_identity, staged, go), config, "raw.t")
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            outcome["second"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    assert staged.wait(60)
    outcome["first"] = run_ingest(_HeldSource(rows[1], first_identity, threading.Event(), never), config, "raw.t")
    go.set()
    thread.join(120)
    return outcome


def _postgres_catalog(tmp_path, postgres_config) -> CatalogConfig:
    c = postgres_config
    return CatalogConfig(
        name=f"errors_{uuid.uuid4().hex[:8]}",
        properties={"type": "sql", "uri": f"postgresql+psycopg://{c.user}@{c.host}:{c.port}/{c.database}",
                    "warehouse": f"file://{tmp_path / 'warehouse'}"},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def race_catalog(request, tmp_path) -> CatalogConfig:
    if request.param == "sqlite":
        return embedded_catalog(tmp_path / "lake")
    return _postgres_catalog(tmp_path, request.getfixturevalue("postgres_config"))


@pytest.mark.parametrize("catalog_class", CATALOG_VARIANTS)
def test_the_loser_of_a_create_race_appends_to_the_winners_table(race_catalog, catalog_class, monkeypatch):
    if catalog_class == "dbapi":
        monkeypatch.setattr("dativo_provider.iceberg.catalog.sql_catalog_class", _dbapi_class)
    outcome = _race(race_catalog, "memory://run-1", "memory://run-2")
    first, second = outcome["first"], outcome["second"]
    assert not isinstance(second, Exception), second
    assert first.schema_changes == ["created raw.t with 1 columns"] and first.commit_attempts == 1
    assert second.commit_attempts == 2  # the create lost, then an ordinary append on the winner's table
    table = race_catalog.load().load_table("raw.t")
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == list(range(100, 300))
    assert [s.parent_snapshot_id for s in table.snapshots()] == [None, first.snapshot_id]


def _dbapi_class():
    from dativo_provider.iceberg.dbapi_catalog import DbApiCatalog

    return DbApiCatalog


def test_overlapping_runs_of_one_source_refuse_the_second_clearly(lake):
    outcome = _race(lake, "memory://same", "memory://same")
    assert isinstance(outcome["second"], ConcurrentRunError)
    assert "another run of memory://same committed snapshot" in str(outcome["second"])
    assert sorted(lake.load().load_table("raw.t").scan().to_arrow()["id"].to_pylist()) == list(range(100, 200))



def test_an_api_record_outside_the_calendar_is_named_by_its_id():
    from dativo_provider.sources.records import Column, arrow_schema, to_batch

    columns = [Column("id", "string", ("id",)), Column("created", "unix", ("created",))]
    records = [{"id": "ch_1", "created": 1_700_000_000}, {"id": "ch_2", "created": 300_000_000_000}]
    with pytest.raises(SourceError, match="stripe charges: column 'created' \\(unix\\) holds a date after year 9999 "
                                          "in record 'ch_2'; "):
        to_batch(records, columns, arrow_schema(columns), "stripe charges")
