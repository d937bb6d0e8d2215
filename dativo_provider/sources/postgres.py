"""PostgreSQL source: streams a table or query through ADBC's binary COPY, batch by batch.

Type mapping (anything not listed raises :class:`UnsupportedTypeError` naming the column and its
type; cast it in a ``query``, e.g. ``SELECT period::text``):

====================================  =====================  ========================================
PostgreSQL                            Arrow                  notes
====================================  =====================  ========================================
smallint / integer / bigint           int16 / int32 / int64
numeric(p, s)                         decimal128(p, s)       s < 0: decimal128(p - s, 0); s > p:
                                                             decimal128(s, s); p > 38: unsupported
numeric (no precision)                decimal128(38, 18)     a value with more than 20 integer or 18
                                                             fraction digits fails naming the column
real / double precision               float32 / float64
boolean                               bool
text, varchar, char(n), "char", name  string                 char(n) keeps its padding
enum types (table reads)              string                 cast to text on the server
domains (table reads)                 the base type's        cast to the base type on the server
date                                  date32                 ±infinity fails naming the column
time                                  time64[us]             24:00:00 fails naming the column
timestamp                             timestamp[us]          ±infinity fails naming the column
timestamptz                           timestamp[us, UTC]     ±infinity fails naming the column
uuid                                  pa.uuid()              pyiceberg maps arrow.uuid to Iceberg uuid
json, jsonb                           string                 the JSON text (jsonb as normalised)
bytea                                 binary
1-D arrays of the types above         list<T>                multi-dimensional values fail
interval, timetz, money, oid, inet,   unsupported            no exact Iceberg type: cast in a query
xml, geometric, range, ...
====================================  =====================  ========================================

Nullability: in a table read, a column declared NOT NULL (every primary-key column is) is a
non-nullable Arrow field, so the Iceberg column is created required (write option
``required_columns: false`` opts out). A query's columns are all nullable: the server does not say
which query results can be null.

NaN and ±Infinity in ``numeric`` columns fail naming the column (Iceberg decimals have neither).
ADBC would silently flatten multi-dimensional arrays and wrap ±infinity timestamps into garbage, so
both are checked: arrays on the server, timestamps and dates on each batch (one vectorised min).

Cursor bounds are bound as parameters into transaction-local settings (``set_config``) and cast
on the server to the cursor's type: ADBC buffers the whole result of a *parameterised* query, while
a parameterless one streams through COPY, and this keeps both properties.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dativo_provider.connections import DatabaseConfig
from dativo_provider.exceptions import (
    ConfigError,
    DativoError,
    SourceError,
    TransientError,
    UnsupportedTypeError,
    redact,
)
from dativo_provider.optional import require
from dativo_provider.sources.base import ReadBounds, committed_watermark
from dativo_provider.sources.sql_common import (
    BatchReader,
    ColumnExtent,
    CursorWindow,
    SqlSource,
    SqlStream,
    WatermarkTracker,
    column_value,
    cursor_window,
    key_range_bounds,
    parse_spec,
    quote_identifier,
    quote_literal,
    resolve_columns,
)

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_PORT = 5432
#: Rows per batch unless the spec says otherwise; about 8 MB for ten typical columns. Batch sizes
#: from 8k to 1M rows read equally fast (1M rows x 10 columns, local server), so memory decides.
DEFAULT_BATCH_ROWS = 65_536
EXTRA = "postgres"
#: Numeric without a declared precision: 20 integer and 18 fraction digits.
UNCONSTRAINED_NUMERIC = (38, 18)
#: ADBC's batch size hint is in bytes; ``batch_rows`` is turned into one within these limits.
MIN_HINT_BYTES, MAX_HINT_BYTES = 256 << 10, 64 << 20

_TYPE = b"POSTGRESQL:type"
_TYPMOD = b"POSTGRESQL:typmod"
#: PostgreSQL's first day (4714-11-24 BC) in days since 1970. ADBC shifts PostgreSQL's 2000 epoch
#: to 1970 without overflow checks: ±infinity and years past 294246 wrap to values below this.
_FIRST_DAY = -2_440_588
_FIRST_MICROS = _FIRST_DAY * 86_400_000_000
_DAY_MICROS = 86_400_000_000
_STRINGS = ("text", "varchar", "bpchar", "char", "name")
_TRANSIENT_CONNECT = ("too many clients", "starting up", "shutting down", "in recovery")
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "53", "57P")
#: libpq options with a fixed set of values, checked before connecting so the error lists them.
_OPTION_VALUES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
}
_INTEGER_OPTIONS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count")
#: libpq's own words for an option it refuses before it reaches the server: fixing it is the only cure.
_BAD_OPTION = re.compile(r"invalid (connection option|integer value|\w+ value)")


def from_spec(spec: Mapping[str, Any], connection: DatabaseConfig) -> PostgresSource:
    """Build a Postgres source from its spec (see :mod:`dativo_provider.sources.sql_common`).

    :param spec: ``{"type": "postgres", "table": "schema.table" | "query": "...", ...}``.
    :param connection: the server to read from.
    """
    return PostgresSource(parse_spec(spec, "postgres", DEFAULT_BATCH_ROWS), connection)


class PostgresSource(SqlSource):
    """Reads one table (default schema ``public``) or one query."""

    scheme = "postgres"
    default_port = DEFAULT_PORT

    @property
    def schema_name(self) -> str | None:
        if self.spec.query is not None:
            return None
        return self.spec.schema or "public"

    def lineage_parts(self) -> tuple[str | None, ...]:
        return (self.config.database, self.schema_name, self.spec.table)

    @property
    def relation(self) -> str:
        """The quoted ``"schema"."table"``."""
        return f"{_q(self.schema_name or '')}.{_q(self.spec.table or '')}"

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SqlStream:
        session = _Session.connect(self.config)
        try:
            return self._open(session, state, bounds)
        except BaseException:
            session.close(exhausted=False)
            raise

    def _open(self, session: _Session, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SqlStream:
        columns, available = self._describe(session)
        window, tracker = self._window(columns, state, bounds)
        key = self._key_range(session, available)
        sql = self._select(columns, window, key)
        session.start(window, _hint_bytes(columns, self.spec.batch_rows), key)
        reader = _PostgresReader(session, columns, sql)
        details = {"identity": self.identity, "sql": sql}
        return SqlStream(reader, self.spec.batch_rows, tracker, details)

    def extent(self, column: str, state: Mapping[str, Any] | None, bounds: ReadBounds) -> ColumnExtent:
        session = _Session.connect(self.config)
        try:
            columns, available = self._describe(session)
            target = self._named_column(session, column, available, "split")
            window, _ = self._window(columns, state, bounds)
            key = self._key_range(session, available)
            sql = f"SELECT min({_q(column)}), max({_q(column)}) FROM {self.from_clause}"
            sql += self._where(columns, window, key)
            session.start(window, MIN_HINT_BYTES, key)
            low, high = session.query(sql, (), f"finding the range of column {column!r}")[0]
        finally:
            session.close(exhausted=True)
        return ColumnExtent(column, target.arrow_type, column_value(low, target.arrow_type),
                            column_value(high, target.arrow_type))

    def primary_key(self) -> list[str]:
        if self.spec.query is not None:
            return []
        session = _Session.connect(self.config)
        try:
            rows = session.query(_PRIMARY_KEY_SQL, (self.relation,), f"looking up the primary key of {self._what()}")
        finally:
            session.close(exhausted=True)
        return [row[0] for row in rows]

    def _window(self, columns: list[_Column], state: Mapping[str, Any] | None,
                bounds: ReadBounds) -> tuple[CursorWindow | None, WatermarkTracker | None]:
        if self.spec.cursor is None:
            return None, None
        cursor_type = next(c.arrow_type for c in columns if c.name == self.spec.cursor)
        where = f"{self.spec.kind} source"
        window = cursor_window(self.spec.cursor, cursor_type, state, bounds, self.spec.lookback, where)
        previous = committed_watermark(state, self.spec.cursor, where)
        return window, WatermarkTracker(self.spec.cursor, cursor_type, previous)

    def _key_range(self, session: _Session, available: list[str]) -> _KeyBounds | None:
        key_range = self.spec.key_range
        if key_range is None:
            return None
        column = self._named_column(session, key_range.column, available, "'key_range'")
        lower, upper = key_range_bounds(key_range, column.arrow_type, f"{self.spec.kind} source")
        return _KeyBounds(column, lower, upper)

    def _named_column(self, session: _Session, name: str, available: list[str], purpose: str) -> _Column:
        """A column of the table or query that need not be among those read (a split key)."""
        if name not in available:
            raise SourceError(f"{purpose} column {name!r} not found in {self._what()} on {session.where}; "
                              f"it has {available}")
        (described,) = session.describe(f"SELECT {_q(name)} FROM {self.from_clause}", self._what())
        return _column(described, _q(name), -1)

    @property
    def from_clause(self) -> str:
        """What the SELECT reads: the quoted relation, or the query as a subquery."""
        return self.relation if self.spec.query is None else f"({self.spec.query}) AS q"

    def _what(self) -> str:
        return "the query" if self.spec.query is not None else f"table {self._table_name()}"

    def _describe(self, session: _Session) -> tuple[list[_Column], list[str]]:
        """The columns to read with their Arrow types, and every column the table or query has; fails
        on missing names and unsupported types."""
        what = self._what()
        if self.spec.query is not None:
            catalog = _Catalog([f.name for f in session.describe(f"SELECT * FROM {self.from_clause}", what)])
        else:
            catalog = session.table_columns(self.relation, self._table_name())
        available, casts = catalog.names, catalog.casts
        where = f"{what} on {session.where}"
        _refuse_duplicates(available, where)
        values = {name: _cast(name, casts.get(name)) for name in resolve_columns(self.spec, available, where)}
        projection = ", ".join(_aliased(value, name) for name, value in values.items())
        fields = session.describe(f"SELECT {projection} FROM {self.from_clause}", what)
        return _plan(fields, list(values.values()), catalog), available

    def _select(self, columns: list[_Column], window: CursorWindow | None, key: _KeyBounds | None) -> str:
        sql = f"SELECT {', '.join(c.select_expr for c in columns)} FROM {self.from_clause}"
        return sql + self._where(columns, window, key)

    def _where(self, columns: list[_Column], window: CursorWindow | None, key: _KeyBounds | None) -> str:
        clauses = []
        if window is not None and not window.is_open:
            cursor = next(c for c in columns if c.name == self.spec.cursor)
            clauses.append(_window_predicate(cursor, window))
        if key is not None and key.predicate:
            clauses.append(key.predicate)
        return f" WHERE {' AND '.join(clauses)}" if clauses else ""

    def _table_name(self) -> str:
        return f"{self.config.database}.{self.schema_name}.{self.spec.table}"


@dataclass(frozen=True)
class _KeyBounds:
    """A key range resolved against its column: the bounds as text the server casts to its type."""

    column: _Column
    lower: str | None
    upper: str | None

    @property
    def predicate(self) -> str:
        """``key >= lower AND key < upper``, reading the bound settings (see :func:`_window_predicate`);
        the range without a lower bound also takes the rows whose key is null."""
        column = _q(self.column.name)
        cast_type = "pg_catalog." + _q(self.column.pg_type)
        clauses = []
        if self.lower is not None:
            clauses.append(f"{column} >= (SELECT CAST(pg_catalog.current_setting('dativo.key_lower') AS {cast_type}))")
        if self.upper is not None:
            below = f"{column} < (SELECT CAST(pg_catalog.current_setting('dativo.key_upper') AS {cast_type}))"
            clauses.append(below if self.lower is not None else f"({below} OR {column} IS NULL)")
        return " AND ".join(clauses)

    def settings(self) -> dict[str, str]:
        bounds = {"dativo.key_lower": self.lower, "dativo.key_upper": self.upper}
        return {name: value for name, value in bounds.items() if value is not None}


def _q(name: str) -> str:
    return quote_identifier(name, '"')


def _aliased(value: str, name: str) -> str:
    """``value AS "name"``, or just the quoted name when the value is the column itself."""
    quoted = _q(name)
    return quoted if value == quoted else f"{value} AS {quoted}"


# --- columns and types --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """One column to read: its name, server type, Arrow type, SELECT expression, converter and whether
    it may hold nulls."""

    name: str
    pg_type: str
    arrow_type: pa.DataType
    select_expr: str
    convert: Callable[[pa.Array], pa.Array]
    nullable: bool = True


@dataclass(frozen=True)
class _Catalog:
    """What the system catalog says about a table's columns (a query has names only).

    :param names: the columns, in order.
    :param casts: server-side casts by column (enums to text, domains to their base type).
    :param typmods: type modifiers by column, used where ADBC reports none.
    :param not_null: the columns declared NOT NULL (primary-key columns included).
    """

    names: list[str]
    casts: Mapping[str, str] = dataclass_field(default_factory=dict)
    typmods: Mapping[str, int] = dataclass_field(default_factory=dict)
    not_null: frozenset[str] = frozenset()


def _cast(name: str, cast_to: str | None) -> str:
    """The value expression of a column: itself, or cast (enums to text, domains to their base)."""
    quoted = _q(name)
    # cast_to is format_type() output: the server's own, properly quoted, type name.
    return quoted if cast_to is None else f"CAST({quoted} AS {cast_to})"


def _refuse_duplicates(names: list[str], where: str) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise SourceError(
            f"{where} returns column(s) {sorted(seen)} more than once; give them distinct aliases"
        )


def _plan(fields: pa.Schema, values: list[str], catalog: _Catalog) -> list[_Column]:
    """Map every described field, collecting all unsupported columns into one error.

    :param fields: the described projection.
    :param values: each column's value expression, in the same order.
    :param catalog: the catalog's facts about the columns (typmods, NOT NULL).
    """
    columns, unsupported = [], []
    for described, expr in zip(fields, values):
        try:
            column = _column(described, expr, catalog.typmods.get(described.name, -1))
            columns.append(replace(column, nullable=described.name not in catalog.not_null))
        except UnsupportedTypeError as exc:
            unsupported.append(str(exc))
    if unsupported:
        raise UnsupportedTypeError(
            "; ".join(unsupported) + ". Cast these columns in a 'query' (e.g. SELECT col::text) or leave "
            "them out of 'columns'"
        )
    return columns


def _column(field: pa.Field, value: str, catalog_typmod: int) -> _Column:
    pg_type = _pg_type(field)
    arrow_type, convert = _mapping(field, pg_type, catalog_typmod)
    if pg_type.startswith("_"):
        value = _flat_array_guard(field.name, pg_type, value)
    if pg_type == "numeric":
        # ADBC renders binary numerics as text itself, slowly; reading the server's text output is
        # about twice as cheap, and the converter parses it into the same exact decimal.
        value = f"CAST({value} AS pg_catalog.text)"
    return _Column(field.name, pg_type, arrow_type, _aliased(value, field.name), convert)


def _pg_type(field: pa.Field) -> str:
    return (field.metadata or {}).get(_TYPE, b"unknown").decode()


def _mapping(field: pa.Field, pg_type: str, catalog_typmod: int) -> tuple[pa.DataType, Callable]:
    """The Arrow type of one field and the function that converts ADBC's array to it."""
    pa = require("pyarrow", EXTRA)
    name = field.name
    fixed = {
        "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float4": pa.float32(),
        "float8": pa.float64(), "bool": pa.bool_(), "bytea": pa.binary(), "uuid": pa.uuid(),
        **{s: pa.string() for s in _STRINGS},
    }
    if pg_type in fixed:
        return fixed[pg_type], _unchanged
    if pg_type in ("json", "jsonb"):
        return pa.string(), _json_text
    if pg_type == "numeric":
        typmod = int((field.metadata or {}).get(_TYPMOD, catalog_typmod))
        target = _numeric_type(name, typmod)
        return target, _numeric_converter(name, target)
    if pg_type in _CHECKED:
        target, check = _CHECKED[pg_type]
        return target(pa), _range_checked(name, check)
    if pg_type.startswith("_") and pa.types.is_list(field.type):
        return _list_mapping(field, catalog_typmod)
    raise UnsupportedTypeError(f"column {name!r} has type {pg_type}")


