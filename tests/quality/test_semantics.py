"""The pieces of the one-semantics contract: Python regex meaning on every store's regex engine, the
compiled Soda contract is runnable as printed, and lint says which rules an engine cannot run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dativo_provider.cli import main
from dativo_provider.contracts.loader import lint
from dativo_provider.contracts.model import QualityRule
from dativo_provider.quality import rows as row_sql
from dativo_provider.quality.regex import UnsupportedPattern, full_match_regex

VALUES = ["a\nb", "axb", "añb", "٣", "abc\n", "ABC", "abc", "a-z", " ", ".*", "Straße", "e\u0301", "x", "",
          "ǅ", "a\u00a0b", "Ab", "\u212a", "ſ", "K", "straße"]
PATTERNS = [r"a.b", r"\w+", r"\d", r"[^\s]+", r"(?i)abc", r"x*$", r"[a\-z]+", r"\.\*", r"(?s)a.b", r"\W",
            r"\S+", r"[\w-]+", r"a|abc", r"(?a)\w+", r"a\sb", r"[^a]b?", r"(?i)straSSe|ǆ", r"^Ab$",
            r"(?i)k|s", r"(?i)[a-z]+", r"(?i)[^k]"]


def pattern_rule(pattern: str) -> QualityRule:
    return QualityRule(name="p", engine="soda", severity="error", dataset="t", column="v", kind="library",
                       metric="invalidValues", arguments={"pattern": pattern}, threshold={"mustBe": 0})


def python_failing(pattern: str) -> set[int]:
    return {i for i, v in enumerate(VALUES) if re.fullmatch(pattern, v) is None}


def test_duckdb_regex_means_python_re() -> None:
    import duckdb

    connection = duckdb.connect()
    connection.execute("CREATE TABLE t (id INTEGER, v VARCHAR)")
    connection.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(VALUES)))
    got = {p: {r[0] for r in connection.execute(
        f"SELECT id FROM t WHERE {row_sql.failing_predicate(pattern_rule(p), 't', 'duckdb')}").fetchall()}
        for p in PATTERNS}
    assert got == {p: python_failing(p) for p in PATTERNS}


@pytest.mark.postgres
def test_postgres_regex_means_python_re(pg: Any, pg_schema: str) -> None:
    relation = f'"{pg_schema}".t'
    pg.execute(f"CREATE TABLE {relation} (id int, v text)")
    with pg.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {relation} VALUES (%s, %s)", list(enumerate(VALUES)))
    got = {p: {r[0] for r in pg.execute(
        f"SELECT id FROM {relation} WHERE {row_sql.failing_predicate(pattern_rule(p), relation, 'postgres')}")}
        for p in PATTERNS}
    assert got == {p: python_failing(p) for p in PATTERNS}


@pytest.mark.mysql
def test_mariadb_regex_means_python_re(my: Any, my_db: Any) -> None:
    with my.cursor() as cursor:
        # a case-insensitive collation: REGEXP would follow it
        cursor.execute("CREATE TABLE t (id int, v varchar(20)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci")
        cursor.executemany("INSERT INTO t VALUES (%s, %s)", list(enumerate(VALUES)))
        got = {}
        for p in PATTERNS:
            cursor.execute(f"SELECT id FROM t WHERE "
                           f"{row_sql.failing_predicate(pattern_rule(p), 't', 'mysql', text_columns=['v'])}")
            got[p] = {r[0] for r in cursor.fetchall()}
    assert got == {p: python_failing(p) for p in PATTERNS}


@pytest.mark.parametrize(("pattern", "construct"), [
    (r"(\w)\1", "back-reference"), (r"a(?=b)b", "look-ahead"), (r"\bword", "\\b"), (r"a$b", "$"),
    (r"(?i:a)b", "local flag"), (r"a++", "possessive"),
])
def test_patterns_without_an_exact_equivalent_are_refused(pattern: str, construct: str) -> None:
    for dialect in ("duckdb", "postgres", "mysql"):
        with pytest.raises(UnsupportedPattern, match=re.escape(construct)) as caught:
            full_match_regex(pattern, dialect)  # type: ignore[arg-type]
        assert "dativoEngine: custom" in str(caught.value)


def test_decimal_values_are_exact_literals() -> None:
    from decimal import Decimal

    rule = QualityRule(name="d", engine="soda", severity="error", dataset="t", column="amount", kind="library",
                       metric="invalidValues", threshold={"mustBe": 0},
                       arguments={"validValues": [Decimal("12345678901234567890.123456789"), Decimal("1E-9")]})
    predicate = row_sql.failing_predicate(rule, "t", "postgres")
    assert "12345678901234567890.123456789" in predicate and "0.000000001" in predicate
    assert row_sql.literal("it's \\ here", "mysql") == "'it''s \\\\ here'"


CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:compile
version: 1.0.0
status: active
team: {name: data}
schema:
  - name: payments
    physicalName: lake.payments
    properties:
      - {name: id, logicalType: integer}
      - name: 'we"ird'
        logicalType: string
        quality:
          - {name: weird_known, metric: invalidValues, arguments: {validValues: [a, b]}, mustBe: 0}
          - {name: weird_unique, metric: duplicateValues, mustBeLessThan: 3}
      - name: select
        logicalType: integer
        quality:
          - name: few_null_selects
            type: sql
            query: SELECT COUNT(*) FROM ${object} WHERE ${property} IS NULL
            mustBeLessOrEqualTo: 1
"""


