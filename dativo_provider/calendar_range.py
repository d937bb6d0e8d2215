"""Dates and timestamps outside the years 1–9999 cannot be written, so they are refused by name.

pyiceberg turns every data file's column bounds into Python ``date``/``datetime`` objects, and
cursors are kept as Python values too; Python's calendar ends at year 1 and year 9999. A BC date
(PostgreSQL ``date '0044-03-15 BC'``, MariaDB's year 0) or a year past 9999 would otherwise fail
deep inside pyiceberg with an ``OverflowError`` that names no column. The check is one vectorised
min/max per temporal column, and never puts the value itself in a message (it may be personal data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: 0001-01-01 and 9999-12-31 in days since 1970-01-01.
FIRST_DAY, LAST_DAY = -719_162, 2_932_896
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True)
class OutOfRange:
    """The first value of an array outside the years 1–9999.

    :param position: its index in the array.
    :param before: True for a value before year 1 (BC), False for one after year 9999.
    """

    position: int
    before: bool

    def describe(self) -> str:
        return "a date before year 1 (BC)" if self.before else "a date after year 9999"


def find_out_of_range(array: pa.Array) -> OutOfRange | None:
    """The first date/timestamp of ``array`` outside the years 1–9999; None if all fit or not temporal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_date32(kind):
        storage, per_day = pa.int32(), 1
    elif pa.types.is_date64(kind):
        storage, per_day = pa.int64(), 86_400_000
    elif pa.types.is_timestamp(kind):
        storage, per_day = pa.int64(), 86_400 * _PER_SECOND[kind.unit]
    else:
        return None
    if len(array) == array.null_count:
        return None
    numbers = array.view(storage)
    bounds = pc.min_max(numbers)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low < FIRST_DAY * per_day:
        value, before = low, True
    elif high >= (LAST_DAY + 1) * per_day:
        value, before = high, False
    else:
        return None
    return OutOfRange(pc.index(numbers, value).as_py(), before)


def out_of_range_help(column: str) -> str:
    """What to do about ``column`` holding such a value: filter it or cast it in the source."""
    return (
        f"Python, and so pyiceberg's file statistics, only know the years 0001-9999. Filter or cast "
        f"the column in the source, e.g. in a database source's 'query': CASE WHEN {column} < "
        f"'0001-01-01' THEN NULL ELSE {column} END AS {column}, or CAST({column} AS text) AS {column} "
        "to keep the value as text"
    )
