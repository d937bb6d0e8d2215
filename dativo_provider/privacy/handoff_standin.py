"""A stand-in for the external engine of a hand-off, where neither Spark nor Trino is at hand.

It is NOT Spark or Trino, and says so in every snapshot it commits (``engine-name`` =
:data:`STANDIN_ENGINE`). What it does is honest about the statement, though: it executes the planned
Trino-dialect DELETE text verbatim in DuckDB (standard SQL: double-quoted names, ``''`` in strings)
over a copy of main's rows, and commits what the DELETE left with pyiceberg as one overwrite. So a
statement that misses rows leaves them in the table, and the verification step catches it.

It reads the whole table into memory and rewrites every data file: a stand-in for a demo and tests,
never for a table that needed a hand-off in the first place.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dativo_provider.exceptions import ConfigError
from dativo_provider.optional import require

if TYPE_CHECKING:
    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: The ``engine-name`` the stand-in writes into its snapshot summaries.
STANDIN_ENGINE = "dativo-standin-duckdb"
_ROW = "__dativo_standin_row"
_TARGET = re.compile(r'^\s*DELETE\s+FROM\s+"((?:[^"]|"")+)"\."((?:[^"]|"")+)"\."((?:[^"]|"")+)"\s+WHERE\s', re.IGNORECASE)


@dataclass(frozen=True)
class StandinResult:
    """What the stand-in did: rows before, rows its DELETE removed, and its snapshot (None: no commit)."""

    table: str
    rows_before: int
    rows_deleted: int
    snapshot_id: str | None


def run_standin_delete(catalog: CatalogConfig, table: str, statement: str) -> StandinResult:
    """Execute one Trino-dialect ``DELETE FROM "cat"."ns"."t" WHERE …`` on ``table``'s main.

    :param table: the table in ``catalog`` the statement's ``"ns"."t"`` names.
    :raises ConfigError: the statement is not one DELETE of that table.
    """
    duckdb = require("duckdb", "ml")
    text = statement.strip().rstrip(";")
    target = _TARGET.match(text)
    if target is None or ";" in _outside_literals(text):
        raise ConfigError("the stand-in engine runs one Trino-dialect DELETE FROM \"catalog\".\"schema\".\"table\" "
                          "WHERE …; render the plan for engine='trino'")
    engine_catalog, schema, name = (part.replace('""', '"') for part in target.groups())
    if f"{schema}.{name}" != table:
        raise ConfigError(f"the statement deletes from {schema}.{name}, not {table}")
    iceberg = catalog.load().load_table(table)
    rows = iceberg.scan().to_arrow()
    connection = duckdb.connect()
    try:
        connection.execute(f"ATTACH ':memory:' AS {_quoted(engine_catalog)}")
        connection.execute(f"CREATE SCHEMA {_quoted(engine_catalog)}.{_quoted(schema)}")
        numbered = rows.append_column(_ROW, _positions(len(rows)))
        connection.register("standin_rows", numbered)
        qualified = f"{_quoted(engine_catalog)}.{_quoted(schema)}.{_quoted(name)}"
        connection.execute(f"CREATE TABLE {qualified} AS SELECT * FROM standin_rows")
        connection.execute(text)
        kept = [row[0] for row in connection.execute(f"SELECT {_ROW} FROM {qualified} ORDER BY 1").fetchall()]
    finally:
        connection.close()
    deleted = len(rows) - len(kept)
    if not deleted:
        log.info("stand-in engine: the DELETE matched no row of %s; nothing committed", table)
        return StandinResult(table, len(rows), 0, None)
    import pyarrow as pa

    iceberg.overwrite(rows.take(pa.array(kept, pa.int64())), snapshot_properties={"engine-name": STANDIN_ENGINE})
    snapshot = iceberg.metadata.snapshot_by_name("main")  # the commit refreshed the table's metadata
    log.info("stand-in engine (%s, not Spark or Trino): deleted %d of %d rows of %s", STANDIN_ENGINE, deleted,
             len(rows), table)
    return StandinResult(table, len(rows), deleted, str(snapshot.snapshot_id) if snapshot else None)


def _positions(count: int):
    import pyarrow as pa

    return pa.array(range(count), pa.int64())


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _outside_literals(text: str) -> str:
    """``text`` without its string literals and quoted names (a ``;`` inside a value is data)."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "", text)
