"""Great Expectations adapter: every construct passes on clean data and fails on dirty data, on a pandas
frame (built from Arrow, as the runner does) and in place on real Postgres and MariaDB tables.

Expected counts and failing rows are computed here with pandas/``re`` directly, never with the adapter.
One GX context serves the whole module (the adapter caches it per process).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest

from dativo_provider.connections import DatabaseConfig
from dativo_provider.contracts.model import Dataset, QualityRule
from dativo_provider.exceptions import ConfigError
from dativo_provider.quality import gx
from dativo_provider.quality.result import MAX_FAILING_KEYS
from dativo_provider.quality.thresholds import meets

pytest.importorskip("great_expectations")

DATASET = Dataset("t", "t", ())
EMAIL = r"[^@\s]+@[^@\s]+\.[a-z]{2,}"
CURRENCIES = ["EUR", "USD"]


def rule(name: str, **kw: Any) -> QualityRule:
    fields: dict[str, Any] = {"engine": "great_expectations", "severity": "error", "dataset": "t",
                              "column": None, "kind": "library", **kw}
    return QualityRule(name=name, **fields)


@pytest.fixture(scope="module")
def frame() -> Any:
    """Clean columns (``*_ok``) next to dirty ones; ``rid`` is the row position."""
    table = pa.table({
        "rid": list(range(8)),
        "key": [f"k{i}" for i in range(8)],
        "email_ok": ["a@b.com", "c@d.org", "e@f.io", "g@h.de", "i@j.com", "k@l.net", "m@n.fr", "o@p.uk"],
        "email": ["a@b.com", None, "bad", "c@d.org\n", "e@f.COM", "g@h.de", None, "x y@z.com"],
        "cur_ok": ["EUR", "USD", "EUR", "USD", None, "EUR", "USD", "EUR"],
        "cur": ["EUR", "usd", "GBP", "USD", None, "", "N/A", "EUR"],
        "n_ok": [1, 2, 3, 4, 5, 6, 7, None],
        "n": [1, 1, 2, 3, 3, 3, 4, None],
        "a": [1, 1, 2, 2, 3, None, None, 4],
        "b": ["x", "x", "x", "y", "y", None, None, "z"],
        "year": [1950, 1800, 2000, 2020, None, 1990, 1985, 1970],
    })
    return table.to_pandas()


def run(frame: Any, *rules: QualityRule) -> list[Any]:
    return gx.run_gx_frame(list(rules), DATASET, frame, row_id_column="rid", key_columns=("key",))


def expect_rows(result: Any, frame: Any, mask: Any) -> None:
    """``result`` failed exactly the rows of ``mask``, with their counts, row ids and keys."""
    failing = frame[mask.fillna(False).astype(bool)]
    assert result.observed == result.failing_rows == len(failing)
    assert sorted(result.row_ids) == sorted(failing["rid"].tolist())
    assert sorted(k["key"] for k in result.failing_keys) == sorted(failing["key"].tolist())


def not_full_match(series: Any, pattern: str) -> Any:
    return series.map(lambda v: v is not None and v == v and re.fullmatch(pattern, v) is None)


# --- thresholds -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("threshold", "observed", "ok"), [
    ({"mustBe": 0}, 0, True), ({"mustBe": 0}, 1, False),
    ({"mustNotBe": 0}, 1, True), ({"mustNotBe": 0}, 0, False),
    ({"mustBeGreaterThan": 5}, 6, True), ({"mustBeGreaterThan": 5}, 5, False),
    ({"mustBeGreaterOrEqualTo": 5}, 5, True), ({"mustBeGreaterOrEqualTo": 5}, 4, False),
    ({"mustBeLessThan": 10}, 9, True), ({"mustBeLessThan": 10}, 10, False),
    ({"mustBeLessOrEqualTo": 10}, 10, True), ({"mustBeLessOrEqualTo": 10}, 11, False),
    ({"mustBeBetween": [1, 3]}, 3, True), ({"mustBeBetween": [1, 3]}, 4, False),
    ({"mustNotBeBetween": [1, 3]}, 0, True), ({"mustNotBeBetween": [1, 3]}, 2, False),
])
def test_threshold_operators(threshold: dict[str, Any], observed: int, ok: bool) -> None:
    assert meets(observed, threshold) is ok


def test_unknown_operator_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mustBeAbout"):
        meets(1, {"mustBeAbout": 1})


# --- pandas: each construct passes and fails ---------------------------------------------------------

def test_null_values(frame: Any) -> None:
    ok, bad = run(frame, rule("ok", column="email_ok", metric="nullValues", threshold={"mustBe": 0}),
                  rule("bad", column="email", metric="nullValues", threshold={"mustBe": 0}))
    assert (ok.outcome, ok.observed, ok.row_ids) == ("passed", 0, [])
    assert bad.outcome == "failed" and bad.threshold == "mustBe 0" and bad.engine == "great_expectations"
    expect_rows(bad, frame, frame["email"].isna())


def test_missing_values_count_nulls_and_listed_values(frame: Any) -> None:
    listed = ["", "N/A"]
    mask = frame["cur"].isna() | frame["cur"].isin(listed)
    ok, bad, under = run(
        frame,
        rule("ok", column="cur_ok", metric="missingValues", arguments={"missingValues": [None, *listed]},
             threshold={"mustBeLessOrEqualTo": 1}),
        rule("bad", column="cur", metric="missingValues", arguments={"missingValues": [None, *listed]},
             threshold={"mustBe": 0}),
        rule("under", column="cur", metric="missingValues", arguments={"missingValues": listed},
             threshold={"mustBeLessThan": int(mask.sum()) + 1}))
    assert (ok.outcome, ok.observed) == ("passed", int(frame["cur_ok"].isna().sum()))
    assert bad.outcome == "failed"
    expect_rows(bad, frame, mask)
    assert under.outcome == "passed" and under.observed == int(mask.sum())


def test_pattern_is_a_full_match(frame: Any) -> None:
    ok, bad = run(frame, rule("ok", column="email_ok", metric="invalidValues", arguments={"pattern": EMAIL},
                              threshold={"mustBe": 0}),
                  rule("bad", column="email", metric="invalidValues", arguments={"pattern": EMAIL},
                       threshold={"mustBe": 0}))
    assert (ok.outcome, ok.observed) == ("passed", 0)
    assert bad.outcome == "failed"
    # "c@d.org\n" (trailing newline) and "e@f.COM" fail a full match; nulls are not invalid.
    expect_rows(bad, frame, not_full_match(frame["email"], EMAIL))
    assert {"k3", "k4"} <= {k["key"] for k in bad.failing_keys}


def test_anchored_pattern_keeps_its_own_anchors(frame: Any) -> None:
    (bad,) = run(frame, rule("bad", column="cur", metric="invalidValues", arguments={"pattern": "^[A-Z]{3}$"},
                             threshold={"mustBe": 0}))
    expect_rows(bad, frame, not_full_match(frame["cur"], "[A-Z]{3}"))


def test_valid_values(frame: Any) -> None:
    ok, bad = run(frame, rule("ok", column="cur_ok", metric="invalidValues",
                              arguments={"validValues": CURRENCIES}, threshold={"mustBe": 0}),
                  rule("bad", column="cur", metric="invalidValues", arguments={"validValues": CURRENCIES},
                       threshold={"mustBe": 0}))
    assert (ok.outcome, ok.observed) == ("passed", 0)
    assert bad.outcome == "failed"
    expect_rows(bad, frame, frame["cur"].notna() & ~frame["cur"].isin(CURRENCIES))


def test_duplicate_values_count_every_row_of_a_repeated_value(frame: Any) -> None:
    ok, bad = run(frame, rule("ok", column="n_ok", metric="duplicateValues", threshold={"mustBe": 0}),
                  rule("bad", column="n", metric="duplicateValues", threshold={"mustBe": 0}))
    assert (ok.outcome, ok.observed) == ("passed", 0)
    assert bad.outcome == "failed"
    expect_rows(bad, frame, frame["n"].notna() & frame["n"].duplicated(keep=False))
    assert bad.observed == 5  # 1,1 and 3,3,3: GX counts all rows, not rows minus distinct values (3)


def test_duplicate_values_over_several_columns(frame: Any) -> None:
    ok, bad = run(frame, rule("ok", metric="duplicateValues", arguments={"properties": ["key", "a"]},
                              threshold={"mustBe": 0}),
                  rule("bad", metric="duplicateValues", arguments={"properties": ["a", "b"]},
                       threshold={"mustBe": 0}))
    assert (ok.outcome, ok.observed) == ("passed", 0)
    assert bad.outcome == "failed"
    all_null = frame["a"].isna() & frame["b"].isna()
    expect_rows(bad, frame, frame.duplicated(["a", "b"], keep=False) & ~all_null)


def test_duplicate_values_single_property_list(frame: Any) -> None:
    (bad,) = run(frame, rule("bad", metric="duplicateValues", arguments={"properties": ["n"]},
                             threshold={"mustBe": 0}))
    expect_rows(bad, frame, frame["n"].notna() & frame["n"].duplicated(keep=False))


def test_row_count(frame: Any) -> None:
    ok, bad = run(frame, rule("ok", metric="rowCount", threshold={"mustBeGreaterThan": 0}),
                  rule("bad", metric="rowCount", threshold={"mustBeBetween": [len(frame) + 1, 100]}))
    assert (ok.outcome, ok.observed, ok.failing_rows, ok.row_ids) == ("passed", len(frame), None, None)
    assert (bad.outcome, bad.observed, bad.threshold) == ("failed", len(frame),
                                                          f"mustBeBetween {[len(frame) + 1, 100]}")


def test_custom_expectation_gx_success_decides(frame: Any) -> None:
    impl = {"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 1900, "max_value": 2010}}
    ok, bad = run(frame, rule("ok", column="rid", kind="custom", implementation={
                      "type": "expect_column_values_to_be_between", "kwargs": {"min_value": 0, "max_value": 7}}),
                  rule("bad", column="year", kind="custom", implementation=impl))
    assert (ok.outcome, ok.observed, ok.metric) == ("passed", 0, "expect_column_values_to_be_between")
    assert bad.outcome == "failed" and bad.threshold is None
    expect_rows(bad, frame, frame["year"].notna() & ~frame["year"].between(1900, 2010))


def test_sql_rule_on_a_frame_is_an_error(frame: Any) -> None:
    (result,) = run(frame, rule("q", column="n", kind="sql", query="SELECT COUNT(*) FROM ${object}",
                                threshold={"mustBe": 0}))
    assert result.outcome == "error"
    assert "SQL target" in result.message and "soda" in result.message


def test_unmappable_and_broken_rules_are_errors_not_exceptions(frame: Any) -> None:
    results = run(frame,
                  rule("metric", column="n", metric="averageValue", threshold={"mustBe": 0}),
                  rule("type", column="n", kind="custom", implementation={"type": "expect_no_such_thing"}),
                  rule("column", column="nope", metric="nullValues", threshold={"mustBe": 0}),
                  rule("fine", column="n_ok", metric="nullValues", threshold={"mustBe": 1}))
    assert [r.outcome for r in results] == ["error", "error", "error", "passed"]
    assert "averageValue" in results[0].message
    assert "expect_no_such_thing" in results[1].message
    assert "nope" in results[2].message


def test_only_great_expectations_rules_run(frame: Any) -> None:
    soda = QualityRule(name="s", engine="soda", severity="error", dataset="t", column="n", kind="library",
                       metric="nullValues", threshold={"mustBe": 0})
    results = run(frame, soda, rule("g", column="n", metric="nullValues", threshold={"mustBe": 1}))
    assert [r.name for r in results] == ["g"]


def test_row_ids_are_complete_beyond_gx_sample_sizes() -> None:
    big = pa.table({"rid": list(range(1000)), "key": [f"k{i}" for i in range(1000)],
                    "v": [None if i % 2 else i for i in range(1000)]}).to_pandas()
    (result,) = run(big, rule("nulls", column="v", metric="nullValues", threshold={"mustBe": 0}))
    assert result.failing_rows == 500
    assert sorted(result.row_ids) == list(range(1, 1000, 2))
    assert len(result.failing_keys) == MAX_FAILING_KEYS


def test_named_index_is_ignored(frame: Any) -> None:
    indexed = frame.set_index("key", drop=False).rename_axis("named")
    (result,) = run(indexed, rule("bad", column="email", metric="nullValues", threshold={"mustBe": 0}))
    expect_rows(result, frame, frame["email"].isna())


def test_missing_key_column_is_a_config_error(frame: Any) -> None:
    with pytest.raises(ConfigError, match="nope"):
        gx.run_gx_frame([rule("n", column="n", metric="nullValues")], DATASET, frame, key_columns=("nope",))


def test_handwritten_suite(frame: Any, tmp_path: Any) -> None:
    suite = {  # the shape ExpectationSuite.to_json_dict() writes
        "name": "hand", "id": None, "meta": {"great_expectations_version": "1.24.1"}, "notes": None,
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "year", "min_value": 1900},
             "meta": {"name": "year_after_1900"}, "severity": "critical"},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email_ok"},
             "notes": "emails are always there\nmore text", "meta": {}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}, "severity": "warning"},
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        ],
    }
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    dataset = Dataset("t", "t", (), gx_suite=str(path))
    results = gx.run_gx_frame([rule("g", column="n_ok", metric="nullValues", threshold={"mustBe": 1})],
                              dataset, frame, row_id_column="rid", key_columns=("key",))
    by_name = {r.name: r for r in results}
    assert list(by_name) == ["g", "year_after_1900", "emails are always there",
                             "expect_column_values_to_not_be_null(email)", "expect_table_row_count_to_be_between"]
    year = by_name["year_after_1900"]
    assert (year.outcome, year.severity, year.category) == ("failed", "error", "quality")
    expect_rows(year, frame, frame["year"] < 1900)
    assert by_name["emails are always there"].outcome == "passed"
    email = by_name["expect_column_values_to_not_be_null(email)"]
    assert (email.outcome, email.severity) == ("failed", "warning")
    expect_rows(email, frame, frame["email"].isna())
    rows = by_name["expect_table_row_count_to_be_between"]
    assert (rows.outcome, rows.observed) == ("passed", len(frame))


def test_compile_gx_suite() -> None:
    suite = gx.compile_gx_suite([
        rule("a", column="c", metric="missingValues", arguments={"missingValues": ["", None]},
             threshold={"mustBe": 0}),
        rule("b", column="c", metric="invalidValues", arguments={"pattern": "[a-z]+"}, threshold={"mustBe": 0}),
        rule("q", kind="sql", query="SELECT 1", threshold={"mustBe": 0}),  # needs a SQL target: left out
    ], DATASET)
    kinds = [(e.expectation_type, e.meta["dativo_check"]) for e in suite.expectations]
    assert kinds == [("expect_column_values_to_not_be_null", "c0"),
                     ("expect_column_values_to_not_be_in_set", "c0"),
                     ("expect_column_values_to_match_regex", "c1")]
    assert suite.expectations[1].value_set == [""]
    assert suite.expectations[2].regex == r"^(?:[a-z]+)\Z"


def test_context_is_cached_and_ephemeral() -> None:
    context = gx._context()
    assert context is gx._context()
    assert type(context).__name__ == "EphemeralDataContext"
    assert context.variables.analytics_enabled is False
    assert context.progress_bars.globally is False


def test_sqlalchemy_url_quotes_secrets() -> None:
    import sqlalchemy

    config = DatabaseConfig(host="db.example", port=5433, user="me@corp", password="p@ss:w/rd%41 #?",
                            database="d b", options={"sslmode": "require"})
    url = gx.sqlalchemy_url("postgres", config)
    parsed = sqlalchemy.engine.make_url(url)
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "me@corp", "p@ss:w/rd%41 #?", "db.example", 5433, "d b")
    assert parsed.query == {"sslmode": "require"}
    driver = "psycopg" if sqlalchemy.__version__.startswith("2") else "psycopg2"
    assert parsed.drivername == f"postgresql+{driver}"
    assert gx.sqlalchemy_url("mysql", DatabaseConfig(host="h")).startswith("mysql+pymysql://h/")
    with pytest.raises(ConfigError, match="oracle"):
        gx.sqlalchemy_url("oracle", config)


def test_importing_the_module_does_not_import_gx() -> None:
    code = ("import sys, dativo_provider.quality.gx; "
            "print([m for m in ('great_expectations', 'pandas', 'sqlalchemy', 'airflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_gx_prints_nothing(frame: Any, capfd: Any) -> None:
    run(frame, rule("n", column="n", metric="nullValues", threshold={"mustBe": 0}))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


# --- in place on Postgres and MariaDB ----------------------------------------------------------------

ROWS = [  # id, email, cur, n
    (1, "a@b.com", "EUR", 1), (2, None, "usd", 1), (3, "bad", "GBP", 2), (4, "c@d.org\n", "USD", 3),
    (5, "e@f.COM", "", 3), (6, "g@h.de", "N/A", 3), (7, "x y@z.com", None, None), (8, "i@j.io", "EUR", 4),
]

SQL_RULES = [
    rule("nulls", column="email", metric="nullValues", threshold={"mustBe": 0}),
    rule("no_nulls", column="id", metric="nullValues", threshold={"mustBe": 0}),
    rule("pattern", column="email", metric="invalidValues", arguments={"pattern": EMAIL}, threshold={"mustBe": 0}),
    rule("code", column="cur", metric="invalidValues", arguments={"pattern": "[A-Z]{3}"},
         threshold={"mustBeLessThan": 100}),
    rule("dups", column="n", metric="duplicateValues", threshold={"mustBe": 0}),
    rule("unique_id", column="id", metric="duplicateValues", threshold={"mustBe": 0}),
    rule("rows", metric="rowCount", threshold={"mustBeGreaterOrEqualTo": len(ROWS)}),
    rule("scalar", column="n", kind="sql", query="SELECT COUNT(*) FROM ${object} WHERE ${property} <= 1",
         threshold={"mustBe": 0}),
    rule("listing", column="n", kind="sql", query="SELECT id FROM ${object} WHERE ${property} >= 3",
         threshold={"mustBeLessThan": 10}),
    rule("custom", column="n", kind="custom",
         implementation={"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 1, "max_value": 3}}),
]


def expected_sql() -> dict[str, tuple[str, Any, list[int]]]:
    """name → (outcome, observed, failing ids) for SQL_RULES over ROWS, computed with ``re`` and pandas."""
    import pandas as pd

    df = pd.DataFrame(ROWS, columns=["id", "email", "cur", "n"])
    ids = lambda mask: sorted(df.loc[mask.fillna(False).astype(bool), "id"].tolist())  # noqa: E731
    bad_email = not_full_match(df["email"], EMAIL)
    bad_code = not_full_match(df["cur"], "[A-Z]{3}")
    dups = df["n"].notna() & df["n"].duplicated(keep=False)
    out_of_range = df["n"].notna() & ~df["n"].between(1, 3)
    return {
        "nulls": ("failed", int(df["email"].isna().sum()), ids(df["email"].isna())),
        "no_nulls": ("passed", 0, []),
        "pattern": ("failed", int(bad_email.sum()), ids(bad_email)),
        "code": ("passed", int(bad_code.sum()), ids(bad_code)),
        "dups": ("failed", int(dups.sum()), ids(dups)),
        "unique_id": ("passed", 0, []),
        "rows": ("passed", len(df), []),
        "scalar": ("failed", int((df["n"] <= 1).sum()), []),
        "listing": ("passed", int((df["n"] >= 3).sum()), ids(df["n"] >= 3)),
        "custom": ("failed", int(out_of_range.sum()), ids(out_of_range)),
    }


def check_sql(results: list[Any]) -> None:
    expected = expected_sql()
    assert [r.name for r in results] == [r.name for r in SQL_RULES]
    for result in results:
        outcome, observed, ids = expected[result.name]
        assert (result.name, result.outcome, result.observed) == (result.name, outcome, observed), result.message
        assert sorted(k["id"] for k in result.failing_keys) == ids, result.name


@pytest.mark.postgres
def test_in_place_on_postgres(pg: Any, pg_schema: str, postgres_config: DatabaseConfig, capfd: Any) -> None:
    pg.execute(f'CREATE TABLE "{pg_schema}".t (id int, email text, cur varchar(5), n int)')
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{pg_schema}".t VALUES (%s, %s, %s, %s)', ROWS)
    url = gx.sqlalchemy_url("postgres", postgres_config)
    check_sql(gx.run_gx_sql(SQL_RULES, DATASET, url, "t", schema=pg_schema, key_columns=("id",)))
    assert capfd.readouterr() == ("", "")  # no progress bars, no prints
    assert not [n for n in gx._context().data_sources.all() if n.startswith("dativo_sql_")]
    with pytest.raises(ConfigError, match="nope"):
        gx.run_gx_sql(SQL_RULES, DATASET, url, "t", schema=pg_schema, key_columns=("nope",))


@pytest.mark.mysql
def test_in_place_on_mariadb(my: Any, my_db: DatabaseConfig) -> None:
    with my.cursor() as cur:
        cur.execute("CREATE TABLE t (id int, email varchar(50), cur varchar(5), n int)")
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", ROWS)
    url = gx.sqlalchemy_url("mysql", my_db)
    check_sql(gx.run_gx_sql(SQL_RULES, DATASET, url, "t", key_columns=("id",)))


@pytest.mark.mysql
def test_mariadb_set_membership_is_exact(my: Any, my_db: DatabaseConfig) -> None:
    """validValues and patterns compare exactly on MariaDB, not by the column's (case-insensitive)
    collation: 'usd' is not 'USD' (issue 12, point 3)."""
    with my.cursor() as cur:
        cur.execute("CREATE TABLE t (id int, cur varchar(5))")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(1, "USD"), (2, "usd")])
    rules = [rule("set", column="cur", metric="invalidValues", arguments={"validValues": ["USD"]},
                  threshold={"mustBe": 0}),
             rule("pattern", column="cur", metric="invalidValues", arguments={"pattern": "USD"},
                  threshold={"mustBe": 0})]
    in_set, pattern = gx.run_gx_sql(rules, DATASET, gx.sqlalchemy_url("mysql", my_db), "t", key_columns=("id",))
    assert (in_set.outcome, in_set.observed, in_set.failing_keys) == ("failed", 1, [{"id": 2}])
    assert (pattern.outcome, pattern.observed, pattern.failing_keys) == ("failed", 1, [{"id": 2}]), pattern.message


@pytest.mark.postgres
def test_sql_failing_keys_are_capped_and_counts_exact(pg: Any, pg_schema: str,
                                                      postgres_config: DatabaseConfig) -> None:
    pg.execute(f'CREATE TABLE "{pg_schema}".t AS SELECT g AS id, NULLIF(g % 3, 0) AS v '
               f"FROM generate_series(1, 300) g")
    (result,) = gx.run_gx_sql([rule("v", column="v", metric="nullValues", threshold={"mustBe": 0})], DATASET,
                              gx.sqlalchemy_url("postgres", postgres_config), "t", schema=pg_schema,
                              key_columns=("id",))
    assert (result.outcome, result.observed) == ("failed", 100)
    assert len(result.failing_keys) == MAX_FAILING_KEYS
    assert all(k["id"] % 3 == 0 for k in result.failing_keys)


@pytest.mark.postgres
def test_missing_table_raises_without_the_password(postgres_config: DatabaseConfig) -> None:
    from dativo_provider.exceptions import SourceError

    config = dataclasses.replace(postgres_config, port=1, password="s3cret-pw")  # nothing listens on port 1
    for url, table in [(gx.sqlalchemy_url("postgres", postgres_config), "no_such_table"),
                       (gx.sqlalchemy_url("postgres", config), "t")]:
        with pytest.raises(SourceError, match=table) as raised:
            gx.run_gx_sql([rule("n", column="n", metric="nullValues")], DATASET, url, table)
        assert "s3cret-pw" not in str(raised.value)
    assert not [n for n in gx._context().data_sources.all() if n.startswith("dativo_sql_")]
