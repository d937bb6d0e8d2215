"""Google Sheets → Iceberg: one sheet, typed from its header row, refreshed in full every run.

### What it shows

A sheet has no change cursor, so each run reads it whole and replaces the rows of
`examples.sheet_stock` in one commit (readers never see a half-written table). Column types come
from the values and the cells' number formats; the hint below pins `unit_price` to a decimal.
Merged cells are filled from their top-left cell.

### What it needs

- the `google` extra (`pip install "dativo-airflow-provider[google]"`);
- a connection `google_cloud_default` (`google_cloud_platform` with a service-account key, or
  `dativo_google` with the key JSON as password);
- the spreadsheet shared with the service account's e-mail address, and its id (from its URL) in
  `SPREADSHEET_ID` below.

### How to run it

`airflow dags test example_google_sheets_to_iceberg`, or let the daily schedule run it. Runs do
not overlap (`max_active_runs=1`): two full refreshes at once would only race for the same commit.
See docs/sources-google.md.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from dativo_provider.operators.ingest import IcebergIngestOperator

SPREADSHEET_ID = "1DativoExampleSpreadsheet"  # replace with your spreadsheet's id

with DAG(
    dag_id="example_google_sheets_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "google"],
):
    IcebergIngestOperator(
        task_id="ingest_stock",
        source={
            "type": "google_sheets",
            "conn_id": "google_cloud_default",
            "spreadsheet_id": SPREADSHEET_ID,
            "range": "Stock!A1:F",
            "columns": {"unit_price": "decimal(10,2)"},
        },
        table="examples.sheet_stock",
        write_options={"mode": "replace"},
    )
