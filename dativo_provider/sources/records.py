"""JSON API records → Arrow batches of a declared schema (shared by the SaaS sources).

A source declares its columns up front (so the schema is known before the first request) and each
batch is converted column by column. The kinds, and the Arrow type each becomes:

=============  ===========================  ======================================================
kind           Arrow type                   accepts
=============  ===========================  ======================================================
``string``     string                       text; any other JSON value as its JSON text (5 → "5")
``ref``        string                       an id, or an object whose ``id`` is taken (an
                                            expandable field that was not expanded)
``int``        int64                        JSON integers (money amounts in minor units)
``float``      float64                      JSON numbers
``bool``       bool                         JSON true/false
``bool_text``  bool                         "true"/"false" (any case), "" → null
``unix``       timestamp[us, UTC]           unix seconds
``iso``        timestamp[us, UTC]           ISO-8601 text (``Z`` or an offset), or epoch
                                            milliseconds as text; "" → null
``date``       date32                       "YYYY-MM-DD" (a time after it is ignored); "" → null
``decimal``    decimal128(38, 18)           decimal text; "" → null
``json``       string                       any JSON value as compact JSON text (objects, arrays,
                                            metadata); JSON null → null
``id_list``    list<string>                 a list of ids
=============  ===========================  ======================================================

A value that does not fit its kind fails the run with a :class:`SourceError` naming the column and
the record's id, never the value (it may be personal data).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dativo_provider.calendar_range import find_out_of_range
from dativo_provider.exceptions import ConfigError, SourceError

KINDS = (
    "string", "ref", "int", "float", "bool", "bool_text", "unix", "iso", "date", "decimal", "json", "id_list",
)
DECIMAL_TYPE = pa.decimal128(38, 18)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "ref": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
    "bool_text": pa.bool_(), "unix": TIMESTAMP_TYPE, "iso": TIMESTAMP_TYPE, "date": pa.date32(),
    "decimal": DECIMAL_TYPE, "json": pa.string(), "id_list": pa.list_(pa.string()),
}
_TEXT_KINDS = ("bool_text", "iso", "date", "decimal")
#: A column path that selects the whole record (e.g. a ``data`` column holding every field as JSON).
WHOLE_RECORD = ("$",)


@dataclass(frozen=True)
class Column:
    """One declared column.

    :param name: the column name.
    :param kind: one of :data:`KINDS`.
    :param path: the keys leading to the value in a record (default: ``(name,)``;
        :data:`WHOLE_RECORD` for the record itself).
    """

    name: str
    kind: str
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"column {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.path:
            object.__setattr__(self, "path", (self.name,))

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.kind]


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The schema of batches built from ``columns``; refuses a repeated column name."""
    names = [c.name for c in columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"columns {repeated} are declared more than once")
    return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])


