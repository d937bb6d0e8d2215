"""The DAG the page triggers to release or purge quarantined rows, with the existing operators.

Put it in your DAGs folder with two lines (a file such as ``dags/dativo_quarantine_actions.py``)::

    from dativo_provider.plugins.quarantine_actions import quarantine_actions_dag

    dag = quarantine_actions_dag()

A run's conf (the page builds it; :func:`dativo_provider.ui.quarantines.action_conf`) names the
action, the catalog's connection id, the table, its quarantine table, the contract file and the run
ids. ``release`` runs :class:`~dativo_provider.operators.contracts.QuarantineReleaseOperator`
(re-check with the contract as it is now, publish what passes), ``purge`` runs
:class:`~dativo_provider.operators.contracts.QuarantinePurgeOperator`. Who may trigger it is Airflow's
decision (DAG run permissions on this DAG); one run at a time, since a release must see the
quarantine as the previous one left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
    from airflow.models.param import Param  # type: ignore[no-redef]

from dativo_provider.operators.contracts import QuarantinePurgeOperator, QuarantineReleaseOperator
from dativo_provider.ui.settings import DEFAULT_ACTIONS_DAG_ID

_TABLE = {"type": "string", "minLength": 3, "maxLength": 500}


class _ReleaseInCatalog(QuarantineReleaseOperator):
    """The release, with the catalog connection taken from the run's conf."""

    template_fields: Sequence[str] = (*QuarantineReleaseOperator.template_fields, "iceberg_conn_id")


class _PurgeInCatalog(QuarantinePurgeOperator):
    """The purge, with the catalog connection taken from the run's conf."""

    template_fields: Sequence[str] = (*QuarantinePurgeOperator.template_fields, "iceberg_conn_id")


def quarantine_actions_dag(dag_id: str = DEFAULT_ACTIONS_DAG_ID, **dag_kwargs: Any) -> DAG:
    """A DAG with no schedule that releases or purges the quarantined runs its conf names.

    :param dag_id: the page's ``[dativo_ui] actions_dag_id`` must name the same DAG.
    :param dag_kwargs: more DAG arguments (tags, access_control, default_args, ...).
    """
    params = {
        "action": Param(type="string", enum=["release", "purge"], description="What to do with the rows."),
        "catalog": Param(type="string", minLength=1, maxLength=250,
                         description="The catalog's connection id (dativo_iceberg or iceberg)."),
        "table": Param(description="The table the rows were held back from.", **_TABLE),
        "quarantine_table": Param(description="Its quarantine table.", **_TABLE),
        "contract": Param("", type="string", maxLength=1000, description="The contract file (release only)."),
        "run_ids": Param(type="array", minItems=1, maxItems=100, items={"type": "string", "minLength": 1},
                         description="The ingest runs whose rows are released or purged."),
    }
    with DAG(dag_id=dag_id, schedule=None, params=params, max_active_runs=1,
             doc_md=__doc__, **{"tags": ["dativo"], **dag_kwargs}) as dag:

        @task.branch
        def choose(params: dict[str, Any] | None = None) -> str:
            return str((params or {})["action"])

        release = _ReleaseInCatalog(
            task_id="release", table="{{ params.table }}", contract="{{ params.contract }}",
            quarantine_table="{{ params.quarantine_table }}", run_ids="{{ params.run_ids | tojson }}",
            iceberg_conn_id="{{ params.catalog }}",
        )
        purge = _PurgeInCatalog(
            task_id="purge", quarantine_table="{{ params.quarantine_table }}",
            run_ids="{{ params.run_ids | tojson }}", iceberg_conn_id="{{ params.catalog }}",
        )
        choose() >> [release, purge]
    return dag
