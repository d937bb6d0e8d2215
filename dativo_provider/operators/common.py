"""What every operator of the provider shares: error classes for Airflow, rendered-value parsing,
contract paths, asset naming and the quality-report XCom. No operator imports another operator's module."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from dativo_provider.compat import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    Asset,
    BaseOperator,
    Context,
)
from dativo_provider.exceptions import ConfigError, TerminalError, TransientError

_log = logging.getLogger(__name__)


@contextlib.contextmanager
def airflow_errors() -> Iterator[None]:
    """Terminal errors fail the task without retries; transient ones fail it for a retry.

    Our errors already say what went wrong and what to do, so the Airflow exception carries that
    message without the chain of tracebacks behind it (which the task log would print first); the
    original traceback is logged at DEBUG. A connection (or other object) Airflow cannot find is
    terminal too: retrying does not define it.
    """
    try:
        yield
    except TerminalError as exc:
        _log_origin(exc)
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
    except TransientError as exc:
        _log_origin(exc)
        raise AirflowException(f"{type(exc).__name__} (will retry): {exc}") from None
    except AirflowNotFoundException as exc:
        raise AirflowFailException(
            f"{exc}: define it in Airflow (UI, `airflow connections add` or an AIRFLOW_CONN_<ID> "
            "environment variable) or fix the id; a retry would fail the same way"
        ) from None


def _log_origin(exc: BaseException) -> None:
    _log.debug("where the %s came from", type(exc).__name__, exc_info=exc)


def table_asset(iceberg_conn_id: str, table: str) -> Asset:
    """The Asset for a target table: ``iceberg://<conn id>/<namespace>/<table>`` (path parts quoted)."""
    parts = [urllib.parse.quote(part, safe="") for part in table.split(".")]
    return Asset(f"iceberg://{iceberg_conn_id}/{'/'.join(parts)}")


def native_bound(value: Any) -> Any:
    """A rendered bound as the cursor type: ISO strings become datetimes, ``""``/``"None"`` None."""
    if not isinstance(value, str):
        return value
    if value.strip() in ("", "None"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


def is_template(value: Any) -> bool:
    """Is ``value`` a Jinja template (rendered only at run time)?"""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def resolve_contract_path(path: str, dag_file: str | None) -> str:
    """Where the contract file ``path`` is: absolute as given; relative first next to the DAG file,
    then in the working directory.

    :param dag_file: the DAG file that defines the task (``dag.fileloc``), None if unknown.
    :raises ConfigError: a relative path found in neither place (the message names both).
    """
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    tried = []
    if dag_file and Path(dag_file).is_absolute():
        tried.append(Path(dag_file).parent / candidate)
    tried.append(Path.cwd() / candidate)
    for place in tried:
        if place.is_file():
            return str(place)
    raise ConfigError(
        f"contract {path!r} not found: tried {' and '.join(str(p) for p in tried)} (a relative contract "
        "path is looked up next to the DAG file, then in the working directory)"
    )


def contract_path(task: BaseOperator, path: str) -> str:
    """:func:`resolve_contract_path` for a task, relative to its DAG's file."""
    dag_file = task.dag.fileloc if task.has_dag() else None
    return resolve_contract_path(path, dag_file)


def native_list(value: Any) -> list[str] | None:
    """A rendered list of run ids: a list, a JSON/Python list literal, or comma separated; empty is None."""
    if value is None or isinstance(value, (list, tuple)):
        return [str(v) for v in value] if value else None
    text = str(value).strip()
    if text in ("", "None", "[]"):
        return None
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = ast.literal_eval(text)
        return [str(v) for v in parsed] or None
    return [part.strip() for part in text.split(",") if part.strip()]


def push_report(context: Context, report: Any) -> None:
    """Push a quality report as the ``quality_report`` XCom of a task that is about to fail."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None and report:
        ti.xcom_push(key="quality_report", value=report)
