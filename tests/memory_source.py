"""A real Source over an in-memory Arrow table, for engine tests that need no server.

It implements the same contract as the database sources: rows with cursor > watermark (minus a
numeric lookback), up to an optional upper bound, and it can fail after N batches to simulate a
crash in the middle of a stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dativo_provider.sources.base import LineageDataset, ReadBounds, Source, SourceReport, SourceStream


class TableSource(Source):
    def __init__(self, table: pa.Table, identity: str = "memory://rows", cursor: str | None = None,
                 lookback: int | None = None, batch_rows: int = 1000, fail_after_batches: int | None = None):
        self.table = table
        self._identity = identity
        self.cursor = cursor
        self.lookback = lookback
        self.batch_rows = batch_rows
        self.fail_after_batches = fail_after_batches
        self.may_repeat_rows = lookback is not None

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def lineage(self) -> LineageDataset:
        return LineageDataset("memory", self._identity)

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SourceStream:
        rows = self.table
        if self.cursor and state:
            low = state["watermark"] - (self.lookback or 0)
            rows = rows.filter(pc.greater(rows[self.cursor], low))
        if self.cursor and bounds.upper is not None:
            rows = rows.filter(pc.less_equal(rows[self.cursor], bounds.upper))
        return _Stream(self, rows, dict(state) if state else None)


class _Stream(SourceStream):
    def __init__(self, source: TableSource, rows: pa.Table, state: dict | None):
        self.source = source
        self.rows = rows
        self.previous = state
        self.report = SourceReport()

    @property
    def schema(self) -> pa.Schema:
        return self.rows.schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for number, batch in enumerate(self.rows.to_batches(max_chunksize=self.source.batch_rows)):
            if self.source.fail_after_batches is not None and number >= self.source.fail_after_batches:
                raise ConnectionError("source connection lost mid-stream")
            yield batch

    def state(self) -> dict | None:
        if not self.source.cursor:
            return None
        if self.rows.num_rows == 0:
            return self.previous
        return {"watermark": pc.max(self.rows[self.source.cursor]).as_py(), "cursor": self.source.cursor}
