"""Data-subject requests (GDPR Art. 15, 17, 18, 20), one run per request.

### What it shows

The run branches on the request's `kind`:

- `access` / `portability`: discover → export (JSON files and a manifest, mode 0600/0700);
- `erasure`: discover → erase (delete, purge, verify) → signed certificate (mode 0600);
- `restriction` / `lift_restriction`: record or lift the restriction in the registry.

The `params` validate the request against a JSON schema before anything runs (a malformed request is
refused by the trigger call). The first task checks what the schema cannot (at least one
identifier) and the deadline: a request overdue or within three days of its deadline fails loudly.

### What it needs

- the `privacy` extra (`pip install "dativo-airflow-provider[privacy]"`) for Ed25519 certificates;
- connections `dativo_dsr_signing` (an Ed25519 PEM key or an HMAC secret) and `dativo_dsr_hash_key`
  (the audit trail's and registry's key), both in their `password` field;
- the contracts in `CONTRACTS` below, and the `iceberg_default` catalog (the embedded one without it);
- optional variables: `dativo_dsr_refs_policy` (default `fail`), `dativo_dsr_safety_window_minutes`
  (default 30), `dativo_dsr_output_dir` (default `$AIRFLOW_HOME/dativo/dsr`: exports under
  `exports/<request_id>/`, certificates under `certificates/<request_id>.json`).

### How to run it

Trigger a run with the request as its conf, through the UI, `airflow dags trigger example_dsr
--conf '{"request_id": "dsr-2024-0042", "kind": "access", "subject_ids": ["87"]}'`, or Airflow's
REST API (`POST /api/v2/dags/example_dsr/dagRuns`; see docs/privacy.md). One request runs at a
time (`max_active_runs=1`): two erasures rewriting the same tables would only race each other.
"""

from __future__ import annotations

import os
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

import dativo_provider
from dativo_provider.operators.privacy import (
    DsrDiscoverOperator,
    DsrEraseOperator,
    DsrExportOperator,
    DsrRestrictOperator,
)
from dativo_provider.privacy.request import KINDS

CONTRACTS = str(Path(dativo_provider.__file__).parent / "sample_data" / "contracts")
OUTPUT = (
    "{{ var.value.get('dativo_dsr_output_dir', '"
    + os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "dativo", "dsr")
    + "') }}"
)

PARAMS = {
    "request_id": Param(
        type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{2,63}$",
        description="Your ticket id for the request; names the outputs and audit events.",
    ),
    "kind": Param(type="string", enum=list(KINDS), description="What the subject asked for."),
    "subject_kind": Param(
        "customer", type="string", pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="The dativoDataSubject value in the contracts, e.g. customer.",
    ),
    "subject_ids": Param(
        [], type="array", maxItems=100, uniqueItems=True,
        items={"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^\S(.*\S)?$"},
        description="Values of the subject-identifier columns (as text).",
    ),
    "emails": Param(
        [], type="array", maxItems=100, uniqueItems=True,
        items={"type": "string", "maxLength": 320, "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"},
        description="The subject's e-mail addresses.",
    ),
    "received_at": Param(
        None, type=["null", "string"], format="date-time",
        description="When the request arrived (RFC 3339); default: when the run was queued.",
    ),
    "deadline": Param(
        None, type=["null", "string"], format="date-time",
        description="When it must be answered (RFC 3339); default: received_at + 30 days.",
    ),
}

with DAG(
    dag_id="example_dsr",
    schedule=None,
    params=PARAMS,
    max_active_runs=1,
    tags=["dativo", "example", "privacy"],
    doc_md=__doc__,
    render_template_as_native_obj=False,
):

    @task.branch
    def route(params: dict | None = None) -> str:
        """Validate the request as a whole (identifiers, deadline) and pick the branch for its kind."""
        from dativo_provider.operators.privacy import subject_request
        from dativo_provider.privacy.dsr import check_deadline

        request = subject_request(params or {})
        check_deadline(request)
        return {"access": "discover", "portability": "discover", "erasure": "discover",
                "restriction": "restrict", "lift_restriction": "lift_restriction"}[request.kind]

    @task.branch
    def after_discovery(params: dict | None = None) -> str:
        return "erase" if (params or {}).get("kind") == "erasure" else "export"

    discover = DsrDiscoverOperator(task_id="discover", contracts=CONTRACTS)
    export = DsrExportOperator(task_id="export", contracts=CONTRACTS, destination=OUTPUT + "/exports")
    erase = DsrEraseOperator(
        task_id="erase",
        contracts=CONTRACTS,
        certificate_path=OUTPUT + "/certificates/{{ params.request_id }}.json",
        refs_policy="{{ var.value.get('dativo_dsr_refs_policy', 'fail') }}",
        safety_window_minutes="{{ var.value.get('dativo_dsr_safety_window_minutes', '30') }}",
    )
    restrict = DsrRestrictOperator(task_id="restrict", action="restrict")
    lift = DsrRestrictOperator(task_id="lift_restriction", action="lift")

    route() >> [discover, restrict, lift]
    discover >> after_discovery() >> [export, erase]
