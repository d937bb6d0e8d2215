"""Seed the benchmark tables in the local Postgres: ``bench.wide_5m`` (N rows) and ``bench.wide_1m``.

Also ``bench.wide_warm`` (1,000 rows): each benchmark child runs its contender on it once, untimed,
before the timed run, so lazy imports and first-call set-up are not timed for anyone.

Rows are generated server-side with ``generate_series`` (no client round trips), deterministic
from the row id, 10 columns::

    id bigint PK | qty integer | account_id bigint | amount numeric(18,4) | price numeric(18,4)
    name text (10-30 chars) | category text (10-29 chars)
    created_at timestamptz | updated_at timestamptz | event_time timestamp

A table is left alone when it already holds the same number of rows from the same generator
(recorded in the table comment); ``--force`` rebuilds it. After loading, ``VACUUM (FREEZE,
ANALYZE)`` sets hint bits and the visibility map, so the first benchmark read does not pay for
them.

Usage::

    python bench/pg_seed.py                 # bench.wide_5m = 5,000,000 rows, bench.wide_1m = 1,000,000
    python bench/pg_seed.py 200000 --small 50000   # tiny tables for trying the harness
"""

from __future__ import annotations

import argparse
import sys
import time

GENERATOR = "dativo-bench-wide-v1"
DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
WARM_ROWS = 1_000

COLUMNS_DDL = """
    id          bigint PRIMARY KEY,
    qty         integer NOT NULL,
    account_id  bigint NOT NULL,
    amount      numeric(18,4) NOT NULL,
    price       numeric(18,4),
    name        text NOT NULL,
    category    text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    event_time  timestamp
"""

# Every value is a function of g; a few columns get NULLs (every 97th / 89th row) so null handling
# is on the path too. Text lengths vary between 10 and 30 characters.
INSERT_SQL = """
INSERT INTO {table}
SELECT g,
       ((g * 7919) % 100000)::integer,
       (g % 250000)::bigint,
       round((((g * 2654435761) % 100000000)::numeric / 10000), 4),
       CASE WHEN g % 97 = 0 THEN NULL ELSE round((((g * 40503) % 10000000)::numeric / 1000), 4) END,
       'user_' || substr(md5(g::text), 1, 5 + (g % 21)::integer),
       CASE WHEN g % 89 = 0 THEN NULL
            ELSE 'cat_' || substr(md5((g * 3)::text), 1, 6 + (g % 20)::integer) END,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' + (g % 86400) * interval '1 second',
       timestamp '2021-01-01 00:00:00' + ((g * 37) % 31536000) * interval '1 second'
                                      + (g % 1000000) * interval '1 microsecond'
FROM generate_series(1::bigint, {rows}::bigint) AS g
"""


def table_marker(rows: int) -> str:
    return f"{GENERATOR} rows={rows}"


def current_marker(conn, table: str) -> str | None:  # noqa: ANN001
    row = conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (table,)
    ).fetchone()
    return row[0] if row else None


def seed_table(conn, table: str, rows: int, force: bool) -> None:  # noqa: ANN001
    marker = table_marker(rows)
    if not force and current_marker(conn, table) == marker:
        print(f"{table}: already has {rows:,} rows ({GENERATOR}); skipping (use --force to rebuild)")
        return
    started = time.perf_counter()
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} ({COLUMNS_DDL})")
    conn.execute(INSERT_SQL.format(table=table, rows=int(rows)))
    conn.execute(f"COMMENT ON TABLE {table} IS '{marker}'")
    loaded = time.perf_counter()
    conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
    size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))", (table,)).fetchone()[0]
    print(
        f"{table}: {rows:,} rows generated in {loaded - started:.1f}s, vacuumed in "
        f"{time.perf_counter() - loaded:.1f}s; {size} on disk"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="?", type=int, default=5_000_000, help="rows in bench.wide_5m")
    parser.add_argument("--small", type=int, default=1_000_000, help="rows in bench.wide_1m (0: skip)")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="libpq connection string")
    parser.add_argument("--force", action="store_true", help="rebuild even if already seeded")
    args = parser.parse_args(argv)

    import psycopg

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        seed_table(conn, "bench.wide_5m", args.rows, args.force)
        if args.small:
            seed_table(conn, "bench.wide_1m", args.small, args.force)
        # A tiny table every benchmark child runs once before its timed run (one-time costs).
        seed_table(conn, "bench.wide_warm", WARM_ROWS, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
