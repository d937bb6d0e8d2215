"""FeatureTransformOperator, IcebergIngestOperator(transform=...) and the example feature DAG, run for
real on the embedded catalog with the bundled sample data."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import dativo_provider
from dativo_provider.compat import AirflowFailException
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.ml import FeatureTransformOperator
from tests.airflow.helpers import read_table, return_values, run_dag

pytestmark = pytest.mark.airflow

SAMPLE = str(Path(dativo_provider.__file__).parent / "sample_data")
ORDERS = {"type": "files", "path": SAMPLE, "glob": "orders_*.csv"}


def tables():
    from dativo_provider.hooks.iceberg import IcebergHook

    return IcebergHook("iceberg_default").get_catalog_config().load()


def sample_orders() -> list[dict]:
    rows = []
    for path in sorted(Path(SAMPLE).glob("orders_*.csv")):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def test_ingest_with_a_transform_reports_what_it_dropped(iceberg_default):
    summary = IcebergIngestOperator(
        task_id="ingest", source=ORDERS, table="shop.refunds",
        transform="SELECT order_id, amount FROM batch WHERE status = 'refunded'",
    ).execute({})
    refunded = sorted(int(o["order_id"]) for o in sample_orders() if o["status"] == "refunded")
    assert sorted(read_table("shop.refunds").column("order_id").to_pylist()) == refunded
    assert (summary["rows_read"], summary["rows_written"], summary["rows_dropped"]) == (
        2100, len(refunded), 2100 - len(refunded))
    assert read_table("shop.refunds").column_names == ["order_id", "amount"]


def test_the_feature_operator_reads_a_tag_records_it_and_a_rerun_commits_nothing(iceberg_default):
    IcebergIngestOperator(task_id="ingest", source=ORDERS, table="shop.orders").execute({})
    orders = tables().load_table("shop.orders")
    tagged = orders.current_snapshot().snapshot_id
    orders.manage_snapshots().create_tag(tagged, "v1").commit()
    operator = FeatureTransformOperator(
        task_id="spend_by_customer",
        inputs={"orders": {"table": "shop.orders", "tag": "v1"}},
        sql="SELECT customer_id, sum(amount) AS spend, count(*) AS orders FROM orders "
            "WHERE customer_id IS NOT NULL GROUP BY customer_id",
        table="features.spend",
    )

    first = operator.execute({})
    spend: dict[int, float] = {}
    for order in sample_orders():
        if order["customer_id"]:
            customer = int(order["customer_id"])
            spend[customer] = spend.get(customer, 0.0) + float(order["amount"])
    got = {row["customer_id"]: row["spend"] for row in read_table("features.spend").to_pylist()}
    assert got.keys() == spend.keys()
    assert all(got[c] == pytest.approx(s) for c, s in spend.items())
    assert first["committed"] and first["mode"] == "replace"
    assert first["source_details"]["inputs"]["orders"] == {"table": "shop.orders", "snapshot_id": tagged,
                                                           "ref": "v1", "rows": 2100}
    assert [d["name"] for d in first["inputs"]] == ["shop.orders"]

    again = operator.execute({})
    assert (again["committed"], again["asset_event"]) == (False, None)
    assert again["snapshot_id"] == first["snapshot_id"]
    assert len(tables().load_table("features.spend").snapshots()) == 1


def test_bad_feature_sql_fails_the_task_naming_the_transform(iceberg_default):
    IcebergIngestOperator(task_id="ingest", source=ORDERS, table="shop.orders").execute({})
    operator = FeatureTransformOperator(task_id="broken", inputs={"orders": "shop.orders"},
                                        sql="SELECT customer FROM orders", table="features.broken")
    with pytest.raises(AirflowFailException,
                       match="TransformError: feature transform 'broken': DuckDB rejected"):
        operator.execute({})


def test_the_example_dag_computes_window_features_as_of_each_order(airflow_db, iceberg_default):
    run = run_dag("example_feature_transform", datetime(2024, 1, 2, 12, tzinfo=UTC))
    (ingest,) = return_values(run, "ingest_orders")
    kept = [o for o in sample_orders() if o["status"] in ("paid", "shipped") and o["customer_id"]]
    counts = (ingest["rows_read"], ingest["rows_written"], ingest["rows_dropped"])
    assert counts == (2100, len(kept), 2100 - len(kept))

    (features,) = return_values(run, "order_features")
    assert features["committed"] and features["rows_written"] == len(kept)
    at = {o["order_id"]: datetime.fromisoformat(o["ordered_at"].replace("Z", "+00:00")) for o in kept}
    rows = {row["order_id"]: row for row in read_table("examples.order_features").to_pylist()}
    for order in kept:
        when = at[order["order_id"]]
        before = [o for o in kept if o["customer_id"] == order["customer_id"]
                  and when - timedelta(days=30) <= at[o["order_id"]] < when]
        row = rows[int(order["order_id"])]
        assert row["orders_30d"] == len(before)
        gross = sum(float(o["amount"]) * int(o["quantity"]) for o in before)
        assert row["gross_30d"] == (pytest.approx(gross) if before else None)

    rerun = run_dag("example_feature_transform", datetime(2024, 1, 3, 12, tzinfo=UTC))
    (again,) = return_values(rerun, "order_features")
    assert (again["committed"], again["snapshot_id"]) == (False, features["snapshot_id"])


SEGMENTS_CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customer-segments
version: 1.0.0
status: active
team: {{name: ml}}
customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: {quality}}}
schema:
  - name: segments
    physicalName: features.segments
    properties:
      - name: customer_id
        logicalType: integer
        physicalType: bigint
        required: true
      - name: segment
        logicalType: string
        quality:
          - name: segment_well_formed
            metric: invalidValues
            arguments: {{pattern: '^c[0-9]+$'}}
            mustBe: 0
      - name: orders
        logicalType: integer
        physicalType: bigint
"""
#: Every seventh customer gets a segment the contract rejects.
SEGMENTS_SQL = ("SELECT customer_id, CASE WHEN customer_id % 7 = 0 THEN 'bad segment' ELSE 'c' || customer_id "
                "END AS segment, count(*) AS orders FROM orders WHERE customer_id IS NOT NULL GROUP BY customer_id")


