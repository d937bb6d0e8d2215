"""GDPR Art. 18 on ingest: a restricted subject's new rows are kept in the quarantine, not published,
and published once the restriction is lifted and the quarantine released."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.restriction import RestrictionRegistry
from dativo_provider.quality.quarantine import release
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
