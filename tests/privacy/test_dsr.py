"""An erasure request end to end on the five related tables (tags and branches included): the subject
is gone from every file, every other row is intact, no snapshot returns the subject, and the signed
certificate and the audit trail verify — and detect tampering."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from dativo_provider import progress
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy import audit
from dativo_provider.privacy.certificate import SigningKey, verify_certificate, write_certificate
from dativo_provider.privacy.discovery import discover
from dativo_provider.privacy.dsr import DeadlineError, check_deadline, erase_subject
from dativo_provider.privacy.export import export_subject
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.matching import Identifiers
from dativo_provider.privacy.verify import verify_erased
from tests.privacy.warehouse import build_warehouse, contract_paths

HASH_KEY = b"audit-and-certificate-hash-key-32"
#: What the engine logged during the module's erasure, every progress line included (interval 0).
ERASURE_LOG: list[str] = []


class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ERASURE_LOG.append(record.getMessage())


def _signing_key() -> SigningKey:
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return SigningKey.ed25519(pem, "dsr-test-key")


def _others(rows: pa.Table, subject_id: int, email: str) -> tuple[int, str]:
    """Row count and digest of every row not the subject's, independent of order and file layout."""
    mask = pc.fill_null(pc.equal(rows["customer_id"], subject_id), False)
    if "email" in rows.column_names:
        normalised = pc.utf8_lower(pc.utf8_trim_whitespace(rows["email"]))
        mask = pc.or_(mask, pc.fill_null(pc.equal(normalised, email), False))
    keep = rows.filter(pc.invert(mask))
    keep = keep.select(sorted(c for c in keep.column_names if not c.startswith("_dativo")))
    digest = hashlib.sha256()
    for line in sorted(json.dumps(r, sort_keys=True, default=str) for r in keep.to_pylist()):
        digest.update(line.encode())
    return keep.num_rows, digest.hexdigest()


@pytest.fixture(scope="module")
def erased(tmp_path_factory):
    home = tmp_path_factory.mktemp("dsr-e2e")
    catalog = embedded_catalog(home / "lake")
    info = build_warehouse(catalog)
    tables = sorted(info.expected)
    before = {t: catalog.load().load_table(t).scan().to_arrow() for t in tables}
    on_branches = _subject_rows_on_other_branches(catalog, tables, info)
    trail = audit.AuditTrail(audit.IcebergAuditStore(catalog.load(), "dativo.dsr_audit"), HASH_KEY)
    # The subject asked for a copy earlier (by e-mail): that export must go with the erasure.
    access = SubjectRequest("dsr-2024-0000", "access", "customer", emails=[info.subject_email])
    manifest = export_subject(catalog, discover(catalog, contract_paths(), access), str(home / "exports"))
    trail.append_request(access, "exported", {"location": manifest.location, "total_rows": manifest.total_rows})
    assert (home / "exports" / "dsr-2024-0000").is_dir()
    request = SubjectRequest("dsr-2024-0001", "erasure", "customer", subject_ids=[str(info.subject_id)])
    key = _signing_key()
    engine, handler = logging.getLogger("dativo_provider"), _Lines(logging.INFO)
    engine.addHandler(handler)
    level, engine.level = engine.level, logging.INFO
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(progress, "DEFAULT_INTERVAL_S", 0.0)  # a progress line for every step
            outcome = erase_subject(catalog, contract_paths(), request, signing_key=key, hash_key=HASH_KEY,
                                    trail=trail, refs_policy="remove", safety_window=timedelta(0))
    finally:
        engine.removeHandler(handler)
        engine.setLevel(level)
    path = write_certificate(home / "certificate.json", outcome.certificate)
    return catalog, info, tables, before, trail, key, outcome, path, home, on_branches


