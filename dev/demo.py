"""Run example_files_to_iceberg once with dag.test() and report what landed in Iceberg.

Called by ``dev/demo``, which sets AIRFLOW_HOME and the DAGs folder and migrates the metadata DB.
Airflow's own task log goes to the file named by the first argument; stdout gets the report.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

DAG_ID = "example_files_to_iceberg"
TABLES = ("examples.customers", "examples.orders", "examples.events", "examples.products")


def run_dag(log_path: str) -> str:
    """Run the DAG, Airflow's output into ``log_path``; return the run's state."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models import DagBag

    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, force=True)
        bag = DagBag()
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        dag_run = bag.get_dag(DAG_ID).test()
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


def main() -> int:
    started = time.monotonic()
    state = run_dag(sys.argv[1])
    print(f"{DAG_ID}: {state} in {time.monotonic() - started:.1f}s")
    if state != "success":
        print(f"see {sys.argv[1]}")
        return 1
    report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
