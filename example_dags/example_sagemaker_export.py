"""SageMaker Feature Store hand-off: customer features computed over Iceberg, exported to a feature group.

### What it shows

- `ingest_orders` loads the sample orders into `examples.sm_orders`.
- `customer_features` computes, at every order, the customer's orders and spend in the 30 days up to
  it (a DuckDB window over the pinned snapshot) into `examples.sm_customer_features`: one row per
  customer and `feature_ts`.
- `export_features` writes each customer's newest row into the feature group `customer-features`:
  25 records per `BatchWriteRecord` call, unprocessed or throttled entries retried with backoff. It
  first records the group on the feature table (`dativo.serving.sagemaker.customer-features`), so a
  data-subject erasure deletes the subject's record there too. The task returns the export summary
  (snapshot id, records written, requests, retried records).

See [docs/sagemaker.md](docs/sagemaker.md) for the type mapping, retries and erasure.

### What it needs

The provider with its `ml` and `sagemaker` extras, an `aws_default` connection (the amazon
provider's `aws` type) with the feature group's region, and the feature group `customer-features`
with record identifier `customer_id` (Integral), event time `feature_ts` (String), `orders_30d`
(Integral) and `spend_30d` (Fractional). The tables land in the embedded SQLite catalog under
`$AIRFLOW_HOME/dativo` without an `iceberg_default` connection.

### How to run it

`airflow dags test example_sagemaker_export`, or trigger it in the UI. Runs do not overlap
(`max_active_runs=1`): the ingest reads files incrementally. The test suite runs it against a loopback
double of the Feature Store runtime (the connection's `endpoint_url` extra points at it).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

import dativo_provider
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.ml import FeatureTransformOperator
from dativo_provider.operators.sagemaker import FeatureStoreExportOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")

CUSTOMER_FEATURES_SQL = """
SELECT customer_id, ordered_at AS feature_ts,
       count(*) OVER last_30_days AS orders_30d,
       sum(amount) OVER last_30_days AS spend_30d
FROM orders
WHERE customer_id IS NOT NULL
WINDOW last_30_days AS (PARTITION BY customer_id ORDER BY ordered_at
                        RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW)
QUALIFY row_number() OVER (PARTITION BY customer_id, ordered_at ORDER BY order_id DESC) = 1
"""

with DAG(
    dag_id="example_sagemaker_export",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "ml", "sagemaker"],
):
    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_*.csv"},
        table="examples.sm_orders",
    )
    customer_features = FeatureTransformOperator(
        task_id="customer_features",
        inputs={"orders": "examples.sm_orders"},
        sql=CUSTOMER_FEATURES_SQL,
        table="examples.sm_customer_features",
        write_options={"mode": "replace"},
    )
    export_features = FeatureStoreExportOperator(
        task_id="export_features",
        feature_group_name="customer-features",
        features={"table": "examples.sm_customer_features", "entities": ["customer_id"],
                  "timestamp_column": "feature_ts", "features": ["orders_30d", "spend_30d"]},
        aws_conn_id="aws_default",
    )
    ingest_orders >> customer_features >> export_features
