"""MySQL/MariaDB table → Iceberg, incrementally by an `updated_at` cursor, merged on `id`.

### What it shows

The MySQL twin of `example_postgres_to_iceberg`: each daily run reads the rows changed up to the
end of its data interval and merges them into `examples.mysql_orders`; an updated row replaces its
old version, a rerun of the same day writes nothing twice. The `seed_orders` task creates and fills
the demo table `dativo_example_orders` if it is missing.

### What it needs

- the `mysql` extra (`pip install "dativo-airflow-provider[mysql]"`: PyMySQL);
- a connection `mysql_default`, e.g. `AIRFLOW_CONN_MYSQL_DEFAULT='{"conn_type": "mysql", "host":
  "127.0.0.1", "login": "root", "schema": "test"}'`. The connection is read by its fields, so the
  MySQL Airflow provider (and its mysqlclient build) is not needed.

### How to run it

`airflow dags test example_mysql_to_iceberg`, or let the daily schedule run it. Runs do not
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

MYSQL_CONN_ID = "mysql_default"
SOURCE_TABLE = "dativo_example_orders"

SEED_SQL = (
    f"""
    CREATE TABLE IF NOT EXISTS {SOURCE_TABLE} (
        id INT PRIMARY KEY,
        customer VARCHAR(100) NOT NULL,
        amount DECIMAL(12, 2),
        status VARCHAR(20),
        updated_at DATETIME(6) NOT NULL
    )
    """,
    f"""
    INSERT IGNORE INTO {SOURCE_TABLE} VALUES
        (1, 'alice', 10.50, 'new', '2024-01-01 10:00:00'),
        (2, 'bob', 20.00, 'new', '2024-01-01 11:00:00'),
        (3, 'carol', 30.25, 'new', '2024-01-01 12:00:00')
    """,
)

with DAG(
    dag_id="example_mysql_to_iceberg",
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
        import pymysql

        from dativo_provider.hooks.sources import source_connection_config

        db = source_connection_config({"type": "mysql", "conn_id": MYSQL_CONN_ID})
        conn = pymysql.connect(
            host=db.host, port=db.port or 3306, user=db.user, password=db.password or "", database=db.database
        )
        with conn, conn.cursor() as cursor:
            for statement in SEED_SQL:
                cursor.execute(statement)
            conn.commit()

    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "mysql", "conn_id": MYSQL_CONN_ID, "table": SOURCE_TABLE, "cursor": "updated_at"},
        table="examples.mysql_orders",
        write_options={"mode": "merge", "merge_keys": ["id"]},
        upper_bound="{{ data_interval_end }}",
    )

    seed_orders() >> ingest_orders
