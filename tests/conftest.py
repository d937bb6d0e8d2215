"""Shared fixtures: the real database servers the tests run against, a private schema (Postgres)
or database (MySQL) per test, and the plain drivers to set data up and to compare values against.

A server that is not reachable skips its tests with the reason, unless ``DATIVO_REQUIRE_SERVICES=1``
(CI), where it fails them: a green run must never mean "nothing ran".

``DATIVO_AIRFLOW_DEPENDENT_ONLY=1`` (set by ``.ci/run`` for its Airflow 2.11 pass, after the Airflow 3.3
pass ran everything) deselects the tests whose outcome cannot depend on the Airflow version: see
:func:`runs_on_one_airflow_version`. Without it (``dev/test``, the README's command) every test runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.connections import DatabaseConfig


TESTS = Path(__file__).resolve().parent
AIRFLOW_DEPENDENT_ONLY = "DATIVO_AIRFLOW_DEPENDENT_ONLY"

#: Engine suites: plain Python over Arrow, pyiceberg and the databases; the engine never imports airflow
#: (tests/test_import_graph.py), and both virtualenvs pin the same versions of everything it uses except
#: SQLAlchemy. New directories (tests/lineage, ...) run on both versions until they are listed here.
ENGINE_SUITES = {"contracts", "iceberg", "ingest", "markdown_kv", "ml", "packaging", "privacy", "quality",
                 "sources", "test_import_graph.py", "test_objectstore.py", "test_progress.py",
                 "test_typecheck.py"}
#: Engine tests that still run on both: on Airflow 2.11 (SQLAlchemy 1.4) SQL catalogs are our DbApiCatalog,
#: on 3.3 pyiceberg's SqlCatalog (ADR 0003); these run the engine on DbApiCatalog and its lost races there.
CATALOG_CLASS_TESTS = {"iceberg/test_dbapi_catalog.py", "ingest/test_concurrency.py", "privacy/test_purge.py"}
#: A module that imports Airflow, the Airflow layer, the version switches or SQLAlchemy (1.4 beside Airflow
#: 2.11, 2.x beside 3.3), or runs the ``airflow`` command, depends on the version wherever it lives.
_VERSION_DEPENDENT_SOURCE = re.compile(
    r"^\s*(?:from|import)\s+(?:airflow|sqlalchemy|tests\.airflow|dativo_provider\.(?:operators|hooks|sensors"
    r"|triggers|compat))\b|^\s*from\s+dativo_provider\s+import\s+.*\b(?:operators|hooks|sensors|triggers|compat)\b"
    r'|/\s*"airflow"',
    re.M,
)
#: A docs block that touches Airflow: the ``airflow`` command, a connection, a DAG, an operator or hook.
_AIRFLOW_IN_DOC_BLOCK = re.compile(r"airflow|\bDAG\(|@dag\b|dativo_provider\.(?:operators|hooks|sensors|triggers)",
                                   re.I)


@cache
def _imports_version_dependent_code(module: Path) -> bool:
    return _VERSION_DEPENDENT_SOURCE.search(module.read_text()) is not None


def _engine_module(module: Path) -> bool:
    """A test module of an engine suite that touches neither Airflow, SQLAlchemy nor the SQL catalog class."""
    relative = module.relative_to(TESTS)
    return (relative.parts[0] in ENGINE_SUITES and relative.as_posix() not in CATALOG_CLASS_TESTS
            and not _imports_version_dependent_code(module))


def runs_on_one_airflow_version(item: pytest.Item) -> bool:
    """Whether the test's code path is the same on every Airflow version, so one version's run suffices:
    a test of an engine module, or a docs block that does not touch Airflow (the blocks before it on its
    page still run first, as ever)."""
    if not item.path.is_relative_to(TESTS):
        return False
    suite = item.path.relative_to(TESTS).parts[0]
    if suite == "catalogs":
        # The shared catalog suite: SQL catalogs change class with the Airflow version (ADR 0003), the REST
        # catalog's code path (pyiceberg's RestCatalog over HTTP) does not.
        return _catalog_kind(item) == "rest"
    if suite == "docs":
        block = getattr(item, "callspec", None) and item.callspec.params.get("block")
        return (item.path.name == "test_doc_snippets.py" and block is not None
                and not _AIRFLOW_IN_DOC_BLOCK.search(block.text))
    return _engine_module(item.path)


def _catalog_kind(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("lake") if callspec else None


def _airflow_dependent_only() -> bool:
    return os.environ.get(AIRFLOW_DEPENDENT_ONLY) == "1"


_NOT_COLLECTED = pytest.StashKey[set[Path]]()
_DESELECTED = pytest.StashKey[list[pytest.Item]]()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Engine modules are not even imported when they will not run (their imports cost seconds)."""
    if (_airflow_dependent_only() and collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and collection_path.is_relative_to(TESTS) and _engine_module(collection_path)):
        config.stash.setdefault(_NOT_COLLECTED, set()).add(collection_path)
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _airflow_dependent_only():
        return
    once = [item for item in items if runs_on_one_airflow_version(item)]
    if once:
        deselected = set(once)
        items[:] = [item for item in items if item not in deselected]
        config.hook.pytest_deselected(items=once)
    config.stash[_DESELECTED] = once


