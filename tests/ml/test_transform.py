"""Transforms on ingest and feature transforms over Iceberg snapshots, against a real SQLite-catalog
warehouse in a temp dir and the bundled sample data, checked against plain-Python computations."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import dativo_provider
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import STATE_KEY
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.features import FeatureTransform, committed_inputs, run_feature_transform
from dativo_provider.ml.transform import Transform, TransformError
from dativo_provider.ml.windows import trailing_window_sql
from dativo_provider.sources import build_source
from tests.memory_source import TableSource

SAMPLE = Path(dativo_provider.__file__).parent / "sample_data"


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def sample_orders() -> list[dict]:
    """The sample orders as plain Python values, read with the csv module (independent of our readers)."""
    rows = []
    for path in sorted(SAMPLE.glob("orders_*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({
                    "order_id": int(row["order_id"]),
                    "ordered_at": datetime.fromisoformat(row["ordered_at"].replace("Z", "+00:00")),
                    "customer_id": int(row["customer_id"]) if row["customer_id"] else None,
                    "quantity": int(row["quantity"]),
                    "amount": float(row["amount"]),
                    "currency": row["currency"],
                    "status": row["status"],
                })
    return rows


def orders_table() -> pa.Table:
    rows = sample_orders()
    return pa.table({
        "order_id": pa.array([r["order_id"] for r in rows], pa.int64()),
        "ordered_at": pa.array([r["ordered_at"] for r in rows], pa.timestamp("us", tz="UTC")),
        "customer_id": pa.array([r["customer_id"] for r in rows], pa.int64()),
        "quantity": pa.array([r["quantity"] for r in rows], pa.int64()),
        "amount": pa.array([r["amount"] for r in rows], pa.float64()),
        "currency": pa.array([r["currency"] for r in rows]),
        "status": pa.array([r["status"] for r in rows]),
    })


def read(catalog, name: str) -> pa.Table:
    return catalog.load().load_table(name).scan().to_arrow()


def ingest_orders(catalog, table: str = "shop.orders"):
    source = build_source({"type": "files", "path": str(SAMPLE), "glob": "orders_*.csv"})
    return run_ingest(source, catalog, table)


# -- inline on ingest ---------------------------------------------------------------------------------


def flag_large(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A vectorised Python step: Arrow in, Arrow out."""
    return batch.append_column("large", pc.greater_equal(batch.column("gross"), 500.0))


def test_an_ingest_transform_equals_plain_python_and_reports_the_rows_it_dropped(catalog):
    sql = ("SELECT order_id, customer_id, amount * quantity AS gross, lower(currency) AS currency "
           "FROM batch WHERE status <> 'refunded'")
    seen: list[int] = []

    def spy(batch: pa.RecordBatch) -> pa.RecordBatch:
        seen.append(batch.num_rows)
        return batch

    result = run_ingest(TableSource(orders_table(), batch_rows=100), catalog, "shop.gross",
                        transform={"name": "gross", "steps": [spy, sql, flag_large]})

    orders = sample_orders()
    kept = [o for o in orders if o["status"] != "refunded"]
    expected = {o["order_id"]: (o["customer_id"], o["amount"] * o["quantity"], o["currency"].lower(),
                                o["amount"] * o["quantity"] >= 500.0) for o in kept}
    written = {r["order_id"]: (r["customer_id"], r["gross"], r["currency"], r["large"])
               for r in read(catalog, "shop.gross").to_pylist()}
    assert written.keys() == expected.keys()
    for order_id, (customer, gross, currency, large) in expected.items():
        assert written[order_id][0] == customer and written[order_id][2:] == (currency, large)
        assert written[order_id][1] == pytest.approx(gross)
    dropped = len(orders) - len(kept)
    assert dropped > 0
    assert (result.rows_read, result.rows_written, result.rows_dropped) == (len(orders), len(kept), dropped)
    assert result.source_details["transform"] == {"name": "gross", "rows_in": len(orders),
                                                  "rows_out": len(kept), "batches": 21}
    assert f"dropped by the transform {dropped}" in result.summary_line()
    # Streamed: the transform saw one source batch at a time, never the whole extract.
    assert max(seen) == 100 and sum(seen) == len(orders)


