"""DbApiCatalog: pyiceberg's SQL catalog on sqlite3 and psycopg, for Airflow versions without SQLAlchemy 2.

The engine runs against it on SQLite and on the Postgres test server; a warehouse written by either it
or pyiceberg's SqlCatalog is read and extended by the other.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import uuid

import pyarrow as pa
import pytest
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)

from dativo_provider.iceberg import catalog as catalog_module
from dativo_provider.iceberg.catalog import CatalogConfig, sql_catalog_class
from dativo_provider.iceberg.dbapi_catalog import DDL, DbApiCatalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from tests.memory_source import TableSource


def _sqlalchemy_2() -> bool:
    if importlib.util.find_spec("sqlalchemy") is None:
        return False
    import sqlalchemy

    return int(sqlalchemy.__version__.split(".")[0]) >= 2


SQLALCHEMY_2 = _sqlalchemy_2()
ROWS = pa.table({"id": pa.array(range(3_000), pa.int64()), "name": [f"n{i}" for i in range(3_000)]})
ID_ONLY = pa.schema([("id", pa.int64())])
#: pyiceberg retries a failed append on the new head; without retries the conflict reaches the caller.
NO_RETRIES = {"commit.retry.num-retries": "0"}


def _ids(*values: int) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.int64())})


def _config(backend: str, tmp_path, request) -> CatalogConfig:
    """A fresh catalog on ``backend``: its own SQLite file, or its own catalog name on Postgres."""
    if backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        pg = request.getfixturevalue("postgres_config")
        uri = f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    name = f"dbapi_{uuid.uuid4().hex[:10]}"
    return CatalogConfig(name, {"type": "sql", "uri": uri, "warehouse": f"file://{tmp_path / 'warehouse'}"})


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def force_dbapi(monkeypatch):
    """``CatalogConfig.load`` builds a DbApiCatalog for sql catalogs, whatever SQLAlchemy is installed."""
    monkeypatch.setattr(catalog_module, "sql_catalog_class", lambda: DbApiCatalog)


@pytest.fixture(params=BACKENDS)
def config(request, tmp_path, force_dbapi) -> CatalogConfig:
    return _config(request.param, tmp_path, request)


@pytest.fixture
def catalog(config) -> DbApiCatalog:
    loaded = config.load()
    assert isinstance(loaded, DbApiCatalog)
    return loaded


def test_the_sql_catalog_class_depends_on_sqlalchemy():
    assert sql_catalog_class().__name__ == ("SqlCatalog" if SQLALCHEMY_2 else "DbApiCatalog")


def test_the_engine_appends_and_merges(config):
    run_ingest(TableSource(ROWS, batch_rows=700), config, "lake.people")
    changed = pa.table({"id": pa.array([7, 9_999], pa.int64()), "name": ["seven", "new"]})
    result = run_ingest(TableSource(changed, identity="memory://changes"), config, "lake.people",
                        WriteOptions(mode="merge", merge_keys=("id",)))
    assert result.committed
    back = config.load().load_table("lake.people").scan().to_arrow().sort_by("id")
    assert back.num_rows == 3_001
    assert back["name"][7].as_py() == "seven" and back["name"][3_000].as_py() == "new"


def test_two_writers_from_the_same_version_conflict(catalog):
    catalog.create_namespace("lake")
    catalog.create_table("lake.t", ID_ONLY, properties=NO_RETRIES).append(_ids(1))
    first, second = catalog.load_table("lake.t"), catalog.load_table("lake.t")
    first.append(_ids(2))
    with pytest.raises(CommitFailedException):
        second.append(_ids(3))
    assert sorted(catalog.load_table("lake.t").scan().to_arrow()["id"].to_pylist()) == [1, 2]


def test_the_swap_fails_when_another_writer_commits_after_the_check(catalog, config, monkeypatch):
    """A commit that passed its requirements still loses if the row moved before the UPDATE."""
    catalog.create_namespace("lake")
    catalog.create_table("lake.t", ID_ONLY)
    stage = catalog._update_and_stage_table

    def stage_then_lose_the_race(*args, **kwargs):
        staged = stage(*args, **kwargs)
        config.load().load_table("lake.t").append(_ids(9))  # another catalog, another connection
        return staged

    monkeypatch.setattr(catalog, "_update_and_stage_table", stage_then_lose_the_race)
    with pytest.raises(CommitFailedException, match="updated by another process"):
        catalog.load_table("lake.t").transaction().set_properties(owner="me").commit_transaction()
    table = config.load().load_table("lake.t")
    assert "owner" not in table.properties and table.scan().to_arrow()["id"].to_pylist() == [9]


def test_tables(catalog, tmp_path):
    catalog.create_namespace("lake")
    with pytest.raises(NoSuchNamespaceError):
        catalog.create_table("nowhere.t", ID_ONLY)
    table = catalog.create_table("lake.t", ID_ONLY)
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table("lake.t", ID_ONLY)
    assert catalog.table_exists("lake.t") and not catalog.table_exists("lake.u")
    assert catalog.list_tables("lake") == [("lake", "t")]

    catalog.create_namespace("other")
    catalog.create_table("other.taken", ID_ONLY)
    with pytest.raises(TableAlreadyExistsError):
        catalog.rename_table("lake.t", "other.taken")
    assert catalog.rename_table("lake.t", "other.moved").name() == ("other", "moved")
    with pytest.raises(NoSuchTableError):
        catalog.load_table("lake.t")

    catalog.drop_table("other.moved")
    with pytest.raises(NoSuchTableError):
        catalog.drop_table("other.moved")
    assert catalog.register_table("lake.back", table.metadata_location).name() == ("lake", "back")
    with pytest.raises(TableAlreadyExistsError):
        catalog.register_table("lake.back", table.metadata_location)


def test_namespaces(catalog):
    catalog.create_namespace("a", {"owner": "data"})
    catalog.create_namespace(("a", "b"))
    catalog.create_namespace("a_c")  # "_" must not match like a LIKE wildcard
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace("a")
    assert sorted(catalog.list_namespaces()) == [("a",), ("a_c",)]
    assert catalog.list_namespaces("a") == [("a", "b")]
    assert catalog.load_namespace_properties("a.b") == {"exists": "true"}

    summary = catalog.update_namespace_properties("a", removals={"owner", "nope"}, updates={"tier": "gold"})
    assert (summary.removed, summary.updated, summary.missing) == (["owner"], ["tier"], ["nope"])
    assert catalog.load_namespace_properties("a") == {"tier": "gold"}

    catalog.create_table("a.b.t", ID_ONLY)
    with pytest.raises(NamespaceNotEmptyError):
        catalog.drop_namespace("a.b")
    catalog.drop_table("a.b.t")
    catalog.drop_namespace("a.b")
    assert catalog.list_namespaces("a") == []
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties("nope")


def test_views_are_not_supported_as_in_sql_catalog(catalog):
    for method, argument in [("list_views", "a"), ("load_view", "a.v"), ("view_exists", "a.v")]:
        with pytest.raises(NotImplementedError):
            getattr(catalog, method)(argument)


def test_catalogs_in_one_database_are_separate(config, tmp_path):
    run_ingest(TableSource(_ids(1)), config, "lake.t")
    other = CatalogConfig(f"{config.name}_other", config.properties).load()
    assert other.list_namespaces() == [] and not other.table_exists("lake.t")


def test_a_v0_database_is_used_as_is_and_migrated_when_asked(tmp_path):
    path = tmp_path / "v0.db"
    with sqlite3.connect(path) as db:  # the v0 schema: the v1 DDL without iceberg_type
        for statement in DDL:
            db.execute(statement.replace(" iceberg_type VARCHAR(5),", ""))
    properties = {"uri": f"sqlite:///{path}", "warehouse": f"file://{tmp_path / 'warehouse'}"}
    old = DbApiCatalog("c", **properties)
    old.create_namespace("lake")
    old.create_table("lake.t", ID_ONLY)
    assert old.list_tables("lake") == [("lake", "t")]
    migrated = DbApiCatalog("c", **properties, schema_version="v1")
    migrated.create_table("lake.u", ID_ONLY)
    with sqlite3.connect(path) as db:
        rows = sorted(db.execute("SELECT table_name, iceberg_type FROM iceberg_tables"))
    assert rows == [("t", None), ("u", "TABLE")]
    assert sorted(migrated.list_tables("lake")) == [("lake", "t"), ("lake", "u")]


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=ro", "mysql://h/db"])
def test_unsupported_uris_are_refused(uri):
    with pytest.raises(ValueError, match="unsupported"):
        DbApiCatalog("c", uri=uri)


# pyiceberg's SqlCatalog needs SQLAlchemy >= 2 (Airflow >= 3.1): on older stacks there is nothing to
# interoperate with, so the test is not defined there (rather than skipped).
if SQLALCHEMY_2:

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_a_warehouse_moves_between_sql_catalog_and_dbapi_catalog_both_ways(backend, tmp_path, request):
        from pyiceberg.catalog.sql import SqlCatalog

        config = _config(backend, tmp_path, request)
        sql = SqlCatalog(config.name, **config.properties)
        dbapi = DbApiCatalog(config.name, **config.properties)

        sql.create_namespace(("lake", "raw"), {"owner": "sql"})
        sql.create_table("lake.raw.t", ID_ONLY, properties=NO_RETRIES).append(_ids(1))
        assert dbapi.list_namespaces("lake") == [("lake", "raw")]
        assert dbapi.load_namespace_properties("lake.raw") == {"owner": "sql"}
        dbapi.load_table("lake.raw.t").append(_ids(2))
        dbapi.create_table("lake.raw.u", ID_ONLY).append(_ids(3))

        assert sorted(sql.list_tables("lake.raw")) == [("lake", "raw", "t"), ("lake", "raw", "u")]
        assert sorted(sql.load_table("lake.raw.t").scan().to_arrow()["id"].to_pylist()) == [1, 2]
        sql.load_table("lake.raw.u").append(_ids(4))
        assert sorted(dbapi.load_table("lake.raw.u").scan().to_arrow()["id"].to_pylist()) == [3, 4]
        stale = sql.load_table("lake.raw.t")
        dbapi.load_table("lake.raw.t").append(_ids(5))
        with pytest.raises(CommitFailedException):
            stale.append(_ids(6))
        dbapi.drop_table("lake.raw.u")
        assert sql.list_tables("lake.raw") == [("lake", "raw", "t")]
        sql.close()
