"""HubSpot → Iceberg: deals (with their associated companies) and contacts, merged on `id`.

### What it shows

Each daily run asks HubSpot's search API for the records modified up to the end of its data
interval, walking time windows so that no query passes the API's 10,000-result limit. An updated
deal comes back with the same `id` and replaces its earlier version; a rerun of the same day
writes nothing twice. Deals read every property by default; contacts only the ones listed.

### What it needs

A connection `hubspot_default` holding a private app's access token in its password field, e.g.
`AIRFLOW_CONN_HUBSPOT_DEFAULT='{"conn_type": "dativo_hubspot", "password": "pat-na1-..."}'`, or an OAuth
app's `client_id`, `client_secret` and `refresh_token` extras (see docs/sources-hubspot.md). Every
call goes to HubSpot's date-versioned API (`/crm/objects/2026-03/...`); an `api_version` extra
(`"2026-09"`) pins another release, and the version a run used is committed with its watermark.

### How to run it

`airflow dags test example_hubspot_to_iceberg`, or let the daily schedule run it. Runs do not
overlap (`max_active_runs=1`): the source is incremental. The test suite points the connection's
`base_url` extra at a loopback double of the HubSpot API.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from dativo_provider.operators.ingest import IcebergIngestOperator

HUBSPOT_CONN_ID = "hubspot_default"
MERGE_ON_ID = {"mode": "merge", "merge_keys": ["id"]}

with DAG(
    dag_id="example_hubspot_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "hubspot"],
):
    IcebergIngestOperator(
        task_id="ingest_deals",
        source={"type": "hubspot", "conn_id": HUBSPOT_CONN_ID, "object": "deals", "associations": ["companies"]},
        table="examples.hubspot_deals",
        write_options=MERGE_ON_ID,
        upper_bound="{{ data_interval_end }}",
    )

    IcebergIngestOperator(
        task_id="ingest_contacts",
        source={"type": "hubspot", "conn_id": HUBSPOT_CONN_ID, "object": "contacts",
                "properties": ["email", "firstname", "lastname"]},
        table="examples.hubspot_contacts",
        write_options=MERGE_ON_ID,
        upper_bound="{{ data_interval_end }}",
    )
