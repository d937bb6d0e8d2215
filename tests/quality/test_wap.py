"""Write-audit-publish with a contract: quarantine round trip, block, branches, schema policy.

Real runs end to end: the engine writes to an audit branch of an embedded (SQLite) catalog, Soda, GX
and a custom callable check the new rows, and the assertions read the tables back.
"""

from __future__ import annotations

import pathlib
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dativo_provider.exceptions import ContractViolationError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import AuditRejectedError, run_ingest
from dativo_provider.quality.quarantine import purge
from dativo_provider.quality.release import release
from dativo_provider.quality.wap import ContractGate
from tests.memory_source import TableSource

HEADER = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
version: {version}
status: active
team: {{name: data}}
customProperties:
  - property: dativoViolationHandling
    value: {{schema: {schema}, quality: {quality}, sla: warn}}
  - property: dativoSchemaPolicy
    value: {{allowNullableExpansion: {expansion}, allowTypeWidening: {widening}}}
schema:
  - name: orders
    physicalName: lake.orders
    properties:
"""

COLUMNS = """\
      - name: order_id
        logicalType: integer
        physicalType: bigint
        required: true
        unique: true
        primaryKey: true
      - name: email
        logicalType: string
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '[a-z0-9.]+@[a-z]+\\.[a-z]+'}}
            mustBe: 0
            severity: {severity}
      - name: amount
        logicalType: number
        physicalType: double
        quality:
          - name: amount_positive
            type: custom
            engine: custom
            implementation: tests.quality.custom_checks:{amount_check}
      - name: quantity
        logicalType: integer
        physicalType: bigint
        quality:
          - name: quantity_in_range
            type: custom
            engine: great_expectations
            implementation:
              type: expect_column_values_to_be_between
              kwargs: {{column: quantity, min_value: 1, max_value: {max_quantity}}}
