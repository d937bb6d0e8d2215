"""Placeholder: the lead engineer is writing run_ingest here (see signature below)."""

from __future__ import annotations


def run_ingest(source, catalog, table, options=None, *, bounds=None, run_id=None, audit=None):  # noqa: ANN001
    """run_ingest(source: Source, catalog: CatalogConfig, table: "ns.table", options: WriteOptions,
    *, bounds: ReadBounds, run_id: str | None, audit: AuditGate | None) -> IngestResult"""
    raise NotImplementedError
