"""``dativo contract check`` and ``ContractCheckOperator`` reach one verdict on the same contract and data.

Both ask :func:`dativo_provider.quality.verdict.judge_in_place`; here each runs for real (the CLI's
``main``, the operator's ``execute``) on one embedded catalog, and what each decided is compared: the
exit status with whether the task failed, and the ``verdict``/``blocking``/``warnings`` each reported.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

import tests.airflow.conftest  # noqa: F401  (a private AIRFLOW_HOME, set before airflow is imported)

ROOT = Path(__file__).resolve().parents[2]

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:parity
version: 1.0.0
status: active
team: {{name: qa}}
customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: {quality}, sla: warn}}
schema:
  - name: people
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
      - name: status
        logicalType: string
        quality:
          - name: status_known
            metric: invalidValues
            arguments: {{validValues: [active, closed]}}
            mustBe: 0
      - name: team
        logicalType: string
        quality:
          - name: team_distinct
            severity: warning
            metric: duplicateValues
            mustBe: 0
"""

CLEAN = [(1, "active", "red"), (2, "closed", "blue")]
DUPLICATE_TEAM = [(1, "active", "red"), (2, "closed", "red")]  # only the warning-severity rule fails
UNKNOWN_STATUS = [(1, "active", "red"), (2, "lost", "blue")]  # the error-severity rule fails


class _TaskInstance:
    """Collects the XComs a task pushes besides its return value."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded catalog both use: the operator's default one (DATIVO_HOME) is the CLI's --warehouse."""
    monkeypatch.setenv("DATIVO_HOME", str(tmp_path / "dativo"))
    return tmp_path / "dativo"


def _load(warehouse: Path, rows: list[tuple[int, str, str]]) -> None:
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from tests.memory_source import TableSource

    ids, statuses, teams = zip(*rows)
    table = pa.table({"id": pa.array(ids, pa.int64()), "status": statuses, "team": teams})
    run_ingest(TableSource(table), embedded_catalog(warehouse), "tests.people")


def _cli(contract: Path, warehouse: Path, report: Path) -> tuple[int, dict[str, Any], str]:
    """Exit status, the --report verdict, stdout of ``dativo contract check``: its ``main``, in this process
    (the exit status is what ``main`` returns; tests/contracts/test_cli.py runs the command as a process)."""
    from dativo_provider.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["contract", "check", str(contract), "--warehouse", str(warehouse), "--table", "tests.people",
                       "--report", str(report)])
    assert "internal error" not in err.getvalue(), err.getvalue()
    data = json.loads(report.read_text())
    return status, {key: data[key] for key in ("verdict", "blocking", "warnings")}, out.getvalue()


def _operator(contract: Path) -> tuple[bool, dict[str, Any]]:
    """Whether the task failed, and the verdict in the report it returned (or pushed when failing)."""
    from dativo_provider.compat import AirflowFailException
    from dativo_provider.operators.contracts import ContractCheckOperator

    operator = ContractCheckOperator(task_id="check", contract=str(contract), table="tests.people")
    ti = _TaskInstance()
    try:
        report, failed = operator.execute({"ti": ti}), False
    except AirflowFailException:
        report, failed = ti.pushed["quality_report"], True
    return failed, {key: report[key] for key in ("verdict", "blocking", "warnings")}


@pytest.mark.parametrize(
    ("quality", "rows", "expected"),
    [
        ("block", CLEAN, {"verdict": "pass", "blocking": [], "warnings": []}),
        ("block", DUPLICATE_TEAM, {"verdict": "warn", "blocking": [], "warnings": ["team_distinct"]}),
        # the contract's handling for quality is warn: an error-severity rule that fails only warns
        ("warn", UNKNOWN_STATUS, {"verdict": "warn", "blocking": [], "warnings": ["status_known"]}),
        ("block", UNKNOWN_STATUS, {"verdict": "fail", "blocking": ["status_known"], "warnings": []}),
        # a check in place cannot hold rows back, so quarantine fails it as block does
        ("quarantine", UNKNOWN_STATUS, {"verdict": "fail", "blocking": ["status_known"], "warnings": []}),
    ],
    ids=["pass", "warning-severity", "handling-warn", "block", "quarantine"],
)
def test_the_cli_and_the_operator_reach_one_verdict(warehouse, tmp_path, quality, rows, expected):
    contract = tmp_path / "people.odcs.yaml"
    contract.write_text(CONTRACT.format(quality=quality))
    _load(warehouse, rows)

    status, cli_verdict, stdout = _cli(contract, warehouse, tmp_path / "report.json")
    task_failed, operator_verdict = _operator(contract)

    assert cli_verdict == operator_verdict == expected
    assert (status, task_failed) == ((1, True) if expected["verdict"] == "fail" else (0, False))
    for name in expected["warnings"]:  # printed as a warning, not as a failure
        assert f"  WARNING {name} (" in stdout and f"FAILED  {name}" not in stdout


def _docs_callback(sent: list[str]) -> Any:
    """``contract_failed`` as docs/quality.md writes it (its "Alerts" example), sending into ``sent``."""
    from tests.docs.snippets import blocks_of

    (block,) = [b for b in blocks_of(ROOT / "docs" / "quality.md") if "def contract_failed" in b.text]
    from dativo_provider.operators.contracts import ContractCheckOperator

    namespace: dict[str, Any] = {"send_to_team": sent.append, "ContractCheckOperator": ContractCheckOperator}
    exec(compile(block.text, "docs/quality.md", "exec"), namespace)
    return namespace["contract_failed"]


def test_the_docs_failure_callback_names_only_the_checks_that_failed_the_task(warehouse, tmp_path):
    contract = tmp_path / "people.odcs.yaml"
    contract.write_text(CONTRACT.format(quality="block"))
    _load(warehouse, [(1, "active", "red"), (2, "lost", "red")])  # a blocking failure and a warning
    from dativo_provider.compat import AirflowFailException
    from dativo_provider.operators.contracts import ContractCheckOperator

    ti = _TaskInstance()
    with pytest.raises(AirflowFailException, match=r"\(1 blocking check\)"):
        ContractCheckOperator(task_id="check_people", contract=str(contract), table="tests.people").execute(
            {"ti": ti})
    assert ti.pushed["quality_report"]["warnings"] == ["team_distinct"]

    class FailedTaskInstance:
        task_id = "check_people"

        def xcom_pull(self, task_ids: str, key: str) -> Any:
            return ti.pushed[key] if task_ids == self.task_id else None

    sent: list[str] = []
    _docs_callback(sent)({"ti": FailedTaskInstance()})
    assert sent == ["check_people: contract urn:test:parity failed: ['status_known']"]
