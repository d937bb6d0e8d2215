"""What the Postgres and MySQL sources share: the spec, identifier quoting, the incremental window,
watermark tracking and the stream that slices, tracks and translates driver errors.

Cursor values never enter SQL text. The window bounds are rendered as canonical *text* and bound
as parameters; the server casts them to the cursor column's own type, so a numeric or timestamp
watermark is compared exactly, never through a float or a client-side time zone.

Timestamps: a naive bound (or watermark) is taken as UTC; an aware one is converted to UTC. Both
servers run the session in UTC, so ``timestamptz``/``TIMESTAMP`` compare against the same instant.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dativo_provider.calendar_range import find_out_of_range, out_of_range_help
from dativo_provider.connections import DatabaseConfig
from dativo_provider.exceptions import ConfigError, DativoError, SourceError
from dativo_provider.optional import require
from dativo_provider.sources.base import (
    CURSOR_KEY,
    WATERMARK_KEY,
    LineageDataset,
    ReadBounds,
    Source,
    SourceReport,
    SourceStream,
    committed_watermark,
)

if TYPE_CHECKING:
    import pyarrow as pa

SPEC_KEYS = frozenset(
    {"type", "conn_id", "table", "schema", "query", "columns", "cursor", "lookback", "batch_rows", "key_range"}
)
KEY_RANGE_KEYS = frozenset({"column", "lower", "upper"})

_LOOKBACK_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_LOOKBACK_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_TIMESTAMP_TEXT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class SqlSpec:
    """A validated database source spec.

    :param kind: ``postgres`` or ``mysql``.
    :param table: the table name, without its schema.
    :param schema: the schema (Postgres) or database (MySQL) holding ``table``; None for the default.
    :param query: a SELECT to read instead of a table.
    :param columns: the columns to read; None for all.
    :param cursor: the incremental cursor column, or None for a full read.
    :param lookback: re-read this far behind the watermark: a timedelta or a number.
    :param batch_rows: at most this many rows per batch.
    :param key_range: read only the rows whose key column lies in this range (one part of a split
        ingest, see :mod:`dativo_provider.ingest.split`); None reads every row.
    """

    kind: str
    table: str | None
    schema: str | None
    query: str | None
    columns: tuple[str, ...] | None
    cursor: str | None
    lookback: timedelta | Decimal | None
    batch_rows: int
    key_range: KeyRange | None = None

    @property
    def query_digest(self) -> str:
        """A short stable hash of the query text, for identity and lineage."""
        return hashlib.sha256((self.query or "").encode()).hexdigest()[:16]


def parse_spec(spec: Mapping[str, Any], kind: str, default_batch_rows: int) -> SqlSpec:
    """Validate a source spec; every error names the offending key.

    :param spec: the plain-dict spec.
    :param kind: the connector asked for (``postgres`` or ``mysql``).
    :param default_batch_rows: ``batch_rows`` when the spec gives none.
    """
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{kind} source: unknown key(s) {unknown}; allowed: {sorted(SPEC_KEYS)}")
    if spec.get("type", kind) != kind:
        raise ConfigError(f"{kind} source: 'type' is {spec.get('type')!r}, expected {kind!r}")
    table, query = _optional_text(spec, "table", kind), _optional_text(spec, "query", kind)
    if (table is None) == (query is None):
        raise ConfigError(f"{kind} source: give exactly one of 'table' or 'query'")
    schema = _optional_text(spec, "schema", kind)
    if query is not None and schema is not None:
        raise ConfigError(f"{kind} source: 'schema' applies to 'table', not to 'query'")
    if table is not None and schema is None and "." in table:
        schema, table = _split_qualified(table, kind)
    cursor = _optional_text(spec, "cursor", kind)
    lookback = parse_lookback(spec.get("lookback"), f"{kind} source 'lookback'")
    if lookback is not None and cursor is None:
        raise ConfigError(f"{kind} source: 'lookback' needs a 'cursor'")
    return SqlSpec(
        kind=kind,
        table=table,
        schema=schema,
        query=query.strip().rstrip(";").strip() if query else None,
        columns=_parse_columns(spec.get("columns"), kind),
        cursor=cursor,
        lookback=lookback,
        batch_rows=_parse_batch_rows(spec.get("batch_rows", default_batch_rows), kind),
        key_range=parse_key_range(spec.get("key_range"), kind),
    )


@dataclass(frozen=True)
class KeyRange:
    """Rows with ``lower <= column < upper``, compared on the server in the column's own type.

    ``None`` leaves a side unbounded, so ranges ``(None, b1), (b1, b2), ..., (bn, None)`` cover every row
    exactly once; rows whose key is null belong to the range with no lower bound. The range is not part
    of the source's identity: every part of a split ingest keeps its state under the whole source's.
    """

    column: str
    lower: Any = None
    upper: Any = None


def parse_key_range(value: Any, kind: str) -> KeyRange | None:
    """Validate ``key_range``: ``{"column": name, "lower": value | None, "upper": value | None}``.

    :param value: the spec's ``key_range``, or None.
    :param kind: the connector, for error messages.
    """
    if value is None:
        return None
    where = f"{kind} source 'key_range'"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'column', 'lower' and 'upper', got {value!r}")
    unknown = sorted(set(value) - KEY_RANGE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(KEY_RANGE_KEYS)}")
    column = value.get("column")
    if not isinstance(column, str) or not column.strip() or "\x00" in column:
        raise ConfigError(f"{where}: 'column' must be a column name, got {column!r}")
    lower, upper = value.get("lower"), value.get("upper")
    for side, bound in (("lower", lower), ("upper", upper)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, _KEY_BOUND_TYPES)):
            raise ConfigError(
                f"{where}: {side!r} must be a number, a date, a timestamp or its ISO text, or null "
                f"(unbounded), got {bound!r}"
            )
    if lower is not None and upper is not None and _not_below(lower, upper):
        raise ConfigError(f"{where}: 'lower' ({lower!r}) must be below 'upper' ({upper!r}): lower is inclusive, "
                          "upper exclusive")
    return KeyRange(column, lower, upper)


_KEY_BOUND_TYPES = (int, float, Decimal, str, date, datetime)


def _not_below(lower: Any, upper: Any) -> bool:
    """Whether ``lower >= upper``, for bounds of comparable kinds (others are left to the server)."""
    try:
        return bool(lower >= upper)
    except TypeError:
        return False


def key_range_bounds(key_range: KeyRange, key_type: pa.DataType, where: str) -> tuple[str | None, str | None]:
    """The range's bounds as canonical text the server casts to the key column's type.

    :param key_type: the key column's Arrow type: an integer, decimal, date or timestamp.
    :param where: names the source in errors.
    """
    pa = require("pyarrow", "postgres")
    t = pa.types
    if not (t.is_integer(key_type) or t.is_decimal(key_type) or t.is_timestamp(key_type) or t.is_date(key_type)):
        raise ConfigError(
            f"{where}: 'key_range' column {key_range.column!r} has type {key_type}; a key range needs an "
            "integer, decimal, date or timestamp column"
        )
    return (None if key_range.lower is None else bound_text(key_range.lower, key_type, key_range.column),
            None if key_range.upper is None else bound_text(key_range.upper, key_type, key_range.column))


def column_value(value: Any, column_type: pa.DataType) -> Any:
    """A value a server returned as text or as a Python value, as the Python value of ``column_type``
    (int, Decimal, float, date or datetime; aware datetimes in UTC); other types as they came."""
    pa = require("pyarrow", "postgres")
    t = pa.types
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if t.is_timestamp(column_type):
        moment = to_datetime(value)
        if column_type.tz:
            return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
        return utc_naive(moment)
    if t.is_date(column_type):
        return value if isinstance(value, date) and not isinstance(value, datetime) else to_datetime(value).date()
    if t.is_integer(column_type):
        return int(value)
    if t.is_decimal(column_type):
        return Decimal(str(value))
    return float(value) if t.is_floating(column_type) else value


def _optional_text(spec: Mapping[str, Any], key: str, kind: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{kind} source: {key!r} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise ConfigError(f"{kind} source: {key!r} contains a NUL character")
    return value


def _split_qualified(table: str, kind: str) -> tuple[str, str]:
    parts = table.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"{kind} source: 'table' {table!r} is ambiguous; write 'schema.table', or set 'schema' "
            "explicitly when a name contains dots"
        )
    return parts[0], parts[1]


def _parse_columns(value: Any, kind: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{kind} source: 'columns' must be a non-empty list of column names")
    for column in value:
        if not isinstance(column, str) or not column or "\x00" in column:
            raise ConfigError(f"{kind} source: 'columns' holds an invalid name {column!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{kind} source: 'columns' names a column twice: {list(value)}")
    return tuple(value)


def _parse_batch_rows(value: Any, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{kind} source: 'batch_rows' must be a positive integer, got {value!r}")
    return value


def parse_lookback(value: Any, where: str) -> timedelta | Decimal | None:
    """Parse a lookback: ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1w"``, combinations such as
    ``"1h30m"``, a ``timedelta``, or a number (for numeric cursors).

    :param value: the lookback as written by the user.
    :param where: the parameter name for error messages.
    """
    if value is None or isinstance(value, timedelta):
        if value is not None and value < timedelta(0):
            raise ConfigError(f"{where} must not be negative, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a duration such as '2h' or a number, got {value!r}")
    if isinstance(value, (int, float, Decimal)):
        return _non_negative(Decimal(str(value)), value, where)
    if isinstance(value, str):
        return _parse_lookback_text(value.strip().lower(), where)
    raise ConfigError(f"{where} must be a duration such as '2h' or a number, got {value!r}")


def _parse_lookback_text(text: str, where: str) -> timedelta | Decimal:
    try:
        return _non_negative(Decimal(text), text, where)
    except InvalidOperation:
        pass
    parts = _LOOKBACK_PART.findall(text)
    if not parts or _LOOKBACK_PART.sub("", text).strip():
        raise ConfigError(f"{where} {text!r} is not a duration such as '90s', '30m', '2h', '1d' or '1h30m'")
    return sum((timedelta(**{_LOOKBACK_UNITS[unit]: float(n)}) for n, unit in parts), timedelta(0))


def _non_negative(number: Decimal, shown: Any, where: str) -> Decimal:
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where} must be a non-negative number, got {shown!r}")
    return number


# --- identifiers --------------------------------------------------------------------------------


def quote_identifier(name: str, quote_char: str) -> str:
    """Quote ``name`` as an SQL identifier by doubling the quote character inside it.

    :param name: any identifier (quotes, semicolons, spaces and unicode are kept as they are).
    :param quote_char: ``"`` for Postgres, a backtick for MySQL.
    """
    if "\x00" in name:
        raise ConfigError(f"identifier {name!r} contains a NUL character")
    return quote_char + name.replace(quote_char, quote_char * 2) + quote_char


def quote_literal(text: str) -> str:
    """Quote a constant Postgres string; for fixed texts only, never for values (those are bound).

    Relies on ``standard_conforming_strings``, which the Postgres source turns on for its session.
    """
    return "'" + text.replace("'", "''") + "'"


# --- identity and lineage -----------------------------------------------------------------------


def server_address(scheme: str, config: DatabaseConfig, default_port: int) -> str:
    """``scheme://host:port``, the OpenLineage namespace of a database server."""
    return f"{scheme}://{config.host.lower()}:{config.port or default_port}"


