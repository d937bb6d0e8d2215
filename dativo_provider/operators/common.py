"""What every operator of the provider shares: error classes for Airflow, rendered-value parsing,
contract paths, the contract gate of operators that commit to a table, table asset events and the
quality-report XCom. No operator imports another operator's module."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from dativo_provider.compat import (
    AIRFLOW_V_3_0_PLUS,
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    Asset,
    AssetAlias,
    BaseOperator,
    Context,
)
from dativo_provider.exceptions import ConfigError, TerminalError, TransientError
from dativo_provider.hooks.privacy import HASH_KEY_CONN_ID

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


class TableAliasOutlet:
    """Mixin for operators that commit to one Iceberg table: its asset event goes through an alias.

    A static Asset outlet would get an event on every successful run, whether a snapshot was committed
    or not, and it would have to name the catalog at DAG-parse time (reading the connection there) or a
    templated or mapped table before it is rendered. So a task that declares no outlets gets the alias
    ``dativo:<dag id>.<task id>`` instead (also when mapped: :meth:`partial`), and
    :meth:`emit_table_event` adds the table's asset (:func:`dativo_provider.assets.table_uri`) to it once
    a commit landed. A task given its own outlets keeps them; the first alias among them is used.
    """

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Airflow's ``partial``, with the alias among the outlets of every mapped task instance."""
        partial = super().partial(**kwargs)  # type: ignore[misc]
        if not kwargs.get("outlets"):
            dag = partial.kwargs.get("dag")
            partial.kwargs["outlets"] = [table_alias(dag.dag_id if dag else None, partial.kwargs["task_id"])]
        return partial

    def declare_table_alias(self) -> None:
        """Call at the end of ``__init__``: outlets are the alias unless the task was given its own."""
        task: Any = self
        if not task.outlets:
            task.outlets = [table_alias(task.dag_id if task.has_dag() else None, task.task_id)]

    def emit_table_event(self, context: Context, catalog: Any, table: str,
                         extra: dict[str, Any]) -> str | None:
        """Add the asset event of ``table`` in ``catalog`` to the alias; return its URI.

        Call only when a snapshot was committed. Never fails the task: the data is already committed,
        so a problem here is logged as a warning and the run carries on without the event.
        """
        from dativo_provider.assets import glue_catalog_id, table_uri, uses_catalog_id

        task: Any = self
        alias = next((o for o in task.outlets or [] if isinstance(o, AssetAlias)), None)
        try:
            namespace = table.rpartition(".")[0]
            catalog_id = glue_catalog_id(catalog, namespace) if uses_catalog_id(catalog) else None
            uri = table_uri(catalog, table, catalog_id=catalog_id)
            if alias is not None and "outlet_events" in context:
                _store_alias(alias)
                context["outlet_events"][alias].add(Asset(uri), extra=extra)
                task.log.info("Asset event for %s (alias %s): %s", uri, alias.name, extra)
        except Exception as exc:  # noqa: BLE001 - the commit stands; only the asset event is missing
            task.log.warning("No asset event for %s: %s: %s", table, type(exc).__name__, exc)
            return None
        return uri


def _store_alias(alias: AssetAlias) -> None:
    """Airflow 2 fails a task whose alias event names an alias its database lacks (a DAG file not parsed
    since the alias appeared, ``dag.test()``), so the alias is stored first; Airflow 3 stores it itself."""
    if AIRFLOW_V_3_0_PLUS:
        return
    from airflow.models.dataset import DatasetAliasModel
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    try:
        with create_session() as session:
            stored = select(DatasetAliasModel.id).where(DatasetAliasModel.name == alias.name)
            if session.scalar(stored) is None:
                session.add(DatasetAliasModel(name=alias.name))
    except IntegrityError:  # a mapped sibling stored it first
        pass


def table_alias(dag_id: str | None, task_id: str) -> AssetAlias:
    """The alias a task's table asset events go through: ``dativo:<dag id>.<task id>``."""
    return AssetAlias(f"dativo:{dag_id}.{task_id}" if dag_id else f"dativo:{task_id}")


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


#: The templated contract parameters of a :class:`ContractGated` operator.
CONTRACT_TEMPLATE_FIELDS = ("contract", "quarantine_table", "quality_report_path")