def _subject_rows_on_other_branches(catalog, tables, info) -> dict[str, int]:
    """The subject's rows on branch heads other than main (the erasure deletes those too)."""
    counts = {}
    for name in tables:
        table = catalog.load().load_table(name)
        counts[name] = sum(
            table.scan(snapshot_id=ref.snapshot_id).to_arrow().num_rows
            - _others(table.scan(snapshot_id=ref.snapshot_id).to_arrow(), info.subject_id, info.subject_email)[0]
            for branch, ref in table.metadata.refs.items()
            if branch != "main" and ref.snapshot_ref_type.value == "branch")
    return counts


def test_the_subject_is_gone_from_every_file_and_every_snapshot(erased):
    catalog, info, tables, _, _, _, outcome, _, _, on_branches = erased
    assert outcome.verified
    deleted = {t: f["rows_deleted"] for t, f in outcome.certificate["tables"].items()}
    # every table (and the orders quarantine) lost exactly the subject's rows, on main and on every branch
    assert on_branches["examples.customer_features"] > 0
    assert deleted == {t: n + on_branches.get(t, 0) for t, n in info.expected_rows.items()}
    # An independent decoded scan of every file under the warehouse, by value.
    check = verify_erased(catalog, tables, Identifiers((str(info.subject_id), info.subject_email),
                                                        columns=("customer_id",)))
    assert check.passed, check.findings
    # No remaining snapshot, on any ref, can return the subject through time travel.
    for name in tables:
        table = catalog.load().load_table(name)
        assert table.snapshots()
        for snapshot in table.snapshots():
            old = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
            assert _others(old, info.subject_id, info.subject_email)[0] == old.num_rows, (name, snapshot)


def test_every_other_subjects_rows_are_intact(erased):
    catalog, info, tables, before, *_ = erased
    for name in tables:
        after = catalog.load().load_table(name).scan().to_arrow()
        assert _others(after, info.subject_id, info.subject_email) == \
            _others(before[name], info.subject_id, info.subject_email), name
        assert after.num_rows == before[name].num_rows - info.expected_rows[name]


def test_earlier_exports_of_the_subject_are_removed(erased):
    *_, outcome, _, home, _ = erased
    assert not (home / "exports" / "dsr-2024-0000").exists()
    assert outcome.certificate["exports_removed"] == 1


def test_the_certificate_verifies_and_any_edit_is_detected(erased):
    *_, key, outcome, path, _, _ = erased
    verifying = key.verifying_key()
    assert verify_certificate(path.read_bytes(), verifying).valid
    text = path.read_bytes()
    assert b"zoe" not in text.lower() and b'"87"' not in text  # identifiers only as keyed hashes
    position = text.index(b'"rows_deleted": ') + len(b'"rows_deleted": ')
    tampered = text[:position] + bytes([text[position] ^ 0x01]) + text[position + 1:]
    check = verify_certificate(tampered, verifying)
    assert not check.valid and check.reason
    assert outcome.certificate["verification"]["passed"] is True
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_the_audit_trail_records_each_step_and_verifies(erased):
    catalog, *_ = erased
    store = audit.IcebergAuditStore(catalog.load(), "dativo.dsr_audit")
    checked = audit.verify(store, HASH_KEY)
    assert checked.valid, checked.reason
    events = [e.event["event"] for e in store.read() if e.event["request_id"] == "dsr-2024-0001"]
    assert events[0] == "received" and events[-1] == "completed"
    assert {"discovered", "deleted", "purged", "verified"} <= set(events)
    assert not audit.verify(store, b"another-key-entirely-32-bytes-long").valid


