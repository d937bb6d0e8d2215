"""Run contract checks with Great Expectations 1.x: on a pandas DataFrame or in place on a SQL table.

GX measures, this module translates: each check becomes one or more GX expectations, GX computes the
unexpected count (row-level checks) or the observed value (row count, SQL query), and the contract's
ODCS threshold is compared against that number here (:func:`meets`). A ``custom`` rule is a GX
expectation written by hand (``implementation: {type, kwargs}``); GX's own success decides it.

Decisions worth knowing:

* On a database, a row-level rule (null, missing, invalid, duplicate values) is GX's
  ``UnexpectedRowsExpectation`` over the rule's one definition
  (:func:`~dativo_provider.quality.rows.failing_predicate`): the same rows Soda counts and quarantine
  selects, with every identifier quoted, MariaDB/MySQL text compared exactly (not by its collation) and
  the pattern rewritten for the store. GX's column expectations would follow the store instead (the
  collation for value sets, the dialect for regexes, NULL tuples as duplicates).
* On a DataFrame (Iceberg data), GX's column expectations are used; their meaning there equals the
  definition: ``pattern`` is a Python full match (anchored ``^(?:...)\\Z``), a composite key with a
  NULL part is ignored (``ignore_row_if="any_value_is_missing"``), every row of a repeated key counts,
  and ``missingValues`` is two expectations whose failing rows never overlap (nulls, then non-null
  values in ``arguments.missingValues``); their counts add up.
* A ``sql`` rule runs as GX's ``UnexpectedRowsExpectation`` (SQL targets only). A query that returns one
  row with one number (``SELECT COUNT(*) ...``, the ODCS form) is that number; any other result is
  measured by its row count.
* One ephemeral GX context per process (importing GX takes seconds): nothing is written to disk, no data
  docs, analytics off unless ``GX_ANALYTICS_ENABLED`` says otherwise, no progress bars, GX's log records
  below WARNING dropped unless its logger was configured.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from dativo_provider.connections import DatabaseConfig
from dativo_provider.contracts.model import Dataset, QualityRule
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.optional import require
from dativo_provider.quality import rows as row_sql
from dativo_provider.quality.result import MAX_FAILING_KEYS, Category, CheckResult
from dativo_provider.quality.thresholds import describe, meets

if TYPE_CHECKING:
    import pandas

ENGINE = "great_expectations"
EXTRA = "great-expectations"

#: How a check's number is judged: against the ODCS threshold, or by GX's own success.
_COUNT, _VALUE, _QUERY, _SUCCESS, _ROWS = "count", "value", "query", "success", "rows"
#: GX's SQL dialect names → ours.
_DIALECTS: dict[str, row_sql.Dialect] = {"postgresql": "postgres", "mysql": "mysql"}
_KEY = "dativo_check"
_MAX_MESSAGE = 2000


# --- thresholds -------------------------------------------------------------------------------------

# --- compiling --------------------------------------------------------------------------------------

@dataclass
class _Check:
    """One contract check as GX expectations, and how to judge what GX measures for it."""

    key: str
    name: str
    severity: str
    category: Category
    column: str | None
    metric: str | None
    mode: str
    threshold: dict[str, Any] = field(default_factory=dict)
    expectations: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class _Target:
    """Where the suite runs: ``pandas``, or a SQL dialect with the quoted table and its text columns."""

    dialect: str = "pandas"
    relation: str | None = None
    text_columns: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()


def compile_gx_suite(rules: list[QualityRule], dataset: Dataset, *, dialect: str = "pandas",
                     relation: str | None = None) -> Any:
    """A great_expectations ExpectationSuite for the rules whose engine is ``great_expectations``, plus
    the expectations of ``dataset.gx_suite`` (each tagged ``meta["dativo_check"]``).

    :param dialect: the target the suite is for (``pandas``, ``postgresql`` or ``mysql``).
        ``sql`` rules are left out for pandas; rules that cannot be mapped are left out.
    :param relation: on a SQL dialect, the quoted table the row-level queries read (default: the
        dataset's physical name).
    """
    gx, _ = _gx(), _context()
    if dialect != "pandas" and relation is None:
        ours = _DIALECTS.get(dialect, "postgres")
        relation = row_sql.quote_relation((dataset.physical_name or dataset.name).split("."), ours)
    target = _Target(dialect, relation)
    expectations = [e for check in _compile(rules, dataset, target) for e in check.expectations]
    with _no_prints():
        return gx.ExpectationSuite(name=f"dativo.{dataset.name}", expectations=expectations)


def _compile(rules: Iterable[QualityRule], dataset: Dataset, target: _Target) -> list[_Check]:
    checks = [_compile_rule(rule, f"c{i}", target) for i, rule in enumerate(rules) if rule.engine == ENGINE]
    if dataset.gx_suite:
        checks.extend(_handwritten(dataset.gx_suite, start=len(checks)))
    return checks


def _compile_rule(rule: QualityRule, key: str, target: _Target) -> _Check:
    mode = {"custom": _SUCCESS, "sql": _QUERY}.get(rule.kind, _VALUE if rule.metric == "rowCount" else _COUNT)
    if target.dialect != "pandas" and row_sql.is_row_level(rule):
        mode = _ROWS
    default = {_COUNT: {"mustBe": 0}, _ROWS: {"mustBe": 0}, _QUERY: {"mustBe": 0},
               _VALUE: {"mustBeGreaterThan": 0}}.get(mode, {})
    check = _Check(key, rule.name, rule.severity, rule.category, rule.column, rule.metric, mode,
                   (dict(rule.threshold) or default) if mode != _SUCCESS else {})
    if mode == _SUCCESS:
        check.metric = rule.implementation.get("type") if isinstance(rule.implementation, dict) else None
    try:
        specs = [_failing_rows(rule, target)] if mode == _ROWS else _specs(rule, target)
        check.expectations = [_expectation(kind, kwargs, key) for kind, kwargs in specs]
    except Exception as exc:  # a rule GX cannot express must still appear, as an error
        check.error = _message(exc)
    return check


def _failing_rows(rule: QualityRule, target: _Target) -> tuple[str, dict[str, Any]]:
    """A row-level rule on a database: GX counts the rows the rule's one definition selects."""
    dialect = _DIALECTS.get(target.dialect)
    if dialect is None or target.relation is None:
        raise ConfigError(f"rule {rule.name!r}: Great Expectations on {target.dialect} is not supported; "
                          "use Postgres or MySQL/MariaDB")
    predicate = row_sql.failing_predicate(rule, target.relation, dialect, text_columns=target.text_columns)
    shown = list(dict.fromkeys([*target.shown, *row_sql.key_of(rule)]))
    columns = ", ".join(row_sql.quote_identifier(c, dialect) for c in shown)
    query = f"SELECT {columns} FROM {target.relation} WHERE {predicate}"
    # GX formats the query with str.format ({batch}, rendered unquoted, so the query names the quoted
    # table itself) and runs it as SQLAlchemy text(), where ":name" is a bind parameter (as in "(?:x").
    query = re.sub(r"(?<![:\w\\]):(?=\w)", r"\\:", query)
    query = query.replace("{", "{{").replace("}", "}}")
    return "unexpected_rows_expectation", {"unexpected_rows_query": query}


def _specs(rule: QualityRule, target: _Target) -> list[tuple[str, dict[str, Any]]]:
    """The (expectation type, kwargs) pairs that measure ``rule``."""
    dialect = target.dialect
    if rule.kind == "custom":
        return [_custom(rule)]
    if rule.kind == "sql":
        return [_sql(rule, target)]
    column, args = rule.column, rule.arguments
    if rule.metric == "rowCount":
        return [("expect_table_row_count_to_be_between", {"min_value": 0})]
    if rule.metric == "nullValues":
        return [("expect_column_values_to_not_be_null", {"column": _need(column, rule)})]
    if rule.metric == "missingValues":
        return _missing(rule)
    if rule.metric == "invalidValues":
        return [_invalid(rule, dialect)]
    if rule.metric == "duplicateValues":
        columns = list(args.get("properties") or [_need(column, rule)])
        if len(columns) == 1:
            return [("expect_column_values_to_be_unique", {"column": columns[0]})]
        # A key with a NULL part never duplicates (GX's default would count NULL tuples).
        return [("expect_compound_columns_to_be_unique",
                 {"column_list": columns, "ignore_row_if": "any_value_is_missing"})]
    raise ConfigError(f"rule {rule.name!r}: metric {rule.metric!r} has no Great Expectations mapping "
                      "(supported: nullValues, missingValues, invalidValues, duplicateValues, rowCount, "
                      "sql and custom rules); run it with engine soda")


def _need(column: str | None, rule: QualityRule) -> str:
    if not column:
        raise ConfigError(f"rule {rule.name!r}: {rule.metric} needs a column (put it under a property)")
    return column


def _missing(rule: QualityRule) -> list[tuple[str, dict[str, Any]]]:
    column = _need(rule.column, rule)
    values = [v for v in rule.arguments.get("missingValues") or [] if v is not None]
    specs: list[tuple[str, dict[str, Any]]] = [("expect_column_values_to_not_be_null", {"column": column})]
    if values:
        specs.append(("expect_column_values_to_not_be_in_set", {"column": column, "value_set": values}))
    return specs


def _invalid(rule: QualityRule, dialect: str) -> tuple[str, dict[str, Any]]:
    column, args = _need(rule.column, rule), rule.arguments
    if "pattern" in args and "validValues" in args:
        raise ConfigError(f"rule {rule.name!r}: invalidValues with both pattern and validValues cannot be "
                          "counted by one GX expectation on a DataFrame; split it into two rules")
    # A missing value is never invalid: it counts as valid here (nulls GX skips by itself).
    missing = [v for v in args.get("missingValues") or [] if v is not None]
    if "pattern" in args:
        regex = full_match(args["pattern"], dialect)
        if missing:
            regex = "|".join([f"(?:{regex})", *(f"^{re.escape(str(v))}\\Z" for v in missing)])
        return "expect_column_values_to_match_regex", {"column": column, "regex": regex}
    if "validValues" in args:
        valid = [v for v in args["validValues"] if v is not None]
        return "expect_column_values_to_be_in_set", {"column": column, "value_set": valid + missing}
    raise ConfigError(f"rule {rule.name!r}: invalidValues needs arguments.pattern or arguments.validValues")


def full_match(pattern: str, dialect: str) -> str:
    """``pattern`` anchored so that GX's search matches whole values only, on ``dialect``: on pandas
    Python's own ``re`` (``\\Z``: ``$`` would also match before a final newline), elsewhere the pattern
    rewritten for the store's regex engine (:func:`~dativo_provider.quality.regex.full_match_regex`)."""
    if dialect in _DIALECTS:
        from dativo_provider.quality.regex import full_match_regex

        return full_match_regex(pattern, _DIALECTS[dialect])
    return f"^(?:{pattern})\\Z"


def _custom(rule: QualityRule) -> tuple[str, dict[str, Any]]:
    impl = rule.implementation
    if not (isinstance(impl, dict) and isinstance(impl.get("type"), str)):
        raise ConfigError(f"rule {rule.name!r}: a great_expectations rule needs implementation "
                          f"{{type: <expectation name>, kwargs: {{...}}}}, got {impl!r}")
    kwargs = dict(impl.get("kwargs") or {})
    if rule.column and "column" not in kwargs and "column" in _expectation_class(impl["type"]).__fields__:
        kwargs["column"] = rule.column
    return impl["type"], kwargs


def _sql(rule: QualityRule, target: _Target) -> tuple[str, dict[str, Any]]:
    if target.dialect == "pandas":
        raise ConfigError(f"rule {rule.name!r}: sql rules need a SQL target (Great Expectations cannot run "
                          "SQL on a DataFrame); run this check in place on the database or with engine soda")
    if not rule.query:
        raise ConfigError(f"rule {rule.name!r}: a sql rule needs 'query'")
    dialect = _DIALECTS.get(target.dialect, "postgres")
    query = rule.query.replace("{", "{{").replace("}", "}}")
    table = target.relation.replace("{", "{{").replace("}", "}}") if target.relation else "{batch}"
    column = row_sql.quote_identifier(rule.column, dialect).replace("{", "{{").replace("}", "}}") if rule.column else ""
    query = query.replace("${{object}}", table).replace("${{property}}", column)
    return "unexpected_rows_expectation", {"unexpected_rows_query": query}


def _expectation(kind: str, kwargs: dict[str, Any], key: str) -> Any:
    with _no_prints():
        return _expectation_class(kind)(**kwargs, meta={_KEY: key})


@contextmanager
def _no_prints() -> Iterator[None]:
    """GX prints (to stdout) a hint each time it validates a query without {batch}; ours name the
    quoted table instead."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _expectation_class(kind: str) -> type[Any]:
    _gx()
    from great_expectations.expectations.registry import get_expectation_impl

    return get_expectation_impl(kind)


def _handwritten(path: str, start: int) -> list[_Check]:
    """One check per expectation of a GX suite JSON file (as GX writes it)."""
    gx = _gx()
    try:
        with open(path, encoding="utf-8") as src:
            suite = gx.ExpectationSuite(**json.load(src))
    except Exception as exc:
        raise ConfigError(f"cannot read the Great Expectations suite {path}: {_message(exc)}") from exc
    checks: list[_Check] = []
    seen: set[str] = set()
    for i, expectation in enumerate(suite.expectations, start=start):
        name = _unique(_suite_name(expectation), seen)
        severity = "error" if str(getattr(expectation.severity, "value", "critical")) == "critical" else "warning"
        expectation.meta = {**(expectation.meta or {}), _KEY: f"c{i}"}
        checks.append(_Check(f"c{i}", name, severity, "quality", getattr(expectation, "column", None),
                             expectation.expectation_type, _SUCCESS, expectations=[expectation]))
    return checks


def _suite_name(expectation: Any) -> str:
    meta, notes = expectation.meta or {}, expectation.notes
    if meta.get("name"):
        return str(meta["name"])
    if isinstance(notes, str) and notes.strip():
        return notes.strip().splitlines()[0]
    column = getattr(expectation, "column", None)
    return f"{expectation.expectation_type}({column})" if column else expectation.expectation_type


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    while candidate in seen:
        n += 1
        candidate = f"{name}#{n}"
    seen.add(candidate)
    return candidate


# --- running ----------------------------------------------------------------------------------------

def run_gx_frame(rules: list[QualityRule], dataset: Dataset, frame: pandas.DataFrame, *,
                 row_id_column: str | None = None, key_columns: tuple[str, ...] = ()) -> list[CheckResult]:
    """Run the ``great_expectations`` rules (and ``dataset.gx_suite``) on an in-memory DataFrame.

    :param row_id_column: a column that identifies rows (e.g. the position in the checked data); each
        row-level result's ``row_ids`` then lists that column's value for every failing row.
    :param key_columns: the columns whose values identify failing rows in ``failing_keys``.
    """
    checks = _compile(rules, dataset, _Target())
    index = _index_columns(row_id_column, key_columns)
    _require_columns(index, list(frame.columns), "the DataFrame")
    if any(name is not None for name in frame.index.names):  # GX would read index columns from a named index
        frame = frame.reset_index(drop=True)
    with _frame_batch(frame) as batch:
        results = _validate(batch, checks, index, None)
    return [_result(check, dataset, results.get(check.key, []), row_id_column, key_columns)
            for check in checks]


def run_gx_sql(rules: list[QualityRule], dataset: Dataset, url: str, table: str, *, schema: str | None = None,
               key_columns: tuple[str, ...] = ()) -> list[CheckResult]:
    """Run the ``great_expectations`` rules (and ``dataset.gx_suite``) in place on a database table.

    Counts are exact; ``failing_keys`` holds up to :data:`MAX_FAILING_KEYS` rows (GX limits its SQL
    sample to that many). Raises :class:`SourceError` when the server or the table cannot be reached.

    :param url: an SQLAlchemy URL, see :func:`sqlalchemy_url`.
    """
    with _sql_batch(url, table, schema) as (batch, dialect):
        columns = _table_columns(batch, table, schema)
        _require_columns(list(key_columns), list(columns), f"table {table}")
        ours = _DIALECTS.get(dialect, "postgres")
        relation = row_sql.quote_relation([schema, table] if schema else [table], ours)
        target = _Target(dialect, relation, tuple(c for c, text in columns.items() if text), key_columns)
        checks = _compile(rules, dataset, target)
        results = _validate(batch, checks, _index_columns(None, key_columns), MAX_FAILING_KEYS)
    return [_result(check, dataset, results.get(check.key, []), None, key_columns) for check in checks]


def sqlalchemy_url(dialect: str, config: DatabaseConfig) -> str:
    """An SQLAlchemy URL for ``config``: ``postgres`` → ``postgresql+psycopg://`` (``+psycopg2`` under
    SQLAlchemy 1.4, which has no psycopg 3 dialect), ``mysql`` → ``mysql+pymysql://``. The user and
    password are percent-encoded here (SQLAlchemy 1.4's own rendering leaves ``%`` bare, so a password
    such as ``a%41b`` would come back as ``aAb``); ``config.options`` become query parameters.
    """
    drivers = {"postgres": _postgres_driver, "postgresql": _postgres_driver, "mysql": lambda: "mysql+pymysql"}
    if dialect not in drivers:
        raise ConfigError(f"no SQLAlchemy URL for dialect {dialect!r}; use postgres or mysql")
    auth = quote(config.user or "", safe="")
    if config.password is not None:
        auth += ":" + quote(config.password, safe="")
    host = f"[{config.host}]" if ":" in config.host else config.host
    port = f":{config.port}" if config.port else ""
    url = f"{drivers[dialect]()}://{auth + '@' if auth else ''}{host}{port}/{config.database or ''}"
    return url + (f"?{urlencode(dict(config.options))}" if config.options else "")


def _postgres_driver() -> str:
    import sqlalchemy

    return "postgresql+psycopg" if int(sqlalchemy.__version__.split(".")[0]) >= 2 else "postgresql+psycopg2"


def _require_columns(wanted: list[str], present: list[str], where: str) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ConfigError(f"key/row-id column(s) {missing} are not in {where} (it has {present})")


def _table_columns(batch: Any, table: str, schema: str | None) -> dict[str, bool]:
    """The table's column names and whether each holds text, read with SQLAlchemy (GX's
    ``batch.columns()`` forces a progress bar)."""
    import sqlalchemy

    engine = batch.datasource.get_engine()
    return {c["name"]: isinstance(c["type"], sqlalchemy.types.String)
            for c in sqlalchemy.inspect(engine).get_columns(table, schema=schema)}


def _index_columns(row_id_column: str | None, key_columns: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys([*([row_id_column] if row_id_column else []), *key_columns]))


def _validate(batch: Any, checks: list[_Check], index: list[str], sample: int | None) -> dict[str, list[Any]]:
    """GX's results for every runnable check in one validation, grouped by check key."""
    gx = _gx()
    runnable = [e for check in checks if not check.error for e in check.expectations]
    if not runnable:
        return {}
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "exclude_unexpected_values": True,
                                     "return_unexpected_index_query": False}
    if index:
        result_format["unexpected_index_column_names"] = index
    if sample is not None:
        result_format["partial_unexpected_count"] = sample
    with _no_prints(), warnings.catch_warnings():
        # pandas warns that a pattern with groups (a back-reference needs one) has match groups; GX
        # only asks whether each value matches.
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        suite = gx.ExpectationSuite(name=f"dativo-{uuid.uuid4().hex}", expectations=runnable)
        validation = batch.validate(suite, result_format=result_format)
    grouped: dict[str, list[Any]] = {}
    for res in validation.results:
        grouped.setdefault(res.expectation_config.meta[_KEY], []).append(res)
    return grouped