"""


def write_contract(path, *, quality="quarantine", schema="block", expansion="false", widening="false",
                   severity="error", amount_check="positive_amount", max_quantity=100, version="1.0.0",
                   columns=COLUMNS):
    text = HEADER.format(version=version, schema=schema, quality=quality, expansion=expansion,
                         widening=widening) + columns.format(severity=severity, amount_check=amount_check,
                                                            max_quantity=max_quantity)
    path.write_text(text)
    return path


BAD_EMAIL, BAD_AMOUNT, BAD_QUANTITY = 500, 400, 334  # 1,234 rows break one rule each


def orders(n=100_000, start=0, bad=True):
    ids = np.arange(start, start + n, dtype=np.int64)
    email = np.array([f"user{i}@shop.com" for i in ids], dtype=object)
    amount = (ids % 97 + 1).astype(np.float64)
    quantity = (ids % 7 + 1).astype(np.int64)
    if bad:
        spots = np.random.default_rng(7).permutation(n)
        email[spots[:BAD_EMAIL]] = "not-an-email"
        amount[spots[BAD_EMAIL:BAD_EMAIL + BAD_AMOUNT]] = -5.0
        quantity[spots[BAD_EMAIL + BAD_AMOUNT:BAD_EMAIL + BAD_AMOUNT + BAD_QUANTITY]] = 1000
    return pa.table({"order_id": ids, "email": pa.array(email, pa.string()), "amount": amount,
                     "quantity": quantity})


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def table_rows(catalog, name):
    return catalog.load().load_table(name).scan().to_arrow()


def test_quarantine_round_trip_then_release(catalog, tmp_path):
    contract = write_contract(tmp_path / "orders.yaml")
    data = orders()
    gate = ContractGate(contract, catalog, report_path=tmp_path / "report.json")
    result = run_ingest(TableSource(data, batch_rows=8192), catalog, "lake.orders", audit=gate, run_id="run-1")

    assert (result.rows_read, result.rows_published, result.rows_quarantined) == (100_000, 98_766, 1_234)
    main = table_rows(catalog, "lake.orders")
    held = table_rows(catalog, "lake.orders_quarantine")
    assert main.num_rows == 98_766 and held.num_rows == 1_234
    assert set(main["order_id"].to_pylist()).isdisjoint(held["order_id"].to_pylist())
    assert sorted(main["order_id"].to_pylist() + held["order_id"].to_pylist()) == list(range(100_000))
    reasons = pc.value_counts(pc.list_flatten(held["_dativo_failed_checks"])).to_pylist()
    assert {r["values"]: r["counts"] for r in reasons} == {
        "email_well_formed": BAD_EMAIL, "amount_positive": BAD_AMOUNT, "quantity_in_range": BAD_QUANTITY}
    assert set(held["_dativo_run_id"].to_pylist()) == {"run-1"}
    bad_email = held.filter(pc.equal(held["email"], "not-an-email"))
    assert bad_email.num_rows == BAD_EMAIL
    assert all("email_well_formed" in r for r in bad_email["_dativo_reason"].to_pylist())
    # The report names the failing rows' keys, and the JSON report matches the XCom-able summary.
    checks = {c["name"]: c for c in result.quality["checks"]}
    assert checks["email_well_formed"]["failing_rows"] == BAD_EMAIL
    sample_ids = {k["order_id"] for k in checks["email_well_formed"]["failing_keys"]}
    assert sample_ids <= set(bad_email["order_id"].to_pylist()) and len(sample_ids) == 20
    assert checks["quantity_in_range"]["failing_rows"] == BAD_QUANTITY
    assert result.quality["decision"] == "quarantine"
    assert (tmp_path / "report.json").read_text().count('"email_well_formed"') == 1
    assert set(catalog.load().load_table("lake.orders").metadata.refs) == {"main"}

    # Fix the rules (a new contract version) and release: main holds every row, quarantine none.
    fixed = write_contract(tmp_path / "orders_v2.yaml", amount_check="never_empty", max_quantity=1000,
                           severity="warning", version="1.1.0")
    released = release(catalog, "lake.orders", fixed)
    assert (released.rows_considered, released.rows_published, released.rows_requarantined) == (1_234, 1_234, 0)
    assert released.released_runs == ["run-1"]
    main = table_rows(catalog, "lake.orders")
    assert sorted(main["order_id"].to_pylist()) == list(range(100_000))
    assert main.sort_by("order_id").equals(data.select(main.column_names).cast(main.schema).sort_by("order_id"))
    assert table_rows(catalog, "lake.orders_quarantine").num_rows == 0


def test_release_with_partly_fixed_rules_keeps_the_rest_quarantined(catalog, tmp_path):
    contract = write_contract(tmp_path / "orders.yaml")
    run_ingest(TableSource(orders(20_000)), catalog, "lake.orders", audit=ContractGate(contract, catalog),
               run_id="run-1")
    held_before = table_rows(catalog, "lake.orders_quarantine").num_rows
    only_amount_fixed = write_contract(tmp_path / "v2.yaml", amount_check="never_empty")
    released = release(catalog, "lake.orders", only_amount_fixed)
    held = table_rows(catalog, "lake.orders_quarantine")
    assert released.rows_considered == held_before
    assert released.rows_published == pc.sum(pc.less(table_rows(catalog, "lake.orders")["amount"], 0)).as_py()
    assert released.rows_requarantined == held.num_rows == held_before - released.rows_published
    assert "run-1" not in held["_dativo_run_id"].to_pylist()
    assert table_rows(catalog, "lake.orders").num_rows + held.num_rows == 20_000

    assert purge(catalog, "lake.orders_quarantine", run_ids=held["_dativo_run_id"].unique().to_pylist()) \
        == held.num_rows
    assert table_rows(catalog, "lake.orders_quarantine").num_rows == 0


def test_block_leaves_main_untouched_and_no_branches_pile_up(catalog, tmp_path):
    contract = write_contract(tmp_path / "orders.yaml", quality="block")
    run_ingest(TableSource(orders(1_000, bad=False)), catalog, "lake.orders",
               audit=ContractGate(contract, catalog))
    head = catalog.load().load_table("lake.orders").current_snapshot().snapshot_id
    for attempt in range(20):
        with pytest.raises(AuditRejectedError, match="email_well_formed") as failure:
            run_ingest(TableSource(orders(2_000, start=1_000 + attempt * 2_000)), catalog, "lake.orders",
                       audit=ContractGate(contract, catalog))
        assert failure.value.result.quality["decision"] == "block"
    table = catalog.load().load_table("lake.orders")
    assert table.current_snapshot().snapshot_id == head
    assert set(table.metadata.refs) == {"main"}
    assert table.scan().to_arrow().num_rows == 1_000
    assert not catalog.load().table_exists("lake.orders_quarantine")


def test_a_blocked_first_run_leaves_no_table_and_no_files(catalog, tmp_path):
    contract = write_contract(tmp_path / "orders.yaml", quality="block")
    warehouse = catalog.properties["warehouse"].removeprefix("file://")
    with pytest.raises(AuditRejectedError, match="email_well_formed"):
        run_ingest(TableSource(orders(2_000)), catalog, "lake.orders", audit=ContractGate(contract, catalog))
    assert not catalog.load().table_exists("lake.orders")
    assert not catalog.load().table_exists("lake.orders_quarantine")
    left = [p for p in pathlib.Path(warehouse).rglob("*") if p.is_file() and "orders" in str(p)]
    assert left == []
    # The next run, with clean rows, creates the table as a first run does.
    result = run_ingest(TableSource(orders(1_000, bad=False)), catalog, "lake.orders",
                        audit=ContractGate(contract, catalog))
    assert result.rows_published == 1_000
    assert catalog.load().load_table("lake.orders").scan().to_arrow().num_rows == 1_000


def test_warning_rules_and_warn_handling_publish_everything(catalog, tmp_path):
    contract = write_contract(tmp_path / "orders.yaml", quality="warn")
    result = run_ingest(TableSource(orders(5_000)), catalog, "lake.orders", audit=ContractGate(contract, catalog))
    assert (result.rows_published, result.rows_quarantined) == (5_000, 0)
    assert result.quality["decision"] == "publish"
    assert set(result.quality["warnings"]) == {"email_well_formed", "amount_positive", "quantity_in_range"}


def _schema_contract(path, **policy):
    columns = textwrap.dedent("""\
      - name: order_id
        logicalType: integer
        physicalType: bigint
      - name: amount
        logicalType: number
        physicalType: double
      - name: quantity
        logicalType: integer
        physicalType: bigint
    """)
    columns = textwrap.indent(columns, "      ").replace("{", "{{").replace("}", "}}")
    return write_contract(path, columns=columns, **policy)


def _rows(**overrides):
    fields = {"order_id": pa.array([1, 2, 3], pa.int64()), "amount": pa.array([1.0, 2.0, 3.0]),
              "quantity": pa.array([1, 2, 3], pa.int64())}
    fields.update(overrides)
    return pa.table({k: v for k, v in fields.items() if v is not None})


CHANGES = {
    "added": dict(extra=pa.array(["a", "b", "c"])),
    "dropped": dict(quantity=None),
    "narrowed": dict(quantity=pa.array([1, 2, 3], pa.int32())),
    "nullability": None,  # built below: a non-nullable field where the contract allows nulls
}


def _changed(kind):
    if kind == "nullability":
        schema = pa.schema([pa.field("order_id", pa.int64(), nullable=False), ("amount", pa.float64()),
                            ("quantity", pa.int64())])
        return _rows().cast(schema)
    return _rows(**CHANGES[kind])


@pytest.mark.parametrize("kind", ["added", "dropped", "narrowed", "nullability"])
def test_strict_schema_blocks_each_change_before_writing(catalog, tmp_path, kind):
    contract = _schema_contract(tmp_path / "c.yaml")
    run_ingest(TableSource(_rows()), catalog, "lake.orders", audit=ContractGate(contract, catalog))
    before = catalog.load().load_table("lake.orders")
    with pytest.raises(ContractViolationError, match=f"schema:.*:{kind}"):
        run_ingest(TableSource(_changed(kind), identity="memory://changed"), catalog, "lake.orders",
                   audit=ContractGate(contract, catalog))
    after = catalog.load().load_table("lake.orders")
    assert after.current_snapshot().snapshot_id == before.current_snapshot().snapshot_id
    assert after.schema() == before.schema()


@pytest.mark.parametrize(("kind", "policy", "published"), [
    ("added", {"expansion": "true"}, True),       # a new nullable column: allowed by expansion
    ("nullability", {"expansion": "true"}, True),  # data stricter than the contract: allowed when not strict
    ("narrowed", {"widening": "true"}, True),      # the table keeps the contract's wider type
    ("dropped", {"expansion": "true", "widening": "true"}, False),  # never allowed
])
def test_relaxed_policies_allow_what_they_say(catalog, tmp_path, kind, policy, published):
    contract = _schema_contract(tmp_path / "c.yaml", **policy)
    run_ingest(TableSource(_rows()), catalog, "lake.orders", audit=ContractGate(contract, catalog))
    source = TableSource(_changed(kind), identity="memory://changed")
    if not published:
        with pytest.raises(ContractViolationError, match=f"schema:quantity:{kind}"):
            run_ingest(source, catalog, "lake.orders", audit=ContractGate(contract, catalog))
        return
    result = run_ingest(source, catalog, "lake.orders", audit=ContractGate(contract, catalog))
    assert result.rows_published == 3
    assert table_rows(catalog, "lake.orders").num_rows == 6
    allowed = [c for c in result.quality["checks"] if c["category"] == "schema"]
    assert allowed and all(c["outcome"] == "passed" for c in allowed)


def test_schema_quarantine_holds_the_whole_run(catalog, tmp_path):
    contract = _schema_contract(tmp_path / "c.yaml", schema="quarantine")
    run_ingest(TableSource(_rows()), catalog, "lake.orders", audit=ContractGate(contract, catalog))
    result = run_ingest(TableSource(_changed("narrowed"), identity="memory://changed"), catalog, "lake.orders",
                        audit=ContractGate(contract, catalog))
    assert (result.rows_published, result.rows_quarantined) == (0, 3)
    assert table_rows(catalog, "lake.orders").num_rows == 3
    held = table_rows(catalog, "lake.orders_quarantine")
    assert held["_dativo_failed_checks"].to_pylist() == [["schema:quantity:narrowed"]] * 3


def test_a_quarantined_merge_update_keeps_the_previous_row(catalog, tmp_path):
    from dativo_provider.ingest.options import WriteOptions

    contract = write_contract(tmp_path / "orders.yaml")
    merge = WriteOptions(mode="merge", merge_keys=("order_id",))
    run_ingest(TableSource(orders(1_000, bad=False)), catalog, "lake.orders", merge,
               audit=ContractGate(contract, catalog))
    update = orders(1_000, bad=False).slice(0, 10)
    update = update.set_column(2, "amount", pa.array([-1.0] * 5 + [500.0] * 5))  # 5 bad updates, 5 good
    result = run_ingest(TableSource(update, identity="memory://updates"), catalog, "lake.orders", merge,
                        audit=ContractGate(contract, catalog))
    assert (result.rows_published, result.rows_quarantined) == (5, 5)
    main = table_rows(catalog, "lake.orders").sort_by("order_id")
    assert main.num_rows == 1_000
    amounts = dict(zip(main["order_id"].to_pylist(), main["amount"].to_pylist()))
    original = orders(1_000, bad=False)
    for order_id in range(5):  # held back: the previous value stays
        assert amounts[order_id] == original["amount"][order_id].as_py()
    for order_id in range(5, 10):
        assert amounts[order_id] == 500.0
    assert sorted(table_rows(catalog, "lake.orders_quarantine")["order_id"].to_pylist()) == [0, 1, 2, 3, 4]


def test_a_table_created_under_a_contract_keeps_personal_values_out_of_statistics(catalog, tmp_path):
    from dativo_provider.contracts.loader import load_contract
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.quality.wap import write_options_for

    contract = load_contract("contracts/customers.odcs.yaml")
    options = write_options_for(contract, None, WriteOptions(column_properties={"country": {"metrics": "full"}}))
    assert options.column_properties["email"]["metrics"] == "counts"          # pii
    assert options.column_properties["customer_id"]["metrics"] == "counts"    # identifies the subject
    assert options.column_properties["country"] == {"metrics": "full", "doc": "ISO 3166-1 alpha-2 country code."}
    rows = pa.table({"customer_id": pa.array([7, 9], pa.int64()), "email": ["a@x.org", "b@x.org"],
                     "first_name": ["A", "B"], "last_name": ["C", "D"], "country": ["DE", "FR"],
                     "signup_at": pa.array([0, 1], pa.timestamp("us", "UTC")), "is_active": [True, False],
                     "marketing_opt_in": [False, True], "birth_year": pa.array([1980, None], pa.int32())})
    run_ingest(TableSource(rows), catalog, "lake.customers", options,
               audit=ContractGate("contracts/customers.odcs.yaml", catalog))
    table = catalog.load().load_table("lake.customers")
    email_id = table.schema().find_field("email").field_id
    country_id = table.schema().find_field("country").field_id
    files = list(table.scan().plan_files())
    assert files and all(email_id not in (t.file.lower_bounds or {}) for t in files)
    assert all(country_id in t.file.lower_bounds for t in files)
    assert table.schema().find_field("email").doc == "Contact e-mail address."


def test_tables_record_their_contract_and_quarantines_their_table(catalog, tmp_path):
    from dativo_provider.contracts.loader import load_contract
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.quality.wap import write_options_for

    path = write_contract(tmp_path / "orders.yaml")
    options = write_options_for(load_contract(path), None, WriteOptions())
    run_ingest(TableSource(orders(2_000)), catalog, "lake.renamed_orders", options,
               audit=ContractGate(path, catalog))
    main = catalog.load().load_table("lake.renamed_orders")
    assert main.properties["dativo.contract"] == "urn:test:orders"
    assert main.properties["dativo.contract-dataset"] == "orders"
    held = catalog.load().load_table("lake.renamed_orders_quarantine")
    assert held.properties["dativo.quarantine-of"] == "lake.renamed_orders"


def test_a_quarantine_keeps_personal_values_out_of_statistics_too(catalog, tmp_path):
    rows = pa.table({"customer_id": pa.array([7, 9], pa.int64()), "email": ["a@x.org", "not an email"],
                     "first_name": ["A", "B"], "last_name": ["C", "D"], "country": ["DE", "FR"],
                     "signup_at": pa.array([0, 1], pa.timestamp("us", "UTC")), "is_active": [True, False],
                     "marketing_opt_in": [False, True], "birth_year": pa.array([1980, None], pa.int32())})
    result = run_ingest(TableSource(rows), catalog, "lake.customers",
                        audit=ContractGate("contracts/customers.odcs.yaml", catalog))
    assert result.rows_quarantined == 1
    held = catalog.load().load_table("lake.customers_quarantine")
    assert held.properties["write.metadata.metrics.column.email"] == "counts"
    email_id = held.schema().find_field("email").field_id
    assert all(email_id not in (t.file.lower_bounds or {}) for t in held.scan().plan_files())


KEYED = """\
      - name: order_id
        logicalType: integer
        physicalType: bigint
      - name: shop
        logicalType: string
      - name: code
        logicalType: string
    quality:
      - name: shop_code_unique
        metric: duplicateValues
        arguments: {{properties: [shop, code]}}
        mustBe: 0