def _segments(tmp_path: Path, quality: str, **kwargs) -> FeatureTransformOperator:
    contract = tmp_path / "segments.odcs.yaml"
    contract.write_text(SEGMENTS_CONTRACT.format(quality=quality))
    return FeatureTransformOperator(task_id="segments", inputs={"orders": "shop.orders"}, sql=SEGMENTS_SQL,
                                    table="features.segments", contract=str(contract), **kwargs)


def _orders_by_customer() -> dict[int, int]:
    counts: dict[int, int] = {}
    for order in sample_orders():
        if order["customer_id"]:
            counts[int(order["customer_id"])] = counts.get(int(order["customer_id"]), 0) + 1
    return counts


def test_a_feature_transform_breaking_its_contract_is_quarantined_like_an_ingest(iceberg_default, tmp_path):
    IcebergIngestOperator(task_id="ingest", source=ORDERS, table="shop.orders").execute({})
    report = tmp_path / "report.json"
    summary = _segments(tmp_path, "quarantine", quality_report_path=str(report)).execute({"run_id": "r1"})

    counts = _orders_by_customer()
    bad = sorted(c for c in counts if c % 7 == 0)
    assert bad and summary["quality"]["decision"] == "quarantine"
    assert (summary["rows_read"], summary["rows_published"], summary["rows_quarantined"]) == (
        len(counts), len(counts) - len(bad), len(bad))
    published = {r["customer_id"]: (r["segment"], r["orders"]) for r in read_table("features.segments").to_pylist()}
    assert published == {c: (f"c{c}", n) for c, n in counts.items() if c % 7}
    held = read_table("features.segments_quarantine").to_pylist()
    assert sorted(r["customer_id"] for r in held) == bad
    assert all(r["_dativo_failed_checks"] == ["segment_well_formed"] for r in held)
    assert '"decision": "quarantine"' in report.read_text().replace('":"', '": "')
    properties = tables().load_table("features.segments").properties
    assert properties["dativo.contract"] == "urn:test:customer-segments"  # discovery finds the table


def test_a_feature_transform_its_contract_blocks_publishes_nothing(iceberg_default, tmp_path):
    from tests.airflow.test_contract_operators import FakeTI

    IcebergIngestOperator(task_id="ingest", source=ORDERS, table="shop.orders").execute({})
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match="segment_well_formed") as blocked:
        _segments(tmp_path, "block").execute({"run_id": "r1", "ti": ti})
    assert "Nothing was published" in str(blocked.value)
    assert ti.pushed["quality_report"]["decision"] == "block"
    assert not tables().table_exists("features.segments")  # a first run that is blocked leaves no table
