"""Deadlines of data-subject requests from their DAG runs (the audit trail records neither).

A request DAG (``example_dsr`` and its like) is triggered with the request as its conf; the runs of
the DAGs named in ``[dativo_ui] request_dag_ids`` are read here for ``request_id``, ``received_at`` and
``deadline`` only. The conf's identifiers (``subject_ids``, ``emails``) are never read out of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dativo_provider.plugins.ui_config import option
from dativo_provider.privacy.request import DEFAULT_DEADLINE
from dativo_provider.ui.subject_requests import RequestFacts

#: Runs read per DAG, newest first.
MAX_RUNS = 1000


def request_dag_ids() -> list[str]:
    return [d.strip() for d in option("request_dag_ids").split(",") if d.strip()]


def request_facts_from_runs() -> dict[str, RequestFacts]:
    """``request_id`` -> received time and deadline, from the newest run of each request."""
    dag_ids = request_dag_ids()
    if not dag_ids:
        return {}
    from sqlalchemy import select

    from airflow.models import DagRun
    from airflow.utils.session import create_session

    facts: dict[str, RequestFacts] = {}
    with create_session() as session:
        query = (select(DagRun.conf, DagRun.queued_at).where(DagRun.dag_id.in_(dag_ids))
                 .order_by(DagRun.id.desc()).limit(MAX_RUNS * len(dag_ids)))
        for conf, queued_at in session.execute(query):
            request_id = (conf or {}).get("request_id") if isinstance(conf, dict) else None
            if request_id and str(request_id) not in facts:
                facts[str(request_id)] = _facts(conf, queued_at)
    return facts


def _facts(conf: dict[str, Any], queued_at: Any) -> RequestFacts:
    """The conf's times; as the operators do, received defaults to when the run was queued and the
    deadline to received + 30 days."""
    received = datetime.fromisoformat(str(conf["received_at"])) if conf.get("received_at") else queued_at
    deadline = conf.get("deadline") or ((received + DEFAULT_DEADLINE).isoformat() if received else None)
    return RequestFacts(received=received.isoformat() if received else None,
                        deadline=str(deadline) if deadline else None)