# --- results ----------------------------------------------------------------------------------------

def _result(check: _Check, dataset: Dataset, results: list[Any], row_id_column: str | None,
            key_columns: tuple[str, ...]) -> CheckResult:
    out = CheckResult(name=check.name, engine=ENGINE, category=check.category, severity=check.severity,
                      outcome="error", dataset=dataset.name, column=check.column, metric=check.metric,
                      threshold=describe(check.threshold))
    error = check.error or next(filter(None, map(_exception, results)), None)
    if error or not results:
        out.message = error or "Great Expectations returned no result for this check"
        return out
    out.observed, out.failing_rows, rows = _measure(check, results)
    passed = all(r.success for r in results) if check.mode == _SUCCESS else meets(out.observed, check.threshold)
    out.observed = out.observed if isinstance(out.observed, Decimal) else _plain(out.observed)
    out.outcome = "passed" if passed else "failed"
    if rows is not None:
        out.failing_keys = _keys(rows, key_columns)
    if row_id_column and rows is not None and check.mode != _QUERY:
        ids = [row[row_id_column] for row in rows if row_id_column in row]
        if len(ids) == out.failing_rows:
            out.row_ids = ids
        else:  # never hand on a partial list: quarantine would keep failing rows
            out.message = f"Great Expectations listed {len(ids)} of {out.failing_rows} failing rows; no row ids"
    return out


