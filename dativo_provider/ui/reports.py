"""Contract-check and drift reports a reports folder holds, per table.

Neither kind of result is recorded in the catalog: a contract run's report goes to XCom and, when the
task is given a path, to a JSON file (``quality_report_path`` of ``ContractCheckOperator``,
``report_path`` of the ingest's contract gate); a drift check's to ``json_path`` / ``report_path``
(HTML, with its plots). Point those paths at ``<reports_dir>/<namespace.table>/`` and the page shows
the newest of each kind::

    ContractCheckOperator(..., table="crm.orders",
                          quality_report_path="/reports/crm.orders/contract-{{ ts_nodash }}.json")
    DriftCheckOperator(..., table="crm.orders", json_path="/reports/crm.orders/drift-{{ ts_nodash }}.json",
                       report_path="/reports/crm.orders/drift-{{ ts_nodash }}.html")

A file is a contract report when it has ``checks``, a drift report when it has ``dataset_drift``; the
HTML beside a drift JSON (same name, ``.html``) is its plots. Failing rows' key values
(``failing_keys``) are never served: they can identify a person.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Drift reports shown per table, newest first.
MAX_DRIFT_REPORTS = 5
#: What a table identifier may look like to name a folder (no separators, no ``..``).
_SAFE_IDENTIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.$-]*$")
_CHECK_FIELDS = ("name", "engine", "category", "severity", "outcome", "column", "metric", "observed",
                 "threshold", "failing_rows", "message")
_DRIFT_FIELDS = ("column", "kind", "stattest", "value_kind", "value", "threshold", "drifted",
                 "reference_rows", "current_rows")
_MAX_NEW_CATEGORIES = 20


@dataclass(frozen=True)
class TableReports:
    """The newest contract report and the newest drift reports of one table (JSON-ready)."""

    contract: dict[str, Any] | None
    drift: list[dict[str, Any]]


def table_reports(reports_dir: Path | None, table: str) -> TableReports:
    """What ``reports_dir/<table>/`` holds; empty when there is no folder or ``table`` is no safe name."""
    folder = table_folder(reports_dir, table)
    if folder is None:
        return TableReports(None, [])
    contract: dict[str, Any] | None = None
    drift: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json"), key=_newest_first):
        document = _read_json(path)
        if document is None:
            continue
        if contract is None and isinstance(document.get("checks"), list):
            contract = contract_report(document, path)
        elif isinstance(document.get("dataset_drift"), bool) and len(drift) < MAX_DRIFT_REPORTS:
            drift.append(drift_report(document, path))
    return TableReports(contract, drift)


def table_folder(reports_dir: Path | None, table: str) -> Path | None:
    """``reports_dir/<table>`` when it exists and ``table`` cannot leave ``reports_dir``."""
    if reports_dir is None or not _SAFE_IDENTIFIER.match(table) or ".." in table:
        return None
    folder = reports_dir / table
    return folder if folder.is_dir() else None


def plot_file(reports_dir: Path | None, table: str, name: str) -> Path | None:
    """The HTML plots file ``name`` of ``table``'s drift reports, if it is one (else None)."""
    folder = table_folder(reports_dir, table)
    if folder is None or not re.fullmatch(r"[A-Za-z0-9_.:+-]+\.html", name) or ".." in name:
        return None
    path = folder / name
    return path if path.is_file() else None


def contract_report(document: dict[str, Any], path: Path) -> dict[str, Any]:
    """A contract report's summary and one entry per rule (failing rows' keys left out)."""
    checks = [{k: check.get(k) for k in _CHECK_FIELDS}
              for check in document["checks"] if isinstance(check, dict)]
    return {
        "file": path.name, "written_at": _mtime(path), "contract": document.get("contract"),
        "contract_version": document.get("contract_version"), "verdict": document.get("verdict"),
        "snapshot_id": _text(document.get("snapshot_id")), "rows_checked": document.get("rows_checked"),
        "checks_passed": document.get("checks_passed"), "checks_failed": document.get("checks_failed"),
        "checks": checks,
    }


def drift_report(document: dict[str, Any], path: Path) -> dict[str, Any]:
    """A drift report's verdict and per-column results, with the name of its HTML plots if present."""
    columns = []
    for column in document.get("columns") or []:
        if isinstance(column, dict):
            entry = {k: column.get(k) for k in _DRIFT_FIELDS}
            entry["new_categories"] = list(column.get("new_categories") or [])[:_MAX_NEW_CATEGORIES]
            columns.append(entry)
    plots = path.with_suffix(".html")
    return {
        "file": path.name, "written_at": _mtime(path), "dataset_drift": document["dataset_drift"],
        "share_drifted": document.get("share_drifted"), "drift_share": document.get("drift_share"),
        "drifted_columns": list(document.get("drifted_columns") or []),
        "reference": _snapshot_ids_as_text(document.get("reference")),
        "current": _snapshot_ids_as_text(document.get("current")),
        "columns": columns, "plots": plots.name if plots.is_file() else None,
    }


def _snapshot_ids_as_text(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {k: (str(v) if "snapshot" in k and isinstance(v, int) else v) for k, v in value.items()}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("report %s is not readable JSON: %s", path, exc)
        return None
    return document if isinstance(document, dict) else None


def _newest_first(path: Path) -> tuple[float, str]:
    try:
        return (-path.stat().st_mtime, path.name)
    except OSError:
        return (0.0, path.name)


def _mtime(path: Path) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(os.path.getmtime(path), tz=timezone.utc).isoformat(timespec="seconds")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
