"""Concurrent writers on one table, in real separate processes, on SQLite and Postgres catalogs.

Each runs with the SQL catalog class of this environment (pyiceberg's SqlCatalog where SQLAlchemy 2 is
installed) and again with DbApiCatalog forced, the class Airflow versions without SQLAlchemy 2 get.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pyarrow as pa
import pytest

from dativo_provider.iceberg import catalog as catalog_module
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog, sql_catalog_class
from dativo_provider.iceberg.dbapi_catalog import DbApiCatalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions

WRITERS = 4
ROWS_PER_WRITER = 20_000


def _force_dbapi_catalog() -> None:
    catalog_module.sql_catalog_class = lambda: DbApiCatalog


#: Where SQLAlchemy < 2 makes DbApiCatalog the default, the forced variant would repeat the default.
CATALOG_VARIANTS = ["default"] + (["dbapi"] if sql_catalog_class() is not DbApiCatalog else [])


@pytest.fixture(params=CATALOG_VARIANTS)
def sql_catalog(request, monkeypatch) -> str:
    """Which SQL catalog class the test (and its writer processes) use."""
    if request.param == "dbapi":
        monkeypatch.setattr(catalog_module, "sql_catalog_class", lambda: DbApiCatalog)
    return request.param


def _writer(config: CatalogConfig, number: int, start_at: float, results, sql_catalog: str) -> None:
    from tests.memory_source import TableSource

    if sql_catalog == "dbapi":
        _force_dbapi_catalog()
    ids = pa.array(range(number * ROWS_PER_WRITER, (number + 1) * ROWS_PER_WRITER), pa.int64())
    rows = pa.table({"id": ids, "writer": pa.array([number] * ROWS_PER_WRITER, pa.int32())})
    source = TableSource(rows, identity=f"memory://writer-{number}", batch_rows=2_000)
    time.sleep(max(0.0, start_at - time.time()))
    result = run_ingest(source, config, "lake.shared", WriteOptions(max_commit_attempts=20))
    results.put((number, result.rows_written, result.commit_attempts))


def _run_writers(config: CatalogConfig, sql_catalog: str) -> list[tuple[int, int, int]]:
    # Create the table first so the race is on commits, the part under test.
    from tests.memory_source import TableSource

    empty = pa.table({"id": pa.array([], pa.int64()), "writer": pa.array([], pa.int32())})
    run_ingest(TableSource(empty, identity="memory://setup"), config, "lake.shared")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 4.0  # after every spawned interpreter has imported pyiceberg
    workers = [
        context.Process(target=_writer, args=(config, n, start_at, results, sql_catalog)) for n in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert [w.exitcode for w in workers] == [0] * WRITERS
    return sorted(results.get(timeout=5) for _ in range(WRITERS))


def _assert_no_row_lost(config: CatalogConfig) -> None:
    table = config.load().load_table("lake.shared").scan().to_arrow()
    assert table.num_rows == WRITERS * ROWS_PER_WRITER
    assert sorted(table["id"].to_pylist()) == list(range(WRITERS * ROWS_PER_WRITER))


def test_four_processes_append_to_one_table_on_sqlite(tmp_path, sql_catalog):
    config = embedded_catalog(tmp_path / "lake")
    outcomes = _run_writers(config, sql_catalog)
    assert [rows for _, rows, _ in outcomes] == [ROWS_PER_WRITER] * WRITERS
    _assert_no_row_lost(config)


@pytest.mark.postgres
def test_four_processes_append_to_one_table_on_a_postgres_catalog(tmp_path, postgres_config, sql_catalog):
    config = CatalogConfig(
        name=f"concurrency_{uuid.uuid4().hex[:8]}",
        properties={
            "type": "sql",
            "uri": f"postgresql+psycopg://{postgres_config.user}@{postgres_config.host}:{postgres_config.port}/"
            f"{postgres_config.database}",
            "warehouse": f"file://{tmp_path / 'warehouse'}",
        },
    )
    outcomes = _run_writers(config, sql_catalog)
    assert [rows for _, rows, _ in outcomes] == [ROWS_PER_WRITER] * WRITERS
    _assert_no_row_lost(config)


class _StaleOnce:
    """A catalog whose first load returns an outdated table: exactly what a lost race looks like."""

    def __init__(self, catalog, stale):
        self.catalog = catalog
        self.stale = stale

    def load_table(self, identifier):
        stale, self.stale = self.stale, None
        return stale or self.catalog.load_table(identifier)


def test_a_lost_commit_race_is_retried_with_the_same_files(tmp_path):
    from dativo_provider.iceberg.commit import CommitPlan, commit
    from dativo_provider.iceberg.writer import DataFileWriter
    from tests.memory_source import TableSource

    config = embedded_catalog(tmp_path / "lake")
    first = pa.table({"id": pa.array([1, 2], pa.int64())})
    run_ingest(TableSource(first, identity="memory://a"), config, "lake.t")
    catalog = config.load()
    stale = catalog.load_table("lake.t")
    run_ingest(TableSource(pa.table({"id": pa.array([3], pa.int64())}), identity="memory://b"), config, "lake.t")

    writer = DataFileWriter(stale, [], 1 << 20)
    writer.write(pa.table({"id": pa.array([4, 5], pa.int64())}))
    plan = CommitPlan(identifier="lake.t", mode="append", branch="main", new_files=writer.close(),
                      properties={}, source_identity="memory://c", expected_state_snapshot=None,
                      track_state=False)
    outcome = commit(_StaleOnce(catalog, stale), plan, max_attempts=3)
    assert outcome.attempts == 2
    assert sorted(catalog.load_table("lake.t").scan().to_arrow()["id"].to_pylist()) == [1, 2, 3, 4, 5]
