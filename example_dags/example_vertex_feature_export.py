"""Vertex AI feature hand-off: a tagged Iceberg snapshot as Parquet, loaded into BigQuery, synced online.

### What it shows

- `ingest_orders` and `customer_features` build `examples.vertex_customer_features`: per customer, the
  number of paid or shipped orders, their total and the time of the last one (DuckDB SQL over the
  orders table at its current snapshot).
- `export_features` tags the feature table's snapshot `vertex-<date>` (a rerun keeps the tag, so it
  exports what the first run tagged) and streams that snapshot, not whatever is committed later, as
  Parquet files `part-00000.parquet` ... to `VERTEX_EXPORT_URI/<date>/`.
- With the Google provider installed and `VERTEX_EXPORT_URI` a `gs://` location, the Google provider's
  operators take over: `load_to_bigquery` (`GCSToBigQueryOperator`, Parquet, replacing the table
  `VERTEX_BIGQUERY_TABLE`) and `sync_feature_view` (`SyncFeatureViewOperator`) refresh the Vertex AI
  Feature Store (v2) view `VERTEX_FEATURE_VIEW` of the online store `VERTEX_ONLINE_STORE`, which serves
  from that table. Set `VERTEX_CREATE_FEATURE_VIEW=true` for the first run to create the view
  (`CreateFeatureViewOperator`, BigQuery source, entity `customer_id`).
- Without the Google provider (or without a `gs://` export location) the DAG stops after the export,
  which lands in a local folder: the DAG parses and its own tasks run anywhere.

See [docs/mlflow.md](docs/mlflow.md) for this hand-off and the MLflow one.

### What it needs

The provider with its `ml` extra (DuckDB); for the Google part `apache-airflow-providers-google`, a
`google_cloud_platform` connection `google_cloud_default` (or application-default credentials on
Composer) for BigQuery and Vertex AI, and the environment variables `VERTEX_EXPORT_URI`
(`gs://bucket/prefix`), `VERTEX_PROJECT`, `VERTEX_REGION`, `VERTEX_BIGQUERY_TABLE`
(`project.dataset.table`), `VERTEX_ONLINE_STORE` and `VERTEX_FEATURE_VIEW`. The export to `gs://` uses
Google application-default credentials (pyarrow's GCS file system). Without them it writes under
`$AIRFLOW_HOME/dativo/exports/vertex` (or `$DATIVO_HOME`).

### How to run it

`airflow dags test example_vertex_feature_export`, or trigger it in the UI. Runs do not overlap
(`max_active_runs=1`): the ingest reads files incrementally.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

import dativo_provider
from dativo_provider.operators.export import SnapshotExportOperator
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.ml import FeatureTransformOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
HOME = os.path.expanduser(os.environ.get("DATIVO_HOME")
                          or os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "dativo"))
EXPORT_URI = os.environ.get("VERTEX_EXPORT_URI") or os.path.join(HOME, "exports", "vertex")
PROJECT = os.environ.get("VERTEX_PROJECT", "my-project")
REGION = os.environ.get("VERTEX_REGION", "us-central1")
BIGQUERY_TABLE = os.environ.get("VERTEX_BIGQUERY_TABLE", f"{PROJECT}.features.customer_features")
ONLINE_STORE = os.environ.get("VERTEX_ONLINE_STORE", "customer_features_store")
FEATURE_VIEW = os.environ.get("VERTEX_FEATURE_VIEW", "customer_features")
CREATE_FEATURE_VIEW = os.environ.get("VERTEX_CREATE_FEATURE_VIEW", "").lower() == "true"

try:  # theirs: BigQuery load and Vertex AI Feature Store, only where the Google provider is installed
    from airflow.providers.google.cloud.operators.vertex_ai.feature_store import (
        CreateFeatureViewOperator,
        SyncFeatureViewOperator,
    )
    from airflow.providers.google.cloud.transfers.gcs_to_bigquery import GCSToBigQueryOperator

    GOOGLE_PROVIDER = True
except ImportError:
    GOOGLE_PROVIDER = False

FEATURES_SQL = """
SELECT customer_id, count(*) AS orders_total, CAST(sum(amount) AS DOUBLE) AS spend_total,
       max(ordered_at) AS feature_timestamp
FROM orders
WHERE status IN ('paid', 'shipped') AND customer_id IS NOT NULL
GROUP BY customer_id
"""

with DAG(
    dag_id="example_vertex_feature_export",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "ml", "vertex-ai"],
):
    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_*.csv"},
        table="examples.vertex_orders",
    )
    customer_features = FeatureTransformOperator(
        task_id="customer_features",
        inputs={"orders": "examples.vertex_orders"},
        sql=FEATURES_SQL,
        table="examples.vertex_customer_features",
    )
    export_features = SnapshotExportOperator(
        task_id="export_features",
        table="examples.vertex_customer_features",
        tag="vertex-{{ ds_nodash }}",
        destination=EXPORT_URI.rstrip("/") + "/{{ ds_nodash }}",
    )
    ingest_orders >> customer_features >> export_features

    if GOOGLE_PROVIDER and EXPORT_URI.startswith("gs://"):
        bucket, _, prefix = EXPORT_URI.removeprefix("gs://").partition("/")
        load_to_bigquery = GCSToBigQueryOperator(
            task_id="load_to_bigquery",
            bucket=bucket,
            source_objects=[f"{prefix.strip('/')}/{{{{ ds_nodash }}}}/part-*.parquet".lstrip("/")],
            destination_project_dataset_table=BIGQUERY_TABLE,
            source_format="PARQUET",
            write_disposition="WRITE_TRUNCATE",
        )
        sync_feature_view = SyncFeatureViewOperator(
            task_id="sync_feature_view",
            project_id=PROJECT,
            location=REGION,
            feature_online_store_id=ONLINE_STORE,
            feature_view_id=FEATURE_VIEW,
        )
        export_features >> load_to_bigquery
        if CREATE_FEATURE_VIEW:
            create_feature_view = CreateFeatureViewOperator(
                task_id="create_feature_view",
                project_id=PROJECT,
                location=REGION,
                feature_online_store_id=ONLINE_STORE,
                feature_view_id=FEATURE_VIEW,
                feature_view={"big_query_source": {"uri": f"bq://{BIGQUERY_TABLE}",
                                                   "entity_id_columns": ["customer_id"]}},
            )
            load_to_bigquery >> create_feature_view >> sync_feature_view
        else:
            load_to_bigquery >> sync_feature_view
