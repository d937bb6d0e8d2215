"""The run summary one ingest returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dativo_provider.progress import format_bytes
from dativo_provider.sources.base import LineageDataset, RejectedRow


@dataclass
class SchemaField:
    """A column of the written table, for lineage and the summary."""

    name: str
    type: str
    required: bool
    doc: str | None = None


@dataclass
class IngestResult:
    """What one run did.

    ``rows_read == rows_written + rows_rejected + rows_dropped`` and ``rows_written == rows_published +
    rows_quarantined`` always hold: rejected rows could not be read as the schema says, dropped rows were
    filtered out by the run's transform, quarantined rows were read and written but held back by the
    contract.
    """

    table: str
    mode: str
    source: str
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    #: Rows the run's transform filtered out (negative if it made several rows of one); see source_details.
    rows_dropped: int = 0
    #: Rows a contract held back in the quarantine table instead of publishing them.
    rows_quarantined: int = 0
    #: Rows removed from the table by ``replace``, ``overwrite`` or ``merge``.
    rows_deleted: int = 0
    files_written: int = 0
    bytes_written: int = 0
    #: Data files this commit dropped from the table (replaced, overwritten or rewritten by merge).
    files_removed: int = 0
    #: Files ``merge`` wrote to keep the unchanged rows of the files it removed (copy-on-write).
    files_rewritten: int = 0
    bytes_rewritten: int = 0
    snapshot_id: int | None = None
    previous_snapshot_id: int | None = None
    branch: str = "main"
    committed: bool = False
    commit_attempts: int = 0
    duration_seconds: float = 0.0
    watermark_before: Any = None
    watermark_after: Any = None
    schema_changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rejected_samples: list[RejectedRow] = field(default_factory=list)
    source_details: dict[str, Any] = field(default_factory=dict)
    inputs: list[LineageDataset] = field(default_factory=list)
    outputs: list[LineageDataset] = field(default_factory=list)
    schema: list[SchemaField] = field(default_factory=list)
    #: The contract run's report when the ingest was audited (see dativo_provider.quality.report).
    quality: dict[str, Any] | None = None

    @property
    def rows_published(self) -> int:
        return self.rows_written - self.rows_quarantined

    def event_extra(self) -> dict[str, Any]:
        """What the table's asset event carries. The snapshot id is a string: it exceeds 2^53, and the
        Airflow UI (JavaScript) would round it as a number."""
        return {"table": self.table, "snapshot_id": str(self.snapshot_id), "mode": self.mode,
                "rows_written": self.rows_written, "rows_published": self.rows_published}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for XCom and reports)."""
        return {**asdict(self), "rows_published": self.rows_published}

    def summary_line(self) -> str:
        """The one line that ends a run's log: counts, files, snapshot, watermark, time and rate."""
        rate = f", {self.rows_read / self.duration_seconds:.0f} rows/s" if self.duration_seconds > 0 else ""
        dropped = f"dropped by the transform {self.rows_dropped}, " if self.rows_dropped else ""
        return (
            f"{self.table}: read {self.rows_read} rows, wrote {self.rows_written}, "
            f"rejected {self.rows_rejected}, {dropped}quarantined {self.rows_quarantined}, "
            f"deleted {self.rows_deleted}; "
            f"{self.files_written} files / {format_bytes(self.bytes_written)} written, {self.files_removed} "
            f"removed, {self.files_rewritten} rewritten; snapshot {self.snapshot_id} "
            f"on {self.branch}{'' if self.committed else ' (nothing committed)'}; "
            f"watermark {self.watermark_before!r} -> {self.watermark_after!r}; "
            f"{self.duration_seconds:.2f}s{rate}"
        )
