"""Run a contract's ``soda`` rules with Soda Core 4: compile them into one Soda contract, verify it on
a DuckDB relation or a Postgres table in place, and translate Soda's results into
:class:`~dativo_provider.quality.result.CheckResult` rows. Soda measures; this module only translates.

Licence and privacy:

* soda-core 4 is under the **Elastic License 2.0** (not an OSI licence); it is the optional extra
  ``dativo-airflow-provider[soda]``.
* Soda Core sends usage telemetry unless ``SODA_CORE_TELEMETRY_ENABLED=false``. Before Soda is first
  imported this module sets that variable to ``false`` in ``os.environ`` **unless the user has set it**
  (any value the user set wins).

Nothing here imports soda_core, duckdb or psycopg at module import time.

Mapping of rules (``engine == "soda"``) to Soda checks; every check gets the rule's name and a
``qualifier`` (the rule's position) so two checks of one type on one column do not clash and results
map back to rules:

============================  ===================================================================
rule                          Soda check
============================  ===================================================================
``nullValues``,                dataset ``failed_rows`` whose ``expression`` is the rule's one definition
``missingValues``,            (:func:`~dativo_provider.quality.rows.failing_predicate`): Soda counts
``invalidValues``,            ``COUNT(CASE WHEN <predicate> THEN 1 END)`` in its one aggregate query,
``duplicateValues``           and quarantine selects the same rows. (Soda's own ``missing``,
                              ``invalid`` and ``duplicate`` checks differ: NULL tuples count as
                              duplicates, duplicates count rows minus distinct values, regexes follow
                              the store's dialect.) Identifiers are quoted; patterns are rewritten for
                              the store (:mod:`~dativo_provider.quality.regex`).
``rowCount``                  dataset ``row_count``
metric ``freshness``          dataset ``freshness`` on the column; age = ``now`` - newest value, in
                              whole seconds (naive timestamps are read as UTC)
kind ``sql``                  dataset ``metric`` with ``query``; ``${object}`` and ``${property}`` are
                              replaced by the quoted table and column
kind ``custom``               ``implementation`` is a Soda check, ``{"invalid": {"valid_min": 0}}``
                              (or ``{"type": "invalid_count", "valid_min": 0}``), on the rule's column
                              or the dataset
============================  ===================================================================

ODCS thresholds become Soda thresholds (``mustBeBetween [a, b]`` is ``a <= x <= b``,
``mustNotBeBetween [a, b]`` is ``x < a or x > b``). On DuckDB every aggregate rule is measured in one
query; ``sql`` rules run their own query. Only when Soda reports errors are the rules it could not
evaluate re-run one at a time, so that each error is reported on the rule that caused it (one bad
rule makes Soda's whole aggregate query fail).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from dativo_provider.connections import DatabaseConfig
from dativo_provider.contracts.model import Dataset, QualityRule
from dativo_provider.exceptions import ConfigError, SourceError, TransientError, redact
from dativo_provider.optional import require
from dativo_provider.quality import rows as row_sql
from dativo_provider.quality.plan import FRESHNESS
from dativo_provider.quality.result import CheckResult
from dativo_provider.quality.thresholds import describe, meets

log = logging.getLogger(__name__)

#: The name of the Soda data source; dataset identifiers start with it.
DATA_SOURCE = "dativo"
EXTRA = "soda"

#: ODCS threshold operator -> Soda threshold key (the two ranges are handled apart).
_OPERATORS = {
    "mustBe": "must_be",
    "mustNotBe": "must_not_be",
    "mustBeGreaterThan": "must_be_greater_than",
    "mustBeGreaterOrEqualTo": "must_be_greater_than_or_equal",
    "mustBeLessThan": "must_be_less_than",
    "mustBeLessOrEqualTo": "must_be_less_than_or_equal",
}
_RANGES = ("mustBeBetween", "mustNotBeBetween")
#: Soda check types whose metric counts rows: their count is the number of failing rows.
_ROW_LEVEL = {"missing": "missing_count", "invalid": "invalid_count", "duplicate": "duplicate_count",
              "failed_rows": "failed_rows_count"}
#: Soda check types that only exist at dataset level.
_DATASET_TYPES = {"row_count", "schema", "freshness"}
#: Soda 3 style ``type:`` names accepted in custom rules: Soda 4 type and threshold metric.
_LEGACY_TYPES = {
    f"{kind}_{metric}": (kind, metric)
    for kind in ("missing", "invalid", "duplicate") for metric in ("count", "percent")
}


@dataclass(frozen=True)
class DuckDbData:
    """The dataset is a DuckDB table or view on an existing connection (left open).

    :param connection: a ``duckdb.DuckDBPyConnection``.
    :param relation: the table or view name in that connection's ``main`` schema.
    """

    connection: Any
    relation: str


@dataclass(frozen=True)
class PostgresData:
    """A Postgres table checked in place; a connection is opened for the run and closed after it."""

    config: DatabaseConfig
    schema: str
    table: str


# --- compiling -------------------------------------------------------------------------------------


def compile_soda_contract(rules: list[QualityRule], dataset: Dataset,
                          dataset_identifier: str, dialect: row_sql.Dialect = "duckdb") -> dict[str, Any]:
    """The Soda 4 contract (as YAML-ready data) for the rules whose engine is ``soda``.

    Check ``qualifier`` s are the rules' positions in ``rules``.

    :param dataset_identifier: Soda's ``data_source/prefix.../table``, e.g. ``dativo/main/orders``; a
        physical name without ``/`` (``sales.orders``) is read as ``dativo/sales/orders``, so the
        compiled queries name the table.
    :param dialect: the SQL the row-level expressions are written in (``duckdb`` or ``postgres``).
    :raises ConfigError: a rule cannot be expressed as a Soda check; the message names it.
    """
    if "/" not in dataset_identifier:
        dataset_identifier = "/".join([DATA_SOURCE, *dataset_identifier.split(".")])
    indexed = [(i, r) for i, r in enumerate(rules) if r.engine == "soda"]
    return _compile(indexed, dataset, dataset_identifier, dialect)


def _compile(indexed: list[tuple[int, QualityRule]], dataset: Dataset, identifier: str,
             dialect: row_sql.Dialect) -> dict[str, Any]:
    columns: dict[str, list[dict[str, Any]]] = {}
    checks: list[dict[str, Any]] = []
    for index, rule in indexed:
        try:
            column, check = _check(rule, str(index), identifier, dialect)
        except ConfigError as exc:
            raise ConfigError(f"rule {rule.name!r} on dataset {dataset.name!r}: {exc}") from None
        if column is None:
            checks.append(check)
        else:
            columns.setdefault(column, []).append(check)
    contract: dict[str, Any] = {
        "dataset": identifier,
        "columns": [{"name": name, "checks": col_checks} for name, col_checks in columns.items()],
    }
    if checks:
        contract["checks"] = checks
    return contract


def _check(rule: QualityRule, qualifier: str, identifier: str,
           dialect: row_sql.Dialect) -> tuple[str | None, dict[str, Any]]:
    """Where the rule's Soda check goes (a column name, or None for the dataset) and the check."""
    head: dict[str, Any] = {"name": rule.name} if rule.name else {}
    head["qualifier"] = qualifier
    if rule.kind == "custom":
        return _custom(rule, head)
    if row_sql.is_row_level(rule):
        expression = row_sql.failing_predicate(rule, relation_of(identifier, dialect), dialect)
        return None, {"failed_rows": {**head, "expression": expression,
                                      "threshold": _threshold(rule.threshold)}}
    if rule.kind == "sql":
        if not rule.query:
            raise ConfigError("a sql rule needs 'query'")
        query = _expand_query(rule.query, identifier, rule.column, dialect)
        return None, {"metric": {**head, "query": query, "threshold": _threshold(rule.threshold)}}
    if rule.metric == FRESHNESS:
        # Soda wraps the name in double quotes without doubling the ones inside: double them here.
        column = _column(rule).replace('"', '""')
        return None, {"freshness": {**head, "column": column, "threshold": _freshness_threshold(rule)}}
    if rule.metric == "rowCount":
        return None, {"row_count": {**head, "threshold": _threshold(rule.threshold)}}
    if rule.metric in row_sql.ROW_METRICS:
        raise ConfigError(f"metric {rule.metric!r} needs a column (put the rule on a property)")
    raise ConfigError(f"metric {rule.metric!r} has no Soda check (kind {rule.kind!r})")


