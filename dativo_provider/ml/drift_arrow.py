"""Arrow columns as drift samples: a column's kind from its type, its values or counts without nulls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from dativo_provider.exceptions import ConfigError
from dativo_provider.ml.drift_stats import CategoryCounts, ColumnData, NumericSample

if TYPE_CHECKING:
    import pyarrow as pa


def arrow_kind(data_type: pa.DataType) -> str | None:
    """numeric (integers, floats, decimals), categorical (strings, booleans, dictionaries) or None."""
    import pyarrow.types as t

    if t.is_integer(data_type) or t.is_floating(data_type) or t.is_decimal(data_type):
        return "numeric"
    if t.is_string(data_type) or t.is_large_string(data_type) or t.is_boolean(data_type) \
            or t.is_dictionary(data_type):
        return "categorical"
    return None


def column_data(column: pa.ChunkedArray | pa.Array, kind: str) -> ColumnData:
    """The sample of one column: sorted finite values (numeric) or value counts (categorical)."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if kind == "numeric":
        return numeric_sample(chunks)
    return category_counts(chunks)


def numeric_values(chunk: pa.Array) -> np.ndarray:
    """A chunk's non-null values as float64 (temporal types as their integer encoding)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    values = chunk.drop_null()
    if t.is_temporal(values.type):
        values = values.cast(pa.int64()) if not t.is_date32(values.type) else values.cast(pa.int32())
    try:
        return np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"a column of type {chunk.type} cannot be tested as numeric: {exc}") from None


def numeric_sample(chunks: Iterable[pa.Array]) -> NumericSample:
    parts, nulls = [], 0
    for chunk in chunks:
        nulls += chunk.null_count
        parts.append(numeric_values(chunk))
    values = np.concatenate(parts) if len(parts) != 1 else parts[0]
    parts.clear()
    return NumericSample.from_values(values, nulls, owned=True)


def add_counts(counter: Counter[Any], chunk: pa.Array) -> int:
    """Add a chunk's non-null value counts to ``counter``; return its null count."""
    import pyarrow.compute as pc
    import pyarrow.types as t

    if t.is_dictionary(chunk.type):
        chunk = chunk.dictionary_decode()
    counted = pc.value_counts(chunk)
    for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(),
                            strict=True):
        if value is not None:
            counter[value] += count
    return chunk.null_count


def category_counts(chunks: Iterable[pa.Array]) -> CategoryCounts:
    counter: Counter[Any] = Counter()
    nulls = sum(add_counts(counter, chunk) for chunk in chunks)
    return CategoryCounts(dict(counter), nulls)