def test_a_long_erasure_reports_progress_without_identifiers(erased):
    _, info, tables, *_ = erased
    lines = [line for line in ERASURE_LOG if " running after " in line]
    deleting = [line for line in lines if line.startswith("request dsr-2024-0001: delete: ")]
    purging = [line for line in lines if line.startswith("request dsr-2024-0001: purge: ")]
    assert [line.split(": ")[2].split()[0] for line in deleting] == [f"{n}/{len(tables)}" for n in
                                                                     range(1, len(tables) + 1)]
    assert len(purging) == len(tables)
    rows_noted = [int(re.search(r"\((\d+) rows deleted\)", line).group(1)) for line in deleting]
    assert rows_noted == sorted(rows_noted) and rows_noted[-1] > 0
    rewrites = [line for line in lines if ": erasure rewrite: " in line]
    assert rewrites and all(re.search(r"erasure rewrite: \d+/\d+ files", line) for line in rewrites)
    assert any(line.startswith(f"verification of {len(tables)} table(s): ") for line in lines)
    # Progress lines name steps, tables and counts only: nothing else can carry an identifier.
    shape = re.compile(r"(request dsr-2024-0001: (delete|purge)|[\w.]+@\w+: erasure rewrite|verification of \d+ "
                       r"table\(s\)): \d+(/\d+)? (tables|files) running after \d+s.*\(\d+ (rows deleted|files removed|"
                       r"bytes)\)")
    assert [line for line in lines if not shape.fullmatch(line)] == []
    assert not [line for line in ERASURE_LOG if info.subject_email in line.lower()]


def test_an_unknown_subject_still_gets_a_signed_certificate(tmp_path):
    catalog = embedded_catalog(tmp_path / "lake")
    build_warehouse(catalog)
    key = _signing_key()
    request = SubjectRequest("dsr-unknown", "erasure", "customer", subject_ids=["999999"])
    outcome = erase_subject(catalog, contract_paths(), request, signing_key=key, hash_key=HASH_KEY,
                            refs_policy="remove", safety_window=timedelta(0))
    assert outcome.verified and outcome.certificate["totals"]["rows_deleted"] == 0
    assert verify_certificate(outcome.certificate, key.verifying_key()).valid


def test_a_request_near_its_deadline_fails_loudly():
    now = datetime(2026, 1, 30, tzinfo=timezone.utc)
    late = SubjectRequest("dsr-late", "erasure", "customer", subject_ids=["1"],
                          received_at=now - timedelta(days=28))
    with pytest.raises(DeadlineError, match="escalate"):
        check_deadline(late, now=now)
    check_deadline(SubjectRequest("dsr-ok", "erasure", "customer", subject_ids=["1"], received_at=now), now=now)


def test_an_erasure_covers_another_catalog_too(tmp_path):
    """An archive catalog holding copies of the tables (by name, or recording their contract) is
    searched with the identities resolved in the main catalog, erased, purged and verified."""
    from dativo_provider.ingest.engine import run_ingest
    from tests.memory_source import TableSource

    catalog = embedded_catalog(tmp_path / "lake")
    info = build_warehouse(catalog)
    archive = embedded_catalog(tmp_path / "archive")
    orders = catalog.load().load_table("examples.orders").scan().to_arrow()
    archive.load().create_namespace("examples")
    run_ingest(TableSource(orders, identity="memory://archive-orders"), archive, "examples.orders")
    subject_orders = info.expected_rows["examples.orders"]

    found = discover(catalog, contract_paths(), SubjectRequest("dsr-a", "access", "customer",
                                                               emails=[info.subject_email]),
                     other_catalogs={"archive": archive})
    rows = {t.table: t.rows for t in found.tables}
    assert rows["archive:examples.orders"] == subject_orders
    assert "in catalog archive" in found.table("archive:examples.orders").via

    request = SubjectRequest("dsr-b", "erasure", "customer", subject_ids=[str(info.subject_id)])
    outcome = erase_subject(catalog, contract_paths(), request, signing_key=_signing_key(), hash_key=HASH_KEY,
                            refs_policy="remove", safety_window=timedelta(0), other_catalogs={"archive": archive})
    assert outcome.verified
    assert outcome.certificate["tables"]["archive:examples.orders"]["rows_deleted"] == subject_orders
    left = archive.load().load_table("examples.orders").scan().to_arrow()
    assert left.num_rows == orders.num_rows - subject_orders
    assert info.subject_id not in left["customer_id"].to_pylist()
    assert verify_erased(archive, ["examples.orders"], Identifiers((str(info.subject_id),),
                                                                   columns=("customer_id",))).passed
