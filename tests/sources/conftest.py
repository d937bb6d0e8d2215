"""Fixtures for the source tests (the database fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pytest

from dativo_provider.sources.base import ReadBounds, Source

ReadResult = tuple[pa.Table, Any]


@pytest.fixture
def read_all() -> Callable[..., ReadResult]:
    """Read a source to the end; checks every batch has the declared schema. Returns (table, state)."""

    def read(
        source: Source, state: Mapping[str, Any] | None = None, bounds: ReadBounds = ReadBounds()
    ) -> ReadResult:
        with source.open(state, bounds) as stream:
            schema = stream.schema
            batches = list(stream)
            assert all(batch.schema == schema for batch in batches)
            return pa.Table.from_batches(batches, schema=schema), stream.state()

    return read
