"""What sits in quarantine: rows held per guarded table, ingest run and check, with the reasons.

Quarantine tables are found from the list (their ``dativo.quarantine-of`` property). Counting rows per
run and check needs the rows' reason columns (:data:`~dativo_provider.quality.quarantine.META_COLUMNS`),
so only those columns are read, never a held row's values. A reason names the metric and column
(``invalid on currency``), not a value.

The release and purge actions are not run here: the page triggers a DAG run of the actions DAG
(:mod:`dativo_provider.plugins.quarantine_actions`) through Airflow's API with the user's rights,
with the conf :func:`action_conf` builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.quality.quarantine import FAILED_CHECKS, QUARANTINED_AT, REASON, RUN_ID

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from dativo_provider.contracts.model import Contract

#: Distinct reasons kept per run.
MAX_REASONS = 5


@dataclass
class HeldRun:
    """The rows one ingest run left in quarantine."""

    run_id: str
    rows: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    first_at: str | None = None
    last_at: str | None = None


@dataclass
class Quarantine:
    """One quarantine table: totals, per check, per run, and whether a release can be triggered."""

    catalog: str
    table: str
    quarantine_table: str
    rows: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    runs: list[HeldRun] = field(default_factory=list)
    contract: str | None = None
    contract_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quarantine(catalog_name: str, catalog: Catalog, quarantine_table: str, guarded_table: str,
               contract: Contract | None = None) -> Quarantine:
    """Read the reason columns of ``quarantine_table`` and count rows per run and check."""
    table = catalog.load_table(quarantine_table)
    held = Quarantine(catalog_name, guarded_table, quarantine_table,
                      contract=contract.id if contract else None,
                      contract_file=contract.path if contract else None)
    if table.current_snapshot() is None:
        return held
    rows = table.scan(selected_fields=(RUN_ID, FAILED_CHECKS, REASON, QUARANTINED_AT)).to_arrow().to_pylist()
    runs: dict[str, HeldRun] = {}
    for row in rows:
        run = runs.setdefault(str(row[RUN_ID]), HeldRun(str(row[RUN_ID])))
        _count(run, held, row)
    held.runs = sorted(runs.values(), key=lambda run: run.last_at or "", reverse=True)
    return held


def _count(run: HeldRun, held: Quarantine, row: dict[str, Any]) -> None:
    run.rows += 1
    held.rows += 1
    for check in row[FAILED_CHECKS] or ["(unnamed)"]:
        run.checks[check] = run.checks.get(check, 0) + 1
        held.checks[check] = held.checks.get(check, 0) + 1
    reason = row[REASON]
    if reason and reason not in run.reasons and len(run.reasons) < MAX_REASONS:
        run.reasons.append(str(reason))
    at = row[QUARANTINED_AT].isoformat(timespec="seconds") if row[QUARANTINED_AT] is not None else None
    if at is not None:
        run.first_at = min(run.first_at or at, at)
        run.last_at = max(run.last_at or at, at)


def action_conf(action: str, held: Quarantine, run_ids: Sequence[str]) -> dict[str, Any]:
    """The DAG run conf that releases or purges ``run_ids`` of ``held`` (the actions DAG's params).

    :raises ValueError: unknown action, a run id that is not held, or a release without a contract file.
    """
    if action not in ("release", "purge"):
        raise ValueError(f"action is {action!r}; expected release or purge")
    unknown = sorted(set(run_ids) - {run.run_id for run in held.runs})
    if not run_ids or unknown:
        raise ValueError(f"run ids {unknown or '[]'} are not held in {held.quarantine_table}")
    if action == "release" and not held.contract_file:
        raise ValueError(f"{held.table}: its contract is not in the contracts folder; a release re-checks "
                         "rows with it, so set [dativo_ui] contracts_folder")
    return {"action": action, "catalog": held.catalog, "table": held.table,
            "quarantine_table": held.quarantine_table, "contract": held.contract_file or "",
            "run_ids": sorted(set(run_ids))}
