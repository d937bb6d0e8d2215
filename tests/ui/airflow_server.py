"""A real ``airflow api-server`` (Airflow 3) with the provider's plugin, over the demo's state.

Its own AIRFLOW_HOME, a migrated SQLite metadata DB, the quarantine actions DAG serialized, the
simple auth manager with two users (``admin``, ``viewer``), the demo catalog as a ``dativo_iceberg``
connection and the certificate and audit keys as ``dativo_dsr_key`` connections, all from the
environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx

from tests.ui.demo_lake import HASH_KEY, SIGNING_KEY_ID, SIGNING_SECRET, DemoLake

AIRFLOW = str(Path(sys.executable).parent / "airflow")
PASSWORDS = {"admin": "ui-tests-admin-password", "viewer": "ui-tests-viewer-password"}
#: A secret in the catalog connection's extras that must never reach the page.
CATALOG_SECRET = "ui-tests-s3-secret-access-key"
CATALOG_CONN_ID = "demo_lake"
ACTIONS_DAG_FILE = '''"""The Airflow DAG the Dativo page triggers to release or purge quarantined rows."""
from dativo_provider.plugins.quarantine_actions import quarantine_actions_dag

dag = quarantine_actions_dag()
'''


@dataclass
class ApiServer:
    base: str
    env: dict[str, str]
    log: Path

    def token(self, user: str) -> str:
        answer = httpx.post(f"{self.base}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=60)
        answer.raise_for_status()
        return str(answer.json()["access_token"])


def plugin_entry_point_installed() -> bool:
    return any(ep.value.startswith("dativo_provider.") for ep in metadata.entry_points(group="airflow.plugins"))


def server_env(home: Path, lake: DemoLake, more_catalogs: dict[str, Path] | None = None) -> dict[str, str]:
    """The server's environment; ``more_catalogs``: connection id -> embedded catalog root, shown too."""
    lake_root = lake.home / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATIVO"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "AIRFLOW_CONN_DEMO_LAKE": json.dumps({
            "conn_type": "dativo_iceberg", "host": f"sqlite:///{lake_root / 'catalog.db'}",
            "extra": {"catalog_type": "sql", "warehouse": f"file://{lake_root / 'warehouse'}",
                      "s3.secret-access-key": CATALOG_SECRET}}),
        "AIRFLOW_CONN_DATIVO_DSR_SIGNING": json.dumps({
            "conn_type": "dativo_dsr_key", "password": SIGNING_SECRET.decode(),
            "extra": {"algorithm": "hmac-sha256", "key_id": SIGNING_KEY_ID}}),
        "AIRFLOW_CONN_DATIVO_DSR_HASH_KEY": json.dumps({"conn_type": "dativo_dsr_key", "password": HASH_KEY.decode()}),
        "AIRFLOW__DATIVO_UI__CATALOG_CONN_IDS": ",".join([CATALOG_CONN_ID, *(more_catalogs or {})]),
        "AIRFLOW__DATIVO_UI__CONTRACTS_FOLDER": str(lake.contracts),
        "AIRFLOW__DATIVO_UI__REPORTS_FOLDER": str(lake.reports),
        "AIRFLOW__DATIVO_UI__CERTIFICATES_FOLDER": str(lake.certificates),
    })
    for conn_id, root in (more_catalogs or {}).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({
            "conn_type": "dativo_iceberg", "host": f"sqlite:///{root / 'catalog.db'}",
            "extra": {"catalog_type": "sql", "warehouse": f"file://{root / 'warehouse'}"}})
    if not plugin_entry_point_installed():
        # An install from before the entry point existed: Airflow finds the plugin through the provider
        # metadata, which it reads only when it discovers providers eagerly.
        env["AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS"] = "False"
    return env


def prepare_home(home: Path, env: dict[str, str]) -> None:
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "dativo_quarantine_actions.py").write_text(ACTIONS_DAG_FILE, encoding="utf-8")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS), encoding="utf-8")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([AIRFLOW, *command], env=env, check=True, capture_output=True, timeout=600)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], ApiServer]:
    port = free_port()
    log = home / "api-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(port), "--workers", "1"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = ApiServer(f"http://127.0.0.1:{port}", env, log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{server.base}/api/v2/monitor/health", timeout=5).status_code == 200:
                return process, server
        except httpx.TransportError:
            pass
        time.sleep(1)
    stop(process)
    raise RuntimeError(f"the API server did not answer in 300 s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the workers it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
