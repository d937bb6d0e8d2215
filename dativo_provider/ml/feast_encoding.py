"""Feast's online-store bytes, built a column at a time with numpy instead of a proto object per value.

Feast's own write path makes one ``ValueProto`` per feature value and one ``EntityKey`` per row, then
serializes each: 10 million Python objects for 1M entities x 10 features. The bytes are simple, so this
module writes them directly, for whole Arrow arrays:

- a feature value is a ``feast.types.Value`` message holding one field of a ``oneof``: the field's tag,
  then its payload (fixed 4/8 bytes, a varint, or a length-prefixed string); a null (or NaN) is the
  empty message, as Feast writes it;
- an entity key is ``serialize_entity_key``'s version 3 layout: the key count, each join key name
  (sorted) with its type and length, then each value with its type, length and little-endian bytes;
- a Redis event time is a ``google.protobuf.Timestamp`` (seconds and nanos, each omitted when zero).

``tests/ml/test_feast_online.py`` checks every encoder byte for byte against Feast's serializers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

# feast.types.Value field numbers (Value.proto) and Feast's ValueType enum, for the scalar types.
_DOUBLE, _FLOAT, _INT32, _INT64, _BOOL, _STRING, _BYTES = "DOUBLE", "FLOAT", "INT32", "INT64", "BOOL", "STRING", "BYTES"
_FIELD_NUMBER = {_BYTES: 1, _STRING: 2, _INT32: 3, _INT64: 4, _DOUBLE: 5, _FLOAT: 6, _BOOL: 7}
_ENTITY_TYPE_CODE = {_BYTES: 1, _STRING: 2, _INT32: 3, _INT64: 4}
#: Feast value types this module encodes (``Field.dtype.to_value_type().name``).
SCALAR_VALUE_TYPES = frozenset(_FIELD_NUMBER)


def _tag(field_number: int, wire_type: int) -> int:
    return (field_number << 3) | wire_type


def _varint_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each uint64 as its 10 possible varint bytes and the mask of the bytes it uses."""
    shifts = np.arange(10, dtype=np.uint64) * np.uint64(7)
    groups = ((values[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    used = np.ones(len(values), dtype=np.int64)
    for shift in range(7, 64, 7):
        used += values >= (np.uint64(1) << np.uint64(shift))
    columns = np.arange(10)[None, :]
    groups[columns < (used - 1)[:, None]] |= 0x80
    return groups, columns < used[:, None]


def _pack(pieces: Sequence[tuple[np.ndarray, np.ndarray]]) -> pa.Array:
    """Rows of masked byte matrices side by side, as one Arrow large binary array."""
    import pyarrow as pa

    matrix = np.concatenate([piece[0] for piece in pieces], axis=1)
    mask = np.concatenate([piece[1] for piece in pieces], axis=1)
    offsets = np.zeros(len(matrix) + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1, dtype=np.int64), out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(matrix),
                                           [None, pa.py_buffer(offsets), pa.py_buffer(matrix[mask])])


def _parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A large binary array's offsets (rebased to 0) and its data bytes."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    data = array.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], raw[offsets[0]:offsets[-1]]


def _concat(parts: Sequence[pa.Array | bytes]) -> pa.Array:
    """Row-wise concatenation (``a[i] + b[i] + ...``); a ``bytes`` part is the same in every row.

    Arrow's ``binary_join_element_wise`` does the work; it is defined on strings, so the bytes are
    viewed as strings (a zero-copy relabel: the kernel copies bytes and never decodes them).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.large_string()
    arrays = [part for part in parts if not isinstance(part, bytes)]
    if len(parts) == 1 and arrays:
        return arrays[0].cast(pa.large_binary())
    inputs = [pa.array([part], pa.large_binary()).view(text)[0] if isinstance(part, bytes)
              else part.cast(pa.large_binary()).view(text) for part in parts]
    joined = pc.binary_join_element_wise(*inputs, pa.scalar("", text))
    return joined.view(pa.large_binary())


def _constant(data: bytes, rows: int) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.broadcast_to(np.frombuffer(data, dtype=np.uint8), (rows, len(data)))
    return matrix, np.ones((rows, len(data)), dtype=bool)


def _fixed(values: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(len(values), -1)
    return raw, np.ones(raw.shape, dtype=bool)


def _numpy(array: pa.Array, fill: object) -> np.ndarray:
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(array, fill).to_numpy(zero_copy_only=False))


def _null_mask(array: pa.Array) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = pc.is_null(array, nan_is_null=pa.types.is_floating(array.type))
    return np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool)


def _with_nulls(encoded: pa.Array, missing: np.ndarray) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not missing.any():
        return encoded
    return pc.if_else(pa.array(missing), pa.scalar(b"", pa.large_binary()), encoded)


def encode_values(array: pa.Array, value_type: str, *, column: str = "") -> pa.Array:
    """Serialized ``ValueProto`` bytes of every value of ``array`` as Feast type ``value_type``."""
    import pyarrow as pa

    if value_type not in SCALAR_VALUE_TYPES:
        raise ConfigError(f"feature {column!r}: Feast type {value_type} is not supported by the fast "
                          f"materializer (scalar types only: {', '.join(sorted(SCALAR_VALUE_TYPES))})")
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    rows = len(array)
    missing = _null_mask(array)
    number = _FIELD_NUMBER[value_type]
    if value_type in (_DOUBLE, _FLOAT):
        wire, dtype = (1, "<f8") if value_type == _DOUBLE else (5, "<f4")
        pieces = [_constant(bytes([_tag(number, wire)]), rows), _fixed(_numpy(array, 0), dtype)]
        return _with_nulls(_pack(pieces), missing)
    if value_type in (_INT32, _INT64):
        # int32 is sign-extended to 64 bits before varint encoding, as protobuf does.
        values = _numpy(array.cast(pa.int64()), 0).astype(np.int64).view(np.uint64)
        return _with_nulls(_pack([_constant(bytes([_tag(number, 0)]), rows), _varint_groups(values)]), missing)
    if value_type == _BOOL:
        flags = _numpy(array, False).astype(np.uint8)[:, None]
        pieces = [_constant(bytes([_tag(number, 0)]), rows), (flags, np.ones((rows, 1), dtype=bool))]
        return _with_nulls(_pack(pieces), missing)
    data = array.cast(pa.large_binary()) if value_type == _BYTES else array.cast(pa.large_string())
    data = data.fill_null(b"" if value_type == _BYTES else "").cast(pa.large_binary())
    lengths = np.diff(np.frombuffer(data.buffers()[1], dtype=np.int64)[data.offset:data.offset + rows + 1])
    pieces = [_constant(bytes([_tag(number, 2)]), rows), _varint_groups(lengths.astype(np.uint64))]
    return _with_nulls(_concat([_pack(pieces), data]), missing)


def entity_key_prefix(join_keys: Sequence[str]) -> bytes:
    """The constant head of every version 3 entity key over ``join_keys``: count, then sorted names."""
    out = [struct.pack("<I", len(join_keys))]
    for name in sorted(join_keys):
        encoded = name.encode("utf8")
        out += [struct.pack("<II", _ENTITY_TYPE_CODE[_STRING], len(encoded)), encoded]
    return b"".join(out)


def encode_entity_keys(columns: dict[str, pa.Array], value_types: dict[str, str]) -> pa.Array:
    """``serialize_entity_key(..., entity_key_serialization_version=3)`` of every row, as Arrow binary."""
    import pyarrow as pa

    names = sorted(columns)
    rows = len(columns[names[0]])
    pieces = [_constant(entity_key_prefix(names), rows)]
    segments: list[pa.Array] = []
    for name in names:
        array = columns[name]
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if array.null_count:
            raise ConfigError(f"entity column {name!r}: {array.null_count} null key(s); Feast keys cannot be null")
        kind = value_types[name]
        if kind not in _ENTITY_TYPE_CODE:
            raise ConfigError(f"entity column {name!r}: Feast key type {kind} is not supported "
                              "(STRING, BYTES, INT32 or INT64)")
        if kind in (_INT32, _INT64):
            size, dtype = (4, "<i4") if kind == _INT32 else (8, "<i8")
            pieces += [_constant(struct.pack("<II", _ENTITY_TYPE_CODE[kind], size), rows),
                       _fixed(_numpy(array.cast(pa.int64()), 0), dtype)]
            continue
        data = (array.cast(pa.large_binary()) if kind == _BYTES else array.cast(pa.large_string())).cast(
            pa.large_binary())
        lengths = np.diff(_parts(data)[0])
        pieces += [_constant(struct.pack("<I", _ENTITY_TYPE_CODE[kind]), rows), _fixed(lengths, "<u4")]
        segments += [_pack(pieces), data]
        pieces = []
    if pieces:
        segments.append(_pack(pieces))
    return _concat(segments)


def encode_timestamps(epoch_nanos: np.ndarray) -> pa.Array:
    """``google.protobuf.Timestamp`` bytes (Feast's Redis ``_ts:<view>`` field) of UTC epoch nanoseconds."""
    seconds = np.floor_divide(epoch_nanos, 1_000_000_000)
    nanos = (epoch_nanos - seconds * 1_000_000_000).astype(np.uint64)
    rows = len(epoch_nanos)
    second_groups, second_mask = _varint_groups(seconds.astype(np.int64).view(np.uint64))
    nano_groups, nano_mask = _varint_groups(nanos)
    has_seconds, has_nanos = seconds != 0, nanos != 0
    pieces = [(np.full((rows, 1), 0x08, np.uint8), has_seconds[:, None]),
              (second_groups, second_mask & has_seconds[:, None]),
              (np.full((rows, 1), 0x10, np.uint8), has_nanos[:, None]),
              (nano_groups, nano_mask & has_nanos[:, None])]
    return _pack(pieces)


def concat_constant(array: pa.Array, suffix: bytes) -> pa.Array:
    """Every value of ``array`` followed by ``suffix`` (Feast's Redis key: entity key + project)."""
    return _concat([array, suffix])


def _decimal_lengths(array: pa.Array) -> pa.Array:
    import pyarrow as pa

    lengths = np.diff(_parts(array.cast(pa.large_binary()))[0])
    return pa.array(lengths).cast(pa.large_string()).cast(pa.large_binary())


def resp_commands(command: bytes, keys: pa.Array, fields: Sequence[tuple[bytes, pa.Array]]) -> bytes:
    """One Redis protocol command per row: ``command key field1 value1 field2 value2 ...``, as bytes."""
    parts: list[pa.Array | bytes] = [
        b"*%d\r\n$%d\r\n%s\r\n$" % (2 + 2 * len(fields), len(command), command),
        _decimal_lengths(keys), b"\r\n", keys, b"\r\n"]
    for name, values in fields:
        parts += [b"$%d\r\n%s\r\n$" % (len(name), name), _decimal_lengths(values), b"\r\n", values, b"\r\n"]
    joined = _concat(parts)
    offsets, data = _parts(joined)
    return data.tobytes()
