"""DriftCheckOperator and DriftSensor on the embedded catalog: fail, warn and branch on drift, the HTML
report and the notifier; the sensor's reschedule path (poke, reschedule, check) and its deferrable path
(the trigger run in an event loop until a commit lands, then the check in the worker)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, AirflowFailException
from dativo_provider.operators.drift import DriftCheckOperator
from dativo_provider.sensors.drift import DriftSensor
from dativo_provider.triggers.drift import DriftSnapshotTrigger
from tests.airflow.helpers import dagbag, return_values

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred
else:
    from airflow.exceptions import AirflowRescheduleException, TaskDeferred

pytestmark = pytest.mark.airflow


def tables():
    from dativo_provider.hooks.iceberg import IcebergHook

    return IcebergHook("iceberg_default").get_catalog_config().load()


def rows(seed: int, shift: float = 0.0, n: int = 2_000) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"amount": rng.normal(shift, 1, n), "segment": pa.array(rng.choice(["a", "b"], n)),
                     "event_ts": pa.array([dt.datetime(2024, 1, 1)] * n, pa.timestamp("us"))})


def training_table(name: str = "ml.features") -> int:
    """A table whose first snapshot is tagged ``training``; returns that snapshot's id."""
    catalog = tables()
    if "ml" not in [n[0] for n in catalog.list_namespaces()]:
        catalog.create_namespace("ml")
    table = catalog.create_table(name, schema=rows(0).schema)
    table.append(rows(1))
    snapshot = catalog.load_table(name).current_snapshot().snapshot_id
    catalog.load_table(name).manage_snapshots().create_tag(snapshot, "training").commit()
    return snapshot


def append(shift: float, seed: int = 2, name: str = "ml.features") -> int:
    table = tables().load_table(name)
    table.append(rows(seed, shift))
    return tables().load_table(name).current_snapshot().snapshot_id


def test_the_check_fails_on_drift_with_the_verdict_and_writes_the_report(iceberg_default, tmp_path):
    training_table()
    append(shift=1.0)
    calls = []
    check = DriftCheckOperator(task_id="drift", table="ml.features", reference={"tag": "training"},
                               report_path=str(tmp_path / "drift.html"), json_path=str(tmp_path / "drift.json"),
                               notifier=lambda context: calls.append(context["drift"]))
    with pytest.raises(AirflowFailException, match=r"DRIFT: 1/2 columns drifted \(50%.*: amount; report: "):
        check.execute({})
    page = (tmp_path / "drift.html").read_text()
    assert "Dataset drift" in page and "amount" in page and len(page) < 100_000
    assert calls and calls[0]["drifted_columns"] == ["amount"]
    assert calls[0]["reference"]["ref"] == "training"


def test_warn_returns_the_verdict_and_no_drift_notifies_nobody(iceberg_default):
    training_table()
    append(shift=1.0)
    result = DriftCheckOperator(task_id="drift", table="ml.features", reference={"tag": "training"},
                                on_drift="warn", columns=["amount"]).execute({})
    assert result["dataset_drift"] and result["columns"][0]["stattest"] == "wasserstein"
    calls = []
    quiet = DriftCheckOperator(task_id="quiet", table="ml.features", reference={"tag": "training"},
                               current={"tag": "training"}, notifier=calls.append).execute({})
    assert not quiet["dataset_drift"] and calls == []


def test_bad_parameters_are_refused_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="on_drift='stop'"):
        DriftCheckOperator(task_id="x", table="a.b", reference={"tag": "t"}, on_drift="stop")
    with pytest.raises(ValueError, match="needs drift_branch and no_drift_branch"):
        DriftCheckOperator(task_id="x", table="a.b", reference={"tag": "t"}, on_drift="branch")