def test_an_ingest_transform_keeps_exactly_once_and_merge(catalog):
    source = {"type": "files", "path": str(SAMPLE), "glob": "orders_*.csv"}
    transform = "SELECT order_id, customer_id, amount FROM batch WHERE status = 'paid'"
    options = WriteOptions(mode="merge", merge_keys=("order_id",))
    first = run_ingest(build_source(source), catalog, "shop.paid", options, transform=transform)
    paid = [o["order_id"] for o in sample_orders() if o["status"] == "paid"]
    assert first.rows_written == len(paid)
    assert sorted(read(catalog, "shop.paid").column("order_id").to_pylist()) == sorted(paid)

    again = run_ingest(build_source(source), catalog, "shop.paid", options, transform=transform)
    assert (again.rows_read, again.rows_written, again.committed) == (0, 0, False)
    assert len(catalog.load().load_table("shop.paid").snapshots()) == 1


def test_bad_sql_names_the_transform_and_commits_nothing(catalog):
    with pytest.raises(TransformError) as raised:
        run_ingest(TableSource(orders_table()), catalog, "shop.bad",
                   transform={"name": "net_amount", "steps": ["SELECT amount - discount AS net FROM batch"]})
    message = str(raised.value)
    assert "transform 'net_amount' step 1 (sql)" in message and '"discount" not found' in message
    assert "columns order_id, ordered_at" in message
    assert not catalog.load().table_exists("shop.bad")


def test_a_function_that_returns_no_arrow_is_refused_by_name(catalog):
    def to_list(batch):
        return batch.to_pylist()

    with pytest.raises(TransformError, match=r"transform 'transform' step 1 \(.*to_list\) returned list"):
        run_ingest(TableSource(orders_table()), catalog, "shop.bad", transform=to_list)


def test_transform_specs_parse_and_refuse_what_they_cannot_run():
    parsed = Transform.parse([{"name": "f", "function": "pyarrow.compute:unique"}, "SELECT 1 FROM batch"])
    described = [step.describe(i) for i, step in enumerate(parsed.steps, start=1)]
    assert described == ["step 1 (f)", "step 2 (sql)"]
    with pytest.raises(ConfigError, match="exactly one of 'sql' or 'function'"):
        Transform.parse({"name": "x", "steps": [{"sql": "SELECT 1", "function": len}]})
    with pytest.raises(ConfigError, match="cannot import 'nowhere:fn'"):
        Transform.parse({"function": "nowhere:fn"})
    assert Transform.parse("SELECT 1").fingerprint() != Transform.parse("SELECT 2").fingerprint()


# -- feature transforms over Iceberg snapshots --------------------------------------------------------


WINDOW_SQL = trailing_window_sql("orders", partition_by=["customer_id"], order_by="ordered_at",
                                 window="30 days",
                                 features={"orders_30d": "count(*)", "amount_30d": "sum(amount)"})


def expected_trailing(orders: list[dict], days: int = 30) -> dict[int, tuple[int, float | None]]:
    """Per order: the same customer's orders at or after ordered_at - 30 days and strictly before it."""
    expected = {}
    for order in orders:
        start = order["ordered_at"] - timedelta(days=days)
        window = [o for o in orders if o["customer_id"] == order["customer_id"]
                  and start <= o["ordered_at"] < order["ordered_at"]]
        expected[order["order_id"]] = (len(window), sum(o["amount"] for o in window) if window else None)
    return expected


