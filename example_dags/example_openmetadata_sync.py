"""Iceberg → OpenMetadata: the customers table, its contract's governance, and its quality history.

### What it shows

- `ingest_customers` loads the sample `customers.csv` into `examples.customers`;
- `check_customers` runs the customers contract on it (`fail_on="never"`: the run reports, it does
  not block);
- `sync_openmetadata` registers the table in OpenMetadata under the `dativo_iceberg` database
  service: columns and types, the primary key and not-null constraints, PII tags from each column's
  classification, the team as owner, the `sales` domain, a Tier tag and the 7-year retention, and
  the contract's rules as test cases. A second run with nothing changed writes nothing;
- `post_quality_results` posts the check's results on those test cases (`trigger_rule="all_done"`,
  so a failing check is posted too), one result per rule and run: the table's quality tab keeps
  the history.

### What it needs

- a `dativo_openmetadata` connection `openmetadata_default`: the server URL as host, an ingestion
  bot's JWT as password (see docs/lineage.md);
- in OpenMetadata, the contract's team (`customer-data`) and domain (`sales`);
- the `iceberg_default` catalog (the embedded one without it).

### How to run it

`airflow dags test example_openmetadata_sync` once the connection exists. The repository's tests
run it against a loopback OpenMetadata double. Runs do not overlap (`max_active_runs=1`): two
syncs of one table would both create it, and one would find it taken.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

import dativo_provider
from dativo_provider.operators.contracts import ContractCheckOperator
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.openmetadata import (
    OpenMetadataQualityResultsOperator,
    OpenMetadataSyncOperator,
)

SAMPLE_DATA = str(Path(dativo_provider.__file__).parent / "sample_data")
CUSTOMERS_CONTRACT = SAMPLE_DATA + "/contracts/customers.odcs.yaml"
# The contract's column types (inferred CSV types would not match its schema check).
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

with DAG(
    dag_id="example_openmetadata_sync",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "openmetadata"],
):
    ingest_customers = IcebergIngestOperator(
        task_id="ingest_customers",
        source={"type": "files", "path": SAMPLE_DATA, "glob": "customers.csv", "columns": CUSTOMER_COLUMNS},
        table="examples.customers",
        write_options={"mode": "merge", "merge_keys": ["customer_id"]},
    )

    check_customers = ContractCheckOperator(
        task_id="check_customers",
        contract=CUSTOMERS_CONTRACT,
        table="examples.customers",
        fail_on="never",
    )

    sync_openmetadata = OpenMetadataSyncOperator(
        task_id="sync_openmetadata",
        tables=["examples.customers"],
        contracts=[CUSTOMERS_CONTRACT],
        tier="Tier.Tier2",
    )

    post_quality_results = OpenMetadataQualityResultsOperator(
        task_id="post_quality_results",
        contract=CUSTOMERS_CONTRACT,
        table="examples.customers",
        check_task_id="check_customers",
        trigger_rule="all_done",
    )

    ingest_customers >> check_customers >> sync_openmetadata >> post_quality_results
