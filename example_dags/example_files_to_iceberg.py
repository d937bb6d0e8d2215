"""Files → Iceberg with no setup: the bundled sample data into the embedded catalog.

### What it shows

- `ingest_customers` merges `customers.csv` into `examples.customers` on `customer_id`;
- `ingest_table` fans out with dynamic task mapping, one mapped task per table (`examples.orders`,
  `examples.events`, `examples.products`), each streaming its CSV, JSON Lines or Parquet files into
  one atomic commit.

Files are read incrementally: each file version is read once, so a rerun writes nothing twice and a
new file is picked up by the next run.

### What it needs

Nothing beyond the provider: the sample files ship in the package (`dativo_provider/sample_data`),
and without an `iceberg_default` connection the tables land in the embedded SQLite catalog with a
local warehouse under `$AIRFLOW_HOME/dativo`.

### How to run it

`airflow dags test example_files_to_iceberg` (the repository's `dev/demo` does it for you), or
trigger it in the UI. Runs do not overlap (`max_active_runs=1`): two runs of one incremental source
would race for the same files.
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

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")


def files(glob: str) -> dict[str, str]:
    """A files source over the sample data."""
    return {"type": "files", "path": SAMPLE_DATA, "glob": glob}


with DAG(
    dag_id="example_files_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example"],
):
    ingest_customers = IcebergIngestOperator(
        task_id="ingest_customers",
        source=files("customers.csv"),
        table="examples.customers",
        write_options={"mode": "merge", "merge_keys": ["customer_id"]},
    )

    ingest_tables = IcebergIngestOperator.partial(
        task_id="ingest_table",
        write_options={"mode": "append"},
    ).expand_kwargs(
        [
            {"source": files("orders_*.csv"), "table": "examples.orders"},
            {"source": files("events.jsonl"), "table": "examples.events"},
            {"source": files("products.parquet"), "table": "examples.products"},
        ]
    )

    ingest_customers >> ingest_tables
