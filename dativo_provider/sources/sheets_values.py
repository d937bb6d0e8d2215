"""Google Sheets cell values → typed columns: A1 ranges, type hints, inference and conversion.

The Sheets source reads with ``valueRenderOption=UNFORMATTED_VALUE`` and
``dateTimeRenderOption=SERIAL_NUMBER``: numbers arrive as JSON numbers, booleans as JSON booleans,
text as strings, and dates, times and date-times as serial numbers (days since 1899-12-30, the time
of day as the fraction), which is unambiguous, unlike formatted text that depends on the locale.
Which numbers are dates is told by the cells' number format (``DATE``, ``DATE_TIME``, ``TIME``).

Inference, per column, over the sample rows' non-empty cells (formula errors such as ``#N/A`` are
left out of the sample):

==========================================================  ==================================
cells                                                       type
==========================================================  ==================================
none                                                        ``string``
all booleans                                                ``bool``
all numbers formatted as DATE                               ``date``
all numbers formatted as DATE or DATE_TIME (some DATE_TIME) ``timestamp`` (wall time, no zone)
all numbers formatted as TIME                               ``time``
all whole numbers, otherwise                                ``int64``
all numbers, otherwise (currency and percent included)      ``float64``
anything else (text, or a mix)                              ``string``
==========================================================  ==================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from dativo_provider.exceptions import ConfigError

SERIAL_EPOCH = datetime(1899, 12, 30)
MS_PER_DAY = 86_400_000
#: What a formula error looks like in an unformatted value.
CELL_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#ERROR!"})
HINT_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
    "date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
}
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_A1_CELLS = re.compile(r"(?P<c1>[A-Za-z]{0,3})(?P<r1>\d*)(?::(?P<c2>[A-Za-z]{0,3})(?P<r2>\d*))?")
_INTEGER_TEXT = re.compile(r"[+-]?\d+")


class CellError(ValueError):
    """A value that does not fit its column; the message never quotes the value."""


# --- A1 ranges ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class A1Range:
    """A sheet and an optional box of it; rows and columns 1-based and inclusive, None = to the edge."""

    sheet: str
    first_col: int = 1
    first_row: int = 1
    last_col: int | None = None
    last_row: int | None = None

    def box(self, first_row: int, last_row: int, first_col: int, last_col: int) -> str:
        """``'Sheet name'!B2:F100`` for the given rows and columns of this sheet."""
        start, end = f"{column_letters(first_col)}{first_row}", f"{column_letters(last_col)}{last_row}"
        return f"{quote_sheet(self.sheet)}!{start}:{end}"


def parse_a1(text: Any) -> A1Range:
    """``Sheet1``, ``Sheet1!A1:Z``, ``'My sheet'!B3:F100``, ``Sheet1!A:F`` (the sheet name is required)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"google_sheets source: 'range' must be a sheet name or 'Sheet!A1:Z', got {text!r}")
    sheet, cells = _split_sheet(text.strip())
    match = _A1_CELLS.fullmatch(cells) if cells else None
    if not sheet or (cells and (match is None or not (match["c1"] or match["r1"]))):
        raise ConfigError(f"google_sheets source: 'range' {text!r} is not a sheet name or 'Sheet!A1:Z' range")
    if match is None:
        return A1Range(sheet)
    single = match["c2"] is None
    c1, r1 = column_number(match["c1"] or "A"), int(match["r1"] or 1)
    c2 = column_number(match["c2"]) if match["c2"] else (c1 if single and match["c1"] else None)
    r2 = int(match["r2"]) if match["r2"] else (r1 if single and match["r1"] else None)
    if (c2 is not None and c2 < c1) or (r2 is not None and r2 < r1) or r1 < 1:
        raise ConfigError(f"google_sheets source: 'range' {text!r} must run from its top-left to its "
                          "bottom-right")
    return A1Range(sheet, c1, r1, c2, r2)


def _split_sheet(text: str) -> tuple[str, str]:
    if text.startswith("'"):
        closing = re.match(r"'((?:[^']|'')*)'(?:!(.*))?$", text)
        if closing is None:
            raise ConfigError(f"google_sheets source: 'range' {text!r} has an unbalanced quote")
        return closing[1].replace("''", "'"), closing[2] or ""
    sheet, _, cells = text.partition("!")
    return sheet, cells


def quote_sheet(name: str) -> str:
    """A sheet name as A1 notation needs it: always in single quotes, ``''`` for a quote inside.

    Unquoted, ``Q1`` or ``FY2024`` is read by the API as a cell of the first visible sheet, and
    ``Orders`` as a named range if the spreadsheet has one of that name; quoted, it is always the sheet
    (Google's "A1 notation" guide).
    """
    return "'" + name.replace("'", "''") + "'"


def column_number(letters: str) -> int:
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# --- type hints and inference -------------------------------------------------------------------


