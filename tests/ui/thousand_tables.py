"""A catalog of 1,000 tables, quick to build, for the listing's timing.

One real table with five commits (each recording a source state), then 999 more tables, each with its
own copy of that metadata file, registered in the SQL catalog in one transaction (what
``register_table`` inserts, without 999 commits). Every table is a distinct metadata file, so a cold
listing reads and parses 1,000 files.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pyarrow as pa

from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.iceberg.state import snapshot_properties

TABLES = 1000


def thousand_tables(root: Path) -> CatalogConfig:
    """A SQLite catalog under ``root`` with :data:`TABLES` tables (see the module doc)."""
    config = embedded_catalog(root)
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
        db.executemany("INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, "
                       "metadata_location, previous_metadata_location) VALUES (?, ?, ?, ?, ?)", copies)
    return config
