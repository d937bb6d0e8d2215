"""Where a drift report goes besides XCom and HTML: OpenLineage facets (as plain dicts) and MLflow.

Both are best effort by design: the caller decides whether a failure here matters (operators log a
warning and carry on, as with all lineage and metrics).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dativo_provider.ml.drift import DriftReport

_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def openlineage_facets(report: DriftReport) -> dict[str, dict[str, Any]]:
    """The checked (current) dataset's ``dataQualityMetrics`` and ``dataQualityAssertions`` input facets,
    as the dicts their OpenLineage schemas describe (without ``_producer``/``_schemaURL``, which the
    emitter adds).

    ``dataQualityMetrics`` carries what its schema has fields for (row count; per column the non-null
    count, the null count and, for categories, the distinct count); the drift verdicts, which it has no
    field for, are assertions: one per column, ``drift:<test> < threshold`` (p-value tests:
    ``>=``), passing when the column did not drift.
    """
    metrics: dict[str, dict[str, Any]] = {}
    for column in report.columns:
        entry: dict[str, Any] = {"nullCount": column.current_nulls, "count": float(column.current_rows)}
        if column.kind == "categorical":
            entry["distinctCount"] = column.current_distinct
        metrics[column.column] = entry
    rows = max((c.current_rows + c.current_nulls for c in report.columns), default=0)
    assertions = [
        {"assertion": f"drift:{c.stattest} {'>=' if c.value_kind == 'p_value' else '<'} {c.threshold:g}",
         "success": not c.drifted, "column": c.column}
        for c in report.columns
    ]
    return {"dataQualityMetrics": {"rowCount": rows, "columnMetrics": metrics},
            "dataQualityAssertions": {"assertions": assertions}}


def mlflow_metrics(report: DriftReport, prefix: str = "drift") -> dict[str, float]:
    """``{prefix}.share_drifted``, ``{prefix}.dataset_drift`` (0/1) and per column
    ``{prefix}.{column}.{test}`` (its value) and ``{prefix}.{column}.drifted`` (0/1)."""
    metrics = {f"{prefix}.share_drifted": report.share_drifted,
               f"{prefix}.dataset_drift": float(report.dataset_drift)}
    for column in report.columns:
        name = _METRIC_NAME_UNSAFE.sub("_", column.column)
        if column.value == column.value and abs(column.value) != float("inf"):
            metrics[f"{prefix}.{name}.{column.stattest}"] = column.value
        metrics[f"{prefix}.{name}.drifted"] = float(column.drifted)
    return metrics


def log_to_mlflow(report: DriftReport, run_id: str | None = None, prefix: str = "drift",
                  tracking_uri: str | None = None) -> None:
    """Log :func:`mlflow_metrics` to MLflow run ``run_id`` (default: the active run, else a new one)."""
    from dativo_provider.optional import require

    mlflow = require("mlflow", "ml")
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    metrics = mlflow_metrics(report, prefix)
    if run_id is not None:
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics(metrics)
        return
    if mlflow.active_run() is not None:
        mlflow.log_metrics(metrics)
        return
    with mlflow.start_run():
        mlflow.log_metrics(metrics)
