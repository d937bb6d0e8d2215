"""Run the example DAGs once with dag.test() and report what landed in Iceberg.

1. example_files_to_iceberg: the bundled sample files into four tables.
2. example_contract_quarantine: the same orders plus ten late ones, loaded under
   contracts/orders.odcs.yaml: the four rows that break the contract are held back in a quarantine
   table with the checks they failed, the rest is published.

Called by ``dev/demo``, which sets AIRFLOW_HOME and the DAGs folder and migrates the metadata DB.
Airflow's own task log goes to the file named by the first argument; stdout gets the report.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TextIO

DAG_IDS = ("example_files_to_iceberg", "example_contract_quarantine")
TABLES = ("examples.customers", "examples.orders", "examples.events", "examples.products")
CONTRACT_TABLE = "examples.contract_orders"


def run_dag(dag_id: str, log: TextIO) -> str:
    """Run the DAG, Airflow's output into ``log`` (kept open: Airflow's loggers hold on to it)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models import DagBag

    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, force=True)
        bag = DagBag()
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        dag_run = bag.get_dag(dag_id).test()
    return str(dag_run.state)


def report() -> None:
    """Per table: rows, the current snapshot and what its commit added."""
    from dativo_provider.hooks.iceberg import IcebergHook

    catalog = IcebergHook().get_conn()
    print(f"{'table':<22}{'rows':>8}  {'snapshot':<20}{'last commit added rows / files':>32}")
    for name in TABLES:
        table = catalog.load_table(name)
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot else {}
        rows = table.scan().to_arrow().num_rows
        print(
            f"{name:<22}{rows:>8}  {snapshot.snapshot_id if snapshot else '-':<20}"
            f"{summary.get('added-records', '0'):>25} / {summary.get('added-data-files', '0')}"
        )
    properties = IcebergHook().get_catalog_config().properties
    print(f"catalog {properties['uri']}, warehouse {properties['warehouse']}")


def report_contract() -> None:
    """What the contract let through and what it held back, and why."""
    import pyarrow.compute as pc

    from dativo_provider.hooks.iceberg import IcebergHook

    catalog = IcebergHook().get_conn()
    published = catalog.load_table(CONTRACT_TABLE).scan().to_arrow()
    held = catalog.load_table(f"{CONTRACT_TABLE}_quarantine").scan().to_arrow()
    print(f"contracts/orders.odcs.yaml on {CONTRACT_TABLE}: {published.num_rows} rows published, "
          f"{held.num_rows} held back in {CONTRACT_TABLE}_quarantine:")
    for row in held.sort_by("order_id").to_pylist():
        print(f"  order {row['order_id']} (currency {row['currency']}, status {row['status']}, customer "
              f"{row['customer_id']}): {row['_dativo_reason']}")
    late = pc.sum(pc.greater_equal(published["order_id"], 2024040000)).as_py()
    print(f"  of the 10 late orders {late} were published; release with `airflow dags trigger "
          f"example_contract_quarantine -c '{{\"release\": true}}'` after fixing the rule")


def main() -> int:
    with open(sys.argv[1], "w") as log:
        for dag_id in DAG_IDS:
            started = time.monotonic()
            state = run_dag(dag_id, log)
            print(f"{dag_id}: {state} in {time.monotonic() - started:.1f}s", flush=True)
            if state != "success":
                print(f"see {sys.argv[1]}")
                return 1
    report()
    report_contract()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
