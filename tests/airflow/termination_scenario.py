"""Terminate tenant ``acme`` through Airflow 2.x's metadata database, with decoys that differ only in case.

On Airflow 2.x, run as ``python -m tests.airflow.termination_scenario OUT.json AUDIT_DIR BACKEND`` by
``test_termination.py``, once per metadata database and backend (``metadata-db``, or ``rest-api``
through the webserver's ``/api/v1`` served in the same process): Airflow binds its database URL when first
imported, so each database gets its own process. On Airflow 3, :func:`run` is called in the test's
process, through the REST API server it serves. The caller sets the environment (``AIRFLOW_HOME``,
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` of a migrated database, the ``dativo_dsr_hash_key`` connection,
``DATIVO_HOME``). The scenario seeds the database, runs a dry run and then a real termination, and
writes what each returned, the database's state before and after each, and the audit events as read
back: the test, not this script, judges them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HASH_KEY = "Term-Hash-Key-9d41c7a2e0b35f86"  # the caller's dativo_dsr_hash_key connection holds it
API_V1_PASSWORD = "Api-v1-Admin-Pass-58e2d1"
# acme's, by the naming convention (prefix ``tenant_acme_``, tag ``tenant:acme``).
OWNED_CONNECTIONS = ["tenant_acme_db", "tenant_acme_s3"]
OWNED_VARIABLES = ["tenant_acme_token"]
OWNED_DAGS = {"acme_sync": "tenant:acme", "acme_paused": "tenant:acme"}
# Not acme's: SQLite's LIKE and MySQL/MariaDB collations match most of them, ``_`` is a LIKE wildcard,
# and MySQL's PAD SPACE collations make ``'tenant:acme '`` equal to ``'tenant:acme'``.
DECOY_CONNECTIONS = ["Tenant_acme_upper", "TENANT_ACME_SHOUT", "tenant_ACME_mixed", "tenant_acmex_db",
                     "tenantXacme_db", "tenant_acme", "other"]
DECOY_VARIABLES = ["Tenant_acme_token2", "TENANT_ACME_SECRET", "tenant_acmex_token", "tenantXacme_key", "shared"]
DECOY_DAGS = {"shout_sync": "TENANT:ACME", "title_sync": "Tenant:Acme", "padded_sync": "tenant:acme ",
              "acmex_sync": "tenant:acmex", "core": "dativo"}
ALREADY_PAUSED = {"acme_paused", "title_sync"}


def seed() -> None:
    """Put the scenario's connections, variables and DAGs in the database (replacing earlier copies)."""
    from airflow.models.connection import Connection
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    conn_ids, keys, dags = OWNED_CONNECTIONS + DECOY_CONNECTIONS, OWNED_VARIABLES + DECOY_VARIABLES, {
        **OWNED_DAGS, **DECOY_DAGS}
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(conn_ids)).delete(synchronize_session=False)
        session.query(Variable).filter(Variable.key.in_(keys)).delete(synchronize_session=False)
        session.query(DagTag).filter(DagTag.dag_id.in_(dags)).delete(synchronize_session=False)
        session.query(DagModel).filter(DagModel.dag_id.in_(dags)).delete(synchronize_session=False)
        session.add_all([Connection(conn_id=c, conn_type="generic", password="pw") for c in conn_ids])
        session.add_all([Variable(key=key, val="v") for key in keys])
        for dag_id, tag in dags.items():
            session.add(DagModel(dag_id=dag_id, is_paused=dag_id in ALREADY_PAUSED, fileloc="/x.py",
                                 **_dag_fields(session)))
            session.flush()
            session.add(DagTag(name=tag, dag_id=dag_id))


def _dag_fields(session: Any) -> dict[str, Any]:
    """Airflow 3's DAGs belong to a bundle (created here); 2.x's API lists only active DAGs."""
    from dativo_provider.compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        return {"is_active": True}
    from airflow.models.dagbundle import DagBundleModel

    if session.get(DagBundleModel, "tenant-test") is None:
        session.add(DagBundleModel(name="tenant-test"))
        session.flush()
    return {"bundle_name": "tenant-test", "is_stale": False}


def state() -> dict[str, Any]:
    """Every connection id, variable key and DAG (paused or not) in the database, read back."""
    from airflow.models.connection import Connection
    from airflow.models.dag import DagModel
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return {"connections": sorted(c for (c,) in session.query(Connection.conn_id)),
                "variables": sorted(k for (k,) in session.query(Variable.key)),
                "dags": {d: bool(p) for d, p in session.query(DagModel.dag_id, DagModel.is_paused)}}


def terminate(audit: str, request_id: str, dry_run: bool, airflow_api_conn_id: str | None) -> dict[str, Any]:
    from dativo_provider.operators.privacy import TenantTerminateOperator

    task = TenantTerminateOperator(task_id="terminate", account="acme", audit_path=audit, dry_run=dry_run,
                                   airflow_api_conn_id=airflow_api_conn_id)
    return task.execute({"params": {"request_id": request_id}, "run_id": request_id})


def run(audit: str, airflow_api_conn_id: str | None = None) -> dict[str, Any]:
    """Seed, dry run, terminate; the results, the states in between and the audit events read back."""
    from dativo_provider.privacy.audit import ObjectAuditStore, verify

    seed()
    report: dict[str, Any] = {"before": state()}
    report["dry"] = terminate(audit, "term-acme-dry", True, airflow_api_conn_id)
    report["after_dry"] = state()
    report["real"] = terminate(audit, "term-acme-1", False, airflow_api_conn_id)
    report["after"] = state()
    store = ObjectAuditStore(audit)
    report["events"] = [{k: e.event[k] for k in ("request_id", "event", "details")}  # type: ignore[index]
                        for e in store.read()]
    check = verify(store, HASH_KEY.encode())
    report["audit"] = {"valid": check.valid, "events": check.events, "reason": check.reason}
    return json.loads(json.dumps(report))


@contextmanager
def api_v1_server() -> Iterator[str]:
    """Airflow 2's webserver app (``/api/v1``, basic auth, an ``Admin`` user) on loopback; yields its URL.

    Needs ``AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth`` in the environment.
    """
    from airflow.www.app import create_app
    from werkzeug.serving import make_server

    app = create_app(testing=True)
    with app.app_context():
        security = app.appbuilder.sm
        if not security.find_user(username="admin"):
            security.add_user("admin", "Ad", "Min", "admin@example.org", security.find_role("Admin"),
                              password=API_V1_PASSWORD)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def main(out: str, audit: str, backend: str) -> None:
    """The report of :func:`run` through ``backend`` (``metadata-db`` or ``rest-api``), as JSON in ``out``."""
    if backend == "metadata-db":
        report = run(audit)
    else:
        with api_v1_server() as url:
            os.environ["AIRFLOW_CONN_AIRFLOW_API"] = json.dumps({"conn_type": "http", "host": url,
                                                                 "login": "admin", "password": API_V1_PASSWORD})
            report = run(audit, airflow_api_conn_id="airflow_api")
    Path(out).write_text(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:4])