def _list_mapping(field: pa.Field, catalog_typmod: int) -> tuple[pa.DataType, Callable]:
    pa = require("pyarrow", EXTRA)
    element = field.type.value_field
    element_type, convert_element = _mapping(element.with_name(field.name), _pg_type(element), catalog_typmod)
    if pa.types.is_list(element_type):
        raise UnsupportedTypeError(f"column {field.name!r} has type {_pg_type(field)}")
    target = pa.list_(element_type)

    def convert(array: Any) -> Any:  # pa.Array to pa.Array (``pa`` is the local module here)
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, convert_element(array.values), type=target, mask=mask)

    return target, convert


def _numeric_type(name: str, typmod: int) -> pa.DataType:
    """decimal128 for a numeric typmod: ``((precision << 16) | (scale & 0x7ff)) + 4``, or -1."""
    pa = require("pyarrow", EXTRA)
    if typmod < 0:
        return pa.decimal128(*UNCONSTRAINED_NUMERIC)
    precision = ((typmod - 4) >> 16) & 0xFFFF
    scale = (((typmod - 4) & 0x7FF) ^ 1024) - 1024  # an 11-bit signed scale since PostgreSQL 15
    if scale < 0:
        precision, scale = precision - scale, 0
    precision = max(precision, scale)
    if precision > 38:
        raise UnsupportedTypeError(
            f"column {name!r} has type numeric({precision}, {scale}): Iceberg decimals hold 38 digits"
        )
    return pa.decimal128(precision, scale)


