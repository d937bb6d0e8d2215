"""A reproducible training set: support tickets joined as of their time with the customer's last order.

### What it shows

- `ingest_orders` and `ingest_tickets` load the sample orders and support tickets into
  `examples.ts_orders` and `examples.ts_tickets`.
- `training_set` builds `ticket_topics`: each ticket (the label is its `subject`) gets the customer's
  newest order at or before the ticket's `created_at` -- never a later one -- and nothing when that
  order is more than 30 days old (the TTL). Both input snapshots are pinned as
  `dativo-training/ticket_topics/<run id>`, the rows replace `examples.ticket_topics_training`, and a
  manifest (tables, snapshot ids, pins, row count, content hash) is written; its path is the
  `manifest_path` XCom.
- `reproduce` rebuilds the set from the pinned snapshots, as `dativo training-set reproduce MANIFEST`
  does months later, and fails unless it holds the same rows.

See [docs/ml.md](docs/ml.md) for training sets, erasure and maintenance.

### What it needs

The provider with its `ml` extra (DuckDB). The sample files ship in the package, and without an
`iceberg_default` connection the tables land in the embedded SQLite catalog under `$AIRFLOW_HOME/dativo`
(or `$DATIVO_HOME`), where the manifests go too (`training/`).

### How to run it

`airflow dags test example_training_set`, or trigger it in the UI. Runs do not overlap
(`max_active_runs=1`): the ingests read files incrementally.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

import dativo_provider
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.ml import TrainingSetOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
HOME = os.environ.get("DATIVO_HOME") or os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "dativo")
MANIFESTS = os.path.join(os.path.expanduser(HOME), "training")


@task
def reproduce(manifest_path: str) -> dict:
    """Rebuild the training set from its pins; fail unless it is the same set."""
    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.ml.training_reproduce import reproduce_training_set

    result = reproduce_training_set(manifest_path, IcebergHook().get_catalog_config())
    if result.status != "identical":
        raise ValueError(result.message)
    return result.to_dict()


with DAG(
    dag_id="example_training_set",
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
        table="examples.ts_orders",
    )
    ingest_tickets = IcebergIngestOperator(
        task_id="ingest_tickets",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "support_tickets.csv"},
        table="examples.ts_tickets",
    )
    training_set = TrainingSetOperator(
        task_id="training_set",
        name="ticket_topics",
        labels={"table": "examples.ts_tickets", "keys": ["customer_id"], "timestamp_column": "created_at",
                "columns": ["ticket_id", "channel", "subject"]},
        features=[{"table": "examples.ts_orders", "entities": ["customer_id"],
                   "timestamp_column": "ordered_at", "features": ["amount", "quantity", "status"],
                   "ttl_days": 30}],
        output_table="examples.ticket_topics_training",
        manifest_path=MANIFESTS + "/ticket_topics/{{ ts_nodash }}.json",
    )
    [ingest_orders, ingest_tickets] >> training_set
    reproduce(training_set.output["manifest_path"])
