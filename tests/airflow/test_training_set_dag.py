"""example_training_set end to end with ``dag.test()``: the operator pins both inputs, writes the rows and
the manifest (its path in XCom), and the rebuild from the pins is the same set."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import dativo_provider
from tests.airflow.helpers import read_table, return_values, run_dag

pytestmark = pytest.mark.airflow
SAMPLE = Path(dativo_provider.__file__).parent / "sample_data"


def _csv(pattern: str) -> list[dict]:
    rows = []
    for path in sorted(SAMPLE.glob(pattern)):
        with path.open() as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _expected_amounts() -> dict[int, float | None]:
    """Per ticket, the amount of its customer's newest order at or before the ticket, within 30 days
    (plain Python over the sample CSV files)."""
    orders = [(int(o["customer_id"]), _time(o["ordered_at"]), float(o["amount"]))
              for o in _csv("orders_*.csv")]
    expected = {}
    for ticket in _csv("support_tickets.csv"):
        at = _time(ticket["created_at"])
        customer = int(ticket["customer_id"]) if ticket["customer_id"] else None
        past = [o for o in orders if o[0] == customer and o[1] <= at]
        newest = max(past, key=lambda o: o[1]) if past else None
        fresh = newest is not None and at - newest[1] <= timedelta(days=30)
        expected[int(ticket["ticket_id"])] = newest[2] if newest and fresh else None
    return expected


def test_training_set_example_pins_writes_and_reproduces(airflow_db, iceberg_default, dativo_home):
    run = run_dag("example_training_set", datetime(2024, 4, 2, 12, tzinfo=UTC))
    (summary,) = return_values(run, "training_set")
    manifest = json.loads(Path(summary["manifest_path"]).read_text())
    assert Path(summary["manifest_path"]).is_relative_to(dativo_home / "training" / "ticket_topics")
    assert summary["row_count"] == manifest["row_count"] == 393
    assert [i["table"] for i in manifest["inputs"]] == ["examples.ts_tickets", "examples.ts_orders"]
    assert {i["ref"] for i in manifest["inputs"]} == {f"dativo-training/ticket_topics/{_safe(run.run_id)}"}
    rows = read_table("examples.ticket_topics_training").to_pylist()
    amounts = {r["ticket_id"]: r["amount"] for r in rows}
    expected = _expected_amounts()
    assert amounts == expected
    assert sum(v is not None for v in expected.values()) > 100  # the join found orders for many tickets
    (rebuilt,) = return_values(run, "reproduce")
    assert (rebuilt["status"], rebuilt["content_hash"]) == ("identical", manifest["content_hash"])


def _safe(run_id: str) -> str:
    from dativo_provider.ml.training_set import pin_name

    return pin_name("x", run_id).rpartition("/")[2]


class _TaskInstance:
    """The ``ti`` of a task context, outside a DAG run: keeps what the task pushes."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_operator_takes_features_from_a_contract_and_pushes_the_manifest_path(iceberg_default, tmp_path,
                                                                             monkeypatch):
    import pyarrow as pa

    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.operators.ml import TrainingSetOperator
    from tests.memory_source import TableSource

    catalog = IcebergHook("iceberg_default").get_catalog_config()
    at = datetime(2024, 3, 1, tzinfo=UTC)
    features = pa.table({"customer_id": [1, 1], "feature_ts": [at, at + timedelta(days=1)],
                         "orders_30d": [3, 4], "spend_30d": [30.0, 40.0], "days_since_last_order": [0, 0]})
    labels = pa.table({"customer_id": [1, 1, 2], "label": [1, 0, 1],
                       "event_ts": [at + timedelta(hours=12), at + timedelta(days=5), at]})
    run_ingest(TableSource(features, identity="memory://features"), catalog, "examples.customer_features")
    run_ingest(TableSource(labels, identity="memory://labels"), catalog, "examples.labels")
    monkeypatch.chdir(SAMPLE)  # a relative contract path is found from the working directory too
    ti = _TaskInstance()
    summary = TrainingSetOperator(
        task_id="churn", name="churn", labels={"table": "examples.labels", "keys": ["customer_id"],
                                               "timestamp_column": "event_ts"},
        features=[{"contract": "contracts/customer_features.odcs.yaml"}],
        output_table="examples.churn_training", manifest_path=str(tmp_path / "churn.json"),
    ).execute({"run_id": "manual__2024-03-10T00:00:00+00:00", "ti": ti})
    assert ti.pushed == {"manifest_path": str(tmp_path / "churn.json")} and summary["row_count"] == 3
    pin = "dativo-training/churn/manual__2024-03-10T00-00-00-00-00"
    assert {i["ref"] for i in summary["inputs"]} == {pin}
    rows = {(r["customer_id"], r["event_ts"]): r["orders_30d"]
            for r in read_table("examples.churn_training").to_pylist()}
    # 12 hours after the first update: 3; 4 days after the second, beyond the contract's 2-day TTL: null.
    assert rows == {(1, at + timedelta(hours=12)): 3, (1, at + timedelta(days=5)): None, (2, at): None}


def test_operator_names_a_bad_definition(iceberg_default, tmp_path):
    from dativo_provider.compat import AirflowFailException
    from dativo_provider.operators.ml import TrainingSetOperator

    operator = TrainingSetOperator(task_id="bad", name="bad", features=[],
                                   manifest_path=str(tmp_path / "m.json"),
                                   labels={"table": "examples.labels", "key": "id"})
    with pytest.raises(AirflowFailException, match="unknown key 'key'; 'keys' is required"):
        operator.execute({"run_id": "r", "ti": _TaskInstance()})
