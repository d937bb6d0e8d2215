"""Airflow test environment: a private AIRFLOW_HOME with a migrated SQLite metadata DB.

The environment is set when this file is imported, before any test module imports airflow, because
Airflow reads its configuration once, on first import.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dativo-airflow-home-"))
#: The metadata DB exactly as ``airflow db migrate`` left it, before any test used it.
MIGRATED_DB = AIRFLOW_HOME.with_name(f"{AIRFLOW_HOME.name}-migrated.db")

AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # The file transport, wrapped as docs/lineage.md asks of a deployment that serves data-subject requests:
    # the request's identifiers (run conf) never reach an event.
    "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({
        "type": "dativo_provider.lineage.openlineage_transport.RunConfRedactingTransport",
        "transport": {"type": "file", "log_file_path": str(AIRFLOW_HOME / "openlineage.jsonl"), "append": True},
    }),
}
os.environ.update(AIRFLOW_ENV)
os.environ.pop("DATIVO_HOME", None)


@functools.cache
def migrated_db() -> Path:
    """Migrate the tests' metadata DB once per process (about 5 s); returns a copy of it as migrated, before
    any test used it, for tests that need an AIRFLOW_HOME of their own."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, **AIRFLOW_ENV},
        timeout=300,
    )
    shutil.copyfile(AIRFLOW_HOME / "airflow.db", MIGRATED_DB)
    return MIGRATED_DB


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The migrated metadata DB of the tests' AIRFLOW_HOME; returns AIRFLOW_HOME."""
    migrated_db()
    return AIRFLOW_HOME


@pytest.fixture
def migrated_sqlite_db(airflow_db: Path, tmp_path: Path) -> Path:
    """A fresh SQLite metadata DB in ``tmp_path``: a copy of the one ``airflow db migrate`` made for the
    session (as migrating it again would, minus 5-10 s of CPU per test)."""
    target = tmp_path / "migrated-airflow.db"
    shutil.copyfile(migrated_db(), target)
    return target


@pytest.fixture
def dativo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded catalog (SQLite + local warehouse) for one test."""
    monkeypatch.setenv("DATIVO_HOME", str(tmp_path / "dativo"))
    return tmp_path / "dativo"


@pytest.fixture
def iceberg_default(dativo_home: Path) -> str:
    """The catalog the example DAGs write to, fresh for each test: the embedded default.

    There is no ``iceberg_default`` connection; its SQLite catalog is pyiceberg's SqlCatalog on
    Airflow 3 and DbApiCatalog on Airflow 2.11 (SQLAlchemy 1.4).
    """
    return "embedded"


def connection_env(conn_id: str, **fields: object) -> tuple[str, str]:
    """``AIRFLOW_CONN_<ID>`` and its JSON value: connections with no metadata DB involved."""
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields)


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch):
    """Define a connection through ``AIRFLOW_CONN_<ID>``: ``connect(conn_id, conn_type=..., ...)``."""

    def define(conn_id: str, **fields: object) -> str:
        monkeypatch.setenv(*connection_env(conn_id, **fields))
        return conn_id

    return define


@pytest.fixture
def postgres_conn(postgres_config, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``postgres_default`` connection to the test server."""
    monkeypatch.setenv(
        *connection_env(
            "postgres_default",
            conn_type="postgres",
            host=postgres_config.host,
            port=postgres_config.port,
            login=postgres_config.user,
            password=postgres_config.password,
            schema=postgres_config.database,
        )
    )
    return "postgres_default"


@pytest.fixture
def mysql_conn(mysql_config, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``mysql_default`` connection to the test server."""
    monkeypatch.setenv(
        *connection_env(
            "mysql_default",
            conn_type="mysql",
            host=mysql_config.host,
            port=mysql_config.port,
            login=mysql_config.user,
            password=mysql_config.password,
            schema=mysql_config.database,
        )
    )
    return "mysql_default"
