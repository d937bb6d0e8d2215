"""What a contract's failed checks do to a run: the one rule, asked by every place that acts on results.

The write-audit-publish gate (:class:`~dativo_provider.quality.wap.ContractGate`) asks :func:`judge` about
the rows a run wrote; a check of a table where it lives (``ContractCheckOperator`` and ``dativo contract
check``, both through :func:`judge_in_place`) asks it too, and as it cannot hold rows back, whatever would
be quarantined fails the check instead.

Each failed check (outcome ``failed``, or ``error`` when it could not be evaluated), in this order:

1. rows of subjects under a processing restriction (the check ``restricted``) are held back,
   whatever the contract says;
2. a ``warning``-severity rule only warns;
3. the contract's violation handling for the check's kind (schema, quality, sla) is ``warn``: it warns;
4. a check that could not be evaluated blocks;
5. handling ``block`` blocks; handling ``quarantine`` holds rows back: the failing rows of a row-level
   check, the whole run for a schema check or a dataset-level one (row count, freshness, a SQL metric).
   A row-level check whose failing rows cannot be located blocks instead, and so does every
   ``quarantine`` where rows cannot be held back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from dativo_provider.contracts.model import Contract, Handling
    from dativo_provider.quality.result import CheckResult, QualityReport

Consequence = Literal["block", "quarantine", "warn"]
#: A check in place: nothing failed, only checks the contract warns about failed, or a check failed it.
InPlaceOutcome = Literal["pass", "warn", "fail"]


def handling_of(contract: Contract, check: CheckResult) -> Handling:
    """What the contract says to do when ``check`` fails: ``block``, ``quarantine`` or ``warn``.

    A ``warning``-severity rule only warns; otherwise the contract's handling of the check's kind
    (schema, quality, SLA) applies.
    """
    if check.severity == "warning":
        return "warn"
    handling: Handling = getattr(contract.handling, check.category)
    return handling


def consequence(contract: Contract, check: CheckResult) -> Consequence | None:
    """What one check's result does to the run (steps 1 to 4 and 5 of the rule); None when it passed."""
    from dativo_provider.privacy.restriction import CHECK_NAME as RESTRICTED

    if not check.failed:
        return None
    handling = "quarantine" if check.name == RESTRICTED else handling_of(contract, check)
    if handling == "warn":
        return "warn"
    if check.outcome == "error":
        return "block"
    return handling


@dataclass
class Verdict:
    """The failed checks of one report, by what they do.

    :param quarantining: the checks whose rows are held back; ``whole_run`` those of them that hold
        back every row of the run.
    """

    blocking: list[CheckResult] = field(default_factory=list)
    quarantining: list[CheckResult] = field(default_factory=list)
    whole_run: list[CheckResult] = field(default_factory=list)
    warned: list[CheckResult] = field(default_factory=list)

    @property
    def blocks(self) -> bool:
        return bool(self.blocking)

    @property
    def outcome(self) -> InPlaceOutcome:
        """Of a check in place (:func:`judge_in_place`): ``fail`` when a check blocks, ``warn`` when the
        only failed checks are warnings, else ``pass``."""
        if self.blocking:
            return "fail"
        return "warn" if self.warned else "pass"

    def report_dict(self, report: QualityReport) -> dict[str, Any]:
        """``report.to_dict()`` with this verdict: ``verdict`` (:attr:`outcome`), and the names of the
        ``blocking`` checks and of those that only raised ``warnings`` (what a failure callback should read).
        """
        return {**report.to_dict(), "verdict": self.outcome,
                "blocking": [c.name for c in self.blocking],
                "warnings": [c.name for c in self.warned]}


def judge(contract: Contract, report: QualityReport, *, can_hold_rows: bool) -> Verdict:
    """Sort the failed checks of ``report`` by :func:`consequence`.

    :param can_hold_rows: True in the write-audit-publish gate, which can quarantine rows; False for a
        check in place, where a check the contract would quarantine blocks.
    """
    verdict = Verdict()
    for check in report.failures():
        outcome = consequence(contract, check)
        if outcome == "warn":
            verdict.warned.append(check)
        elif outcome == "block" or not can_hold_rows:
            verdict.blocking.append(check)
        elif check.category == "schema" or check.failing_rows is None:
            verdict.quarantining.append(check)
            verdict.whole_run.append(check)
        elif check.row_ids is None:
            check.add_sentence("Its failing rows could not be located, so the run is blocked instead of "
                               "quarantined.")
            verdict.blocking.append(check)
        else:
            verdict.quarantining.append(check)
    return verdict


def judge_in_place(contract: Contract, report: QualityReport) -> Verdict:
    """The verdict on a table checked where it lives, which no check can hold rows of back.

    ``ContractCheckOperator`` fails its task, and ``dativo contract check`` exits 1, exactly when
    :attr:`Verdict.blocks`; checks in :attr:`Verdict.warned` are reported as warnings by both.
    """
    return judge(contract, report, can_hold_rows=False)
