"""Every catalog kind of the shared suite opens, creates a table in the test's namespace and reads it back."""

from __future__ import annotations

import pyarrow as pa

from dativo_provider.ingest.engine import run_ingest
from tests.memory_source import TableSource


def test_ingest_and_read_back(lake):
    rows = pa.table({"id": pa.array(range(1_000), pa.int64()), "name": [f"n{i}" for i in range(1_000)]})
    result = run_ingest(TableSource(rows), lake.config, lake.table("people"))
    back = lake.load().load_table(lake.table("people")).scan().to_arrow().sort_by("id")
    assert result.rows_written == 1_000 and back.equals(rows.cast(back.schema))
