"""One table's page: snapshots, refs, schema with its contract's classifications, contract results,
quarantine and drift.

Everything but the quarantine counts comes from the table's metadata, its contract file and the
reports folder (:mod:`dativo_provider.ui.reports`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.iceberg.state import RUN_ID_KEY, SOURCE_KEY
from dativo_provider.quality.quarantine import quarantine_table_for
from dativo_provider.ui.contract_index import ContractIndex, contract_dataset, contract_summary
from dativo_provider.ui.quarantines import quarantine
from dativo_provider.ui.reports import table_reports
from dativo_provider.ui.tables import iso_ms, redact_identity, table_row

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table.metadata import TableMetadata

    from dativo_provider.contracts.model import Dataset

#: Snapshots listed, newest first.
MAX_SNAPSHOTS = 100
#: Snapshot summary keys worth a column of their own (the rest of the summary is not shown).
_SUMMARY_KEYS = ("added-records", "deleted-records", "added-data-files", "deleted-data-files",
                 "total-records", "dativo.quarantine-run", "dativo.rows-quarantined", "dativo.dsr-request",
                 "dativo.dsr-purge", "dativo.maintenance", "dativo.operation")
_METRICS_PREFIX = "write.metadata.metrics.column."
#: Property name fragments that mark a secret value (pyiceberg's credential property names).
_SECRET_MARKERS = ("token", "credential", "secret", "password", "session", "private", "signing")


def table_detail(label: str, catalog: Catalog, identifier: str, *, contracts: ContractIndex,
                 reports_dir: Path | None) -> dict[str, Any]:
    """The table page's data for ``identifier`` in the catalog shown as ``label``."""
    table = catalog.load_table(identifier)
    metadata = table.metadata
    row = table_row(label, tuple(table.name()), metadata)
    contract = contracts.get(row.contract)
    dataset = contract_dataset(contract, row.contract_dataset)
    reports = table_reports(reports_dir, row.identifier)
    return {
        "table": row.to_dict(),
        "format_version": metadata.format_version,
        "snapshots": snapshots(metadata),
        "refs": refs(metadata),
        "schema": schema(metadata, dataset),
        "partitioning": str(metadata.spec()),
        "sort_order": str(metadata.sort_order_by_id(metadata.default_sort_order_id)),
        "properties": shown_properties(metadata.properties),
        "contract": contract_summary(contract, dataset),
        "contract_results": reports.contract,
        "quarantine": _quarantine(label, catalog, row.identifier, row.quarantine_of, contract),
        "drift": reports.drift,
    }


def snapshots(metadata: TableMetadata) -> list[dict[str, Any]]:
    """The newest :data:`MAX_SNAPSHOTS` snapshots, with the summary keys that tell what each did."""
    tagged: dict[int, list[str]] = {}
    for name, ref in metadata.refs.items():
        tagged.setdefault(ref.snapshot_id, []).append(name)
    newest = sorted(metadata.snapshots, key=lambda s: s.timestamp_ms, reverse=True)[:MAX_SNAPSHOTS]
    out = []
    for snapshot in newest:
        summary: Any = snapshot.summary if snapshot.summary is not None else {}
        out.append({
            "snapshot_id": str(snapshot.snapshot_id),
            "parent_id": None if snapshot.parent_snapshot_id is None else str(snapshot.parent_snapshot_id),
            "committed_at": iso_ms(snapshot.timestamp_ms),
            "operation": str(summary.operation.value) if getattr(summary, "operation", None) else None,
            "run_id": summary.get(RUN_ID_KEY),
            "source": redact_identity(summary[SOURCE_KEY]) if summary.get(SOURCE_KEY) else None,
            "summary": {k: summary.get(k) for k in _SUMMARY_KEYS if summary.get(k) is not None},
            "refs": sorted(tagged.get(snapshot.snapshot_id, [])),
        })
    return out


def refs(metadata: TableMetadata) -> list[dict[str, Any]]:
    """Branches and tags, with their retention settings."""
    return [
        {"name": name, "type": str(ref.snapshot_ref_type), "snapshot_id": str(ref.snapshot_id),
         "max_ref_age_ms": ref.max_ref_age_ms, "max_snapshot_age_ms": ref.max_snapshot_age_ms,
         "min_snapshots_to_keep": ref.min_snapshots_to_keep}
        for name, ref in sorted(metadata.refs.items())
    ]


def schema(metadata: TableMetadata, dataset: Dataset | None) -> list[dict[str, Any]]:
    """The current schema's top-level columns with the contract's classification of each."""
    columns = {column.name: column for column in dataset.columns} if dataset else {}
    out = []
    for field in metadata.schema().fields:
        column = columns.get(field.name)
        out.append({
            "id": field.field_id, "name": field.name, "type": str(field.field_type),
            "required": field.required, "doc": field.doc,
            "classification": column.classification if column else None,
            "data_subject": column.data_subject if column else None,
            "primary_key": column.primary_key if column else False,
            "metrics": metadata.properties.get(_METRICS_PREFIX + field.name),
        })
    return out


def shown_properties(properties: dict[str, str]) -> dict[str, str]:
    """Table properties, without any whose name says it holds a secret."""
    return {k: v for k, v in sorted(properties.items()) if not any(m in k.lower() for m in _SECRET_MARKERS)}


def _quarantine(label: str, catalog: Catalog, identifier: str, quarantine_of: str | None,
                contract: Any) -> dict[str, Any] | None:
    """The table's own quarantine (or, for a quarantine table, itself)."""
    held_in = identifier if quarantine_of else quarantine_table_for(identifier)
    if not catalog.table_exists(held_in):
        return None
    return quarantine(label, catalog, held_in, quarantine_of or identifier, contract).to_dict()
