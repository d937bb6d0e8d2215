"""Shared fixtures: the real database servers the tests run against, a private schema (Postgres)
or database (MySQL) per test, and the plain drivers to set data up and to compare values against.

A server that is not reachable skips its tests with the reason, unless ``DATIVO_REQUIRE_SERVICES=1``
(CI), where it fails them: a green run must never mean "nothing ran".
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dativo_provider.connections import DatabaseConfig


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
