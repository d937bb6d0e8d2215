"""The migration in docs/connections.md, run as written on a scratch AIRFLOW_HOME: old-style connections
get their new types, an official ``iceberg`` connection keeps its own, and the migrated catalog passes
``airflow connections test``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from dativo_provider.hooks.migration import migrate_export

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _bash_blocks(section: str) -> list[str]:
    """The ``bash`` blocks of one ``##`` section of docs/connections.md, in order."""
    text = (REPO / "docs" / "connections.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", body, re.S)


@pytest.fixture
def scratch_airflow(tmp_path: Path, migrated_sqlite_db: Path) -> dict[str, str]:
    """A scratch AIRFLOW_HOME whose metadata DB is freshly migrated, as the page assumes."""
    home = tmp_path / "home"
    home.mkdir()
    migrated_sqlite_db.rename(home / "airflow.db")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
               AIRFLOW__CORE__LOAD_EXAMPLES="False", DATIVO_HOME=str(tmp_path / "dativo"),
               PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    return env


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _types(env: dict[str, str]) -> dict[str, str]:
    """Each connection's type as stored in the metadata DB (read directly: no Airflow process to start)."""
    database = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return dict(conn.execute("SELECT conn_id, conn_type FROM connection").fetchall())


def test_the_documented_migration_renames_old_types_and_the_catalog_then_tests_ok(scratch_airflow, tmp_path):
    official = {"conn_type": "iceberg", "host": "https://catalog.example/api", "login": "id", "password": "pw-98765"}
    subprocess.run([str(BIN / "airflow"), "connections", "add", "official_rest", "--conn-json", json.dumps(official)],
                   env=scratch_airflow, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    migrate, uri_form = _bash_blocks("Renamed connection types")
    done = _bash(migrate, scratch_airflow, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lake: iceberg -> dativo_iceberg" in done.stdout and "payments: stripe -> dativo_stripe" in done.stdout
    assert "official_rest: " not in done.stdout
    assert not (tmp_path / "connections.json").exists()
    types = _types(scratch_airflow)
    assert {k: types[k] for k in ("lake", "payments", "official_rest")} == {
        "lake": "dativo_iceberg", "payments": "dativo_stripe", "official_rest": "iceberg"}

    assert _bash(uri_form, scratch_airflow, tmp_path).returncode == 0  # it greps for the type it expects

    (test_block,) = _bash_blocks("Testing a connection")
    tested = _bash(test_block, scratch_airflow, tmp_path)
    assert tested.returncode == 0 and "Connection success!" in tested.stdout, tested.stdout + tested.stderr


def test_a_failing_connection_test_exits_non_zero_without_the_secret(scratch_airflow, tmp_path):
    closed = {"conn_type": "dativo_stripe", "password": "sk_test_NotTheRealKey9876",
              "extra": {"base_url": "http://127.0.0.1:9"}}
    env = {**scratch_airflow, "AIRFLOW_CONN_PAY": json.dumps(closed), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    result = subprocess.run([str(BIN / "airflow"), "connections", "test", "pay"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    # Airflow 2.11's CLI prints the failure but exits 0; Airflow 3 exits 1.
    assert result.returncode == (1 if AIRFLOW_V_3_0_PLUS else 0) and "Connection failed!" in result.stdout
    assert "ApiUnavailableError" in result.stdout or "Stripe" in result.stdout
    assert "NotTheRealKey9876" not in result.stdout + result.stderr


def test_migrate_export_leaves_other_connections_as_they_were(tmp_path):
    exported = {
        "old_sql": {"conn_type": "iceberg", "host": "db.internal", "extra": None},
        "old_glue": {"conn_type": "iceberg", "host": None, "extra": '{"catalog_type": "glue"}'},
        "official_sql": {"conn_type": "iceberg", "host": None, "extra": '{"type": "sql", "uri": "sqlite:///c.db"}'},
        "official_rest": {"conn_type": "iceberg", "host": "https://cat", "extra": "{}"},
        "crm": {"conn_type": "hubspot", "password": "pat-x", "extra": {"base_url": "http://x"}},
        "pg": {"conn_type": "postgres", "host": "db", "extra": ""},
    }
    path = tmp_path / "connections.json"
    path.write_text(json.dumps(exported))
    assert migrate_export(path) == ["old_sql: iceberg -> dativo_iceberg", "old_glue: iceberg -> dativo_iceberg",
                                    "crm: hubspot -> dativo_hubspot"]
    after = json.loads(path.read_text())
    assert {k: v["conn_type"] for k, v in after.items()} == {
        "old_sql": "dativo_iceberg", "old_glue": "dativo_iceberg", "official_sql": "iceberg",
        "official_rest": "iceberg", "crm": "dativo_hubspot", "pg": "postgres"}
    assert after["crm"]["password"] == "pat-x" and after["old_glue"]["extra"] == '{"catalog_type": "glue"}'
