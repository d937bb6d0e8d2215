"""Run example DAGs with ``dag.test()`` and read back what they wrote, on Airflow 2.11 and 3.x."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow.conftest import EXAMPLE_DAGS


def dagbag() -> Any:
    """The example DAGs, parsed as the scheduler parses them."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models import DagBag
    return DagBag(dag_folder=str(EXAMPLE_DAGS))


def run_dag(dag_id: str, logical_date: datetime) -> Any:
    """One ``dag.test()`` run; fails the test with each failed task's id if the run did not succeed."""
    dag = dagbag().get_dag(dag_id)
    if AIRFLOW_V_3_0_PLUS:
        dag_run = dag.test(logical_date=logical_date)
    else:
        # Clearing an earlier run touches dag_run_note, whose foreign key needs FAB's ab_user table.
        import airflow.providers.fab.auth_manager.models  # noqa: F401

        dag_run = dag.test(execution_date=logical_date)
    failed = [ti.task_id for ti in dag_run.get_task_instances() if ti.state != "success"]
    assert dag_run.state == "success" and not failed, f"{dag_id} run {dag_run.run_id}: failed tasks {failed}"
    return dag_run


def return_values(dag_run: Any, task_id: str) -> list[Any]:
    """The XCom return values ``task_id`` pushed in ``dag_run``, ordered by map index."""
    map_indexes = sorted(ti.map_index for ti in dag_run.get_task_instances() if ti.task_id == task_id)
    where = {"run_id": dag_run.run_id, "dag_id": dag_run.dag_id, "task_id": task_id, "key": "return_value"}
    if not AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XCom

        return [XCom.get_one(map_index=index, **where) for index in map_indexes]
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=where["run_id"], dag_ids=where["dag_id"], task_ids=task_id, key="return_value"
        )
        rows = {row.map_index: XComModel.deserialize_value(row) for row in session.scalars(query)}
    return [rows[index] for index in map_indexes]


def read_table(table: str, iceberg_conn_id: str = "iceberg_default") -> Any:
    """The whole Iceberg table as a pyarrow Table, through the same hook the operator uses."""
    from dativo_provider.hooks.iceberg import IcebergHook

    return IcebergHook(iceberg_conn_id).get_conn().load_table(table).scan().to_arrow()


def rows_by(table: Any, key: str) -> dict[Any, dict[str, Any]]:
    """Rows of a pyarrow Table keyed by one column."""
    return {row[key]: row for row in table.to_pylist()}


def openlineage_complete(job_name: str) -> dict[str, Any]:
    """The last COMPLETE event the OpenLineage listener wrote for ``job_name`` (file transport)."""
    import json

    from tests.airflow.conftest import AIRFLOW_HOME

    lines = (AIRFLOW_HOME / "openlineage.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job_name]
    assert complete, f"no OpenLineage COMPLETE event for {job_name}"
    return complete[-1]
