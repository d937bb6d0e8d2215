"""Data-subject request operators and the example DSR DAG, on Airflow 2.11 and 3.x.

End to end on the five-table warehouse of ``tests/privacy/warehouse.py`` in the embedded catalog:
an access request exports exactly the subject's rows; an erasure request removes them (checked by
reading the tables) and leaves a certificate that verifies; keys never reach logs, XCom or files.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, AirflowFailException
from dativo_provider.exceptions import ConfigError
from tests.airflow.conftest import AIRFLOW_HOME, connection_env
from tests.airflow.helpers import dagbag, return_values

pytestmark = pytest.mark.airflow

HASH_KEY = "Dsr-Hash-Key-5b1e8d0c4a7f2e93"  # secret: must appear nowhere
PRIVATE_KEY = Ed25519PrivateKey.generate()
PEM = PRIVATE_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
PEM_BODY = PEM.splitlines()[1]  # the base64 of the key: the part a leak would show


def _request(kind: str, **extra: Any) -> dict[str, Any]:
    return {"request_id": f"dsr-{kind}-1", "kind": kind, "subject_kind": "customer", "subject_ids": ["87"],
            "emails": [], "received_at": None, "deadline": None, **extra}


@pytest.fixture
def dsr_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(*connection_env("dativo_dsr_signing", conn_type="generic", password=PEM,
                                       extra={"key_id": "dsr-test"}))
    monkeypatch.setenv(*connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY))


@pytest.fixture
def dsr_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Outputs under tmp_path; the warehouse's tags and branches are re-pointed; no safety window
    (no concurrent writer here, and files written seconds ago must go too)."""
    monkeypatch.setenv("AIRFLOW_VAR_DATIVO_DSR_OUTPUT_DIR", str(tmp_path / "dsr"))
    monkeypatch.setenv("AIRFLOW_VAR_DATIVO_DSR_REFS_POLICY", "repoint")
    monkeypatch.setenv("AIRFLOW_VAR_DATIVO_DSR_SAFETY_WINDOW_MINUTES", "0")
    return tmp_path / "dsr"


@pytest.fixture
def warehouse(iceberg_default, dativo_home):
    from dativo_provider.hooks.iceberg import IcebergHook
    from tests.privacy.warehouse import build_warehouse

    return build_warehouse(IcebergHook().get_catalog_config(), customers=120, seed=3)


def _dag() -> Any:
    dag = dagbag().get_dag("example_dsr")
    assert dag is not None
    return dag


def _trigger(conf: dict[str, Any]) -> Any:
    """``dag.test`` with a run conf, as a REST API trigger creates the run: params validated first."""
    dag = _dag()
    if not AIRFLOW_V_3_0_PLUS:
        import airflow.providers.fab.auth_manager.models  # noqa: F401 - see helpers.run_dag
    return dag.test(run_conf=conf)


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


# --- the Params schema ----------------------------------------------------------------------------

MALFORMED = [
    ({"request_id": "bad id!"}, "request_id"),
    ({"request_id": "x"}, "request_id"),
    ({"kind": "delete_everything"}, "kind"),
    ({"subject_ids": "87"}, "subject_ids"),
    ({"subject_ids": [""]}, "subject_ids"),
    ({"emails": ["not-an-email"]}, "emails"),
    ({"deadline": "next tuesday"}, "deadline"),
    ({"received_at": "2024-13-40T00:00:00Z"}, "received_at"),
    ({"subject_kind": "Customer; DROP"}, "subject_kind"),
]


@pytest.mark.parametrize(("change", "field"), MALFORMED, ids=[f for _, f in MALFORMED])
def test_params_schema_rejects_malformed_requests(airflow_db, change, field):
    params = copy.deepcopy(_dag().params)
    with pytest.raises(Exception, match=field) as raised:
        for key, value in {**_request("erasure"), **change}.items():
            params[key] = value
        params.validate()
    assert type(raised.value).__name__ == "ParamValidationError"


