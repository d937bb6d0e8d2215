"""The one definition of each row-level rule: which rows fail it.

Every engine and store counts a row-level rule with this definition, and quarantine acts on the same
rows, so the count and the quarantined rows cannot disagree:

* Soda counts it as a ``failed_rows`` check whose ``expression`` is :func:`failing_predicate`;
* Great Expectations on a database counts the rows :func:`failing_predicate` selects (GX's
  ``UnexpectedRowsExpectation``); on a DataFrame it uses GX expectations whose meaning equals it
  (checked by the cross-store conformance suite);
* ``dativoEngine: custom`` evaluates :func:`failing_mask` in Python on Arrow batches;
* quarantine and failing-row samples select the rows with :func:`failing_predicate`.

The semantics (docs/quality.md, "What each rule means"):

``nullValues``       the value is NULL.
``missingValues``    the value is NULL or equal to one of ``arguments.missingValues`` (a NULL in that
                     list adds nothing: NULL is always missing).
``invalidValues``    the value is present (not missing as above) and not valid: not equal to any of
                     ``arguments.validValues`` (a NULL in the list is ignored), and/or not a full match of
                     ``arguments.pattern`` with Python ``re`` semantics (:mod:`~.regex`). With both, a
                     value must satisfy both.
``duplicateValues``  the key (the column, or the ``arguments.properties`` tuple) has no NULL part and
                     occurs in more than one row; every such row fails (the count is rows, not "rows
                     minus distinct values"). A key with a NULL part never duplicates (SQL ``UNIQUE``).

Comparisons are exact: strings by code point (case, accents and trailing spaces matter, whatever the
column's collation: MariaDB/MySQL text is compared as ``utf8mb4_nopad_bin``), numbers by value
(``Decimal`` values from the contract are written as exact decimal literals, never through a float).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.contracts.model import QualityRule
from dativo_provider.exceptions import ConfigError
from dativo_provider.quality.regex import full_match_regex

if TYPE_CHECKING:
    import pyarrow as pa

Dialect = Literal["duckdb", "postgres", "mysql"]

#: Metrics whose failures are individual rows.
ROW_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues")
#: MariaDB/MySQL: compare text exactly (by code point, trailing spaces significant).
MYSQL_EXACT_COLLATION = "utf8mb4_nopad_bin"


def quote_identifier(name: str, dialect: Dialect) -> str:
    """``name`` quoted for ``dialect`` (any character allowed, quotes doubled)."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def quote_relation(parts: Collection[str], dialect: Dialect) -> str:
    """``("sales", "dec")`` → ``"sales"."dec"`` (each part quoted, none split on dots)."""
    return ".".join(quote_identifier(p, dialect) for p in parts)


def literal(value: Any, dialect: Dialect = "duckdb") -> str:
    """A SQL literal for a value from a contract (strings, numbers, booleans).

    Numbers are written exactly (a ``Decimal`` as its plain digits, a float as its shortest repr);
    MariaDB/MySQL strings get their backslashes doubled (there, a backslash escapes in a literal).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ConfigError(f"the value {value} is not a finite number")
        return format(value, "f")
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("'", "''")
    if dialect == "mysql":
        text = text.replace("\\", "\\\\")
    return "'" + text + "'"


def is_row_level(rule: QualityRule) -> bool:
    return rule.kind == "library" and rule.metric in ROW_METRICS and (
        rule.column is not None or rule.metric == "duplicateValues"
    )


def key_of(rule: QualityRule) -> list[str]:
    """The columns a rule reads: its column, or a duplicate rule's ``arguments.properties``."""
    if rule.metric == "duplicateValues" and not rule.column:
        return list(rule.arguments.get("properties") or [])
    return [rule.column] if rule.column else []


def _values(rule: QualityRule, name: str) -> list[Any]:
    return [v for v in rule.arguments.get(name) or [] if v is not None]


