"""Discovery on the five-table warehouse: by id, by e-mail, both, unknown subjects, relationships,
quarantine tables, contracts that cannot reach the subject, and the optional value scan."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy.discovery import discover
from dativo_provider.privacy.request import SubjectRequest
from tests.privacy.warehouse import CONTRACTS, TEST_CONTRACTS, build_warehouse, contract_paths

NEWSLETTER = TEST_CONTRACTS / "newsletter.odcs.yaml"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    info = build_warehouse(embedded_catalog(tmp_path_factory.mktemp("dsr") / "lake"))
    # A table whose contract has personal data (a phone number) but nothing that reaches a customer.
    table = info.catalog.load().create_table("examples.sms_newsletter", pa.schema([
        ("subscribed_at", pa.timestamp("us", tz="UTC")), ("phone", pa.string())]))
    table.append(pa.table({"subscribed_at": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2,
                                                     pa.timestamp("us", tz="UTC")),
                           "phone": ["+49 30 1234567", "+44 20 7946 0958"]}))
    return info


def request(**kwargs) -> SubjectRequest:
    return SubjectRequest(request_id="dsr-1", kind="access", subject_kind="customer", **kwargs)


def rows_by_table(discovery) -> dict[str, int]:
    return {t.table: t.rows for t in discovery.tables}


def test_by_id_finds_the_subject_in_every_table_and_the_quarantine(warehouse):
    found = discover(warehouse.catalog, contract_paths(), request(subject_ids=[str(warehouse.subject_id)]))

    assert rows_by_table(found) == warehouse.expected_rows
    assert all(n > 0 for n in warehouse.expected_rows.values())
    assert found.unidentifiable == [] and found.missing == [] and found.flagged == []
    # The customer record gives the subject's address, which finds the ticket sent without a customer id.
    tickets = found.table("examples.support_tickets")
    assert tickets.match == {"customer_id": [warehouse.subject_id], "email": ["  Zoe.Tanaka87@EXAMPLE.NET "]}
    assert found.table("examples.customers").match["email"] == [warehouse.subject_email]


@pytest.mark.parametrize("emails", [["zoe.tanaka87@example.net"], ["  ZOE.Tanaka87@Example.NET\t"]])
def test_by_email_in_any_case_or_spacing_resolves_the_customer_id(warehouse, emails):
    by_id = discover(warehouse.catalog, contract_paths(), request(subject_ids=["87"]))
    found = discover(warehouse.catalog, contract_paths(), request(emails=emails))

    assert rows_by_table(found) == warehouse.expected_rows
    assert {t.table: t.match for t in found.tables} == {t.table: t.match for t in by_id.tables}


def test_by_id_and_email_together_is_the_same_subject(warehouse):
    found = discover(warehouse.catalog, [CONTRACTS],  # a directory of contracts works too
                     request(subject_ids=["87"], emails=["Zoe.Tanaka87@example.net"]))

    assert rows_by_table(found) == warehouse.expected_rows


def test_relationships_are_followed_and_named(warehouse):
    found = discover(warehouse.catalog, contract_paths(), request(subject_ids=["87"]))

    for dataset in ("orders", "events", "support_tickets", "customer_features"):
        match = found.table(f"examples.{dataset}")
        assert f"relationship {dataset}.customer_id -> customers.customer_id" in match.via
        assert match.match["customer_id"] == [87]
    assert "email (normalised)" in found.table("examples.support_tickets").via
    assert found.table("examples.customers").personal_columns == (
        "customer_id", "email", "first_name", "last_name", "marketing_opt_in", "birth_year")


def test_quarantine_table_is_searched_with_its_tables_columns(warehouse):
    found = discover(warehouse.catalog, contract_paths(), request(subject_ids=["87"]))

    held = found.table("examples.orders_quarantine")
    assert (held.dataset, held.rows, held.match) == ("orders", 1, {"customer_id": [87]})
    assert "quarantine of examples.orders" in held.via
    rows = warehouse.catalog.load().load_table(held.table).scan(row_filter=held.row_filter()).to_arrow()
    assert rows["order_id"].to_pylist() == warehouse.expected[held.table]["order_id"].to_pylist()


@pytest.mark.parametrize("kwargs", [{"subject_ids": ["999999"]}, {"subject_ids": ["not-a-number"]},
                                    {"emails": ["nobody@example.com"]}])
def test_an_unknown_subject_is_zero_rows_everywhere_not_an_error(warehouse, kwargs):
    found = discover(warehouse.catalog, contract_paths(), request(**kwargs))

    assert rows_by_table(found) == dict.fromkeys(warehouse.expected_rows, 0)
    assert found.total_rows == 0
    table = warehouse.catalog.load().load_table("examples.orders")
    assert table.scan(row_filter=found.row_filter("examples.orders")).to_arrow().num_rows == 0


def test_personal_data_that_cannot_be_reached_is_reported_and_absent_tables_too(warehouse, tmp_path):
    absent = tmp_path / "absent.odcs.yaml"
    absent.write_text(NEWSLETTER.read_text().replace("examples.sms_newsletter", "examples.gone")
                      .replace("urn:dativo:tests:sms-newsletter", "urn:dativo:tests:gone"))
    found = discover(warehouse.catalog, [*contract_paths(), NEWSLETTER, absent], request(subject_ids=["87"]))

    assert found.unidentifiable == ["examples.sms_newsletter"]
    assert found.missing == ["examples.gone"]
    assert "examples.sms_newsletter" not in rows_by_table(found)
    assert found.to_dict()["unidentifiable"] == ["examples.sms_newsletter"]


def test_value_scan_flags_addresses_in_unclassified_text(warehouse):
    found = discover(warehouse.catalog, contract_paths(), request(subject_ids=["87"]), scan_values=True)

    tickets = warehouse.loaded["examples.support_tickets"]
    with_address = pc.sum(pc.match_substring(tickets["subject"], "@").cast("int64")).as_py()
    assert with_address > 0
    assert found.flagged == [{"table": "examples.support_tickets", "dataset": "support_tickets",
                              "column": "subject", "pattern": "email", "rows": with_address}]


def test_value_scan_flags_phone_numbers(warehouse, tmp_path):
    undeclared = tmp_path / "newsletter.odcs.yaml"
    undeclared.write_text(NEWSLETTER.read_text().replace("classification: pii", "classification: internal"))
    found = discover(warehouse.catalog, [undeclared], request(subject_ids=["87"]), scan_values=True)

    assert found.flagged == [{"table": "examples.sms_newsletter", "dataset": "sms_newsletter",
                              "column": "phone", "pattern": "phone", "rows": 2}]
    assert found.unidentifiable == []  # nothing declared personal: the value scan is what catches it


def test_to_dict_holds_no_identifier_values(warehouse):
    found = discover(warehouse.catalog, contract_paths(),
                     request(subject_ids=["87"], emails=["zoe.tanaka87@example.net"]), scan_values=True)
    data = found.to_dict()
    text = json.dumps(data)

    assert "tanaka" not in text.lower()
    assert data["total_rows"] == sum(warehouse.expected_rows.values())
    tables = {t["table"]: t for t in data["tables"]}
    assert tables["examples.support_tickets"]["match_columns"] == {"customer_id": 1, "email": 1}
    assert all(t["snapshot_id"] == warehouse.catalog.load().load_table(t["table"]).current_snapshot().snapshot_id
               for t in data["tables"])


def test_tables_found_by_the_contract_they_record_whatever_their_names(tmp_path):
    """A table loaded under a contract but named differently (and its quarantine) is found through its
    table properties, even when the contract's physical table does not exist."""
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.contracts.loader import load_contract
    from dativo_provider.quality.wap import ContractGate, write_options_for
    from tests.memory_source import TableSource

    catalog = embedded_catalog(tmp_path / "lake")
    orders_contract = CONTRACTS / "orders.odcs.yaml"
    options = write_options_for(load_contract(orders_contract), None, WriteOptions())
    ts = pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 3, pa.timestamp("us", tz="UTC"))
    rows = pa.table({"order_id": pa.array([1, 2, 3], pa.int64()), "ordered_at": ts,
                     "customer_id": pa.array([87, 5, 87], pa.int64()), "product_id": pa.array([1, 1, 1], pa.int64()),
                     "quantity": pa.array([1, 1, 1], pa.int32()),
                     "amount": pa.array([1, 1, 1], pa.decimal128(12, 2)),
                     "currency": ["EUR", "EUR", "XYZ"], "status": ["paid", "paid", "paid"]})
    run_ingest(TableSource(rows), catalog, "shop.orders_copy", options, audit=ContractGate(orders_contract, catalog))
    found = discover(catalog, [orders_contract, CONTRACTS / "customers.odcs.yaml"], request(subject_ids=["87"]))
    assert rows_by_table(found) == {"shop.orders_copy": 1, "shop.orders_copy_quarantine": 1}
    assert "table recording contract dataset examples.orders" in found.table("shop.orders_copy").via
    assert "quarantine of shop.orders_copy" in found.table("shop.orders_copy_quarantine").via
    assert sorted(found.missing) == ["examples.customers", "examples.orders"]