def identity(spec: SqlSpec, config: DatabaseConfig, default_port: int, schema: str | None) -> str:
    """A stable, secret-free name for what the spec reads (the key of its state in the table).

    :param schema: the schema the table lives in, after defaults are applied.
    """
    base = f"{server_address(spec.kind, config, default_port)}/{quote(config.database or '', safe='')}"
    params = []
    if spec.query is not None:
        params.append(f"query={spec.query_digest}")
    else:
        base += "/" + ".".join(quote(part, safe="") for part in (schema, spec.table) if part)
    if spec.cursor:
        params.append(f"cursor={quote(spec.cursor, safe='')}")
    return base + ("?" + "&".join(params) if params else "")


# --- the incremental window ---------------------------------------------------------------------


@dataclass(frozen=True)
class CursorWindow:
    """Rows to read: ``cursor > lower - lookback`` and ``cursor <= upper``; None means unbounded.

    ``lower`` and ``upper`` are canonical text the server casts to the cursor's type.
    """

    lower: str | None
    lookback: timedelta | Decimal | None
    upper: str | None

    @property
    def is_open(self) -> bool:
        return self.lower is None and self.upper is None


def cursor_window(
    cursor: str, cursor_type: pa.DataType, state: Mapping[str, Any] | None, bounds: ReadBounds,
    lookback: timedelta | Decimal | None, where: str,
) -> CursorWindow:
    """Build the window for this run from the committed state and the caller's bounds.

    :param cursor: the cursor column.
    :param cursor_type: its Arrow type (decides how bounds are parsed and rendered).
    :param state: the state the previous run committed, or None.
    :param bounds: the caller's bounds; ``bounds.lookback`` overrides the spec's lookback.
    :param lookback: the spec's lookback.
    :param where: names the source in errors.
    """
    check_cursor_type(cursor, cursor_type)
    previous = committed_watermark(state, cursor, where)
    if bounds.lookback is not None:
        lookback = parse_lookback(bounds.lookback, "ReadBounds.lookback")
    _check_lookback(cursor, cursor_type, lookback)
    return CursorWindow(
        lower=None if previous is None else bound_text(previous, cursor_type, cursor),
        lookback=lookback,
        upper=None if bounds.upper is None else bound_text(bounds.upper, cursor_type, cursor),
    )


