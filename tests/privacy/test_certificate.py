"""Signed certificates: every one-byte edit that changes the JSON is caught; insignificant ones are not."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dativo_provider.exceptions import ConfigError
from dativo_provider.privacy.audit import AuditTrail, verify
from dativo_provider.privacy.audit_stores import ObjectAuditStore
from dativo_provider.privacy.certificate import (
    SigningKey,
    VerifyingKey,
    audit_anchor,
    issue_certificate,
    request_section,
    verify_certificate,
    write_certificate,
)
from dativo_provider.privacy.hashing import canonical_json, subject_hash
from dativo_provider.privacy.request import SubjectRequest

SECRET = b"certificate-test-secret-0123456789"
AUDIT_KEY = b"audit-test-key-0123456789abcdef"


def _pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


@pytest.fixture(params=["ed25519", "hmac-sha256"])
def keys(request: pytest.FixtureRequest) -> tuple[SigningKey, VerifyingKey]:
    if request.param == "ed25519":
        signing = SigningKey.ed25519(_pem(Ed25519PrivateKey.generate()), "dsr-2026")
        return signing, VerifyingKey.ed25519(signing.public_key_pem(), "dsr-2026")
    return SigningKey.hmac(SECRET, "dsr-hmac"), VerifyingKey.hmac(SECRET, "dsr-hmac")


def _payload() -> dict:
    request = SubjectRequest("dsr-7", "erasure", "customer", subject_ids=("42",), emails=("Ann@Example.com",),
                             received_at=datetime(2026, 11, 1, tzinfo=timezone.utc))
    return {
        "request": request_section(request, AUDIT_KEY),
        "tables": {
            "crm.customers": {"rows_deleted": 1, "files_rewritten": 1, "files_removed": 2,
                              "snapshots_expired": 3, "refs_changed": 0},
            "crm.orders": {"rows_deleted": 4, "files_rewritten": 2, "files_removed": 2,
                           "snapshots_expired": 3, "refs_changed": 1},
        },
        "verification": {"passed": True, "files_scanned": {"parquet": 5, "avro": 8, "json": 4}, "findings": 0},
        "timestamps": {"received": "2026-11-01T00:00:00.000000+00:00",
                       "started": "2026-11-02T10:00:00.000000+00:00",
                       "completed": "2026-11-02T10:05:00.000000+00:00"},
        "issuer": {"name": "dativo-airflow-provider"},
    }


def _file_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _same_json(data: bytes, original: dict) -> bool:
    try:
        return canonical_json(json.loads(data.decode("utf-8"))) == canonical_json(original)
    except (ValueError, UnicodeDecodeError):
        return False


def test_issued_certificate_verifies_and_holds_no_clear_identifier(keys) -> None:
    signing, verifying = keys
    document = issue_certificate(_payload(), signing)
    check = verify_certificate(document, verifying)
    assert check.valid, check.reason
    assert document["totals"] == {"rows_deleted": 5, "files_rewritten": 3, "files_removed": 4,
                                  "snapshots_expired": 6, "refs_changed": 1}
    assert document["issuer"] == {"name": "dativo-airflow-provider", "key_id": signing.key_id,
                                  "algorithm": signing.algorithm}
    assert document["signature"]["algorithm"] == signing.algorithm
    text = json.dumps(document).lower()
    assert "ann@example.com" not in text and '"42"' not in text
    assert subject_hash(AUDIT_KEY, "customer", "42") in document["request"]["subject"]["identifier_hashes"]


def test_every_one_byte_edit_that_changes_the_json_fails(keys) -> None:
    signing, verifying = keys
    document = issue_certificate(_payload(), signing)
    data = _file_bytes(document)
    assert verify_certificate(data, verifying).valid
    insignificant = 0
    for position in range(len(data)):
        for replacement in {data[position] ^ 0x01, ord(" ") if data[position] != ord(" ") else ord("\t")}:
            edited = data[:position] + bytes([replacement]) + data[position + 1:]
            check = verify_certificate(edited, verifying)
            if _same_json(edited, document):
                insignificant += 1
                assert check.valid, (position, check.reason)
            else:
                assert not check.valid, (position, bytes([data[position]]), bytes([replacement]))
                assert check.reason
    assert insignificant > 0  # whitespace between tokens really was exercised


@pytest.mark.parametrize("edit", [
    lambda d: d["tables"]["crm.orders"].update(rows_deleted=5),
    lambda d: d["tables"]["crm.orders"].update(extra=1),
    lambda d: d["request"]["subject"]["identifier_hashes"].reverse(),
    lambda d: d["timestamps"].update(completed=d["timestamps"]["completed"] + " "),
    lambda d: d.update(note="added"),
    lambda d: d["signature"].update(key_id="other"),
    lambda d: d["signature"].update(extra="x"),
    lambda d: d.pop("verification"),
    lambda d: d.pop("signature"),
])
def test_semantic_edits_fail(keys, edit) -> None:
    signing, verifying = keys
    document = issue_certificate(_payload(), signing)
    edit(document)
    check = verify_certificate(json.dumps(document), verifying)
    assert not check.valid and check.reason


def test_key_order_and_whitespace_do_not_matter(keys) -> None:
    signing, verifying = keys
    document = issue_certificate(_payload(), signing)
    reordered = dict(reversed(list(document.items())))
    assert verify_certificate(json.dumps(reordered, indent=4), verifying).valid


def test_duplicate_keys_and_non_finite_numbers_are_refused(keys) -> None:
    signing, verifying = keys
    text = json.dumps(issue_certificate(_payload(), signing))
    duplicated = text.replace('"findings": 0', '"findings": 0, "findings": 0')
    assert "duplicate key" in verify_certificate(duplicated, verifying).reason
    assert not verify_certificate(text.replace('"findings": 0', '"findings": NaN'), verifying).valid


def test_wrong_key_fails() -> None:
    document = issue_certificate(_payload(), SigningKey.ed25519(Ed25519PrivateKey.generate().private_bytes_raw(), "a"))
    other = VerifyingKey.ed25519(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert "does not match" in verify_certificate(document, other).reason
    assert "verifying key is 'b'" in verify_certificate(document, VerifyingKey.ed25519(
        SigningKey.ed25519(Ed25519PrivateKey.generate().private_bytes_raw(), "b").public_key_pem(), "b")).reason
    assert "'hmac-sha256'" in verify_certificate(document, VerifyingKey.hmac(SECRET)).reason
    hmac_document = issue_certificate(_payload(), SigningKey.hmac(SECRET, "h"))
    assert not verify_certificate(hmac_document, VerifyingKey.hmac(SECRET + b"x", "h")).valid


def test_unknown_subject_still_signs_zero_rows(keys) -> None:
    signing, verifying = keys
    payload = {**_payload(), "tables": {"crm.customers": {"rows_deleted": 0, "files_rewritten": 0}}}
    document = issue_certificate(payload, signing)
    assert document["totals"] == {"rows_deleted": 0, "files_rewritten": 0}
    assert verify_certificate(document, verifying).valid


def test_bad_payloads_and_keys_are_refused() -> None:
    key = SigningKey.hmac(SECRET, "h")
    with pytest.raises(ConfigError, match="lacks verification"):
        issue_certificate({k: v for k, v in _payload().items() if k != "verification"}, key)
    with pytest.raises(ConfigError, match="already has a 'signature'"):
        issue_certificate(issue_certificate(_payload(), key), key)
    with pytest.raises(ConfigError, match="not plain JSON"):
        issue_certificate({**_payload(), "verification": {"passed": float("nan")}}, key)
    with pytest.raises(ConfigError, match="at least 16"):
        SigningKey.hmac(b"short", "h")
    with pytest.raises(ConfigError, match="not an unencrypted PEM"):
        SigningKey.ed25519(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", "k")


def test_secrets_stay_out_of_repr_and_documents() -> None:
    raw = Ed25519PrivateKey.generate().private_bytes_raw()
    for key in (SigningKey.ed25519(raw, "k"), SigningKey.hmac(SECRET, "h")):
        document = json.dumps(issue_certificate(_payload(), key))
        assert SECRET.decode() not in repr(key) + document and raw.hex() not in repr(key) + document
    assert SECRET.decode() not in repr(VerifyingKey.hmac(SECRET, "h"))


def test_write_certificate_is_owner_only_and_round_trips(tmp_path, keys) -> None:
    signing, verifying = keys
    path = write_certificate(tmp_path / "dsr-7.json", issue_certificate(_payload(), signing))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verify_certificate(path.read_bytes(), verifying).valid
    assert [p.name for p in tmp_path.iterdir()] == ["dsr-7.json"]


def test_the_certificate_anchor_covers_the_completed_event(tmp_path, keys) -> None:
    """Issue 9 item 6: the anchor used to be taken before ``completed``, so removing that event (and
    putting the older head back) left a trail the certificate agreed with."""
    signing, verifying = keys
    store = ObjectAuditStore(str(tmp_path / "trail"))
    trail = AuditTrail(store, AUDIT_KEY)
    for event in ("received", "deleted", "verified"):
        trail.append("dsr-7", event)
    before = store.head()
    head_file = (tmp_path / "trail" / "HEAD.json").read_bytes()
    completed = trail.append("dsr-7", "completed", {"rows_deleted": 5})
    document = issue_certificate({**_payload(), "audit_trail": trail.anchor(completed).to_dict()}, signing)
    assert verify_certificate(document, verifying).valid
    anchor = audit_anchor(json.dumps(document))
    assert (anchor.request_id, anchor.seq, anchor.event) == ("dsr-7", 3, "completed")
    assert anchor.hash == completed["hash"]
    assert verify(store, AUDIT_KEY, anchors=[anchor]).valid

    (tmp_path / "trail" / "00000003.json").unlink()  # the completed event goes, the older head comes back
    (tmp_path / "trail" / "HEAD.json").write_bytes(head_file)
    assert verify(store, AUDIT_KEY).valid
    old_style = audit_anchor({**document, "audit_trail": {"head_seq": before.seq, "head_hash": before.hash}})
    assert verify(store, AUDIT_KEY, anchors=[old_style]).valid  # why the anchor moved after 'completed'
    check = verify(store, AUDIT_KEY, anchors=[anchor])
    assert (check.valid, check.position) == (False, 3)
    assert "'completed' of request 'dsr-7') is missing" in check.reason


def test_audit_anchor_of_another_request_or_none() -> None:
    key = SigningKey.hmac(SECRET, "h")
    assert audit_anchor(issue_certificate(_payload(), key)) is None
    foreign = {"request_id": "dsr-8", "seq": 1, "event": "completed", "hash": "ab" * 32, "mac": "cd" * 32}
    with pytest.raises(ConfigError, match="request 'dsr-7' anchors request 'dsr-8'"):
        audit_anchor(issue_certificate({**_payload(), "audit_trail": foreign}, key))
    with pytest.raises(ConfigError, match="not an audit anchor"):
        audit_anchor({**_payload(), "audit_trail": {"seq": 1}})
