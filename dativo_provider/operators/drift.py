"""DriftCheckOperator: check an Iceberg table's current data against a reference for feature drift."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.drift_common import DRIFT_TEMPLATE_FIELDS, DriftCheckMixin
from dativo_provider.operators.lineage import OpenLineageFacets


class DriftCheckOperator(OpenLineageFacets, BaseOperator, DriftCheckMixin):
    """Test every feature column of ``current`` against ``reference`` and act on the verdict.

    One call of :func:`~dativo_provider.ml.drift_iceberg.iceberg_drift_report`: both samples are pinned
    to a snapshot, read column by column, and tested with Evidently 0.7's default tests and thresholds
    unless ``options`` or the contract's ``dativoFeatures.drift`` say otherwise. Returns the JSON verdict
    (XCom); writes the HTML report to ``report_path``. See ``docs/drift.md``.

    :param reference: the reference sample: ``{"tag": "training-2024-06"}``, ``{"snapshot_id": ...}``,
        ``{"branch": ...}``, ``{"window": {"column", "start", "end"}}``, with ``table`` defaulting to
        ``table``; or ``"namespace.table"`` (main's head).
    :param current: the sample to check, same forms; default ``table`` at main's head.
    :param table: ``"namespace.table"`` both samples read unless they name another.
    :param columns: columns to test; default the contract's feature columns, else every numeric and
        categorical column.
    :param contract: ODCS contract (relative: next to the DAG file) whose ``dativoFeatures`` gives the
        feature columns and per-column drift settings; ``contract_dataset`` picks its dataset.
    :param on_drift: ``fail`` (default), ``warn`` or ``branch`` (with ``drift_branch`` and
        ``no_drift_branch``, task ids).
    :param options: ``stattest``, ``threshold``, ``column_settings``, ``drift_share``,
        ``max_rows_in_memory`` (:class:`~dativo_provider.ml.drift.DriftOptions`).
    :param report_path: where the HTML report goes (local path, templated); ``json_path`` the JSON.
    :param notifier: an Airflow notifier (or callable taking the context) called on drift.
    :param mlflow_run_id: log the statistics as metrics of this MLflow run (best effort).
    :param iceberg_conn_id: the ``iceberg`` connection (default: the embedded catalog).
    """

    template_fields: Sequence[str] = ("current", *DRIFT_TEMPLATE_FIELDS)
    template_fields_renderers: ClassVar[dict[str, str]] = {"reference": "json", "current": "json",
                                                           "options": "json"}
    ui_color = "#fbe3d7"

    def __init__(
        self,
        *,
        reference: Any,
        current: Any = None,
        table: str | None = None,
        columns: Sequence[str] | None = None,
        contract: str | None = None,
        contract_dataset: str | None = None,
        on_drift: str = "fail",
        drift_branch: str | Sequence[str] | None = None,
        no_drift_branch: str | Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        report_path: str | None = None,
        json_path: str | None = None,
        notifier: Any = None,
        mlflow_run_id: str | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.current = current
        self.init_drift(table=table, reference=reference, columns=columns, contract=contract,
                        contract_dataset=contract_dataset, on_drift=on_drift, drift_branch=drift_branch,
                        no_drift_branch=no_drift_branch, report_path=report_path, json_path=json_path,
                        options=options, notifier=notifier, mlflow_run_id=mlflow_run_id,
                        iceberg_conn_id=iceberg_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Pin both samples, test each column, write the report, then fail, warn or branch on drift."""
        return self.run_drift_check(context, self.current)