def failing_predicate(rule: QualityRule, relation: str, dialect: Dialect, *,
                      text_columns: Collection[str] | None = None) -> str:
    """A boolean SQL expression, true exactly for the rows that fail ``rule`` (never NULL).

    :param relation: the quoted relation the rows come from; duplicates look it up again.
    :param text_columns: on MariaDB/MySQL, the columns holding text: they are compared exactly
        (:data:`MYSQL_EXACT_COLLATION`) instead of by their collation. Ignored elsewhere.
    :raises ConfigError: the rule is not row-level, or (:class:`~.regex.UnsupportedPattern`) its pattern
        cannot be expressed on ``dialect``.
    """
    if not is_row_level(rule):
        raise ConfigError(f"rule {rule.name!r} ({rule.kind} {rule.metric}) does not fail individual rows")
    texts = set(text_columns or ()) if dialect == "mysql" else set()

    def value(name: str) -> str:
        quoted = quote_identifier(name, dialect)
        if name in texts:
            return f"(CONVERT({quoted} USING utf8mb4) COLLATE {MYSQL_EXACT_COLLATION})"
        return quoted

    def in_list(expression: str, values: list[Any]) -> str:
        return f"{expression} IN ({', '.join(literal(v, dialect) for v in values)})"

    if rule.metric == "duplicateValues":
        columns = key_of(rule)
        if not columns:
            raise ConfigError(f"rule {rule.name!r}: duplicateValues needs a column or arguments.properties")
        keys = ", ".join(value(c) for c in columns)
        not_null = " AND ".join(f"{quote_identifier(c, dialect)} IS NOT NULL" for c in columns)
        groups = f"SELECT {keys} FROM {relation} WHERE {not_null} GROUP BY {keys} HAVING COUNT(*) > 1"
        if dialect == "mysql":  # MySQL cannot read the table it filters in an IN subquery without this
            groups = f"SELECT * FROM ({groups}) AS repeated"
        target = keys if len(columns) == 1 else f"({keys})"
        return f"({not_null} AND {target} IN ({groups}))"
    column = quote_identifier(rule.column or "", dialect)
    missing = _values(rule, "missingValues") if rule.metric in ("missingValues", "invalidValues") else []
    is_missing = f"{column} IS NULL"
    if missing:
        is_missing += f" OR {in_list(value(rule.column or ''), missing)}"
    if rule.metric == "nullValues":
        return f"({column} IS NULL)"
    if rule.metric == "missingValues":
        return f"({is_missing})"
    invalid = []
    if rule.arguments.get("validValues") is not None:
        valid = _values(rule, "validValues")
        invalid.append(f"NOT {in_list(value(rule.column or ''), valid)}" if valid else "TRUE")
    if rule.arguments.get("pattern") is not None:
        invalid.append(f"NOT {_full_match(rule.column or '', rule.arguments['pattern'], dialect)}")
    if not invalid:
        raise ConfigError(f"rule {rule.name!r}: invalidValues needs arguments.validValues or "
                          "arguments.pattern")
    return f"(NOT ({is_missing}) AND ({' OR '.join(invalid)}))"


def _full_match(column: str, pattern: str, dialect: Dialect) -> str:
    regex = literal(full_match_regex(str(pattern), dialect), dialect)
    quoted = quote_identifier(column, dialect)
    if dialect == "duckdb":
        return f"regexp_matches(CAST({quoted} AS VARCHAR), {regex})"
    if dialect == "postgres":
        return f"(CAST({quoted} AS TEXT) ~ {regex})"
    # A binary, no-pad collation: REGEXP is case-sensitive and reads UTF-8 characters, not bytes.
    return f"(CONVERT({quoted} USING utf8mb4) COLLATE {MYSQL_EXACT_COLLATION} REGEXP {regex})"


def failing_mask(rule: QualityRule, table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """The same definition evaluated in Python on Arrow data: True for each failing row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not is_row_level(rule):
        raise ConfigError(f"rule {rule.name!r} ({rule.kind} {rule.metric}) does not fail individual rows")
    columns = key_of(rule)
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise ConfigError(f"rule {rule.name!r}: column(s) {absent} are not in the data "
                          f"(it has {table.column_names})")
    if rule.metric == "duplicateValues":
        # NaN equals NaN when SQL groups rows: the same here (Python's float NaN never equals itself).
        keys = [tuple(_NAN if isinstance(v, float) and v != v else v for v in key)
                for key in zip(*(table.column(c).to_pylist() for c in columns))] if table.num_rows else []
        counts: dict[tuple[Any, ...], int] = {}
        for key in keys:
            if None not in key:
                counts[key] = counts.get(key, 0) + 1
        return pa.array([None not in key and counts[key] > 1 for key in keys], pa.bool_())
    data = table.column(rule.column or "").combine_chunks()
    is_null = pc.is_null(data)
    if rule.metric == "nullValues":
        return is_null
    values = data.to_pylist()
    missing = set(_values(rule, "missingValues"))
    is_missing = [v is None or v in missing for v in values]
    if rule.metric == "missingValues":
        return pa.array(is_missing, pa.bool_())
    valid_values = rule.arguments.get("validValues")
    valid_set = set(_values(rule, "validValues")) if valid_values is not None else None
    pattern = rule.arguments.get("pattern")
    compiled = re.compile(str(pattern)) if pattern is not None else None
    out = []
    for v, gone in zip(values, is_missing):
        bad = False
        if not gone:
            if valid_set is not None and v not in valid_set:
                bad = True
            if compiled is not None and compiled.fullmatch(v if isinstance(v, str) else str(v)) is None:
                bad = True
        out.append(bad)
    return pa.array(out, pa.bool_())


_NAN = object()


def engine_count_matches(rule: QualityRule, engine_count: int | None, rows: int) -> bool:
    """Does the engine's failure count equal the ``rows`` our predicate found? (One definition: a
    duplicate rule counts every row of a repeated key, as the predicate selects them.)"""
    return engine_count is not None and engine_count == rows
