"""1,000 tables listed in under a second from cached metadata (the issue's figure); the catalog is
:func:`tests.ui.thousand_tables.thousand_tables`. The cold listing reads 1,000 metadata files; the
warm one reads none.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from dativo_provider.ui.tables import TableListCache
from tests.ui.thousand_tables import TABLES, thousand_tables


def test_a_thousand_tables_list_in_under_a_second_when_cached(tmp_path: Path):
    catalog = thousand_tables(tmp_path).load()
    table = catalog.load_table("bench.t0000")
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