def test_a_request_without_request_id_is_rejected(airflow_db):
    params = copy.deepcopy(_dag().params)
    with pytest.raises(Exception, match="request_id") as raised:
        params.validate()
    assert type(raised.value).__name__ == "ParamValidationError"


def test_a_malformed_trigger_creates_no_run(airflow_db, dativo_home):
    with pytest.raises(Exception, match="kind") as raised:
        _trigger({**_request("erasure"), "kind": "forget-me"})
    assert type(raised.value).__name__ == "ParamValidationError"


def test_a_request_without_identifiers_fails_before_any_work(airflow_db, dativo_home, dsr_keys):
    run = _trigger(_request("erasure", subject_ids=[], emails=[]))
    states = _states(run)
    assert run.state == "failed" and states["route"] == "failed"
    assert states.get("discover") != "success" and states.get("erase") != "success"


# --- deadlines and keys, operator by operator -------------------------------------------------------


def test_a_request_close_to_its_deadline_fails_loudly(dativo_home, dsr_keys):
    from dativo_provider.operators.privacy import DsrDiscoverOperator

    now = datetime.now(timezone.utc)
    task = DsrDiscoverOperator(task_id="discover", contracts=str(Path(__file__).parents[2] / "contracts"))
    for deadline, words in ((now + timedelta(days=1), "escalate"), (now - timedelta(hours=1), "overdue")):
        params = _request("access", received_at=(now - timedelta(days=29)).isoformat(), deadline=deadline.isoformat())
        with pytest.raises(AirflowFailException, match=words):
            task.execute({"params": params})


def test_signing_key_connection_forms(monkeypatch):
    from dativo_provider.hooks.privacy import DsrKeyHook

    monkeypatch.setenv(*connection_env("sign_ed", conn_type="generic", password=PEM))
    monkeypatch.setenv(*connection_env("sign_hmac", conn_type="generic", password="h" * 32,
                                       extra={"algorithm": "hmac-sha256", "key_id": "k1"}))
    monkeypatch.setenv(*connection_env("sign_bad", conn_type="generic", password="x" * 32, extra={"algorithm": "rsa"}))
    monkeypatch.setenv(*connection_env("short", conn_type="generic", password="short"))
    ed, mac = DsrKeyHook("sign_ed").signing_key(), DsrKeyHook("sign_hmac").signing_key()
    assert (ed.algorithm, ed.key_id, mac.algorithm, mac.key_id) == ("ed25519", "sign_ed", "hmac-sha256", "k1")
    assert PEM_BODY not in repr(ed) and "h" * 32 not in repr(mac)
    with pytest.raises(ConfigError, match="'rsa'"):
        DsrKeyHook("sign_bad").signing_key()
    with pytest.raises(ConfigError, match="at least 16") as raised:
        DsrKeyHook("short").hash_key()
    assert "short" not in str(raised.value).replace("'short'", "")


# --- end to end through the example DAG ------------------------------------------------------------


def _subject_left(table: Any, subject_id: int, email: str) -> int:
    rows = table.to_pylist()
    return sum(1 for r in rows if r.get("customer_id") == subject_id
               or (isinstance(r.get("email"), str) and r["email"].strip().lower() == email))


