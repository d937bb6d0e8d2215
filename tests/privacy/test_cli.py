"""``dativo certificate verify`` and ``dativo audit verify``: exit 0 valid, 1 invalid with the reason, 2 usage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dativo_provider.cli import main
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy.anchors import AnchorStore
from dativo_provider.privacy.audit import AuditTrail, IcebergAuditStore, ObjectAuditStore
from dativo_provider.privacy.certificate import SigningKey, issue_certificate, write_certificate

SECRET = "cli-test-secret-0123456789abcdef"
PAYLOAD = {"request": {"id": "dsr-1", "kind": "erasure"}, "tables": {"crm.c": {"rows_deleted": 1}},
           "verification": {"passed": True, "findings": 0}, "timestamps": {"completed": "2026-11-02"}}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSR_KEY", SECRET)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


def test_certificate_verify_hmac(tmp_path: Path, env, capsys) -> None:
    path = write_certificate(tmp_path / "c.json", issue_certificate(PAYLOAD, SigningKey.hmac(SECRET, "k1")))
    assert _run(["certificate", "verify", str(path), "--hmac-key-env", "DSR_KEY"], capsys)[0] == 0
    path.write_text(path.read_text().replace('"rows_deleted": 1', '"rows_deleted": 2'))
    code, output = _run(["certificate", "verify", str(path), "--hmac-key-env", "DSR_KEY"], capsys)
    assert code == 1 and "INVALID" in output and "does not match" in output


def test_certificate_verify_ed25519(tmp_path: Path, capsys) -> None:
    key = SigningKey.ed25519(Ed25519PrivateKey.generate().private_bytes_raw(), "ed-1")
    path = write_certificate(tmp_path / "c.json", issue_certificate(PAYLOAD, key))
    public = tmp_path / "public.pem"
    public.write_text(key.public_key_pem())
    argv = ["certificate", "verify", str(path), "--public-key", str(public)]
    assert _run(argv, capsys)[0] == 0
    assert _run([*argv, "--key-id", "other"], capsys)[0] == 1
    path.write_bytes(path.read_bytes().replace(b"dsr-1", b"dsr-2"))
    assert _run(argv, capsys)[0] == 1


@pytest.mark.parametrize("argv", [
    ["certificate", "verify", "c.json"],
    ["certificate", "verify", "c.json", "--hmac-key-env", "DSR_KEY", "--public-key", "p.pem"],
    ["certificate", "verify", "missing.json", "--hmac-key-env", "DSR_KEY"],
    ["certificate", "verify", "c.json", "--hmac-key-env", "UNSET_VARIABLE_X"],
    ["certificate", "verify", "c.json", "--public-key", "not-a-key.pem"],
    ["audit", "verify", "--key-env", "DSR_KEY"],
    ["audit", "verify", "--table", "dativo.dsr_audit", "--key-env", "DSR_KEY"],
    ["audit", "verify", "--path", "no-such-dir", "--key-env", "DSR_KEY"],
    ["audit", "verify", "--path", ".", "--key-env", "UNSET_VARIABLE_X"],
    ["audit", "verify", "--path", ".", "--key-env", "DSR_KEY", "--certificate", "missing.json"],
    ["audit", "verify", "--path", ".", "--key-env", "DSR_KEY", "--certificate", "c.json"],
    ["audit", "verify", "--path", ".", "--key-env", "DSR_KEY", "--anchors", "no-such-dir"],
])
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path, env, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_certificate("c.json", issue_certificate(PAYLOAD, SigningKey.hmac(SECRET, "k1")))
    Path("not-a-key.pem").write_text("nope")
    code, output = _run(argv, capsys)
    assert code == 2 and output.strip()


def test_audit_verify_files(tmp_path: Path, env, capsys) -> None:
    AuditTrail(ObjectAuditStore(str(tmp_path)), SECRET).append("dsr-1", "received")
    AuditTrail(ObjectAuditStore(str(tmp_path)), SECRET).append("dsr-1", "completed")
    argv = ["audit", "verify", "--path", str(tmp_path), "--key-env", "DSR_KEY"]
    code, output = _run(argv, capsys)
    assert code == 0 and "2 event(s)" in output
    event = json.loads((tmp_path / "00000001.json").read_text())
    event["event"] = "failed"
    (tmp_path / "00000001.json").write_text(json.dumps(event))
    code, output = _run(argv, capsys)
    assert code == 1 and "position 1" in output and "edited" in output


def test_audit_verify_iceberg(tmp_path: Path, env, capsys) -> None:
    store = IcebergAuditStore(embedded_catalog(tmp_path).load(), "dativo.dsr_audit")
    AuditTrail(store, SECRET).append("dsr-1", "received")
    argv = ["audit", "verify", "--table", "dativo.dsr_audit", "--warehouse", str(tmp_path), "--key-env", "DSR_KEY"]
    assert _run(argv, capsys)[0] == 0
    code, output = _run([*argv[:-1], "DSR_OTHER"], capsys)
    assert code == 2
    code, output = _run([*argv[:2], "--table", "dativo.nope", *argv[4:]], capsys)
    assert code == 1 and "does not exist" in output


def test_console_script_exit_code(tmp_path: Path) -> None:
    path = write_certificate(tmp_path / "c.json", issue_certificate(PAYLOAD, SigningKey.hmac(SECRET, "k1")))
    path.write_text(path.read_text().replace("erasure", "access"))
    result = subprocess.run([sys.executable, "-m", "dativo_provider.cli", "certificate", "verify", str(path),
                             "--hmac-key-env", "DSR_KEY"], capture_output=True, text=True,
                            env={"DSR_KEY": SECRET, "PATH": ""}, check=False)
    assert result.returncode == 1 and "INVALID" in result.stderr and "Traceback" not in result.stderr


def _certificate(tmp_path: Path, trail: AuditTrail, request_id: str) -> Path:
    trail.append(request_id, "received")
    completed = trail.append(request_id, "completed")
    payload = {**PAYLOAD, "request": {"id": request_id, "kind": "erasure"},
               "audit_trail": trail.anchor(completed).to_dict()}
    document = issue_certificate(payload, SigningKey.hmac(SECRET, "k1"))
    return write_certificate(tmp_path / f"{request_id}.json", document)


def test_audit_verify_with_a_certificate_and_an_anchor_store(tmp_path: Path, env, capsys) -> None:
    anchors = AnchorStore(str(tmp_path / "a"))
    trail = AuditTrail(ObjectAuditStore(str(tmp_path / "trail")), SECRET, anchors=anchors)
    certificate = _certificate(tmp_path, trail, "dsr-1")
    code, output = _run(["certificate", "verify", str(certificate), "--hmac-key-env", "DSR_KEY"], capsys)
    assert code == 0 and "anchors the audit trail at event 1 ('completed')" in output
    trail.append("dsr-2", "received")
    head = (tmp_path / "trail" / "HEAD.json").read_bytes()
    trail.append("dsr-2", "failed", {"error": "TerminalError"})
    argv = ["audit", "verify", "--path", str(tmp_path / "trail"), "--key-env", "DSR_KEY"]
    with_anchors = [*argv, "--certificate", str(certificate), "--anchors", str(tmp_path / "a")]
    code, output = _run(with_anchors, capsys)
    assert code == 0 and "3 anchor(s) hold" in output and "WARNING" not in output  # certificate + store

    (tmp_path / "trail" / "00000003.json").unlink()  # the failed event goes, the older head comes back
    (tmp_path / "trail" / "HEAD.json").write_bytes(head)
    assert _run(argv, capsys)[0] == 0
    code, output = _run(with_anchors, capsys)
    assert code == 1 and "position 3" in output and "'failed' of request 'dsr-2'" in output


def test_audit_verify_iceberg_with_the_certificate(tmp_path: Path, env, capsys) -> None:
    store = IcebergAuditStore(embedded_catalog(tmp_path).load(), "dativo.dsr_audit")
    trail = AuditTrail(store, SECRET)
    trail.append("dsr-0", "received")
    table = store.catalog.load_table(store.identifier)
    before = table.current_snapshot().snapshot_id
    certificate = _certificate(tmp_path, trail, "dsr-1")
    argv = ["audit", "verify", "--table", "dativo.dsr_audit", "--warehouse", str(tmp_path),
            "--key-env", "DSR_KEY"]
    assert _run([*argv, "--certificate", str(certificate)], capsys)[0] == 0
    table = store.catalog.load_table(store.identifier)
    later = [s.snapshot_id for s in table.snapshots() if s.snapshot_id != before]
    table.manage_snapshots().rollback_to_snapshot(before).commit()  # both dsr-1 events go
    table.maintenance.expire_snapshots().by_ids(later).commit()
    assert _run(argv, capsys)[0] == 0
    code, output = _run([*argv, "--certificate", str(certificate)], capsys)
    assert code == 1 and "'completed' of request 'dsr-1') is missing" in output


def test_audit_verify_warns_about_a_trail_without_a_sealed_head(tmp_path: Path, env, capsys) -> None:
    AuditTrail(ObjectAuditStore(str(tmp_path)), SECRET).append("dsr-1", "received")
    (tmp_path / "HEAD.json").unlink()  # as trails written before heads were sealed
    code, output = _run(["audit", "verify", "--path", str(tmp_path), "--key-env", "DSR_KEY"], capsys)
    assert code == 0 and "VALID" in output and "WARNING" in output and "no sealed head" in output
