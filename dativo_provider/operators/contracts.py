"""Contract operators: scheduled quality runs on a table, and releasing or purging quarantined rows.

Contract enforcement on ingest lives in :class:`~dativo_provider.operators.ingest.IcebergIngestOperator`
(its ``contract`` argument); the freshness/volume sensor in :mod:`dativo_provider.sensors.contracts`.

A contract path that is relative is looked up in the folder of the DAG file that defines the task
first, then in the worker's working directory (:func:`resolve_contract_path`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from dativo_provider.compat import AirflowFailException, BaseOperator, Context
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.hooks.privacy import HASH_KEY_CONN_ID
from dativo_provider.operators.common import (
    TableAliasOutlet,
    airflow_errors,
    contract_path,
    native_bound,
    native_list,
    push_report,
    renamed_parameter,
)
from dativo_provider.operators.lineage import OpenLineageFacets

FAIL_ON = ("error", "never")


class ContractCheckOperator(OpenLineageFacets, BaseOperator):
    """Run a contract's checks on a table where it lives and push the report to XCom.

    The table is an Iceberg table (``table``, at the head of ``branch`` or at ``snapshot_id``; default
    main) or a Postgres/MySQL table checked in place (``sql_conn_id`` and ``sql_table``).

    :param contract: the ODCS contract file (a relative path: next to the DAG file, then the cwd).
    :param table: the Iceberg table, ``"namespace.table"``.
    :param sql_conn_id: a ``postgres`` or ``mysql`` connection, instead of ``table``.
    :param sql_table: the table on that connection: ``schema.table`` (Postgres, default schema public)
        or ``table`` (MySQL, in the connection's database).
    :param contract_dataset: the contract dataset to check, when the contract describes several
        (``dataset`` is its deprecated name).
    :param fail_on: ``"error"`` fails the task (no retries) when a check fails that would block or
        quarantine a run (:func:`~dativo_provider.quality.verdict.judge_in_place`, the rule
        ``dativo contract check`` applies too: an error-severity check that fails or cannot be evaluated,
        unless the contract's violation handling for its kind is ``warn``, the default for SLA checks);
        checks that only warn are logged as warnings. ``"never"`` only reports.
    :param quality_report_path: also write the JSON report to this file (``report_path`` is its
        deprecated name).
    :param now: the time freshness is measured against (templated, e.g. ``"{{ data_interval_end }}"``);
        default: the time of the check.
    :param restrictions_table: leave the rows of subjects under a processing restriction (GDPR Art.
        18) in this registry (e.g. ``dativo.restrictions``) out of the checks; Iceberg tables only. Its
        key comes from the connection ``hash_key_conn_id`` (``restrictions_key_conn_id`` is its deprecated
        name), the DSR operators' hash key.

    The report (``QualityReport.to_dict()`` plus ``verdict``: ``pass``, ``warn`` or ``fail``, and the
    names of the ``blocking`` checks and of the ``warnings``) is the return value; a failing task pushes
    it as the ``quality_report`` XCom instead, for failure callbacks.
    """

    template_fields: Sequence[str] = (
        "contract",
        "table",
        "sql_table",
        "contract_dataset",
        "branch",
        "snapshot_id",
        "quality_report_path",
        "now",
    )
    ui_color = "#e8f5d0"

    def __init__(
        self,
        *,
        contract: str,
        table: str | None = None,
        sql_conn_id: str | None = None,
        sql_table: str | None = None,
        contract_dataset: str | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        branch: str | None = None,
        snapshot_id: int | str | None = None,
        fail_on: Literal["error", "never"] = "error",
        quality_report_path: str | None = None,
        now: Any = None,
        restrictions_table: str | None = None,
        hash_key_conn_id: str | None = None,
        dataset: str | None = None,
        report_path: str | None = None,
        restrictions_key_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if bool(table) == bool(sql_conn_id and sql_table):
            raise ValueError(
                "ContractCheckOperator: give either table (Iceberg) or sql_conn_id and sql_table"
            )
        if fail_on not in FAIL_ON:
            raise ValueError(f"ContractCheckOperator: fail_on is {fail_on!r}; expected one of {FAIL_ON}")
        super().__init__(**kwargs)
        self.contract = contract
        self.table = table
        self.sql_conn_id = sql_conn_id
        self.sql_table = sql_table
        name = type(self).__name__
        self.contract_dataset = renamed_parameter(name, "dataset", dataset, "contract_dataset", contract_dataset)
        self.iceberg_conn_id = iceberg_conn_id
        self.branch = branch
        self.snapshot_id = snapshot_id
        self.fail_on = fail_on
        self.quality_report_path = renamed_parameter(name, "report_path", report_path, "quality_report_path",
                                                     quality_report_path)
        self.now = now
        self.restrictions_table = restrictions_table
        self.hash_key_conn_id = renamed_parameter(
            name, "restrictions_key_conn_id", restrictions_key_conn_id, "hash_key_conn_id", hash_key_conn_id
        ) or HASH_KEY_CONN_ID
        self.report: dict[str, Any] | None = None
        self.checked_dataset: dict[str, str] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the table, log the summary, fail on blocking checks if asked to."""
        from dativo_provider.contracts.loader import load_contract
        from dativo_provider.quality.runner import run_contract
        from dativo_provider.quality.verdict import judge_in_place

        with airflow_errors():
            target = self._target()
            contract = load_contract(contract_path(self, self.contract))
            report = run_contract(contract, target, dataset=self.contract_dataset, now=native_bound(self.now),
                                  restrictions=self._restrictions())
        verdict = judge_in_place(contract, report)  # the rule `dativo contract check` applies too
        self.log.info("Contract check:\n%s", report.summary(warned=verdict.warned))
        for check in verdict.warned:
            self.log.warning("contract check failed (the contract says warn): %s", check.line(warned=True))
        self.report = verdict.report_dict(report)
        if self.quality_report_path:
            report.write_json(self.quality_report_path, self.report)
        if verdict.blocks and self.fail_on == "error":
            push_report(context, self.report)
            count = len(verdict.blocking)
            lines = "\n".join("  " + check.line() for check in verdict.blocking)
            raise AirflowFailException(
                f"contract {report.contract} v{report.contract_version} fails on {report.target} "
                f"({count} blocking check{'' if count == 1 else 's'}):\n{lines}"
            )
        return self.report

    def _restrictions(self) -> Any:
        if not self.restrictions_table:
            return None
        from dativo_provider.hooks.privacy import DsrKeyHook
        from dativo_provider.privacy.restriction import RestrictionRegistry

        catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
        return RestrictionRegistry(catalog, DsrKeyHook(self.hash_key_conn_id).hash_key(),
                                   self.restrictions_table)

    def _target(self) -> Any:
        from dativo_provider.quality.runner import IcebergTarget, SqlTableTarget

        if self.table:
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            self.checked_dataset = {"namespace": catalog.lineage_namespace, "name": self.table}
            snapshot_id = int(self.snapshot_id) if self.snapshot_id not in (None, "", "None") else None
            return IcebergTarget(catalog, self.table, snapshot_id=snapshot_id, branch=self.branch or None)
        dialect, config = sql_table_config(self.sql_conn_id or "")
        self.checked_dataset = _sql_lineage(dialect, config, self.sql_table or "")
        return SqlTableTarget(dialect, config, self.sql_table or "")

def sql_table_config(conn_id: str) -> tuple[Literal["postgres", "mysql"], Any]:
    """The dialect and :class:`DatabaseConfig` of a ``postgres`` or ``mysql`` connection."""
    from dativo_provider.compat import BaseHook
    from dativo_provider.hooks.sources import database_config

    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type not in ("postgres", "mysql"):
        raise ConfigError(
            f"connection {conn_id!r} has type {conn.conn_type!r}; a contract check in place "
            "needs a postgres or mysql connection"
        )
    return conn.conn_type, database_config(conn)


def _sql_lineage(dialect: str, config: Any, table: str) -> dict[str, str] | None:
    """The OpenLineage name of a database table, as the database sources name it."""
    from dativo_provider.sources import build_source

    lineage = build_source({"type": dialect, "table": table}, config).lineage
    return {"namespace": lineage.namespace, "name": lineage.name}


class QuarantineReleaseOperator(OpenLineageFacets, TableAliasOutlet, BaseOperator):
    """Re-check quarantined rows with the contract as it is now and publish the ones that pass.

    Rows that still fail stay quarantined (under the release's run id). Fix the contract (or the rows)
    first, then release.

    :param table: the Iceberg table the rows were held back from.
    :param contract: the ODCS contract file (a relative path: next to the DAG file, then the cwd).
    :param run_ids: release only these ingest runs (templated; a list, a JSON list or comma separated);
        default every quarantined run.
    :param quarantine_table: default ``<table>_quarantine``.
    :param contract_dataset: the contract dataset, when the contract describes several (``dataset`` is
        its deprecated name).
    """

    template_fields: Sequence[str] = ("table", "contract", "run_ids", "quarantine_table", "contract_dataset")
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        table: str,
        contract: str,
        run_ids: Any = None,
        quarantine_table: str | None = None,
        contract_dataset: str | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        dataset: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.contract = contract
        self.run_ids = run_ids
        self.quarantine_table = quarantine_table
        self.contract_dataset = renamed_parameter(type(self).__name__, "dataset", dataset, "contract_dataset",
                                                  contract_dataset)
        self.iceberg_conn_id = iceberg_conn_id
        self.declare_table_alias()

    def execute(self, context: Context) -> dict[str, Any]:
        """Release, log what moved where, return :class:`ReleaseResult` as a dict."""
        from dativo_provider.quality.release import release

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            result = release(
                catalog,
                self.table,
                contract_path(self, self.contract),
                quarantine_table=self.quarantine_table or None,
                run_ids=native_list(self.run_ids),
                dataset=self.contract_dataset,
            )
        self.log.info(
            "Released runs %s of %s: %d rows considered, %d published into %s, %d still quarantined",
            result.released_runs or "(none)",
            result.quarantine_table,
            result.rows_considered,
            result.rows_published,
            result.table,
            result.rows_requarantined,
        )
        if result.rows_published and result.snapshot_id is not None:
            self.emit_table_event(context, catalog, result.table, {
                "table": result.table, "snapshot_id": str(result.snapshot_id), "mode": "release",
                "rows_written": result.rows_published, "rows_published": result.rows_published,
            })
        self.run_summary = result.to_dict()
        return self.run_summary


class QuarantinePurgeOperator(OpenLineageFacets, BaseOperator):
    """Delete quarantined rows for good: those of ``run_ids``, or quarantined before a time.

    The rows leave the quarantine table's current snapshot; older snapshots keep them until expired.

    :param quarantine_table: e.g. ``"examples.orders_quarantine"``.
    :param run_ids: purge these ingest runs (templated; a list, a JSON list or comma separated).
    :param quarantined_before: purge rows quarantined before this time (templated, e.g.
        ``"{{ macros.ds_add(ds, -30) }}"``; ISO strings are read as UTC when naive).
    """

    template_fields: Sequence[str] = ("quarantine_table", "run_ids", "quarantined_before")
    ui_color = "#f4cccc"

    def __init__(
        self,
        *,
        quarantine_table: str,
        run_ids: Any = None,
        quarantined_before: Any = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.quarantine_table = quarantine_table
        self.run_ids = run_ids
        self.quarantined_before = quarantined_before
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> int:
        """Purge and return how many rows were deleted."""
        from dativo_provider.quality.quarantine import purge

        before = native_bound(self.quarantined_before)
        with airflow_errors():
            if before is not None and not hasattr(before, "tzinfo"):
                raise ConfigError(f"quarantined_before {self.quarantined_before!r} is not an ISO timestamp")
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            count = purge(
                catalog, self.quarantine_table, run_ids=native_list(self.run_ids), quarantined_before=before
            )
        self.log.info("Purged %d quarantined rows from %s", count, self.quarantine_table)
        self.run_summary = {"rows_purged": count}
        return count