class ContractGated:
    """Mixin for operators that commit to one table through the ingest engine: its contract gate.

    The same parameters, with the same meaning, on every such operator:

    :param contract: an ODCS contract file enforced on every commit (write-audit-publish). A relative
        path is looked up in the DAG file's folder first, then in the worker's working directory. Rows
        that break it are published, quarantined or block the run as the contract says; a block fails
        the task without retries, nothing published, the report in the ``quality_report`` XCom.
    :param contract_dataset: the contract dataset to enforce, when the contract describes several.
    :param quarantine_table: where quarantined rows go; default ``<table>_quarantine``.
    :param quality_report_path: also write the run's JSON quality report to this file.
    :param restrictions_table: with a contract, consult this restriction registry (GDPR Art. 18, e.g.
        ``dativo.restrictions``): restricted subjects' rows are held in the quarantine, not published.
    :param hash_key_conn_id: the connection holding the DSR operators' hash key (the registry's key).
    """

    contract: str | None
    contract_dataset: str | None
    quarantine_table: str | None
    quality_report_path: str | None
    restrictions_table: str | None
    hash_key_conn_id: str

    def init_contract_gate(self, *, contract: str | None, contract_dataset: str | None,
                           quarantine_table: str | None, quality_report_path: str | None,
                           restrictions_table: str | None, hash_key_conn_id: str | None) -> None:
        """Call in ``__init__`` with the operator's contract parameters."""
        self.contract = contract
        self.contract_dataset = contract_dataset
        self.quarantine_table = quarantine_table
        self.quality_report_path = quality_report_path
        self.restrictions_table = restrictions_table
        self.hash_key_conn_id = hash_key_conn_id or HASH_KEY_CONN_ID

    def contract_gate(self, catalog: Any) -> Any:
        """The write-audit-publish gate (:class:`~dativo_provider.quality.wap.ContractGate`) for
        ``contract``, None without one."""
        if not self.contract:
            return None
        from dativo_provider.quality.wap import ContractGate

        registry = None
        if self.restrictions_table:
            from dativo_provider.hooks.privacy import DsrKeyHook
            from dativo_provider.privacy.restriction import RestrictionRegistry

            key = DsrKeyHook(self.hash_key_conn_id).hash_key()
            registry = RestrictionRegistry(catalog, key, self.restrictions_table)
        task: Any = self
        return ContractGate(
            contract_path(task, self.contract),
            catalog,
            dataset=self.contract_dataset,
            quarantine_table=self.quarantine_table,
            report_path=self.quality_report_path,
            restrictions=registry,
        )

    @staticmethod
    def gated_options(gate: Any, options: Any) -> Any:
        """``options`` with what the gate's contract implies for a table it creates (the contract
        recorded in its properties, column docs, sort by data-subject columns); as given without one."""
        if gate is None:
            return options
        from dativo_provider.quality.wap import write_options_for

        return write_options_for(gate.contract, gate.dataset.name, options)

    @contextlib.contextmanager
    def contract_audit(self, gate: Any, context: Context) -> Iterator[None]:
        """Around the engine call: log the gate's report readably; on a block, push it to XCom
        (``quality_report``) and fail without retries."""
        if gate is None:
            yield
            return
        from dativo_provider.ingest.engine import AuditRejectedError

        task: Any = self
        try:
            yield
        except AuditRejectedError as exc:
            if gate.report is not None:
                task.log.error("Contract check blocked the run:\n%s", gate.report.summary())
            push_report(context, exc.result.quality or {})
            raise AirflowFailException(
                f"{exc}\nNothing was published; fix the data or the contract and rerun."
            ) from None  # the message says it all; the report is logged above and in XCom
        if gate.report is not None:
            task.log.info("Contract check:\n%s", gate.report.summary())

    def log_contract_decision(self, result: Any) -> None:
        """One line: the contract's decision and where the rows went (a warning if any were held)."""
        quality = result.quality
        if not quality:
            return
        task: Any = self
        line = (f"Contract decision: {quality.get('decision')}; {result.rows_read} rows read, "
                f"{result.rows_published} published, {result.rows_quarantined} quarantined"
                f"{' in ' + quality['quarantine_table'] if quality.get('quarantine_table') else ''}, "
                f"{result.rows_rejected} rejected")
        if quality.get("warnings"):
            line += f"; warnings: {', '.join(quality['warnings'])}"
        (task.log.warning if result.rows_quarantined or quality.get("warnings") else task.log.info)("%s", line)


def push_report(context: Context, report: Any) -> None:
    """Push a quality report as the ``quality_report`` XCom of a task that is about to fail."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None and report:
        ti.xcom_push(key="quality_report", value=report)


def renamed_parameter(operator: str, old: str, old_value: Any, new: str, new_value: Any) -> Any:
    """The value of a parameter renamed from ``old`` to ``new``: ``old`` still works for one release,
    with a deprecation warning; giving both is an error."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ConfigError(f"{operator}: give {new!r} only ({old!r} is its deprecated name)")
    from airflow.exceptions import AirflowProviderDeprecationWarning

    warnings.warn(f"{operator}: {old!r} is deprecated and will be removed in the next release; use {new!r}",
                  AirflowProviderDeprecationWarning, stacklevel=3)
    return old_value
