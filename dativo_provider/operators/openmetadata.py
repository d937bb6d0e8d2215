"""Publish Iceberg tables, contract quality results and lineage edges to OpenMetadata.

- :class:`OpenMetadataSyncOperator` registers or updates tables (columns, types, constraints,
  partitioning, owners, domain, PII/Tier tags, glossary terms, retention) and their contracts' rules as
  test cases; a re-sync with no change writes nothing, a change is one JSON patch per table.
- :class:`OpenMetadataQualityResultsOperator` posts a :class:`ContractCheckOperator` run's results on
  those test cases, so the table's quality tab in OpenMetadata keeps the history.
- :class:`OpenMetadataLineageOperator` adds lineage edges through the REST API, for servers without
  the OpenLineage endpoint (see docs/lineage.md for the OpenLineage transport).

Tables are ``<service>.<database>.<namespace>.<table>`` in OpenMetadata: ``service`` defaults to
``dativo_iceberg``, ``database`` to the Iceberg catalog's name. Nothing heavy is imported until
``execute``; the engine is :mod:`dativo_provider.lineage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.hooks.openmetadata import OpenMetadataHook
from dativo_provider.operators.common import airflow_errors, contract_path, native_list


class _OpenMetadataOperator(BaseOperator):
    """What every OpenMetadata operator shares: the two connections and where tables live.

    :param openmetadata_conn_id: a ``dativo_openmetadata`` connection.
    :param iceberg_conn_id: the Iceberg catalog the tables are in.
    :param service: the OpenMetadata database service (created as ``CustomDatabase`` when missing).
    :param database: the database under it; default: the Iceberg catalog's name.
    """

    def __init__(
        self,
        *,
        openmetadata_conn_id: str = OpenMetadataHook.default_conn_name,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        service: str = "dativo_iceberg",
        database: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.openmetadata_conn_id = openmetadata_conn_id
        self.iceberg_conn_id = iceberg_conn_id
        self.service = service
        self.database = database

    @cached_property
    def client(self) -> Any:
        return OpenMetadataHook(self.openmetadata_conn_id).get_client()

    @cached_property
    def catalog_config(self) -> Any:
        return IcebergHook(self.iceberg_conn_id).get_catalog_config()

    def target(self, service_type: str = "CustomDatabase") -> Any:
        from dativo_provider.lineage.openmetadata_sync import ServiceTarget

        return ServiceTarget(self.service, self.database or self.catalog_config.name, service_type)

    def table_fqn(self, table: str) -> str:
        from dativo_provider.lineage.openmetadata_mapping import fqn

        namespace, _, name = table.rpartition(".")
        target = self.target()
        return fqn(target.service, target.database, namespace, name)

    def load_contracts(self, paths: Sequence[str]) -> list[Any]:
        """Every contract in ``paths`` (files or folders; relative: next to the DAG file, then the cwd)."""
        from pathlib import Path

        from dativo_provider.contracts.loader import contract_files, load_contract

        files = [f for p in paths for f in contract_files(Path(contract_path(self, p)))]
        return [load_contract(f) for f in files]


class OpenMetadataSyncOperator(_OpenMetadataOperator):
    """Register or update Iceberg tables in OpenMetadata, with their contracts' governance and rules.

    :param tables: Iceberg tables, ``"namespace.table"`` (templated; a list or a comma-separated string).
    :param contracts: contract files or folders; a table's contract is the one whose dataset has the
        table as ``physicalName``. Tables without one are synced from their Iceberg schema alone.
    :param service_type: ``CustomDatabase`` (default), or the type of an existing Glue, Hive, Trino or
        UnityCatalog service named by ``service`` (OpenMetadata has no Iceberg service type).
    :param tier: a ``Tier`` tag for every table, e.g. ``"Tier.Tier2"``.
    :param glossary: the glossary whose terms the contracts' tags name; None: contract tags are not sent.
    :param pii_tags: contract classification -> OpenMetadata tag, over the defaults
        (:data:`~dativo_provider.lineage.openmetadata_mapping.PII_TAGS`).
    :param test_cases: also create the contracts' rules as test cases (default true).

    Returns (XCom) the sync result: ``created``, ``patched`` (table -> patch operations), ``unchanged``,
    ``writes``, ``unmatched`` contract columns, and ``test_cases`` (created/updated/unmapped rules).
    """

    template_fields: Sequence[str] = ("tables", "contracts", "service", "database")
    ui_color = "#dbe9ff"

    def __init__(
        self,
        *,
        tables: Sequence[str] | str,
        contracts: Sequence[str] | str = (),
        service_type: str = "CustomDatabase",
        tier: str | None = None,
        glossary: str | None = None,
        pii_tags: Mapping[str, str | None] | None = None,
        test_cases: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.contracts = contracts
        self.service_type = service_type
        self.tier = tier
        self.glossary = glossary
        self.pii_tags = dict(pii_tags or {})
        self.test_cases = test_cases

    def execute(self, context: Context) -> dict[str, Any]:
        """Describe the tables, sync them, then their contracts' test cases."""
        from dativo_provider.lineage.openmetadata_mapping import GovernanceOptions
        from dativo_provider.lineage.openmetadata_quality import QualitySync, sync_test_cases
        from dativo_provider.lineage.openmetadata_sync import iceberg_specs, sync_tables

        with airflow_errors():
            tables = native_list(self.tables) or []
            contracts = self.load_contracts(native_list(self.contracts) or [])
            target = self.target(self.service_type)
            options = GovernanceOptions(self.tier, self.glossary, self.pii_tags)
            specs = iceberg_specs(self.catalog_config.load(), tables, target, contracts, options)
            result = sync_tables(self.client, specs, target).to_dict()
            quality = QualitySync()
            if self.test_cases:
                for contract in contracts:
                    for dataset in (d for d in contract.datasets if d.physical_name in tables):
                        sync_test_cases(
                            self.client,
                            contract,
                            dataset.name,
                            self.table_fqn(dataset.physical_name),
                            quality,
                        )
        self.log.info(
            "OpenMetadata: %d tables created, %d patched, %d unchanged (%d writes)",
            len(result["created"]),
            len(result["patched"]),
            result["unchanged"],
            result["writes"],
        )
        for table, columns in result["unmatched"].items():
            self.log.warning(
                "%s: contract columns not in the table (not sent): %s", table, ", ".join(columns)
            )
        for rule, reason in quality.unmapped.items():
            self.log.info("rule %s has no OpenMetadata test case: %s", rule, reason)
        return {**result, "test_cases": {k: v for k, v in quality.to_dict().items() if k != "posted"}}


