"""run_contract on Iceberg snapshots and branches and on database tables in place; custom callables;
failing-row samples located by each rule's predicate, checked against independent queries."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from dativo_provider.contracts.loader import load_contract
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.quality.runner import IcebergTarget, SqlTableTarget, run_contract
from tests.memory_source import TableSource

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:payments
version: 2.0.0
status: active
team: {{name: data}}
slaProperties:
  - property: latency
    value: 6
    unit: h
    element: payments.paid_at
  - property: dativoMinRowsPerRun
    value: {min_rows}
schema:
  - name: payments
    physicalName: lake.payments
    properties:
      - name: payment_id
        logicalType: integer
        physicalType: bigint
        required: true
        unique: true
        primaryKey: true
      - name: currency
        logicalType: string
        quality:
          - name: currency_known
            metric: invalidValues
            arguments: {{validValues: [EUR, USD]}}
            mustBe: 0
      - name: amount
        logicalType: number
        physicalType: double
        quality:
          - name: amount_positive
            type: custom
            engine: custom
            implementation: tests.quality.custom_checks:{amount_check}
      - name: paid_at
        logicalType: timestamp
        physicalType: timestamptz
"""


def contract(tmp_path, min_rows=1, amount_check="positive_amount"):
    path = tmp_path / "payments.yaml"
    path.write_text(CONTRACT.format(min_rows=min_rows, amount_check=amount_check))
    return load_contract(path)


def payments(ids, currency="EUR", amount=10.0, paid_at=NOW - timedelta(hours=1)):
    n = len(ids)
    return pa.table({
        "payment_id": pa.array(ids, pa.int64()),
        "currency": pa.array(currency if isinstance(currency, list) else [currency] * n),
        "amount": pa.array(amount if isinstance(amount, list) else [amount] * n, pa.float64()),
        "paid_at": pa.array(paid_at if isinstance(paid_at, list) else [paid_at] * n, pa.timestamp("us", "UTC")),
    })


def outcomes(report):
    return {c.name: c.outcome for c in report.checks}


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def test_checks_a_snapshot_a_branch_and_main(catalog, tmp_path):
    c = contract(tmp_path)
    run_ingest(TableSource(payments([1, 2, 3])), catalog, "lake.payments")
    good = catalog.load().load_table("lake.payments").current_snapshot().snapshot_id
    table = catalog.load().load_table("lake.payments")
    table.manage_snapshots().create_branch(good, "frozen").commit()
    run_ingest(TableSource(payments([3, 4], currency=["GBP", "EUR"], amount=[-1.0, 5.0]), identity="m://2"),
               catalog, "lake.payments")

    at_good = run_contract(c, IcebergTarget(catalog, "lake.payments", snapshot_id=good), now=NOW)
    assert at_good.failed == 0 and at_good.rows_checked == 3 and at_good.snapshot_id == good
    on_branch = run_contract(c, IcebergTarget(catalog, "lake.payments", branch="frozen"), now=NOW)
    assert on_branch.failed == 0 and on_branch.rows_checked == 3

    main = run_contract(c, IcebergTarget(catalog, "lake.payments"), now=NOW)
    assert main.rows_checked == 5
    assert outcomes(main) == {
        "payment_id__required": "passed", "payment_id__unique": "failed", "paid_at__fresh": "passed",
        "rows_per_run": "passed", "currency_known": "failed", "amount_positive": "failed",
    }
    by_name = {c.name: c for c in main.checks}
    assert by_name["payment_id__unique"].failing_keys == [{"payment_id": 3}, {"payment_id": 3}]
    assert by_name["currency_known"].failing_rows == 1
    assert by_name["currency_known"].failing_keys == [{"payment_id": 3, "currency": "GBP"}]
    assert by_name["amount_positive"].failing_keys == [{"payment_id": 3}]
    assert "FAILED  currency_known" in main.summary()


def test_freshness_and_rows_per_run_are_sla_checks(catalog, tmp_path):
    run_ingest(TableSource(payments([1, 2], paid_at=NOW - timedelta(hours=7))), catalog, "lake.payments")
    report = run_contract(contract(tmp_path, min_rows=5), IcebergTarget(catalog, "lake.payments"), now=NOW)
    stale = {c.name: c for c in report.checks}
    assert stale["paid_at__fresh"].outcome == "failed" and stale["paid_at__fresh"].category == "sla"
    assert stale["rows_per_run"].outcome == "failed" and stale["rows_per_run"].observed == 2
    fresh = run_contract(contract(tmp_path, min_rows=2), IcebergTarget(catalog, "lake.payments"),
                         now=NOW - timedelta(hours=2))
    assert outcomes(fresh)["paid_at__fresh"] == "passed" and outcomes(fresh)["rows_per_run"] == "passed"


def test_custom_callable_outcomes(catalog, tmp_path):
    run_ingest(TableSource(payments([1, 2])), catalog, "lake.payments")
    target = IcebergTarget(catalog, "lake.payments")
    assert outcomes(run_contract(contract(tmp_path, amount_check="never_empty"), target, now=NOW))[
        "amount_positive"] == "passed"
    crashed = {c.name: c for c in run_contract(contract(tmp_path, amount_check="explodes"), target, now=NOW).checks}
    assert crashed["amount_positive"].outcome == "error"
    assert "RuntimeError: boom" in crashed["amount_positive"].message
    missing = {c.name: c for c in run_contract(contract(tmp_path, amount_check="nope"), target, now=NOW).checks}
    assert missing["amount_positive"].outcome == "error" and "no callable 'nope'" in missing["amount_positive"].message


