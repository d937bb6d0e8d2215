"""Stripe → Iceberg: charges and customers with their updates and deletions, merged on `id`.

### What it shows

The first run lists every charge and customer created up to the end of its data interval. Each
later run reads Stripe's events of that interval (the source's default `incremental: "events"` for
objects that change): a charge refunded a week after it was loaded, a customer whose email changed,
a customer deleted (kept with `deleted` true) — each changed object once, in its latest state; the
merge on `id` replaces the earlier row, and a rerun of the same day writes nothing twice. Stripe keeps
events 30 days: a DAG paused longer fails with the gap named (see docs/sources-stripe.md for the
one-off `full_refresh`).

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
        source={"type": "stripe", "conn_id": STRIPE_CONN_ID, "object": "charges"},
        table="examples.stripe_charges",
        write_options={"mode": "merge", "merge_keys": ["id"], "partition_by": ["day(created)"]},
        upper_bound="{{ data_interval_end }}",
    )

    IcebergIngestOperator(
        task_id="ingest_customers",
        source={"type": "stripe", "conn_id": STRIPE_CONN_ID, "object": "customers"},
        table="examples.stripe_customers",
        write_options={"mode": "merge", "merge_keys": ["id"]},
        upper_bound="{{ data_interval_end }}",
    )