def to_batch(records: Sequence[Mapping[str, Any]], columns: Sequence[Column], schema: pa.Schema,
             where: str) -> pa.RecordBatch:
    """Convert records to one batch of ``schema`` (built by :func:`arrow_schema` from ``columns``).

    :param where: what was read (``"stripe charges"``), for error messages.
    :raises SourceError: a value does not fit its column; names the column and the record id.
    """
    arrays = [_convert(column, _values(records, column.path), records, where) for column in columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _values(records: Sequence[Mapping[str, Any]], path: tuple[str, ...]) -> list[Any]:
    if path == WHOLE_RECORD:
        return list(records)
    if len(path) == 1:
        key = path[0]
        return [record.get(key) for record in records]
    values = []
    for record in records:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        values.append(value)
    return values


def _convert(column: Column, values: list[Any], records: Sequence[Mapping[str, Any]], where: str) -> pa.Array:
    if column.kind in _TEXT_KINDS:
        values = [None if value == "" else value for value in values]
    try:
        array = _CONVERTERS[column.kind](values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError, AttributeError):
        position = _first_bad(column, values)
        record_id = records[position].get("id") if position is not None else None
        raise SourceError(
            f"{where}: column {column.name!r} ({column.kind}) cannot hold the value of record "
            f"{record_id!r} ({_describe(values[position]) if position is not None else 'a value'}); "
            "if the API changed this field's type, read it as text"
        ) from None
    found = find_out_of_range(array)
    if found is not None:
        raise SourceError(
            f"{where}: column {column.name!r} ({column.kind}) holds {found.describe()} in record "
            f"{records[found.position].get('id')!r}; Python, and so Iceberg file statistics in pyiceberg, only "
            "know the years 0001-9999: read the field as text ('string')"
        )
    return array


def _first_bad(column: Column, values: list[Any]) -> int | None:
    for position, value in enumerate(values):
        try:
            _CONVERTERS[column.kind]([value])
        except (pa.ArrowException, TypeError, ValueError, OverflowError, AttributeError):
            return position
    return None


def _describe(value: Any) -> str:
    """The JSON type of a value, never the value itself."""
    kinds = {str: "text", bool: "a boolean", int: "an integer", float: "a number", dict: "an object",
             list: "a list"}
    return kinds.get(type(value), type(value).__name__)


# --- converters ---------------------------------------------------------------------------------


def _string(values: list[Any]) -> pa.Array:
    return pa.array([v if v is None or isinstance(v, str) else _json_text(v) for v in values], pa.string())


def _ref(values: list[Any]) -> pa.Array:
    return pa.array([v.get("id") if isinstance(v, Mapping) else v for v in values], pa.string())


def _json(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else _json_text(v) for v in values], pa.string())


#: One encoder for every value: ``json.dumps`` with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_text(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # empty metadata, the most common nested value
    return _ENCODER.encode(value)


def _int(values: list[Any]) -> pa.Array:
    # pyarrow refuses booleans and text but truncates 1.5 to 1: floats are refused here.
    if any(type(v) is float for v in values):
        raise TypeError("not an integer")
    return pa.array(values, pa.int64())


def _typed(arrow_type: pa.DataType) -> Callable[[list[Any]], pa.Array]:
    def convert(values: list[Any]) -> pa.Array:
        return pa.array(values, arrow_type)

    return convert


def _bool_text(values: list[Any]) -> pa.Array:
    lowered = pc.utf8_lower(pa.array(values, pa.string()))
    valid = pc.or_kleene(pc.equal(lowered, "true"), pc.equal(lowered, "false"))
    if pc.any(pc.invert(valid)).as_py():
        raise ValueError("not true/false")
    return pc.equal(lowered, "true")


def _unix(values: list[Any]) -> pa.Array:
    seconds = _int(values)
    return pc.multiply_checked(seconds, 1_000_000).cast(TIMESTAMP_TYPE)


def _iso(values: list[Any]) -> pa.Array:
    text = pa.array(values, pa.string())
    try:
        return text.cast(TIMESTAMP_TYPE)
    except pa.ArrowInvalid:
        return pa.array([_one_moment(v) for v in values], TIMESTAMP_TYPE)


def _one_moment(value: str | None) -> datetime | None:
    """One ISO-8601 or epoch-milliseconds text as an aware datetime (the slow path)."""
    if value is None:
        return None
    if value.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a timestamp without a zone")
    return moment


def _date(values: list[Any]) -> pa.Array:
    """``YYYY-MM-DD``, also when followed by a midnight time (``2024-01-31T00:00:00Z``)."""
    return pc.utf8_slice_codeunits(pa.array(values, pa.string()), 0, 10).cast(pa.date32())


def _decimal(values: list[Any]) -> pa.Array:
    return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string()).cast(
        DECIMAL_TYPE
    )


def _id_list(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else [str(i) for i in v] for v in values], pa.list_(pa.string()))


_CONVERTERS: dict[str, Callable[[list[Any]], pa.Array]] = {
    "string": _string, "ref": _ref, "int": _int, "float": _typed(pa.float64()),
    "bool": _typed(pa.bool_()), "bool_text": _bool_text, "unix": _unix, "iso": _iso, "date": _date,
    "decimal": _decimal, "json": _json, "id_list": _id_list,
}
