"""Run a contract on data: an Iceberg table at a snapshot or branch, or a Postgres/MySQL table in place.

Iceberg data is streamed into an in-memory DuckDB once; Soda checks it there (one query for all its
rules), GX gets it as a pandas frame only when a rule uses GX (GX on DuckDB is broken), custom callables
get Arrow. Database tables are checked where they live: Soda and GX connect to Postgres, GX to MySQL
(Soda 4 has no MySQL data source, so Soda rules on MySQL run on a DuckDB copy streamed from the server).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.contracts.model import Contract, Dataset, QualityRule
from dativo_provider.exceptions import ConfigError
from dativo_provider.objectstore import local_path
from dativo_provider.progress import ProgressLog
from dativo_provider.quality import rows as row_sql
from dativo_provider.quality.plan import checks_for, dataset_of
from dativo_provider.quality.result import MAX_FAILING_KEYS, CheckResult, QualityReport

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.connections import DatabaseConfig
    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

ROW_ID = "__dativo_row"
#: Every loaded row; :data:`_ROWS` is the view of the rows being checked (all, or all but excluded).
_SOURCE = "__dativo_source"
_ROWS = "__dativo_rows"
#: The view the engines see: the rows without our row ids.
DATA_VIEW = "dataset"


@dataclass(frozen=True)
class IcebergTarget:
    """An Iceberg table at ``snapshot_id``, or the head of ``branch`` (default: main)."""

    catalog: CatalogConfig
    table: str
    snapshot_id: int | None = None
    branch: str | None = None


@dataclass(frozen=True)
class SqlTableTarget:
    """A Postgres (``schema.table``, default schema public) or MySQL (``table`` in the config's database)
    table, checked in place."""

    dialect: Literal["postgres", "mysql"]
    config: DatabaseConfig
    table: str


Target = IcebergTarget | SqlTableTarget


class LoadedRows:
    """Rows in an in-memory DuckDB (or local files it reads): a relation with row ids and the
    :data:`DATA_VIEW` without them.

    Row ids number the rows in the order they were given (for files: each file's first id plus the
    row's position in the file), so a failing row can be found again in its data file.
    """

    def __init__(self, connection: Any, count: int) -> None:
        self.connection = connection
        self.count = count
        connection.execute(f'CREATE VIEW "{_ROWS}" AS SELECT * FROM "{_SOURCE}"')
        connection.execute(f'CREATE VIEW "{DATA_VIEW}" AS SELECT * EXCLUDE ("{ROW_ID}") FROM "{_ROWS}"')

    def exclude(self, row_ids: pa.Array) -> None:
        """Leave these rows out of every later check (e.g. restricted subjects' rows)."""
        import pyarrow as pa

        self.connection.register("dativo_excluded", pa.table({"id": pa.array(row_ids, pa.int64())}))
        self.connection.execute(f'CREATE OR REPLACE VIEW "{_ROWS}" AS SELECT * FROM "{_SOURCE}" '
                                f'WHERE "{ROW_ID}" NOT IN (SELECT id FROM dativo_excluded)')
        self.count = self.connection.execute(f'SELECT count(*) FROM "{_ROWS}"').fetchall()[0][0]

    @classmethod
    def from_batches(cls, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> LoadedRows:
        import duckdb
        import numpy as np
        import pyarrow as pa

        connection = duckdb.connect()
        count = 0
        progress = ProgressLog(log, "contract check: loading rows", unit="rows")

        def numbered() -> Iterable[pa.RecordBatch]:
            nonlocal count
            for batch in batches:
                ids = pa.array(np.arange(count, count + batch.num_rows, dtype=np.int64))
                count += batch.num_rows
                progress.advance(batch.num_rows, nbytes=batch.nbytes)
                yield pa.RecordBatch.from_arrays([*batch.columns, ids], schema=numbered_schema)

        numbered_schema = schema.append(pa.field(ROW_ID, pa.int64(), nullable=False))
        connection.register("incoming", pa.RecordBatchReader.from_batches(numbered_schema, numbered()))
        connection.execute(f'CREATE TABLE "{_SOURCE}" AS SELECT * FROM incoming')
        connection.unregister("incoming")
        return cls(connection, count)

    @classmethod
    def from_parquet(cls, files: list[tuple[str, int]], columns: list[str] | None = None) -> LoadedRows:
        """Local Parquet data files, read by DuckDB itself (in parallel, no Python in the loop).

        The rows stay in the files: a view reads them for each query. The engines' checks are one
        scan (Soda sends all rules as one query), so copying them into DuckDB first would only add a
        pass and the memory to hold it (measured in bench/contract_check.py).

        :param files: (path, id of the file's first row) for each file.
        :param columns: read only these (default: all).
        """
        import duckdb
        import pyarrow as pa

        connection = duckdb.connect()
        connection.register("dativo_files", pa.table({
            "path": [path for path, _ in files], "first_row": pa.array([first for _, first in files], pa.int64()),
        }))
        paths = ", ".join(row_sql.literal(path) for path, _ in files)
        selected = (", ".join(f"data.{row_sql.quote_identifier(c, 'duckdb')}" for c in columns) if columns
                    else "data.* EXCLUDE (filename, file_row_number)")
        connection.execute(
            f'CREATE VIEW "{_SOURCE}" AS SELECT {selected}, '
            f'CAST(f.first_row + data.file_row_number AS BIGINT) AS "{ROW_ID}" '
            f"FROM read_parquet([{paths}], filename = true, file_row_number = true) AS data "
            f"JOIN dativo_files AS f ON data.filename = f.path"
        )
        count = connection.execute(f'SELECT count(*) FROM "{_SOURCE}"').fetchall()[0][0]
        return cls(connection, count)

    def arrow(self, *, row_ids: bool = False) -> pa.Table:
        return self.connection.sql(f'SELECT * FROM "{_ROWS if row_ids else DATA_VIEW}"').to_arrow_table()

    def row_ids(self) -> pa.Array:
        return self.connection.sql(f'SELECT "{ROW_ID}" FROM "{_ROWS}"').to_arrow_table().column(0)

    def close(self) -> None:
        self.connection.close()


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def local_parquet(table: Any, data_files: list[Any], *, current_schema: bool = False) -> list[tuple[str, int]] | None:
    """(local path, first row id) for ``data_files``, when DuckDB can read them as they are.

    That is: every file is on the local disk, has no delete files' rows to hide (our files never
    do), and was written with the table's current schema (``current_schema``, or the table never
    had another) under plain column names (pyiceberg renames other names inside Parquet, and DuckDB
    adds ``filename`` and ``file_row_number``). Otherwise None: read through pyiceberg instead.
    """
    names = [f.name for f in table.schema().fields]
    if not (current_schema or len(table.metadata.schemas) == 1):
        return None
    if not all(_PLAIN_NAME.match(n) for n in names) or {"filename", "file_row_number"} & set(names):
        return None
    files, first = [], 0
    for data_file in data_files:
        path = local_path(data_file.file_path)
        if path is None:
            return None
        files.append((path, first))
        first += data_file.record_count
    return files


def run_contract(contract: Contract | str | Path, target: Target, *, dataset: str | None = None,
                 now: datetime | None = None, rules: list[QualityRule] | None = None,
                 collect_row_ids: bool = False, restrictions: Any = None) -> QualityReport:
    """Run ``contract`` (its dataset ``dataset``) on ``target`` and report every check.

    :param now: the time freshness is measured against (default: now, UTC).
    :param rules: run these instead of all the contract's checks (e.g. only its SLA checks).
    :param collect_row_ids: keep the failing rows' positions (Iceberg targets), for quarantine.
    :param restrictions: a restriction registry (GDPR Art. 18): restricted subjects' rows are left out
        of the checks (Iceberg targets); the report counts them as ``rows_restricted``.
    """
    from dativo_provider.contracts.loader import load_contract

    contract = contract if isinstance(contract, Contract) else load_contract(contract)
    chosen = dataset_of(contract, dataset)
    if isinstance(target, IcebergTarget):
        table, snapshot_id = _iceberg_snapshot(target)
        columns = None if restrictions is not None else _needed_columns(rules, chosen, table)
        loaded = _load_snapshot(table, snapshot_id, columns)
        try:
            restricted = _exclude_restricted(loaded, chosen, restrictions)
            report = check_rows(contract, chosen, loaded, target=_describe(target, snapshot_id), now=now,
                                rules=rules, collect_row_ids=collect_row_ids, snapshot_id=snapshot_id)
            report.rows_restricted = restricted
            return report
        finally:
            loaded.close()
    if restrictions is not None:
        raise ConfigError(f"{target.dialect} table {target.table}: restricted rows can only be left out of checks "
                          "on Iceberg tables")
    return _check_in_place(contract, chosen, target, now=now, rules=rules)


def _exclude_restricted(loaded: LoadedRows, dataset: Dataset, restrictions: Any) -> int:
    """Leave restricted subjects' rows out of the checks; returns how many."""
    ids = restricted_row_ids(loaded, dataset, restrictions)
    if len(ids):
        loaded.exclude(ids)
    return len(ids)


def restricted_row_ids(loaded: LoadedRows, dataset: Dataset, restrictions: Any) -> pa.Array:
    """Row ids of the loaded rows whose subject is under a processing restriction (GDPR Art. 18)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # E-mail columns match restrictions of every kind, so a table with no subject column can hold some.
    if restrictions is None or loaded.count == 0 or not restrictions.applies_to(dataset):
        return pa.array([], pa.int64())
    rows = loaded.arrow(row_ids=True)
    mask = restrictions.restricted_mask(rows.drop_columns([ROW_ID]), dataset)
    return pc.filter(rows.column(ROW_ID), mask).combine_chunks()


def check_rows(contract: Contract, dataset: Dataset, loaded: LoadedRows, *, target: str,
               now: datetime | None = None, rules: list[QualityRule] | None = None,
               collect_row_ids: bool = False, snapshot_id: int | None = None) -> QualityReport:
    """Run the contract's checks on rows already loaded into DuckDB."""
    started = time.monotonic()
    checks = rules if rules is not None else checks_for(contract, dataset)
    keys = key_columns(dataset)
    results: dict[str, CheckResult] = {}
    extra: list[CheckResult] = []
    if _uses(checks, "soda") or dataset.soda_contract:
        from dativo_provider.quality.soda import DuckDbData, run_soda

        for result in run_soda(checks, dataset, DuckDbData(loaded.connection, DATA_VIEW), now=now):
            _collect(results, extra, checks, result)
    if _uses(checks, "great_expectations") or dataset.gx_suite:
        from dativo_provider.quality.gx import run_gx_frame

        frame = loaded.arrow(row_ids=True).to_pandas()
        for result in run_gx_frame(checks, dataset, frame, row_id_column=ROW_ID, key_columns=keys):
            _collect(results, extra, checks, result)
        del frame
    if _uses(checks, "custom"):
        from dativo_provider.quality.custom import run_custom

        rows = loaded.arrow(row_ids=True)
        ids = rows.column(ROW_ID).combine_chunks()
        rows = rows.drop_columns([ROW_ID])
        for rule in checks:
            if rule.engine == "custom":
                results[rule.name] = _with_samples(run_custom(rule, rows, ids), loaded, keys)
    failing = [(rule, results[rule.name]) for rule in checks
               if rule.engine == "soda" and row_sql.is_row_level(rule) and rule.name in results
               and results[rule.name].failing_rows]
    if collect_row_ids:
        _locate(failing, loaded, keys)
    else:
        for rule, result in failing:
            result.failing_keys = _sample(loaded, rule, keys)
    ordered = [results[r.name] for r in checks if r.name in results] + extra
    return QualityReport(
        contract=contract.id, contract_version=contract.version, dataset=dataset.name, target=target,
        rows_checked=loaded.count, checks=ordered, duration_seconds=round(time.monotonic() - started, 3),
        snapshot_id=snapshot_id,
    )


def key_columns(dataset: Dataset) -> tuple[str, ...]:
    """The columns that name a row in samples: the primary key, else the subject identifiers."""
    return dataset.primary_key or tuple(c.name for c in dataset.subject_identifiers)


def _uses(checks: list[QualityRule], engine: str) -> bool:
    return any(rule.engine == engine for rule in checks)


def _collect(results: dict[str, CheckResult], extra: list[CheckResult], checks: list[QualityRule],
             result: CheckResult) -> None:
    if any(rule.name == result.name for rule in checks):
        results[result.name] = result
    else:
        extra.append(result)  # from a hand-written Soda contract or GX suite


def _shown(rule: QualityRule, keys: tuple[str, ...]) -> list[str]:
    """The columns a failing-row sample shows: the row's key and the checked column."""
    return list(dict.fromkeys([*keys, *([rule.column] if rule.column else [])]))


def _columns_sql(columns: Iterable[str]) -> str:
    return ", ".join(row_sql.quote_identifier(c, "duckdb") for c in columns)


def _sample(loaded: LoadedRows, rule: QualityRule, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Up to MAX_FAILING_KEYS failing rows' keys (the scan stops once it has them)."""
    shown = _shown(rule, keys)
    predicate = row_sql.failing_predicate(rule, f'"{_ROWS}"', "duckdb")
    return loaded.connection.sql(f'SELECT {_columns_sql(shown)} FROM "{_ROWS}" WHERE {predicate} '
                                 f"LIMIT {MAX_FAILING_KEYS}").to_arrow_table().to_pylist()


def _locate(failing: list[tuple[QualityRule, CheckResult]], loaded: LoadedRows, keys: tuple[str, ...]) -> None:
    """Find the rows the engine counted as failing, for quarantine: their ids and key samples.

    The rows are acted on only when our predicate finds exactly what the engine counted. All rules
    but duplicates are located in one scan (a flag column per rule); each duplicate rule needs its own
    grouping.
    """
    plain = [(rule, result) for rule, result in failing if rule.metric != "duplicateValues"]
    con = loaded.connection
    if plain:
        columns = list(dict.fromkeys(c for rule, _ in plain for c in _shown(rule, keys)))
        predicates = [row_sql.failing_predicate(rule, f'"{_ROWS}"', "duckdb") for rule, _ in plain]
        flags = ", ".join(f"COALESCE({p}, FALSE) AS __failed_{i}" for i, p in enumerate(predicates))
        hits = con.sql(f'SELECT "{ROW_ID}", {_columns_sql(columns)}, {flags} FROM "{_ROWS}" '
                       f'WHERE {" OR ".join(f"({p})" for p in predicates)}').to_arrow_table()
        for i, (rule, result) in enumerate(plain):
            _settle(rule, result, hits.filter(hits[f"__failed_{i}"]), keys)
    for rule, result in failing:
        if rule.metric == "duplicateValues":
            columns = [rule.column] if rule.column else list(rule.arguments.get("properties") or [])
            predicate = row_sql.failing_predicate(rule, f'"{_ROWS}"', "duckdb")
            shown = list(dict.fromkeys([*_shown(rule, keys), *columns]))
            hits = con.sql(f'SELECT "{ROW_ID}", {_columns_sql(shown)} FROM "{_ROWS}" WHERE {predicate}') \
                .to_arrow_table()
            _settle(rule, result, hits, keys)


def _settle(rule: QualityRule, result: CheckResult, hits: pa.Table, keys: tuple[str, ...]) -> None:
    if not row_sql.engine_count_matches(rule, result.failing_rows, hits.num_rows):
        result.message = (f"{result.message} the rule's predicate finds {hits.num_rows} rows but the engine "
                          f"counted {result.failing_rows}; these rows cannot be quarantined").strip()
        return
    ordered = hits.sort_by(ROW_ID)
    result.failing_keys = ordered.select(_shown(rule, keys)).slice(0, MAX_FAILING_KEYS).to_pylist()
    result.row_ids = ordered.column(ROW_ID).combine_chunks()


def _with_samples(result: CheckResult, loaded: LoadedRows, keys: tuple[str, ...]) -> CheckResult:
    """Key samples for a custom check's failing rows (it returns their ids)."""
    if result.row_ids is not None and len(result.row_ids) and keys:
        import pyarrow as pa

        loaded.connection.register("failing_ids", pa.table({"id": result.row_ids[:MAX_FAILING_KEYS]}))
        cols = ", ".join(row_sql.quote_identifier(c, "duckdb") for c in keys)
        result.failing_keys = loaded.connection.sql(
            f'SELECT {cols} FROM "{_ROWS}" WHERE "{ROW_ID}" IN (SELECT id FROM failing_ids) ORDER BY "{ROW_ID}"'
        ).to_arrow_table().to_pylist()
        loaded.connection.unregister("failing_ids")
    return result


# --- Iceberg -----------------------------------------------------------------------------------------


def _iceberg_snapshot(target: IcebergTarget) -> tuple[Any, int | None]:
    table = target.catalog.load().load_table(target.table)
    if target.snapshot_id is not None and target.branch is not None:
        raise ConfigError(f"check of {target.table}: give a snapshot_id or a branch, not both")
    if target.snapshot_id is not None:
        if table.metadata.snapshot_by_id(target.snapshot_id) is None:
            raise ConfigError(f"{target.table} has no snapshot {target.snapshot_id}")
        return table, target.snapshot_id
    ref = target.branch or "main"
    snapshot = table.metadata.snapshot_by_name(ref)
    if snapshot is None and target.branch is not None:
        refs = ", ".join(sorted(table.metadata.refs)) or "none"
        raise ConfigError(f"{target.table} has no branch or tag {ref!r} (it has: {refs})")
    return table, snapshot.snapshot_id if snapshot else None


def _needed_columns(rules: list[QualityRule] | None, dataset: Dataset, table: Any) -> list[str] | None:
    """The columns a chosen set of library rules reads (e.g. a sensor's SLA checks); None: all."""
    if rules is None or dataset.soda_contract or dataset.gx_suite:
        return None
    columns: list[str] = []
    for rule in rules:
        if rule.kind != "library" or rule.engine != "soda":
            return None
        columns += [rule.column] if rule.column else list(rule.arguments.get("properties") or [])
    present = [f.name for f in table.schema().fields]
    if any(row_sql.is_row_level(rule) for rule in rules):
        columns += key_columns(dataset)  # failing-row samples and quarantine show the row's key
    # A row count reads no column, but the checked view needs one.
    return list(dict.fromkeys(c for c in columns if c in present)) or present[:1]


def _load_snapshot(table: Any, snapshot_id: int | None, columns: list[str] | None = None) -> LoadedRows:
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    schema = schema_to_pyarrow(table.schema() if snapshot_id is None else _schema_at(table, snapshot_id))
    if snapshot_id is None:
        return LoadedRows.from_batches(schema, [])
    scan = table.scan(snapshot_id=snapshot_id, selected_fields=tuple(columns) if columns else ("*",))
    tasks = list(scan.plan_files())
    files = None if any(t.delete_files for t in tasks) else local_parquet(table, [t.file for t in tasks])
    if files:
        return LoadedRows.from_parquet(files, columns)
    reader = scan.to_arrow_batch_reader()
    return LoadedRows.from_batches(reader.schema, reader)


def _schema_at(table: Any, snapshot_id: int) -> Any:
    snapshot = table.metadata.snapshot_by_id(snapshot_id)
    schemas = {s.schema_id: s for s in table.metadata.schemas}
    return schemas.get(snapshot.schema_id, table.schema())


def _describe(target: IcebergTarget, snapshot_id: int | None) -> str:
    at = f"branch {target.branch}" if target.branch else "main"
    return f"iceberg table {target.table} ({at}, snapshot {snapshot_id})"


# --- Databases in place ------------------------------------------------------------------------------


def _check_in_place(contract: Contract, dataset: Dataset, target: SqlTableTarget, *,
                    now: datetime | None, rules: list[QualityRule] | None) -> QualityReport:
    started = time.monotonic()
    checks = rules if rules is not None else checks_for(contract, dataset)
    schema, table = _split(target)
    keys = key_columns(dataset)
    results: dict[str, CheckResult] = {}
    extra: list[CheckResult] = []
    copy: LoadedRows | None = None

    def local_copy() -> LoadedRows:
        nonlocal copy
        if copy is None:
            copy = _copy_table(target)
        return copy

    try:
        if _uses(checks, "soda") or dataset.soda_contract:
            from dativo_provider.quality.soda import DuckDbData, PostgresData, run_soda

            data: Any = (PostgresData(target.config, schema or "public", table) if target.dialect == "postgres"
                         else DuckDbData(local_copy().connection, DATA_VIEW))
            for result in run_soda(checks, dataset, data, now=now):
                _collect(results, extra, checks, result)
        if _uses(checks, "great_expectations") or dataset.gx_suite:
            from dativo_provider.quality.gx import run_gx_sql, sqlalchemy_url

            url = sqlalchemy_url(target.dialect, target.config)
            for result in run_gx_sql(checks, dataset, url, table, schema=schema, key_columns=keys):
                _collect(results, extra, checks, result)
        if _uses(checks, "custom"):
            from dativo_provider.quality.custom import run_custom

            rows = local_copy().arrow()
            for rule in checks:
                if rule.engine == "custom":
                    results[rule.name] = run_custom(rule, rows, None)
        with _connect(target) as connection:
            relation = _relation(target)
            texts = _text_columns(connection, target) if target.dialect == "mysql" else ()
            for rule in checks:
                found = results.get(rule.name)
                if found is not None and found.failing_rows and rule.engine == "soda" \
                        and row_sql.is_row_level(rule):
                    _sample_in_place(connection, target.dialect, relation, rule, found, keys, texts)
            count = _scalar(connection, f"SELECT COUNT(*) FROM {relation}")
    finally:
        if copy is not None:
            copy.close()
    ordered = [results[r.name] for r in checks if r.name in results] + extra
    return QualityReport(
        contract=contract.id, contract_version=contract.version, dataset=dataset.name,
        target=f"{target.dialect} table {target.table} (in place)", rows_checked=count, checks=ordered,
        duration_seconds=round(time.monotonic() - started, 3),
    )


def _split(target: SqlTableTarget) -> tuple[str | None, str]:
    schema, _, table = target.table.rpartition(".")
    return schema or None, table


def _relation(target: SqlTableTarget) -> str:
    schema, table = _split(target)
    if target.dialect == "postgres":
        schema = schema or "public"
    parts = [p for p in (schema, table) if p]
    return ".".join(row_sql.quote_identifier(p, target.dialect) for p in parts)


def _connect(target: SqlTableTarget) -> Any:
    config = target.config
    if target.dialect == "postgres":
        import psycopg

        return psycopg.connect(host=config.host, port=config.port or 5432, user=config.user,
                               password=config.password, dbname=config.database, autocommit=True)
    import pymysql

    return pymysql.connect(host=config.host, port=config.port or 3306, user=config.user,
                           password=config.password or "", database=config.database, autocommit=True)


def _scalar(connection: Any, sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()[0][0]


def _text_columns(connection: Any, target: SqlTableTarget) -> tuple[str, ...]:
    """MySQL/MariaDB: the table's text columns (compared exactly, not by their collation)."""
    schema, table = _split(target)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                       "COALESCE(%s, DATABASE()) AND TABLE_NAME = %s AND DATA_TYPE IN ('char', 'varchar', "
                       "'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set')", (schema, table))
        return tuple(row[0] for row in cursor.fetchall())


def _sample_in_place(connection: Any, dialect: str, relation: str, rule: QualityRule, result: CheckResult,
                     keys: tuple[str, ...], text_columns: tuple[str, ...] = ()) -> None:
    """Failing-row samples, selected in the table with the rule's one definition (exact comparisons)."""
    predicate = row_sql.failing_predicate(rule, relation, dialect,  # type: ignore[arg-type]
                                          text_columns=text_columns)
    shown = list(dict.fromkeys([*keys, *([rule.column] if rule.column else [])]))
    cols = ", ".join(row_sql.quote_identifier(c, dialect) for c in shown)  # type: ignore[arg-type]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {cols} FROM {relation} WHERE {predicate} LIMIT {MAX_FAILING_KEYS}")
        result.failing_keys = [dict(zip(shown, row)) for row in cursor.fetchall()]


def _copy_table(target: SqlTableTarget) -> LoadedRows:
    """Stream a database table into DuckDB (for checks the engine cannot run in place)."""
    from dativo_provider.sources import ReadBounds, build_source

    source = build_source({"type": target.dialect, "table": target.table}, target.config)
    stream = source.open(None, ReadBounds())
    with stream:
        return LoadedRows.from_batches(stream.schema, iter(stream))