class OpenMetadataQualityResultsOperator(_OpenMetadataOperator):
    """Post a contract run's results to the table's OpenMetadata test cases (created if missing).

    :param contract: the contract the run checked (a relative path: next to the DAG file, then the cwd).
    :param table: the Iceberg table it checked, ``"namespace.table"``.
    :param check_task_id: the :class:`ContractCheckOperator` task whose report to post; its return value,
        or the ``quality_report`` XCom a failing check pushes. Give this task
        ``trigger_rule="all_done"`` so that failing runs reach OpenMetadata too.

    Results are stamped with the time of posting. Only statuses, counts and observed metrics are
    sent: never failing rows' keys or values.
    """

    template_fields: Sequence[str] = ("contract", "table", "check_task_id", "service", "database")
    ui_color = "#dbe9ff"

    def __init__(self, *, contract: str, table: str, check_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contract = contract
        self.table = table
        self.check_task_id = check_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Pull the report, post one result per mapped rule."""
        from dativo_provider.exceptions import ConfigError
        from dativo_provider.lineage.openmetadata_quality import post_results

        ti = context["ti"]
        report = ti.xcom_pull(task_ids=self.check_task_id) or ti.xcom_pull(
            task_ids=self.check_task_id, key="quality_report"
        )
        with airflow_errors():
            if not report:
                raise ConfigError(
                    f"task {self.check_task_id!r} left no contract report in XCom (did it run?)"
                )
            (contract,) = self.load_contracts([self.contract])
            now_ms = int(datetime.now(UTC).timestamp() * 1000)
            result = post_results(
                self.client, contract, report, self.table_fqn(self.table), timestamp_ms=now_ms
            )
        self.log.info("OpenMetadata: %d results posted on %s", len(result.posted), self.table_fqn(self.table))
        return result.to_dict()


class OpenMetadataLineageOperator(_OpenMetadataOperator):
    """Add lineage edges between Iceberg tables already synced to OpenMetadata.

    :param edges: ``[{"source": "ns.a", "target": "ns.b", "columns": {"b_col": ["a_col"]},
        "description": ...}]`` (templated).
    """

    template_fields: Sequence[str] = ("edges", "service", "database")

    def __init__(self, *, edges: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edges = edges

    def execute(self, context: Context) -> int:
        from dativo_provider.lineage.openmetadata_lineage import LineageEdge, add_lineage

        with airflow_errors():
            edges = [
                LineageEdge(
                    self.table_fqn(e["source"]),
                    self.table_fqn(e["target"]),
                    {k: tuple(v) for k, v in (e.get("columns") or {}).items()},
                    e.get("description"),
                )
                for e in self.edges
            ]
            sent = add_lineage(self.client, edges)
        self.log.info("OpenMetadata: %d lineage edges sent", sent)
        return sent
