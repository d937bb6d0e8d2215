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


def test_warnings_alone_exit_zero(tmp_path: Path) -> None:
    result = dativo("contract", "lint", "contracts/", str(tmp_path))
    assert result.returncode == 0
    assert result.stdout == f"{tmp_path}:0: (file): warning: no *.yaml or *.yml contract files found\n"


def test_a_relationship_to_an_unlinted_dataset_exits_1_unless_named_external() -> None:
    alone = dativo("contract", "lint", "contracts/orders.odcs.yaml")
    assert alone.returncode == 1
    assert "relationship target 'customers.customer_id': no linted contract defines dataset" in alone.stdout
    told = dativo("contract", "lint", "contracts/orders.odcs.yaml", "--external", "customers")
    assert (told.returncode, told.stdout) == (0, "")


def test_missing_path_and_bad_usage() -> None:
    missing = dativo("contract", "lint", "no/such/dir")
    assert missing.returncode == 1 and "no such file or directory" in missing.stdout
    usage = dativo("contract")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_a_missing_hand_written_soda_contract_is_named_with_its_line() -> None:
    target = MALFORMED / "handwritten_soda_missing.yaml"
    result = dativo("contract", "lint", str(target))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{target}:12: schema[0].customProperties[0].value: dativoSodaContract "
                                    "file 'soda/t.yaml' does not exist")


def test_compile_prints_the_soda_contract_and_the_gx_suite() -> None:
    import json

    import yaml

    soda = dativo("contract", "compile", "contracts/customers.odcs.yaml", "--engine", "soda")
    assert soda.returncode == 0, soda.stderr
    document = yaml.safe_load(soda.stdout)
    assert document["dataset"] == "dativo/examples/customers"  # runnable: the queries name the table
    assert "FROM  " not in soda.stdout
    checks = [c for col in document["columns"] for c in col.get("checks", [])] + document.get("checks", [])
    names = {next(iter(c.values()))["name"] for c in checks}
    assert {"customer_id__unique", "email_well_formed", "country_is_iso_code"} <= names
    gx = dativo("contract", "compile", "contracts/customers.odcs.yaml", "--engine", "great_expectations")
    assert gx.returncode == 0, gx.stderr
    suite = json.loads(gx.stdout)
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    assert ("expect_column_values_to_be_between", "birth_year") in kinds


CHECKED_CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:cli-check
version: 1.0.0
status: active
team: {name: qa}
schema:
  - name: t
    properties:
      - name: id
        logicalType: integer
        required: true
        unique: true
"""


def test_check_runs_a_contract_on_an_embedded_table(tmp_path: Path) -> None:
    import json

    import pyarrow as pa

    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from tests.memory_source import TableSource

    contract = tmp_path / "t.yaml"
    contract.write_text(CHECKED_CONTRACT)
    run_ingest(TableSource(pa.table({"id": pa.array([1, 2, 2], pa.int64())})), embedded_catalog(tmp_path / "w"),
               "ns.t")
    report = tmp_path / "report.json"
    result = dativo("contract", "check", str(contract), "--warehouse", str(tmp_path / "w"), "--table", "ns.t",
                    "--report", str(report))
    assert result.returncode == 1, result.stderr
    assert "FAILED  id__unique" in result.stdout and "passed  id__required" in result.stdout
    data = json.loads(report.read_text())
    assert data["rows_checked"] == 3 and data["checks_failed"] == 1
    assert data["verdict"] == "fail" and data["blocking"] == ["id__unique"] and data["warnings"] == []


def test_check_without_a_verdict_exits_2_naming_what_is_wrong(tmp_path: Path) -> None:
    """Exit 1 means "the data fails its contract"; a wrong contract, table or branch is not that."""
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from tests.memory_source import TableSource

    one_row = pa.table({"id": pa.array([1], pa.int64())})
    run_ingest(TableSource(one_row), embedded_catalog(tmp_path / "w"), "ns.t")
    contract = tmp_path / "t.yaml"
    contract.write_text(CHECKED_CONTRACT)
    where = ("--warehouse", str(tmp_path / "w"))
    branch = dativo("contract", "check", str(contract), *where, "--table", "ns.t", "--branch", "nope")
    table = dativo("contract", "check", str(contract), *where, "--table", "ns.nope")
    broken = tmp_path / "broken.yaml"
    broken.write_text(CHECKED_CONTRACT.replace("version: 1.0.0\n", ""))
    invalid = dativo("contract", "check", str(broken), *where, "--table", "ns.t")
    assert (branch.returncode, table.returncode, invalid.returncode) == (2, 2, 2)
    assert "no branch or tag 'nope'" in branch.stderr
    assert table.stderr == f"dativo: --table ns.nope: no such table in the catalog at {tmp_path / 'w'}\n"
    assert "invalid data contract" in invalid.stderr and f"{broken}:" in invalid.stderr
    for result in (branch, table, invalid):
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
