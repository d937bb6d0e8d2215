"""GDPR Art. 18 on ingest: a restricted subject's new rows are kept in the quarantine, not published,
and published once the restriction is lifted and the quarantine released."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.restriction import RestrictionRegistry
from dativo_provider.quality.release import release
from dativo_provider.quality.wap import ContractGate
from tests.memory_source import TableSource

ORDERS = "contracts/orders.odcs.yaml"
KEY = b"registry-key-for-tests"


def orders(customer_ids):
    n = len(customer_ids)
    return pa.table({
        "order_id": pa.array(range(1, n + 1), pa.int64()),
        "ordered_at": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
        "customer_id": pa.array(customer_ids, pa.int64()), "product_id": pa.array([1] * n, pa.int64()),
        "quantity": pa.array([1] * n, pa.int32()), "amount": pa.array([10] * n, pa.decimal128(12, 2)),
        "currency": ["EUR"] * n, "status": ["paid"] * n,
    })


def test_restricted_rows_are_held_then_released_when_lifted(tmp_path):
    catalog = embedded_catalog(tmp_path / "lake")
    registry = RestrictionRegistry(catalog, KEY)
    restriction = SubjectRequest("dsr-18", "restriction", "customer", subject_ids=["87"])
    registry.restrict(restriction)

    result = run_ingest(TableSource(orders([5, 87, 6, 87])), catalog, "examples.orders",
                        audit=ContractGate(ORDERS, catalog, restrictions=registry), run_id="run-1")
    assert (result.rows_published, result.rows_quarantined) == (2, 2)
    main = catalog.load().load_table("examples.orders").scan().to_arrow()
    assert sorted(main["customer_id"].to_pylist()) == [5, 6]
    held = catalog.load().load_table("examples.orders_quarantine").scan().to_arrow()
    assert held["customer_id"].to_pylist() == [87, 87]
    assert held["_dativo_failed_checks"].to_pylist() == [["restricted"], ["restricted"]]
    checks = {c["name"]: c for c in result.quality["checks"]}
    assert checks["restricted"]["failing_rows"] == 2 and checks["restricted"]["failing_keys"] == []

    # Still restricted: a release keeps them held.
    again = release(catalog, "examples.orders", ORDERS, restrictions=registry)
    assert (again.rows_published, again.rows_requarantined) == (0, 2)

    registry.lift(restriction, lift_request_id="dsr-18-lift")
    released = release(catalog, "examples.orders", ORDERS, restrictions=registry)
    assert released.rows_published == 2
    main = catalog.load().load_table("examples.orders").scan().to_arrow()
    assert sorted(main["customer_id"].to_pylist()) == [5, 6, 87, 87]


def test_scheduled_checks_leave_restricted_rows_out(tmp_path):
    from dativo_provider.quality.runner import IcebergTarget, run_contract

    catalog = embedded_catalog(tmp_path / "lake")
    bad_for_87 = orders([5, 87, 6]).set_column(6, "currency", pa.array(["EUR", "XXX", "EUR"]))
    run_ingest(TableSource(bad_for_87), catalog, "examples.orders")
    target = IcebergTarget(catalog, "examples.orders")
    unrestricted = run_contract(ORDERS, target)
    failing = {c.name for c in unrestricted.checks if c.outcome == "failed"}
    assert "currency_known" in failing and unrestricted.rows_checked == 3

    registry = RestrictionRegistry(catalog, KEY)
    registry.restrict(SubjectRequest("dsr-18", "restriction", "customer", subject_ids=["87"]))
    restricted = run_contract(ORDERS, target, restrictions=registry)
    assert (restricted.rows_checked, restricted.rows_restricted) == (2, 1)
    assert "currency_known" not in {c.name for c in restricted.checks if c.outcome == "failed"}
    assert restricted.to_dict()["rows_restricted"] == 1


# --- tables whose only identifier is an e-mail column (issue 9, item 3) -------------------------------

SIGNUPS = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:dativo:tests:signups
name: Newsletter signups
version: 1.0.0
status: active
team:
  name: marketing
schema:
  - name: signups
    physicalName: examples.signups
    physicalType: table
    properties:
      - name: signup_id
        logicalType: integer
        physicalType: bigint
        required: true
        classification: internal
      - name: email
        logicalType: string
        classification: pii
"""
#: The restricted subject's address as typed in four ways, another person's, and blanks (anonymous).
SIGNUP_EMAILS = ["zoe@example.net", "other@example.org", " ZOE@Example.NET ", "", "   ", "Zoe@example.net",
                 "zoe@example.net.uk", None]
HELD = [0, 2, 5]


def _signups_contract(tmp_path):
    path = tmp_path / "signups.odcs.yaml"
    path.write_text(SIGNUPS)
    return path


def _signups():
    return pa.table({"signup_id": pa.array(range(len(SIGNUP_EMAILS)), pa.int64()),
                     "email": pa.array(SIGNUP_EMAILS, pa.string())})


def _restricted_by_email(catalog):
    registry = RestrictionRegistry(catalog, KEY)
    registry.restrict(SubjectRequest("dsr-18-email", "restriction", "customer", emails=["  Zoe@Example.NET"]))
    return registry


def test_email_only_table_holds_the_restricted_subjects_rows(tmp_path):
    catalog = embedded_catalog(tmp_path / "lake")
    registry = _restricted_by_email(catalog)
    contract = _signups_contract(tmp_path)

    result = run_ingest(TableSource(_signups()), catalog, "examples.signups",
                        audit=ContractGate(contract, catalog, restrictions=registry), run_id="run-1")
    assert (result.rows_published, result.rows_quarantined) == (len(SIGNUP_EMAILS) - len(HELD), len(HELD))
    main = catalog.load().load_table("examples.signups").scan().to_arrow()
    assert sorted(main["signup_id"].to_pylist()) == [i for i in range(len(SIGNUP_EMAILS)) if i not in HELD]
    held = catalog.load().load_table("examples.signups_quarantine").scan().to_arrow()
    assert sorted(held["signup_id"].to_pylist()) == HELD
    assert held["_dativo_failed_checks"].to_pylist() == [["restricted"]] * len(HELD)


def test_scheduled_checks_leave_out_restricted_rows_of_email_only_tables(tmp_path):
    from dativo_provider.quality.runner import IcebergTarget, run_contract

    catalog = embedded_catalog(tmp_path / "lake")
    run_ingest(TableSource(_signups()), catalog, "examples.signups")
    registry = _restricted_by_email(catalog)
    report = run_contract(_signups_contract(tmp_path), IcebergTarget(catalog, "examples.signups"),
                          restrictions=registry)
    assert (report.rows_checked, report.rows_restricted) == (len(SIGNUP_EMAILS) - len(HELD), len(HELD))
