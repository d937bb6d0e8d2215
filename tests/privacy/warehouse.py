"""A five-table warehouse of related personal data, for the data-subject-request tests, demo and bench.

``build_warehouse`` loads, through :func:`run_ingest` with each table's contract enforced
(:class:`ContractGate`, counts-only metrics for personal columns via :func:`write_options_for`):

* ``examples.customers`` (two snapshots; tag ``onboarding`` on the first);
* ``examples.orders`` (one snapshot per month, then ``bad_orders_2024-04.csv``, whose failing rows
  land in ``examples.orders_quarantine`` — one of them the subject's; tag ``eoy-2024`` on the head);
* ``examples.events`` (two snapshots; tag ``q1-2024`` on the first);
* ``examples.support_tickets`` (two snapshots; the subject sends tickets from differently typed
  addresses, one of them anonymously, i.e. with no customer id);
* ``examples.customer_features`` (as of 2024-02-01 and 2024-04-01 on main; branch ``experiment`` from
  the first with one more run on it).

The subject's rows per table are computed here with plain pyarrow from the source data, independently
of the discovery code under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import dativo_provider
from dativo_provider.contracts.loader import load_contract
from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.quality.wap import ContractGate, write_options_for
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.files import from_spec
from tests.memory_source import TableSource

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
TEST_CONTRACTS = Path(__file__).resolve().parent / "contracts"
SAMPLE = Path(dativo_provider.__file__).parent / "sample_data"

#: The data subject the tests ask about: customer 87 has orders in two months, an event, a bad
#: order the contract quarantines, and support tickets sent from differently typed addresses.
SUBJECT_ID = 87
NS = "examples"
TABLES = {name: f"{NS}.{name}" for name in
          ("customers", "orders", "events", "support_tickets", "customer_features")}
QUARANTINE = f"{NS}.orders_quarantine"

CUSTOMER_COLUMNS = {
    "customer_id": "int64", "email": "string", "first_name": "string", "last_name": "string",
    "country": "string", "signup_at": "timestamptz", "is_active": "bool",
    "marketing_opt_in": "bool", "birth_year": "int32"}
ORDER_COLUMNS = {
    "order_id": "int64", "ordered_at": "timestamptz", "customer_id": "int64", "product_id": "int64",
    "quantity": "int32", "amount": "decimal(12,2)", "currency": "string", "status": "string"}
EVENT_COLUMNS = {
    "event_id": "string", "customer_id": "int64", "event_type": "string",
    "occurred_at": "timestamptz", "page": "string", "device": "string", "session_id": "string"}
TICKET_COLUMNS = {
    "ticket_id": "int64", "customer_id": "int64", "email": "string", "subject": "string",
    "channel": "string", "created_at": "timestamptz"}
#: What the orders contract accepts (repeated here so the expected quarantine is computed independently).
CURRENCIES = ["AUD", "BRL", "CAD", "EUR", "GBP", "INR", "JPY", "PLN", "SEK", "USD"]
STATUSES = ["placed", "paid", "shipped", "refunded", "cancelled"]
FEATURE_DATES = (datetime(2024, 2, 1, tzinfo=timezone.utc), datetime(2024, 4, 1, tzinfo=timezone.utc))
EXPERIMENT_DATE = datetime(2024, 3, 1, tzinfo=timezone.utc)


@dataclass
class WarehouseInfo:
    """What the tests need to know about a built warehouse.

    :param expected: per table, the subject's rows as loaded (pyarrow over the source data), keyed by
        catalog identifier; quarantine rows without their ``_dativo_*`` columns.
    :param loaded: every row loaded per table (main tables only), for checks on other subjects.
    """

    catalog: CatalogConfig
    contracts: list[Path]
    tables: dict[str, str]
    quarantine: str
    subject_id: int
    subject_email: str
    expected: dict[str, pa.Table]
    loaded: dict[str, pa.Table] = field(default_factory=dict)
    refs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def expected_rows(self) -> dict[str, int]:
        return {table: rows.num_rows for table, rows in self.expected.items()}


def build_warehouse(catalog_config: CatalogConfig, *, customers: int = 1000, seed: int = 7) -> WarehouseInfo:
    """Load the five tables (and the orders quarantine) into ``catalog_config``; see the module doc.

    :param customers: customers 1..N; the bundled sample data covers 1..1000, more are generated
        (with orders, events and tickets) deterministically from ``seed``.
    """
    if customers < 100:
        raise ValueError("build_warehouse needs at least 100 customers (the subject is customer 87)")
    data = _source_data(customers, seed)
    catalog_config.load().create_namespace_if_not_exists(NS)
    _load_customers(catalog_config, data["customers"])
    _load_orders(catalog_config, data["orders"], data["bad_orders"])
    _load_halves(catalog_config, "events", data["events"], "occurred_at", tag="q1-2024")
    _load_halves(catalog_config, "support_tickets", data["tickets"], "created_at")
    features = _load_features(catalog_config, data["customers"], data["orders_published"])
    email = data["customers"].filter(pc.equal(data["customers"]["customer_id"], SUBJECT_ID))["email"][0].as_py()
    loaded = {TABLES["customers"]: data["customers"], TABLES["orders"]: data["orders_published"],
              TABLES["events"]: data["events"], TABLES["support_tickets"]: data["tickets"],
              TABLES["customer_features"]: features}
    expected = subject_rows(loaded, SUBJECT_ID, email)
    expected[QUARANTINE] = _subject_filter(data["orders_quarantined"], SUBJECT_ID, email)
    return WarehouseInfo(catalog_config, contract_paths(), dict(TABLES), QUARANTINE, SUBJECT_ID,
                         email.strip().lower(), expected, loaded, _refs(catalog_config))


def contract_paths() -> list[Path]:
    """The five tables' contracts."""
    return [CONTRACTS / f"{name}.odcs.yaml" for name in TABLES]


