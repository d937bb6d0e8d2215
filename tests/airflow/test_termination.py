"""Tenant termination (SOC2 CC6.3): exactly the tenant's connections, variables and DAGs, on every backend.

One scenario (``termination_scenario.py``) seeds decoys that differ from the tenant's names only in
case, a ``LIKE`` wildcard or a trailing space, runs a dry run and then a real termination, and reads
back the database and the audit trail. The same assertions judge it on Airflow 2.11 through the
metadata database (SQLite, PostgreSQL, MariaDB, each migrated by Airflow itself in its own process)
and through the webserver's ``/api/v1``, and on Airflow 3 through the real REST API server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, AirflowFailException
from tests.airflow.conftest import REPO, connection_env, migrated_db
from tests.airflow.termination_scenario import (
    DECOY_CONNECTIONS,
    API_V1_PASSWORD,
    DECOY_VARIABLES,
    HASH_KEY,
    OWNED_CONNECTIONS,
    OWNED_VARIABLES,
)

pytestmark = pytest.mark.airflow

OUTSIDE = {"connections": ["tenant_acme_env"], "variables": ["tenant_acme_envvar"]}
OUTSIDE_ENV = {"AIRFLOW_CONN_TENANT_ACME_ENV": "generic://x", "AIRFLOW_VAR_TENANT_ACME_ENVVAR": "v"}


def assert_exact(report: dict[str, Any], backend: str) -> None:
    """The dry run changed nothing and said so; the termination removed exactly what it and the trail report."""
    before, after, dry, real = report["before"], report["after"], report["dry"], report["real"]
    removed_connections = sorted(set(before["connections"]) - set(after["connections"]))
    removed_variables = sorted(set(before["variables"]) - set(after["variables"]))
    newly_paused = sorted(d for d, paused in after["dags"].items() if paused and not before["dags"][d])
    assert real["connections"] == {"removed": removed_connections, "count": len(removed_connections)}
    assert real["variables"] == {"removed": removed_variables, "count": len(removed_variables)}
    assert real["dags"] == {"paused": newly_paused, "already_paused": ["acme_paused"], "count": len(newly_paused)}
    assert (removed_connections, removed_variables, newly_paused) == (OWNED_CONNECTIONS, OWNED_VARIABLES,
                                                                      ["acme_sync"])
    assert set(DECOY_CONNECTIONS) <= set(after["connections"]) and set(DECOY_VARIABLES) <= set(after["variables"])
    assert after["dags"] == {**before["dags"], "acme_sync": True}

    assert report["after_dry"] == before
    assert (dry["dry_run"], dry["backend"], real["dry_run"], real["backend"]) == (True, backend, False, backend)
    assert dry["connections"] == {"would_remove": OWNED_CONNECTIONS, "count": 2}
    assert dry["variables"] == {"would_remove": OWNED_VARIABLES, "count": 1}
    assert dry["dags"] == {"would_pause": ["acme_sync"], "already_paused": ["acme_paused"], "count": 1}
    assert dry["left_outside_airflow"] == real["left_outside_airflow"] == OUTSIDE
    assert_trail(report, real)


def assert_trail(report: dict[str, Any], real: dict[str, Any]) -> None:
    """A dry run's events say dry run; the termination's name what was removed and what was left outside."""
    events = [(e["request_id"], e["event"]) for e in report["events"]]
    assert events == [("term-acme-dry", "received"), *[("term-acme-dry", "would_terminate")] * 3,
                      ("term-acme-dry", "dry_run_completed"), ("term-acme-1", "received"),
                      *[("term-acme-1", "terminated")] * 3, ("term-acme-1", "completed")]
    assert all(e["details"]["dry_run"] is (e["request_id"] == "term-acme-dry") for e in report["events"])
    by_step = {(e["event"], e["details"]["step"]): e["details"] for e in report["events"]
               if e["event"] in ("terminated", "would_terminate")}
    for step in ("connections", "variables"):
        assert by_step["terminated", step]["removed"] == real[step]["removed"]
        assert "removed" not in by_step["would_terminate", step]
        assert by_step["would_terminate", step]["would_remove"] == real[step]["removed"]
        assert by_step["terminated", step]["left_outside_airflow"] == OUTSIDE[step]
    assert by_step["terminated", "dags"]["paused"] == real["dags"]["paused"]
    assert "paused" not in by_step["would_terminate", "dags"]
    completed = report["events"][-1]["details"]
    assert completed["left_outside_airflow"] == OUTSIDE and completed["erased"] is False
    assert report["audit"]["valid"] and report["audit"]["events"] == 10, report["audit"]["reason"]


# --- Airflow 2.11: the metadata database, on each database Airflow supports -----------------------------

# Defined only where it applies (Airflow 3 tasks cannot use the metadata DB; see the API test), never skipped.
if not AIRFLOW_V_3_0_PLUS:

    @pytest.fixture
    def metadata_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        """An empty database of the kind in ``request.param``, as an Airflow SQLAlchemy URL; dropped after."""
        kind = request.param
        if kind == "sqlite":
            yield f"sqlite:///{tmp_path / 'airflow.db'}"
            return
        name = f"airflow_term_{uuid.uuid4().hex[:10]}"
        config = request.getfixturevalue("postgres_config" if kind == "postgres" else "mysql_config")
        credentials = config.user + (f":{config.password}" if config.password else "")
        if kind == "postgres":
            _postgres(config, f'CREATE DATABASE "{name}"')
            yield f"postgresql+psycopg2://{credentials}@{config.host}:{config.port}/{name}"
            _postgres(config, f'DROP DATABASE "{name}" WITH (FORCE)')
        else:
            # The server's default collation (case-insensitive, PAD SPACE), as a DBA would create it.
            _mysql(config, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            yield f"mysql+pymysql://{credentials}@{config.host}:{config.port}/{name}"
            _mysql(config, f"DROP DATABASE `{name}`")

    def _postgres(config: Any, statement: str) -> None:
        import psycopg

        with psycopg.connect(host=config.host, port=config.port, user=config.user, password=config.password,
                             dbname=config.database, autocommit=True) as conn:
            conn.execute(statement)

    def _mysql(config: Any, statement: str) -> None:
        import pymysql

        conn = pymysql.connect(host=config.host, port=config.port, user=config.user,
                               password=config.password or "", autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute(statement)
        conn.close()

    def _scenario_on(url: str, tmp_path: Path, backend: str = "metadata-db") -> dict[str, Any]:
        """Migrate ``url`` with ``airflow db migrate`` (SQLite: copy the session's migrated file), then run the
        scenario in a process bound to it."""
        home = tmp_path / "airflow-home"
        home.mkdir()
        (tmp_path / "dags").mkdir()
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
               "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "DATIVO_HOME": str(tmp_path / "dativo"), "PYTHONPATH": str(REPO), **OUTSIDE_ENV,
               "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
               "AIRFLOW__WEBSERVER__SECRET_KEY": uuid.uuid4().hex,
               **dict([connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY)])}
        commands = [[str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                    [sys.executable, "-m", "tests.airflow.termination_scenario", str(tmp_path / "report.json"),
                     str(tmp_path / "audit"), backend]]
        if url.startswith("sqlite:///"):  # the file `airflow db migrate` made once for the session
            shutil.copyfile(migrated_db(), url.removeprefix("sqlite:///"))
            commands = commands[1:]
        for command in commands:
            done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{command[1:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return json.loads((tmp_path / "report.json").read_text())

    @pytest.mark.parametrize("metadata_db", [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ], indirect=True)
    def test_termination_through_the_metadata_db_removes_exactly_what_it_reports(metadata_db, tmp_path):
        report = _scenario_on(metadata_db, tmp_path)
        assert_exact(report, backend="metadata-db")

    def test_termination_through_the_v1_rest_api_removes_exactly_what_it_reports(tmp_path):
        report = _scenario_on(f"sqlite:///{tmp_path / 'airflow.db'}", tmp_path, backend="rest-api")
        assert_exact(report, backend="rest-api")
        assert API_V1_PASSWORD not in json.dumps(report)


# --- Airflow 3: the REST API, served by Airflow's own API server ------------------------------------------

# Defined only where it applies (Airflow 3 only), never skipped.
if AIRFLOW_V_3_0_PLUS:

    def test_tenant_termination_on_airflow_3_needs_the_rest_api(dativo_home, dsr_keys, tmp_path):
        from dativo_provider.operators.privacy import TenantTerminateOperator
        from dativo_provider.privacy.audit import ObjectAuditStore

        task = TenantTerminateOperator(task_id="terminate", account="acme", audit_path=str(tmp_path / "audit"))
        with pytest.raises(AirflowFailException, match="airflow_api_conn_id"):
            task.execute({"params": {}, "run_id": "r1"})
        events = [e.event["event"] for e in ObjectAuditStore(str(tmp_path / "audit")).read()]  # type: ignore[index]
        assert events == ["received", "failed"]


@pytest.fixture
def dsr_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(*connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY))


def test_tenant_account_names_are_checked(dativo_home, dsr_keys, tmp_path):
    from dativo_provider.operators.privacy import TenantTerminateOperator

    for account in ("", "acme%", "../x", "a b"):
        task = TenantTerminateOperator(task_id="t", account=account, audit_path=str(tmp_path / "a"))
        with pytest.raises(AirflowFailException, match="account"):
            task.execute({"params": {}, "run_id": "r1"})
    assert not os.path.exists(tmp_path / "a")


API_PASSWORD = "Api-Admin-Pass-3c9e1f"


@pytest.fixture
def airflow_api(airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Airflow 3's own REST API (core app, simple auth manager), served on loopback by uvicorn."""
    import socket
    import threading
    import time

    import uvicorn

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": API_PASSWORD}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-jwt-secret-" + "0123456789abcdef" * 4)
    from airflow.api_fastapi.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(apps="core"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


# Defined only where it applies (the REST API server is started in-process on Airflow 3), never skipped.
if AIRFLOW_V_3_0_PLUS:

    def test_termination_through_the_rest_api_removes_exactly_what_it_reports(
            airflow_api, dativo_home, dsr_keys, tmp_path, monkeypatch, caplog, capfd):
        from tests.airflow.termination_scenario import run

        monkeypatch.setenv(*connection_env("airflow_api", conn_type="http", host=airflow_api, login="admin",
                                           password=API_PASSWORD))
        for name, value in OUTSIDE_ENV.items():
            monkeypatch.setenv(name, value)
        report = run(str(tmp_path / "audit"), airflow_api_conn_id="airflow_api")

        assert_exact(report, backend="rest-api")
        captured = capfd.readouterr()
        assert API_PASSWORD not in captured.out + captured.err + caplog.text
        assert API_PASSWORD not in json.dumps(report)
