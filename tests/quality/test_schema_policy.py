"""Schema policy: real ODCS contracts written to a temp dir and loaded, against real Arrow schemas,
including schemas pyarrow reads from CSV and Parquet files and those the files source gives the
bundled sample data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml

import dativo_provider
from dativo_provider.contracts import load_contract
from dativo_provider.contracts.model import Contract, SchemaPolicy
from dativo_provider.quality.result import CheckResult
from dativo_provider.quality.schema_policy import expected_arrow_type, schema_findings
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.files import from_spec

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DATA = Path(dativo_provider.__file__).parent / "sample_data"

STRICT = SchemaPolicy()
EXPANSION = SchemaPolicy(allow_nullable_expansion=True)
WIDENING = SchemaPolicy(allow_type_widening=True)
POLICIES = {"strict": STRICT, "expansion": EXPANSION, "widening": WIDENING}

ORDERS = [
    {"name": "order_id", "logicalType": "integer", "physicalType": "bigint", "required": True,
     "primaryKey": True, "primaryKeyPosition": 1},
    {"name": "amount", "logicalType": "number", "physicalType": "decimal(18,2)", "required": True},
    {"name": "quantity", "logicalType": "integer", "physicalType": "int", "required": True},
    {"name": "note", "logicalType": "string", "physicalType": "text"},
    {"name": "ordered_at", "logicalType": "timestamp", "physicalType": "timestamptz", "required": True},
]
# Every field nullable, as most sources declare them: required columns arriving nullable are no finding.
ORDERS_SCHEMA = pa.schema([
    ("order_id", pa.int64()),
    ("amount", pa.decimal128(18, 2)),
    ("quantity", pa.int32()),
    ("note", pa.string()),
    ("ordered_at", pa.timestamp("us", tz="UTC")),
])


def write_contract(tmp_path: Path, columns: list[dict[str, Any]], policy: SchemaPolicy) -> Contract:
    """An ODCS v3.1 contract (shaped like contracts/orders.odcs.yaml) for one table, loaded from YAML."""
    document = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "urn:dativo:test:orders",
        "name": "Orders",
        "version": "1.0.0",
        "status": "active",
        "team": {"name": "test-team"},
        "customProperties": [{"property": "dativoSchemaPolicy", "value": {
            "allowNullableExpansion": policy.allow_nullable_expansion,
            "allowTypeWidening": policy.allow_type_widening,
        }}],
        "schema": [{"name": "orders", "physicalName": "shop.orders", "physicalType": "table",
                    "properties": columns}],
    }
    path = tmp_path / "orders.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    contract = load_contract(path)
    assert contract.schema_policy == policy
    return contract


def findings(contract: Contract, schema: pa.Schema) -> list[CheckResult]:
    return schema_findings(contract.datasets[0], schema, contract.schema_policy)


def replace(schema: pa.Schema, name: str, field: pa.Field) -> pa.Schema:
    return schema.set(schema.get_field_index(name), field)


def test_matching_schema_has_no_findings(tmp_path: Path) -> None:
    for policy in POLICIES.values():
        assert findings(write_contract(tmp_path, ORDERS, policy), ORDERS_SCHEMA) == []


# --- each kind of difference under each policy ------------------------------------------------

CHANGES = {
    "added": ORDERS_SCHEMA.append(pa.field("coupon", pa.string())),
    "dropped": ORDERS_SCHEMA.remove(ORDERS_SCHEMA.get_field_index("amount")),
    "narrowed": replace(ORDERS_SCHEMA, "amount", pa.field("amount", pa.decimal128(10, 2))),
    "widened": replace(ORDERS_SCHEMA, "quantity", pa.field("quantity", pa.int64())),
    "incompatible": replace(ORDERS_SCHEMA, "quantity", pa.field("quantity", pa.string())),
    "nullability": replace(ORDERS_SCHEMA, "note", pa.field("note", pa.string(), nullable=False)),
}
# (kind, policy) -> (column, outcome, fragments the message must contain)
MATRIX = {
    ("added", "strict"): ("coupon", "failed", [
        "shop.orders.coupon: the data brings a column of string (nullable) that the contract does not list",
        "add the column to the contract, or set allowNullableExpansion"]),
    ("added", "expansion"): ("coupon", "passed", ["(added column; allowed by allowNullableExpansion)"]),
    ("added", "widening"): ("coupon", "failed", ["(added column; not allowed"]),
    ("dropped", "strict"): ("amount", "failed", [
        "shop.orders.amount: the contract promises a required column of decimal(18,2) that the data "
        "does not bring (dropped column; never allowed)"]),
    ("dropped", "expansion"): ("amount", "failed", ["required column of decimal(18,2)", "never allowed"]),
    ("dropped", "widening"): ("amount", "failed", ["required column of decimal(18,2)", "never allowed"]),
    ("narrowed", "strict"): ("amount", "failed", [
        "shop.orders.amount: the data brings decimal(10,2) where the contract promises decimal(18,2) "
        "(narrowed type; not allowed", "or set allowTypeWidening"]),
    ("narrowed", "expansion"): ("amount", "failed", [
        "decimal(10,2)", "decimal(18,2)", "narrowed type; not allowed"]),
    ("narrowed", "widening"): ("amount", "passed", [
        "shop.orders.amount: the data brings decimal(10,2) where the contract promises decimal(18,2) "
        "(narrowed type; allowed by allowTypeWidening; the table keeps the contract's type)"]),
    ("widened", "strict"): ("quantity", "failed", [
        "shop.orders.quantity: the data brings int64 where the contract promises int (int32) "
        "(widened type; not allowed: widen the contract's type, or set allowTypeWidening)"]),
    ("widened", "expansion"): ("quantity", "failed", ["int64", "int (int32)", "widened type; not allowed"]),
    ("widened", "widening"): ("quantity", "passed", [
        "shop.orders.quantity: the data brings int64 where the contract promises int (int32) "
        "(widened type; allowed by allowTypeWidening)"]),
    ("incompatible", "strict"): ("quantity", "failed", [
        "shop.orders.quantity: the data brings string where the contract promises int (int32) "
        "(incompatible type; never allowed"]),
    ("incompatible", "expansion"): ("quantity", "failed", ["string", "int (int32)", "incompatible type"]),
    ("incompatible", "widening"): ("quantity", "failed", ["string", "int (int32)", "incompatible type"]),
    ("nullability", "strict"): ("note", "failed", [
        "shop.orders.note: the data brings string declared not nullable where the contract promises a "
        "nullable (not required) text", "(nullable → required; not allowed under a strict schema policy"]),
    ("nullability", "expansion"): ("note", "passed", [
        "text", "string", "allowed by the relaxed schema policy (allowNullableExpansion)"]),
    ("nullability", "widening"): ("note", "passed", [
        "text", "string", "allowed by the relaxed schema policy (allowTypeWidening)"]),
}


@pytest.mark.parametrize(("kind", "policy"), sorted(MATRIX), ids="-".join)
def test_each_difference_under_each_policy(tmp_path: Path, kind: str, policy: str) -> None:
    column, outcome, fragments = MATRIX[kind, policy]
    [result] = findings(write_contract(tmp_path, ORDERS, POLICIES[policy]), CHANGES[kind])

    assert (result.name, result.column, result.outcome) == (f"schema:{column}:{kind}", column, outcome)
    assert (result.engine, result.category, result.severity, result.metric) == (
        "dativo", "schema", "error", "schema")
    assert result.dataset == "orders"
    for fragment in fragments:
        assert fragment in result.message


def test_added_column_must_be_nullable_even_with_expansion(tmp_path: Path) -> None:
    contract = write_contract(tmp_path, ORDERS, EXPANSION)
    schema = ORDERS_SCHEMA.append(pa.field("coupon", pa.int32(), nullable=False))

    [result] = findings(contract, schema)

    assert (result.name, result.outcome) == ("schema:coupon:added", "failed")
    assert "a column of int32 (not nullable)" in result.message
    assert "allowNullableExpansion accepts only nullable new columns" in result.message


def test_dropped_column_says_whether_it_was_required_and_spots_a_case_change(tmp_path: Path) -> None:
    contract = write_contract(tmp_path, ORDERS, EXPANSION)
    schema = ORDERS_SCHEMA.remove(ORDERS_SCHEMA.get_field_index("note"))
    schema = replace(schema, "order_id", pa.field("Order_ID", pa.int64()))

    results = {r.name: r for r in findings(contract, schema)}

    assert sorted(results) == ["schema:Order_ID:added", "schema:note:dropped", "schema:order_id:dropped"]
    assert "a not required column of text" in results["schema:note:dropped"].message
    assert results["schema:note:dropped"].outcome == "failed"
    assert "a required column of bigint (int64)" in results["schema:order_id:dropped"].message
    assert "the data has 'Order_ID', which differs only in case" in results["schema:order_id:dropped"].message
    assert results["schema:Order_ID:added"].outcome == "passed"


def test_several_findings_come_in_contract_order_then_added(tmp_path: Path) -> None:
    contract = write_contract(tmp_path, ORDERS, WIDENING)
    schema = pa.schema([
        ("extra", pa.string()),
        ("ordered_at", pa.timestamp("us")),
        ("note", pa.large_string()),
        ("quantity", pa.int16()),
        ("order_id", pa.int64()),
    ])

    results = [(r.name, r.outcome) for r in findings(contract, schema)]

    assert results == [
        ("schema:amount:dropped", "failed"),
        ("schema:quantity:narrowed", "passed"),
        ("schema:ordered_at:incompatible", "failed"),
        ("schema:extra:added", "failed"),
    ]


# --- type resolution and widening rules, one column at a time ---------------------------------

WIDTHS = [
    # (physicalType, logicalType, data type, the finding's kind or None)
    ("tinyint", "integer", pa.int16(), "widened"),
    ("smallint", "integer", pa.int32(), "widened"),
    ("int4", "integer", pa.int64(), "widened"),
    ("BIGINT", "integer", pa.int32(), "narrowed"),
    ("int8", "integer", pa.int8(), "narrowed"),
    ("long", "integer", pa.int64(), None),
    ("bigint", "integer", pa.uint32(), "narrowed"),
    ("bigint", "integer", pa.uint64(), "incompatible"),
    ("int", "integer", pa.float64(), "incompatible"),
    ("bigint", "integer", pa.decimal128(20, 0), "incompatible"),
    ("real", "number", pa.float64(), "widened"),
    ("float", "number", pa.float32(), None),
    ("double precision", "number", pa.float32(), "narrowed"),
    ("float8", "number", pa.float64(), None),
    ("double", "number", pa.int64(), "incompatible"),
    ("double", "number", pa.decimal128(10, 2), "incompatible"),
    ("decimal(10,2)", "number", pa.decimal128(12, 2), "widened"),
    ("NUMERIC(18, 2)", "number", pa.decimal128(10, 2), "narrowed"),
    ("decimal(10,2)", "number", pa.decimal256(10, 2), None),
    ("decimal(10,2)", "number", pa.decimal128(12, 3), "incompatible"),
    ("decimal(12)", "number", pa.decimal128(12, 0), None),
    ("numeric", "number", pa.decimal128(38, 9), None),
    ("decimal(18,2)", "number", pa.int64(), "incompatible"),
    ("decimal(12,2)", "number", pa.float64(), "incompatible"),
    ("text", "string", pa.large_string(), None),
    ("varchar(20)", "string", pa.string(), None),
    ("character varying(20)", "string", pa.string_view(), None),
    ("char(2)", "string", pa.dictionary(pa.int32(), pa.string()), None),
    ("string", "string", pa.int64(), "incompatible"),
    ("json", "object", pa.string(), None),
    ("jsonb", "object", pa.struct([("a", pa.int64())]), "incompatible"),
    ("uuid", "string", pa.string(), None),
    ("uuid", "string", pa.binary(16), None),
    ("uuid", "string", pa.binary(), "incompatible"),
    ("bytea", "string", pa.binary(), None),
    ("blob", "string", pa.large_binary(), None),
    ("binary", "string", pa.string(), "incompatible"),
    ("bool", "boolean", pa.bool_(), None),
    ("boolean", "boolean", pa.int8(), "incompatible"),
    ("date", "date", pa.date32(), None),
    ("date", "date", pa.date64(), None),
    ("date", "date", pa.timestamp("us"), "incompatible"),
    ("timestamp", "timestamp", pa.timestamp("ns"), None),
    ("datetime", "timestamp", pa.timestamp("s"), None),
    ("timestamp without time zone", "timestamp", pa.timestamp("us", tz="UTC"), "incompatible"),
    ("timestamp(3)", "timestamp", pa.timestamp("ms"), None),
    ("timestamp(3)", "timestamp", pa.timestamp("us"), "incompatible"),
    ("timestamptz", "timestamp", pa.timestamp("us", tz="Europe/Warsaw"), None),
    ("timestamp with time zone", "timestamp", pa.timestamp("ms", tz="UTC"), None),
    ("timestamptz(6)", "timestamp", pa.timestamp("ns", tz="UTC"), "incompatible"),
    ("timestamptz", "timestamp", pa.timestamp("us"), "incompatible"),
    ("timestamptz", "timestamp", pa.date32(), "incompatible"),
    ("bigint", "integer", pa.null(), None),
    # Arrow's canonical extension types (pyarrow >= 18 for uuid, >= 19 for json).
    *([("uuid", "string", pa.uuid(), None)] if hasattr(pa, "uuid") else []),
    *([("jsonb", "object", pa.json_(), None)] if hasattr(pa, "json_") else []),
    # physicalType this module does not know: logicalType decides.
    ("geometry", "string", pa.string(), None),
    ("varchar2(20)", "string", pa.int64(), "incompatible"),
    ("array<int>", "array", pa.list_(pa.int32()), None),
    # logicalType only: any width of the family, so never widened or narrowed.
    (None, "integer", pa.int8(), None),
    (None, "integer", pa.uint64(), None),
    (None, "integer", pa.float64(), "incompatible"),
    (None, "number", pa.decimal128(38, 10), None),
    (None, "number", pa.float32(), None),
    (None, "number", pa.int16(), None),
    (None, "number", pa.string(), "incompatible"),
    (None, "string", pa.large_string(), None),
    (None, "string", pa.binary(), "incompatible"),
    (None, "boolean", pa.bool_(), None),
    (None, "date", pa.date64(), None),
    (None, "date", pa.timestamp("us"), "incompatible"),
    (None, "timestamp", pa.timestamp("us"), None),
    (None, "timestamp", pa.timestamp("s", tz="UTC"), None),
    (None, "timestamp", pa.string(), "incompatible"),
    (None, "array", pa.large_list(pa.string()), None),
    (None, "array", pa.string(), "incompatible"),
    (None, "object", pa.struct([("a", pa.int64())]), None),
    (None, "object", pa.map_(pa.string(), pa.int64()), None),
    (None, "object", pa.string(), None),
    (None, "object", pa.int64(), "incompatible"),
    # No type this module knows: no type finding.
    (None, "time", pa.int64(), None),
    (None, None, pa.int64(), None),
]


@pytest.mark.parametrize(("physical", "logical", "data", "kind"), WIDTHS,
                         ids=[f"{p}-{lg}-{d}" for p, lg, d, _ in WIDTHS])
def test_type_resolution_and_widening(
    tmp_path: Path, physical: str | None, logical: str | None, data: pa.DataType, kind: str | None
) -> None:
    column = {"name": "c", "required": True}
    column.update({k: v for k, v in (("physicalType", physical), ("logicalType", logical)) if v})
    contract = write_contract(tmp_path, [column], WIDENING)

    results = findings(contract, pa.schema([("c", data)]))

    assert [r.name for r in results] == ([f"schema:c:{kind}"] if kind else [])


def test_expected_arrow_type_names_the_contract_type(tmp_path: Path) -> None:
    contract = write_contract(tmp_path, ORDERS + [{"name": "x", "logicalType": "time"}], STRICT)
    dataset = contract.datasets[0]

    labels = {c.name: getattr(expected_arrow_type(c), "label", None) for c in dataset.columns}

    assert labels == {
        "order_id": "bigint (int64)", "amount": "decimal(18,2)", "quantity": "int (int32)",
        "note": "text", "ordered_at": "timestamptz (timestamp with a zone)", "x": None,
    }
    spec = expected_arrow_type(dataset.column("amount"))
    assert spec is not None and spec.exact == pa.decimal128(18, 2)


def test_nullability_finding_needs_a_column_not_required(tmp_path: Path) -> None:
    contract = write_contract(tmp_path, ORDERS, STRICT)
    schema = pa.schema([pa.field(f.name, f.type, nullable=False) for f in ORDERS_SCHEMA])

    assert [r.name for r in findings(contract, schema)] == ["schema:note:nullability"]


# --- schemas pyarrow reads from real files ----------------------------------------------------

CSV = """order_id,amount,quantity,note,ordered_at,coupon
1,12.50,2,,2024-05-01T10:00:00Z,SPRING
2,7.25,1,gift,2024-05-01T11:30:00Z,
"""


def test_csv_read_with_inferred_types(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(CSV, encoding="utf-8")
    schema = pcsv.read_csv(tmp_path / "orders.csv").schema
    assert schema.field("ordered_at").type == pa.timestamp("s", tz="UTC")
    contract = write_contract(tmp_path, ORDERS, EXPANSION)

    results = {r.name: r for r in findings(contract, schema)}

    assert {name: r.outcome for name, r in results.items()} == {
        "schema:amount:incompatible": "failed",
        "schema:quantity:widened": "failed",
        "schema:coupon:added": "passed",
    }
    assert "the data brings double where the contract promises decimal(18,2)" in (
        results["schema:amount:incompatible"].message)


def test_csv_read_with_the_contract_types_matches(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(CSV, encoding="utf-8")
    types = {"amount": pa.decimal128(18, 2), "quantity": pa.int32()}
    read = pcsv.read_csv(tmp_path / "orders.csv", convert_options=pcsv.ConvertOptions(column_types=types))
    contract = write_contract(tmp_path, ORDERS, STRICT)

    results = [(r.name, r.outcome) for r in findings(contract, read.schema)]

    assert results == [("schema:coupon:added", "failed")]


def test_parquet_read_back(tmp_path: Path) -> None:
    schema = pa.schema([
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("quantity", pa.int16()),
        pa.field("note", pa.string(), nullable=False),
    ])
    table = pa.table({"order_id": [1, 2], "amount": [None, None], "quantity": [3, 4], "note": ["a", "b"]},
                     schema=schema)
    pq.write_table(table, tmp_path / "orders.parquet")
    read = pq.read_table(tmp_path / "orders.parquet").schema
    contract = write_contract(tmp_path, ORDERS, WIDENING)

    results = {r.name: r for r in findings(contract, read)}

    assert {name: r.outcome for name, r in results.items()} == {
        "schema:amount:narrowed": "passed",
        "schema:quantity:narrowed": "passed",
        "schema:note:nullability": "passed",
        "schema:ordered_at:dropped": "failed",
    }
    assert "shop.orders.ordered_at: the contract promises a required column of timestamptz" in (
        results["schema:ordered_at:dropped"].message)
    assert "int16 where the contract promises int (int32)" in results["schema:quantity:narrowed"].message


# --- the example contracts against the bundled sample data ------------------------------------

# The source specs in dativo_provider/sample_data/README.md, which read the files with exact types.
DECLARED = {
    "customers": {"glob": "customers.csv", "columns": {
        "customer_id": "int64", "email": "string", "first_name": "string", "last_name": "string",
        "country": "string", "signup_at": "timestamptz", "is_active": "bool",
        "marketing_opt_in": "bool", "birth_year": "int32"}},
    "orders": {"glob": "orders_*.csv", "columns": {
        "order_id": "int64", "ordered_at": "timestamptz", "customer_id": "int64", "product_id": "int64",
        "quantity": "int32", "amount": "decimal(12,2)", "currency": "string", "status": "string"}},
}


def sample_schema(glob: str, columns: dict[str, str] | None = None) -> pa.Schema:
    """The schema the files source gives the sample files, as the ingest sees it."""
    spec: dict[str, Any] = {"type": "files", "path": str(SAMPLE_DATA), "glob": glob}
    if columns:
        spec["columns"] = columns
    with from_spec(spec, None).open(None, ReadBounds()) as stream:
        return stream.schema


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_example_contracts_accept_the_sample_data_read_with_declared_types(name: str) -> None:
    contract = load_contract(ROOT / "contracts" / f"{name}.odcs.yaml")
    schema = sample_schema(**DECLARED[name])

    assert findings(contract, schema) == []


def test_example_contracts_against_the_sample_data_as_the_example_dag_reads_it() -> None:
    """example_files_to_iceberg.py reads the files without ``columns``, so types are inferred: the
    contracts then find these differences (reported; the contracts and the DAG are left as they are)."""
    found = {}
    for name, spec in DECLARED.items():
        contract = load_contract(ROOT / "contracts" / f"{name}.odcs.yaml")
        found.update({r.name: r.outcome for r in findings(contract, sample_schema(spec["glob"]))})

    assert found == {
        "schema:birth_year:widened": "failed",  # int64 inferred; contract int, allowTypeWidening false
        "schema:quantity:widened": "passed",  # int64 inferred; contract int, allowTypeWidening true
        "schema:amount:incompatible": "failed",  # double inferred; contract decimal(12,2)
    }


# --- a real Postgres table: NOT NULL columns arrive non-nullable ----------------------------------


@pytest.mark.postgres
def test_a_postgres_not_null_column_the_contract_leaves_optional_is_a_finding_unless_opted_out(
    tmp_path: Path, pg: Any, pg_schema: str, postgres_config: Any
) -> None:
    from dativo_provider.exceptions import ContractViolationError
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.quality.wap import ContractGate
    from dativo_provider.sources import build_source

    pg.execute(f'CREATE TABLE "{pg_schema}".orders (order_id bigint PRIMARY KEY, '
               "amount numeric(18, 2) NOT NULL, quantity int NOT NULL, note text NOT NULL, "
               "ordered_at timestamptz NOT NULL)")
    pg.execute(f"""INSERT INTO "{pg_schema}".orders VALUES (1, 9.50, 2, 'gift', '2024-01-01 10:00+00')""")
    source = build_source({"type": "postgres", "table": f"{pg_schema}.orders"}, postgres_config)
    with source.open(None, ReadBounds()) as stream:
        schema = stream.schema
    contract = write_contract(tmp_path, ORDERS, STRICT)  # note is not required in the contract

    assert {r.name: r.outcome for r in findings(contract, schema)} == {"schema:note:nullability": "failed"}
    catalog = embedded_catalog(tmp_path / "lake")
    with pytest.raises(ContractViolationError, match="shop.orders.note: the data brings string declared not"):
        run_ingest(source, catalog, "shop.orders", audit=ContractGate(contract, catalog))

    result = run_ingest(source, catalog, "shop.orders", WriteOptions(required_columns=False),
                        audit=ContractGate(contract, catalog))
    assert result.rows_published == 1
    assert not any(f.required for f in catalog.load().load_table("shop.orders").schema().fields)
