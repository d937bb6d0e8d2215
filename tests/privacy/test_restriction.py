"""Restriction registry (GDPR Art. 18): restrict, lift, history, idempotency, keyed hashes, row masks.

Runs on a real embedded (SQLite) catalog under ``tmp_path`` with the project's example contracts; the
expected masks are computed row by row in plain Python from the same Arrow tables.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dativo_provider.contracts.loader import load_contract
from dativo_provider.contracts.model import Dataset, QualityRule
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.privacy import restriction as restriction_module
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.restriction import RestrictionRegistry, restriction_check, subject_hash
from dativo_provider.quality.custom import run_custom

ROOT = Path(__file__).resolve().parents[2]
KEY = b"test-registry-key-0123456789abcdef"
CUSTOMERS_CSV = ROOT / "dativo_provider" / "sample_data" / "customers.csv"

#: Set by a test to the adapter under test, so ``run_custom`` can resolve it by reference.
restricted_rows_check = None


def _dataset(contract: str, name: str) -> Dataset:
    dataset = load_contract(ROOT / "contracts" / contract).dataset(name)
    assert dataset is not None
    return dataset


@pytest.fixture(scope="module")
def customers() -> Dataset:
    return _dataset("customers.odcs.yaml", "customers")


@pytest.fixture(scope="module")
def orders() -> Dataset:
    return _dataset("orders.odcs.yaml", "orders")


@pytest.fixture
def catalog(tmp_path) -> CatalogConfig:
    return embedded_catalog(tmp_path / "home")


@pytest.fixture
def registry(catalog) -> RestrictionRegistry:
    return RestrictionRegistry(catalog, KEY)


@pytest.fixture(scope="module")
def customer_rows() -> pa.Table:
    """The sample customers, plus a row with a null e-mail and one whose address has odd case."""
    rows = pacsv.read_csv(CUSTOMERS_CSV)
    extra = pa.table({"customer_id": pa.array([9001, 9002], rows.schema.field("customer_id").type),
                      "email": pa.array([None, "  Mixed.Case@Example.ORG "], pa.string())})
    return pa.concat_tables([rows.select(["customer_id", "email"]), extra])


def _orders_rows(customer_ids: list[int]) -> pa.Table:
    n = len(customer_ids)
    return pa.table({
        "order_id": pa.array(range(1, n + 1), pa.int64()),
        "customer_id": pa.array(customer_ids, pa.int64()),
        "quantity": pa.array([1] * n, pa.int32()),
    })


def _request(request_id: str, *, ids=(), emails=(), kind="restriction",
             subject_kind="customer") -> SubjectRequest:
    return SubjectRequest(request_id=request_id, kind=kind, subject_kind=subject_kind, subject_ids=tuple(ids),
                          emails=tuple(emails))


def _expected(rows: pa.Table, ids: set[int], emails: set[str]) -> list[bool]:
    """Row by row, independently of the registry: does the row belong to a restricted subject?"""
    id_values = rows.column("customer_id").to_pylist()
    has_email = "email" in rows.column_names
    email_values = rows.column("email").to_pylist() if has_email else [None] * rows.num_rows
    return [i in ids or (e is not None and e.strip().lower() in emails)
            for i, e in zip(id_values, email_values)]


def _registry_rows(catalog: CatalogConfig, table: str = "dativo.restrictions") -> list[dict]:
    rows = catalog.load().load_table(table).scan().to_arrow()
    return sorted(rows.to_pylist(), key=lambda r: (r["restricted_at"], r["subject_hash"]))


# --- restrict and match ---------------------------------------------------------------------------


def test_restrict_by_id_and_by_email_in_another_case(registry, customers, orders, customer_rows):
    by_email_row = customer_rows.slice(6, 1).to_pylist()[0]
    shouted = f"  {by_email_row['email'].upper()} "
    assert registry.restrict(_request("r-id", ids=[3, 9001])) == 2
    assert registry.restrict(_request("r-email", emails=[shouted, "mixed.case@example.org"])) == 2

    mask = registry.restricted_mask(customer_rows, customers)
    emails = {by_email_row["email"].lower(), "mixed.case@example.org"}
    assert isinstance(mask, pa.BooleanArray) and mask.null_count == 0
    assert mask.to_pylist() == _expected(customer_rows, {3, 9001}, emails)
    assert sum(mask.to_pylist()) == 4  # ids 3 and 9001 (null e-mail), the shouted and the mixed-case address

    order_rows = _orders_rows([1, 3, 7, 3, by_email_row["customer_id"], 9001])
    assert registry.restricted_mask(order_rows, orders).to_pylist() == _expected(order_rows, {3, 9001}, set())


def test_exclude_restricted_returns_the_other_rows_and_the_count(registry, customers, customer_rows):
    registry.restrict(_request("r-1", ids=[1, 2, 5]))
    kept, excluded = registry.exclude_restricted(customer_rows, customers)
    assert excluded == 3
    assert kept.schema == customer_rows.schema
    assert kept.column("customer_id").to_pylist() == [
        i for i in customer_rows.column("customer_id").to_pylist() if i not in (1, 2, 5)]


def test_an_email_restricted_under_another_kind_matches_email_columns(registry, customers, customer_rows):
    first = customer_rows.slice(0, 1).to_pylist()[0]
    registry.restrict(_request("r-emp", ids=[str(first["customer_id"])], emails=[first["email"]],
                               subject_kind="employee"))
    mask = registry.restricted_mask(customer_rows, customers).to_pylist()
    assert mask == _expected(customer_rows, set(), {first["email"]})
    assert registry.active_hashes("customer") == frozenset()
    assert len(registry.active_hashes("employee")) == 2


def test_no_registry_table_means_nothing_restricted_nor_created(registry, catalog, customers, customer_rows):
    assert registry.active_hashes("customer") == frozenset()
    assert registry.restricted_mask(customer_rows, customers).to_pylist() == [False] * customer_rows.num_rows
    assert registry.lift(_request("r-x", ids=[1]), lift_request_id="l-x") == 0
    assert not catalog.load().table_exists("dativo.restrictions")


def test_rows_without_identifying_columns_are_refused(registry, customers, customer_rows):
    registry.restrict(_request("r-1", ids=[1]))
    with pytest.raises(ConfigError, match="customer_id, email"):
        registry.restricted_mask(pa.table({"country": ["SE"]}), customers)
    only_ids = customer_rows.select(["customer_id"])
    assert registry.restricted_mask(only_ids, customers).to_pylist() == _expected(only_ids, {1}, set())


def test_requests_of_the_wrong_kind_and_empty_keys_are_refused(registry, catalog):
    with pytest.raises(ConfigError, match="'erasure' request"):
        registry.restrict(_request("r-1", ids=[1], kind="erasure"))
    with pytest.raises(ConfigError, match="lift_request_id"):
        registry.lift(_request("r-1", ids=[1]), lift_request_id="")
    with pytest.raises(ConfigError, match="non-empty bytes"):
        RestrictionRegistry(catalog, b"")
    assert KEY.decode() not in repr(registry) and "key=***" in repr(registry)


def test_blank_identifiers_are_refused_and_blank_stored_values_never_match(registry, catalog, customers):
    """Issue 9, item 4: a blank e-mail used to restrict every anonymous row (``email = ""``)."""
    import hashlib
    import hmac
    from datetime import datetime, timezone

    for ids, emails, parameter in (([], [""], "emails"), ([], ["  "], "emails"), ([" "], [], "subject_ids")):
        with pytest.raises(ConfigError, match=rf"request 'r-blank': {parameter} holds an empty"):
            registry.restrict(_request("r-blank", ids=ids, emails=emails))
    with pytest.raises(ConfigError, match="blank customer identifier"):
        subject_hash(KEY, "customer", " ")

    # A registry written before the rule may hold the hash of a blank identifier: it must match nothing.
    registry.restrict(_request("r-1", ids=[1]))
    table = catalog.load().load_table("dativo.restrictions")
    now = datetime.now(timezone.utc)
    blank_hash = hmac.new(KEY, b"customer:", hashlib.sha256).hexdigest()
    old = {"subject_kind": "customer", "subject_hash": blank_hash, "request_id": "old", "restricted_at": now,
           "lifted_at": None, "lift_request_id": None}
    table.append(pa.Table.from_pylist([old], schema=restriction_module.registry_schema()))
    rows = pa.table({"customer_id": pa.array([1, 2, 3, 4], pa.int64()),
                     "email": pa.array(["", "   ", None, "x@example.org"], pa.string())})
    assert registry.restricted_mask(rows, customers).to_pylist() == [True, False, False, False]


def test_an_email_only_dataset_is_matched_and_the_registry_keeps_the_normalised_hash(registry, catalog):
    """Issue 9, item 3: restriction must reach tables whose only identifier is an e-mail column."""
    from dativo_provider.contracts.model import Column

    dataset = Dataset(name="signups", physical_name="examples.signups", columns=(
        Column("signup_id", "integer"), Column("Work_Email", "string", classification="restricted")))
    assert not registry.applies_to(dataset)
    registry.restrict(_request("r-1", emails=["  Zoe@Example.NET "]))
    assert registry.active_hashes("customer") == frozenset({subject_hash(KEY, "customer", "zoe@example.net")})
    assert registry.applies_to(dataset)
    rows = pa.table({"signup_id": [1, 2, 3, 4],
                     "Work_Email": ["ZOE@example.net", "zoe@example.net.uk", "", None]})
    assert registry.restricted_mask(rows, dataset).to_pylist() == [True, False, False, False]


# --- lift, history, idempotency ------------------------------------------------------------------


def test_lift_then_restrict_again_keeps_the_history(registry, catalog, customers, customer_rows):
    assert registry.restrict(_request("r-1", ids=[4], emails=["Someone@Example.org"])) == 2
    assert registry.lift(_request("l-1", ids=[4], emails=["someone@example.org"], kind="lift_restriction"),
                         lift_request_id="l-1") == 2
    assert registry.active_hashes("customer") == frozenset()
    assert not any(registry.restricted_mask(customer_rows, customers).to_pylist())
    assert registry.lift(_request("r-1", ids=[4]), lift_request_id="l-1") == 0  # nothing active any more

    assert registry.restrict(_request("r-2", ids=[4])) == 1
    expected = _expected(customer_rows, {4}, set())
    assert registry.restricted_mask(customer_rows, customers).to_pylist() == expected

    history = _registry_rows(catalog)
    id_hash = subject_hash(KEY, "customer", "4")
    assert [(r["request_id"], r["lift_request_id"]) for r in history if r["subject_hash"] == id_hash] == [
        ("r-1", "l-1"), ("r-2", None)]
    lifted = [r for r in history if r["request_id"] == "r-1"]
    assert len(lifted) == 2 and all(r["lifted_at"] >= r["restricted_at"] for r in lifted)
    assert registry.active_hashes("customer") == frozenset({id_hash})


def test_lift_only_touches_the_subjects_identifiers(registry, catalog):
    registry.restrict(_request("r-1", ids=[1, 2]))
    assert registry.lift(_request("r-1", ids=[1]), lift_request_id="l-1") == 1
    assert registry.active_hashes("customer") == frozenset({subject_hash(KEY, "customer", "2")})
    assert len(_registry_rows(catalog)) == 2


def test_restrict_is_idempotent_per_request_id(registry, catalog):
    def snapshots() -> int:
        return len(catalog.load().load_table("dativo.restrictions").snapshots())

    request = _request("r-1", ids=[1], emails=["a@example.org"])
    assert registry.restrict(request) == 2
    before = snapshots()
    assert registry.restrict(request) == 0
    assert snapshots() == before  # nothing committed
    assert registry.restrict(_request("r-1", ids=[1, 2])) == 1  # the same request, one more identifier
    assert registry.restrict(_request("r-other", ids=[1])) == 1  # another request for the same subject
    registry.lift(request, lift_request_id="l-1")
    before = snapshots()
    assert registry.restrict(request) == 0  # a replayed request does not restrict again after a lift
    assert snapshots() == before
    assert len(_registry_rows(catalog)) == 4
    assert registry.active_hashes("customer") == frozenset({subject_hash(KEY, "customer", "2")})


# --- keyed hashes -------------------------------------------------------------------------------


def test_the_registry_never_holds_an_identifier_in_clear_text(registry, catalog, tmp_path):
    subject_id, email = "987654321", "clear.text.person@example.org"
    registry.restrict(_request("r-1", ids=[subject_id], emails=[email.upper()]))
    registry.lift(_request("r-1", ids=[subject_id], emails=[email]), lift_request_id="l-1")
    registry.restrict(_request("r-2", ids=[subject_id], emails=[email]))

    table = catalog.load().load_table("dativo.restrictions")
    needles = [subject_id, email, f"customer:{subject_id}", f"customer:{email}"]
    decoded = [json.dumps(table.scan().to_arrow().to_pylist(), default=str)]
    for snapshot in table.snapshots():  # manifest entries, with every column bound decoded
        decoded.append(str(table.inspect.entries(snapshot_id=snapshot.snapshot_id).to_pylist()))
    files = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    for path in files:
        if path.suffix == ".parquet":
            decoded.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        raw = path.read_bytes()
        decoded.append(raw.decode("latin-1"))
    assert any(p.suffix == ".parquet" for p in files)
    assert any(p.name.endswith(".metadata.json") for p in files)
    text = "\n".join(decoded).lower()
    assert [n for n in needles if n.lower() in text] == []
    assert subject_hash(KEY, "customer", email) in text  # the search did see the registry's contents


def test_a_wrong_key_matches_nothing(registry, catalog, customers, customer_rows):
    registry.restrict(_request("r-1", ids=[1, 2], emails=["mixed.case@example.org"]))
    other = RestrictionRegistry(catalog, b"another-key")
    assert other.restricted_mask(customer_rows, customers).to_pylist() == [False] * customer_rows.num_rows
    assert other.active_hashes("customer") == registry.active_hashes("customer")  # same rows, other key
    assert subject_hash(b"another-key", "customer", "1") not in registry.active_hashes("customer")


@pytest.mark.parametrize("key", [b"k", b"b" * 64, b"long" * 40],
                         ids=["short", "block-sized", "longer-than-block"])
def test_rows_match_for_keys_of_any_length(catalog, customers, customer_rows, key):
    registry = RestrictionRegistry(catalog, key)
    registry.restrict(_request("r-1", ids=[3], emails=["MIXED.case@example.org"]))
    assert registry.active_hashes("customer") == frozenset(
        {subject_hash(key, "customer", "3"), subject_hash(key, "customer", "mixed.case@example.org")})
    assert registry.restricted_mask(customer_rows, customers).to_pylist() == _expected(
        customer_rows, {3}, {"mixed.case@example.org"})


# --- concurrency --------------------------------------------------------------------------------


def _interleave(registry: RestrictionRegistry, monkeypatch, intruder) -> list[int]:
    """Make ``intruder`` commit between ``registry``'s read and its commit, on the first attempt only."""
    attempts: list[int] = []
    original = registry._append_missing

    def racing(table, request, hashes):
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            intruder()
        return original(table, request, hashes)

    monkeypatch.setattr(registry, "_append_missing", racing)
    return attempts


