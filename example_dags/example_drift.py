"""Feature drift: a training set's tagged snapshot as the reference, a later snapshot as the current data.

### What it shows

- `training_data` loads January's sample orders into `examples.drift_orders`; `tag_training_set` tags
  that snapshot `training` (once: the tag then stays where the model's training data was).
- `new_data` appends February's and March's orders: a later snapshot of the same table.
- `drift` (`DriftCheckOperator`) tests `quantity`, `amount`, `currency` and `status` of the current
  snapshot against the `training` tag, with Evidently's default tests (700 reference rows, so
  p-value tests: KS for `amount`, chi-squared for the categories and the few-valued `quantity`;
  above 1,000 rows they would be distances), writes the HTML report and the JSON verdict under
  `$AIRFLOW_HOME/dativo/drift/` and returns the verdict (XCom).
- `on_drift="branch"`: the run follows `retrain` when the dataset drifted, `keep_serving` when not.

See [docs/drift.md](docs/drift.md) for the statistics, the defaults and the sensor.

### What it needs

The provider (numpy and scipy, which Airflow's own dependencies already bring, compute the statistics).
The sample files ship in the package, and without an `iceberg_default` connection the table lands in
the embedded SQLite catalog under `$AIRFLOW_HOME/dativo` (or `$DATIVO_HOME`).

### How to run it

`airflow dags test example_drift`, or trigger it in the UI. Runs do not overlap
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
from dativo_provider.operators.drift import DriftCheckOperator
from dativo_provider.operators.ingest import IcebergIngestOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
HOME = os.environ.get("DATIVO_HOME") or os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "dativo")
REPORTS = os.path.join(os.path.expanduser(HOME), "drift")
TABLE = "examples.drift_orders"


@task
def tag_training_set() -> str:
    """Tag the table's current snapshot ``training`` unless the tag exists; return the tagged id."""
    from dativo_provider.hooks.iceberg import IcebergHook

    table = IcebergHook().get_conn().load_table(TABLE)
    tagged = table.metadata.snapshot_by_name("training")
    if tagged is None:
        tagged = table.current_snapshot()
        table.manage_snapshots().create_tag(tagged.snapshot_id, "training").commit()
    return str(tagged.snapshot_id)


@task
def retrain(verdict: dict) -> str:
    """Stands for the retraining pipeline: here it only says which columns drifted."""
    return f"retrain: drift in {', '.join(verdict['drifted_columns'])}"


@task
def keep_serving() -> str:
    return "no drift: the model keeps serving"


with DAG(
    dag_id="example_drift",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "ml"],
):
    training_data = IcebergIngestOperator(
        task_id="training_data",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_2024-01.csv"},
        table=TABLE,
    )
    new_data = IcebergIngestOperator(
        task_id="new_data",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "orders_2024-0[23].csv"},
        table=TABLE,
    )
    drift = DriftCheckOperator(
        task_id="drift",
        table=TABLE,
        reference={"tag": "training"},
        columns=["quantity", "amount", "currency", "status"],
        on_drift="branch",
        drift_branch="retrain",
        no_drift_branch="keep_serving",
        report_path=os.path.join(REPORTS, "drift_orders_{{ ts_nodash }}.html"),
        json_path=os.path.join(REPORTS, "drift_orders_{{ ts_nodash }}.json"),
    )
    training_data >> tag_training_set() >> new_data >> drift
    drift >> [retrain(drift.output), keep_serving()]
