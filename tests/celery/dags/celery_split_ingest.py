"""The split ingest on the CeleryExecutor (tests/celery): the module's 5M-row Postgres table into Iceberg.

The deployment's environment names the source schema and the connections (``DATIVO_CELERY_*``), so the
same file serves every test module's fresh schema.

- ``celery_split_ingest``: four parts, Airflow's defaults otherwise.
- ``celery_split_ingest_worker_killed``: two parts writing small files (a part's first files are
  closed while it still runs, so a worker can be killed after some rows were written), retried 2 s
  after a failure.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from dativo_provider.operators.split_ingest import split_ingest

SOURCE = {"type": "postgres", "conn_id": os.environ.get("DATIVO_CELERY_SOURCE_CONN_ID", "celery_source"),
          "table": f"{os.environ.get('DATIVO_CELERY_SOURCE_SCHEMA', 'public')}.orders"}
LAKE_CONN_ID = os.environ.get("DATIVO_CELERY_LAKE_CONN_ID", "celery_lake")

with DAG(dag_id="celery_split_ingest", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         tags=["dativo", "celery"]):
    split_ingest("orders", source=SOURCE, table="celery.orders", parts=4, iceberg_conn_id=LAKE_CONN_ID)

with DAG(dag_id="celery_split_ingest_worker_killed", schedule=None, start_date=datetime(2024, 1, 1),
         catchup=False, tags=["dativo", "celery"]):
    split_ingest("orders", source=SOURCE, table="celery.orders_killed", parts=2, iceberg_conn_id=LAKE_CONN_ID,
                 write_options={"target_file_size_mb": 8}, retries=2, retry_delay=timedelta(seconds=2))