def parse_hint(column: str, name: Any) -> pa.DataType:
    """A type name from ``columns`` (:data:`HINT_TYPES` or ``decimal(p,s)``) as an Arrow type."""
    text = str(name).strip().lower()
    if text in HINT_TYPES:
        return HINT_TYPES[text]
    match = _DECIMAL.fullmatch(text)
    if match and 1 <= int(match[1]) <= 38 and int(match[2]) <= int(match[1]):
        return pa.decimal128(int(match[1]), int(match[2]))
    raise ConfigError(
        f"google_sheets source: 'columns.{column}' has type {name!r}; expected one of "
        f"{', '.join(HINT_TYPES)} or decimal(p,s) with 1 <= p <= 38, s <= p"
    )


def infer_type(values: Sequence[Any], formats: set[str]) -> pa.DataType:
    """The column type for sampled values (``""`` and formula errors left out) and their number formats.

    :param formats: the number-format types (``DATE``, ``DATE_TIME``, ``TIME``, ``NUMBER``...) of the
        sample's numeric cells, ``""`` for a cell without one.
    """
    present = [v for v in values if not is_empty(v) and v not in CELL_ERRORS]
    if not present:
        return pa.string()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.string()
    if formats == {"DATE"}:
        return pa.date32()
    if formats and formats <= {"DATE", "DATE_TIME"}:
        return pa.timestamp("us")
    if formats == {"TIME"}:
        return pa.time64("us")
    return pa.int64() if all(float(v).is_integer() for v in present) else pa.float64()


def is_empty(value: Any) -> bool:
    return value is None or value == ""


# --- conversion ---------------------------------------------------------------------------------


def converter(kind: pa.DataType, zone: tzinfo | None) -> Callable[[Any], Any]:
    """A function from one unformatted cell value to the Python value of ``kind`` (None for empty).

    :param zone: the spreadsheet's time zone, in which ``timestamptz`` serials are wall times.
    :raises CellError: from the returned function, for a value that does not fit.
    """
    if pa.types.is_decimal(kind):
        return _nullable(_decimal(kind.scale, kind.precision))
    if pa.types.is_timestamp(kind) and kind.tz:
        return _nullable(_moment_in(zone or UTC))
    simple = {pa.string(): _text, pa.int64(): _int, pa.float64(): _float, pa.bool_(): _bool,
              pa.date32(): _date, pa.timestamp("us"): _wall_time, pa.time64("us"): _time_of_day}
    return _nullable(simple[kind])


def _nullable(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        if is_empty(value):
            return None
        if isinstance(value, str) and value in CELL_ERRORS and convert is not _text:
            raise CellError("holds a formula error")
        return convert(value)

    return apply


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise CellError("is a boolean, not a whole number")
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise CellError("is not a whole number")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise CellError("is a boolean, not a number")
    try:
        return float(value)
    except ValueError:
        raise CellError("is not a number") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    raise CellError("is not TRUE or FALSE")


def _serial(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CellError("is not a date serial number")
    return float(value)


def serial_to_datetime(serial: float) -> datetime:
    """A serial number as a naive wall time, to the millisecond (a double holds no more at today's dates)."""
    return SERIAL_EPOCH + timedelta(milliseconds=round(serial * MS_PER_DAY))


def _date(value: Any) -> date:
    if isinstance(value, str):
        return _from_text(date.fromisoformat, value)
    return (SERIAL_EPOCH + timedelta(days=int(_serial(value) // 1))).date()


def _wall_time(value: Any) -> datetime:
    moment = _moment(value)
    if moment.tzinfo is not None:
        raise CellError("has a time zone; declare the column timestamptz")
    return moment


def _moment_in(zone: tzinfo) -> Callable[[Any], datetime]:
    def convert(value: Any) -> datetime:
        moment = _moment(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)

    return convert


def _moment(value: Any) -> datetime:
    """ISO-8601 text (as written, zone or not) or a serial number (a naive wall time)."""
    if isinstance(value, str):
        return _from_text(datetime.fromisoformat, value)
    return serial_to_datetime(_serial(value))


def _time_of_day(value: Any) -> time:
    if isinstance(value, str):
        return _from_text(time.fromisoformat, value)
    fraction = _serial(value) % 1
    return (datetime.min + timedelta(milliseconds=round(fraction * MS_PER_DAY))).time()


def _decimal(scale: int, precision: int) -> Callable[[Any], Decimal]:
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise CellError("is a boolean, not a number")
        try:
            # repr of a float is its shortest round-tripping text: 0.1 stays 0.1, not 0.1000000000000000055.
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip()).quantize(
                quantum, ROUND_HALF_EVEN)
        except (InvalidOperation, ValueError):
            raise CellError(f"is not a number that fits decimal({precision},{scale})") from None
        if len(number.as_tuple().digits) > precision:
            raise CellError(f"has more digits than decimal({precision},{scale}) holds")
        return number

    return convert


def _from_text(parse: Callable[[str], Any], value: str) -> Any:
    try:
        return parse(value.strip())
    except ValueError:
        raise CellError("is text that is not an ISO-8601 date or time") from None


def hints(value: Any) -> dict[str, pa.DataType]:
    """The ``columns`` spec key: ``{name: type name}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("google_sheets source: 'columns' must be a mapping of header names to type names")
    return {str(name): parse_hint(str(name), kind) for name, kind in value.items()}
