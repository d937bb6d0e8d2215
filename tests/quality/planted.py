"""One planted dataset for the cross-store conformance suite, and the plain-Python answer to each rule.

The rows hold what the stores disagree on when a rule's meaning is left to them: NULLs (also inside a
composite key), case and accents that a case/accent-insensitive collation would merge (``PAID``,
``Paíd``, ``ß``/``ss``, ``y``/``Y``), a trailing space (PAD SPACE collations ignore it), composed and
decomposed ``é``, Unicode letters and digits for ``\\w``/``\\d``, a trailing newline for ``$``, decimals
at the edge of decimal(38,9) that a float cannot tell apart, a ``"`` in a column name, a column and a
table named with reserved words (``select``, ``order``).

The expected counts (:func:`expected`) are computed here from :data:`ROWS` with plain Python — ``re``,
``==``, ``collections.Counter`` — and never with the code under test.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pyarrow as pa

TABLE = "order"  # a reserved word in every store
WEIRD = 'we"ird'  # a double quote in a column name
SELECT = "select"  # a reserved word as a column name

D = Decimal
MAX = D("99999999999999999999999999999.999999999")  # the largest decimal(38,9)
MIN = D("-99999999999999999999999999999.999999999")  # (unary minus would round to 28 digits)
CAP = D("99999999999999999999999999999.9999999995")  # a bound just above MAX
BIG = D("12345678901234567890.123456789")  # a float reads this and BIG - 1e-9 as the same number

COLUMNS = ("id", "status", "code", WEIRD, "a", "b", "amount", SELECT)
ROWS: list[tuple[Any, ...]] = [
    # id  status        code          we"ird   a     b      amount                 select
    (1, "paid", "abc", "x", 1, "x", BIG, 1),
    (2, "PAID", "ab_c", "x", 1, "x", MAX, None),
    (3, "Paíd", "añb", "y", 1, None, MIN, 3),
    (4, "paid ", "a-b", None, 1, None, D("0.000000001"), 4),
    (5, "pending", "٣٤", "z", None, None, D("12345678901234567890.123456788"), None),
    (6, None, "ab\n", "Z", None, None, None, 6),
    (7, "n/a", "", None, 2, "y", D("0.000000001"), 7),
    (8, "", "A1", "q", 2, "Y", D("0"), 8),
    (9, "refunded", None, "Q", 3, "z", D("0.000000002"), 9),
    (10, "café", "é", "ü", 3, "z", BIG, None),
    (11, "cafe\u0301", "e\u0301", "ü", 4, "z", D("0.000000001"), 10),
    (12, "pending", "x y", "ǅ", 5, "ß", D("1"), 11),
    (13, "paid", "aa", "ǅ", 5, "ss", D("-0.000000001"), 12),
    (14, "Pending", "O'Brien", "it's", 6, "ǆ", D("1E+28"), 13),
]

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False), pa.field("status", pa.string()),
    pa.field("code", pa.string()),
    pa.field(WEIRD, pa.string()), pa.field("a", pa.int64()), pa.field("b", pa.string()),
    pa.field("amount", pa.decimal128(38, 9)), pa.field(SELECT, pa.int64()),
])

#: The rules, as (name, column, metric, arguments, threshold); ``kind`` sql for the one with a query.
VALID_STATUS = ["paid", "pending", "refunded"]
VALID_AMOUNTS = [BIG, D("0.000000001"), D("0")]
MISSING_STATUS = ["n/a", ""]
RULES: list[dict[str, Any]] = [
    {"name": "weird_not_null", "column": WEIRD, "metric": "nullValues"},
    {"name": "status_present", "column": "status", "metric": "missingValues",
     "arguments": {"missingValues": [*MISSING_STATUS, None]}},
    {"name": "status_known", "column": "status", "metric": "invalidValues",
     "arguments": {"validValues": [*VALID_STATUS, None], "missingValues": MISSING_STATUS}},
    {"name": "code_word", "column": "code", "metric": "invalidValues", "arguments": {"pattern": r"\w+"}},
    {"name": "code_digits", "column": "code", "metric": "invalidValues", "arguments": {"pattern": r"\d+"}},
    {"name": "code_dotted", "column": "code", "metric": "invalidValues", "arguments": {"pattern": r"a.b$"}},
    {"name": "code_repeat", "column": "code", "metric": "invalidValues", "arguments": {"pattern": r"(\w)\1"}},
    {"name": "status_set_and_pattern", "column": "status", "metric": "invalidValues",
     "arguments": {"validValues": ["paid", "PAID", "pending"], "pattern": "[a-z]+"}},
    {"name": "amount_known", "column": "amount", "metric": "invalidValues",
     "arguments": {"validValues": VALID_AMOUNTS}},
    {"name": "weird_unique", "column": WEIRD, "metric": "duplicateValues"},
    {"name": "status_unique", "column": "status", "metric": "duplicateValues"},
    {"name": "ab_unique", "column": None, "metric": "duplicateValues",
     "arguments": {"properties": ["a", "b"]}},
    {"name": "rows", "column": None, "metric": "rowCount", "threshold": {"mustBeGreaterOrEqualTo": 1}},
    {"name": "select_nulls", "column": SELECT, "kind": "sql", "metric": None,
     "query": "SELECT COUNT(*) FROM ${object} WHERE ${property} IS NULL"},
    # MAX is below the bound, but as floats both are 1e29 (a float round-trip fails the check)
    {"name": "amount_below_cap", "column": "amount", "kind": "sql", "metric": None,
     "query": "SELECT MAX(${property}) FROM ${object}", "threshold": {"mustBeLessThan": CAP}},
]


def arrow() -> pa.Table:
    return pa.Table.from_pylist([dict(zip(COLUMNS, row)) for row in ROWS], schema=SCHEMA)


def column(name: str) -> list[Any]:
    return [row[COLUMNS.index(name)] for row in ROWS]


def _repeated(keys: list[tuple[Any, ...]]) -> int:
    """Rows whose key has no NULL part and occurs more than once."""
    counts = Counter(k for k in keys if None not in k)
    return sum(1 for k in keys if None not in k and counts[k] > 1)


def _not_full_match(pattern: str, values: list[Any]) -> int:
    return sum(1 for v in values if v is not None and re.fullmatch(pattern, v) is None)


def expected() -> dict[str, int]:
    """Each rule's failing-row count (the observed value for rowCount and the sql rule), by plain Python."""
    status, code, weird = column("status"), column("code"), column(WEIRD)
    return {
        "weird_not_null": sum(1 for v in weird if v is None),
        "status_present": sum(1 for v in status if v is None or v in MISSING_STATUS),
        "status_known": sum(1 for v in status if v is not None and v not in MISSING_STATUS
                            and v not in VALID_STATUS),
        "status_set_and_pattern": sum(1 for v in status if v is not None and (
            v not in ("paid", "PAID", "pending") or re.fullmatch("[a-z]+", v) is None)),
        "code_word": _not_full_match(r"\w+", code),
        "code_digits": _not_full_match(r"\d+", code),
        "code_dotted": _not_full_match(r"a.b$", code),
        "code_repeat": _not_full_match(r"(\w)\1", code),
        "amount_known": sum(1 for v in column("amount") if v is not None and v not in VALID_AMOUNTS),
        "weird_unique": _repeated([(v,) for v in weird]),
        "status_unique": _repeated([(v,) for v in status]),
        "ab_unique": _repeated(list(zip(column("a"), column("b")))),
        "rows": len(ROWS),
        "select_nulls": sum(1 for v in column(SELECT) if v is None),
        "amount_below_cap": max(v for v in column("amount") if v is not None),
    }


# --- loading -----------------------------------------------------------------------------------------

POSTGRES_DDL = ('CREATE TABLE {relation} (id bigint PRIMARY KEY, status text, code text, "we""ird" text, '
                'a bigint, b text, amount numeric(38, 9), "select" bigint)')
# The database default collation is case- and accent-insensitive: rules must not follow it.
MARIADB_DDL = ("CREATE TABLE `order` (id bigint PRIMARY KEY, status varchar(20), code varchar(20), "
               "`we\"ird` varchar(20), a bigint, b varchar(20), amount decimal(38, 9), `select` bigint) "
               "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")


def load_postgres(connection: Any, schema: str) -> None:
    relation = f'"{schema}"."{TABLE}"'
    connection.execute(POSTGRES_DDL.format(relation=relation))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {relation} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", ROWS)


def load_mariadb(connection: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(MARIADB_DDL)
        cursor.executemany("INSERT INTO `order` VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", ROWS)
