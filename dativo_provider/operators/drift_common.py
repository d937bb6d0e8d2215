"""What DriftCheckOperator and DriftSensor share: their parameters, the check, and the action on drift."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dativo_provider.compat import AirflowFailException, BranchMixIn, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors, contract_path

ON_DRIFT = ("fail", "warn", "branch")
DRIFT_TEMPLATE_FIELDS = ("table", "reference", "columns", "contract", "contract_dataset", "report_path",
                         "json_path", "options", "mlflow_run_id")

_log = logging.getLogger(__name__)


class DriftCheckMixin(BranchMixIn):
    """The drift check of an operator or a sensor: read, test, write the report, act on the verdict.

    On drift, ``on_drift`` says what happens: ``fail`` fails the task (no retry: the data will not
    change), ``warn`` logs a warning and succeeds, ``branch`` follows ``drift_branch`` and skips
    ``no_drift_branch`` (and the other way round without drift). ``notifier`` (an Airflow notifier,
    or any callable taking the context) is called on drift in every mode, with the result under
    ``context["drift"]``; Airflow's own ``on_failure_callback`` also fires in ``fail`` mode.
    """

    def init_drift(self, *, table: str | None, reference: Any, columns: Sequence[str] | None,
                   contract: str | None, contract_dataset: str | None, on_drift: str,
                   drift_branch: str | Sequence[str] | None, no_drift_branch: str | Sequence[str] | None,
                   report_path: str | None, json_path: str | None, options: Mapping[str, Any] | None,
                   notifier: Any, mlflow_run_id: str | None, iceberg_conn_id: str) -> None:
        if on_drift not in ON_DRIFT:
            raise ValueError(f"on_drift={on_drift!r}: expected one of {ON_DRIFT}")
        if on_drift == "branch" and (drift_branch is None or no_drift_branch is None):
            raise ValueError("on_drift='branch' needs drift_branch and no_drift_branch (task ids)")
        self.table = table
        self.reference = reference
        self.columns = list(columns) if columns is not None else None
        self.contract = contract
        self.contract_dataset = contract_dataset
        self.on_drift = on_drift
        self.drift_branch = drift_branch
        self.no_drift_branch = no_drift_branch
        self.report_path = report_path
        self.json_path = json_path
        self.options = dict(options or {})
        self.notifier = notifier
        self.mlflow_run_id = mlflow_run_id
        self.iceberg_conn_id = iceberg_conn_id

    def sample(self, spec: Any, where: str) -> Any:
        """A sample spec with ``table`` filled in from the operator's ``table``."""
        if spec is None:
            spec = {}
        if isinstance(spec, Mapping):
            spec = {**spec}
            spec.setdefault("table", self.table)
            if not spec["table"]:
                raise AirflowFailException(f"{where} names no table: pass table= or a 'table' key")
        return spec

    def run_drift_check(self, context: Context, current: Any) -> dict[str, Any]:
        """Check ``current`` against the reference; write the report; act on the verdict."""
        from dativo_provider.ml.drift_iceberg import iceberg_drift_report

        task: Any = self
        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            report = iceberg_drift_report(
                catalog, self.sample(self.reference, "reference"), self.sample(current, "current"),
                self.columns, contract=contract_path(task, self.contract) if self.contract else None,
                contract_dataset=self.contract_dataset, **self.options)
            report.write(self.json_path, self.report_path,
                         title=f"Drift: {report.current.get('table', '')} vs reference")
        task.log.info("%s (%.1f s)", report.summary(), report.seconds)
        result = report.to_dict()
        if self.report_path:
            result["report_path"] = self.report_path
        self.run_summary = result  # OpenLineage builds the event from it (operators.lineage_events)
        self._log_mlflow(report)
        if report.dataset_drift:
            self._notify(context, result)
        self._act(context, report, result)
        return result

    def _act(self, context: Context, report: Any, result: dict[str, Any]) -> None:
        task: Any = self
        if self.on_drift == "branch":
            chosen = self.drift_branch if report.dataset_drift else self.no_drift_branch
            task.log.info("Following %s", chosen)
            if "ti" in context:  # Airflow 3 ends the task inside do_branch: the return value would be lost
                context["ti"].xcom_push(key="return_value", value=result)
            self.do_branch(context, chosen)
        elif report.dataset_drift and self.on_drift == "fail":
            if "ti" in context:  # the task fails: keep the verdict in XCom for whoever investigates
                context["ti"].xcom_push(key="drift_report", value=result)
            raise AirflowFailException(f"{report.summary()}" + (f"; report: {self.report_path}"
                                                                 if self.report_path else ""))
        elif report.dataset_drift:
            task.log.warning("%s", report.summary())

    def _notify(self, context: Context, result: dict[str, Any]) -> None:
        if self.notifier is None:
            return
        task: Any = self
        try:
            self.notifier({**context, "drift": result})
        except Exception as exc:  # noqa: BLE001 - a failed alert must not hide the verdict
            task.log.warning("Drift notifier failed: %s: %s", type(exc).__name__, exc)

    def _log_mlflow(self, report: Any) -> None:
        if not self.mlflow_run_id:
            return
        from dativo_provider.ml.drift_outputs import log_to_mlflow

        task: Any = self
        try:
            log_to_mlflow(report, run_id=self.mlflow_run_id)
        except Exception as exc:  # noqa: BLE001 - metrics never fail the task
            task.log.warning("Drift metrics not logged to MLflow: %s: %s", type(exc).__name__, exc)
