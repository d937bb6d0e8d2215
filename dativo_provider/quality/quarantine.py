"""The quarantine table: rows a contract held back, with why, until they are released or purged.

A quarantine table sits next to the table it guards (``<table>_quarantine`` by default) and holds its
columns plus:

* ``_dativo_run_id`` — the ingest run that read the row;
* ``_dativo_failed_checks`` — the names of the checks the row failed;
* ``_dativo_reason`` — a readable reason;
* ``_dativo_quarantined_at`` — when (UTC);
* ``_dativo_audited_snapshot`` — the audit snapshot the row was checked in.

Rows are written through the ingest engine (one snapshot per quarantine, schema evolution like the
table itself). Releasing (:mod:`dativo_provider.quality.release`) re-ingests rows through the contract
gate, so rows that still fail stay quarantined (under the release's run id) and the rest is published;
purging deletes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.ingest.result import IngestResult

RUN_ID = "_dativo_run_id"
FAILED_CHECKS = "_dativo_failed_checks"
REASON = "_dativo_reason"
QUARANTINED_AT = "_dativo_quarantined_at"
AUDITED_SNAPSHOT = "_dativo_audited_snapshot"
META_COLUMNS = (RUN_ID, FAILED_CHECKS, REASON, QUARANTINED_AT, AUDITED_SNAPSHOT)


def quarantine_table_for(table: str) -> str:
    """``ns.orders`` → ``ns.orders_quarantine``."""
    return f"{table}_quarantine"


def meta_fields() -> list[pa.Field]:
    import pyarrow as pa

    return [
        pa.field(RUN_ID, pa.string()),
        pa.field(FAILED_CHECKS, pa.list_(pa.string())),
        pa.field(REASON, pa.string()),
        pa.field(QUARANTINED_AT, pa.timestamp("us", tz="UTC")),
        pa.field(AUDITED_SNAPSHOT, pa.int64()),
    ]


def with_reasons(rows: pa.Table, checks: Sequence[list[str]], reasons: Sequence[str], run_id: str,
                 snapshot_id: int | None, at: datetime) -> pa.Table:
    """``rows`` with the quarantine columns appended (one entry of ``checks``/``reasons`` per row)."""
    import pyarrow as pa

    n = rows.num_rows
    fields = meta_fields()
    values = [
        pa.array([run_id] * n, fields[0].type),
        pa.array(list(checks), fields[1].type),
        pa.array(list(reasons), fields[2].type),
        pa.array([at] * n, fields[3].type),
        pa.array([snapshot_id] * n, fields[4].type),
    ]
    for f, column in zip(fields, values):
        rows = rows.append_column(f, column)
    return rows


#: Table property of a quarantine table naming the table it guards (data-subject discovery follows it).
QUARANTINE_OF = "dativo.quarantine-of"


def write_quarantine(catalog: CatalogConfig, quarantine_table: str, schema: pa.Schema,
                     batches: Iterable[pa.RecordBatch], run_id: str, *, guarded_table: str | None = None,
                     column_properties: Mapping[str, Mapping[str, str]] | None = None) -> IngestResult:
    """Append quarantined rows (``schema`` already includes the quarantine columns) in one snapshot.

    A new quarantine table is created with the guarded table's column properties (so personal columns
    keep ``counts`` metrics) and a property naming the guarded table.
    """
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.sources.arrow import ArrowSource

    source = ArrowSource(schema, lambda: batches, identity=f"dativo-quarantine://{quarantine_table}/{run_id}")
    options = WriteOptions(mode="append", schema_policy="evolve",
                           table_properties={QUARANTINE_OF: guarded_table} if guarded_table else {},
                           column_properties=column_properties or {})
    return run_ingest(source, catalog, quarantine_table, options, run_id=run_id)


def delete_run(catalog: CatalogConfig, quarantine_table: str, run_ids: Sequence[str]) -> int:
    """Delete the quarantined rows of ``run_ids``; returns how many were deleted."""
    from pyiceberg.expressions import In

    table = catalog.load().load_table(quarantine_table)
    condition = In(RUN_ID, set(run_ids))
    count = table.scan(row_filter=condition, selected_fields=(RUN_ID,)).to_arrow().num_rows
    if count:
        table.delete(condition, snapshot_properties={"dativo.purged-runs": ",".join(sorted(run_ids))})
    return count


def purge(catalog: CatalogConfig, quarantine_table: str, *, run_ids: Sequence[str] | None = None,
          quarantined_before: datetime | None = None) -> int:
    """Delete quarantined rows for good (of ``run_ids``, or quarantined before a time); returns the count.

    The rows leave the current snapshot; old snapshots keep them until they are expired.
    """
    from pyiceberg.expressions import And, In, LessThan

    if not run_ids and quarantined_before is None:
        raise ConfigError("purge needs run_ids or quarantined_before (purging everything must be explicit: "
                          "pass quarantined_before=now)")
    table = catalog.load().load_table(quarantine_table)
    conditions = []
    if run_ids:
        conditions.append(In(RUN_ID, set(run_ids)))
    if quarantined_before is not None:
        moment = quarantined_before if quarantined_before.tzinfo else quarantined_before.replace(tzinfo=timezone.utc)
        conditions.append(LessThan(QUARANTINED_AT, moment.isoformat()))
    condition = conditions[0] if len(conditions) == 1 else And(*conditions)
    count = table.scan(row_filter=condition, selected_fields=(RUN_ID,)).to_arrow().num_rows
    if count:
        table.delete(condition)
    return count