def test_a_lost_commit_race_is_retried_on_the_new_head(registry, catalog, monkeypatch):
    registry.restrict(_request("r-0", ids=[100]))
    other = RestrictionRegistry(catalog, KEY)
    attempts = _interleave(registry, monkeypatch, lambda: other.restrict(_request("r-b", ids=[2])))
    assert registry.restrict(_request("r-a", ids=[1])) == 1
    assert attempts == [1, 2]
    assert {r["request_id"] for r in _registry_rows(catalog)} == {"r-0", "r-a", "r-b"}


def test_a_retry_sees_the_same_request_committed_by_a_concurrent_run(registry, catalog, monkeypatch):
    registry.restrict(_request("r-0", ids=[100]))
    request = _request("r-a", ids=[1], emails=["a@example.org"])
    other = RestrictionRegistry(catalog, KEY)
    attempts = _interleave(registry, monkeypatch, lambda: other.restrict(request))
    assert registry.restrict(request) == 0
    assert attempts == [1, 2]
    assert sorted(r["request_id"] for r in _registry_rows(catalog)) == ["r-0", "r-a", "r-a"]


def test_two_threads_restricting_at_once_both_land(catalog):
    """Both create the registry table and commit at the same moment (the catalog itself exists)."""
    catalog.load()  # SqlCatalog's own first-use set-up of an empty SQLite file is not safe to race
    start = threading.Barrier(2)
    added: dict[str, int] = {}
    errors: list[BaseException] = []

    def run(request_id: str, subject: int) -> None:
        try:
            start.wait()
            registry = RestrictionRegistry(catalog, KEY)
            added[request_id] = registry.restrict(_request(request_id, ids=[subject]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"r-{i}", i)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert added == {"r-1": 1, "r-2": 1}
    assert RestrictionRegistry(catalog, KEY).active_hashes("customer") == frozenset(
        {subject_hash(KEY, "customer", "1"), subject_hash(KEY, "customer", "2")})


# --- the custom-check adapter -------------------------------------------------------------------


def test_restriction_check_runs_as_a_custom_row_check(registry, customers, customer_rows, monkeypatch):
    registry.restrict(_request("r-1", ids=[2, 9]))
    check = restriction_check(registry, customers)
    monkeypatch.setattr(f"{__name__}.restricted_rows_check", check)
    rule = QualityRule(name=restriction_module.CHECK_NAME, engine="custom", severity="error",
                       dataset="customers", column=None, kind="custom",
                       implementation=f"{__name__}:restricted_rows_check")
    ids = customer_rows.column("customer_id")
    result = run_custom(rule, customer_rows, ids)
    assert result.outcome == "failed" and result.failing_rows == 2
    assert sorted(result.row_ids.to_pylist()) == [2, 9]
    expected = [not hit for hit in _expected(customer_rows, {2, 9}, set())]
    assert check(customer_rows, rule).to_pylist() == expected


# --- scale --------------------------------------------------------------------------------------


def test_restricted_mask_on_a_million_rows(registry, customers):
    n = 1_000_000
    ids = pa.array(range(n), pa.int64())
    emails = pc.binary_join_element_wise("user", pc.cast(ids, pa.string()), "@example.org", "")
    rows = pa.table({"customer_id": ids, "email": emails})
    by_id, by_email = set(range(0, n, 10_007)), set(range(5, n, 9_973))
    registry.restrict(_request("r-ids", ids=sorted(by_id)))
    registry.restrict(_request("r-emails", emails=[f"USER{i}@Example.org" for i in sorted(by_email)]))

    started = time.perf_counter()
    mask = registry.restricted_mask(rows, customers)
    elapsed = time.perf_counter() - started
    print(f"\nrestricted_mask: {n:,} rows, {n:,} distinct ids and e-mails, "
          f"{len(by_id) + len(by_email)} restricted subjects: {elapsed:.2f} s")
    restricted = by_id | by_email
    assert pc.sum(mask).as_py() == len(restricted)
    assert sorted(pc.filter(ids, mask).to_pylist()) == sorted(restricted)
    assert elapsed < 30
