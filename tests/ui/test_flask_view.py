"""The page on Airflow 2.11: the Flask AppBuilder view answers through Flask's test client.

The web app runs in a process of its own (its configuration comes from the environment, read once),
with a migrated SQLite metadata DB and the same demo state, connections and options as on Airflow 3.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.ui.airflow_server import AIRFLOW, CATALOG_SECRET, server_env
from tests.ui.demo_lake import HASH_KEY, QUARANTINE_RUN, REQUEST_ID, ROOT, SCRIPT_TABLE, SIGNING_SECRET, DemoLake

pytestmark = pytest.mark.timeout(900)  # Airflow 2 only: see conftest.py


@pytest.fixture(scope="module")
def answered(demo_lake: DemoLake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow2-home")
    env = {**server_env(home, demo_lake), "AIRFLOW__WEBSERVER__SECRET_KEY": "ui-tests-flask-secret-key"}
    (home / "dags").mkdir()
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    done = subprocess.run([sys.executable, "-m", "tests.ui.flask_client"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_unauthenticated_requests_are_refused(answered: dict[str, Any]):
    assert answered["anonymous_page"] == 302  # to the login page, as Airflow 2's own views do
    assert set(answered["anonymous_api"].values()) == {401}
    assert answered["anonymous_action"] == 401


def test_a_viewer_reads_but_may_not_trigger_actions(answered: dict[str, Any]):
    assert answered["viewer_tables"] == 200 and answered["viewer_action"] == 403


def test_the_view_serves_the_page_and_the_same_json(answered: dict[str, Any]):
    page = answered["page"]
    assert page["status"] == 200 and "frame-ancestors 'self'" in page["csp"]
    assert '"trigger_url": "/api/v1/dags/{dag_id}/dagRuns"' in page["text"] and '"csrf_token"' in page["text"]
    assert answered["menu"]
    api = answered["api"]
    tables = {row["table"] for row in api["/dativo/api/tables"]["tables"]}
    assert {"examples.customers", "examples.orders", SCRIPT_TABLE} <= tables
    assert api["/dativo/api/quarantines"]["quarantines"][0]["runs"][0]["run_id"] == QUARANTINE_RUN
    (request,) = api["/dativo/api/requests"]["requests"]
    assert request["request_id"] == REQUEST_ID and request["certificate"]["valid"] is True
    assert answered["action"]["status"] == 200
    assert answered["action"]["body"]["conf"]["run_ids"] == [QUARANTINE_RUN]
    served = json.dumps(answered)
    for secret in (CATALOG_SECRET, SIGNING_SECRET.decode(), HASH_KEY.decode()):
        assert secret not in served
