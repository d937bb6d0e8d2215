"""Exactly-once incremental loads from the real Postgres, including a kill -9 in the middle of a write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import STATE_KEY
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]

_CHILD = """
import sys
from dativo_provider.connections import DatabaseConfig
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.sources import build_source
config = DatabaseConfig(host=sys.argv[3], port=int(sys.argv[4]), user=sys.argv[5], database=sys.argv[6])
source = build_source({"type": "postgres", "table": sys.argv[2], "cursor": "id", "batch_rows": 2000}, config)
run_ingest(source, embedded_catalog(sys.argv[1]), "lake.orders")
"""


@pytest.fixture
def orders(postgres_config):
    table = f"orders_{uuid.uuid4().hex[:8]}"
    with _connect(postgres_config) as conn:
        conn.execute(f"create table public.{table} (id bigint primary key, amount numeric(12,2), note text)")
        _insert(conn, table, 1, 1000)
    yield f"public.{table}"
    with _connect(postgres_config) as conn:
        conn.execute(f"drop table if exists public.{table}")


def _connect(config):
    return psycopg.connect(host=config.host, port=config.port, user=config.user, dbname=config.database,
                           autocommit=True)


def _insert(conn, table, first, last):
    conn.execute(
        f"insert into public.{table} select g, g * 1.25, 'note ' || g from generate_series(%s::bigint, %s) g",
        (first, last),
    )


def _source_ids(config, table):
    with _connect(config) as conn:
        return [row[0] for row in conn.execute(f"select id from {table} order by id")]


def _lake_ids(catalog):
    return sorted(catalog.load().load_table("lake.orders").scan().to_arrow()["id"].to_pylist())


def _committed_watermark(catalog):
    snapshot = catalog.load().load_table("lake.orders").current_snapshot()
    return json.loads(snapshot.summary[STATE_KEY])["watermark"]


def test_incremental_reruns_and_a_killed_writer_leave_the_table_equal_to_the_source(
    tmp_path, postgres_config, orders
):
    catalog = embedded_catalog(tmp_path / "lake")
    spec = {"type": "postgres", "table": orders, "cursor": "id"}

    def ingest(**kwargs):
        return run_ingest(build_source(spec, postgres_config), catalog, "lake.orders", **kwargs)

    assert ingest().rows_written == 1000
    with _connect(postgres_config) as conn:
        _insert(conn, orders.split(".")[1], 1001, 1500)
    assert ingest(bounds=ReadBounds(upper=1200)).rows_written == 200
    assert ingest(bounds=ReadBounds(upper=1200)).rows_written == 0  # the same interval again
    assert ingest().rows_written == 300
    assert _lake_ids(catalog) == _source_ids(postgres_config, orders)

    with _connect(postgres_config) as conn:
        _insert(conn, orders.split(".")[1], 1501, 400_000)
    _kill_mid_write(tmp_path / "lake", orders, postgres_config)
    assert _lake_ids(catalog) == list(range(1, 1501)), "a killed run must leave nothing visible"
    assert _committed_watermark(catalog) == 1500, "the watermark must not pass committed rows"

    result = ingest()
    assert (result.watermark_before, result.watermark_after, result.rows_written) == (1500, 400_000, 398_500)
    assert _lake_ids(catalog) == _source_ids(postgres_config, orders)


def _kill_mid_write(lake: Path, table: str, config) -> None:
    data_dir = lake / "warehouse" / "lake" / "orders" / "data"
    before = set(data_dir.glob("*.parquet"))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(lake), table, config.host, str(config.port), config.user,
         config.database],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 120
    while not (set(data_dir.glob("*.parquet")) - before):
        assert child.poll() is None, "the child finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