def _unchanged(array: pa.Array) -> pa.Array:
    return array


def _json_text(array: pa.Array) -> pa.Array:
    return array.storage


def _numeric_converter(name: str, target: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    pa = require("pyarrow", EXTRA)

    def convert(array: Any) -> Any:  # pa.Array to pa.Array (``pa`` is the local module here)
        text = array.storage if isinstance(array, pa.ExtensionArray) else array
        try:
            return text.cast(target)
        except pa.ArrowInvalid as exc:
            raise SourceError(
                f"column {name!r} holds a numeric value that does not fit {target} exactly "
                f"(or NaN/Infinity): {exc}. Cast it in a 'query' to a numeric(p, s) that fits"
            ) from None

    return convert


def _range_checked(name: str, check: Callable[[pa.Array], str | None]) -> Callable[[pa.Array], pa.Array]:
    def convert(array: pa.Array) -> pa.Array:
        problem = check(array) if len(array) - array.null_count else None
        if problem:
            raise SourceError(f"column {name!r} {problem}; filter or cast it in a 'query'")
        return array

    return convert


def _min_max(array: pa.Array, storage: pa.DataType) -> tuple[int, int]:
    pc = require("pyarrow.compute", EXTRA)
    bounds = pc.min_max(array.view(storage))
    return bounds["min"].as_py(), bounds["max"].as_py()


def _timestamp_problem(array: pa.Array) -> str | None:
    pa = require("pyarrow", EXTRA)
    if _min_max(array, pa.int64())[0] < _FIRST_MICROS:
        return "holds a timestamp Arrow cannot represent ('infinity', '-infinity' or after year 294246)"
    return None


def _date_problem(array: pa.Array) -> str | None:
    pa = require("pyarrow", EXTRA)
    if _min_max(array, pa.int32())[0] < _FIRST_DAY:
        return "holds the date 'infinity' or '-infinity'"
    return None


def _time_problem(array: pa.Array) -> str | None:
    pa = require("pyarrow", EXTRA)
    if _min_max(array, pa.int64())[1] >= _DAY_MICROS:
        return "holds the time 24:00:00, which Arrow and Iceberg times cannot represent"
    return None


_CHECKED: dict[str, tuple[Callable[[Any], pa.DataType], Callable[[pa.Array], str | None]]] = {
    "timestamp": (lambda pa: pa.timestamp("us"), _timestamp_problem),
    "timestamptz": (lambda pa: pa.timestamp("us", tz="UTC"), _timestamp_problem),
    "date": (lambda pa: pa.date32(), _date_problem),
    "time": (lambda pa: pa.time64("us"), _time_problem),
}


def _flat_array_guard(name: str, pg_type: str, value: str) -> str:
    """Make the server fail on a multi-dimensional value, which ADBC would silently flatten.

    The failing branch casts a message to the array type, so the error reads "malformed array
    literal: <message>". The message depends on the row, which keeps the planner from folding it.
    """
    message = quote_literal(
        f"column {name} holds a multi-dimensional array (only 1-D arrays are supported): ndims="
    )
    ndims = f"pg_catalog.array_ndims({value})"
    array_type = "pg_catalog." + _q(pg_type)
    return (
        f"CASE WHEN {ndims} > 1 THEN CAST({message} || {ndims}::text AS {array_type}) "
        f"ELSE {value} END"
    )


def _window_predicate(cursor: _Column, window: CursorWindow) -> str:
    """``cursor > lower [- lookback] AND cursor <= upper``, reading the bound settings.

    Each bound is a scalar subquery: the server evaluates it once (an InitPlan) and can use it in an
    index condition, where a bare ``current_setting()`` would be re-evaluated for every row.
    """
    column = _q(cursor.name)
    cast_type = "pg_catalog." + _q(cursor.pg_type)
    clauses = []
    if window.lower is not None:
        lower = f"CAST(pg_catalog.current_setting('dativo.lower') AS {cast_type})"
        if window.lookback is not None:
            unit = "interval" if _is_time(cursor.arrow_type) else "numeric"
            lower += f" - CAST(pg_catalog.current_setting('dativo.lookback') AS pg_catalog.{unit})"
        clauses.append(f"{column} > (SELECT {lower})")
    if window.upper is not None:
        upper = f"CAST(pg_catalog.current_setting('dativo.upper') AS {cast_type})"
        clauses.append(f"{column} <= (SELECT {upper})")
    return " AND ".join(clauses)


def _is_time(arrow_type: pa.DataType) -> bool:
    pa = require("pyarrow", EXTRA)
    return pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)


