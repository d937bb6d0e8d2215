"""Data contracts on ingest: bad rows are quarantined, good rows published, nothing is lost.

### What it shows

The bundled sample orders (`orders_2024-0[1-3].csv`) plus `bad_orders_2024-04.csv`, ten late orders
of which four break `contracts/orders.odcs.yaml` (unknown currency or status, a missing customer),
are loaded with write-audit-publish: the run lands on an audit branch, the contract's checks run
there (Soda Core, Great Expectations), and main moves to a snapshot without the failing rows, which
go to `examples.contract_orders_quarantine` with the checks they failed.

`check_orders` then re-runs the whole contract on the published table, as a scheduled quality run
would. `release_orders` runs only when the run is triggered with `{"release": true}`: it re-checks
the quarantined rows with `release_contract` (fix the rule there first) and publishes those that pass.

### What it needs

The `quality` extra (`pip install "dativo-airflow-provider[quality]"`: Soda Core and Great
Expectations). No connection: without `iceberg_default` the tables land in the embedded catalog
under `$AIRFLOW_HOME/dativo`. The contracts are the examples installed with the package
(`dativo_provider/sample_data/contracts`); a relative contract path of yours is looked up next to
the DAG file first, then in the working directory.

### How to run it

`airflow dags test example_contract_quarantine` (the repository's `dev/demo` does it and prints
the quarantined rows); to release, trigger it with the conf
`{"release": true, "release_run_ids": "<the ingest run id>"}`. Runs do not overlap
(`max_active_runs=1`): the ingest is incremental, and a release must see the quarantine as the
last run left it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

import dativo_provider
from dativo_provider.operators.contracts import ContractCheckOperator, QuarantineReleaseOperator
from dativo_provider.operators.ingest import IcebergIngestOperator

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
ORDERS_CONTRACT = SAMPLE_DATA + "/contracts/orders.odcs.yaml"
CUSTOMERS_CONTRACT = SAMPLE_DATA + "/contracts/customers.odcs.yaml"

# Explicit column types, as the contracts declare them (inferred CSV types would break the schema check).
CUSTOMER_COLUMNS = {
    "customer_id": "int64",
    "email": "string",
    "first_name": "string",
    "last_name": "string",
    "country": "string",
    "signup_at": "timestamptz",
    "is_active": "bool",
    "marketing_opt_in": "bool",
    "birth_year": "int32",
}
ORDER_COLUMNS = {
    "order_id": "int64",
    "ordered_at": "timestamptz",
    "customer_id": "int64",
    "product_id": "int64",
    "quantity": "int32",
    "amount": "decimal(12,2)",
    "currency": "string",
    "status": "string",
}

with DAG(
    dag_id="example_contract_quarantine",
    schedule="@daily",
    start_date=datetime(2024, 4, 1),
    catchup=False,
    params={"release": False, "release_run_ids": "", "release_contract": ORDERS_CONTRACT},
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "contracts"],
):
    ingest_customers = IcebergIngestOperator(
        task_id="ingest_customers",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "customers.csv", "columns": CUSTOMER_COLUMNS},
        table="examples.contract_customers",
        write_options={"mode": "merge", "merge_keys": ["customer_id"]},
        contract=CUSTOMERS_CONTRACT,
    )

    ingest_orders = IcebergIngestOperator(
        task_id="ingest_orders",
        source={
            "type": "files",
            "path": SAMPLE_DATA,
            "glob": "*orders_2024-0*.csv",
            "columns": ORDER_COLUMNS,
        },
        table="examples.contract_orders",
        contract=ORDERS_CONTRACT,
        # Default quarantine table: examples.contract_orders_quarantine.
    )

    check_orders = ContractCheckOperator(
        task_id="check_orders",
        contract=ORDERS_CONTRACT,
        table="examples.contract_orders",
        # Freshness is measured at the end of the data interval, so reruns of old intervals agree.
        now="{{ data_interval_end }}",
    )

    @task.short_circuit
    def release_requested(params: dict | None = None) -> bool:
        """Go on to the release only when the run was triggered with {"release": true}."""
        return bool((params or {}).get("release"))

    release_orders = QuarantineReleaseOperator(
        task_id="release_orders",
        table="examples.contract_orders",
        contract="{{ params.release_contract }}",
        run_ids="{{ params.release_run_ids }}",
    )

    ingest_customers >> ingest_orders >> check_orders >> release_requested() >> release_orders
