"""The Stripe key and the HubSpot token never reach task logs, XCom, the metadata DB or the table,
in a passing run and in a run that fails on a wrong credential."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow.conftest import AIRFLOW_HOME, connection_env
from tests.airflow.helpers import dagbag, return_values, run_dag
from tests.airflow.saas_fixtures import HUBSPOT_TOKEN, STRIPE_KEY, hubspot_api, stripe_api  # noqa: F401

pytestmark = pytest.mark.airflow

DAY_2 = datetime(2024, 1, 2, 12, tzinfo=UTC)
WRONG_STRIPE_KEY = "sk_test_51DativoWrongAirflowKey00000000w8n9"
WRONG_HUBSPOT_TOKEN = "pat-na1-wr0ng000-dati-vo00-0000-00000000bad0"


def _failed_run(dag_id: str, logical_date: datetime) -> list[str]:
    """Run a DAG expected to fail; returns the ids of its failed tasks."""
    dag = dagbag().get_dag(dag_id)
    dag_run = dag.test(logical_date=logical_date) if AIRFLOW_V_3_0_PLUS else dag.test(execution_date=logical_date)
    return [ti.task_id for ti in dag_run.get_task_instances() if ti.state == "failed"]


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret in path.read_bytes()]


def _assert_nowhere(secrets: list[str], captured: str, roots: list[Path]) -> None:
    for secret in secrets:
        assert secret not in captured, "secret in task logs"
        for root in roots:
            assert _files_holding(root, secret.encode()) == [], f"secret in files under {root}"


@pytest.mark.parametrize("kind", ["stripe", "hubspot"])
def test_saas_credentials_stay_out_of_logs_xcom_and_tables(
    kind, airflow_db, iceberg_default, dativo_home, request, monkeypatch, capfd, caplog
):
    double = request.getfixturevalue(f"{kind}_api")
    dag_id, good, wrong, conn_id = {
        "stripe": ("example_stripe_to_iceberg", STRIPE_KEY, WRONG_STRIPE_KEY, "stripe_default"),
        "hubspot": ("example_hubspot_to_iceberg", HUBSPOT_TOKEN, WRONG_HUBSPOT_TOKEN, "hubspot_default"),
    }[kind]
    run = run_dag(dag_id, DAY_2)
    summaries = [return_values(run, task.task_id)[0] for task in dagbag().get_dag(dag_id).tasks]
    assert all(s["rows_written"] > 0 for s in summaries), "the passing run really read through the connection"

    monkeypatch.setenv(*connection_env(conn_id, conn_type=kind, password=wrong, extra={"base_url": double.url}))
    assert _failed_run(dag_id, datetime(2024, 1, 3, 12, tzinfo=UTC)), "a wrong credential must fail the run"

    captured = capfd.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "authentication failed for" in text, "the failing run said why"
    assert good not in json.dumps(summaries, default=str), "secret in XCom"
    _assert_nowhere([good, wrong], text, [AIRFLOW_HOME, dativo_home])