def test_compile_prints_runnable_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dativo contract compile --engine soda` names the table (it printed `FROM  WHERE`) and every
    expression and query it prints runs as printed."""
    import duckdb

    path = tmp_path / "payments.yaml"
    path.write_text(CONTRACT)
    assert main(["contract", "compile", str(path), "--engine", "soda"]) == 0
    printed = capsys.readouterr().out
    assert "FROM  " not in printed
    document = yaml.safe_load(printed)
    assert document["dataset"] == "dativo/lake/payments"
    checks = {body["name"]: body for check in document["checks"] for body in check.values()}
    connection = duckdb.connect()
    connection.execute('CREATE SCHEMA lake')
    connection.execute('CREATE TABLE lake.payments (id INT, "we""ird" VARCHAR, "select" INT)')
    connection.execute("INSERT INTO lake.payments VALUES (1, 'a', 1), (2, 'c', NULL), (3, 'c', NULL), "
                       "(4, NULL, 4), (5, 'A', 5)")
    counted = {name: connection.execute(f'SELECT COUNT(*) FROM "lake"."payments" WHERE {body["expression"]}')
               .fetchone()[0] for name, body in checks.items() if "expression" in body}
    assert counted == {"weird_known": 3, "weird_unique": 2}
    assert connection.execute(checks["few_null_selects"]["query"]).fetchone()[0] == 2
    assert checks["weird_unique"]["threshold"] == {"must_be_less_than": 3}


def write(tmp_path: Path, quality: str, engine: str | None) -> Path:
    custom = f"\n            customProperties: [{{property: dativoEngine, value: {engine}}}]" if engine else ""
    path = tmp_path / "c.yaml"
    path.write_text(f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:lint
version: 1.0.0
status: active
team: {{name: data}}
schema:
  - name: t
    properties:
      - name: code
        logicalType: string
        quality:
          - {quality}{custom}
""")
    return path


def test_lint_refuses_an_engine_custom_sql_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "name: q\n            type: sql\n            query: SELECT 1\n            mustBe: 1",
                 "custom")
    issues = [i for i in lint([path]) if i.severity == "error"]
    assert [i.message for i in issues] == [
        "engine custom evaluates nullValues, missingValues, invalidValues, duplicateValues, rowCount in "
        "Python, not a sql rule; use engine soda or great_expectations"]


def test_lint_warns_about_a_pattern_stores_refuse(tmp_path: Path) -> None:
    rule = "name: r\n            metric: invalidValues\n            arguments: {pattern: '(\\w)\\1'}\n" \
           "            mustBe: 0"
    issues = lint([write(tmp_path, rule, None)])
    assert [(i.severity, "back-reference" in i.message) for i in issues] == [("warning", True)]
    assert lint([write(tmp_path, rule, "custom")]) == []  # engine custom evaluates it in Python
