"""Terminate a tenant's access (SOC2 CC6.3): its connections, variables and DAGs, each step audited.

A tenant ``acme`` owns the connections and variables whose id/key starts with its ``prefix``
(``tenant_acme_``) and the DAGs tagged ``dag_tag`` (``tenant:acme``). A :class:`TenantBackend` (in the
Airflow layer: the metadata database or Airflow's REST API) removes those connections and variables
and pauses those DAGs; this module decides the order, records every step in the audit trail and, when
asked, erases the tenant's data afterwards. A dry run asks the backend what it would change and is
recorded as a dry run (``would_terminate`` per step, ending with ``dry_run_completed``), never as a
termination.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dativo_provider.privacy.audit import AuditTrail

log = logging.getLogger(__name__)

TERMINATION_STEPS = ("connections", "variables", "dags")


class TenantBackend(Protocol):
    """Changes Airflow's own objects for one step (one of :data:`TERMINATION_STEPS`)."""

    name: str

    def run(self, step: str, prefix: str, dag_tag: str, dry_run: bool) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Tenant:
    """Whose access ends: the ``account``, its id/key ``prefix``, its ``dag_tag``, and the connections and
    variables defined outside Airflow's store (environment, secrets backend) that no backend can remove,
    by step (``{"connections": [...], "variables": [...]}``)."""

    account: str
    prefix: str
    dag_tag: str
    left_outside_airflow: Mapping[str, list[str]] = field(default_factory=dict)


def terminate_tenant(tenant: Tenant, open_backend: Callable[[], TenantBackend], *, trail: AuditTrail,
                     request_id: str, dry_run: bool = False,
                     erase: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Remove the tenant's connections and variables and pause its DAGs; then ``erase`` its data.

    The trail records ``received``, one ``terminated`` (or ``would_terminate``) event per step naming
    what changed and what was left outside Airflow, and ``completed`` (``dry_run_completed``); a
    failure at any step, opening the backend included, records ``failed`` and re-raises.

    :param open_backend: builds the backend (inside the recorded steps: a backend that cannot be had
        is a failed termination).
    :param erase: erases the tenant's data (not called in a dry run); its result is ``erasure``.
    :returns: per step the backend's report, ``backend``, ``left_outside_airflow`` and, after an
        erasure, ``erasure``. No secret, no identifier.
    """
    outside = {step: list(names) for step, names in tenant.left_outside_airflow.items()}
    result: dict[str, Any] = {"request_id": request_id, "account": tenant.account, "prefix": tenant.prefix,
                              "dag_tag": tenant.dag_tag, "dry_run": dry_run, "left_outside_airflow": outside}
    trail.append(request_id, "received", {"kind": "termination", "account": tenant.account, "dry_run": dry_run})
    try:
        _run_steps(tenant, open_backend(), trail, result)
        if erase is not None and not dry_run:
            result["erasure"] = erase()
    except BaseException as exc:
        trail.append(request_id, "failed", {"step": "termination", "error": type(exc).__name__,
                                            "dry_run": dry_run, "left_outside_airflow": outside})
        raise
    trail.append(request_id, "dry_run_completed" if dry_run else "completed",
                 {"kind": "termination", "account": tenant.account, "erased": "erasure" in result,
                  "dry_run": dry_run, "left_outside_airflow": outside})
    return result


def _run_steps(tenant: Tenant, backend: TenantBackend, trail: AuditTrail, result: dict[str, Any]) -> None:
    """Each step through ``backend``, one audit event per step; fills ``result`` in place."""
    dry_run = result["dry_run"]
    result["backend"] = backend.name
    event = "would_terminate" if dry_run else "terminated"
    for step in TERMINATION_STEPS:
        result[step] = backend.run(step, tenant.prefix, tenant.dag_tag, dry_run)
        details = {"step": step, "backend": backend.name, "dry_run": dry_run, **result[step]}
        if step in result["left_outside_airflow"]:
            details["left_outside_airflow"] = result["left_outside_airflow"][step]
        trail.append(result["request_id"], event, details)
