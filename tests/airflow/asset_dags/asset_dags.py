"""DAGs for tests/airflow/test_assets.py: one Iceberg table named statically, by a template, by mapping.

They read the CSV folder ``$DATIVO_TEST_DROP`` into the embedded catalog.
"""

from __future__ import annotations

import os
from datetime import datetime

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from dativo_provider.operators.ingest import IcebergIngestOperator

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow import DAG

SOURCE = {"type": "files", "path": os.environ.get("DATIVO_TEST_DROP", "/nonexistent"), "glob": "*.csv",
          "batch_rows": 2}
START = datetime(2026, 1, 1)

with DAG("assets_static", schedule=None, start_date=START, catchup=False):
    IcebergIngestOperator(task_id="load", source=SOURCE, table="tests.static")

with DAG("assets_templated", schedule=None, start_date=START, catchup=False, params={"name": "templated"}):
    IcebergIngestOperator(task_id="load", source=SOURCE, table="tests.{{ params.name }}")

with DAG("assets_mapped", schedule=None, start_date=START, catchup=False):
    IcebergIngestOperator.partial(task_id="load", source=SOURCE).expand(
        table=["tests.mapped_a", "tests.mapped_b"]
    )
