"""The erasure hand-off DAG end to end (plan → stand-in engine → verify), and the verify operator failing
when the external step deleted nothing, on Airflow 2.11 and 3.x."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, AirflowFailException
from tests.airflow.conftest import connection_env
from tests.airflow.helpers import dagbag, read_table, return_values

pytestmark = pytest.mark.airflow

HASH_KEY = "Handoff-Hash-Key-93c1d0e5b7a4f2"  # secret: must appear nowhere
PRIVATE_KEY = Ed25519PrivateKey.generate()
PEM = PRIVATE_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
REQUEST = {"request_id": "dsr-handoff-dag-1", "kind": "erasure", "subject_kind": "customer", "subject_ids": ["87"],
           "emails": [], "received_at": None, "deadline": None}


@pytest.fixture
def keys_and_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(*connection_env("dativo_dsr_signing", conn_type="generic", password=PEM,
                                       extra={"key_id": "handoff-test"}))
    monkeypatch.setenv(*connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY))
    monkeypatch.setenv("AIRFLOW_VAR_DATIVO_DSR_OUTPUT_DIR", str(tmp_path / "dsr"))
    monkeypatch.setenv("AIRFLOW_VAR_DATIVO_DSR_SAFETY_WINDOW_MINUTES", "0")
    return tmp_path / "dsr"


def _trigger(conf: dict[str, Any]) -> Any:
    dag = dagbag().get_dag("example_erasure_handoff")
    if not AIRFLOW_V_3_0_PLUS:
        import airflow.providers.fab.auth_manager.models  # noqa: F401 - see helpers.run_dag
    return dag.test(run_conf=conf)


def test_the_handoff_dag_erases_through_the_standin_and_signs_the_certificate(airflow_db, iceberg_default,
                                                                            keys_and_vars, capfd):
    from dativo_provider.privacy.certificate import VerifyingKey, verify_certificate

    run = _trigger(REQUEST)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    (plan,) = return_values(run, "plan")
    (planned,) = plan["tables"]
    assert (planned["table"], planned["rows"], plan["engine"]) == ("examples.handoff_accounts", 2, "trino")
    statement = Path(planned["statement_path"])
    assert statement.parent.parent == keys_and_vars / "statements" and stat.S_IMODE(statement.stat().st_mode) == 0o600
    (standin,) = return_values(run, "external_delete_standin")
    assert standin[0]["rows_deleted"] == 2  # account 87 and the anonymous row from its address

    remaining = read_table("examples.handoff_accounts")
    assert sorted(remaining.column("display_name").to_pylist()) == ["Ann", "Bo", "Cy"]
    (summary,) = return_values(run, "verify")
    certificate = Path(summary["certificate_path"])
    assert certificate.parent == keys_and_vars / "certificates" and stat.S_IMODE(certificate.stat().st_mode) == 0o600
    public = VerifyingKey.ed25519(PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert verify_certificate(certificate.read_bytes(), public).valid
    document = json.loads(certificate.read_text())
    table = document["tables"]["examples.handoff_accounts"]
    assert table["rows_deleted"] == 2 and table["engine"]["named_in_snapshot"] == "dativo-standin-duckdb"
    assert document["verification"]["passed"] and document["verification"]["findings"] == []
    output = capfd.readouterr()
    assert HASH_KEY not in output.out + output.err and "brien" not in (output.out + output.err).lower()


def test_the_verify_operator_fails_when_the_external_step_deleted_nothing(airflow_db, iceberg_default,
                                                                        keys_and_vars):
    from dativo_provider.operators.handoff import ErasureHandoffPlanOperator, ErasureHandoffVerifyOperator

    dag = dagbag().get_dag("example_erasure_handoff")
    seed = dag.get_task("seed")
    seed.python_callable()
    contracts = str(Path(dag.fileloc).parent / "contracts" / "handoff_accounts.odcs.yaml")
    audit = str(keys_and_vars / "audit")
    plan = ErasureHandoffPlanOperator(task_id="plan", contracts=contracts, engine="spark", engine_catalog="lake",
                                      statement_dir=str(keys_and_vars / "statements"), request=REQUEST,
                                      audit_path=audit).execute({})
    assert Path(plan["tables"][0]["statement_path"]).read_text().startswith("DELETE FROM `lake`.`examples`.")

    class PlanInXCom:  # the one thing the operator reads from its task instance
        def xcom_pull(self, task_ids: str) -> dict[str, Any]:
            assert task_ids == "plan"
            return plan

    verify = ErasureHandoffVerifyOperator(task_id="verify", contracts=contracts, request=REQUEST, audit_path=audit,
                                          certificate_path=str(keys_and_vars / "cert.json"), safety_window_minutes=0)
    with pytest.raises(AirflowFailException, match="committed no delete on main"):
        verify.execute({"ti": PlanInXCom()})
    assert not (keys_and_vars / "cert.json").exists()
    assert len(read_table("examples.handoff_accounts")) == 5