def test_access_then_erasure_end_to_end(airflow_db, warehouse, dsr_keys, dsr_vars, capfd, caplog):
    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.privacy.audit import AuditTrail, IcebergAuditStore, verify  # noqa: F401
    from dativo_provider.privacy.certificate import VerifyingKey, verify_certificate

    access = _trigger(_request("access"))
    assert access.state == "success", _states(access)
    (manifest,) = return_values(access, "export")
    exported = {t["table"]: t["rows"] for t in manifest["tables"]}
    assert {t: n for t, n in exported.items() if n} == {t: n for t, n in warehouse.expected_rows.items() if n}
    assert _states(access)["erase"] == "skipped"

    before = {name: len(IcebergHook().get_conn().load_table(name).scan().to_arrow()) for name in warehouse.expected}
    erasure = _trigger(_request("erasure"))
    assert erasure.state == "success", _states(erasure)
    (summary,) = return_values(erasure, "erase")
    assert summary["verified"] is True

    catalog = IcebergHook().get_conn()
    for name, expected in warehouse.expected.items():
        table = catalog.load_table(name).scan().to_arrow()
        assert _subject_left(table, warehouse.subject_id, warehouse.subject_email) == 0, name
        assert len(table) == before[name] - expected.num_rows, name

    certificate = Path(summary["certificate_path"])
    assert certificate.parent == dsr_vars / "certificates" and stat.S_IMODE(certificate.stat().st_mode) == 0o600
    public = VerifyingKey.ed25519(PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), "dsr-test")
    check = verify_certificate(certificate.read_bytes(), public)
    assert check.valid, check.reason
    document = json.loads(certificate.read_text())
    assert document["totals"]["rows_deleted"] == sum(warehouse.expected_rows.values())
    assert warehouse.subject_email not in certificate.read_text()

    trail = verify(IcebergAuditStore(catalog, "dativo.dsr_audit"), HASH_KEY.encode())
    assert trail.valid, trail.reason
    events = [row["event"] for row in catalog.load_table("dativo.dsr_audit").scan().to_arrow().to_pylist()]
    assert {"received", "discovered", "exported", "deleted", "purged", "verified", "completed"} <= set(events)

    _assert_no_secret_or_identifier_leaked(capfd, caplog, [manifest, summary], warehouse.subject_email)


def _assert_no_secret_or_identifier_leaked(capfd, caplog, xcoms: list[Any], email: str) -> None:
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text
    for secret in (HASH_KEY, PEM_BODY):
        assert secret not in logs, "a key reached the task logs"
        assert secret not in json.dumps(xcoms, default=str), "a key reached XCom"
        found = [str(p) for p in AIRFLOW_HOME.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert found == [], f"a key was written to {found}"
    assert email not in json.dumps(xcoms, default=str), "an identifier reached XCom"


def test_restriction_then_lift_through_the_dag(airflow_db, warehouse, dsr_keys, dsr_vars, tmp_path):
    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.privacy.restriction import RestrictionRegistry

    run = _trigger(_request("restriction"))
    assert run.state == "success", _states(run)
    assert return_values(run, "restrict")[0] == {"request_id": "dsr-restriction-1", "action": "restrict", "rows": 1}
    registry = RestrictionRegistry(IcebergHook().get_catalog_config(), HASH_KEY.encode())
    assert len(registry.active_hashes("customer")) == 1

    # While restricted, an ingest with the contract and the registry holds the subject's new rows.
    from dativo_provider.operators.ingest import IcebergIngestOperator

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "orders.csv").write_text(
        "order_id,ordered_at,customer_id,product_id,quantity,amount,currency,status\n"
        "9000001,2024-05-01T10:00:00Z,87,1,1,10.00,EUR,paid\n"
        "9000002,2024-05-01T11:00:00Z,5,1,1,12.00,EUR,paid\n")
    columns = {"order_id": "int64", "ordered_at": "timestamptz", "customer_id": "int64", "product_id": "int64",
               "quantity": "int32", "amount": "decimal(12,2)", "currency": "string", "status": "string"}
    summary = IcebergIngestOperator(
        task_id="ingest", source={"type": "files", "path": str(drop), "glob": "*.csv", "columns": columns},
        table="examples.may_orders", contract=str(Path(__file__).parents[2] / "contracts" / "orders.odcs.yaml"),
        restrictions_table="dativo.restrictions",
    ).execute({"run_id": "manual__restricted"})
    assert (summary["rows_published"], summary["rows_quarantined"]) == (1, 1)
    held = IcebergHook().get_conn().load_table("examples.may_orders_quarantine").scan().to_arrow()
    assert held["customer_id"].to_pylist() == [87] and held["_dativo_failed_checks"].to_pylist() == [["restricted"]]
    # A scheduled check of the customers table leaves the restricted customer's row out.
    from dativo_provider.operators.contracts import ContractCheckOperator

    report = ContractCheckOperator(
        task_id="check", contract=str(Path(__file__).parents[2] / "contracts" / "customers.odcs.yaml"),
        table="examples.customers", restrictions_table="dativo.restrictions", fail_on="never",
    ).execute({})
    assert report["rows_restricted"] == 1

    lifted = _trigger(_request("lift_restriction"))
    assert lifted.state == "success", _states(lifted)
    assert return_values(lifted, "lift_restriction")[0]["rows"] == 1
    assert registry.active_hashes("customer") == frozenset()


