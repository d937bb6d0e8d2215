"""Shared fixtures: the real database servers the tests run against.

A server that is not reachable skips its tests with the reason, unless ``DATIVO_REQUIRE_SERVICES=1``
(CI), where it fails them: a green run must never mean "nothing ran".
"""

from __future__ import annotations

import os

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
