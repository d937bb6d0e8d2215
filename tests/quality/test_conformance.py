"""Cross-store conformance: every rule kind × {Iceberg via DuckDB, Postgres, MariaDB} × {Soda, GX, custom}
on one planted dataset (tests/quality/planted.py) gives ONE count per rule — the count plain Python
computes over the planted rows — and quarantine (or the failing-row sample) finds exactly those rows.

What an engine cannot do on a store is an explicit refusal (outcome ``error`` naming the reason), listed
in :data:`REFUSED` and in docs/quality.md ("What each engine can do"), never a different count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest

from dativo_provider.connections import DatabaseConfig
from dativo_provider.contracts.loader import load_contract
from dativo_provider.contracts.model import Contract, QualityRule
from dativo_provider.quality import rows as row_sql
from dativo_provider.quality.result import MAX_FAILING_KEYS, QualityReport
from dativo_provider.quality.runner import IcebergTarget, SqlTableTarget, run_contract
from tests.quality import planted

ENGINES = ("soda", "great_expectations", "custom")
STORES = ("iceberg", "postgres", "mariadb")
ROW_LEVEL = {r["name"] for r in planted.RULES
             if r.get("kind", "library") == "library" and r["metric"] != "rowCount"}

#: (engine, store or "*", rule) → a phrase of the refusal message.
REFUSED = {
    ("soda", "*", "code_repeat"): "back-reference",
    ("great_expectations", "postgres", "code_repeat"): "back-reference",
    ("great_expectations", "mariadb", "code_repeat"): "back-reference",
    ("great_expectations", "iceberg", "select_nulls"): "need a SQL target",
    ("great_expectations", "iceberg", "status_set_and_pattern"): "split it into two rules",
    ("custom", "*", "select_nulls"): "engine custom evaluates row-level library rules",
    ("great_expectations", "iceberg", "amount_below_cap"): "need a SQL target",
    ("custom", "*", "amount_below_cap"): "engine custom evaluates row-level library rules",
}

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:conformance
version: 1.0.0
status: active
team: {name: data}
schema:
  - name: orders
    physicalName: conf.order
    properties:
      - {name: id, logicalType: integer, required: true, primaryKey: true}
      - {name: status, logicalType: string}
      - {name: code, logicalType: string}
      - {name: 'we"ird', logicalType: string}
      - {name: a, logicalType: integer}
      - {name: b, logicalType: string}
      - {name: amount, logicalType: number}
      - {name: select, logicalType: integer}
"""


def rules_for(engine: str) -> list[QualityRule]:
    return [QualityRule(name=r["name"], engine=engine,  # type: ignore[arg-type]
                        severity="error", dataset="orders",
                        column=r["column"], kind=r.get("kind", "library"), metric=r["metric"],
                        arguments=r.get("arguments", {}), threshold=r.get("threshold", {"mustBe": 0}),
                        query=r.get("query"))
            for r in planted.RULES]


def refusal(engine: str, store: str, rule: str) -> str | None:
    return REFUSED.get((engine, store, rule)) or REFUSED.get((engine, "*", rule))


@dataclasses.dataclass
class Store:
    check: Callable[[list[QualityRule]], QualityReport]
    #: rows the rule's quarantine predicate selects in the store itself (None: use the run's row ids)
    predicate_rows: Callable[[QualityRule], int] | None = None


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    path = tmp_path_factory.mktemp("contract") / "orders.yaml"
    path.write_text(CONTRACT)
    return load_contract(path)


@pytest.fixture(scope="module")
def iceberg(tmp_path_factory: pytest.TempPathFactory, contract: Contract) -> Store:
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from tests.memory_source import TableSource

    catalog = embedded_catalog(tmp_path_factory.mktemp("lake"))
    run_ingest(TableSource(planted.arrow()), catalog, f"conf.{planted.TABLE}")
    target = IcebergTarget(catalog, f"conf.{planted.TABLE}")
    return Store(lambda rules: run_contract(contract, target, rules=rules, collect_row_ids=True))