def test_window_features_equal_a_plain_python_computation_as_of_each_row(catalog):
    ingest_orders(catalog)
    result = run_feature_transform(FeatureTransform("orders_30d", WINDOW_SQL, {"orders": "shop.orders"}),
                                   catalog, "features.orders_30d")
    rows = read(catalog, "features.orders_30d").to_pylist()
    orders = [o for o in sample_orders() if o["customer_id"] is not None]
    expected = expected_trailing(orders)
    got = {r["order_id"]: (r["orders_30d"], r["amount_30d"]) for r in rows if r["customer_id"] is not None}
    assert got.keys() == expected.keys()
    for order_id, (count, amount) in expected.items():
        assert got[order_id][0] == count, order_id
        assert got[order_id][1] == (None if amount is None else pytest.approx(amount)), order_id
    assert sum(1 for count, _ in expected.values() if count >= 1) > 20  # the window really sees history
    assert result.rows_written == len(rows) == 2100


def test_staging_a_large_input_logs_rows_and_rate_at_a_steady_interval(catalog, caplog, monkeypatch):
    ingest_orders(catalog)
    ticks = iter(range(0, 10_000, 11))  # every clock reading is 11 s after the last: one line per batch
    monkeypatch.setattr("dativo_provider.progress.monotonic", lambda: float(next(ticks)))
    with caplog.at_level("INFO", logger="dativo_provider.ml.features"):
        run_feature_transform(FeatureTransform("orders_30d", WINDOW_SQL, {"orders": "shop.orders"}),
                              catalog, "features.orders_30d")
    lines = [r.getMessage() for r in caplog.records if "staging shop.orders" in r.getMessage()]
    assert lines, "no progress line while staging"
    assert lines[-1].startswith("feature transform orders_30d: staging shop.orders: 2100 rows")
    assert "rows/s" in lines[-1]


def test_a_point_in_time_join_of_two_inputs_equals_plain_python(catalog):
    """Customers as of a feature timestamp joined with the orders before it (two inputs, one SQL)."""
    run_ingest(build_source({"type": "files", "path": str(SAMPLE), "glob": "customers.csv"}), catalog,
               "shop.customers")
    ingest_orders(catalog)
    sql = """
        SELECT c.customer_id, TIMESTAMPTZ '2024-03-01 00:00:00+00' AS feature_ts,
               count(o.order_id) AS orders_30d, sum(o.amount) AS amount_30d
        FROM customers c
        LEFT JOIN orders o ON o.customer_id = c.customer_id
             AND o.ordered_at >= TIMESTAMPTZ '2024-03-01 00:00:00+00' - INTERVAL '30 days'
             AND o.ordered_at < TIMESTAMPTZ '2024-03-01 00:00:00+00'
        GROUP BY c.customer_id
    """
    result = run_feature_transform(
        FeatureTransform("customer_30d", sql, {"customers": "shop.customers", "orders": "shop.orders"}),
        catalog, "features.customer_30d", WriteOptions(mode="merge", merge_keys=("customer_id",)))
    feature_ts = datetime(2024, 3, 1, tzinfo=UTC)
    orders = [o for o in sample_orders() if feature_ts - timedelta(days=30) <= o["ordered_at"] < feature_ts]
    got = {r["customer_id"]: r for r in read(catalog, "features.customer_30d").to_pylist()}
    assert len(got) == 1000
    for customer_id, row in got.items():
        mine = [o["amount"] for o in orders if o["customer_id"] == customer_id]
        assert row["orders_30d"] == len(mine), customer_id
        assert row["amount_30d"] == (pytest.approx(sum(mine)) if mine else None)
        assert row["feature_ts"] == feature_ts
    assert {d.name for d in result.inputs} == {"shop.customers", "shop.orders"}