def _column(rule: QualityRule) -> str:
    if not rule.column:
        raise ConfigError(f"metric {rule.metric!r} needs a column (put the rule on a property)")
    return rule.column


def _threshold(threshold: dict[str, Any], scale: float = 1) -> dict[str, Any]:
    """The Soda threshold for one ODCS operator; values are divided by ``scale``."""
    if len(threshold) != 1:
        raise ConfigError(f"needs exactly one threshold operator, got {sorted(threshold) or 'none'}")
    (operator, value), = threshold.items()
    if operator in _OPERATORS:
        return {_OPERATORS[operator]: _scaled(value, scale)}
    if operator in _RANGES:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{operator} needs two values [low, high], got {value!r}")
        low, high = (_scaled(v, scale) for v in value)
        if operator == "mustBeBetween":
            return {"must_be_between": {"greater_than_or_equal": low, "less_than_or_equal": high}}
        return {"must_be_not_between": {"less_than": low, "greater_than": high}}
    raise ConfigError(f"unknown threshold operator {operator!r}")


def _scaled(value: Any, scale: float) -> Any:
    return value / scale if scale != 1 else value


def _freshness_threshold(rule: QualityRule) -> dict[str, Any]:
    """Soda's smallest freshness unit is the minute: seconds are given as fractions of minutes."""
    threshold = _rule_threshold(rule)
    if not threshold or None in threshold.values():
        raise ConfigError("freshness needs arguments.maxAgeSeconds or a threshold")
    return {"unit": "minute", **_threshold(threshold, scale=60)}


