"""Split ingest (one table across many workers) from the real Postgres: parts written apart, committed once.

Every plan and part output goes through JSON, as it does between Airflow tasks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from dativo_provider.connections import DatabaseConfig
from dativo_provider.exceptions import ConcurrentRunError, ConfigError, SchemaDriftError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import STATE_KEY
from dativo_provider.iceberg.writer import DataFileWriter
from dativo_provider.ingest import split
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.split import (
    SPLIT_RUN_KEY,
    PartOutput,
    SplitPlan,
    commit_split_ingest,
    plan_split_ingest,
    write_split_part,
)
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
ROWS = 200_000
TABLE = "lake.orders"

#: A worker killed after its files are complete but before it returns their description.
_KILLED_PART = """
import json, os, signal, sys
from dativo_provider.connections import DatabaseConfig
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest import split
plan = split.SplitPlan.from_dict(json.loads(sys.argv[2]))
config = DatabaseConfig(host=sys.argv[3], port=int(sys.argv[4]), user=sys.argv[5], database=sys.argv[6])
split.data_file_to_dict = lambda data_file: os.kill(os.getpid(), signal.SIGKILL)
split.write_split_part(plan, int(sys.argv[7]), config, embedded_catalog(sys.argv[1]))
"""


@pytest.fixture
def orders(pg, pg_schema):
    """``<schema>.orders`` with 200,000 rows; ``updated_at`` rises with ``id``."""
    pg.execute(f'create table "{pg_schema}".orders (id bigint primary key, amount numeric(12,2), note text, '
               "updated_at timestamptz not null)")
    _insert(pg, pg_schema, 1, ROWS)
    return f"{pg_schema}.orders"


def _insert(pg, schema, first, last):
    pg.execute(
        f'insert into "{schema}".orders select g, g * 1.25, case when g %% 7 = 0 then null else \'note \' || g end, '
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' from generate_series(%s::bigint, %s) g",
        (first, last),
    )


def _spec(table, **extra):
    return {"type": "postgres", "table": table, "cursor": "updated_at", "batch_rows": 10_000, **extra}


def _through_json(value):
    return json.loads(json.dumps(value))


def _plan(catalog, config, spec, parts=4, **kwargs):
    plan = plan_split_ingest(spec, config, catalog, TABLE, parts, run_id="run-1", **kwargs)
    return SplitPlan.from_dict(_through_json(plan.to_dict()))


def _write_all(plan, config, catalog):
    return [_through_json(write_split_part(plan, i, config, catalog).to_dict()) for i in range(len(plan.parts))]


def _split_ingest(catalog, config, spec, parts=4, **kwargs):
    plan = _plan(catalog, config, spec, parts, **kwargs)
    return plan, commit_split_ingest(plan, _write_all(plan, config, catalog), catalog)


def _source_rows(pg, table):
    rows = pg.execute(f"select id, amount, note from {table} order by id").fetchall()
    return [(i, Decimal(a), n) for i, a, n in rows]


def _lake_rows(catalog):
    data = catalog.load().load_table(TABLE).scan(selected_fields=("id", "amount", "note")).to_arrow()
    return sorted(zip(*(data[c].to_pylist() for c in ("id", "amount", "note"))))


def _snapshots(catalog):
    return catalog.load().load_table(TABLE).snapshots()


def _data_files_on_disk(lake):
    return {str(p) for p in (lake / "warehouse" / "lake" / "orders" / "data").glob("*.parquet")}


def _referenced_files(catalog):
    table = catalog.load().load_table(TABLE)
    return {task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()}


def test_parts_written_apart_land_in_one_snapshot_equal_to_the_source_then_only_new_rows(
    tmp_path, pg, pg_schema, orders, postgres_config
):
    catalog = embedded_catalog(tmp_path / "lake")
    plan, result = _split_ingest(catalog, postgres_config, _spec(orders))

    assert plan.split_by == "id"  # the single-integer primary key
    assert [p.key_range["lower"] for p in plan.parts] == [None, 50_001, 100_001, 150_001]
    assert [p.key_range["upper"] for p in plan.parts] == [50_001, 100_001, 150_001, None]
    assert plan.upper == "2024-01-03T07:33:20+00:00"  # the cursor's max, frozen for every part
    assert _lake_rows(catalog) == _source_rows(pg, orders)
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (ROWS, ROWS, 0)
    assert [p["rows_read"] for p in result.source_details["parts"]] == [50_000] * 4
    assert result.committed and result.files_written >= 4
    (snapshot,) = _snapshots(catalog)
    assert snapshot.snapshot_id == result.snapshot_id
    assert snapshot.summary[SPLIT_RUN_KEY] == plan.run_key
    assert json.loads(snapshot.summary[STATE_KEY])["watermark"] == "2024-01-03T07:33:20.000000+00:00"
    assert result.watermark_after == "2024-01-03T07:33:20.000000+00:00"

    _insert(pg, pg_schema, ROWS + 1, ROWS + 1000)
    plan, second = _split_ingest(catalog, postgres_config, _spec(orders), parts=3)
    assert (second.rows_read, second.rows_written) == (1000, 1000)
    assert second.watermark_before == result.watermark_after
    assert plan.expected_state_snapshot == result.snapshot_id
    assert _lake_rows(catalog) == _source_rows(pg, orders)
    assert len(_snapshots(catalog)) == 2


def test_a_retried_part_and_a_killed_part_never_duplicate_rows_and_the_killed_files_stay_orphans(
    tmp_path, pg, orders, postgres_config, monkeypatch
):
    lake = tmp_path / "lake"
    catalog = embedded_catalog(lake)
    plan = _plan(catalog, postgres_config, _spec(orders))
    outputs = [_through_json(write_split_part(plan, 0, postgres_config, catalog).to_dict())]

    # Part 1 fails in Python half-way: its files are deleted; the retry writes new ones.
    before = _data_files_on_disk(lake)
    writes = []

    def failing_write(self, batch, original=DataFileWriter.write):
        writes.append(batch.num_rows)
        if len(writes) == 3:
            raise OSError("disk full (injected)")
        original(self, batch)

    with monkeypatch.context() as patched:
        patched.setattr(DataFileWriter, "write", failing_write)
        with pytest.raises(OSError, match="injected"):
            write_split_part(plan, 1, postgres_config, catalog)
    assert _data_files_on_disk(lake) == before, "a part that failed in Python leaves no files"
    outputs.append(_through_json(write_split_part(plan, 1, postgres_config, catalog).to_dict()))

    # Part 2's worker is killed after writing its files: they stay, referenced by nothing.
    before = _data_files_on_disk(lake)
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_PART, str(lake), json.dumps(plan.to_dict()), postgres_config.host,
         str(postgres_config.port), postgres_config.user, postgres_config.database, "2"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )
    assert child.returncode == -signal.SIGKILL
    orphans = _data_files_on_disk(lake) - before
    assert orphans, "the killed part had written its files"
    outputs += [_through_json(write_split_part(plan, i, postgres_config, catalog).to_dict()) for i in (2, 3)]

    result = commit_split_ingest(plan, outputs, catalog)
    assert result.rows_written == ROWS
    assert _lake_rows(catalog) == _source_rows(pg, orders)
    assert not orphans & _referenced_files(catalog), "orphans are left for maintenance, never committed"
    assert _data_files_on_disk(lake) - _referenced_files(catalog) == orphans


def test_a_run_with_a_missing_part_commits_nothing(tmp_path, orders, postgres_config):
    catalog = embedded_catalog(tmp_path / "lake")
    plan = _plan(catalog, postgres_config, _spec(orders))
    outputs = _write_all(plan, postgres_config, catalog)
    with pytest.raises(ConfigError, match=r"expected one output for each of the plan's 4 part\(s\), got parts \[0, 1, 3\]"):
        commit_split_ingest(plan, [outputs[0], outputs[1], outputs[3]], catalog)
    table = catalog.load().load_table(TABLE)
    assert table.current_snapshot() is None, "the first run's plan leaves only an empty table"
    other = _plan(catalog, postgres_config, _spec(orders))
    with pytest.raises(ConfigError, match="belong to another plan"):
        commit_split_ingest(other, outputs, catalog)


def test_a_part_refuses_a_table_whose_schema_changed_since_the_plan(tmp_path, orders, postgres_config):
    catalog = embedded_catalog(tmp_path / "lake")
    plan = _plan(catalog, postgres_config, _spec(orders), parts=2)
    from pyiceberg.types import StringType

    with catalog.load().load_table(TABLE).update_schema() as update:
        update.add_column("added_meanwhile", StringType())
    with pytest.raises(SchemaDriftError, match="schema or partitioning changed since the split ingest was planned"):
        write_split_part(plan, 0, postgres_config, catalog)


def test_a_retried_commit_commits_once(tmp_path, pg, orders, postgres_config):
    catalog = embedded_catalog(tmp_path / "lake")
    plan = _plan(catalog, postgres_config, _spec(orders))
    outputs = _write_all(plan, postgres_config, catalog)
    first = commit_split_ingest(plan, outputs, catalog)
    again = [commit_split_ingest(plan, outputs, catalog) for _ in range(2)]
    assert {r.snapshot_id for r in again} == {first.snapshot_id}
    assert all(r.committed and r.rows_written == ROWS for r in again)
    assert len(_snapshots(catalog)) == 1
    assert _lake_rows(catalog) == _source_rows(pg, orders)


def test_a_regular_run_of_the_same_source_in_between_makes_the_commit_refuse(
    tmp_path, pg, pg_schema, orders, postgres_config
):
    lake = tmp_path / "lake"
    catalog = embedded_catalog(lake)
    _split_ingest(catalog, postgres_config, _spec(orders))
    _insert(pg, pg_schema, ROWS + 1, ROWS + 500)
    plan = _plan(catalog, postgres_config, _spec(orders))
    outputs = _write_all(plan, postgres_config, catalog)
    regular = run_ingest(build_source(_spec(orders), postgres_config), catalog, TABLE, run_id="regular")
    assert regular.rows_written == 500
    with pytest.raises(ConcurrentRunError, match="committed snapshot"):
        commit_split_ingest(plan, outputs, catalog)
    assert _lake_rows(catalog) == _source_rows(pg, orders), "nothing of the refused split landed"
    assert _data_files_on_disk(lake) == _referenced_files(catalog), "the refused split's files are deleted"


def test_replace_mode_and_a_frozen_upper_bound(tmp_path, pg, orders, postgres_config):
    catalog = embedded_catalog(tmp_path / "lake")
    spec = _spec(orders)
    spec.pop("cursor")
    for _ in range(2):
        plan, result = _split_ingest(catalog, postgres_config, spec, parts=3, write_options={"mode": "replace"})
        assert result.rows_written == ROWS
    assert plan.upper is None and result.rows_deleted == ROWS
    assert _lake_rows(catalog) == _source_rows(pg, orders)

    bounded = embedded_catalog(tmp_path / "bounded")
    plan, result = _split_ingest(bounded, postgres_config, _spec(orders), parts=2,
                                 bounds=ReadBounds(upper="2024-01-01T00:16:40+00:00"))
    assert result.rows_written == 1000 and plan.parts[0].key_range == {"column": "id", "lower": None, "upper": 501}


def test_merge_replaces_changed_rows_by_key_across_parts(tmp_path, pg, pg_schema, orders, postgres_config):
    catalog = embedded_catalog(tmp_path / "lake")
    merge = {"mode": "merge", "merge_keys": ["id"]}
    _, first = _split_ingest(catalog, postgres_config, _spec(orders), write_options=merge)
    assert first.rows_written == ROWS and first.rows_deleted == 0
    pg.execute(f'update "{pg_schema}".orders set note = \'changed\', updated_at = updated_at + interval \'30 days\' '
               "where id % 200 = 0")
    plan, second = _split_ingest(catalog, postgres_config, _spec(orders), parts=3, write_options=merge)
    assert plan.split_by == "id" and len(plan.parts) == 3
    assert (second.rows_written, second.rows_deleted) == (1000, 1000)
    assert _lake_rows(catalog) == _source_rows(pg, orders)


def test_an_empty_source_plans_one_part_that_reads_nothing(tmp_path, pg, pg_schema, postgres_config):
    pg.execute(f'create table "{pg_schema}".orders (id bigint primary key, updated_at timestamptz not null)')
    catalog = embedded_catalog(tmp_path / "lake")
    plan, result = _split_ingest(catalog, postgres_config, _spec(f"{pg_schema}.orders"))
    assert [p.reads for p in plan.parts] == [False]
    assert (result.rows_read, result.committed) == (0, False)
    assert catalog.load().load_table(TABLE).current_snapshot() is None


@pytest.mark.parametrize(("spec", "options", "message"), [
    ({"type": "stripe", "conn_id": "stripe", "object": "charges"}, None, "cannot cut a 'stripe' source into parts"),
    (_spec("s.orders", lookback="1h"), None, "re-reads rows behind its watermark .* use mode 'merge'"),
    (_spec("s.orders", key_range={"column": "id"}), None, "must not have a 'key_range'"),
])
def test_unsupported_requests_are_refused_naming_what(tmp_path, spec, options, message):
    nowhere = DatabaseConfig(host="db.invalid", user="u", database="d")  # refused before connecting
    with pytest.raises(ConfigError, match=message):
        plan_split_ingest(spec, nowhere, embedded_catalog(tmp_path), TABLE, 2, write_options=options)


def test_split_by_must_be_an_orderable_column(tmp_path, orders, postgres_config):
    with pytest.raises(ConfigError, match="split_by column 'note' has type string"):
        plan_split_ingest(_spec(orders), postgres_config, embedded_catalog(tmp_path), TABLE, 2, split_by="note")


def test_part_outputs_round_trip_exactly(tmp_path, orders, postgres_config):
    catalog = embedded_catalog(tmp_path / "lake")
    plan = _plan(catalog, postgres_config, _spec(orders), parts=2, write_options={"partition_by": ["day(updated_at)"]})
    output = write_split_part(plan, 0, postgres_config, catalog)
    assert PartOutput.from_dict(_through_json(output.to_dict())) == output
    files = [split.data_file_from_dict(d) for d in output.files]
    assert [split.data_file_to_dict(f) for f in files] == output.files
    assert {f.partition[0] for f in files} == {19723, 19724}  # days since 1970 of 2024-01-01 and -02


@pytest.mark.mysql
def test_a_mysql_source_splits_on_its_key_and_continues_from_its_watermark(tmp_path, my, my_db):
    def fill(first, last):
        with my.cursor() as cur:
            cur.execute("insert into orders with recursive g(n) as (select %s union all select n + 1 from g "
                        "where n < %s) select n, n * 1.25, timestamp('2024-01-01') + interval n second from g",
                        (first, last))

    def source_rows():
        with my.cursor() as cur:
            cur.execute("select id, amount from orders order by id")
            return [tuple(row) for row in cur.fetchall()]

    def lake_rows():
        data = catalog.load().load_table(TABLE).scan(selected_fields=("id", "amount")).to_arrow()
        return sorted(zip(data["id"].to_pylist(), data["amount"].to_pylist()))

    with my.cursor() as cur:
        cur.execute("create table orders (id int unsigned primary key, amount decimal(12,2), at datetime(6) not null)")
    fill(1, 900)
    catalog = embedded_catalog(tmp_path / "lake")
    spec = {"type": "mysql", "table": "orders", "cursor": "at", "batch_rows": 100}
    plan, first = _split_ingest(catalog, my_db, spec, parts=3)
    assert plan.split_by == "id" and [p.key_range["upper"] for p in plan.parts] == [301, 601, None]
    assert first.rows_written == 900 and first.watermark_after == "2024-01-01T00:15:00.000000"
    fill(901, 950)
    _, second = _split_ingest(catalog, my_db, spec, parts=3)
    assert (second.rows_read, second.rows_written) == (50, 50)
    assert lake_rows() == source_rows()


def test_a_files_source_splits_into_file_groups_and_stores_the_state_a_single_run_would(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()

    def write(name, first, count):
        (drop / name).write_text("id,name\n" + "".join(f"{i},row {i}\n" for i in range(first, first + count)))

    for n, count in enumerate([500, 40, 300, 10, 120, 80, 1]):
        write(f"batch_{n}.csv", n * 1000, count)
    spec = {"type": "files", "path": str(drop), "glob": "*.csv", "columns": {"id": "int64", "name": "string"}}
    catalog = embedded_catalog(tmp_path / "lake")
    plan, result = _split_ingest(catalog, None, spec, parts=3)
    groups = [set(part.file_group) for part in plan.parts]
    assert len(groups) == 3 and set().union(*groups) == {f"batch_{n}.csv" for n in range(7)}
    assert sum(len(g) for g in groups) == 7, "every file in exactly one part"
    assert result.rows_written == 1051
    lake_ids = sorted(catalog.load().load_table(TABLE).scan().to_arrow()["id"].to_pylist())
    assert lake_ids == sorted(n * 1000 + i for n, count in enumerate([500, 40, 300, 10, 120, 80, 1])
                              for i in range(count))

    single = embedded_catalog(tmp_path / "single")
    run_ingest(build_source(spec), single, TABLE)
    state = catalog.load().load_table(TABLE).current_snapshot().summary[STATE_KEY]
    assert state == single.load().load_table(TABLE).current_snapshot().summary[STATE_KEY]

    write("batch_7.csv", 7000, 25)
    write("batch_8.csv", 8000, 5)
    plan, second = _split_ingest(catalog, None, spec, parts=3)
    assert [sorted(p.file_group) for p in plan.parts] == [["batch_7.csv"], ["batch_8.csv"]]
    assert (second.rows_read, second.rows_written) == (30, 30)
    plan, third = _split_ingest(catalog, None, spec, parts=3)
    assert [p.reads for p in plan.parts] == [False] and not third.committed
    assert len(catalog.load().load_table(TABLE).scan().to_arrow()) == 1081