def test_each_commit_records_its_input_snapshots_and_a_rerun_commits_nothing(catalog):
    ingest_orders(catalog)
    feature = FeatureTransform("orders_30d", WINDOW_SQL, {"orders": "shop.orders"})
    first = run_feature_transform(feature, catalog, "features.orders_30d")
    orders = catalog.load().load_table("shop.orders")
    features = catalog.load().load_table("features.orders_30d")
    recorded = {"orders": {"table": "shop.orders", "snapshot_id": orders.current_snapshot().snapshot_id,
                           "ref": "main"}}
    assert committed_inputs(features, "orders_30d") == recorded
    assert str(orders.current_snapshot().snapshot_id) in features.current_snapshot().summary[STATE_KEY]

    rerun = run_feature_transform(feature, catalog, "features.orders_30d")
    assert (rerun.committed, rerun.rows_written, rerun.snapshot_id) == (False, 0, first.snapshot_id)
    assert len(catalog.load().load_table("features.orders_30d").snapshots()) == 1

    # A new input snapshot is a new commit, recording it; the replaced result has the new rows.
    orders.append(_one_more_order(orders))
    changed = run_feature_transform(feature, catalog, "features.orders_30d")
    new_snapshot = catalog.load().load_table("shop.orders").current_snapshot().snapshot_id
    features = catalog.load().load_table("features.orders_30d")
    assert changed.committed and changed.rows_written == 2101
    assert committed_inputs(features, "orders_30d")["orders"]["snapshot_id"] == new_snapshot
    assert len(features.snapshots()) == 2

    # Changed SQL on unchanged inputs is a new result too.
    narrower = FeatureTransform("orders_30d", WINDOW_SQL.replace("30 days", "7 days"),
                                {"orders": "shop.orders"})
    assert run_feature_transform(narrower, catalog, "features.orders_30d").committed


def _one_more_order(table) -> pa.Table:
    """One new order, typed as the Iceberg table stores orders."""
    schema = table.schema().as_arrow()
    row = {"order_id": 1, "ordered_at": datetime(2024, 3, 31, tzinfo=UTC), "customer_id": 3, "product_id": 1,
           "quantity": 1, "amount": 10.0, "currency": "EUR", "status": "paid"}
    return pa.Table.from_pylist([row], schema=schema)


def test_inputs_read_at_a_tag_and_bad_inputs_are_named(catalog):
    ingest_orders(catalog)
    orders = catalog.load().load_table("shop.orders")
    tagged = orders.current_snapshot().snapshot_id
    orders.manage_snapshots().create_tag(tagged, "training-v1").commit()
    orders.append(_one_more_order(orders))
    count_sql = "SELECT count(*) AS orders FROM orders"

    result = run_feature_transform(
        FeatureTransform("count_v1", count_sql, {"orders": {"table": "shop.orders", "tag": "training-v1"}}),
        catalog, "features.count")
    assert read(catalog, "features.count").to_pylist() == [{"orders": 2100}]
    assert result.source_details["inputs"]["orders"]["snapshot_id"] == tagged

    missing_tag = {"orders": {"table": "shop.orders", "tag": "nope"}}
    with pytest.raises(ConfigError, match=r"has no tag or branch 'nope' \(it has: main, training-v1\)"):
        run_feature_transform(FeatureTransform("x", count_sql, missing_tag), catalog, "features.count")
    with pytest.raises(ConfigError, match="write mode is 'append'"):
        run_feature_transform(FeatureTransform("x", count_sql, {"orders": "shop.orders"}), catalog,
                              "features.count2", WriteOptions(mode="append"))


def test_bad_feature_sql_names_the_transform_and_its_inputs(catalog):
    ingest_orders(catalog)
    with pytest.raises(TransformError) as raised:
        run_feature_transform(FeatureTransform("spend", "SELECT customer, sum(amount) FROM orders GROUP BY 1",
                                               {"orders": "shop.orders"}), catalog, "features.spend")
    message = str(raised.value)
    assert message.startswith("feature transform 'spend': DuckDB rejected the SQL")
    assert "orders(order_id, ordered_at, customer_id" in message
    assert not catalog.load().table_exists("features.spend")


EUR_CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:eur-orders
version: 1.0.0
status: active
team: {name: data}
customProperties:
  - property: dativoViolationHandling
    value: {schema: block, quality: quarantine, sla: warn}
schema:
  - name: eur_orders
    physicalName: shop.eur
    properties:
      - name: order_id
        logicalType: integer
        physicalType: bigint
      - name: eur_amount
        logicalType: number
        physicalType: double
        quality:
          - name: eur_amount_present
            metric: nullValues
            mustBe: 0
