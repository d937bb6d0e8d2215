"""1,000 tables listed in under a second from cached metadata (the issue's figure).

One real table with five commits (each recording a source state), then 999 more tables, each with its
own copy of that metadata file, registered in the SQL catalog in one transaction (what
``register_table`` inserts, without 999 commits). Every table is a distinct metadata file, so the cold
listing reads and parses 1,000 files; the warm one reads none.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pyarrow as pa

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import snapshot_properties
from dativo_provider.ui.tables import TableListCache

TABLES = 1000


def test_a_thousand_tables_list_in_under_a_second_when_cached(tmp_path: Path):
    config = embedded_catalog(tmp_path)
    catalog = config.load()
    catalog.create_namespace("bench")
    table = catalog.create_table("bench.t0000", pa.schema([("id", pa.int64()), ("v", pa.string())]))
    for run in range(5):
        table.append(pa.table({"id": list(range(run * 10, run * 10 + 10)), "v": ["x"] * 10}),
                     snapshot_properties=snapshot_properties("bench://source", {"watermark": run}, f"run-{run}"))
    first = Path(table.metadata_location.removeprefix("file://"))
    copies = []
    for number in range(1, TABLES):
        copy = first.with_name(f"copy-{number:04d}.metadata.json")
        shutil.copyfile(first, copy)
        copies.append((config.name, "bench", f"t{number:04d}", f"file://{copy}", None))
    with sqlite3.connect(config.properties["uri"].removeprefix("sqlite:///")) as db:
        db.executemany("INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location, "
                       "previous_metadata_location) VALUES (?, ?, ?, ?, ?)", copies)

    cache = TableListCache()
    started = time.perf_counter()
    cold = cache.rows("bench", catalog)
    cold_seconds = time.perf_counter() - started
    warm_seconds = []
    for _ in range(3):
        started = time.perf_counter()
        warm = cache.rows("bench", catalog)
        warm_seconds.append(time.perf_counter() - started)

    assert len(cold) == len(warm) == TABLES
    assert {row.rows for row in warm} == {50} and {row.watermark["watermark"] for row in warm} == {4}
    print(f"\n{TABLES} tables: cold {cold_seconds:.3f} s (every metadata file read), "
          f"cached {min(warm_seconds) * 1000:.1f} ms")
    assert max(warm_seconds) < 1.0
    # A commit to one table re-reads that table's metadata only.
    table.append(pa.table({"id": [999], "v": ["y"]}))
    changed = {row.identifier: row for row in cache.rows("bench", catalog)}
    assert changed["bench.t0000"].rows == 51 and changed["bench.t0001"].rows == 50
