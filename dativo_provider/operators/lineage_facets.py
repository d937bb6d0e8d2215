"""The building blocks of every operator's OpenLineage event, shared by the builders in
:mod:`dativo_provider.operators.lineage_events`: Iceberg datasets named as Spark names them (with schema,
storage, catalog, version, owner, description and tags), column lineage, quality assertions and
metrics, and the counts-only ``dativo`` run facet. :mod:`dativo_provider.operators.lineage` explains the
whole; nothing here is imported at DAG-parse time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.lineage.column_lineage import ColumnLineage

#: Where the ``dativo`` run facet is described (its ``_schemaURL``).
RUN_FACET_SCHEMA = (
    "https://github.com/dativo-io/dativo-airflow-provider/blob/main/docs/lineage.md#the-dativo-run-facet"
)


def safe_lineage(build: Callable[[], Any], log: logging.Logger, what: object) -> Any:
    """``build()``'s ``OperatorLineage``; an empty one if it raises (logged), None without the provider."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    try:
        return build()
    except Exception:  # lineage must never fail the task
        log.warning("Could not build OpenLineage facets for %s", what, exc_info=True)
        return OperatorLineage()


def operator_lineage(
    inputs: Iterable[Any] = (), outputs: Iterable[Any] = (), run_facets: Mapping[str, Any] | None = None
) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=list(inputs), outputs=list(outputs), run_facets=dict(run_facets or {}))


# --- Iceberg datasets ---------------------------------------------------------------------------------


class IcebergLineage:
    """OpenLineage datasets for the tables of one catalog; each table's metadata is loaded once.

    :param contract: the contract describing the tables (owner, descriptions, classifications), if any.
    """

    def __init__(
        self, catalog: CatalogConfig, contract: Any = None, contract_dataset: str | None = None
    ) -> None:
        self.config = catalog
        self.contract = contract
        self.contract_dataset = contract_dataset
        self._catalog: Any = None
        self._tables: dict[str, Any] = {}

    def _table(self, table: str) -> Any:
        """The pyiceberg table, or None when it does not exist (yet); loaded once."""
        from pyiceberg.exceptions import NoSuchTableError

        if table not in self._tables:
            if self._catalog is None:
                self._catalog = _metadata_reader(self.config).load()
            try:
                self._tables[table] = self._catalog.load_table(table)
            except NoSuchTableError:
                self._tables[table] = None
        return self._tables[table]

    def name(self, table: str, snapshot_id: int | str | None = None) -> Any:
        """The table's :class:`~dativo_provider.lineage.openlineage_names.IcebergDatasetName`."""
        from dativo_provider.lineage.openlineage_names import iceberg_dataset_name

        loaded = self._table(table)
        location = loaded.location() if loaded is not None else _default_location(self.config, table)
        return iceberg_dataset_name(self.config.name, self.config.properties, table, location, snapshot_id)

    def columns(self, table: str, snapshot_id: int | str | None = None) -> list[Any]:
        """The Iceberg schema's fields at the snapshot (the current schema when unknown); [] if no table."""
        loaded = self._table(table)
        if loaded is None:
            return []
        schema = loaded.schema()
        snapshot = loaded.snapshot_by_id(int(snapshot_id)) if snapshot_id not in (None, "", "None") else None
        if snapshot is not None and snapshot.schema_id is not None:
            schema = loaded.schemas().get(snapshot.schema_id, schema)
        return list(schema.fields)

    def facets(self, table: str, snapshot_id: int | str | None = None) -> tuple[str, str, dict[str, Any]]:
        """Namespace, name and dataset facets of ``table`` at ``snapshot_id``."""
        from openlineage.client.facet_v2 import (
            catalog_dataset,
            dataset_version_dataset,
            storage_dataset,
            symlinks_dataset,
        )

        named = self.name(table, snapshot_id)
        facets: dict[str, Any] = {
            "symlinks": symlinks_dataset.SymlinksDatasetFacet(
                identifiers=[
                    symlinks_dataset.Identifier(
                        namespace=named.symlink_namespace, name=named.symlink_name, type="TABLE"
                    )
                ]
            ),
            "catalog": catalog_dataset.CatalogDatasetFacet(
                framework="iceberg",
                type=named.catalog_type,
                name=named.catalog_name,
                metadataUri=named.metadata_uri,
                warehouseUri=named.warehouse_uri,
                source="dativo",
            ),
            "storage": storage_dataset.StorageDatasetFacet(storageLayer="iceberg", fileFormat="parquet"),
        }
        if named.version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=named.version
            )
        described = _contract_dataset(self.contract, table, self.contract_dataset)
        columns = self.columns(table, snapshot_id)
        if columns:
            facets["schema"] = _schema_facet(columns, described)
        facets.update(_contract_facets(self.contract, described))
        return named.namespace, named.name, facets

    def input(
        self, table: str, snapshot_id: int | str | None = None, input_facets: Mapping[str, Any] | None = None
    ) -> Any:
        from airflow.providers.common.compat.openlineage.facet import InputDataset

        namespace, name, facets = self.facets(table, snapshot_id)
        return InputDataset(
            namespace=namespace, name=name, facets=facets, inputFacets=dict(input_facets or {})
        )

    def output(
        self,
        table: str,
        snapshot_id: int | str | None = None,
        *,
        extra_facets: Mapping[str, Any] | None = None,
        statistics: Mapping[str, Any] | None = None,
    ) -> Any:
        from airflow.providers.common.compat.openlineage.facet import (
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )

        namespace, name, facets = self.facets(table, snapshot_id)
        output_facets = {}
        if statistics:
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(**statistics)
        return OutputDataset(
            namespace=namespace,
            name=name,
            facets={**facets, **(extra_facets or {})},
            outputFacets=output_facets,
        )

    def current_snapshot(self, table: str) -> int | None:
        loaded = self._table(table)
        snapshot = loaded.current_snapshot() if loaded is not None else None
        return snapshot.snapshot_id if snapshot is not None else None