"""


def test_the_contract_audits_the_transformed_rows(catalog, tmp_path):
    """The transform's output column is what the contract checks: non-EUR orders are quarantined."""
    from dativo_provider.quality.wap import ContractGate

    contract = tmp_path / "eur.odcs.yaml"
    contract.write_text(EUR_CONTRACT)
    transform = ("SELECT order_id, CASE WHEN currency = 'EUR' THEN amount END AS eur_amount FROM batch "
                 "WHERE status <> 'refunded'")
    result = run_ingest(TableSource(orders_table(), batch_rows=500), catalog, "shop.eur",
                        audit=ContractGate(str(contract), catalog), transform=transform)
    kept = [o for o in sample_orders() if o["status"] != "refunded"]
    eur = sorted(o["order_id"] for o in kept if o["currency"] == "EUR")
    assert sorted(read(catalog, "shop.eur").column("order_id").to_pylist()) == eur
    assert read(catalog, "shop.eur_quarantine").num_rows == len(kept) - len(eur) == result.rows_quarantined
    assert result.rows_read == result.rows_published + result.rows_quarantined + result.rows_dropped == 2100


def test_a_transform_that_adds_a_column_meets_the_schema_policy(catalog):
    from dativo_provider.exceptions import SchemaDriftError

    run_ingest(TableSource(orders_table()), catalog, "shop.o", transform="SELECT order_id, amount FROM batch")
    with pytest.raises(SchemaDriftError):
        run_ingest(TableSource(orders_table(), identity="memory://again"), catalog, "shop.o",
                   WriteOptions(schema_policy="strict"),
                   transform="SELECT order_id, amount, amount * 2 AS doubled FROM batch")
    evolved = run_ingest(TableSource(orders_table(), identity="memory://again"), catalog, "shop.o",
                         transform="SELECT order_id, amount, amount * 2 AS doubled FROM batch")
    assert any("doubled" in change for change in evolved.schema_changes)
    assert read(catalog, "shop.o").column_names == ["order_id", "amount", "doubled"]


# A source that makes its batches as it is read (nothing held), ingested through a SQL transform; prints
# rows written, rows dropped and the process's peak RSS in MB.
STREAMING_PROBE = """
import resource, sys
import pyarrow as pa
import pyarrow.compute as pc
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.sources.base import LineageDataset, Source, SourceReport, SourceStream

BATCH = 100_000

class Generated(Source):
    def __init__(self, batches): self.batches = batches
    identity = "memory://generated"
    lineage = LineageDataset("memory", "generated")
    def open(self, state, bounds): return Stream(self.batches)

class Stream(SourceStream):
    def __init__(self, batches):
        self.batches = batches; self.report = SourceReport()
    schema = pa.schema([("id", pa.int64()), ("value", pa.float64()), ("label", pa.string())])
    def __iter__(self):
        for n in range(self.batches):
            ids = pa.array(range(n * BATCH, (n + 1) * BATCH), pa.int64())
            columns = [ids, pc.multiply(ids, 0.5), pc.cast(ids, pa.string())]
            yield pa.RecordBatch.from_arrays(columns, schema=self.schema)
    def state(self): return None

batches = int(sys.argv[1])
catalog = embedded_catalog(sys.argv[2])
sql = "SELECT id, value * 2 AS value, label || '!' AS label FROM batch WHERE id % 10 <> 0"
result = run_ingest(Generated(batches), catalog, "t.t", transform=sql)
print(result.rows_written, result.rows_dropped, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_memory_stays_flat_as_the_transformed_source_grows(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "probe.py"
    script.write_text(STREAMING_PROBE)
    peaks = {}
    for batches in (5, 40):
        command = [sys.executable, str(script), str(batches), str(tmp_path / f"lake{batches}")]
        run = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        written, dropped, peak = map(int, run.stdout.split()[-3:])
        assert (written, dropped) == (batches * 90_000, batches * 10_000)
        peaks[batches] = peak
    # 8x the rows (4M: over 100 MB as Arrow) and the peak grows by far less than one extract's worth.
    assert peaks[40] - peaks[5] < 60, peaks