def _hint_bytes(columns: list[_Column], batch_rows: int) -> int:
    """ADBC's batch size hint for about ``batch_rows`` rows (its batches are cut by bytes)."""
    width = sum(_width(c.arrow_type) for c in columns) or 1
    return max(MIN_HINT_BYTES, min(MAX_HINT_BYTES, width * batch_rows))


def _width(arrow_type: pa.DataType) -> int:
    try:
        return arrow_type.bit_width // 8 + 1
    except ValueError:  # variable width: assume a short string
        return 40


# --- the connection -----------------------------------------------------------------------------


class _Session:
    """One ADBC connection in one read-only transaction, with redacted error translation."""

    def __init__(self, connection: Any, config: DatabaseConfig, secrets: tuple[str | None, ...]) -> None:
        self.connection = connection
        self.cursor = connection.cursor()
        self.config = config
        self.secrets = secrets
        self.where = f"postgres://{config.host}:{config.port or DEFAULT_PORT}/{config.database}"
        self.reader: pa.RecordBatchReader | None = None

    @classmethod
    def connect(cls, config: DatabaseConfig) -> _Session:
        dbapi = require("adbc_driver_postgresql.dbapi", EXTRA)
        conninfo, secrets = _conninfo(config)
        try:
            return cls(dbapi.connect(conninfo), config, secrets)
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise _connect_error(config, redact(str(exc), secrets)) from None

    def table_columns(self, relation: str, shown: str) -> _Catalog:
        """Names, server-side casts (enums, domains), typmods and NOT NULL of a table's columns, in order."""
        rows = self.query(_CATALOG_SQL, (relation,), f"looking up table {shown}")
        if not rows:
            raise SourceError(
                f"table {shown} not found on {self.where} (or not visible to user {self.config.user!r})"
            )
        rows = [r for r in rows if r[0] is not None]
        return _Catalog(names=[r[0] for r in rows], casts={r[0]: r[2] for r in rows if r[2]},
                        typmods={r[0]: r[1] for r in rows}, not_null=frozenset(r[0] for r in rows if r[3]))

    def describe(self, sql: str, where: str) -> pa.Schema:
        """The result schema of ``sql`` (prepared, not run)."""
        try:
            return self.cursor.adbc_execute_schema(sql)
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise self.translate(exc, f"describing {where}") from None

    def query(self, sql: str, parameters: tuple[Any, ...], doing: str) -> list[tuple[Any, ...]]:
        try:
            self.cursor.execute(sql, parameters=parameters or None)
            return self.cursor.fetchall()
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise self.translate(exc, doing) from None

    def start(self, window: CursorWindow | None, hint_bytes: int, key: _KeyBounds | None = None) -> None:
        """Pin the session to UTC and bind the window and key range bounds into transaction-local settings."""
        settings = {"TimeZone": "UTC", "standard_conforming_strings": "on", **_window_settings(window),
                    **(key.settings() if key else {})}
        names = list(settings)
        calls = ", ".join(
            f"pg_catalog.set_config({quote_literal(name)}, ${i + 1}, true)" for i, name in enumerate(names)
        )
        self.query(f"SELECT {calls}", tuple(settings[n] for n in names), "starting the read")
        self.cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(hint_bytes)})

    def translate(self, exc: Exception, doing: str) -> DativoError:
        message = f"{self.where}: {doing} failed: {redact(str(exc), self.secrets)}"
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return TransientError(message)
        return SourceError(message)

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """Start the COPY; batches arrive as the reader is consumed."""
        try:
            self.cursor.execute(sql)
            self.reader = self.cursor.fetch_record_batch()
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise self.translate(exc, "starting the read") from None
        return self.reader

    def close(self, exhausted: bool) -> None:
        """Cancel an unfinished COPY (closing the reader would drain it), then release everything."""
        # Cleanup must not hide the error that brought us here, so failures to close are ignored.
        if not exhausted:
            with suppress(Exception):
                self.connection.adbc_cancel()
        closers = (self.reader.close if self.reader else None, self.cursor.close, self.connection.rollback,
                   self.connection.close)
        for close in filter(None, closers):
            with suppress(Exception):
                close()


