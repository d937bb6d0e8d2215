"""Data-subject request operators and the example DSR DAG, on Airflow 2.11 and 3.x.

End to end on the five-table warehouse of ``tests/privacy/warehouse.py`` in the embedded catalog:
an access request exports exactly the subject's rows; an erasure request removes them (checked by
reading the tables) and leaves a certificate that verifies; keys never reach logs, XCom or files.
"""

from __future__ import annotations

import copy
import json
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


# --- parameters --------------------------------------------------------------------------------------

BLANK_PARAMS = [
    ({"subject_ids": ["87", " "]}, "'subject_ids': item 1 is blank"),
    ({"emails": [""]}, "'emails': item 0 is blank"),
    ({"subject_ids": "   "}, "'subject_ids': item 0 is blank"),
    ({"subject_ids": ["87", None]}, "'subject_ids': item 1 is a NoneType"),
    ({"subject_ids": {"id": "87"}}, "'subject_ids' must be a list of strings, not dict"),
    ({"subject_ids": '["87",'}, "'subject_ids' starts with '\\[' but is not a JSON list"),
    ({"request_id": "  "}, "lack request_id"),
]


@pytest.mark.parametrize(("change", "message"), BLANK_PARAMS, ids=[m for _, m in BLANK_PARAMS])
def test_blank_or_malformed_request_params_are_refused_by_name(change, message):
    from dativo_provider.operators.privacy import subject_request

    with pytest.raises(ConfigError, match=message) as raised:
        subject_request({**_request("erasure", emails=["zoe@example.net"]), **change})
    assert "zoe@example.net" not in str(raised.value) and "87" not in str(raised.value)


def test_a_blank_identifier_fails_the_task_before_any_work(dativo_home, dsr_keys, tmp_path):
    from dativo_provider.operators.privacy import DsrDiscoverOperator

    task = DsrDiscoverOperator(task_id="discover", contracts=str(Path(__file__).parents[2] / "contracts"),
                               audit_path=str(tmp_path / "audit"))
    with pytest.raises(AirflowFailException, match="'subject_ids': item 1 is blank"):
        task.execute({"params": _request("access", subject_ids=["87", ""])})
    assert not (tmp_path / "audit").exists()


def test_registry_table_is_the_deprecated_name_of_restrictions_table():
    from airflow.exceptions import AirflowProviderDeprecationWarning

    from dativo_provider.operators.privacy import DsrRestrictOperator

    with pytest.warns(AirflowProviderDeprecationWarning, match="'registry_table' is deprecated.*'restrictions_table'"):
        old = DsrRestrictOperator(task_id="old", registry_table="gdpr.restricted")
    assert old.restrictions_table == "gdpr.restricted"
    assert "restrictions_table" in old.template_fields and "registry_table" not in old.template_fields
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert DsrRestrictOperator(task_id="new", restrictions_table="gdpr.r").restrictions_table == "gdpr.r"
        assert DsrRestrictOperator(task_id="default").restrictions_table == "dativo.restrictions"
    with pytest.raises(ConfigError, match="give 'restrictions_table' only"):
        DsrRestrictOperator(task_id="both", restrictions_table="a.b", registry_table="c.d")


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
    features = IcebergHook().get_conn().load_table("examples.customer_features")
    on_branch = _subject_left(features.scan(snapshot_id=features.metadata.refs["experiment"].snapshot_id).to_arrow(),
                              warehouse.subject_id, warehouse.subject_email)
    assert on_branch > 0  # the erasure deletes on every branch head
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
    assert document["totals"]["rows_deleted"] == sum(warehouse.expected_rows.values()) + on_branch
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
