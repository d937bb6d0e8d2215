"""Google Drive → Iceberg: the CSV exports in a Drive folder, each file version loaded once.

### What it shows

Every run lists the folder and its subfolders, downloads only the files created or modified since
the last committed run (up to the data interval's end), and appends their rows to
`examples.drive_orders` in one commit. A rerun of the same interval writes nothing twice.

### What it needs

- the `google` extra (`pip install "dativo-airflow-provider[google]"`);
- a connection `google_cloud_default`: the official Google provider's type `google_cloud_platform`
  (extra `keyfile_dict` or `key_path`; with neither, the worker's Application Default Credentials,
  e.g. on Cloud Composer) or this provider's `dativo_google` (password: the service-account key
  JSON);
- the folder shared with the service account's e-mail address (Viewer is enough), and its id (the
  last part of its URL) in `FOLDER_ID` below.

### How to run it

`airflow dags test example_google_drive_to_iceberg`, or let the daily schedule run it. Runs do not
overlap (`max_active_runs=1`): the source is incremental. See docs/sources-google.md.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from dativo_provider.operators.ingest import IcebergIngestOperator

FOLDER_ID = "1DativoExampleDriveFolder"  # replace with your folder's id

with DAG(
    dag_id="example_google_drive_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "google"],
):
    IcebergIngestOperator(
        task_id="ingest_orders",
        source={
            "type": "google_drive",
            "conn_id": "google_cloud_default",
            "folder_id": FOLDER_ID,
            "recursive": True,
            "glob": "orders_*.csv",
            # Declared types keep the table's schema stable whatever the first file holds.
            "columns": {"order_id": "int64", "customer": "string", "amount": "decimal(10,2)",
                        "ordered_at": "timestamptz"},
            "bad_rows": "skip",
        },
        table="examples.drive_orders",
        write_options={"mode": "append"},
        upper_bound="{{ data_interval_end }}",
    )
