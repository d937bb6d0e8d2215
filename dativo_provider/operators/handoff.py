"""Erasure hand-off operators: plan for Spark or Trino, then adopt their delete and sign the certificate.

A DAG erasing from tables too large for a worker runs three tasks (see ``docs/handoff.md``):

1. :class:`ErasureHandoffPlanOperator` writes the engine's DELETE per table to a private file and
   returns the identifier-free plan (XCom);
2. the official provider's operator runs it: ``SparkSqlOperator(sql=<statement_path>)`` (``spark-sql
   -f``) or a Trino connection (``TrinoHook.run`` of the file's text), then the plan's inline
   ``compaction`` statement on a merge-on-read table. A task that reads the file checks it with
   :func:`~dativo_provider.privacy.handoff.read_statement` and the ``dativo_dsr_hash_key`` key. This module never imports either provider;
3. :class:`ErasureHandoffVerifyOperator` finds the engine's commit, purges, verifies by decoding every
   file and writes the same signed certificate as :class:`~dativo_provider.operators.privacy.DsrEraseOperator`.

The DELETE holds identifiers in clear text: pass its *path* to the engine, never its text through a
templated field (rendered fields are stored and shown in the UI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from dativo_provider.compat import Context
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.privacy import SIGNING_CONN_ID, DsrKeyHook
from dativo_provider.operators.common import airflow_errors
from dativo_provider.operators.privacy import DsrBaseOperator


class ErasureHandoffPlanOperator(DsrBaseOperator):
    """Step 1 of a hand-off: discover the subject's tables and write the engine's DELETE statements.

    :param engine: ``spark`` or ``trino`` (templated).
    :param engine_catalog: the engine's name for the Iceberg catalog, e.g. Spark's
        ``spark.sql.catalog.lake`` → ``lake`` (templated).
    :param statement_dir: where ``<request_id>/<table>.sql`` go, mode 0600 in folders 0700 (templated);
        the engine must read them (spark-sql runs them with ``-f``).

    Returns :meth:`~dativo_provider.privacy.handoff.HandoffPlan.to_dict`: per table the statement's path
    and HMAC under the hash key, the base snapshot, the branches, the inline compaction statement. No identifier.
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "engine", "engine_catalog", "statement_dir")

    def __init__(self, *, engine: str, engine_catalog: str, statement_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.engine_catalog = engine_catalog
        self.statement_dir = statement_dir

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.handoff import plan_handoff

        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            plan = plan_handoff(catalog, self.contract_files(), request, engine=self.engine,
                                engine_catalog=self.engine_catalog, statement_dir=self.statement_dir,
                                trail=self.audit_trail(catalog), hash_key=self.hash_key())
        self.run_summary = plan.to_dict()
        for table in plan.tables:
            self.log.info("%s: %d rows on %s, handed to %s in %s", table.table, table.rows, ", ".join(table.branches),
                          plan.engine, table.statement_path)
        return self.run_summary


class ErasureHandoffVerifyOperator(DsrBaseOperator):
    """Step 3 of a hand-off: adopt the engine's delete, purge, verify, and write the signed certificate.

    Fails (no retries) when the engine committed no delete since the planned snapshot, or left any of
    the subject's rows on a branch head, or the decoded verification finds the subject: the failure is
    recorded in the audit trail and no certificate is written.

    :param plan_task_id: the :class:`ErasureHandoffPlanOperator` task whose XCom holds the plan.
    :param certificate_path: where the certificate JSON goes (templated; mode 0600).
    :param signing_conn_id: the connection holding the Ed25519 key or HMAC secret.
    :param refs_policy: ``fail``, ``remove`` or ``repoint`` (templated), as on ``DsrEraseOperator``.
    :param safety_window_minutes: unreferenced files younger than this are kept (templated).

    Returns the summary of ``DsrEraseOperator`` plus ``engine``.
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "certificate_path", "refs_policy",
                                      "safety_window_minutes")

    def __init__(self, *, certificate_path: str, plan_task_id: str = "plan", signing_conn_id: str = SIGNING_CONN_ID,
                 refs_policy: str = "fail", safety_window_minutes: float | str = 30, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.certificate_path = certificate_path
        self.signing_conn_id = signing_conn_id
        self.refs_policy = refs_policy
        self.safety_window_minutes = safety_window_minutes

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.handoff import finish_handoff

        with airflow_errors():
            request = self.subject_request(context)
            plan = self._plan(context)
            catalog = self.catalog()
            self.run_summary = finish_handoff(
                catalog, self.contract_files(), request, plan, str(self.certificate_path),
                signing_key=DsrKeyHook(self.signing_conn_id).signing_key(), hash_key=self.hash_key(),
                trail=self.audit_trail(catalog), refs_policy=self.refs_policy,
                safety_window=timedelta(minutes=_minutes(self.safety_window_minutes)),
                object_store=self.object_store())
        return self.run_summary

    def _plan(self, context: Context) -> Mapping[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, Mapping) or "tables" not in plan:
            raise ConfigError(f"task {self.plan_task_id!r} left no hand-off plan in XCom; run the plan task first")
        return plan


def _minutes(value: float | str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"safety_window_minutes is {value!r}; expected a number of minutes") from None