# --- account termination ------------------------------------------------------------------------------


# Defined only where it applies (Airflow 3 tasks cannot use the metadata DB (see the API test)), never skipped.
if not (AIRFLOW_V_3_0_PLUS):

    def test_tenant_termination_through_the_metadata_db(airflow_db, dativo_home, dsr_keys, tmp_path, monkeypatch):
        from airflow.models.connection import Connection
        from airflow.models.dag import DagModel, DagTag
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        from dativo_provider.operators.privacy import TenantTerminateOperator
        from dativo_provider.privacy.audit import ObjectAuditStore, verify

        conns = ["tenant_acme_db", "tenant_acme_s3", "tenant_acmex_db", "tenantXacme_db", "other"]
        with create_session() as session:
            for model in (Connection, Variable, DagTag, DagModel):
                session.query(model).delete()
            for conn_id in conns:
                session.add(Connection(conn_id=conn_id, conn_type="generic", password="pw"))
            for dag_id, tag in (("acme_sync", "tenant:acme"), ("acmex_sync", "tenant:acmex"), ("core", "dativo")):
                session.add(DagModel(dag_id=dag_id, is_paused=False, fileloc="/x.py"))
                session.add(DagTag(name=tag, dag_id=dag_id))
        for key in ("tenant_acme_token", "tenant_acmex_token", "shared"):
            Variable.set(key, "v")
        monkeypatch.setenv("AIRFLOW_CONN_TENANT_ACME_ENV", "generic://x")

        task = TenantTerminateOperator(task_id="terminate", account="acme", audit_path=str(tmp_path / "audit"))
        result = task.execute({"params": {"request_id": "term-acme-1"}, "run_id": "r1"})

        assert result["connections"]["removed"] == ["tenant_acme_db", "tenant_acme_s3"]
        assert result["variables"]["removed"] == ["tenant_acme_token"]
        assert result["dags"]["paused"] == ["acme_sync"]
        assert result["left_outside_airflow"]["connections"] == ["tenant_acme_env"]
        with create_session() as session:
            assert sorted(c.conn_id for c in session.query(Connection)) == sorted(conns[2:])
            assert sorted(v.key for v in session.query(Variable)) == ["shared", "tenant_acmex_token"]
            assert {d.dag_id: d.is_paused for d in session.query(DagModel)} == {
                "acme_sync": True, "acmex_sync": False, "core": False}
        check = verify(ObjectAuditStore(str(tmp_path / "audit")), HASH_KEY.encode())
        assert check.valid and check.events == 5, check.reason


# Defined only where it applies (Airflow 3 only), never skipped.
if AIRFLOW_V_3_0_PLUS:

    def test_tenant_termination_on_airflow_3_needs_the_rest_api(dativo_home, dsr_keys, tmp_path):
        from dativo_provider.operators.privacy import TenantTerminateOperator

        task = TenantTerminateOperator(task_id="terminate", account="acme", audit_path=str(tmp_path / "audit"))
        with pytest.raises(AirflowFailException, match="airflow_api_conn_id"):
            task.execute({"params": {}, "run_id": "r1"})