def _rule_threshold(rule: QualityRule) -> dict[str, Any]:
    """The rule's ODCS threshold; a freshness rule without one has ``mustBeLessOrEqualTo maxAgeSeconds``."""
    if rule.threshold or rule.metric != FRESHNESS:
        return rule.threshold
    return {"mustBeLessOrEqualTo": rule.arguments.get("maxAgeSeconds")}


def _custom(rule: QualityRule, head: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    check_type, body = _custom_check(rule.implementation)
    body = {**head, **body}
    if check_type == "freshness" and rule.column:
        body.setdefault("column", rule.column)
    if "threshold" not in body and rule.threshold:
        body["threshold"] = _threshold(rule.threshold)
    if check_type in _DATASET_TYPES or (check_type == "duplicate" and "columns" in body) or not rule.column:
        return None, {check_type: body}
    return rule.column, {check_type: body}


def _custom_check(implementation: Any) -> tuple[str, dict[str, Any]]:
    """``{"invalid": {...}}`` or ``{"type": "invalid_count", ...}`` as (Soda check type, body)."""
    if isinstance(implementation, dict) and "type" in implementation:
        body = {k: v for k, v in implementation.items() if k != "type"}
        check_type, metric = _LEGACY_TYPES.get(implementation["type"], (implementation["type"], None))
        if metric == "percent":
            body.setdefault("threshold", {})["metric"] = "percent"
        return str(check_type), body
    if isinstance(implementation, dict) and len(implementation) == 1:
        (check_type, body), = implementation.items()
        if body is None or isinstance(body, dict):
            return str(check_type), dict(body or {})
    raise ConfigError("a custom soda rule needs implementation {<soda check type>: {...}}, e.g. "
                      f"{{'invalid': {{'valid_min': 0}}}}; got {implementation!r}")


def relation_of(identifier: str, dialect: row_sql.Dialect) -> str:
    """Soda's ``data_source/prefix.../table`` as a quoted SQL relation (``"main"."orders"``)."""
    return row_sql.quote_relation(identifier.split("/")[1:], dialect)


def _expand_query(query: str, identifier: str, column: str | None, dialect: row_sql.Dialect) -> str:
    """ODCS ``${object}`` / ``${property}`` placeholders -> the quoted table and column."""
    query = query.replace("${object}", relation_of(identifier, dialect))
    if column:
        query = query.replace("${property}", row_sql.quote_identifier(column, dialect))
    return query


# --- running ---------------------------------------------------------------------------------------


def run_soda(rules: list[QualityRule], dataset: Dataset, data: DuckDbData | PostgresData, *,
             now: datetime | None = None) -> list[CheckResult]:
    """Run the soda-engine rules (others are ignored) plus ``dataset.soda_contract`` (a hand-written
    Soda contract file, if set) and return one result per check: the rules' in rule order, then the
    hand-written contract's.

    :param now: the time freshness is measured at (a naive value is UTC); None is Soda's clock.
    :raises ConfigError: a rule cannot be compiled, or the hand-written contract file is missing.
    :raises TransientError: the Postgres server cannot be reached.
    :raises SourceError: Soda raised instead of reporting (the message names the rules).
    """
    indexed = [(i, r) for i, r in enumerate(rules) if r.engine == "soda"]
    if not indexed and not dataset.soda_contract:
        return []
    timestamp = _timestamp(now)
    _import_soda()
    with _quiet_soda_logging(), _data_source(data) as (source, identifier):
        dialect: row_sql.Dialect = "duckdb" if isinstance(data, DuckDbData) else "postgres"
        results = _run_rules(indexed, dataset, source, identifier, dialect, timestamp) if indexed else []
        if dataset.soda_contract:
            results.extend(_run_handwritten(dataset, source, identifier, timestamp))
    return results


def _timestamp(now: datetime | None) -> str | None:
    if now is None:
        return None
    return (now if now.tzinfo else now.replace(tzinfo=timezone.utc)).isoformat()


def _import_soda() -> None:
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    require("soda_core.contracts.contract_verification", EXTRA)


@contextmanager
def _quiet_soda_logging() -> Iterator[None]:
    """Soda logs every query and a results table at INFO/DEBUG; keep warnings and errors only,
    unless the user configured the ``soda`` logger. Soda still captures its errors for us."""
    soda_logger = logging.getLogger("soda")
    if soda_logger.level != logging.NOTSET:
        yield
        return
    soda_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        soda_logger.setLevel(logging.NOTSET)


@contextmanager
def _data_source(data: DuckDbData | PostgresData) -> Iterator[tuple[Any, str]]:
    """A Soda data source on ``data`` with an open connection, and the dataset identifier."""
    if isinstance(data, DuckDbData):
        duckdb_source = require("soda_duckdb.common.data_sources.duckdb_data_source", EXTRA)
        yield (duckdb_source.DuckDBDataSourceImpl.from_existing_cursor(data.connection, DATA_SOURCE),
               f"{DATA_SOURCE}/main/{data.relation}")
        return
    if not isinstance(data, PostgresData):
        raise ConfigError(f"run_soda takes DuckDbData or PostgresData, got {type(data).__name__}")
    source = _postgres_source(data.config)
    target = f"{data.config.host}:{data.config.port or 5432}/{data.config.database}"
    with _soda_errors() as errors:
        try:
            source.open_connection()
        except Exception as exc:  # Soda wraps driver errors in its own exception type
            errors.append(str(exc))
    if not source.has_open_connection():  # Soda logs a failed connect instead of raising
        reason = redact("; ".join(errors) or "see the 'soda' logger", data.config.secrets)
        raise TransientError(f"Soda could not connect to Postgres at {target}: {reason}")
    try:
        yield source, f"{DATA_SOURCE}/{data.config.database}/{data.schema}/{data.table}"
    finally:
        source.close_connection()


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextmanager
def _soda_errors() -> Iterator[list[str]]:
    """The messages Soda logs at ERROR inside the block."""
    errors: list[str] = []
    handler = _Collect(errors)
    soda_logger = logging.getLogger("soda")
    soda_logger.addHandler(handler)
    try:
        yield errors
    finally:
        soda_logger.removeHandler(handler)


def _postgres_source(config: DatabaseConfig) -> Any:
    """soda-postgres's data source built in code (no file): the password stays a ``SecretStr``."""
    if not config.database or not config.user:
        raise ConfigError("Soda on Postgres needs the connection's database and login")
    module = require("soda_postgres.common.data_sources.postgres_data_source", EXTRA)
    model_module = require("soda_postgres.common.data_sources.postgres_data_source_connection", EXTRA)
    connection = {
        **dict(config.options), "host": config.host, "port": config.port or 5432,
        "database": config.database, "user": config.user, "password": config.password or "",
    }
    model = model_module.PostgresDataSource(name=DATA_SOURCE, connection=connection)
    return module.PostgresDataSourceImpl(data_source_model=model)


def dump_yaml(document: dict[str, Any]) -> str:
    """``document`` as YAML; ``Decimal`` values are written with all their digits (never via a float)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
        if value == value.to_integral_value():
            return dumper.represent_int(int(value))
        return dumper.represent_scalar("tag:yaml.org,2002:float", format(value, "f"))

    _Dumper.add_representer(Decimal, decimal)
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _verify(source: Any, contract: dict[str, Any], timestamp: str | None,
            what: str) -> tuple[list[Any], list[str]]:
    """Soda's check results and error messages for one contract."""
    from soda_core.common.yaml import ContractYamlSource
    from soda_core.contracts.contract_verification import ContractVerificationSession

    text = dump_yaml(contract)
    try:
        session = ContractVerificationSession.execute(
            contract_yaml_sources=[ContractYamlSource.from_str(text)],
            data_source_impls=[source], data_timestamp=timestamp,
        )
    except Exception as exc:  # Soda raises on some parse failures instead of reporting them
        raise SourceError(f"Soda failed verifying {what}: {type(exc).__name__}: {exc}") from exc
    found, errors = [], [str(e) for e in session.get_errors()]
    for contract_result in session.contract_verification_results:
        found.extend(contract_result.check_results)
    return found, errors


def _run_rules(indexed: list[tuple[int, QualityRule]], dataset: Dataset, source: Any, identifier: str,
               dialect: row_sql.Dialect, timestamp: str | None) -> list[CheckResult]:
    names = ", ".join(repr(r.name) for _, r in indexed)
    refused: dict[int, str] = {}
    for index, rule in indexed:  # a rule the store cannot express is refused alone, with the reason
        try:
            _check(rule, str(index), identifier, dialect)
        except ConfigError as exc:
            refused[index] = f"rule {rule.name!r}: {exc}"
    runnable = [(i, r) for i, r in indexed if i not in refused]
    found, errors = ([], []) if not runnable else _verify(
        source, _compile(runnable, dataset, identifier, dialect), timestamp, f"rules {names}")
    by_qualifier = {c.check.qualifier: c for c in found}
    outcomes: dict[int, tuple[Any, list[str]]] = {}
    for index, rule in indexed:
        soda_result = by_qualifier.get(str(index))
        if index in refused:
            soda_result, rule_errors = None, [refused[index]]
        elif errors and len(runnable) > 1 and _unsure(soda_result):
            soda_result, rule_errors = _run_alone(index, rule, dataset, source, identifier, dialect, timestamp)
        else:
            rule_errors = errors
        outcomes[index] = (soda_result, rule_errors)
    return [_rule_result(rule, dataset, *outcomes[index]) for index, rule in indexed]


def _run_alone(index: int, rule: QualityRule, dataset: Dataset, source: Any, identifier: str,
               dialect: row_sql.Dialect, timestamp: str | None) -> tuple[Any, list[str]]:
    found, errors = _verify(source, _compile([(index, rule)], dataset, identifier, dialect), timestamp,
                            f"rule {rule.name!r}")
    return next(iter(found), None), errors


def _unsure(soda_result: Any) -> bool:
    """Soda did not evaluate the check, or (freshness) could not read a timestamp."""
    return _not_evaluated(soda_result) or (
        soda_result.check.type == "freshness" and getattr(soda_result, "freshness_in_seconds", 1) is None)


def _not_evaluated(soda_result: Any) -> bool:
    return soda_result is None or soda_result.outcome.name == "NOT_EVALUATED"


def _rule_result(rule: QualityRule, dataset: Dataset, soda_result: Any, errors: list[str]) -> CheckResult:
    result = CheckResult(
        name=rule.name, engine="soda", category=rule.category, severity=rule.severity, outcome="error",
        dataset=dataset.name, column=rule.column, metric=rule.metric or rule.kind,
        threshold=describe(_rule_threshold(rule)) or _readable_soda(soda_result),
    )
    result = _fill(result, soda_result, errors)
    if result.outcome in ("passed", "failed") and _exact_bound(rule.threshold, result.observed):
        # Soda reads the YAML bound as a float; a Decimal bound is judged here, exactly.
        result.outcome = "passed" if meets(result.observed, rule.threshold) else "failed"
    return result


def _exact_bound(threshold: dict[str, Any], observed: Any) -> bool:
    """The threshold has a Decimal that a float would change, and Soda measured a number."""
    values = [v for value in threshold.values() for v in (value if isinstance(value, (list, tuple)) else [value])]
    inexact = any(isinstance(v, Decimal) and Decimal(float(v)) != v for v in values)
    return inexact and isinstance(observed, (int, Decimal)) and not isinstance(observed, bool)


def _fill(result: CheckResult, soda_result: Any, errors: list[str]) -> CheckResult:
    """Outcome, observed value, failing rows and message from Soda's result."""
    if _not_evaluated(soda_result) or (errors and _unsure(soda_result)):
        result.outcome = "error"
        result.message = "; ".join(errors) or "Soda did not evaluate this check"
        return result
    result.outcome = "passed" if soda_result.outcome.name in ("PASSED", "EXCLUDED") else "failed"
    result.observed = _number(soda_result.threshold_value)
    if soda_result.check.type == "freshness":
        result.observed = soda_result.freshness_in_seconds
        result.message = _freshness_message(soda_result)
    count_key = _ROW_LEVEL.get(soda_result.check.type)
    if count_key and soda_result.diagnostic_metric_values:
        result.failing_rows = _number(soda_result.diagnostic_metric_values.get(count_key))
    return result


def _freshness_message(soda_result: Any) -> str:
    if soda_result.max_timestamp_utc is None:
        return "no timestamp found (no rows, or only nulls)"
    newest, now = soda_result.max_timestamp_utc.isoformat(), soda_result.data_timestamp_utc.isoformat()
    return f"newest value {newest} is {soda_result.freshness_in_seconds} s old at {now}"


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _readable_soda(soda_result: Any) -> str | None:
    threshold = getattr(getattr(soda_result, "check", None), "threshold", None)
    if threshold is None:
        return None
    # Written in ODCS names (mustBeGreaterThan 100), as the compiled rules' thresholds are.
    odcs = {soda: ours for ours, soda in _OPERATORS.items()}
    parts = [f"{odcs.get(key, key)} {_number(value)}" for key, value in vars(threshold).items()
             if key != "level" and value is not None]
    return ", ".join(parts) or None


# --- hand-written contract ---------------------------------------------------------------------------


def _run_handwritten(dataset: Dataset, source: Any, identifier: str,
                     timestamp: str | None) -> list[CheckResult]:
    """The checks of ``dataset.soda_contract``, run with its ``dataset:`` pointed at the data."""
    import yaml

    from dativo_provider import safe_yaml

    path = Path(dataset.soda_contract or "")
    try:
        document = safe_yaml.load(path.read_text(encoding="utf-8"))  # bounded: a user's file
    except OSError as exc:
        raise ConfigError(f"dataset {dataset.name!r}: cannot read Soda contract {path}: {exc}") from None
    except yaml.YAMLError as exc:
        return [_contract_error(dataset, path, f"not valid YAML: {exc}")]
    if not isinstance(document, dict):
        return [_contract_error(dataset, path, "a Soda contract is a mapping with 'dataset' and 'columns'")]
    document["dataset"] = identifier
    _name_checks(document)
    found, errors = _verify(source, document, timestamp, f"Soda contract {path}")
    if not found:
        return [_contract_error(dataset, path, "; ".join(errors) or "Soda found no checks")]
    return [_handwritten_result(dataset, c, errors) for c in found if c.outcome.name != "EXCLUDED"]


def _name_checks(document: dict[str, Any]) -> None:
    """Give unnamed checks a name ``<column>__<type>[__<qualifier>]`` (Soda's default names repeat)."""
    entries = [(None, c) for c in document.get("checks") or []]
    for column in document.get("columns") or []:
        if isinstance(column, dict):
            entries.extend((column.get("name"), c) for c in column.get("checks") or [])
    for column_name, check in entries:
        if not (isinstance(check, dict) and len(check) == 1):
            continue
        (check_type, body), = check.items()
        body = dict(body or {}) if isinstance(body, dict) or body is None else body
        if isinstance(body, dict) and not body.get("name"):
            parts = [p for p in (column_name or body.get("column"), check_type, body.get("qualifier")) if p]
            body["name"] = "__".join(str(p) for p in parts)
            check[check_type] = body


def _handwritten_result(dataset: Dataset, soda_result: Any, errors: list[str]) -> CheckResult:
    warned = soda_result.outcome.name == "WARN"
    result = CheckResult(
        name=soda_result.check.name, engine="soda", category="quality",
        severity="warning" if warned else "error", outcome="error", dataset=dataset.name,
        column=soda_result.check.column_name, metric=soda_result.check.type,
        threshold=_readable_soda(soda_result),
    )
    return _fill(result, soda_result, errors)


def _contract_error(dataset: Dataset, path: Path, message: str) -> CheckResult:
    return CheckResult(
        name=f"soda_contract:{path.name}", engine="soda", category="quality", severity="error",
        outcome="error", dataset=dataset.name, message=f"Soda contract {path}: {message}",
    )