def _measure(check: _Check, results: list[Any]) -> tuple[Any, int | None, list[dict[str, Any]] | None]:
    """What GX measured for ``check``: the observed value, the failing row count (row-level checks) and
    the failing rows' index columns as GX listed them (None when it lists none)."""
    first = results[0].result
    if check.mode == _ROWS:
        rows = [_plain_row(row) for row in (first.get("details") or {}).get("unexpected_rows") or []]
        count = _count(first.get("observed_value"))
        return count, count, rows
    if check.mode == _QUERY:
        raw = [dict(row) for row in (first.get("details") or {}).get("unexpected_rows") or []]
        scalar = _scalar(raw)  # exact: a Decimal stays a Decimal (compared with the bound as it is)
        rows = [_plain_row(row) for row in raw]
        if scalar is not None:
            return scalar, None, None
        count = _count(first.get("observed_value"))
        return count, count, rows
    if "unexpected_count" not in first:
        return _plain(first.get("observed_value")), None, None
    count = sum(_count(r.result.get("unexpected_count")) for r in results)
    return count, count, [row for r in results for row in _index_rows(r.result)]


def _scalar(rows: list[dict[str, Any]]) -> int | float | Decimal | None:
    """The value of a query that returned one row with one number (the ODCS form), else None."""
    if len(rows) != 1 or len(rows[0]) != 1:
        return None
    value = next(iter(rows[0].values()))
    if hasattr(value, "item") and not isinstance(value, Decimal):
        value = value.item()  # a numpy scalar
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    if isinstance(value, Decimal) and value == value.to_integral_value() and abs(value) < 2 ** 63:
        return int(value)
    return value


