"""Feature transforms: a transform on ingest, then point-in-time window features over a snapshot.

### What it shows

- `ingest_orders` streams the sample orders into `examples.ml_orders` with a transform on the way:
  DuckDB SQL over each batch (the relation `batch`) keeps paid and shipped orders and adds a `gross`
  column; the run summary reports the rows the transform dropped (`rows_dropped`).
- `order_features` reads `examples.ml_orders` at its current snapshot and computes, for every order,
  the customer's orders and spend in the 30 days before it (a DuckDB window over time, as of each
  order's own timestamp), writing `examples.order_features` through the same commit path (mode
  `replace`). The commit records the snapshot id it read; a rerun on an unchanged input commits
  nothing.

See [docs/ml.md](docs/ml.md) for transforms and window features.

### What it needs

The provider with its `ml` extra (DuckDB). The sample files ship in the package, and without an
`iceberg_default` connection the tables land in the embedded SQLite catalog under `$AIRFLOW_HOME/dativo`.

### How to run it

`airflow dags test example_feature_transform`, or trigger it in the UI. Runs do not overlap
(`max_active_runs=1`): the ingest reads files incrementally.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

import dativo_provider
from dativo_provider.ml.windows import trailing_window_sql
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.ml import FeatureTransformOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")

with DAG(
    dag_id="example_feature_transform",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "ml"],
):
    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_*.csv"},
        table="examples.ml_orders",
        transform={
            "name": "paid_orders",
            "steps": [
                "SELECT order_id, ordered_at, customer_id, amount, quantity, amount * quantity AS gross "
                "FROM batch WHERE status IN ('paid', 'shipped') AND customer_id IS NOT NULL"
            ],
        },
    )

    order_features = FeatureTransformOperator(
        task_id="order_features",
        inputs={"orders": "examples.ml_orders"},
        sql=trailing_window_sql(
            "orders",
            partition_by=["customer_id"],
            order_by="ordered_at",
            window="30 days",
            features={"orders_30d": "count(*)", "gross_30d": "sum(gross)"},
        ),
        table="examples.order_features",
        write_options={"mode": "replace"},
    )

    ingest_orders >> order_features
