"""ODCS threshold operators (``mustBe``, ``mustBeLessThan``, ``mustBeBetween`` ...) on a measured value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dativo_provider.exceptions import ConfigError

_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "mustBe": lambda observed, v: observed == v,
    "mustNotBe": lambda observed, v: observed != v,
    "mustBeGreaterThan": lambda observed, v: observed > v,
    "mustBeGreaterOrEqualTo": lambda observed, v: observed >= v,
    "mustBeLessThan": lambda observed, v: observed < v,
    "mustBeLessOrEqualTo": lambda observed, v: observed <= v,
    "mustBeBetween": lambda observed, v: v[0] <= observed <= v[1],
    "mustNotBeBetween": lambda observed, v: not v[0] <= observed <= v[1],
}


def meets(observed: Any, threshold: dict[str, Any]) -> bool:
    """Does ``observed`` satisfy every operator in ``threshold`` (e.g. ``{"mustBe": 0}``)?"""
    unknown = set(threshold) - set(_TESTS)
    if unknown:
        raise ConfigError(f"unknown ODCS threshold operator(s) {sorted(unknown)}; use one of {list(_TESTS)}")
    return all(_TESTS[op](observed, value) for op, value in threshold.items())


def describe(threshold: dict[str, Any]) -> str | None:
    """A readable threshold, e.g. ``mustBe 0`` or ``mustBeBetween [1, 10]``."""
    return ", ".join(f"{op} {value}" for op, value in threshold.items()) or None
