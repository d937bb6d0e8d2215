"""ODCS threshold operators (``mustBe``, ``mustBeLessThan``, ``mustBeBetween`` ...) on a measured value."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "mustBe": operator.eq,
    "mustNotBe": operator.ne,
    "mustBeGreaterThan": operator.gt,
    "mustBeGreaterOrEqualTo": operator.ge,
    "mustBeLessThan": operator.lt,
    "mustBeLessOrEqualTo": operator.le,
}


def holds(threshold: dict[str, Any], value: Any) -> bool:
    """Does ``value`` satisfy the threshold? A rule without an operator holds when nothing failed."""
    if not threshold:
        return value == 0
    ((op, bound),) = threshold.items()
    if op == "mustBeBetween":
        return bound[0] <= value <= bound[1]
    if op == "mustNotBeBetween":
        return not bound[0] <= value <= bound[1]
    return _COMPARE[op](value, bound)


def describe(threshold: dict[str, Any]) -> str | None:
    """``{"mustBe": 0}`` → ``"mustBe 0"``."""
    if not threshold:
        return None
    ((op, bound),) = threshold.items()
    return f"{op} {bound}"
