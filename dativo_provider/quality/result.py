"""One contract run's result: a row per check, with totals, in a form for XCom, JSON and the log."""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["passed", "failed", "error"]
Category = Literal["quality", "sla", "schema"]

#: How many failing rows' keys a check result keeps (the count is always exact).
MAX_FAILING_KEYS = 20


@dataclass
class CheckResult:
    """What one check found.

    :param engine: ``soda``, ``great_expectations``, ``custom`` or ``dativo`` (schema policy checks).
    :param outcome: ``error`` means the engine could not evaluate the check (bad SQL, a type it
        cannot compare...); it counts as a failure.
    :param observed: the metric value the engine measured (a count, a timestamp age in seconds...).
    :param failing_rows: how many rows fail a row-level check; None for a dataset-level check.
    :param failing_keys: up to :data:`MAX_FAILING_KEYS` failing rows, as their key columns' values.
    :param row_ids: positions of the failing rows in the checked data (for quarantine); never reported.
    """

    name: str
    engine: str
    category: Category
    severity: str
    outcome: Outcome
    dataset: str
    column: str | None = None
    metric: str | None = None
    observed: Any = None
    threshold: str | None = None
    failing_rows: int | None = None
    failing_keys: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    row_ids: Any = field(default=None, repr=False, compare=False)

    @property
    def failed(self) -> bool:
        return self.outcome != "passed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("row_ids")
        return data

    def add_sentence(self, sentence: str) -> None:
        """Append ``sentence`` to :attr:`message`, ending what is there with a full stop first."""
        before = self.message.strip()
        if before and not before.endswith((".", "!", "?")):
            before += "."
        self.message = f"{before} {sentence}".strip()

    def line(self, *, warned: bool = False) -> str:
        """One readable line, e.g. ``FAILED  email_well_formed (soda, quality, error) on email: ...``.

        :param warned: the check failed but the contract only warns about it (see
            :mod:`dativo_provider.quality.verdict`): shown as ``WARNING`` instead of ``FAILED``/``ERROR``.
        """
        where = f" on {self.column}" if self.column else ""
        status = "WARNING" if warned and self.failed else _STATUS[self.outcome]
        kind = f"{self.engine}, {self.category}, {self.severity}"
        return f"{status:<7} {self.name} ({kind}){where}: {self._detail()}"

    def _detail(self) -> str:
        parts = [f"observed {self.observed!r}"] if self.observed is not None else []
        rows = f"{self.failing_rows} failing row{'' if self.failing_rows == 1 else 's'}"
        if not self.failed and self.failing_rows:
            # The threshold allows some failing rows: say so ("passed ... 211 failing rows" reads as a bug).
            allowed = f"the threshold ({self.threshold})" if self.threshold else "its threshold"
            return "; ".join([*parts, f"{rows}, within {allowed}"])
        if self.threshold:
            parts.append(f"expected {self.threshold}")
        detail = ", ".join(parts)
        if self.failing_rows:
            detail = "; ".join(filter(None, [detail, rows]))
        if self.message and self.failed:
            detail = "; ".join(filter(None, [detail, self.message]))
        return detail


_STATUS: dict[Outcome, str] = {"passed": "passed", "failed": "FAILED", "error": "ERROR"}


@dataclass
class QualityReport:
    """A contract run on one dataset.

    :param target: what was checked, e.g. ``iceberg://warehouse/examples.customers@branch:dativo-audit-…``.
    """

    contract: str
    contract_version: str
    dataset: str
    target: str
    rows_checked: int
    checks: list[CheckResult] = field(default_factory=list)
    duration_seconds: float = 0.0
    snapshot_id: int | None = None
    #: Rows of subjects under a processing restriction, left out of the checks.
    rows_restricted: int = 0

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks if not c.failed)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.checks if c.failed)

    def failures(self, severity: str | None = None, category: str | None = None) -> list[CheckResult]:
        return [
            c for c in self.checks
            if c.failed and (severity is None or c.severity == severity)
            and (category is None or c.category == category)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "contract_version": self.contract_version,
            "dataset": self.dataset,
            "target": self.target,
            "snapshot_id": self.snapshot_id,
            "rows_checked": self.rows_checked,
            "rows_restricted": self.rows_restricted,
            "checks_total": len(self.checks),
            "checks_passed": self.passed,
            "checks_failed": self.failed,
            "duration_seconds": self.duration_seconds,
            "checks": [c.to_dict() for c in self.checks],
        }

    def summary(self, warned: Collection[CheckResult] = ()) -> str:
        """A readable multi-line summary for the task log and error messages.

        :param warned: failed checks the contract only warns about, shown as ``WARNING``.
        """
        head = (f"contract {self.contract} v{self.contract_version} on {self.target}: "
                f"{self.rows_checked} rows, {len(self.checks)} checks, {self.passed} passed, "
                f"{self.failed} failed ({self.duration_seconds:.2f}s)")
        warned_ids = {id(check) for check in warned}
        return "\n".join([head, *("  " + c.line(warned=id(c) in warned_ids) for c in self.checks)])

    def write_json(self, path: str | os.PathLike[str], data: dict[str, Any] | None = None) -> None:
        """Write ``data`` (default :meth:`to_dict`) as JSON; values JSON cannot encode become strings."""
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.to_dict() if data is None else data, out, indent=2, default=str)
