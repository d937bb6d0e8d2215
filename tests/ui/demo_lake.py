"""The demo's state for the page's tests, built with the engine in a few seconds.

What ``dev/demo`` leaves behind, minus the contract engines' run (Soda/GX would add a minute): the
bundled customers and orders loaded from the sample files (incremental file state in each commit,
the contracts' table properties), the four bad late orders held in ``examples.orders_quarantine``
with the checks they fail, customer 87 erased with a signed certificate and an audit trail, and a
table literally named ``<script>``. A reports folder holds a contract report (as
``ContractCheckOperator`` writes it) and a drift report with its HTML plots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import dativo_provider
from dativo_provider.contracts.loader import load_contract
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.drift import drift_report
from dativo_provider.privacy.audit import AuditTrail, IcebergAuditStore
from dativo_provider.privacy.certificate import SigningKey
from dativo_provider.privacy.dsr import erase_request
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.quality import quarantine as q
from dativo_provider.quality.result import CheckResult, QualityReport
from dativo_provider.quality.verdict import judge_in_place
from dativo_provider.quality.wap import write_options_for
from dativo_provider.sources.files import from_spec

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
SAMPLE = Path(dativo_provider.__file__).parent / "sample_data"
HASH_KEY = b"ui-tests-audit-trail-key-32-bytes"
SIGNING_SECRET = b"ui-tests-certificate-signing-key"
SIGNING_KEY_ID = "ui-tests"
REQUEST_ID = "demo-erasure-87"
SCRIPT_TABLE = "examples.<script>"
QUARANTINE_RUN = "orders-late-2024-04"
CUSTOMER_COLUMNS = {
    "customer_id": "int64", "email": "string", "first_name": "string", "last_name": "string",
    "country": "string", "signup_at": "timestamptz", "is_active": "bool", "marketing_opt_in": "bool",
    "birth_year": "int32"}
ORDER_COLUMNS = {
    "order_id": "int64", "ordered_at": "timestamptz", "customer_id": "int64", "product_id": "int64",
    "quantity": "int32", "amount": "decimal(12,2)", "currency": "string", "status": "string"}
CURRENCIES = ["AUD", "BRL", "CAD", "EUR", "GBP", "INR", "JPY", "PLN", "SEK", "USD"]
STATUSES = ["placed", "paid", "shipped", "refunded", "cancelled"]
#: Each check the bad orders can fail: (name, the quarantine table's reason, rows failing it).
RULES = {
    "currency_known": ("invalid on currency", lambda t: pc.invert(pc.is_in(t["currency"], pa.array(CURRENCIES)))),
    "status_known": ("invalid on status", lambda t: pc.invert(pc.is_in(t["status"], pa.array(STATUSES)))),
    "customer_id_present": ("nullValues on customer_id", lambda t: pc.is_null(t["customer_id"])),
}


@dataclass(frozen=True)
class DemoLake:
    home: Path
    catalog: CatalogConfig
    contracts: Path
    reports: Path
    certificates: Path
    held_rows: int

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey.hmac(SIGNING_SECRET, SIGNING_KEY_ID)


def build_demo_lake(home: Path) -> DemoLake:
    catalog = embedded_catalog(home / "lake")
    _load(catalog, "customers", "customers.csv", CUSTOMER_COLUMNS)
    _load(catalog, "orders", "orders_2024-0[123].csv", ORDER_COLUMNS)
    held = _quarantine_bad_orders(catalog)
    _script_table(catalog)
    certificates = home / "dsr" / "certificates"
    _erase_customer_87(catalog, certificates)
    reports = home / "reports"
    _write_reports(catalog, reports / "examples.orders")
    return DemoLake(home, catalog, CONTRACTS, reports, certificates, held)


def _load(catalog: CatalogConfig, name: str, glob: str, columns: dict[str, str]) -> None:
    contract = load_contract(CONTRACTS / f"{name}.odcs.yaml")
    source = from_spec({"type": "files", "path": str(SAMPLE), "glob": glob, "columns": columns}, None)
    run_ingest(source, catalog, f"examples.{name}", write_options_for(contract, None, WriteOptions()),
               run_id=f"{name}-initial")


def _read(glob: str, columns: dict[str, str]) -> pa.Table:
    from dativo_provider.sources.base import ReadBounds

    source = from_spec({"type": "files", "path": str(SAMPLE), "glob": glob, "columns": columns}, None)
    with source.open(None, ReadBounds()) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema)


def _quarantine_bad_orders(catalog: CatalogConfig) -> int:
    """The late orders the contract rejects, held with the checks each fails (as the gate writes them)."""
    bad = _read("bad_orders_2024-04.csv", ORDER_COLUMNS)
    hits = {name: rule(bad).to_pylist() for name, (_, rule) in RULES.items()}
    checks = [[name for name in RULES if hits[name][i]] for i in range(bad.num_rows)]
    failing_rows = [i for i, row in enumerate(checks) if row]
    failing = bad.take(failing_rows)
    checks = [checks[i] for i in failing_rows]
    reasons = ["failed " + ", ".join(f"{name} ({RULES[name][0]})" for name in row) for row in checks]
    rows = q.with_reasons(failing, checks, reasons, QUARANTINE_RUN, None, datetime(2024, 4, 2, tzinfo=timezone.utc))
    q.write_quarantine(catalog, "examples.orders_quarantine", rows.schema, iter(rows.to_batches()), QUARANTINE_RUN,
                       guarded_table="examples.orders")
    return failing.num_rows


def _script_table(catalog: CatalogConfig) -> None:
    table = catalog.load().create_table(SCRIPT_TABLE, pa.schema([("<b>col</b>", pa.string())]))
    table.append(pa.table({"<b>col</b>": ["<img src=x onerror=alert(1)>"]}))


def _erase_customer_87(catalog: CatalogConfig, certificates: Path) -> None:
    trail = AuditTrail(IcebergAuditStore(catalog.load(), "dativo.dsr_audit"), HASH_KEY)
    request = SubjectRequest(REQUEST_ID, "erasure", "customer", subject_ids=("87",))
    erase_request(catalog, [CONTRACTS / "customers.odcs.yaml", CONTRACTS / "orders.odcs.yaml"], request,
                  certificates / f"{REQUEST_ID}.json", signing_key=SigningKey.hmac(SIGNING_SECRET, SIGNING_KEY_ID),
                  hash_key=HASH_KEY, trail=trail, refs_policy="remove", safety_window=timedelta(0))


def _write_reports(catalog: CatalogConfig, folder: Path) -> None:
    """A contract check's report and a drift report of examples.orders, as their operators write them."""
    folder.mkdir(parents=True, exist_ok=True)
    contract = load_contract(CONTRACTS / "orders.odcs.yaml")
    orders = catalog.load().load_table("examples.orders")
    rows = orders.scan().to_arrow()
    snapshot = orders.current_snapshot()
    checks = [
        CheckResult("customer_id_present", "soda", "quality", "error", "passed", "orders", "customer_id",
                    "missing_count", 0, "mustBe 0", 0),
        CheckResult("currency_known", "great_expectations", "quality", "error", "passed", "orders", "currency",
                    "invalid_count", 0, "mustBe 0", 0),
        CheckResult("amount_matches_quantity", "custom", "quality", "warning", "failed", "orders", None, None, 3,
                    None, 3, failing_keys=[{"order_id": 1}, {"order_id": 2}, {"order_id": 3}],
                    message="3 rows where amount is not quantity times the unit price"),
    ]
    report = QualityReport(contract.id, contract.version, "orders", "iceberg://lake/examples.orders", rows.num_rows,
                           checks, 0.4, snapshot.snapshot_id if snapshot else None)
    (folder / "contract-20240402T000000.json").write_text(
        json.dumps(judge_in_place(contract, report).report_dict(report), default=str), encoding="utf-8")
    months = pc.month(rows["ordered_at"])
    drift = drift_report(rows.filter(pc.equal(months, 1)).select(["quantity", "amount", "currency", "status"]),
                         rows.filter(pc.equal(months, 3)).select(["quantity", "amount", "currency", "status"]))
    drift.write(str(folder / "drift-20240402.json"), str(folder / "drift-20240402.html"), "orders: March vs January")
