"""Rules checked by the user's own Python callable (``engine: custom``, ``implementation: pkg.mod:fn``).

The callable gets the checked rows as a ``pyarrow.Table`` and the rule, and returns either

* a ``bool``: the dataset passes or fails as a whole (a dataset-level check), or
* one boolean per row (a pyarrow/numpy array or a list), True where the row is valid: a row-level check
  whose failing rows can be sampled and quarantined. Its count of invalid rows is compared with the
  rule's threshold (``mustBe 0`` when the rule gives none).

A ``library`` rule with ``customProperties: [{property: dativoEngine, value: custom}]`` is evaluated here
too, in Python on the Arrow rows, with the rule's one definition
(:func:`~dativo_provider.quality.rows.failing_mask`; a pattern is ``re.fullmatch``): the engine for
rules a store's SQL cannot express exactly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dativo_provider.contracts.model import QualityRule
from dativo_provider.quality.result import CheckResult
from dativo_provider.quality.thresholds import describe, meets

if TYPE_CHECKING:
    import pyarrow as pa


def resolve(reference: str) -> Callable[..., Any]:
    """``package.module:function`` → the function; errors name the reference."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import module {module_name!r} of custom check {reference!r}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise LookupError(f"{module_name!r} has no callable {attribute!r} (custom check {reference!r})")
    return function


def run_custom(rule: QualityRule, rows: pa.Table, row_ids: pa.Array | None) -> CheckResult:
    """Run one custom rule on ``rows``; ``row_ids`` (same length) identify its failing rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if rule.kind != "custom":
        return run_library(rule, rows, row_ids)
    result = CheckResult(name=rule.name, engine="custom", category=rule.category, severity=rule.severity,
                         outcome="passed", dataset=rule.dataset, column=rule.column, metric="custom",
                         threshold=describe(rule.threshold or {"mustBe": 0}))
    try:
        answer = resolve(str(rule.implementation))(rows, rule)
    except Exception as exc:  # the user's code: its failure is this check's error, not the run's crash
        result.outcome = "error"
        result.message = f"{rule.implementation} raised {type(exc).__name__}: {exc}"
        return result
    if isinstance(answer, bool):
        result.observed = answer
        result.outcome = "passed" if answer else "failed"
        return result
    try:
        valid = pa.array(answer, type=pa.bool_()) if not isinstance(answer, pa.ChunkedArray) else answer
    except (TypeError, pa.ArrowInvalid) as exc:
        result.outcome = "error"
        result.message = (f"{rule.implementation} returned {type(answer).__name__}; expected a bool or one "
                          f"boolean per row ({exc})")
        return result
    if len(valid) != rows.num_rows:
        result.outcome = "error"
        result.message = f"{rule.implementation} returned {len(valid)} booleans for {rows.num_rows} rows"
        return result
    invalid = pc.invert(pc.fill_null(valid, False))
    failing = pc.sum(invalid).as_py() or 0
    result.observed = result.failing_rows = failing
    result.outcome = "passed" if meets(failing, rule.threshold or {"mustBe": 0}) else "failed"
    if row_ids is not None and failing:
        result.row_ids = pc.filter(row_ids, invalid)
    return result


def run_library(rule: QualityRule, rows: pa.Table, row_ids: pa.Array | None) -> CheckResult:
    """A library rule evaluated in Python with its one definition (row-level rules and rowCount)."""
    import pyarrow.compute as pc

    from dativo_provider.quality import rows as row_sql

    threshold = rule.threshold or {"mustBe": 0}
    result = CheckResult(name=rule.name, engine="custom", category=rule.category, severity=rule.severity,
                         outcome="error", dataset=rule.dataset, column=rule.column,
                         metric=rule.metric or rule.kind,
                         threshold=describe(threshold))
    if rule.kind == "library" and rule.metric == "rowCount":
        result.observed = rows.num_rows
        result.outcome = "passed" if meets(rows.num_rows, threshold) else "failed"
        return result
    if not row_sql.is_row_level(rule):
        what = f"{rule.kind} {rule.metric}" if rule.metric else f"a {rule.kind} rule"
        result.message = (f"rule {rule.name!r}: engine custom evaluates row-level library rules (nullValues, "
                          f"missingValues, invalidValues, duplicateValues) and rowCount, not {what}; "
                          "run it with engine soda or great_expectations")
        return result
    try:
        failing_mask = row_sql.failing_mask(rule, rows)
    except Exception as exc:  # a bad pattern or a missing column: this check's error, named
        result.message = f"rule {rule.name!r}: {exc}"
        return result
    failing = pc.sum(failing_mask).as_py() or 0
    result.observed = result.failing_rows = failing
    result.outcome = "passed" if meets(failing, threshold) else "failed"
    if row_ids is not None and failing:
        result.row_ids = pc.filter(row_ids, failing_mask)
    return result