def subject_rows(loaded: dict[str, pa.Table], subject_id: int, email: str) -> dict[str, pa.Table]:
    """Per table, the rows with the subject's customer id or (normalised) e-mail address."""
    return {table: _subject_filter(rows, subject_id, email) for table, rows in loaded.items()}


def _subject_filter(rows: pa.Table, subject_id: int, email: str) -> pa.Table:
    mask = pc.fill_null(pc.equal(rows["customer_id"], subject_id), False)
    if "email" in rows.column_names:
        normalised = pc.utf8_lower(pc.utf8_trim_whitespace(rows["email"]))
        mask = pc.or_(mask, pc.fill_null(pc.equal(normalised, email.strip().lower()), False))
    return rows.filter(mask)


# --- source data --------------------------------------------------------------------------------


def read_sample(glob: str, columns: dict[str, str]) -> pa.Table:
    """A bundled sample file read with exact types, as the files source gives it to an ingest."""
    source = from_spec({"type": "files", "path": str(SAMPLE), "glob": glob, "columns": columns}, None)
    with source.open(None, ReadBounds()) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema)


def _source_data(customers: int, seed: int) -> dict[str, pa.Table]:
    people = read_sample("customers.csv", CUSTOMER_COLUMNS)
    orders = read_sample("orders_2024-0[123].csv", ORDER_COLUMNS)
    bad = read_sample("bad_orders_2024-04.csv", ORDER_COLUMNS)
    events = read_sample("events.jsonl", EVENT_COLUMNS)
    tickets = read_sample("support_tickets.csv", TICKET_COLUMNS)
    if customers > 1000:
        extra = _synthetic(1001, customers, seed)
        people, orders, events, tickets = (pa.concat_tables([base, extra[name].select(base.column_names).cast(base.schema)]) for name, base in
                                           (("customers", people), ("orders", orders),
                                            ("events", events), ("tickets", tickets)))
    keep = lambda t: t.filter(pc.or_kleene(pc.is_null(t["customer_id"]),  # noqa: E731
                                           pc.less_equal(t["customer_id"], customers)))
    bad = keep(bad)
    failing = pc.or_kleene(pc.or_kleene(pc.invert(pc.is_in(bad["currency"], pa.array(CURRENCIES))),
                                        pc.invert(pc.is_in(bad["status"], pa.array(STATUSES)))),
                           pc.is_null(bad["customer_id"]))
    orders = keep(orders)
    return {
        "customers": people.filter(pc.less_equal(people["customer_id"], customers)),
        "orders": orders, "bad_orders": bad, "events": keep(events), "tickets": keep(tickets),
        "orders_published": pa.concat_tables([orders, bad.filter(pc.invert(failing))]),
        "orders_quarantined": bad.filter(failing),
    }


# --- loading ------------------------------------------------------------------------------------


