"""Arrow batches the process already has (or a callable produces) as a source.

The contract layer uses it to write quarantined rows and to release them, so those writes get the
engine's schema handling, file sizing and one-snapshot commits like any other ingest. It stores no
state: what it reads is decided by its caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dativo_provider.sources.base import LineageDataset, ReadBounds, Source, SourceReport, SourceStream

if TYPE_CHECKING:
    import pyarrow as pa


class ArrowSource(Source):
    """:param batches: called once per :meth:`open`; yields batches of exactly ``schema``."""

    def __init__(self, schema: pa.Schema, batches: Callable[[], Iterable[pa.RecordBatch]], identity: str,
                 lineage: LineageDataset | None = None) -> None:
        self.schema = schema
        self.batches = batches
        self._identity = identity
        self._lineage = lineage or LineageDataset("dativo", identity)

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def lineage(self) -> LineageDataset:
        return self._lineage

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SourceStream:
        return _ArrowStream(self.schema, self.batches())


class _ArrowStream(SourceStream):
    def __init__(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
        self._schema = schema
        self._batches = batches
        self.report = SourceReport()

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        yield from self._batches

    def state(self) -> dict[str, Any] | None:
        return None
