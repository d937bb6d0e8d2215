"""Which rows fail a row-level rule, as a SQL predicate.

The engines decide whether a check passes and count its failures; they do not hand back the failing
rows themselves (Soda keeps them for its cloud). To show samples of failing keys, and to move exactly
the failing rows to quarantine, we locate them with the rule's own definition written as a predicate,
and check that the count we find equals the count the engine measured before acting on it.
"""

from __future__ import annotations

from typing import Any, Literal

from dativo_provider.contracts.model import QualityRule

Dialect = Literal["duckdb", "postgres", "mysql"]

#: Metrics whose failures are individual rows.
ROW_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues")


def quote_identifier(name: str, dialect: Dialect) -> str:
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL literal for a value from a contract (strings, numbers, booleans)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def is_row_level(rule: QualityRule) -> bool:
    return rule.kind == "library" and rule.metric in ROW_METRICS and (
        rule.column is not None or rule.metric == "duplicateValues"
    )


def failing_predicate(rule: QualityRule, relation: str, dialect: Dialect) -> str | None:
    """A boolean SQL expression, true for the rows that fail ``rule``; None for dataset-level rules.

    :param relation: the (quoted) relation the rows come from; duplicates look it up again.
    """
    if not is_row_level(rule):
        return None
    q = lambda name: quote_identifier(name, dialect)  # noqa: E731
    if rule.metric == "duplicateValues":
        columns = [rule.column] if rule.column else list(rule.arguments.get("properties") or [])
        cols = ", ".join(q(c) for c in columns)
        not_null = " AND ".join(f"{q(c)} IS NOT NULL" for c in columns)
        groups = f"SELECT {cols} FROM {relation} WHERE {not_null} GROUP BY {cols} HAVING COUNT(*) > 1"
        target = cols if len(columns) == 1 else f"({cols})"
        return f"({not_null} AND {target} IN ({groups}))"
    column = q(rule.column or "")
    if rule.metric == "nullValues":
        return f"{column} IS NULL"
    if rule.metric == "missingValues":
        values = rule.arguments.get("missingValues") or []
        extra = f" OR {column} IN ({', '.join(literal(v) for v in values)})" if values else ""
        return f"({column} IS NULL{extra})"
    # invalidValues: a value that is present (not missing) and not valid.
    missing = rule.arguments.get("missingValues") or []
    present = f"{column} IS NOT NULL" + (
        f" AND {column} NOT IN ({', '.join(literal(v) for v in missing)})" if missing else "")
    if "validValues" in rule.arguments:
        valid = ", ".join(literal(v) for v in rule.arguments["validValues"])
        return f"({present} AND {column} NOT IN ({valid}))"
    return f"({present} AND NOT {_full_match(column, rule.arguments['pattern'], dialect)})"


def _full_match(column: str, pattern: str, dialect: Dialect) -> str:
    if dialect == "duckdb":
        return f"regexp_full_match(CAST({column} AS VARCHAR), {literal(pattern)})"
    anchored = literal(f"^(?:{pattern})$")
    if dialect == "postgres":
        return f"(CAST({column} AS TEXT) ~ {anchored})"
    return f"(CAST({column} AS CHAR) REGEXP {anchored})"


def engine_count_matches(rule: QualityRule, engine_count: int | None, rows: int, groups: int) -> bool:
    """Does the engine's failure count agree with the ``rows`` our predicate found?

    Soda counts duplicates as non-null values minus distinct values (every copy after the first),
    GX as every row of a repeated group: ``groups`` (how many values repeat) reconciles the two.
    """
    if engine_count is None:
        return False
    if rule.metric == "duplicateValues":
        return engine_count in (rows, rows - groups)
    return engine_count == rows
