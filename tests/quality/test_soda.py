"""Soda Core 4 adapter: every rule kind passes and fails on real data (DuckDB, and a subset on a real
Postgres table), with the observed values computed here independently (DuckDB SQL, psycopg, Python)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.connections import DatabaseConfig
from dativo_provider.contracts.loader import load_contract
from dativo_provider.contracts.model import Column, Dataset, QualityRule
from dativo_provider.exceptions import ConfigError, TransientError
from dativo_provider.quality.plan import checks_for
from dativo_provider.quality.result import CheckResult
from dativo_provider.quality.soda import DuckDbData, PostgresData, compile_soda_contract, run_soda

import duckdb  # noqa: E402  (the soda extra is part of the test install; soda_core is imported by
import pyarrow as pa  # noqa: E402  our adapter, which switches its telemetry off first)

ROOT = Path(__file__).resolve().parents[2]
EMAIL = r"[^@\s]+@[^@\s]+\.[a-z]{2,}"
NEWEST = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NOW = NEWEST + timedelta(hours=5, minutes=7, seconds=9)
DATASET = Dataset("things", "examples.things", tuple(Column(n, None) for n in (
    "id", "order_no", "email", "country", "code", "amount", "updated_at", "a", "b")))


def _table() -> Any:
    return pa.table({
        "id": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, None], pa.int64()),
        "order_no": pa.array(range(1, 13), pa.int64()),
        # "x@y.comX" and "ok a@b.org" match the pattern as a search but not as a full match
        "email": ["a@b.com", "c@d.org", "bad", "x@y.comX", "ok a@b.org", "e@f.io", None, "g@h.de",
                  "i@j.fr", "k@l.nl", "m@n.se", "o@p.uk"],
        "country": ["DE", "FR", "XX", "", "N/A", None, "DE", "DE", "FR", "FR", "NL", "NL"],
        "code": ["A", "B"] * 6,
        "amount": [1.5, -2.0, 3.0, 0.0, -0.5, 10.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "updated_at": pa.array([NEWEST - timedelta(days=i) for i in range(12)], pa.timestamp("us", "UTC")),
        "a": [1, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9],
        "b": ["x", "x", "y", "z", "z", "z", "z", "z", "z", "z", "z", "z"],
    })


@pytest.fixture(scope="module")
def con() -> Any:
    connection = duckdb.connect()
    connection.register("things_arrow", _table())
    connection.execute("CREATE VIEW things AS SELECT * FROM things_arrow")
    yield connection
    connection.close()


def scalar(con: Any, sql: str) -> Any:
    return con.execute(sql).fetchone()[0]


def rule(name: str, metric: str | None = None, column: str | None = None, threshold: dict | None = None,
         **kw: Any) -> QualityRule:
    kw.setdefault("kind", "library")
    kw.setdefault("engine", "soda")
    return QualityRule(name=name, severity="error", dataset="things", column=column, metric=metric,
                       threshold={"mustBe": 0} if threshold is None else threshold, **kw)


def run(con: Any, *rules: QualityRule, dataset: Dataset = DATASET, **kw: Any) -> dict[str, CheckResult]:
    results = run_soda(list(rules), dataset, DuckDbData(con, "things"), **kw)
    return {r.name: r for r in results}


def assert_result(result: CheckResult, outcome: str, observed: Any, failing_rows: Any = None) -> None:
    assert (result.outcome, result.observed, result.failing_rows) == (outcome, observed, failing_rows), result
    assert result.engine == "soda" and result.dataset == "things"
    assert result.failing_keys == [] and result.row_ids is None


# --- every construct, passing and failing ----------------------------------------------------------


def test_null_values(con: Any) -> None:
    nulls = scalar(con, "SELECT COUNT(*) - COUNT(id) FROM things")
    assert nulls == 1
    got = run(con, rule("ok", "nullValues", "order_no"), rule("bad", "nullValues", "id"))
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", nulls, nulls)
    assert (got["bad"].column, got["bad"].metric, got["bad"].threshold) == ("id", "nullValues", "mustBe 0")
    assert (got["bad"].category, got["bad"].severity) == ("quality", "error")


def test_null_values_ignore_empty_strings(con: Any) -> None:
    # nullValues counts NULL only: the '' and 'N/A' countries are not missing here
    got = run(con, rule("nulls", "nullValues", "country", {"mustBeLessOrEqualTo": 1}))
    assert_result(got["nulls"], "passed", scalar(con, "SELECT COUNT(*) FROM things WHERE country IS NULL"), 1)


def test_missing_values(con: Any) -> None:
    missing = scalar(con, "SELECT COUNT(*) FROM things WHERE country IS NULL OR country IN ('', 'N/A')")
    assert missing == 3
    got = run(con, rule("ok", "missingValues", "code", arguments={"missingValues": [None, "", "N/A"]}),
              rule("bad", "missingValues", "country", arguments={"missingValues": [None, "", "N/A"]}))
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", missing, missing)


def test_invalid_values_valid_values(con: Any) -> None:
    valid = ["DE", "FR", "NL"]
    # NULL is not invalid; '' and 'N/A' and 'XX' are
    invalid = scalar(con, "SELECT COUNT(*) FROM things WHERE country NOT IN ('DE', 'FR', 'NL')")
    assert invalid == 3
    got = run(con, rule("ok", "invalidValues", "code", arguments={"validValues": ["A", "B"]}),
              rule("bad", "invalidValues", "country", arguments={"validValues": valid}))
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", invalid, invalid)


def test_invalid_values_pattern_is_a_full_match(con: Any) -> None:
    emails = [e for e in _table().column("email").to_pylist() if e is not None]
    not_full = sum(1 for e in emails if not re.fullmatch(EMAIL, e))
    not_searched = sum(1 for e in emails if not re.search(EMAIL, e))
    assert (not_full, not_searched) == (3, 1)  # the data tells full match from search
    got = run(con, rule("ok", "invalidValues", "code", arguments={"pattern": "[AB]"}),
              rule("bad", "invalidValues", "email", arguments={"pattern": EMAIL}),
              rule("anchored", "invalidValues", "email", arguments={"pattern": f"^{EMAIL}$"}))
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", not_full, not_full)
    assert_result(got["anchored"], "failed", not_full, not_full)


def test_duplicate_values_column(con: Any) -> None:
    # one definition: every row whose (non-null) value repeats fails, not "rows minus distinct values"
    duplicates = scalar(con, "SELECT COUNT(*) FROM things WHERE id IN "
                             "(SELECT id FROM things GROUP BY id HAVING COUNT(*) > 1)")
    assert duplicates == 2
    got = run(con, rule("ok", "duplicateValues", "order_no"), rule("bad", "duplicateValues", "id"))
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", duplicates, duplicates)


def test_duplicate_values_over_columns(con: Any) -> None:
    duplicates = scalar(con, "SELECT SUM(n) FROM (SELECT COUNT(*) AS n FROM things GROUP BY a, b "
                             "HAVING COUNT(*) > 1)")
    assert duplicates == 4
    got = run(con, rule("ok", "duplicateValues", arguments={"properties": ["order_no", "b"]}),
              rule("bad", "duplicateValues", arguments={"properties": ["a", "b"]}))
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", duplicates, duplicates)
    assert got["bad"].column is None


@pytest.mark.parametrize("threshold", [
    {"mustBe": 12}, {"mustBe": 11}, {"mustNotBe": 12}, {"mustNotBe": 3},
    {"mustBeGreaterThan": 11}, {"mustBeGreaterThan": 12}, {"mustBeGreaterOrEqualTo": 12},
    {"mustBeGreaterOrEqualTo": 13}, {"mustBeLessThan": 13}, {"mustBeLessThan": 12},
    {"mustBeLessOrEqualTo": 12}, {"mustBeLessOrEqualTo": 11},
    {"mustBeBetween": [12, 20]}, {"mustBeBetween": [1, 12]}, {"mustBeBetween": [13, 20]},
    {"mustNotBeBetween": [13, 20]}, {"mustNotBeBetween": [1, 11]}, {"mustNotBeBetween": [12, 20]},
    {"mustNotBeBetween": [1, 12]},
], ids=lambda t: f"{next(iter(t))}-{next(iter(t.values()))}")
def test_row_count_and_every_operator(con: Any, threshold: dict) -> None:
    rows = scalar(con, "SELECT COUNT(*) FROM things")
    ((op, bound),) = threshold.items()
    expected = {
        "mustBe": lambda: rows == bound, "mustNotBe": lambda: rows != bound,
        "mustBeGreaterThan": lambda: rows > bound, "mustBeGreaterOrEqualTo": lambda: rows >= bound,
        "mustBeLessThan": lambda: rows < bound, "mustBeLessOrEqualTo": lambda: rows <= bound,
        "mustBeBetween": lambda: bound[0] <= rows <= bound[1],
        "mustNotBeBetween": lambda: not bound[0] <= rows <= bound[1],
    }[op]()
    got = run(con, rule("rows", "rowCount", threshold=threshold, category="sla"))["rows"]
    assert_result(got, "passed" if expected else "failed", rows, None)
    assert got.threshold == f"{op} {bound}" and got.category == "sla"


def test_freshness(con: Any) -> None:
    newest = scalar(con, "SELECT MAX(updated_at) FROM things")
    age = int((NOW - newest).total_seconds())
    assert age == 5 * 3600 + 7 * 60 + 9
    fresh = rule("fresh", "freshness", "updated_at", {"mustBeLessOrEqualTo": age + 1},
                 arguments={"maxAgeSeconds": age + 1}, category="sla")
    stale = rule("stale", "freshness", "updated_at", {}, arguments={"maxAgeSeconds": age - 1}, category="sla")
    exact = rule("exact", "freshness", "updated_at", {"mustBeLessOrEqualTo": age})
    got = run(con, fresh, stale, exact, now=NOW)
    assert_result(got["fresh"], "passed", age)
    assert_result(got["stale"], "failed", age)
    assert_result(got["exact"], "passed", age)
    assert got["stale"].threshold == f"mustBeLessOrEqualTo {age - 1}"  # in seconds, as the rule says
    assert NEWEST.isoformat() in got["stale"].message


def test_freshness_naive_now_is_utc(con: Any) -> None:
    got = run(con, rule("fresh", "freshness", "updated_at", {"mustBeLessThan": 3600}),
              now=(NEWEST + timedelta(minutes=30)).replace(tzinfo=None))
    assert_result(got["fresh"], "passed", 1800)


def test_sql_metric(con: Any) -> None:
    negative = scalar(con, "SELECT COUNT(*) FROM things WHERE amount < 0")
    assert negative == 2
    query = "SELECT COUNT(*) FROM ${object} WHERE ${property} < %s"
    ok = rule("ok", kind="sql", column="amount", query=query % -100)
    bad = rule("bad", kind="sql", column="amount", query=query % 0)
    plain = rule("plain", kind="sql", query="SELECT AVG(amount) FROM things",
                 threshold={"mustBeGreaterThan": 0})
    got = run(con, ok, bad, plain)
    assert_result(got["ok"], "passed", 0)
    assert_result(got["bad"], "failed", negative)
    assert_result(got["plain"], "passed", pytest.approx(scalar(con, "SELECT AVG(amount) FROM things")))


def test_custom_soda_check(con: Any) -> None:
    negative = scalar(con, "SELECT COUNT(*) FROM things WHERE amount < 0")
    ok = rule("ok", kind="custom", column="amount", threshold={},
              implementation={"invalid": {"valid_min": -10}})
    bad = rule("bad", kind="custom", column="amount", threshold={},
               implementation={"invalid": {"valid_min": 0}})
    soda3 = rule("soda3", kind="custom", column="amount", threshold={"mustBeLessThan": 2},
                 implementation={"type": "invalid_count", "valid_min": 0})
    rows = rule("rows", kind="custom", threshold={},
                implementation={"row_count": {"threshold": {"must_be_greater_than": 100}}})
    got = run(con, ok, bad, soda3, rows)
    assert_result(got["ok"], "passed", 0, 0)
    assert_result(got["bad"], "failed", negative, negative)
    assert_result(got["soda3"], "failed", negative, negative)
    assert_result(got["rows"], "failed", 12)
    assert got["rows"].threshold == "mustBeGreaterThan 100"  # ODCS names, like every other threshold


# --- behaviour around the checks ------------------------------------------------------------------


def test_other_engines_are_ignored_and_rule_order_kept(con: Any) -> None:
    rules = [rule("z_rows", "rowCount", threshold={"mustBeGreaterThan": 0}),
             rule("gx", "nullValues", "id", engine="great_expectations"),
             rule("a_nulls", "nullValues", "order_no")]
    assert [r.name for r in run_soda(rules, DATASET, DuckDbData(con, "things"))] == ["z_rows", "a_nulls"]
    assert run_soda([rules[1]], DATASET, DuckDbData(con, "things")) == []


def test_soda_errors_land_on_the_rule_that_caused_them(con: Any) -> None:
    # a missing column breaks Soda's single aggregate query; the other rules still count
    got = run(con, rule("nulls", "nullValues", "id"),
              rule("regex_on_int", "invalidValues", "no_such_column", arguments={"pattern": "[0-9]+"}),
              rule("no_table", kind="sql", query="SELECT COUNT(*) FROM no_such_table"),
              rule("rows", "rowCount", threshold={"mustBe": 12}))
    assert_result(got["nulls"], "failed", 1, 1)
    assert_result(got["rows"], "passed", 12)
    assert got["regex_on_int"].outcome == "error" and "no_such_column" in got["regex_on_int"].message.lower()
    assert got["no_table"].outcome == "error" and "no_such_table" in got["no_table"].message
    assert "no_such_table" not in got["regex_on_int"].message


def test_missing_column_is_an_error(con: Any) -> None:
    got = run(con, rule("ghost", "nullValues", "no_such_column"))
    assert got["ghost"].outcome == "error" and "no_such_column" in got["ghost"].message


def test_rules_that_cannot_be_compiled_name_the_rule() -> None:
    with pytest.raises(ConfigError, match="'odd'.*metric 'avgLength'"):
        compile_soda_contract([rule("odd", "avgLength", "email")], DATASET, "dativo/main/things")
    with pytest.raises(ConfigError, match="'no_args'.*validValues or arguments.pattern"):
        compile_soda_contract([rule("no_args", "invalidValues", "email")], DATASET, "dativo/main/things")
    with pytest.raises(ConfigError, match="'impl'.*custom soda rule"):
        compile_soda_contract([rule("impl", kind="custom", implementation="x:y")], DATASET, "dativo/main/t")


def test_compiled_contract_shape() -> None:
    contract = compile_soda_contract([
        rule("req", "nullValues", "id"),
        rule("gx", "nullValues", "id", engine="great_expectations"),
        rule("between", "rowCount", threshold={"mustBeBetween": [1, 5]}),
        rule("outside", "rowCount", threshold={"mustNotBeBetween": [1, 5]}),
        rule("fresh", "freshness", "ts", {"mustBeLessOrEqualTo": 90}),
    ], DATASET, "dativo/main/things")
    assert contract == {
        "dataset": "dativo/main/things",
        "columns": [],
        "checks": [
            {"failed_rows": {"name": "req", "qualifier": "0", "expression": '("id" IS NULL)',
                             "threshold": {"must_be": 0}}},
            {"row_count": {"name": "between", "qualifier": "2", "threshold": {
                "must_be_between": {"greater_than_or_equal": 1, "less_than_or_equal": 5}}}},
            {"row_count": {"name": "outside", "qualifier": "3", "threshold": {
                "must_be_not_between": {"less_than": 1, "greater_than": 5}}}},
            {"freshness": {"name": "fresh", "qualifier": "4", "column": "ts", "threshold": {
                "unit": "minute", "must_be_less_than_or_equal": 1.5}}},
        ],
    }


def test_example_contract_runs(con: Any) -> None:
    contract = load_contract(ROOT / "contracts" / "orders.odcs.yaml")
    dataset = contract.datasets[0]
    rows = pa.table({
        "order_id": [1, 2, 3], "ordered_at": pa.array([NEWEST] * 3, pa.timestamp("us", "UTC")),
        "customer_id": [1, 2, None], "product_id": [1, 1, 1], "quantity": [1, 0, 2],
        "amount": [1.0, -2.0, 3.0], "currency": ["EUR"] * 3, "status": ["paid", "lost", "paid"],
    })
    connection = duckdb.connect()
    connection.register("orders", rows)
    checks = checks_for(contract, dataset)
    results = run_soda(checks, dataset, DuckDbData(connection, "orders"), now=NOW)
    assert [r.name for r in results] == [r.name for r in checks if r.engine == "soda"]
    failed = {r.name: r.observed for r in results if r.failed}
    assert failed == {"customer_id__required": 1, "customer_id_present": 1, "quantity_positive": 1,
                      "amount_not_negative": 1, "status_known": 1}


def test_soda_info_logging_is_kept_out(con: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run(con, rule("nulls", "nullValues", "id"))
    assert not [r for r in caplog.records if r.name.startswith("soda") and r.levelno < logging.WARNING]
    assert logging.getLogger("soda").level == logging.NOTSET


# --- hand-written Soda contract -------------------------------------------------------------------


def test_handwritten_contract(con: Any, tmp_path: Path) -> None:
    path = tmp_path / "things.soda.yaml"
    path.write_text(
        "dataset: somewhere_else/prod/whatever\n"
        "columns:\n"
        "  - name: id\n"
        "    checks:\n"
        "      - missing:\n"
        "          name: id_present\n"
        "      - duplicate:\n"
        "  - name: amount\n"
        "    checks:\n"
        "      - invalid:\n"
        "          valid_min: -100\n"
        "checks:\n"
        "  - row_count:\n"
        "      threshold:\n"
        "        must_be_greater_than: 5\n", encoding="utf-8")
    dataset = Dataset("things", None, DATASET.columns, soda_contract=str(path))
    rows = rule("rows", "rowCount", threshold={"mustBe": 12})
    results = run_soda([rows], dataset, DuckDbData(con, "things"))
    got = {r.name: r for r in results}
    assert list(got) == ["rows", "id_present", "id__duplicate", "amount__invalid", "row_count"]
    assert_result(got["rows"], "passed", 12)
    assert_result(got["row_count"], "passed", 12)
    assert_result(got["id_present"], "failed", 1, 1)
    duplicates = scalar(con, "SELECT COUNT(id) - COUNT(DISTINCT id) FROM things")  # Soda's own check
    assert_result(got["id__duplicate"], "failed", duplicates, duplicates)
    assert_result(got["amount__invalid"], "passed", 0, 0)
    assert all((r.category, r.severity) == ("quality", "error") for r in results)
    assert (got["id_present"].column, got["id_present"].metric) == ("id", "missing")


def test_broken_handwritten_contract_is_an_error_result(con: Any, tmp_path: Path) -> None:
    path = tmp_path / "broken.soda.yaml"
    path.write_text("dataset: x/y/z\ncolumns:\n  - name: id\n    checks:\n      - not_a_check:\n",
                    encoding="utf-8")
    results = run_soda([], Dataset("things", None, (), soda_contract=str(path)), DuckDbData(con, "things"))
    assert [(r.name, r.outcome) for r in results] == [("soda_contract:broken.soda.yaml", "error")]
    assert "not_a_check" in results[0].message
    with pytest.raises(ConfigError, match="cannot read Soda contract"):
        run_soda([], Dataset("things", None, (), soda_contract=str(tmp_path / "nope.yaml")),
                 DuckDbData(con, "things"))


# --- Postgres, in place ---------------------------------------------------------------------------


@pytest.fixture
def pg_things(pg: Any, pg_schema: str) -> str:
    pg.execute(f'CREATE TABLE "{pg_schema}".things (id bigint, order_no bigint, email text, country text, '
               'code text, amount double precision, updated_at timestamptz, a bigint, b text)')
    rows = _table().to_pylist()
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{pg_schema}".things VALUES (%(id)s, %(order_no)s, %(email)s, '
                        '%(country)s, %(code)s, %(amount)s, %(updated_at)s, %(a)s, %(b)s)', rows)
    return pg_schema


@pytest.mark.postgres
def test_postgres_in_place(postgres_config: DatabaseConfig, pg: Any, pg_things: str) -> None:
    def q(sql: str) -> Any:
        return pg.execute(sql.replace("T.", f'"{pg_things}".')).fetchone()[0]

    emails = [r[0] for r in pg.execute(f'SELECT email FROM "{pg_things}".things WHERE email IS NOT NULL')]
    not_full = sum(1 for e in emails if not re.fullmatch(EMAIL, e))
    age = int((NOW - q("SELECT MAX(updated_at) FROM T.things")).total_seconds())
    multi_dup = q("SELECT SUM(n) FROM (SELECT COUNT(*) AS n FROM T.things GROUP BY a, b "
                  "HAVING COUNT(*) > 1) g")
    rules = [
        rule("nulls", "nullValues", "id"), rule("no_nulls", "nullValues", "order_no"),
        rule("email_ok", "invalidValues", "email", arguments={"pattern": EMAIL}),
        rule("codes", "invalidValues", "code", arguments={"validValues": ["A", "B"]}),
        rule("dup", "duplicateValues", "id"),
        rule("dup_ab", "duplicateValues", arguments={"properties": ["a", "b"]}),
        rule("rows", "rowCount", threshold={"mustBeBetween": [10, 12]}),
        rule("fresh", "freshness", "updated_at", {"mustBeLessOrEqualTo": age - 1}),
        rule("negative", kind="sql", column="amount",
             query="SELECT COUNT(*) FROM ${object} WHERE ${property} < 0"),
    ]
    data = PostgresData(postgres_config, pg_things, "things")
    got = {r.name: r for r in run_soda(rules, DATASET, data, now=NOW)}
    nulls = q("SELECT COUNT(*) FROM T.things WHERE id IS NULL")
    assert_result(got["nulls"], "failed", nulls, nulls)
    assert_result(got["no_nulls"], "passed", 0, 0)
    assert_result(got["email_ok"], "failed", not_full, not_full)
    assert_result(got["codes"], "passed", 0, 0)
    dup = q("SELECT COUNT(*) FROM T.things WHERE id IN (SELECT id FROM T.things GROUP BY id "
            "HAVING COUNT(*) > 1)")
    assert_result(got["dup"], "failed", dup, dup)
    assert_result(got["dup_ab"], "failed", multi_dup, multi_dup)
    assert_result(got["rows"], "passed", q("SELECT COUNT(*) FROM T.things"))
    assert_result(got["fresh"], "failed", age)
    assert_result(got["negative"], "failed", q("SELECT COUNT(*) FROM T.things WHERE amount < 0"))
    assert "password" not in repr(data)


@pytest.mark.postgres
def test_postgres_unreachable_is_transient(postgres_config: DatabaseConfig) -> None:
    config = DatabaseConfig(host="127.0.0.1", port=1, user="u", password="s3cret-pw", database="d")
    with pytest.raises(TransientError, match="could not connect") as caught:
        run_soda([rule("nulls", "nullValues", "id")], DATASET, PostgresData(config, "public", "things"))
    assert "s3cret-pw" not in str(caught.value)


# --- import hygiene and telemetry -----------------------------------------------------------------


def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_does_not_import_soda_or_duckdb() -> None:
    out = _python("import sys, dativo_provider.quality.soda\n"
                  "print(sorted(m for m in ('soda_core', 'soda_duckdb', 'soda_postgres', 'duckdb', 'psycopg')"
                  " if m in sys.modules))", dict(os.environ))
    assert out == "[]"


def test_telemetry_is_switched_off_unless_the_user_chose() -> None:
    code = ("import os, duckdb, pyarrow as pa\n"
            "from dativo_provider.quality.soda import DuckDbData, run_soda\n"
            "from dativo_provider.contracts.model import Dataset, QualityRule\n"
            "con = duckdb.connect(); con.register('t', pa.table({'x': [1]}))\n"
            "r = QualityRule('rows', 'soda', 'error', 't', None, 'library', 'rowCount',\n"
            "                threshold={'mustBe': 1})\n"
            "print(run_soda([r], Dataset('t', None, ()), DuckDbData(con, 't'))[0].outcome,"
            " os.environ['SODA_CORE_TELEMETRY_ENABLED'])")
    env = {k: v for k, v in os.environ.items() if k != "SODA_CORE_TELEMETRY_ENABLED"}
    assert _python(code, env) == "passed false"
    assert _python(code, {**env, "SODA_CORE_TELEMETRY_ENABLED": "False"}) == "passed False"


def test_freshness_on_a_column_with_a_double_quote() -> None:
    """Soda quotes names without doubling an inner `"`: the check errored on such a column (issue 12)."""
    connection = duckdb.connect()
    stamp = 'paid "at"'
    connection.register("arrow_rows", pa.table({stamp: pa.array([NEWEST], pa.timestamp("us", "UTC"))}))
    connection.execute('CREATE VIEW "order" AS SELECT * FROM arrow_rows')
    dataset = Dataset("things", None, (Column(stamp, None),))
    fresh = rule("fresh", "freshness", stamp, {"mustBeLessOrEqualTo": 60})
    (got,) = run_soda([fresh], dataset, DuckDbData(connection, "order"), now=NEWEST + timedelta(seconds=30))
    assert_result(got, "passed", 30)