def test_tenant_account_names_are_checked(dativo_home, dsr_keys, tmp_path):
    from dativo_provider.operators.privacy import TenantTerminateOperator

    for account in ("", "acme%", "../x", "a b"):
        task = TenantTerminateOperator(task_id="t", account=account, audit_path=str(tmp_path / "a"))
        with pytest.raises(AirflowFailException, match="account"):
            task.execute({"params": {}, "run_id": "r1"})
    assert not os.path.exists(tmp_path / "a")


API_PASSWORD = "Api-Admin-Pass-3c9e1f"


@pytest.fixture
def airflow_api(airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
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

    def test_tenant_termination_through_the_rest_api(airflow_api, dativo_home, dsr_keys, tmp_path, monkeypatch, caplog,
                                                     capfd):
        from airflow.models.connection import Connection
        from airflow.models.dag import DagModel, DagTag
        from airflow.models.dagbundle import DagBundleModel
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        from dativo_provider.operators.privacy import TenantTerminateOperator
        from dativo_provider.privacy.audit import ObjectAuditStore, verify

        conns = ["tenant_acme_db", "tenant_acme_s3", "tenant_acmex_db", "tenantXacme_db", "other"]
        with create_session() as session:
            for conn_id in conns:
                session.query(Connection).filter(Connection.conn_id == conn_id).delete()
                session.add(Connection(conn_id=conn_id, conn_type="generic", password="pw"))
            for key in ("tenant_acme_token", "tenant_acmex_token", "shared"):
                session.query(Variable).filter(Variable.key == key).delete()
                session.add(Variable(key=key, val="v"))
            if session.get(DagBundleModel, "tenant-test") is None:
                session.add(DagBundleModel(name="tenant-test"))
            session.flush()
            for dag_id, tag in (("acme_sync", "tenant:acme"), ("acmex_sync", "tenant:acmex"), ("core", "dativo")):
                session.query(DagTag).filter(DagTag.dag_id == dag_id).delete()
                session.query(DagModel).filter(DagModel.dag_id == dag_id).delete()
                session.flush()
                session.add(DagModel(dag_id=dag_id, is_paused=False, is_stale=False, bundle_name="tenant-test",
                                     fileloc="/x.py"))
                session.flush()
                session.add(DagTag(name=tag, dag_id=dag_id))
        monkeypatch.setenv(*connection_env("airflow_api", conn_type="http", host=airflow_api, login="admin",
                                           password=API_PASSWORD))

        task = TenantTerminateOperator(task_id="terminate", account="acme", airflow_api_conn_id="airflow_api",
                                       audit_path=str(tmp_path / "audit"))
        dry = task.__class__(task_id="dry", account="acme", airflow_api_conn_id="airflow_api", dry_run=True,
                             audit_path=str(tmp_path / "audit"))
        assert dry.execute({"params": {"request_id": "term-acme-0"}, "run_id": "r0"})["connections"]["count"] == 2
        result = task.execute({"params": {"request_id": "term-acme-1"}, "run_id": "r1"})

        assert result["backend"] == "rest-api"
        assert result["connections"]["removed"] == ["tenant_acme_db", "tenant_acme_s3"]
        assert result["variables"]["removed"] == ["tenant_acme_token"]
        assert result["dags"]["paused"] == ["acme_sync"]
        with create_session() as session:
            left = {c.conn_id for c in session.query(Connection)}
            assert set(conns[2:]) <= left and not {"tenant_acme_db", "tenant_acme_s3"} & left
            keys = {v.key for v in session.query(Variable)}
            assert {"shared", "tenant_acmex_token"} <= keys and "tenant_acme_token" not in keys
            paused = {d.dag_id: d.is_paused for d in session.query(DagModel).filter(DagModel.bundle_name == "tenant-test")}
            assert paused == {"acme_sync": True, "acmex_sync": False, "core": False}
        check = verify(ObjectAuditStore(str(tmp_path / "audit")), HASH_KEY.encode())
        assert check.valid and check.events == 10, check.reason
        captured = capfd.readouterr()
        assert API_PASSWORD not in captured.out + captured.err + caplog.text
        assert API_PASSWORD not in json.dumps(result)