def _metadata_reader(catalog: CatalogConfig) -> CatalogConfig:
    """The catalog, reading table metadata through fsspec rather than pyarrow where fsspec can.

    The OpenLineage listener builds events in a process forked from the task's; pyarrow's thread pools
    do not survive a fork once the task used them (the child hangs until the listener's timeout), and
    metadata JSON needs nothing of pyarrow.
    """
    if "py-io-impl" in catalog.properties:
        return catalog
    import urllib.parse

    import fsspec

    scheme = urllib.parse.urlsplit(str(catalog.properties.get("warehouse") or "")).scheme or "file"
    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError):  # e.g. s3 without s3fs installed: keep pyiceberg's choice
        return catalog
    from dativo_provider.iceberg.catalog import CatalogConfig

    return CatalogConfig(
        catalog.name, {**catalog.properties, "py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO"}
    )


def _default_location(catalog: CatalogConfig, table: str) -> str:
    """Where pyiceberg 0.12 puts a table it creates in a SQL catalog (``<warehouse>/<namespace>/<table>``):
    the name of a table a start event mentions before its first commit. A REST catalog may choose
    another place; the complete event then names the real one."""
    namespace, _, name = table.rpartition(".")
    warehouse = str(catalog.properties.get("warehouse") or f"iceberg://{catalog.name}").rstrip("/")
    return f"{warehouse}/{namespace}/{name}"


def _schema_facet(columns: Sequence[Any], described: Any) -> Any:
    from openlineage.client.facet_v2 import schema_dataset

    def description(column: Any) -> str | None:
        written = described.column(column.name) if described is not None else None
        return column.doc or (written.description if written is not None else None)

    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=c.name, type=str(c.field_type), description=description(c)
            )
            for c in columns
        ]
    )


def _contract_dataset(contract: Any, table: str, dataset_name: str | None) -> Any:
    """The contract dataset describing ``table``: the one named, else the one whose physical name it is."""
    if contract is None:
        return None
    if dataset_name:
        return contract.dataset(dataset_name)
    by_table = [d for d in contract.datasets if d.physical_name == table]
    return by_table[0] if by_table else (contract.datasets[0] if len(contract.datasets) == 1 else None)


def _contract_facets(contract: Any, described: Any) -> dict[str, Any]:
    """Ownership, documentation and classification tags from the contract (none without one)."""
    if contract is None:
        return {}
    from openlineage.client.facet_v2 import documentation_dataset, ownership_dataset, tags_dataset

    facets: dict[str, Any] = {
        "ownership": ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=contract.governance.owner, type="OWNER")]
        )
    }
    description = (described.description if described is not None else None) or contract.name
    if description:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(description=description)
    tags = [
        tags_dataset.TagsDatasetFacetFields(key="tag", value=tag, source="contract")
        for tag in contract.governance.tags
    ]
    if contract.governance.domain:
        tags.append(
            tags_dataset.TagsDatasetFacetFields(
                key="domain", value=contract.governance.domain, source="contract"
            )
        )
    for column in described.columns if described is not None else ():
        if column.classification:
            tags.append(
                tags_dataset.TagsDatasetFacetFields(
                    key="classification", value=column.classification, source="contract", field=column.name
                )
            )
    if tags:
        facets["tags"] = tags_dataset.TagsDatasetFacet(tags=tags)
    return facets


