"""A one-task DAG purging a quarantine table (no example DAG purges): OpenLineage events of the purge.

Run by ``tests/airflow/test_openlineage_events.py`` with this folder as the DAG folder; the table comes
from ``DATIVO_TEST_QUARANTINE``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from dativo_provider.operators.contracts import QuarantinePurgeOperator

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow import DAG

with DAG("lineage_purge", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)):
    QuarantinePurgeOperator(
        task_id="purge",
        quarantine_table=os.environ.get("DATIVO_TEST_QUARANTINE", "x.y"),
        quarantined_before="2099-01-01T00:00:00+00:00",
    )