def check_cursor_type(cursor: str, cursor_type: pa.DataType) -> None:
    """Cursors must be totally ordered the same way on the server and in Arrow."""
    pa = require("pyarrow", "postgres")
    t = pa.types
    if not (t.is_integer(cursor_type) or t.is_decimal(cursor_type) or t.is_floating(cursor_type)
            or t.is_timestamp(cursor_type) or t.is_date(cursor_type)):
        raise ConfigError(
            f"cursor column {cursor!r} has type {cursor_type}; a cursor must be an integer, decimal, "
            "float, date or timestamp column (text order differs between the server's collation and Arrow)"
        )


def _check_lookback(cursor: str, cursor_type: pa.DataType, lookback: timedelta | Decimal | None) -> None:
    pa = require("pyarrow", "postgres")
    is_time = pa.types.is_timestamp(cursor_type) or pa.types.is_date(cursor_type)
    if lookback is None or is_time == isinstance(lookback, timedelta):
        return
    wanted = "a duration such as '2h'" if is_time else "a number"
    raise ConfigError(f"'lookback' for cursor {cursor!r} ({cursor_type}) must be {wanted}, got {lookback!r}")


def bound_text(value: Any, cursor_type: pa.DataType, cursor: str) -> str:
    """Render a watermark or bound as the text both servers cast exactly to the cursor's type.

    :param value: a datetime, date, ISO-8601 string or number.
    :param cursor_type: the cursor's Arrow type.
    :param cursor: the cursor column, for error messages.
    """
    try:
        return _bound_text(value, cursor_type)
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise ConfigError(
            f"bound {value!r} cannot be compared with cursor {cursor!r} ({cursor_type}): {exc}"
        ) from exc


