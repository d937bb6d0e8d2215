"""Feast online materialization: customer features computed over Iceberg, served from Feast's online store.

### What it shows

- `ingest_orders` loads the sample orders into `examples.feast_orders`.
- `customer_features` computes, at every order, the customer's orders and spend in the 30 days up to
  it and the days since the previous order (a DuckDB window over the pinned snapshot) into
  `examples.feast_customer_features`: the three features `customer_features.odcs.yaml` declares.
- `materialize_online` applies that contract's Feast entity and feature view to a registry (no feature
  repo: the store is configured in code), then writes each customer's newest feature row into a SQLite
  online store, in Feast's own serialization: `FeatureStore.get_online_features` serves them. It keeps
  the snapshot it wrote in the store, so the next run writes only the customers whose rows changed
  (and deletes customers that left the table); a rerun writes nothing. It records the store on the
  feature table, so a data-subject erasure removes the subject's features from it too. The task
  returns the run summary (mode, snapshot, rows read, entities written and deleted).

See [docs/feast.md](docs/feast.md) for the incremental rules, Redis and Postgres stores and the
figures against `feast materialize`.

### What it needs

The provider with its `ml` extra (Feast, DuckDB). The tables land in the embedded SQLite catalog under
`$AIRFLOW_HOME/dativo` (or `$DATIVO_HOME`) without an `iceberg_default` connection; the Feast registry
and the SQLite online store go to `feast/` there. For Redis or Postgres, replace `online_store_path`
with `online_store_conn_id` naming a `redis` or `postgres` connection.

### How to run it

`airflow dags test example_feast_materialize`, or trigger it in the UI. Runs do not overlap
(`max_active_runs=1`): the ingest reads files incrementally and the online store keeps one position.
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
from dativo_provider.operators.ml import FeatureTransformOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
FEATURES_CONTRACT = SAMPLE_DATA + "/contracts/customer_features.odcs.yaml"
HOME = os.path.expanduser(os.environ.get("DATIVO_HOME")
                          or os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "dativo"))

# Per order, as of its own time: the customer's orders in the 30 days up to it, their spend, and the
# days since the previous order (the feature contract's three features).
FEATURES_SQL = f"""
SELECT customer_id, ordered_at AS feature_ts, orders_30d, CAST(coalesce(spend_30d, 0) AS DOUBLE) AS spend_30d,
       date_diff('day', lag(ordered_at) OVER (PARTITION BY customer_id ORDER BY ordered_at), ordered_at)
           AS days_since_last_order
FROM ({trailing_window_sql("orders", partition_by=["customer_id"], order_by="ordered_at", window="30 days",
                           features={"orders_30d": "count(*)", "spend_30d": "sum(amount)"})})
"""

with DAG(
    dag_id="example_feast_materialize",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "ml", "feast"],
):
    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_*.csv"},
        table="examples.feast_orders",
        transform="SELECT order_id, ordered_at, customer_id, amount FROM batch WHERE customer_id IS NOT NULL",
    )
    customer_features = FeatureTransformOperator(
        task_id="customer_features",
        inputs={"orders": "examples.feast_orders"},
        sql=FEATURES_SQL,
        table="examples.feast_customer_features",
    )
    materialize_online = FeastMaterializeOperator(
        task_id="materialize_online",
        table="examples.feast_customer_features",
        contract=FEATURES_CONTRACT,
        project="shop",
        registry=HOME + "/feast/registry.db",
        online_store_path=HOME + "/feast/online.db",
    )

    ingest_orders >> customer_features >> materialize_online
