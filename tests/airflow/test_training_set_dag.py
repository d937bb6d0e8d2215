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
    orders = [(int(o["customer_id"]), _time(o["ordered_at"]), float(o["amount"])) for o in _csv("orders_*.csv")]
    expected = {}
    for ticket in _csv("support_tickets.csv"):
        at = _time(ticket["created_at"])
        customer = int(ticket["customer_id"]) if ticket["customer_id"] else None
        past = [o for o in orders if o[0] == customer and o[1] <= at]
        newest = max(past, key=lambda o: o[1]) if past else None
        expected[int(ticket["ticket_id"])] = newest[2] if newest and at - newest[1] <= timedelta(days=30) else None
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
