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