"""


@pytest.mark.parametrize("engine", ["soda", "great_expectations", "custom"])
def test_a_null_in_a_composite_key_is_never_a_duplicate_and_quarantine_agrees(catalog, tmp_path, engine):
    """Soda counted NULL tuples as duplicates while the quarantine predicate did not, so a quarantine
    contract blocked the run ("predicate finds 4 rows but the engine counted 3"), issue 12 point 2."""
    columns = KEYED if engine == "soda" else KEYED + (
        "        customProperties: [{{property: dativoEngine, value: " + engine + "}}]\n")
    contract = write_contract(tmp_path / "orders.yaml", columns=columns)
    shops = ["a", "a", "a", None, None, "b", "b", None, "c", None]
    codes = ["x", "x", None, "y", "y", "Y", "y", None, None, None]
    data = pa.table({"order_id": pa.array(range(len(shops)), pa.int64()), "shop": shops, "code": codes})
    gate = ContractGate(contract, catalog)
    result = run_ingest(TableSource(data), catalog, "lake.orders", audit=gate, run_id="run-1")
    # Plain Python: rows whose (shop, code) has no NULL and repeats — only ("a", "x") twice.
    keys = [k for k in zip(shops, codes) if None not in k]
    expected = sum(1 for k in keys if keys.count(k) > 1)
    assert expected == 2
    assert (result.quality["decision"], result.rows_quarantined, result.rows_published) == (
        "quarantine", expected, len(shops) - expected)
    assert sorted(table_rows(catalog, "lake.orders_quarantine")["order_id"].to_pylist()) == [0, 1]
    checks = {c["name"]: c for c in result.quality["checks"]}
    assert (checks["shop_code_unique"]["engine"], checks["shop_code_unique"]["failing_rows"]) == (engine, 2)
