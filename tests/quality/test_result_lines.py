"""How a check reads in the log and the CLI: a threshold that allows failing rows, warnings, sentences."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dativo_provider.contracts.loader import load_contract
from dativo_provider.contracts.model import Contract
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.quality.result import CheckResult, QualityReport
from dativo_provider.quality.runner import IcebergTarget, run_contract
from dativo_provider.quality.verdict import judge, judge_in_place
from tests.memory_source import TableSource

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:lines
version: 1.0.0
status: active
team: {{name: qa}}
customProperties:
  - property: dativoViolationHandling
    value: {{quality: {quality}}}
schema:
  - name: t
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
      - name: status
        logicalType: string
        quality:
          - name: few_unknown_statuses
            metric: invalidValues
            arguments: {{validValues: [active, closed]}}
            mustBeLessThan: 3
          - name: status_known
            metric: invalidValues
            arguments: {{validValues: [active, closed]}}
            mustBe: 0
            severity: warning
          - name: one_lost_at_most
            metric: invalidValues
            arguments: {{validValues: [active, closed, lost]}}
            mustBe: 0
"""


def _report(tmp_path: Path, quality: str = "block") -> tuple[Contract, QualityReport, dict[str, CheckResult]]:
    """The contract run on rows with two unknown statuses ('lost' and 'gone'), one outside every list."""
    table = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()),
                      "status": ["active", "lost", "closed", "gone"]})
    catalog = embedded_catalog(tmp_path / "w")
    run_ingest(TableSource(table), catalog, "ns.t")
    path = tmp_path / "c.yaml"
    path.write_text(CONTRACT.format(quality=quality))
    contract = load_contract(path)
    report = run_contract(contract, IcebergTarget(catalog, "ns.t"))
    return contract, report, {check.name: check for check in report.checks}


def test_a_check_that_passes_within_its_threshold_says_so(tmp_path: Path) -> None:
    _, _, checks = _report(tmp_path)
    allowed = checks["few_unknown_statuses"]
    assert (allowed.outcome, allowed.failing_rows) == ("passed", 2)
    assert allowed.line() == ("passed  few_unknown_statuses (soda, quality, error) on status: observed 2; "
                              "2 failing rows, within the threshold (mustBeLessThan 3)")
    one = checks["one_lost_at_most"]
    assert one.line() == ("FAILED  one_lost_at_most (soda, quality, error) on status: observed 1, "
                          "expected mustBe 0; 1 failing row")


def test_a_failure_the_contract_only_warns_about_reads_as_a_warning(tmp_path: Path) -> None:
    contract, report, _ = _report(tmp_path)
    verdict = judge_in_place(contract, report)
    assert [c.name for c in verdict.warned] == ["status_known"]
    assert [c.name for c in verdict.blocking] == ["one_lost_at_most"]
    lines = report.summary(warned=verdict.warned).splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["passed", "WARNING", "FAILED"]
    assert lines[1] == ("  WARNING status_known (soda, quality, warning) on status: observed 2, "
                        "expected mustBe 0; 2 failing rows")
    assert verdict.report_dict(report) | {"checks": None} == report.to_dict() | {
        "checks": None, "verdict": "fail", "blocking": ["one_lost_at_most"], "warnings": ["status_known"]}


def test_a_sentence_added_to_a_message_follows_a_full_stop(tmp_path: Path) -> None:
    """The gate blocks a quarantine whose rows cannot be located; its reason is appended as a sentence."""
    contract, report, checks = _report(tmp_path, quality="quarantine")
    lost = checks["one_lost_at_most"]
    # what the runner says when the predicate and the engine disagree (a run without row ids collected)
    lost.message = ("the rule's predicate finds 2 rows but the engine counted 1; these rows cannot be "
                    "quarantined")
    verdict = judge(contract, report, can_hold_rows=True)
    assert verdict.blocking == [lost]
    assert lost.message == ("the rule's predicate finds 2 rows but the engine counted 1; these rows cannot "
                            "be quarantined. Its failing rows could not be located, so the run is blocked "
                            "instead of quarantined.")
    ended = CheckResult(name="c", engine="custom", category="quality", severity="error", outcome="failed",
                        dataset="t", message="Already a sentence.")
    ended.add_sentence("Another.")
    assert ended.message == "Already a sentence. Another."
