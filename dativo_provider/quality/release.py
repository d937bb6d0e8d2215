"""Releasing quarantined rows: they are re-checked with the contract as it is now, and published if they pass.

A release re-ingests the held rows through the write-audit-publish gate
(:class:`~dativo_provider.quality.wap.ContractGate`), so it sits above both the quarantine table
(:mod:`dativo_provider.quality.quarantine`) and the gate.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.quality.quarantine import RUN_ID, delete_run, quarantine_table_for
from dativo_provider.quality.wap import ContractGate

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.contracts.model import Contract
    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)


@dataclass
class ReleaseResult:
    """What a release did: ``rows_considered == rows_published + rows_requarantined``."""

    table: str
    quarantine_table: str
    released_runs: list[str] = field(default_factory=list)
    rows_considered: int = 0
    rows_published: int = 0
    rows_requarantined: int = 0
    snapshot_id: int | None = None
    quality: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def release(catalog: CatalogConfig, table: str, contract: Contract | str, *,
            quarantine_table: str | None = None, run_ids: Sequence[str] | None = None,
            dataset: str | None = None, now: datetime | None = None, restrictions: Any = None) -> ReleaseResult:
    """Re-check quarantined rows with ``contract`` (as it is now) and publish the ones that pass.

    Rows that fail again stay in quarantine under this release's run id; the released runs' rows are
    then deleted from the quarantine. ``run_ids`` None releases every quarantined run.

    :param restrictions: the restriction registry: rows of subjects still restricted stay held.
    """
    from pyiceberg.expressions import AlwaysTrue, In

    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.sources.arrow import ArrowSource

    quarantine_table = quarantine_table or quarantine_table_for(table)
    iceberg = catalog.load()
    if not iceberg.table_exists(quarantine_table):
        raise ConfigError(f"{table} has no quarantine table {quarantine_table}")
    held = iceberg.load_table(quarantine_table)
    condition = In(RUN_ID, set(run_ids)) if run_ids else AlwaysTrue()
    runs = sorted(set(held.scan(row_filter=condition, selected_fields=(RUN_ID,)).to_arrow()
                      .column(RUN_ID).to_pylist()))
    result = ReleaseResult(table, quarantine_table, released_runs=runs)
    if not runs:
        return result
    target_columns = [f.name for f in iceberg.load_table(table).schema().fields]
    reader = held.scan(row_filter=In(RUN_ID, set(runs))).to_arrow_batch_reader()
    schema = _project(reader.schema, target_columns)

    def batches() -> Iterable[pa.RecordBatch]:
        for batch in reader:
            result.rows_considered += batch.num_rows
            yield batch.select([c for c in schema.names])

    digest = hashlib.sha256(",".join(runs).encode()).hexdigest()[:16]
    run_id = f"release-{uuid.uuid4().hex[:12]}"
    gate = ContractGate(contract, catalog, dataset=dataset, quarantine_table=quarantine_table, now=now,
                        restrictions=restrictions)
    ingest = run_ingest(
        ArrowSource(schema, batches, identity=f"dativo-release://{quarantine_table}/{digest}"),
        catalog, table, WriteOptions(mode="append"), run_id=run_id, audit=gate,
    )
    result.rows_published = ingest.rows_published
    result.rows_requarantined = ingest.rows_quarantined
    result.snapshot_id = ingest.snapshot_id
    result.quality = ingest.quality
    # Published (or re-quarantined under the new run id): the released runs' rows can go. A crash
    # right here leaves them in both tables; releasing those runs again would publish them twice.
    delete_run(catalog, quarantine_table, runs)
    log.info("released %d quarantined rows of %s into %s: %d published, %d still quarantined",
             result.rows_considered, quarantine_table, table, result.rows_published, result.rows_requarantined)
    return result


def _project(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([schema.field(c) for c in columns if c in schema.names])
