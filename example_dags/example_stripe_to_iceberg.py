"""Stripe → Iceberg: charges and customers, incrementally by `created`, merged on `id`.

### What it shows

Each daily run reads the objects created up to the end of its data interval. Charges are re-read
one hour behind the watermark (`lookback`) so that a charge captured or refunded shortly after it
was created lands with its final state; the merge on `id` replaces the earlier version, and a
rerun of the same day writes nothing twice.

### What it needs

A connection `stripe_default` holding the secret key in its password field, e.g.
`AIRFLOW_CONN_STRIPE_DEFAULT='{"conn_type": "dativo_stripe", "password": "rk_live_..."}'` (a restricted
key with read access is enough; see docs/sources-stripe.md).

### How to run it

`airflow dags test example_stripe_to_iceberg`, or let the daily schedule run it. Runs do not
overlap (`max_active_runs=1`): the source is incremental. The test suite points the connection's
`base_url` extra at a loopback double of the Stripe API.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from dativo_provider.operators.ingest import IcebergIngestOperator

STRIPE_CONN_ID = "stripe_default"

with DAG(
    dag_id="example_stripe_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "stripe"],
):
    IcebergIngestOperator(
        task_id="ingest_charges",
        source={"type": "stripe", "conn_id": STRIPE_CONN_ID, "object": "charges", "lookback": "1h"},
        table="examples.stripe_charges",
        write_options={"mode": "merge", "merge_keys": ["id"], "partition_by": ["day(created)"]},
        upper_bound="{{ data_interval_end }}",
    )

    IcebergIngestOperator(
        task_id="ingest_customers",
        source={"type": "stripe", "conn_id": STRIPE_CONN_ID, "object": "customers"},
        table="examples.stripe_customers",
        write_options={"mode": "append"},
        upper_bound="{{ data_interval_end }}",
    )