def test_bad_targets_are_named(catalog, tmp_path):
    run_ingest(TableSource(payments([1])), catalog, "lake.payments")
    with pytest.raises(ConfigError, match="no branch or tag 'nope'.*main"):
        run_contract(contract(tmp_path), IcebergTarget(catalog, "lake.payments", branch="nope"))
    with pytest.raises(ConfigError, match="has no snapshot 42"):
        run_contract(contract(tmp_path), IcebergTarget(catalog, "lake.payments", snapshot_id=42))
    with pytest.raises(ConfigError, match="no dataset 'orders'"):
        run_contract(contract(tmp_path), IcebergTarget(catalog, "lake.payments"), dataset="orders")


SQL_ROWS = [(1, "EUR", 10.0), (2, "GBP", 5.0), (3, "XXX", -2.0), (3, "USD", 1.0)]


def _sql_contract(tmp_path):
    # In place: no freshness column, the custom rule pulls a copy.
    text = CONTRACT.format(min_rows=1, amount_check="positive_amount")
    text = text[:text.index("slaProperties")] + text[text.index("schema:"):]
    text = text.replace("      - name: paid_at\n        logicalType: timestamp\n        physicalType: timestamptz\n", "")
    path = tmp_path / "payments.yaml"
    path.write_text(text)
    return load_contract(path)


def _expect_sql_findings(report):
    by_name = {c.name: c for c in report.checks}
    assert report.rows_checked == 4
    assert by_name["payment_id__unique"].outcome == "failed"
    assert sorted(k["payment_id"] for k in by_name["payment_id__unique"].failing_keys) == [3, 3]
    assert by_name["currency_known"].failing_rows == 2
    assert sorted(k["currency"] for k in by_name["currency_known"].failing_keys) == ["GBP", "XXX"]
    assert by_name["amount_positive"].outcome == "failed" and by_name["amount_positive"].failing_rows == 1
    assert by_name["payment_id__required"].outcome == "passed"


def test_postgres_table_in_place(tmp_path, pg, pg_schema, postgres_config):
    pg.execute(f'CREATE TABLE "{pg_schema}".payments (payment_id bigint, currency text, amount float8)')
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{pg_schema}".payments VALUES (%s, %s, %s)', SQL_ROWS)
    report = run_contract(_sql_contract(tmp_path),
                          SqlTableTarget("postgres", postgres_config, f"{pg_schema}.payments"))
    assert "postgres table" in report.target
    _expect_sql_findings(report)


def test_mysql_table_in_place(tmp_path, my, my_db):
    with my.cursor() as cur:
        cur.execute("CREATE TABLE payments (payment_id bigint, currency varchar(3), amount double)")
        cur.executemany("INSERT INTO payments VALUES (%s, %s, %s)", SQL_ROWS)
    report = run_contract(_sql_contract(tmp_path), SqlTableTarget("mysql", dataclasses.replace(my_db), "payments"))
    _expect_sql_findings(report)


def test_evolved_tables_and_awkward_names_are_read_through_pyiceberg(catalog, tmp_path):
    from dativo_provider.quality.runner import local_parquet

    run_ingest(TableSource(payments([1, 2])), catalog, "lake.payments")
    table = catalog.load().load_table("lake.payments")
    files = [t.file for t in table.scan().plan_files()]
    assert local_parquet(table, files) == [(files[0].file_path.removeprefix("file://"), 0)]
    widened = payments([3]).append_column("note", pa.array(["late"]))
    run_ingest(TableSource(widened, identity="m://2"), catalog, "lake.payments")
    table = catalog.load().load_table("lake.payments")
    assert local_parquet(table, [t.file for t in table.scan().plan_files()]) is None
    # The fallback path gives the same answers: three rows, the new column null for the old ones.
    report = run_contract(contract(tmp_path), IcebergTarget(catalog, "lake.payments"), now=NOW)
    assert report.rows_checked == 3 and report.failed == 0

    run_ingest(TableSource(pa.table({"filename": ["a.csv"], "file_row_number": [1]})), catalog, "lake.files")
    files_table = catalog.load().load_table("lake.files")
    assert local_parquet(files_table, [t.file for t in files_table.scan().plan_files()]) is None


def test_a_subset_of_library_rules_reads_only_its_columns(catalog, tmp_path, monkeypatch):
    from dativo_provider.quality import runner
    from dativo_provider.quality.plan import checks_for

    c = contract(tmp_path, min_rows=3)
    run_ingest(TableSource(payments([1, 2], paid_at=NOW - timedelta(hours=7))), catalog, "lake.payments")
    read = []
    original = runner.LoadedRows.from_parquet.__func__
    monkeypatch.setattr(runner.LoadedRows, "from_parquet",
                        classmethod(lambda cls, files, columns=None: read.append(columns) or original(cls, files, columns)))
    sla = [r for r in checks_for(c, c.datasets[0]) if r.category == "sla"]
    report = run_contract(c, IcebergTarget(catalog, "lake.payments"), rules=sla, now=NOW)
    assert read == [["paid_at"]]
    assert {x.name: (x.outcome, x.observed) for x in report.checks} == {
        "paid_at__fresh": ("failed", 7 * 3600), "rows_per_run": ("failed", 2)}
    count_only = [r for r in sla if r.name == "rows_per_run"]
    assert run_contract(c, IcebergTarget(catalog, "lake.payments"), rules=count_only).checks[0].observed == 2
    assert read[-1] == ["payment_id"]  # a row count reads no column; the view keeps the first one
