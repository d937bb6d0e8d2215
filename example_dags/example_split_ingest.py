"""Postgres table → Iceberg across many workers: four parts written in parallel, committed once.

### What it shows

`split_ingest(...)` makes three steps in the task group `split_events`: `plan` freezes the cursor
window (rows up to the data interval end) and cuts `dativo_example_events` into four `id` ranges;
`write_part` is mapped over them, each writing its own data files (on any worker, with retries);
`commit` adds every part's files to `examples.pg_events_split` in ONE snapshot that also stores the
cursor. A failed part means no commit: the table stays as it was. A rerun of the same day reads
nothing new. The `seed_events` task creates and fills the demo table if it is missing (20,000 rows).

### What it needs

- the `postgres` extra (`pip install "dativo-airflow-provider[postgres]"`: ADBC and psycopg);
- a connection `postgres_default`, e.g. `AIRFLOW_CONN_POSTGRES_DEFAULT='{"conn_type": "postgres",
  "host": "127.0.0.1", "login": "postgres", "schema": "test"}'`.

### How to run it

`airflow dags test example_split_ingest`, or let the daily schedule run it. Runs do not overlap
(`max_active_runs=1`): the source is incremental. See docs/split-ingest.md.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from dativo_provider.operators.split_ingest import split_ingest

POSTGRES_CONN_ID = "postgres_default"
SOURCE_TABLE = "dativo_example_events"

SEED_SQL = f"""
CREATE TABLE IF NOT EXISTS {SOURCE_TABLE} (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12, 2),
    shipped_on date,
    created_at timestamptz NOT NULL
);
INSERT INTO {SOURCE_TABLE}
SELECT g, 'customer ' || (g % 97), g * 0.25, date '2024-01-01' + (g % 5),
       timestamptz '2024-01-01 00:00+00' + g * interval '1 second'
FROM generate_series(1, 20000) AS g
ON CONFLICT (id) DO NOTHING;
"""

with DAG(
    dag_id="example_split_ingest",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example"],
):

    @task
    def seed_events() -> None:
        """Create the demo table and its rows, if missing."""
        import psycopg

        from dativo_provider.hooks.sources import source_connection_config

        db = source_connection_config({"type": "postgres", "conn_id": POSTGRES_CONN_ID})
        with psycopg.connect(
            host=db.host, port=db.port, user=db.user, password=db.password, dbname=db.database
        ) as conn:
            conn.execute(SEED_SQL)

    seed_events() >> split_ingest(
        "split_events",
        source={"type": "postgres", "conn_id": POSTGRES_CONN_ID, "table": SOURCE_TABLE, "cursor": "created_at"},
        table="examples.pg_events_split",
        parts=4,
        upper_bound="{{ data_interval_end }}",
        retries=2,
    )