def _window_settings(window: CursorWindow | None) -> dict[str, str]:
    """The settings :func:`_window_predicate` reads, as text for the server to cast."""
    if window is None:
        return {}
    settings = {}
    if window.lower is not None:
        settings["dativo.lower"] = window.lower
        if isinstance(window.lookback, timedelta):
            settings["dativo.lookback"] = f"{window.lookback // timedelta(microseconds=1)} microseconds"
        elif window.lookback is not None:
            settings["dativo.lookback"] = format(window.lookback, "f")
    if window.upper is not None:
        settings["dativo.upper"] = window.upper
    return settings


_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_catalog.pg_index AS i
CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisprimary
ORDER BY k.position
"""

_CATALOG_SQL = """
SELECT a.attname, a.atttypmod,
       CASE t.typtype
           WHEN 'e' THEN 'text'
           WHEN 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod)
       END,
       a.attnotnull
FROM (SELECT pg_catalog.to_regclass($1) AS oid) AS r
LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
WHERE r.oid IS NOT NULL
ORDER BY a.attnum
"""


def _conninfo(config: DatabaseConfig) -> tuple[str, tuple[str | None, ...]]:
    """A libpq ``key='value'`` string, and the secrets to redact (the password, raw and escaped)."""
    bad = [key for key in config.options if not key.isidentifier()]
    if bad:
        raise ConfigError(f"postgres connection: option name(s) {bad} are not libpq keywords")
    for key, value in config.options.items():
        _check_option(key, str(value))
    values = {
        "host": config.host, "port": str(config.port or DEFAULT_PORT), "dbname": config.database,
        "user": config.user, "password": config.password, "application_name": "dativo", **config.options,
    }
    text = " ".join(f"{key}={_conninfo_value(str(v))}" for key, v in values.items() if v is not None)
    password = config.password
    return text, (*config.secrets, _conninfo_value(password)[1:-1] if password else None)


def _check_option(key: str, value: str) -> None:
    valid = _OPTION_VALUES.get(key)
    if valid is not None and value not in valid:
        raise ConfigError(
            f"postgres connection option {key!r} is {value!r}; valid values: {', '.join(valid)} "
            "(set it in the connection's extra)"
        )
    if key in _INTEGER_OPTIONS and not value.strip().lstrip("-").isdigit():
        raise ConfigError(
            f"postgres connection option {key!r} is {value!r}; it must be a whole number "
            "(set it in the connection's extra)"
        )


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _connect_error(config: DatabaseConfig, message: str) -> DativoError:
    where = f"postgres://{config.host}:{config.port or DEFAULT_PORT}/{config.database}"
    text = f"cannot connect to {where} as user {config.user!r}: {message}"
    if _BAD_OPTION.search(message):
        return ConfigError(f"{text}; fix the option in the connection's extra")
    if "SSL was required" in message:
        return SourceError(f"{text}; enable SSL on the server or set sslmode 'prefer' in the connection's extra")
    # libpq reports refusals by the server as FATAL; anything else is the network or a server that
    # is not up yet, which a retry may fix.
    rejected = "FATAL" in message and not any(marker in message for marker in _TRANSIENT_CONNECT)
    return SourceError(text) if rejected else TransientError(text)


# --- the stream ---------------------------------------------------------------------------------


class _PostgresReader(BatchReader):
    """Runs the SELECT through COPY and converts ADBC's batches to the planned schema."""

    def __init__(self, session: _Session, columns: list[_Column], sql: str) -> None:
        pa = require("pyarrow", EXTRA)
        self.schema = pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in columns])
        self._session = session
        self._columns = columns
        self._stream = session.stream(sql)

    def batches(self) -> Iterator[pa.RecordBatch]:
        pa = require("pyarrow", EXTRA)
        for batch in self._stream:
            arrays = [c.convert(batch.column(i)) for i, c in enumerate(self._columns)]
            yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def close(self, exhausted: bool) -> None:
        self._session.close(exhausted)

    def translate(self, exc: Exception) -> DativoError:
        return self._session.translate(exc, "reading")