def _ingest(catalog: CatalogConfig, name: str, rows: pa.Table, run: str, *, branch: str | None = None,
            now: datetime | None = None) -> Any:
    contract = load_contract(CONTRACTS / f"{name}.odcs.yaml")
    options = write_options_for(contract, None, WriteOptions(mode="append", branch=branch))
    return run_ingest(TableSource(rows, identity=f"memory://{name}/{run}"), catalog, TABLES[name], options,
                      run_id=f"{name}-{run}", audit=ContractGate(contract, catalog, now=now))


def _load_customers(catalog: CatalogConfig, rows: pa.Table) -> None:
    half = rows.num_rows // 2
    _ingest(catalog, "customers", rows.slice(0, half), "first")
    _tag(catalog, TABLES["customers"], "onboarding")
    _ingest(catalog, "customers", rows.slice(half), "second")


def _load_orders(catalog: CatalogConfig, orders: pa.Table, bad: pa.Table) -> None:
    months = pc.strftime(orders["ordered_at"], format="%Y-%m")
    for month in sorted(set(months.to_pylist())):
        _ingest(catalog, "orders", orders.filter(pc.equal(months, month)), month,
                now=datetime(2024, 4, 1, tzinfo=timezone.utc))
    result = _ingest(catalog, "orders", bad, "2024-04", now=datetime(2024, 4, 2, tzinfo=timezone.utc))
    assert result.rows_quarantined > 0, "the bad orders must put rows in the quarantine table"
    _tag(catalog, TABLES["orders"], "eoy-2024")


def _load_halves(catalog: CatalogConfig, name: str, rows: pa.Table, time_column: str,
                 tag: str | None = None) -> None:
    cut = datetime(2024, 2, 15, tzinfo=timezone.utc)
    _ingest(catalog, name, rows.filter(pc.less(rows[time_column], cut)), "first")
    if tag:
        _tag(catalog, TABLES[name], tag)
    _ingest(catalog, name, rows.filter(pc.greater_equal(rows[time_column], cut)), "second")


def _load_features(catalog: CatalogConfig, people: pa.Table, orders: pa.Table) -> pa.Table:
    main = [customer_features(people, orders, day) for day in FEATURE_DATES]
    _ingest(catalog, "customer_features", main[0], "2024-02-01")
    table = catalog.load().load_table(TABLES["customer_features"])
    table.manage_snapshots().create_branch(table.current_snapshot().snapshot_id, "experiment").commit()
    _ingest(catalog, "customer_features", main[1], "2024-04-01")
    _ingest(catalog, "customer_features", customer_features(people, orders, EXPERIMENT_DATE), "experiment",
            branch="experiment")
    return pa.concat_tables(main)


def customer_features(people: pa.Table, orders: pa.Table, as_of: datetime) -> pa.Table:
    """One row per customer: orders and spend in the 30 days before ``as_of``, days since the last order."""
    before = orders.filter(pc.less(orders["ordered_at"], as_of))
    window = before.filter(pc.greater_equal(before["ordered_at"], as_of - timedelta(days=30)))
    counts = window.group_by("customer_id").aggregate([("order_id", "count"), ("amount", "sum")])
    last = before.group_by("customer_id").aggregate([("ordered_at", "max")])
    by_id = {r["customer_id"]: r for r in counts.to_pylist()}
    last_by_id = {r["customer_id"]: r["ordered_at_max"] for r in last.to_pylist()}
    ids = people["customer_id"].to_pylist()
    return pa.table({
        "customer_id": pa.array(ids, pa.int64()),
        "feature_ts": pa.array([as_of] * len(ids), pa.timestamp("us", tz="UTC")),
        "orders_30d": pa.array([by_id.get(i, {}).get("order_id_count", 0) for i in ids], pa.int64()),
        "spend_30d": pa.array([float(by_id.get(i, {}).get("amount_sum") or 0) for i in ids], pa.float64()),
        "days_since_last_order": pa.array(
            [(as_of - last_by_id[i]).days if i in last_by_id else None for i in ids], pa.int64()),
    })


def _tag(catalog: CatalogConfig, identifier: str, name: str) -> None:
    table = catalog.load().load_table(identifier)
    table.manage_snapshots().create_tag(table.current_snapshot().snapshot_id, name).commit()


def _refs(catalog: CatalogConfig) -> dict[str, dict[str, str]]:
    loaded = catalog.load()
    out = {}
    for identifier in [*TABLES.values(), QUARANTINE]:
        refs = loaded.load_table(identifier).metadata.refs
        out[identifier] = {name: ref.snapshot_ref_type.value for name, ref in refs.items()}
    return out


# --- generated data -----------------------------------------------------------------------------