@pytest.fixture(scope="module")
def postgres(postgres_config: DatabaseConfig, contract: Contract) -> Iterator[Store]:
    import psycopg

    c = postgres_config
    schema = "dativo_conformance"
    with psycopg.connect(host=c.host, port=c.port, user=c.user, password=c.password, dbname=c.database,
                         autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.execute(f'CREATE SCHEMA "{schema}"')
        planted.load_postgres(connection, schema)
        relation = row_sql.quote_relation((schema, planted.TABLE), "postgres")

        def predicate_rows(rule: QualityRule) -> int:
            predicate = row_sql.failing_predicate(rule, relation, "postgres")
            return connection.execute(f"SELECT COUNT(*) FROM {relation} WHERE {predicate}").fetchone()[0]

        target = SqlTableTarget("postgres", c, f"{schema}.{planted.TABLE}")
        yield Store(lambda rules: run_contract(contract, target, rules=rules), predicate_rows)
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def mariadb(mysql_config: DatabaseConfig, contract: Contract) -> Iterator[Store]:
    import pymysql

    c = mysql_config
    database = "dativo_conformance"
    connection = pymysql.connect(host=c.host, port=c.port, user=c.user, password=c.password or "",
                                 database=c.database, autocommit=True, charset="utf8mb4")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cursor.execute(f"USE `{database}`")
    planted.load_mariadb(connection)
    texts = ("status", "code", planted.WEIRD, "b")

    def predicate_rows(rule: QualityRule) -> int:
        predicate = row_sql.failing_predicate(rule, "`order`", "mysql", text_columns=texts)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM `order` WHERE {predicate}")
            return cursor.fetchone()[0]

    target = SqlTableTarget("mysql", dataclasses.replace(c, database=database), planted.TABLE)
    yield Store(lambda rules: run_contract(contract, target, rules=rules), predicate_rows)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{database}`")
    connection.close()


def test_planted_rows_hold_what_stores_disagree_on() -> None:
    """The expected counts are not trivial: a case-insensitive comparison, a float round-trip, NULL
    tuples as duplicates or an ASCII \\w would each change one."""
    counts = planted.expected()
    assert counts == {
        "weird_not_null": 2, "status_present": 3, "status_known": 6, "status_set_and_pattern": 9,
        "code_word": 6, "code_digits": 12,
        "code_dotted": 11, "code_repeat": 12, "amount_known": 7, "weird_unique": 6, "status_unique": 4,
        "ab_unique": 4, "rows": 14, "select_nulls": 3, "amount_below_cap": planted.MAX,
    }


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("store", STORES)
def test_one_count_per_rule(store: str, engine: str, request: pytest.FixtureRequest) -> None:
    backend: Store = request.getfixturevalue(store)
    rules = rules_for(engine)
    report = backend.check(rules)
    by_name = {c.name: c for c in report.checks}
    expected = planted.expected()
    got, want, located, samples = {}, {}, {}, {}
    for rule in rules:
        result = by_name[rule.name]
        reason = refusal(engine, store, rule.name)
        if reason:
            got[rule.name] = (result.outcome, reason in (result.message or ""))
            want[rule.name] = ("error", True)
            continue
        got[rule.name] = (result.outcome, result.observed, result.message or "")
        passes = rule.metric == "rowCount" or rule.name == "amount_below_cap"
        want[rule.name] = ("passed" if passes else "failed", expected[rule.name], "")
        if rule.name not in ROW_LEVEL:
            continue
        assert result.failing_rows == expected[rule.name], rule.name
        if backend.predicate_rows is None:  # Iceberg: the rows quarantine would move
            located[rule.name] = len(result.row_ids) if result.row_ids is not None else None
        else:  # a table in place: the rule's predicate run in the store, and the failing-row sample
            if not any(refusal(other, store, rule.name) for other in ENGINES):
                located[rule.name] = backend.predicate_rows(rule)
            if engine != "custom":
                samples[rule.name] = len(result.failing_keys)
    assert got == want
    assert located == {name: expected[name] for name in located}
    assert samples == {name: min(expected[name], MAX_FAILING_KEYS) for name in samples}


def test_the_predicate_on_duckdb_equals_the_plain_python_count() -> None:
    """The DuckDB form of each definition (what Soda counts on Iceberg and quarantine selects there)."""
    import duckdb

    connection = duckdb.connect()
    connection.register("planted", planted.arrow())
    expected = planted.expected()
    counted = {}
    for rule in rules_for("soda"):
        if rule.name in ROW_LEVEL and rule.name != "code_repeat":
            predicate = row_sql.failing_predicate(rule, '"planted"', "duckdb")
            sql = f'SELECT COUNT(*) FROM "planted" WHERE {predicate}'
            counted[rule.name] = connection.execute(sql).fetchone()[0]
    assert counted == {name: expected[name] for name in counted}


def test_python_definition_equals_the_plain_python_count() -> None:
    import pyarrow.compute as pc

    expected = planted.expected()
    table = planted.arrow()
    counted = {rule.name: pc.sum(row_sql.failing_mask(rule, table)).as_py()
               for rule in rules_for("custom") if rule.name in ROW_LEVEL}
    assert counted == {name: expected[name] for name in counted}
