"""Postgres table → Iceberg, incrementally by an `updated_at` cursor, merged on `id`.

### What it shows

Each daily run reads the rows changed up to the end of its data interval and merges them into
`examples.pg_orders`: an updated row replaces its old version, a rerun of the same day writes
nothing twice. The `seed_orders` task creates and fills the demo table `dativo_example_orders` if
it is missing.

### What it needs

- the `postgres` extra (`pip install "dativo-airflow-provider[postgres]"`: ADBC and psycopg);
- a connection `postgres_default`, e.g. `AIRFLOW_CONN_POSTGRES_DEFAULT='{"conn_type": "postgres",
  "host": "127.0.0.1", "login": "postgres", "schema": "test"}'`.

### How to run it

`airflow dags test example_postgres_to_iceberg`, or let the daily schedule run it. Runs do not
overlap (`max_active_runs=1`): the source is incremental. See docs/sources-databases.md.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from dativo_provider.operators.ingest import IcebergIngestOperator

POSTGRES_CONN_ID = "postgres_default"
SOURCE_TABLE = "dativo_example_orders"

SEED_SQL = f"""
CREATE TABLE IF NOT EXISTS {SOURCE_TABLE} (
    id integer PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12, 2),
    status text,
    updated_at timestamptz NOT NULL
);
INSERT INTO {SOURCE_TABLE} VALUES
    (1, 'alice', 10.50, 'new', '2024-01-01 10:00+00'),
    (2, 'bob', 20.00, 'new', '2024-01-01 11:00+00'),
    (3, 'carol', 30.25, 'new', '2024-01-01 12:00+00')
ON CONFLICT (id) DO NOTHING;
"""

with DAG(
    dag_id="example_postgres_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example"],
):

    @task
    def seed_orders() -> None:
        """Create the demo table and its first rows, if missing."""
        import psycopg

        from dativo_provider.hooks.sources import source_connection_config

        db = source_connection_config({"type": "postgres", "conn_id": POSTGRES_CONN_ID})
        with psycopg.connect(
            host=db.host, port=db.port, user=db.user, password=db.password, dbname=db.database
        ) as conn:
            conn.execute(SEED_SQL)

    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "postgres", "conn_id": POSTGRES_CONN_ID, "table": SOURCE_TABLE, "cursor": "updated_at"},
        table="examples.pg_orders",
        write_options={"mode": "merge", "merge_keys": ["id"]},
        upper_bound="{{ data_interval_end }}",
    )

    seed_orders() >> ingest_orders
