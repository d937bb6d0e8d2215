"""The checks a contract asks for on one dataset: its quality rules plus the rules its schema and SLA
imply (a required column has no nulls, a unique column no duplicates, the newest timestamp is fresh,
a run brings at least N rows). Every check is a :class:`QualityRule`, so each engine adapter compiles
one kind of thing.
"""

from __future__ import annotations

from dativo_provider.contracts.model import Contract, Dataset, QualityRule
from dativo_provider.exceptions import ConfigError

#: Our metric for the freshness SLA (ODCS has none): ``arguments["maxAgeSeconds"]``.
FRESHNESS = "freshness"


def dataset_of(contract: Contract, name: str | None) -> Dataset:
    """The contract's dataset called ``name``, or its only dataset when ``name`` is None."""
    if name is None:
        if len(contract.datasets) != 1:
            names = ", ".join(d.name for d in contract.datasets)
            raise ConfigError(f"contract {contract.path} describes several datasets ({names}); name one")
        return contract.datasets[0]
    found = contract.dataset(name)
    if found is None:
        names = ", ".join(d.name for d in contract.datasets)
        raise ConfigError(f"contract {contract.path} has no dataset {name!r} (it has: {names})")
    return found


def checks_for(contract: Contract, dataset: Dataset) -> list[QualityRule]:
    """Every check to run on ``dataset``, in a stable order: implied checks first, then the rules."""
    checks: list[QualityRule] = []
    for column in dataset.columns:
        if column.required:
            checks.append(_implied(dataset, column.name, "required", "nullValues",
                                   f"{column.name} is required: it has no nulls"))
        if column.unique or (column.primary_key and len(dataset.primary_key) == 1):
            checks.append(_implied(dataset, column.name, "unique", "duplicateValues",
                                   f"{column.name} is unique: no value repeats"))
    for freshness in contract.sla.freshness:
        if freshness.dataset == dataset.name:
            checks.append(QualityRule(
                name=f"{freshness.column}__fresh", engine="soda", severity="error", dataset=dataset.name,
                column=freshness.column, kind="library", metric=FRESHNESS,
                arguments={"maxAgeSeconds": int(freshness.max_age.total_seconds())},
                threshold={"mustBeLessOrEqualTo": int(freshness.max_age.total_seconds())},
                description=f"the newest {freshness.column} is at most {freshness.max_age} old",
                category="sla",
            ))
    if contract.sla.min_rows_per_run is not None:
        checks.append(QualityRule(
            name="rows_per_run", engine="soda", severity="error", dataset=dataset.name, column=None,
            kind="library", metric="rowCount",
            threshold={"mustBeGreaterOrEqualTo": contract.sla.min_rows_per_run},
            description=f"a run brings at least {contract.sla.min_rows_per_run} rows", category="sla",
        ))
    checks.extend(rule for rule in contract.rules if rule.dataset == dataset.name)
    return checks


def _implied(dataset: Dataset, column: str, suffix: str, metric: str, description: str) -> QualityRule:
    return QualityRule(
        name=f"{column}__{suffix}", engine="soda", severity="error", dataset=dataset.name, column=column,
        kind="library", metric=metric, threshold={"mustBe": 0}, description=description,
    )