def test_the_example_dag_branches_on_the_verdict_and_writes_the_report(iceberg_default, airflow_db):
    """example_drift: the training tag is January's orders, the current snapshot adds February and
    March; the run follows exactly one branch, the one the verdict names."""
    dag = dagbag().get_dag("example_drift")
    if AIRFLOW_V_3_0_PLUS:
        run = dag.test(logical_date=dt.datetime(2024, 1, 5, 12, tzinfo=dt.UTC))
    else:
        import airflow.providers.fab.auth_manager.models  # noqa: F401  (dag.test clears dag_run_note)

        run = dag.test(execution_date=dt.datetime(2024, 1, 5, 12, tzinfo=dt.UTC))
    verdict = return_values(run, "drift")[0]
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    followed, skipped = ("retrain", "keep_serving") if verdict["dataset_drift"] else ("keep_serving", "retrain")
    assert (states[followed], states[skipped]) == ("success", "skipped")
    assert {k: v for k, v in states.items() if k not in (followed, skipped)} == dict.fromkeys(
        ["training_data", "tag_training_set", "new_data", "drift"], "success")
    assert [c["column"] for c in verdict["columns"]] == ["quantity", "amount", "currency", "status"]
    assert verdict["reference"]["ref"] == "training"
    assert [c["reference_rows"] for c in verdict["columns"]] == [700] * 4
    assert [c["current_rows"] + c["current_nulls"] for c in verdict["columns"]] == [2100] * 4
    # 700 reference rows (<= 1,000): p-value tests, as Evidently picks them.
    assert [c["stattest"] for c in verdict["columns"]] == ["chisquare", "ks", "chisquare", "chisquare"]
    print("example_drift verdict:", verdict["dataset_drift"], verdict["drifted_columns"],
          [(c["column"], c["value"]) for c in verdict["columns"]])
    assert list((iceberg_default_home() / "drift").glob("drift_orders_*.html"))


def iceberg_default_home():
    import os
    from pathlib import Path

    return Path(os.environ["DATIVO_HOME"])


def reschedule_context() -> dict:
    """What a reschedule-mode sensor reads from its task instance: when it first ran (never, here)."""
    ti = SimpleNamespace(max_tries=0, dag_id="d", task_id="wait", run_id="r", map_index=-1,
                         get_first_reschedule_date=lambda context: None)
    return {"ti": ti}


def test_the_sensor_reschedules_until_a_new_snapshot_then_checks_it(iceberg_default, airflow_db):
    training = training_table()
    sensor = DriftSensor(task_id="wait", table="ml.features", reference={"tag": "training"},
                         mode="reschedule", poke_interval=60, on_drift="warn")
    assert sensor._after_snapshot_id() == str(training)  # the table still is the reference: wait
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(reschedule_context())
    new = append(shift=0.0)
    result = DriftSensor(task_id="wait", table="ml.features", reference={"tag": "training"},
                         mode="reschedule", on_drift="warn").execute(reschedule_context())
    assert result["current"]["snapshot_id"] == str(new) and not result["dataset_drift"]


def test_committed_after_waits_for_a_later_commit(iceberg_default):
    training_table()
    sensor = DriftSensor(task_id="wait", table="ml.features", reference={"tag": "training"},
                         after_snapshot_id="0", committed_after="2999-01-01T00:00:00+00:00")
    assert not sensor.poke({})
    sensor.committed_after = "2000-01-01T00:00:00+00:00"
    assert sensor.poke({})


def test_the_deferrable_sensor_waits_in_the_trigger_and_checks_in_the_worker(iceberg_default):
    training = training_table()
    sensor = DriftSensor(task_id="wait", table="ml.features", reference={"tag": "training"},
                         deferrable=True, poke_interval=0.05, timeout=600, on_drift="warn")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete"
    path, kwargs = trigger.serialize()
    assert path == "dativo_provider.triggers.drift.DriftSnapshotTrigger"
    assert kwargs == {"table": "ml.features", "iceberg_conn_id": "iceberg_default", "branch": "main",
                      "after_snapshot_id": str(training), "committed_after_ms": None, "poll_interval": 0.05}
    trigger = DriftSnapshotTrigger(**kwargs)  # as the triggerer rebuilds it

    async def wait_for_event():
        loop = asyncio.get_running_loop()
        polls = trigger.run()
        first = asyncio.ensure_future(polls.__anext__())
        await asyncio.sleep(0.2)
        assert not first.done()  # still polling: nothing new yet
        committed = await loop.run_in_executor(None, append, 1.0)
        event = await asyncio.wait_for(first, timeout=30)
        await polls.aclose()
        return committed, event

    committed, event = asyncio.run(wait_for_event())
    assert event.payload == {"status": "success", "snapshot_id": str(committed)}
    result = sensor.execute_complete({}, event.payload)
    assert result["current"]["snapshot_id"] == str(committed) and result["drifted_columns"] == ["amount"]
    with pytest.raises(AirflowFailException, match="waiting for a new snapshot of ml.features failed: boom"):
        sensor.execute_complete({}, {"status": "error", "message": "boom"})
    assert threading.active_count() >= 1