def load_contract_quietly(task: Any, path: str | None, log: logging.Logger) -> Any:
    """The task's contract for lineage, None if it has none or it cannot be read (logged)."""
    if not path:
        return None
    try:
        from dativo_provider.contracts.loader import load_contract
        from dativo_provider.operators.common import contract_path

        return load_contract(contract_path(task, path))
    except Exception:
        log.warning(
            "OpenLineage: contract %s not read; events go out without its owner and tags", path, exc_info=True
        )
        return None


# --- column lineage, quality, run facets ------------------------------------------------------------------


def column_lineage_facet(lineage: ColumnLineage, datasets: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """``columnLineage`` from engine lineage; ``datasets`` maps each relation to (namespace, name)."""
    from openlineage.client.facet_v2 import column_lineage_dataset as cl

    def fields(links: Iterable[Any]) -> list[Any]:
        return [
            cl.InputField(
                namespace=datasets[link.relation][0],
                name=datasets[link.relation][1],
                field=link.column,
                transformations=[cl.Transformation(type=link.type, subtype=link.subtype)],
            )
            for link in links
            if link.relation in datasets
        ]

    described = {column: cl.Fields(inputFields=fields(links)) for column, links in lineage.fields.items()}
    described = {column: value for column, value in described.items() if value.inputFields}
    dataset = fields(lineage.dataset)
    if not described and not dataset:
        return {}
    return {"columnLineage": cl.ColumnLineageDatasetFacet(fields=described, dataset=dataset)}


def quality_facets(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """``dataQualityAssertions`` (one per check) and ``dataQualityMetrics`` (rows checked, nulls found)
    from a contract run's report. Failing rows' keys are never copied."""
    if not report or not report.get("checks"):
        return {}
    # facet_v2 is a module exposing the generated facet modules as attributes, not a package.
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    assertions = [
        dq.Assertion(
            assertion=check["name"],
            success=check["outcome"] == "passed",
            column=check.get("column"),
            severity=check.get("severity"),
            expected=check.get("threshold"),
            actual=None if check.get("observed") is None else str(check["observed"]),
        )
        for check in report["checks"]
    ]
    nulls = {
        check["column"]: int(check["failing_rows"])
        for check in report["checks"]
        if check.get("column") and check.get("failing_rows") is not None and _counts_nulls(check)
    }
    return {
        "dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(assertions=assertions),
        "dataQualityMetrics": dqm.DataQualityMetricsInputDatasetFacet(
            rowCount=report.get("rows_checked"),
            columnMetrics={column: dqm.ColumnMetrics(nullCount=count) for column, count in nulls.items()},
        ),
    }


def _counts_nulls(check: Mapping[str, Any]) -> bool:
    return "missing" in str(check.get("metric") or "") or str(check["name"]).endswith("__required")


@functools.cache
def _run_facet_class() -> type:
    import attr
    from openlineage.client.generated.base import RunFacet

    @attr.define
    class DativoRunFacet(RunFacet):
        """What the operation did, in counts (see docs/lineage.md, "The dativo run facet")."""

        operation: str
        counts: dict[str, int] = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return RUN_FACET_SCHEMA

    return DativoRunFacet


def run_facet(operation: str, counts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``dativo`` run facet: integer counts only (anything else in ``counts`` is dropped)."""
    kept = {key: int(value) for key, value in counts.items() if isinstance(value, (int, float))}
    return {"dativo": _run_facet_class()(operation=operation, counts=kept)}


def path_dataset(location: str, facets: Mapping[str, Any] | None = None, *, output: bool = True) -> Any:
    """A directory or prefix (an export's destination) as a dataset named by its physical location."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset, OutputDataset

    from dativo_provider.lineage.openlineage_names import physical_name

    namespace, name = physical_name(location)
    kind = OutputDataset if output else InputDataset
    return kind(namespace=namespace, name=name, facets=dict(facets or {}))