def _bound_text(value: Any, cursor_type: pa.DataType) -> str:
    pa = require("pyarrow", "postgres")
    if isinstance(value, bool):
        raise TypeError("a boolean is not a cursor value")
    if pa.types.is_timestamp(cursor_type):
        return utc_naive(to_datetime(value)).strftime(_TIMESTAMP_TEXT)
    if pa.types.is_date(cursor_type):
        return utc_naive(to_datetime(value)).date().isoformat()
    if pa.types.is_integer(cursor_type):
        number = Decimal(str(value))
        if number != number.to_integral_value():
            raise ValueError("not an integer")
        return str(int(number))
    if pa.types.is_decimal(cursor_type):
        return format(Decimal(str(value)), "f")
    return repr(float(value))


def to_datetime(value: Any) -> datetime:
    """A datetime from a datetime, a date (midnight) or an ISO-8601 string."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise TypeError(f"expected a datetime or an ISO-8601 string, got {type(value).__name__}")


def utc_naive(value: datetime) -> datetime:
    """Aware → the same instant in UTC without tzinfo; naive values are already taken as UTC."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


# --- the watermark ------------------------------------------------------------------------------


class WatermarkTracker:
    """Keeps the largest cursor value read, starting from the committed watermark.

    :param cursor: the cursor column name.
    :param cursor_type: its Arrow type.
    :param previous: the committed watermark (JSON form) or None.
    """

    def __init__(self, cursor: str, cursor_type: pa.DataType, previous: Any) -> None:
        self.cursor = cursor
        self.cursor_type = cursor_type
        self._best = None if previous is None else self._python(previous)

    def update(self, column: pa.Array) -> None:
        """Fold one batch's cursor column in.

        :raises SourceError: the cursor holds a date outside the years 1-9999 (no Python value).
        """
        pc = require("pyarrow.compute", "postgres")
        found = find_out_of_range(column)
        if found is not None:
            raise SourceError(
                f"cursor column {self.cursor!r} holds {found.describe()}, which cannot be a watermark. "
                f"{out_of_range_help(self.cursor)}"
            )
        top = pc.max(column).as_py()
        if top is not None and (self._best is None or top > self._best):
            self._best = top

    def state(self) -> dict[str, Any]:
        """``{"watermark": <exact JSON value>, "cursor": <column>}``."""
        return {WATERMARK_KEY: self._json(self._best), CURSOR_KEY: self.cursor}

    def _python(self, value: Any) -> Any:
        """A committed JSON value as the Python value Arrow yields for the cursor type."""
        pa = require("pyarrow", "postgres")
        t = self.cursor_type
        if pa.types.is_timestamp(t):
            moment = utc_naive(to_datetime(value))
            return moment.replace(tzinfo=timezone.utc) if t.tz else moment
        if pa.types.is_date(t):
            return utc_naive(to_datetime(value)).date()
        if pa.types.is_integer(t):
            return int(value)
        return Decimal(str(value)) if pa.types.is_decimal(t) else float(value)

    def _json(self, value: Any) -> Any:
        if value is None or isinstance(value, (int, float)):
            return value
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc)
            return value.isoformat(timespec="microseconds")
        return value.isoformat()