def _index_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """GX's ``unexpected_index_list`` as one dict per failing row.

    With ``exclude_unexpected_values`` GX returns it column-wise, ``[{"id": [1, 2, ...]}]``; without,
    row-wise ``[{"id": 1, "col": v}, ...]``; with no index columns, a list of DataFrame positions.
    """
    listing = result.get("unexpected_index_list") or []
    if len(listing) == 1 and isinstance(listing[0], dict) and listing[0] \
            and all(isinstance(v, list) for v in listing[0].values()):
        columns = listing[0]
        return [_plain_row(dict(zip(columns, values))) for values in zip(*columns.values())]
    return [_plain_row(row) for row in listing if isinstance(row, dict)]


def _keys(rows: list[dict[str, Any]], key_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    if not key_columns:
        return []
    picked = [{k: row[k] for k in key_columns} for row in rows if all(k in row for k in key_columns)]
    return picked[:MAX_FAILING_KEYS]


def _exception(result: Any) -> str | None:
    """GX's exception message for a result that could not be computed, else None."""
    info = result.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    messages = [i.get("exception_message") or "error" for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages))[:_MAX_MESSAGE] if messages else None


def _message(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:_MAX_MESSAGE]


def _count(value: Any) -> int:
    return int(value or 0)


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    """numpy/Decimal scalars as plain Python values (JSON- and XCom-friendly); NaN as None."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, dict):
        value = value.item()
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- the GX context ---------------------------------------------------------------------------------

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {}


def _gx() -> Any:
    """The great_expectations module, imported quietly once per process."""
    if "gx" not in _STATE:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        gx_logger = logging.getLogger("great_expectations")
        if gx_logger.level == logging.NOTSET:  # GX logs hundreds of INFO records on import
            gx_logger.setLevel(logging.WARNING)
        _STATE["gx"] = require("great_expectations", EXTRA)
    return _STATE["gx"]


def _context() -> Any:
    """One ephemeral context per process: in-memory stores, no data docs, no analytics, no progress bars."""
    with _LOCK:
        if "context" not in _STATE:
            gx = _gx()
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            enabled = os.environ.get("GX_ANALYTICS_ENABLED", "false").lower() in ("1", "true", "yes")
            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=enabled, progress_bars=ProgressBarsConfig(globally=False))
            _STATE["context"] = gx.get_context(mode="ephemeral", project_config=config)
        return _STATE["context"]


@contextmanager
def _frame_batch(frame: pandas.DataFrame) -> Iterator[Any]:
    """A GX batch over ``frame``; its data source is removed afterwards, so GX keeps no reference to it."""
    name = f"dativo_frame_{uuid.uuid4().hex}"
    with _LOCK:
        source = _context().data_sources.add_pandas(name=name)
    try:
        yield source.add_dataframe_asset(name="frame").add_batch_definition_whole_dataframe(
            "whole").get_batch(batch_parameters={"dataframe": frame})
    finally:
        with _LOCK:
            _context().data_sources.delete(name)


@contextmanager
def _sql_batch(url: str, table: str, schema: str | None) -> Iterator[tuple[Any, str]]:
    """A GX batch over ``table`` and the dialect name (``postgresql``, ``mysql``...); the data source and
    its connections are removed afterwards. Raises :class:`SourceError` when GX cannot read the table."""
    name = f"dativo_sql_{uuid.uuid4().hex}"
    try:
        with _LOCK, warnings.catch_warnings():
            # GX suggests its dialect-specific data sources; the generic one takes any SQLAlchemy URL.
            warnings.filterwarnings("ignore", message="You are using a generic SQLDatasource")
            source = _context().data_sources.add_sql(name=name, connection_string=_in_schema(url, schema))
        # A name in double quotes is always quoted by GX (as SQLAlchemy's quoted_name), in each dialect's
        # own quotes: a table named with a reserved word (`order`, `dec`) is read, not a syntax error.
        asset = source.add_table_asset(name="table", table_name=f'"{table}"')
        batch = asset.add_batch_definition_whole_table("whole").get_batch()
    except Exception as exc:
        _drop_source(name)
        where = f"{schema}.{table}" if schema else table
        raise SourceError(f"Great Expectations cannot read {where}: {_redact(_message(exc), url)}") from exc
    dialect = source.get_engine().dialect.name
    try:
        yield batch, "mysql" if dialect in ("mysql", "mariadb") else dialect
    finally:
        _drop_source(name)


def _in_schema(url: str, schema: str | None) -> str:
    """``url`` with ``schema`` as the connection's default: GX (1.14+) takes a table's schema from its
    data source's connection, no longer from the asset. Postgres: the session's ``search_path``;
    MySQL: the database (a MySQL schema is a database)."""
    if schema is None:
        return url
    parts = urlsplit(url)
    if parts.scheme.startswith("mysql"):
        return urlunsplit(parts._replace(path="/" + quote(schema, safe="")))
    query = dict(parse_qsl(parts.query))
    identifier = '"' + schema.replace('"', '""') + '"'  # the exact name, as the asset had it
    escaped = identifier.replace("\\", "\\\\").replace(" ", "\\ ")  # libpq options: backslash escapes
    query["options"] = f"{query.get('options', '')} -csearch_path={escaped}".strip()
    return urlunsplit(parts._replace(query=urlencode(query)))


def _drop_source(name: str) -> None:
    with _LOCK:
        source = _context().data_sources.all().get(name)
        if source is not None:
            source.get_engine().dispose()
            _context().data_sources.delete(name)


def _redact(text: str, url: str) -> str:
    """``text`` without the password of ``url``."""
    from urllib.parse import unquote, urlsplit

    password = urlsplit(url).password
    for secret in filter(None, {password, password and unquote(password)}):
        text = text.replace(secret, "***")
    return text
