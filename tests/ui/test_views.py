"""The page's views over the demo's state: every figure checked against the tables themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from dativo_provider.privacy.hashing import subject_hash
from dativo_provider.quality.quarantine import FAILED_CHECKS, RUN_ID
from dativo_provider.ui.page import render_page
from dativo_provider.ui.service import CatalogUi
from dativo_provider.ui.settings import UiSettings
from dativo_provider.ui.tables import redact_identity
from tests.ui.demo_lake import HASH_KEY, QUARANTINE_RUN, REQUEST_ID, SCRIPT_TABLE, SIGNING_KEY_ID, DemoLake

LABEL = "demo_lake"


@pytest.fixture(scope="module")
def ui(demo_lake: DemoLake) -> CatalogUi:
    settings = UiSettings(catalogs={LABEL: demo_lake.catalog}, contracts_dir=demo_lake.contracts,
                          reports_dir=demo_lake.reports, certificates_dir=demo_lake.certificates,
                          certificate_keys={SIGNING_KEY_ID: demo_lake.signing_key.verifying_key()},
                          audit_key=HASH_KEY)
    return CatalogUi(settings)


def test_tables_list_figures_equal_the_tables(ui: CatalogUi, demo_lake: DemoLake):
    listed = {row["table"]: row for row in ui.tables()["tables"]}
    catalog = demo_lake.catalog.load()
    for name in ("examples.customers", "examples.orders", "examples.orders_quarantine", SCRIPT_TABLE):
        table = catalog.load_table(name)
        files = list(table.scan().plan_files())
        assert listed[name]["rows"] == table.scan().to_arrow().num_rows, name
        assert listed[name]["files"] == len(files), name
        assert listed[name]["size_bytes"] == sum(task.file.file_size_in_bytes for task in files), name
        assert listed[name]["snapshot_id"] == str(table.current_snapshot().snapshot_id), name
    orders = listed["examples.orders"]
    assert orders["contract"] == "urn:dativo:examples:orders" and orders["contract_dataset"] == "orders"
    assert listed["examples.orders_quarantine"]["quarantine_of"] == "examples.orders"
    # The files source's incremental state: the watermark the commit recorded; its manifest blob shortened.
    state = json.loads(catalog.load_table("examples.orders").current_snapshot().summary["dativo.state"])
    assert orders["watermark"]["watermark"] == state["watermark"]
    assert orders["watermark"]["manifest"] == f"({len(state['manifest'])} characters)"
    assert orders["source"].startswith("files://")


def test_table_detail_joins_metadata_contract_reports_and_quarantine(ui: CatalogUi, demo_lake: DemoLake):
    detail = ui.table(LABEL, "examples.orders")
    table = demo_lake.catalog.load().load_table("examples.orders")
    assert [s["snapshot_id"] for s in detail["snapshots"]] == [
        str(s.snapshot_id) for s in sorted(table.metadata.snapshots, key=lambda s: -s.timestamp_ms)]
    assert {r["name"] for r in detail["refs"]} == set(table.metadata.refs)
    columns = {c["name"]: c for c in detail["schema"]}
    assert columns["customer_id"]["data_subject"] == "customer" and columns["customer_id"]["metrics"] == "counts"
    assert columns["amount"]["classification"] == "confidential"
    assert {rule["name"] for rule in detail["contract"]["rules"]} >= {"currency_known", "status_known"}
    results = detail["contract_results"]
    assert results["verdict"] == "warn" and [c["outcome"] for c in results["checks"]] == ["passed", "passed", "failed"]
    assert all("failing_keys" not in check for check in results["checks"])  # key values can identify a person
    (drift,) = detail["drift"]
    assert drift["plots"] == "drift-20240402.html" and drift["dataset_drift"] in (True, False)
    assert {c["column"] for c in drift["columns"]} == {"quantity", "amount", "currency", "status"}
    held = demo_lake.catalog.load().load_table("examples.orders_quarantine").scan().to_arrow()
    assert detail["quarantine"]["rows"] == held.num_rows


def test_quarantines_count_rows_per_run_and_check(ui: CatalogUi, demo_lake: DemoLake):
    (held,) = ui.quarantines()["quarantines"]
    rows = demo_lake.catalog.load().load_table("examples.orders_quarantine").scan().to_arrow()
    # The erasure of customer 87 took that customer's held order too: one fewer than were quarantined.
    assert held["rows"] == rows.num_rows == demo_lake.held_rows - 1
    checks = pc.list_flatten(rows[FAILED_CHECKS]).to_pylist()
    assert held["checks"] == {name: checks.count(name) for name in set(checks)}
    (run,) = held["runs"]
    assert run["run_id"] == QUARANTINE_RUN == rows[RUN_ID][0].as_py() and run["rows"] == rows.num_rows
    assert all(reason.startswith("failed ") for reason in run["reasons"])
    assert held["contract_file"].endswith("orders.odcs.yaml")


def test_action_conf_is_checked_against_what_is_held(ui: CatalogUi):
    conf = ui.quarantine_action(LABEL, "examples.orders_quarantine", "release", [QUARANTINE_RUN])
    assert conf == {"action": "release", "catalog": LABEL, "table": "examples.orders",
                    "quarantine_table": "examples.orders_quarantine", "contract": conf["contract"],
                    "run_ids": [QUARANTINE_RUN]}
    assert Path(conf["contract"]).name == "orders.odcs.yaml"
    with pytest.raises(ValueError, match="not held"):
        ui.quarantine_action(LABEL, "examples.orders_quarantine", "purge", ["no-such-run"])
    with pytest.raises(ValueError, match="expected release or purge"):
        ui.quarantine_action(LABEL, "examples.orders_quarantine", "drop", [QUARANTINE_RUN])
    with pytest.raises(ValueError, match="not a quarantine table"):
        ui.quarantine_action(LABEL, "examples.orders", "purge", [QUARANTINE_RUN])


def test_requests_show_keyed_hashes_and_a_verified_certificate(ui: CatalogUi, demo_lake: DemoLake):
    answer = ui.subject_requests()
    (request,) = answer["requests"]
    assert request["request_id"] == REQUEST_ID and request["kind"] == "erasure"
    assert request["status"] == "completed" and request["overdue"] is False
    assert request["subject_hashes"] == [subject_hash(HASH_KEY, "customer", "87")[:16]]
    assert {"examples.customers", "examples.orders"} <= set(request["tables"])
    certificate = request["certificate"]
    assert certificate["valid"] is True and certificate["verification"]["passed"] is True
    assert request["deadline"] == certificate["request"]["deadline"]
    assert answer["audit_trails"][LABEL]["valid"] is True
    assert "87" not in json.dumps(request["subject_hashes"] + certificate["request"]["identifier_hashes"])


def test_a_tampered_certificate_is_shown_invalid(ui: CatalogUi, demo_lake: DemoLake, tmp_path: Path):
    original = json.loads((demo_lake.certificates / f"{REQUEST_ID}.json").read_text())
    original["totals"]["rows_deleted"] += 1
    (tmp_path / f"{REQUEST_ID}.json").write_text(json.dumps(original))
    import dataclasses

    tampered = CatalogUi(dataclasses.replace(ui.settings, certificates_dir=tmp_path))
    (request,) = tampered.subject_requests()["requests"]
    assert request["certificate"]["valid"] is False
    assert "changed after signing" in request["certificate"]["reason"]


def test_the_page_embeds_its_config_as_inert_json():
    page = render_page({"api": "api/", "note": "</script><script>alert(1)</script>"})
    assert "</script><script>alert(1)" not in page
    assert page.count("<script") == 2  # the config element and the page's own code


def test_unreachable_catalog_errors_are_shown_with_secrets_masked(demo_lake: DemoLake):
    from dativo_provider.iceberg.catalog import CatalogConfig

    broken = CatalogConfig("broken", {"type": "rest", "uri": "http://user:hunter2@127.0.0.1:9/catalog",
                                      "credential": "client:s3cr3t-value", "token": "tok-123456"})
    answer = CatalogUi(UiSettings(catalogs={"broken": broken, LABEL: demo_lake.catalog})).tables()
    assert "broken" in answer["errors"] and any(row["catalog"] == LABEL for row in answer["tables"])
    for secret in ("hunter2", "s3cr3t-value", "tok-123456"):
        assert secret not in json.dumps(answer)
    assert redact_identity("postgresql://etl:pw@db:5432/shop?x=1") == "postgresql://db:5432/shop?x=1"


def test_an_open_request_takes_its_deadline_from_the_facts_and_shows_overdue(tmp_path: Path):
    from datetime import datetime, timezone

    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.privacy.audit import AuditTrail, IcebergAuditStore
    from dativo_provider.privacy.request import SubjectRequest
    from dativo_provider.ui.subject_requests import RequestFacts, subject_requests

    catalog = embedded_catalog(tmp_path).load()
    request = SubjectRequest("dsr-open-1", "access", "customer", emails=("ada@example.com",))
    AuditTrail(IcebergAuditStore(catalog, "dativo.dsr_audit"), HASH_KEY).append_request(
        request, "received", {"kind": "access"})
    facts = {"dsr-open-1": RequestFacts(received="2026-01-01T00:00:00+00:00", deadline="2026-01-31T00:00:00+00:00")}
    (row,) = subject_requests(LABEL, catalog, "dativo.dsr_audit", facts=facts,
                              now=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert (row.status, row.kind, row.deadline, row.overdue) == ("open", "access", "2026-01-31T00:00:00+00:00", True)
    assert row.certificate is None and "ada" not in json.dumps(row.to_dict())
    assert row.subject_hashes == [subject_hash(HASH_KEY, "customer", "ada@example.com")[:16]]