# --- the stream ---------------------------------------------------------------------------------


class BatchReader(ABC):
    """What a dialect hands to :class:`SqlStream`: converted batches plus cleanup and error mapping."""

    schema: pa.Schema

    @abstractmethod
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Batches of exactly ``schema``, read from the server as they are consumed."""

    @abstractmethod
    def close(self, exhausted: bool) -> None:
        """Release the connection; ``exhausted`` is False when the caller stopped early."""

    @abstractmethod
    def translate(self, exc: Exception) -> DativoError:
        """Turn a driver error into a project error with a redacted message."""


class SqlStream(SourceStream):
    """Slices batches to ``batch_rows``, tracks the watermark, and maps driver errors.

    :param reader: the dialect's open read.
    :param batch_rows: the most rows one batch may have.
    :param tracker: the watermark tracker, or None for a full read.
    :param details: facts for the run summary (identity, SQL text).
    """

    def __init__(
        self, reader: BatchReader, batch_rows: int, tracker: WatermarkTracker | None, details: dict[str, Any],
    ) -> None:
        self._reader = reader
        self._batch_rows = batch_rows
        self._tracker = tracker
        self._exhausted = False
        self._closed = False
        self.report = SourceReport(details={**details, "rows": 0, "batches": 0})

    @property
    def schema(self) -> pa.Schema:
        return self._reader.schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._reader.batches():
                yield from self._slices(batch)
        except SourceError as exc:  # a value that cannot be converted: say where it was read
            raise SourceError(f"{self.report.details.get('identity')}: {exc}") from None
        except Exception as exc:  # driver errors of every kind: translated, never leaked raw
            raise self._reader.translate(exc) from None
        self._exhausted = True

    def _slices(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        if self._tracker is not None and batch.num_rows:
            self._tracker.update(batch.column(self._tracker.cursor))
        for start in range(0, batch.num_rows, self._batch_rows):
            piece = batch.slice(start, self._batch_rows)
            self.report.details["rows"] += piece.num_rows
            self.report.details["batches"] += 1
            yield piece

    def state(self) -> dict[str, Any] | None:
        return None if self._tracker is None else self._tracker.state()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close(self._exhausted)


# --- the source ---------------------------------------------------------------------------------


class SqlSource(Source):
    """A Postgres or MySQL source; the dialect subclass implements :meth:`open`.

    :param spec: the validated spec.
    :param config: where the server is.
    """

    scheme: str = ""
    default_port: int = 0

    def __init__(self, spec: SqlSpec, config: DatabaseConfig) -> None:
        if not isinstance(config, DatabaseConfig):
            raise ConfigError(
                f"{spec.kind} source needs a DatabaseConfig connection, got {type(config).__name__}"
            )
        self.spec = spec
        self.config = config
        # A lookback passed at run time (ReadBounds.lookback) also re-reads rows; its caller knows.
        self.may_repeat_rows = spec.lookback is not None

    @property
    def schema_name(self) -> str | None:
        """The schema (Postgres) or database (MySQL) the table lives in, defaults applied."""
        return self.spec.schema

    @property
    def identity(self) -> str:
        return identity(self.spec, self.config, self.default_port, self.schema_name)

    @property
    def lineage(self) -> LineageDataset:
        namespace = server_address(self.scheme, self.config, self.default_port)
        if self.spec.query is not None:
            # No table to name: the dataset is the query, keyed by its digest.
            name = f"{self.config.database}.query_{self.spec.query_digest}"
        else:
            name = ".".join(part for part in self.lineage_parts() if part)
        return LineageDataset(namespace=namespace, name=name)

    @abstractmethod
    def lineage_parts(self) -> tuple[str | None, ...]:
        """The dotted parts of the OpenLineage dataset name of the table."""

    @abstractmethod
    def primary_key(self) -> list[str]:
        """The table's primary-key columns in key order; empty for a query or a table without one."""

    @abstractmethod
    def extent(self, column: str, state: Mapping[str, Any] | None, bounds: ReadBounds) -> ColumnExtent:
        """The smallest and largest value of ``column`` among the rows :meth:`open` would read with
        the same ``state`` and ``bounds`` (its window and key range), computed on the server.

        :raises SourceError: the column does not exist in the table or query.
        """


