"""MySQL / MariaDB source: streams a table or query through pymysql's unbuffered ``SSCursor``.

Rows arrive as text (pymysql's value decoders are switched off) and each chunk of ``batch_rows``
rows becomes one Arrow batch through vectorised casts, which is both faster than building Python
datetimes and Decimals and exact: the text is what the server sent.

Type mapping (from the result metadata, so tables and queries map the same way; anything not
listed raises :class:`UnsupportedTypeError` naming the column and its type):

=============================  =========================  ==============================================
MySQL / MariaDB                Arrow                      notes
=============================  =========================  ==============================================
tinyint(1) / boolean           bool                       a value other than 0/1 fails naming the column
tinyint / unsigned             int8 / int16
smallint / unsigned            int16 / int32
mediumint / unsigned           int32 / int32
int / unsigned                 int32 / int64
bigint / unsigned              int64 / decimal128(20, 0)  Iceberg has no unsigned 64-bit integer
decimal(p, s)                  decimal128(p, s)           p > 38: unsupported
float                          float32                    read as CAST(x AS DOUBLE): the text protocol
                                                          prints FLOAT with 6 digits only
double                         float64
datetime(n)                    timestamp[us]
timestamp(n)                   timestamp[us, UTC]         the session time zone is '+00:00'
date                           date32
time(n)                        time64[us]                 a TIME is a duration: negative or ≥ 24 h fails
year                           int16
bit(n ≤ 63) / bit(64)          int64 / decimal128(20, 0)  the bits as an unsigned number
json                           string                     the JSON text
enum, set, char, varchar, text string
binary, varbinary, blob        binary                     binary(n) keeps its zero padding
geometry                       unsupported                cast it in a query, e.g. ST_AsText(x)
=============================  =========================  ==============================================

Zero dates ('0000-00-00') fail naming the column: they are not dates.

Nullability: in a table read, a column declared NOT NULL (every primary-key column is) is a
non-nullable Arrow field, so the Iceberg column is created required (write option
``required_columns: false`` opts out). A query's columns are all nullable, as with Postgres.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import IntEnum
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
    resolve_columns,
    rows_to_batch,
)

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_PORT = 3306
#: Rows per batch unless the spec says otherwise. A chunk is held as Python tuples before it becomes
#: Arrow: 16k rows x 10 columns peaks near 65 MB (64k rows: 170 MB) and reads as fast.
DEFAULT_BATCH_ROWS = 16_384
EXTRA = "mysql"
#: A consumer that pauses (an Iceberg writer flushing a file) must not make the server give up.
NET_WRITE_TIMEOUT_SECONDS = 3600
#: ``DatabaseConfig.options`` the source passes to pymysql, with their value types.
DRIVER_OPTIONS: dict[str, Callable[[str], Any]] = {
    "charset": str, "unix_socket": str, "connect_timeout": int, "read_timeout": int, "write_timeout": int,
    "ssl_ca": str, "ssl_cert": str, "ssl_key": str,
}
#: The MySQL client's ``ssl-mode`` values as pymysql arguments (pymysql cannot fall back, so
#: PREFERRED connects as pymysql does by default: TLS only when certificates are given).
SSL_MODES: dict[str, dict[str, Any]] = {
    "DISABLED": {"ssl_disabled": True},
    "PREFERRED": {},
    "REQUIRED": {"ssl": {"check_hostname": False}},
    "VERIFY_CA": {"ssl_verify_cert": True},
    "VERIFY_IDENTITY": {"ssl_verify_cert": True, "ssl_verify_identity": True},
}

_BINARY_CHARSET = 63
_NOT_NULL_FLAG = 1
_UNSIGNED_FLAG = 32
# Server error codes a retry may fix: too many connections, lock wait, deadlock, lost connection.
_TRANSIENT_CODES = frozenset({1040, 1205, 1213, 2002, 2003, 2006, 2013, 2055})


def from_spec(spec: Mapping[str, Any], connection: DatabaseConfig) -> MySQLSource:
    """Build a MySQL source from its spec (see :mod:`dativo_provider.sources.sql_common`).

    :param spec: ``{"type": "mysql", "table": "db.table" | "query": "...", ...}``.
    :param connection: the server to read from.
    """
    return MySQLSource(parse_spec(spec, "mysql", DEFAULT_BATCH_ROWS), connection)


class MySQLSource(SqlSource):
    """Reads one table (default: the connection's database) or one query."""

    scheme = "mysql"
    default_port = DEFAULT_PORT

    @property
    def schema_name(self) -> str | None:
        if self.spec.query is not None:
            return None
        return self.spec.schema or self.config.database

    def lineage_parts(self) -> tuple[str | None, ...]:
        return (self.schema_name, self.spec.table)

    @property
    def from_clause(self) -> str:
        """What the SELECT reads: the quoted table, or the query as a derived table."""
        if self.spec.query is not None:
            return f"({self.spec.query}) AS q"
        return f"{_q(self.schema_name or '')}.{_q(self.spec.table or '')}"

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SqlStream:
        session = _Session.connect(self.config)
        try:
            return self._open(session, state, bounds)
        except BaseException:
            session.close(exhausted=False)
            raise

    def _open(self, session: _Session, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SqlStream:
        columns, fields = self._describe(session)
        window, tracker = self._window(columns, state, bounds)
        sql, parameters = self._select(columns, window, self._key_range(fields))
        reader = _MySQLReader(session, columns, sql, parameters, self.spec.batch_rows)
        return SqlStream(reader, self.spec.batch_rows, tracker, {"identity": self.identity, "sql": sql})

    def extent(self, column: str, state: Mapping[str, Any] | None, bounds: ReadBounds) -> ColumnExtent:
        session = _Session.connect(self.config)
        try:
            columns, fields = self._describe(session)
            target = _column(self._field(fields, column, "split"))
            window, _ = self._window(columns, state, bounds)
            quoted = _q(target.name).replace("%", "%%")
            where, parameters = self._where(columns, window, self._key_range(fields))
            sql = f"SELECT MIN({quoted}), MAX({quoted}) FROM {self.from_clause.replace('%', '%%')}{where}"
            low, high = session.row(sql, parameters, f"finding the range of column {column!r}")
        finally:
            session.close(exhausted=True)
        return ColumnExtent(target.name, target.arrow_type, column_value(low, target.arrow_type),
                            column_value(high, target.arrow_type))

    def primary_key(self) -> list[str]:
        if self.spec.query is not None:
            return []
        session = _Session.connect(self.config)
        try:
            rows = session.rows(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (self.schema_name, self.spec.table), f"looking up the primary key of {self._what()}",
            )
        finally:
            session.close(exhausted=True)
        return [row[0].decode() if isinstance(row[0], bytes) else row[0] for row in rows]

    def _window(self, columns: list[_Column], state: Mapping[str, Any] | None,
                bounds: ReadBounds) -> tuple[CursorWindow | None, WatermarkTracker | None]:
        if self.spec.cursor is None:
            return None, None
        cursor = _find(columns, self.spec.cursor)
        where = f"{self.spec.kind} source"
        window = cursor_window(cursor.name, cursor.arrow_type, state, bounds, self.spec.lookback, where)
        previous = committed_watermark(state, cursor.name, where)
        return window, WatermarkTracker(cursor.name, cursor.arrow_type, previous)

    def _key_range(self, fields: dict[str, Any]) -> tuple[_Column, str | None, str | None] | None:
        key_range = self.spec.key_range
        if key_range is None:
            return None
        column = _column(self._field(fields, key_range.column, "'key_range'"))
        lower, upper = key_range_bounds(key_range, column.arrow_type, f"{self.spec.kind} source")
        return column, lower, upper

    def _field(self, fields: dict[str, Any], name: str, purpose: str) -> Any:
        """The descriptor of a column of the table or query that need not be among those read."""
        found = next((f for key, f in fields.items() if key.lower() == name.lower()), None)
        if found is None:
            raise SourceError(f"{purpose} column {name!r} not found in {self._what()}; it has {list(fields)}")
        return found

    def _what(self) -> str:
        return "the query" if self.spec.query is not None else f"table {self.schema_name}.{self.spec.table}"

    def _describe(self, session: _Session) -> tuple[list[_Column], dict[str, Any]]:
        """The columns to read with their Arrow types, and the descriptors of every column of the table
        or query; fails on missing names and unsupported types."""
        what = self._what()
        fields = {f.name: f for f in session.describe(f"SELECT * FROM {self.from_clause} LIMIT 0", what)}
        names = resolve_columns(self.spec, list(fields), f"{what} on {session.where}", fold_case=True)
        # A derived table's NOT NULL flags are the server's inference, not a declaration: only tables'.
        return _plan([fields[name] for name in names], declared_nullability=self.spec.query is None), fields

    def _select(self, columns: list[_Column], window: CursorWindow | None,
                key: tuple[_Column, str | None, str | None] | None) -> tuple[str, tuple[Any, ...]]:
        """The SELECT and its parameters. Literal ``%`` is doubled: pymysql formats with ``%``."""
        sql = f"SELECT {', '.join(c.select_expr for c in columns)} FROM {self.from_clause}".replace("%", "%%")
        where, parameters = self._where(columns, window, key)
        return sql + where, parameters

    def _where(self, columns: list[_Column], window: CursorWindow | None,
               key: tuple[_Column, str | None, str | None] | None) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        parameters: list[Any] = []
        if window is not None and not window.is_open:
            predicate, bound = _window_predicate(_find(columns, self.spec.cursor or ""), window)
            clauses.append(predicate)
            parameters.extend(bound)
        if key is not None:
            predicate, bound = _key_predicate(*key)
            if predicate:
                clauses.append(predicate)
                parameters.extend(bound)
        return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(parameters)


# --- columns and types --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """One column to read: its name, Arrow type, SELECT expression, cast type and converter."""

    name: str
    arrow_type: pa.DataType
    select_expr: str
    #: The SQL type a bound value is cast to when compared with this column (cursors only).
    sql_type: str | None
    convert: Callable[[Sequence[Any]], pa.Array]
    nullable: bool = True


def _q(name: str) -> str:
    return quote_identifier(name, "`")


def _find(columns: list[_Column], name: str) -> _Column:
    return next(c for c in columns if c.name.lower() == name.lower())


def _plan(fields: list[Any], declared_nullability: bool) -> list[_Column]:
    """Map every described field, collecting all unsupported columns into one error.

    :param declared_nullability: the fields' NOT NULL flags are the table's declarations (a table read).
    """
    columns, unsupported = [], []
    for field in fields:
        try:
            not_null = declared_nullability and bool(field.flags & _NOT_NULL_FLAG)
            columns.append(replace(_column(field), nullable=not not_null))
        except UnsupportedTypeError as exc:
            unsupported.append(str(exc))
    if unsupported:
        raise UnsupportedTypeError(
            "; ".join(unsupported) + ". Cast these columns in a 'query' or leave them out of 'columns'"
        )
    return columns


class _Code(IntEnum):
    """MySQL protocol column type codes (as in ``pymysql.constants.FIELD_TYPE``, which would import
    the driver)."""

    DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24 = range(10)
    DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT = range(10, 17)
    JSON, NEWDECIMAL, ENUM, SET, TINY_BLOB, MEDIUM_BLOB = range(245, 251)
    LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = range(251, 256)


_TEXTS = frozenset({
    _Code.VARCHAR, _Code.JSON, _Code.ENUM, _Code.SET, _Code.TINY_BLOB, _Code.MEDIUM_BLOB,
    _Code.LONG_BLOB, _Code.BLOB, _Code.VAR_STRING, _Code.STRING,
})


def _column(field: Any) -> _Column:
    """Map one pymysql field descriptor (type code, flags, length, scale, charset)."""
    pa = require("pyarrow", EXTRA)
    name, code, quoted = field.name, field.type_code, _q(field.name)
    if code == _Code.FLOAT:
        select = f"CAST({quoted} AS DOUBLE) AS {quoted}"
        return _Column(name, pa.float32(), select, "DOUBLE", _text_cast(name, pa.float32()))
    if code == _Code.DOUBLE:
        return _Column(name, pa.float64(), quoted, "DOUBLE", _text_cast(name, pa.float64()))
    if code in _INTEGER_TYPES:
        return _integer(field)
    if code in (_Code.DECIMAL, _Code.NEWDECIMAL):
        target = _decimal_type(field)
        sql_type = f"DECIMAL({target.precision},{target.scale})"
        return _Column(name, target, quoted, sql_type, _text_cast(name, target))
    if code in _TEMPORAL_TYPES:
        target, bound_type, convert = _TEMPORAL_TYPES[code](name)
        return _Column(name, target, quoted, bound_type, convert)
    if code == _Code.BIT:
        target = pa.int64() if field.length <= 63 else pa.decimal128(20, 0)
        return _Column(name, target, quoted, "UNSIGNED", _bits(target))
    if code in _TEXTS:
        binary = field.charsetnr == _BINARY_CHARSET and code != _Code.JSON
        target = pa.binary() if binary else pa.string()
        return _Column(name, target, quoted, None, _plain(target))
    shown = _Code(code).name.lower() if code in _Code._value2member_map_ else f"type code {code}"
    raise UnsupportedTypeError(f"column {name!r} has MySQL type {shown}")


def _integer(field: Any) -> _Column:
    pa = require("pyarrow", EXTRA)
    name, code = field.name, field.type_code
    if code == _Code.TINY and field.length == 1:
        return _Column(name, pa.bool_(), _q(name), None, _boolean(name))
    signed_type, unsigned_type = _INTEGER_TYPES[code](pa)
    target = unsigned_type if field.flags & _UNSIGNED_FLAG else signed_type
    sql_type = "DECIMAL(20,0)" if pa.types.is_decimal(target) else "SIGNED"
    return _Column(name, target, _q(name), sql_type, _text_cast(name, target))


_INTEGER_TYPES: dict[int, Callable[[Any], tuple[pa.DataType, pa.DataType]]] = {
    _Code.TINY: lambda pa: (pa.int8(), pa.int16()),
    _Code.SHORT: lambda pa: (pa.int16(), pa.int32()),
    _Code.INT24: lambda pa: (pa.int32(), pa.int32()),
    _Code.LONG: lambda pa: (pa.int32(), pa.int64()),
    _Code.LONGLONG: lambda pa: (pa.int64(), pa.decimal128(20, 0)),
    _Code.YEAR: lambda pa: (pa.int16(), pa.int16()),
}


def _decimal_type(field: Any) -> pa.DataType:
    """decimal128(p, s): the reported length counts a sign (unless unsigned) and a point (if s > 0)."""
    pa = require("pyarrow", EXTRA)
    scale = field.scale
    precision = field.length - (1 if scale else 0) - (0 if field.flags & _UNSIGNED_FLAG else 1)
    if precision > 38:
        raise UnsupportedTypeError(
            f"column {field.name!r} has type decimal({precision},{scale}): Iceberg decimals hold 38 digits"
        )
    return pa.decimal128(max(precision, 1), scale)


# --- converters: a column's raw values (str, bytes or None) → an Arrow array of the target type ---


def _plain(target: pa.DataType) -> Callable[[Sequence[Any]], pa.Array]:
    pa = require("pyarrow", EXTRA)
    return lambda values: pa.array(values, target)


def _text_cast(name: str, target: pa.DataType) -> Callable[[Sequence[Any]], pa.Array]:
    """Cast the server's text to ``target``; anything inexact or unparsable fails naming the column."""
    pa = require("pyarrow", EXTRA)

    def convert(values: Sequence[Any]) -> Any:  # a pa.Array (``pa`` is the local module here)
        try:
            return pa.array(values, pa.string()).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(f"column {name!r} holds a value that is not an exact {target}: {exc}") from None

    return convert


def _boolean(name: str) -> Callable[[Sequence[Any]], pa.Array]:
    pa = require("pyarrow", EXTRA)
    pc = require("pyarrow.compute", EXTRA)
    as_int = _text_cast(name, pa.int16())

    def convert(values: Sequence[Any]) -> Any:  # a pa.Array (``pa`` is the local module here)
        numbers = as_int(values)
        bounds = pc.min_max(numbers)
        if (bounds["min"].as_py() or 0) < 0 or (bounds["max"].as_py() or 0) > 1:
            raise SourceError(
                f"column {name!r} is tinyint(1), read as boolean, but holds "
                f"{bounds['min']}..{bounds['max']}; "
                f"read it in a 'query' as `{name}` + 0 to get the numbers"
            )
        return numbers.cast(pa.bool_())

    return convert


def _utc_timestamp(name: str) -> Callable[[Sequence[Any]], pa.Array]:
    pa = require("pyarrow", EXTRA)
    naive = _text_cast(name, pa.timestamp("us"))
    # The session time zone is '+00:00', so the text is UTC: attach the zone without shifting.
    return lambda values: naive(values).cast(pa.timestamp("us", tz="UTC"))


def _time_of_day(name: str) -> Callable[[Sequence[Any]], pa.Array]:
    pa = require("pyarrow", EXTRA)
    pc = require("pyarrow.compute", EXTRA)

    def convert(values: Sequence[Any]) -> Any:  # a pa.Array (``pa`` is the local module here)
        # Arrow casts no text to time64; a timestamp on 1970-01-01 has the same microseconds.
        stamped = pc.binary_join_element_wise("1970-01-01 ", pa.array(values, pa.string()), "")
        try:
            return stamped.cast(pa.timestamp("us")).cast(pa.time64("us"))
        except pa.ArrowInvalid as exc:
            raise SourceError(
                f"column {name!r} holds a TIME that is not a time of day "
                f"(negative or 24 hours or more): {exc}"
            ) from None

    return convert


def _bits(target: pa.DataType) -> Callable[[Sequence[Any]], pa.Array]:
    pa = require("pyarrow", EXTRA)
    return lambda values: pa.array([None if v is None else int.from_bytes(v, "big") for v in values], target)


def _temporal(kind: str) -> Callable[[str], tuple[pa.DataType, str | None, Callable]]:
    """(Arrow type, SQL type for bounds, converter) of a date/time column, by kind."""

    def build(name: str) -> tuple[pa.DataType, str | None, Callable]:
        pa = require("pyarrow", EXTRA)
        if kind == "timestamp":
            return pa.timestamp("us", tz="UTC"), "DATETIME(6)", _utc_timestamp(name)
        if kind == "datetime":
            return pa.timestamp("us"), "DATETIME(6)", _text_cast(name, pa.timestamp("us"))
        if kind == "date":
            return pa.date32(), "DATE", _text_cast(name, pa.date32())
        return pa.time64("us"), None, _time_of_day(name)

    return build


_TEMPORAL_TYPES = {
    _Code.TIMESTAMP: _temporal("timestamp"), _Code.DATETIME: _temporal("datetime"),
    _Code.DATE: _temporal("date"), _Code.NEWDATE: _temporal("date"), _Code.TIME: _temporal("time"),
}


def _window_predicate(cursor: _Column, window: CursorWindow) -> tuple[str, tuple[Any, ...]]:
    """``cursor > CAST(%s) [- lookback] AND cursor <= CAST(%s)`` with its parameters."""
    column = _q(cursor.name).replace("%", "%%")
    cast = f"CAST(%s AS {cursor.sql_type})"
    clauses: list[str] = []
    parameters: list[Any] = []
    if window.lower is not None:
        lower, parameters = cast, [window.lower]
        if isinstance(window.lookback, timedelta):
            lower += " - INTERVAL %s MICROSECOND"
            parameters.append(window.lookback // timedelta(microseconds=1))
        elif window.lookback is not None:
            lower += " - CAST(%s AS DECIMAL(65,30))"
            parameters.append(format(window.lookback, "f"))
        clauses.append(f"{column} > {lower}")
    if window.upper is not None:
        clauses.append(f"{column} <= {cast}")
        parameters.append(window.upper)
    return " AND ".join(clauses), tuple(parameters)


def _key_predicate(key: _Column, lower: str | None, upper: str | None) -> tuple[str, tuple[Any, ...]]:
    """``key >= CAST(%s) AND key < CAST(%s)``; the range without a lower bound also takes null keys."""
    column = _q(key.name).replace("%", "%%")
    cast = f"CAST(%s AS {key.sql_type})"
    clauses: list[str] = []
    parameters: list[Any] = []
    if lower is not None:
        clauses.append(f"{column} >= {cast}")
        parameters.append(lower)
    if upper is not None:
        clauses.append(f"{column} < {cast}" if lower is not None else f"({column} < {cast} OR {column} IS NULL)")
        parameters.append(upper)
    return " AND ".join(clauses), tuple(parameters)


# --- the connection -----------------------------------------------------------------------------


class _Session:
    """One pymysql connection with decoders off (rows arrive as text) and redacted errors."""

    def __init__(self, connection: Any, config: DatabaseConfig) -> None:
        self.connection = connection
        self.config = config
        self.where = f"mysql://{config.host}:{config.port or DEFAULT_PORT}/{config.database}"
        self.cursor: Any = None

    @classmethod
    def connect(cls, config: DatabaseConfig) -> _Session:
        pymysql = require("pymysql", EXTRA)
        converters = require("pymysql.converters", EXTRA)
        options = _driver_options(config.options)
        try:
            connection = pymysql.connect(
                host=config.host, port=config.port or DEFAULT_PORT, user=config.user,
                password=config.password or "", database=config.database,
                # Encoders only: with no decoders pymysql hands back the server's text untouched.
                conv=dict(converters.encoders),
                init_command=f"SET time_zone = '+00:00', net_write_timeout = {NET_WRITE_TIMEOUT_SECONDS}",
                **options,
            )
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise _error(exc, config, f"cannot connect to {_where(config)} as user {config.user!r}") from None
        return cls(connection, config)

    def describe(self, sql: str, where: str) -> list[Any]:
        """The field descriptors of ``sql`` (run with LIMIT 0)."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql.replace("%", "%%"), ())
            # pymysql exposes flags and charsets only on the result's field descriptors.
            return list(cursor._result.fields or ())
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise self.translate(exc, f"describing {where}") from None
        finally:
            cursor.close()

    def row(self, sql: str, parameters: tuple[Any, ...], doing: str) -> tuple[Any, ...]:
        """The first row of ``sql``, values as the server's text."""
        return self.rows(sql, parameters, doing)[0]

    def rows(self, sql: str, parameters: tuple[Any, ...], doing: str) -> list[tuple[Any, ...]]:
        """Every row of ``sql``, values as the server's text."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise self.translate(exc, doing) from None
        finally:
            cursor.close()

    def stream(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        """Run ``sql`` on an unbuffered cursor: rows stay on the server until fetched."""
        cursors = require("pymysql.cursors", EXTRA)
        self.cursor = self.connection.cursor(cursors.SSCursor)
        try:
            self.cursor.execute(sql, parameters)
        except Exception as exc:  # every driver failure becomes a project error, redacted
            raise self.translate(exc, "starting the read") from None
        return self.cursor

    def translate(self, exc: Exception, doing: str) -> DativoError:
        return _error(exc, self.config, f"{self.where}: {doing} failed")

    def close(self, exhausted: bool) -> None:
        """Close; an unfinished unbuffered read is dropped with the connection, not drained."""
        # Cleanup must not hide the error that brought us here, so failures to close are ignored.
        if exhausted and self.cursor is not None:
            with suppress(Exception):
                self.cursor.close()
        elif self.cursor is not None and self.cursor._result is not None:
            # Otherwise pymysql's result would try to drain the rest from a closed socket when collected.
            self.cursor._result.unbuffered_active = False
        with suppress(Exception):
            self.connection.close()


def _driver_options(options: Mapping[str, str]) -> dict[str, Any]:
    """pymysql keyword arguments from the connection's options; unknown names fail."""
    options = dict(options)
    ssl_mode = str(options.pop("ssl_mode", "PREFERRED")).upper()
    unknown = sorted(set(options) - set(DRIVER_OPTIONS))
    if unknown or ssl_mode not in SSL_MODES:
        raise ConfigError(
            f"mysql connection: unknown option(s) {unknown or ['ssl_mode=' + ssl_mode]}; allowed: "
            f"{sorted(DRIVER_OPTIONS)} and ssl_mode in {sorted(SSL_MODES)}"
        )
    typed = {key: DRIVER_OPTIONS[key](str(value)) for key, value in options.items()}
    return {"charset": "utf8mb4", **typed, **SSL_MODES[ssl_mode]}


def _where(config: DatabaseConfig) -> str:
    return f"mysql://{config.host}:{config.port or DEFAULT_PORT}/{config.database}"


def _error(exc: Exception, config: DatabaseConfig, context: str) -> DativoError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    message = redact(f"{context}: {exc}", config.secrets)
    return TransientError(message) if code in _TRANSIENT_CODES else SourceError(message)


# --- the stream ---------------------------------------------------------------------------------


class _MySQLReader(BatchReader):
    """Fetches ``batch_rows`` rows at a time and converts each chunk to one batch."""

    def __init__(
        self,
        session: _Session,
        columns: list[_Column],
        sql: str,
        parameters: tuple[Any, ...],
        batch_rows: int,
    ) -> None:
        pa = require("pyarrow", EXTRA)
        self.schema = pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in columns])
        self._session = session
        self._converters = [c.convert for c in columns]
        self._batch_rows = batch_rows
        self._cursor = session.stream(sql, parameters)

    def batches(self) -> Iterator[pa.RecordBatch]:
        while rows := self._cursor.fetchmany(self._batch_rows):
            yield rows_to_batch(rows, self.schema, self._converters)

    def close(self, exhausted: bool) -> None:
        self._session.close(exhausted)

    def translate(self, exc: Exception) -> DativoError:
        return self._session.translate(exc, "reading")
