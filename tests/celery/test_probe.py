from __future__ import annotations

import pytest

pytestmark = pytest.mark.airflow


def test_probe(celery_airflow, celery_services, source_schema):
    with celery_services.connect() as conn:
        conn.execute(f'CREATE TABLE "{source_schema}".probe (part int, worker text)')
    run_id = celery_airflow.trigger("celery_probe")
    assert celery_airflow.wait_for_run("celery_probe", run_id, 180) == "success"
    tries = celery_airflow.task_tries("celery_probe", run_id)
    print(tries)
    with celery_services.connect() as conn:
        rows = conn.execute(f'SELECT part, worker FROM "{source_schema}".probe ORDER BY part').fetchall()
    print(rows)
    assert {t.hostname for t in tries} == {"worker-a", "worker-b"}
