"""The termination engine's order and evidence, with a backend that records what it was asked.

The real backends (metadata database, REST API) are exercised end to end in
``tests/airflow/test_termination.py``; here the engine alone: every step is asked in order, each is one
audit event, a failing step is recorded as ``failed`` with what was left outside Airflow, and the
erasure runs only after the steps and never in a dry run.
"""

from __future__ import annotations

from typing import Any

import pytest

from dativo_provider.privacy.audit import AuditTrail, verify
from dativo_provider.privacy.audit_stores import ObjectAuditStore
from dativo_provider.privacy.termination import Tenant, terminate_tenant

KEY = b"termination-engine-test-key-0123"
OUTSIDE = {"connections": ["tenant_acme_env"], "variables": []}


class RecordingBackend:
    name = "recording"

    def __init__(self, fail_at: str | None = None) -> None:
        self.asked: list[tuple[str, str, str, bool]] = []
        self.fail_at = fail_at

    def run(self, step: str, prefix: str, dag_tag: str, dry_run: bool) -> dict[str, Any]:
        self.asked.append((step, prefix, dag_tag, dry_run))
        if step == self.fail_at:
            raise OSError(f"{step} could not be changed")
        return {"count": len(self.asked)}


def _events(path: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e.event["event"], e.event["details"]) for e in ObjectAuditStore(str(path)).read()]  # type: ignore[index]


def test_each_step_is_asked_in_order_and_recorded_then_the_erasure_runs(tmp_path):
    backend, erased = RecordingBackend(), []
    trail = AuditTrail(ObjectAuditStore(str(tmp_path)), KEY)
    result = terminate_tenant(Tenant("acme", "tenant_acme_", "tenant:acme", OUTSIDE), lambda: backend, trail=trail,
                              request_id="term-1", erase=lambda: erased.append(len(backend.asked)) or {"ok": 1})
    assert backend.asked == [(s, "tenant_acme_", "tenant:acme", False) for s in ("connections", "variables", "dags")]
    assert erased == [3] and result["erasure"] == {"ok": 1}
    assert (result["connections"], result["dags"], result["backend"]) == ({"count": 1}, {"count": 3}, "recording")
    events = _events(tmp_path)
    assert [e for e, _ in events] == ["received", "terminated", "terminated", "terminated", "completed"]
    assert events[1][1] == {"step": "connections", "backend": "recording", "dry_run": False, "count": 1,
                            "left_outside_airflow": ["tenant_acme_env"]}
    assert events[-1][1]["erased"] is True and events[-1][1]["left_outside_airflow"] == OUTSIDE
    assert verify(ObjectAuditStore(str(tmp_path)), KEY).valid


def test_a_dry_run_never_erases_and_is_recorded_as_one(tmp_path):
    trail = AuditTrail(ObjectAuditStore(str(tmp_path)), KEY)
    result = terminate_tenant(Tenant("acme", "tenant_acme_", "tenant:acme"), RecordingBackend, trail=trail,
                              request_id="term-dry", dry_run=True, erase=lambda: pytest.fail("erased in a dry run"))
    assert "erasure" not in result
    assert [e for e, _ in _events(tmp_path)] == ["received", *["would_terminate"] * 3, "dry_run_completed"]


@pytest.mark.parametrize("fail_at", ["variables", "open"])
def test_a_failing_step_is_recorded_as_failed_and_raised(tmp_path, fail_at):
    def open_backend() -> RecordingBackend:
        if fail_at == "open":
            raise OSError("no backend")
        return RecordingBackend(fail_at)

    trail = AuditTrail(ObjectAuditStore(str(tmp_path)), KEY)
    with pytest.raises(OSError):
        terminate_tenant(Tenant("acme", "tenant_acme_", "tenant:acme", OUTSIDE), open_backend, trail=trail,
                         request_id="term-2", erase=lambda: pytest.fail("erased after a failed step"))
    events = _events(tmp_path)
    expected = ["received", "terminated", "failed"] if fail_at == "variables" else ["received", "failed"]
    assert [e for e, _ in events] == expected
    assert events[-1][1] == {"step": "termination", "error": "OSError", "dry_run": False,
                             "left_outside_airflow": OUTSIDE}
