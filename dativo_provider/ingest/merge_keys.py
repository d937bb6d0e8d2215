"""The merge keys of one run's rows: distinct, never null, each at most once (a merge needs one row per key)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_provider.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa


def distinct_merge_keys(keys: pa.Table, key_columns: tuple[str, ...], where: str = "") -> pa.Table:
    """The distinct key tuples of ``keys``.

    :param where: appended to the repeated-key message to say where the rows came from (e.g. the parts).
    :raises SourceError: a key column is null somewhere, or a key appears more than once.
    """
    import pyarrow.compute as pc

    for column in key_columns:
        if keys.column(column).null_count:
            raise SourceError(f"merge key column {column!r} is null in {keys.column(column).null_count} rows")
    counts = keys.group_by(list(key_columns)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        example = {c: repeated.column(c)[0].as_py() for c in key_columns}
        raise SourceError(
            f"merge key {example} appears {repeated['count_all'][0].as_py()} times in this run's rows "
            f"({repeated.num_rows} keys repeat{where}); a merge needs one row per key"
        )
    return counts.select(list(key_columns))
