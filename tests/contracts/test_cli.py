"""``dativo contract lint`` as users run it: a subprocess, exit status and output lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MALFORMED = Path(__file__).parent / "malformed"
LINE = re.compile(r"^(?P<file>[^:]+\.ya?ml):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


def dativo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dativo_provider.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )


def test_example_contracts_lint_clean() -> None:
    result = dativo("contract", "lint", "contracts/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "all contracts lint clean, 0 warning(s)" in result.stderr


def test_malformed_corpus_fails_with_file_and_line_and_no_traceback() -> None:
    result = dativo("contract", "lint", str(MALFORMED))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "internal error" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    files = {Path(LINE.match(line)["file"]).name for line in lines}
    assert files == {p.name for p in MALFORMED.iterdir()}  # every malformed file is reported
    assert f"error(s) in {len(files)} file(s)" in result.stderr


def test_one_file_prints_the_exact_line() -> None:
    target = MALFORMED / "unknown_top_level_key.yaml"
    result = dativo("contract", "lint", str(target))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{target}:6: owner: unknown key 'owner'"]


def test_warnings_alone_exit_zero() -> None:
    result = dativo("contract", "lint", "contracts/orders.odcs.yaml")
    assert result.returncode == 0
    assert "warning: relationship target 'customers.customer_id'" in result.stdout


def test_missing_path_and_bad_usage() -> None:
    missing = dativo("contract", "lint", "no/such/dir")
    assert missing.returncode == 1 and "no such file or directory" in missing.stdout
    usage = dativo("contract")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