@dataclass(frozen=True)
class ColumnExtent:
    """The range of one column's values: ``low``/``high`` are None when no row has a value."""

    column: str
    arrow_type: pa.DataType
    low: Any
    high: Any


def resolve_columns(
    spec: SqlSpec, available: Sequence[str], where: str, fold_case: bool = False
) -> list[str]:
    """The columns to read, in the order asked (all when ``columns`` is None), plus the cursor
    column when ``columns`` leaves it out: the watermark is computed from the rows read.

    :param available: the columns the table or query has.
    :param where: what is being read, for error messages.
    :param fold_case: match names case-insensitively (MySQL), returning the server's spelling.
    """
    key = str.lower if fold_case else str
    by_key = {key(c): c for c in available}
    if spec.cursor is not None and key(spec.cursor) not in by_key:
        raise SourceError(f"cursor column {spec.cursor!r} not found in {where}; it has {list(available)}")
    wanted = list(available) if spec.columns is None else list(spec.columns)
    missing = [c for c in wanted if key(c) not in by_key]
    if missing:
        raise SourceError(f"column(s) {missing} not found in {where}; it has {list(available)}")
    if spec.cursor is not None and key(spec.cursor) not in {key(c) for c in wanted}:
        wanted.append(spec.cursor)
    return [by_key[key(c)] for c in wanted]


def rows_to_batch(
    rows: Sequence[tuple[Any, ...]],
    schema: pa.Schema,
    converters: Sequence[Callable[[Sequence[Any]], pa.Array]],
) -> pa.RecordBatch:
    """Turn a chunk of driver rows into one batch of exactly ``schema``.

    :param rows: row tuples as the driver returns them.
    :param schema: the target schema.
    :param converters: one per column: the column's raw values → an Arrow array of its target type.
    """
    pa = require("pyarrow", "mysql")
    columns = list(zip(*rows)) if rows else [()] * len(converters)
    arrays = [convert(values) for convert, values in zip(converters, columns)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
