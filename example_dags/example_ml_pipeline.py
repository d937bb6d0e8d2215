"""An ML feature pipeline end to end: contract, ingest with a transform, features, training set, Feast,
MLflow.

### What it shows

- `ingest_tickets` loads the sample support tickets (the labels: each ticket's `subject`) into
  `examples.mlp_tickets` under their contract (`contracts/support_tickets.odcs.yaml`): write-audit-publish,
  bad rows quarantined, and the table records the contract so a data-subject erasure reaches every copy.
- `ingest_orders` streams the sample orders into `examples.mlp_orders` with a transform on the way
  (DuckDB SQL over each batch: paid and shipped orders only).
- `customer_features` computes, as of each order, the customer's orders and spend in the 30 days
  before it and the days since the previous order (`examples.mlp_customer_features`, point in time).
- `training_set` joins each ticket with the customer's features as of the ticket's time, as the
  feature contract (`contracts/customer_features.odcs.yaml`, `dativoFeatures`) defines them: entities,
  timestamp, features, a 2-day TTL. Inputs are pinned, rows go to `examples.mlp_ticket_training`, the
  manifest to `training/ticket_topics_pipeline/`.
- `materialize_online` (`FeastMaterializeOperator`) writes each customer's newest feature values into a
  Feast SQLite online store (project `shop`, registry and store under `feast/`), applying the feature
  view the contract defines first, so `FeatureStore.get_online_features` serves what the model was
  trained on ([docs/feast.md](docs/feast.md)); later runs write only the customers that changed.
- `log_to_mlflow` logs the training set as the input of a new MLflow run in the experiment
  `example_ml_pipeline`: `mlflow.data.get_source(run.inputs.dataset_inputs[0]).load()` reads exactly
  these rows later, whatever is committed meanwhile ([docs/mlflow.md](docs/mlflow.md)).

See [docs/ml.md](docs/ml.md) for transforms and training sets.

### What it needs

The provider with its `ml` extra (DuckDB, Feast, mlflow-skinny). The sample files and contracts ship in the
package, and without an `iceberg_default` connection the tables land in the embedded SQLite catalog
under `$AIRFLOW_HOME/dativo` (or `$DATIVO_HOME`). MLflow: the tracking server in `MLFLOW_TRACKING_URI`,
else a local file store under that folder (`mlruns/`), which MLflow 3.18 opens only with
`MLFLOW_ALLOW_FILE_STORE=true` in the worker's environment.

### How to run it

`MLFLOW_ALLOW_FILE_STORE=true airflow dags test example_ml_pipeline` (or with `MLFLOW_TRACKING_URI`
set), or trigger it in the UI. Runs do not overlap (`max_active_runs=1`): the ingests read files
incrementally.
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
from dativo_provider.ml.windows import trailing_window_sql
from dativo_provider.operators.feast import FeastMaterializeOperator
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.ml import FeatureTransformOperator, TrainingSetOperator
from dativo_provider.operators.mlflow import MlflowLogTrainingSetOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
TICKETS_CONTRACT = SAMPLE_DATA + "/contracts/support_tickets.odcs.yaml"
FEATURES_CONTRACT = SAMPLE_DATA + "/contracts/customer_features.odcs.yaml"
HOME = os.path.expanduser(os.environ.get("DATIVO_HOME")
                          or os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "dativo"))
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or Path(HOME, "mlruns").absolute().as_uri()

# The contract's column types (inferred CSV types would fail its schema check).
TICKET_COLUMNS = {"ticket_id": "int64", "customer_id": "int64", "email": "string", "subject": "string",
                  "channel": "string", "created_at": "timestamptz"}

# Per order, as of its own time: the customer's earlier orders in 30 days, their spend, and the days
# since the previous order (the feature contract's three features).
FEATURES_SQL = f"""
SELECT customer_id, ordered_at AS feature_ts, orders_30d, CAST(coalesce(spend_30d, 0) AS DOUBLE) AS spend_30d,
       date_diff('day', lag(ordered_at) OVER (PARTITION BY customer_id ORDER BY ordered_at), ordered_at)
           AS days_since_last_order
FROM ({trailing_window_sql("orders", partition_by=["customer_id"], order_by="ordered_at", window="30 days",
                           features={"orders_30d": "count(*)", "spend_30d": "sum(amount)"})})
"""

with DAG(
    dag_id="example_ml_pipeline",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "ml"],
):
    ingest_tickets = IcebergIngestOperator(
        task_id="ingest_tickets",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "support_tickets.csv",
                "columns": TICKET_COLUMNS},
        table="examples.mlp_tickets",
        contract=TICKETS_CONTRACT,
    )
    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_*.csv"},
        table="examples.mlp_orders",
        transform={
            "name": "paid_orders",
            "steps": ["SELECT order_id, ordered_at, customer_id, amount FROM batch "
                      "WHERE status IN ('paid', 'shipped') AND customer_id IS NOT NULL"],
        },
    )
    customer_features = FeatureTransformOperator(
        task_id="customer_features",
        inputs={"orders": "examples.mlp_orders"},
        sql=FEATURES_SQL,
        table="examples.mlp_customer_features",
    )
    training_set = TrainingSetOperator(
        task_id="training_set",
        name="ticket_topics_pipeline",
        labels={"table": "examples.mlp_tickets", "keys": ["customer_id"], "timestamp_column": "created_at",
                "columns": ["ticket_id", "channel", "subject"]},
        features=[{"contract": FEATURES_CONTRACT, "table": "examples.mlp_customer_features"}],
        output_table="examples.mlp_ticket_training",
        manifest_path=HOME + "/training/ticket_topics_pipeline/{{ ts_nodash }}.json",
    )
    materialize_online = FeastMaterializeOperator(
        task_id="materialize_online",
        table="examples.mlp_customer_features",
        contract=FEATURES_CONTRACT,
        project="shop",
        registry=HOME + "/feast/pipeline_registry.db",
        online_store_path=HOME + "/feast/pipeline_online.db",
    )
    log_to_mlflow = MlflowLogTrainingSetOperator(
        task_id="log_to_mlflow",
        manifest_path=training_set.output["manifest_path"],
        experiment_name="example_ml_pipeline",
        tracking_uri=MLFLOW_TRACKING_URI,
    )

    ingest_orders >> customer_features >> materialize_online
    [ingest_tickets, customer_features] >> training_set >> log_to_mlflow
