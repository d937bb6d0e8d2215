"""Harness probe: four mapped tasks, each records which worker ran it in ``<schema>.probe`` (the test creates it)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

with DAG(dag_id="celery_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

    @task
    def record(part: int) -> str:
        import time

        import psycopg

        from dativo_provider.hooks.sources import source_connection_config
        from tests.celery.worker_identity import hostname

        db = source_connection_config({"type": "postgres", "conn_id": os.environ["DATIVO_CELERY_SOURCE_CONN_ID"]})
        schema = os.environ["DATIVO_CELERY_SOURCE_SCHEMA"]
        time.sleep(3)
        with psycopg.connect(host=db.host, port=db.port, user=db.user, dbname=db.database) as conn:
            conn.execute(f'INSERT INTO "{schema}".probe VALUES (%s, %s)', (part, hostname()))
        return hostname()

    record.expand(part=[0, 1, 2, 3])
