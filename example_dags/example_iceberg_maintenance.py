"""Nightly Iceberg table maintenance: compact small files, expire old snapshots, delete orphan files.

### What it shows

Every ingest run adds a snapshot and at least one data file, and a writer killed mid-write leaves
Parquet files no snapshot names: without maintenance a table's storage only grows. This DAG
maintains the tables `example_files_to_iceberg` writes, one mapped task per table, in this order:

1. **compaction**: small data files rewritten per partition into ~128 MB files, in the table's sort
   order, in one commit (row count and content unchanged);
2. **snapshot expiry**: snapshots older than 7 days beyond the newest 10 of each branch are expired.
   Always kept: every tag and branch head, the whole history of the `training` tag, and each ingest
   source's newest state (so the next incremental run adds only new rows);
3. **orphan removal**: files of expired snapshots are deleted, and files no snapshot references
   (a killed writer's leftovers) once they are older than 3 days.

Each task returns what it removed (snapshots, files by kind, bytes reclaimed, files compacted).

### What it needs

The tables to exist: run `example_files_to_iceberg` first. No connection: without `iceberg_default`
the embedded catalog under `$AIRFLOW_HOME/dativo` is used.

### How to run it

`airflow dags test example_iceberg_maintenance`, or let the nightly schedule run it. Runs do not
overlap (`max_active_runs=1`): two maintenance runs of one table would race for its commits.
See docs/maintenance.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from dativo_provider.operators.maintenance import IcebergMaintenanceOperator

with DAG(
    dag_id="example_iceberg_maintenance",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["dativo", "example", "maintenance"],
    max_active_runs=1,
    doc_md=__doc__,
):
    IcebergMaintenanceOperator.partial(
        task_id="maintain",
        expire_older_than=timedelta(days=7),
        retain_last=10,
        protect_refs=["training"],
        orphan_safety_window=timedelta(days=3),
        compact=True,
    ).expand(tables=["examples.orders", "examples.events"])
