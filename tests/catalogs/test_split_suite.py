"""Split ingest on every catalog kind (embedded SQLite, Postgres SQL catalog, REST catalog with S3): part
outputs travel as JSON, the files they describe (s3:// paths on REST) land in one partitioned snapshot."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from dativo_provider.iceberg.state import STATE_KEY
from dativo_provider.ingest.split import SPLIT_RUN_KEY, commit_split_ingest, plan_split_ingest, write_split_part

pytestmark = pytest.mark.postgres

ROWS = 20_000


@pytest.fixture
def events(pg, pg_schema):
    pg.execute(f'create table "{pg_schema}".events (id bigint primary key, amount numeric(10,2), '
               "at timestamptz not null)")
    _insert(pg, pg_schema, 1, ROWS)
    return f"{pg_schema}.events"


def _insert(pg, schema, first, last):
    pg.execute(f'insert into "{schema}".events select g, g * 0.5, timestamptz \'2024-03-01 00:00+00\' '
               "+ g * interval '10 seconds' from generate_series(%s::bigint, %s) g", (first, last))


def _run(lake, config, spec, table):
    options = {"partition_by": ["day(at)"]}
    plan = plan_split_ingest(spec, config, lake.config, table, 3, write_options=options, run_id="suite")
    outputs = [json.loads(json.dumps(write_split_part(plan, i, config, lake.config).to_dict()))
               for i in range(len(plan.parts))]
    result = commit_split_ingest(plan, outputs, lake.config)
    again = commit_split_ingest(plan, outputs, lake.config)
    assert again.snapshot_id == result.snapshot_id, "a retried commit commits once"
    return plan, result


def test_split_ingest_lands_once_in_one_partitioned_snapshot(lake, pg, pg_schema, events, postgres_config):
    table = lake.table("events")
    spec = {"type": "postgres", "table": events, "cursor": "at"}
    plan, first = _run(lake, postgres_config, spec, table)
    assert (first.rows_read, first.rows_written, len(plan.parts)) == (ROWS, ROWS, 3)
    _insert(pg, pg_schema, ROWS + 1, ROWS + 700)
    _, second = _run(lake, postgres_config, spec, table)
    assert second.rows_written == 700

    loaded = lake.load().load_table(table)
    snapshots = loaded.snapshots()
    assert len(snapshots) == 2 and all(SPLIT_RUN_KEY in s.summary.additional_properties for s in snapshots)
    assert json.loads(snapshots[-1].summary[STATE_KEY])["watermark"] == "2024-03-03T09:30:00.000000+00:00"
    data = loaded.scan().to_arrow()
    rows = sorted(zip(data["id"].to_pylist(), data["amount"].to_pylist()))
    source = pg.execute(f"select id, amount from {events} order by id").fetchall()
    assert rows == [(i, Decimal(a)) for i, a in source]
    days = {task.file.partition[0] for task in loaded.scan().plan_files()}
    assert days == {19783, 19784, 19785}  # 2024-03-01 .. 03 in days since 1970
    if lake.kind == "rest":
        assert all(t.file.file_path.startswith("s3://") for t in loaded.scan().plan_files())