def _not_repeated(config: pytest.Config) -> str | None:
    if not _airflow_dependent_only():
        return None
    where: dict[str, list[int]] = {}
    for module in config.stash.get(_NOT_COLLECTED, set()):
        where.setdefault(module.relative_to(TESTS).parts[0], [0, 0])[0] += 1
    for item in config.stash.get(_DESELECTED, []):
        where.setdefault(item.path.relative_to(TESTS).parts[0], [0, 0])[1] += 1
    counts = ", ".join(
        name if name.endswith(".py") and not tests else
        name + " " + " + ".join(f"{n} {unit}" for n, unit in ((modules, "modules"), (tests, "tests")) if n)
        for name, (modules, tests) in sorted(where.items()))
    return (f"{AIRFLOW_DEPENDENT_ONLY}=1: not repeated on this Airflow version, as their code path does not "
            f"depend on it (the other pass runs them): {counts or 'nothing'}")


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    return _not_repeated(config)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = _not_repeated(config)
    if line:
        terminalreporter.write_line(line)


def _unavailable(what: str, exc: Exception) -> None:
    reason = f"{what} is not reachable: {exc}"
    if os.environ.get("DATIVO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (DATIVO_REQUIRE_SERVICES=1)")
    print(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_config() -> DatabaseConfig:
    """The PostgreSQL test server (``DATIVO_PG_HOST``/``DATIVO_PG_PORT``, default 127.0.0.1:5432)."""
    config = DatabaseConfig(
        host=os.environ.get("DATIVO_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("DATIVO_PG_PORT", "5432")),
        user=os.environ.get("DATIVO_PG_USER", "postgres"),
        password=os.environ.get("DATIVO_PG_PASSWORD") or None,
        database=os.environ.get("DATIVO_PG_DATABASE", "test"),
    )
    try:
        import psycopg

        psycopg.connect(
            host=config.host, port=config.port, user=config.user, password=config.password,
            dbname=config.database, connect_timeout=3,
        ).close()
    except Exception as exc:  # any failure to connect means the server cannot be used
        _unavailable(f"PostgreSQL at {config.host}:{config.port}", exc)
    return config


@pytest.fixture(scope="session")
def mysql_config() -> DatabaseConfig:
    """The MySQL/MariaDB test server (``DATIVO_MYSQL_HOST``/``DATIVO_MYSQL_PORT``, default 127.0.0.1:3306)."""
    config = DatabaseConfig(
        host=os.environ.get("DATIVO_MYSQL_HOST", "127.0.0.1"),
        port=int(os.environ.get("DATIVO_MYSQL_PORT", "3306")),
        user=os.environ.get("DATIVO_MYSQL_USER", "root"),
        password=os.environ.get("DATIVO_MYSQL_PASSWORD") or None,
        database=os.environ.get("DATIVO_MYSQL_DATABASE", "test"),
    )
    try:
        import pymysql

        pymysql.connect(
            host=config.host, port=config.port, user=config.user, password=config.password or "",
            database=config.database, connect_timeout=3,
        ).close()
    except Exception as exc:  # any failure to connect means the server cannot be used
        _unavailable(f"MySQL at {config.host}:{config.port}", exc)
    return config


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg(postgres_config: DatabaseConfig) -> Iterator[Any]:
    """A psycopg connection in autocommit mode (the reference driver for value comparisons)."""
    import psycopg

    c = postgres_config
    with psycopg.connect(
        host=c.host, port=c.port, user=c.user, password=c.password, dbname=c.database, autocommit=True
    ) as conn:
        yield conn


@pytest.fixture
def pg_schema(pg: Any) -> Iterator[str]:
    """A fresh schema, dropped with everything in it after the test."""
    name = _unique("dativo_src")
    pg.execute(f'CREATE SCHEMA "{name}"')
    yield name
    pg.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def my(mysql_config: DatabaseConfig) -> Iterator[Any]:
    """A pymysql connection with its default converters (the reference for value comparisons)."""
    import pymysql

    c = mysql_config
    conn = pymysql.connect(
        host=c.host, port=c.port, user=c.user, password=c.password or "", database=c.database,
        autocommit=True, charset="utf8mb4", init_command="SET time_zone = '+00:00'",
    )
    yield conn
    conn.close()


@pytest.fixture
def my_db(my: Any, mysql_config: DatabaseConfig) -> Iterator[DatabaseConfig]:
    """A fresh database (the connection's default for the source), dropped after the test."""
    name = _unique("dativo_src")
    with my.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{name}`")
    yield dataclasses.replace(mysql_config, database=name)
    with my.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")


@pytest.fixture(scope="session")
def rest_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Iceberg REST catalog on S3 storage (SeaweedFS ``weed mini``, see tests/rest_catalog.py),
    started once per test session and stopped after it. Tests share it: use unique namespaces."""
    from tests.rest_catalog import local_rest_lake

    try:
        running = local_rest_lake(tmp_path_factory.mktemp("rest-lake"))
        lake = running.__enter__()
    except RuntimeError as exc:
        _unavailable("the Iceberg REST catalog (weed mini)", exc)
    try:
        yield lake
    finally:
        running.__exit__(None, None, None)