FIRST = ["Ada", "Ben", "Chloe", "Dev", "Emma", "Finn", "Gia", "Hugo", "Ines", "Jonas", "Kira", "Liam"]
LAST = ["Berg", "Costa", "Diaz", "Eriksen", "Fischer", "Garcia", "Haas", "Ivanova", "Jansen", "Khan"]
SUBJECTS = ["Where is my order?", "Refund request", "Cannot log in", "Change my address",
            "Question about beans", "Delete my account please"]


def support_tickets(people: pa.Table, seed: int = 7, start_id: int = 5_000_001,
                    featured: tuple[int, ...] = (SUBJECT_ID,)) -> pa.Table:
    """Support tickets for ``people``, deterministic from ``seed`` (``support_tickets.csv`` is this
    for the bundled customers).

    About a third of customers write in. Addresses are typed as people type them (other case, stray
    spaces); some tickets come anonymously (no customer id) and some mention the sender's address in
    the subject. Each ``featured`` customer gets one signed-in ticket from a differently typed address
    and one anonymous ticket, so e-mail normalisation is exercised.
    """
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for person in people.to_pylist():
        count = 2 if person["customer_id"] in featured else rng.choice([0, 0, 1, 1, 2]) if rng.random() < 0.45 else 0
        for n in range(count):
            anonymous = person["customer_id"] in featured and n == 1 or rng.random() < 0.1
            address = _typed_like_a_person(person["email"], rng, force=person["customer_id"] in featured)
            subject = rng.choice(SUBJECTS)
            if rng.random() < 0.15 or (anonymous and person["customer_id"] in featured):
                subject = f"{subject} - please reply to {person['email']}"
            rows.append({"customer_id": None if anonymous else person["customer_id"], "email": address,
                         "subject": subject, "channel": rng.choice(["email", "web", "chat"]),
                         "created_at": datetime(2024, 1, 1, tzinfo=timezone.utc)
                         + timedelta(seconds=rng.randrange(90 * 86400))})
    rows.sort(key=lambda r: r["created_at"])
    for i, row in enumerate(rows):
        row["ticket_id"] = start_id + i
    schema = pa.schema([(k, pa.int64() if k.endswith("_id") else pa.timestamp("us", tz="UTC")
                         if k == "created_at" else pa.string()) for k in TICKET_COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


def _typed_like_a_person(email: str, rng: random.Random, force: bool = False) -> str:
    roll = rng.random()
    if force or roll < 0.15:
        local, _, domain = email.partition("@")
        return f"  {local.title()}@{domain.upper()} "
    if roll < 0.25:
        return email.upper()
    return email


def _synthetic(first: int, last: int, seed: int) -> dict[str, pa.Table]:
    """Customers ``first..last`` with orders and events, for warehouses larger than the sample."""
    rng = random.Random(seed * 1_000_003 + first)
    people, orders, events = [], [], []
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for cid in range(first, last + 1):
        f, la = rng.choice(FIRST), rng.choice(LAST)
        people.append({"customer_id": cid, "email": f"{f.lower()}.{la.lower()}{cid}@example.com",
                       "first_name": f, "last_name": la, "country": rng.choice(["DE", "FR", "GB", "US"]),
                       "signup_at": base - timedelta(days=rng.randrange(900)), "is_active": True,
                       "marketing_opt_in": rng.random() < 0.5, "birth_year": rng.randrange(1950, 2005)})
        for _ in range(rng.randrange(4)):
            qty = rng.randrange(1, 4)
            orders.append({"order_id": 9_000_000_000 + len(orders), "customer_id": cid, "product_id": rng.randrange(1, 121),
                           "ordered_at": base + timedelta(seconds=rng.randrange(90 * 86400)), "quantity": qty,
                           "amount": Decimal(qty * rng.randrange(500, 9000)) / 100, "currency": "EUR",
                           "status": "paid"})
        for _ in range(rng.randrange(3)):
            events.append({"event_id": f"gen-{cid}-{len(events)}", "customer_id": cid, "event_type": "page_view",
                           "occurred_at": base + timedelta(seconds=rng.randrange(90 * 86400)), "page": "/",
                           "device": "web", "session_id": f"s-{rng.getrandbits(48):012x}"})
    people_table = pa.Table.from_pylist(people)
    return {"customers": people_table, "orders": pa.Table.from_pylist(orders),
            "events": pa.Table.from_pylist(events),
            "tickets": support_tickets(people_table, seed, start_id=8_000_000_000 + first, featured=())}
