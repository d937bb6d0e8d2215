"""The spreadsheet half of the Google double: grids of cells, A1 ranges, and the Sheets v4 bodies.

Kept apart from :mod:`tests.doubles.google_api` (routing, auth, Drive) so each stays readable. The
A1 parser here is written independently of the source's, so a shared misreading cannot hide.

Cells are given as Python values: ``date``/``datetime``/``time`` are stored as Sheets stores them,
serial numbers (days since 1899-12-30) with a DATE / DATE_TIME / TIME number format; ``None`` is an
empty cell. Rendering follows the API: ``UNFORMATTED_VALUE`` sends numbers, booleans and text as
JSON values and empty cells in the middle of a row as ``""``; trailing empty cells and rows are
left out; ``dateTimeRenderOption=FORMATTED_STRING`` sends dates as their formatted text.

Sheet names in ranges follow Google's "A1 notation" guide: a quoted name (``'Q1'``, ``'O''Brien'``)
is always a sheet; unquoted, a name must be letters, digits and ``_``, and one that reads as a cell
reference (``Q1``, ``FY2024``, ``R1C1``) is a cell of the first sheet when alone and a parse error
(400) before ``!``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

EPOCH = datetime(1899, 12, 30)
_A1 = re.compile(r"^(?P<c1>[A-Z]*)(?P<r1>\d*)(?::(?P<c2>[A-Z]*)(?P<r2>\d*))?$")
#: What the API reads as a cell reference when it is not quoted (``Q1``, ``FY2024``, ``R1C1``).
_CELL_LIKE = re.compile(r"^[A-Za-z]{1,3}[0-9]+(?::[A-Za-z]{0,3}[0-9]*)?$")
_R1C1 = re.compile(r"^[Rr][0-9]*[Cc][0-9]*$")
_FORMATS = {date: ("DATE", "yyyy-mm-dd"), datetime: ("DATE_TIME", "yyyy-mm-dd hh:mm:ss"),
            time: ("TIME", "hh:mm:ss")}


class RangeError(ValueError):
    """A range the API would refuse; the message is the API's own wording."""


@dataclass
class Cell:
    """One non-empty cell: its unformatted value, number-format type and formatted text."""

    value: Any
    format_type: str | None = None
    pattern: str | None = None
    formatted: str | None = None


def to_cell(value: Any) -> Cell | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        serial = (value - EPOCH).total_seconds() / 86400
        return Cell(serial, *_FORMATS[datetime], value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, date):
        return Cell((value - EPOCH.date()).days, *_FORMATS[date], value.isoformat())
    if isinstance(value, time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
        return Cell(seconds / 86400, *_FORMATS[time], value.strftime("%H:%M:%S"))
    return Cell(value)


def column_number(letters: str) -> int:
    """``A`` -> 1, ``Z`` -> 26, ``AA`` -> 27."""
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - ord("A") + 1
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


@dataclass
class Sheet:
    """One grid: ``rows[r][c]`` (0-based), its size, and merged regions as half-open index ranges."""

    title: str
    sheet_id: int
    rows: list[list[Cell | None]] = field(default_factory=list)
    row_count: int = 1000
    column_count: int = 26
    #: (startRowIndex, endRowIndex, startColumnIndex, endColumnIndex), end exclusive, as the API.
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)

    def cell(self, row: int, column: int) -> Cell | None:
        if row < len(self.rows) and column < len(self.rows[row]):
            return self.rows[row][column]
        return None


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    time_zone: str = "Etc/GMT"
    sheets: dict[str, Sheet] = field(default_factory=dict)

    def put_sheet(self, title: str, rows: list[list[Any]], *, row_count: int | None = None,
                  column_count: int | None = None, merges: list[tuple[int, int, int, int]] = ()) -> Sheet:
        grid = [[to_cell(value) for value in row] for row in rows]
        width = max((len(row) for row in rows), default=0)
        sheet = Sheet(title, len(self.sheets), grid, row_count or max(1000, len(rows)),
                      column_count or max(26, width), list(merges))
        self.sheets[title] = sheet
        return sheet

    def resolve(self, a1: str) -> tuple[Sheet, int, int, int, int]:
        """``'My Sheet'!A2:C`` -> the sheet and 0-based half-open rows and columns, clipped to the grid.

        :raises RangeError: unknown sheet, unparsable range, or a range beyond the grid's size.
        """
        name, _, cells = _split_sheet(a1)
        if not name:  # an unquoted cell reference: the first sheet
            name, cells = next(iter(self.sheets), ""), cells.upper()
        sheet = self.sheets.get(name)
        if sheet is None:
            raise RangeError(f"Unable to parse range: {a1}")
        if not cells:
            return sheet, 0, sheet.row_count, 0, sheet.column_count
        match = _A1.match(cells)
        if match is None or not (match["c1"] or match["r1"]):
            raise RangeError(f"Unable to parse range: {a1}")
        c1, r1 = column_number(match["c1"] or "A"), int(match["r1"] or 1)
        single = match["c2"] is None
        c2 = column_number(match["c2"]) if match["c2"] else (c1 if single and match["c1"] else sheet.column_count)
        r2 = int(match["r2"]) if match["r2"] else (r1 if single and match["r1"] else sheet.row_count)
        if max(r1, r2) > sheet.row_count or max(c1, c2) > sheet.column_count:
            raise RangeError(
                f"Range ({_quoted(name)}!{cells}) exceeds grid limits. Max rows: {sheet.row_count}, "
                f"max columns: {sheet.column_count}"
            )
        return sheet, min(r1, r2) - 1, max(r1, r2), min(c1, c2) - 1, max(c1, c2)

    def values(self, a1: str, value_render: str, date_render: str) -> dict[str, Any]:
        """The body of ``spreadsheets.values.get`` for ``a1``."""
        sheet, r0, r1, c0, c1 = self.resolve(a1)
        rows = [[_render(sheet.cell(r, c), value_render, date_render) for c in range(c0, c1)] for r in range(r0, r1)]
        rows = [_trim(row) for row in rows]
        while rows and not rows[-1]:
            rows.pop()
        body: dict[str, Any] = {
            "range": f"{_quoted(sheet.title)}!{column_letters(c0 + 1)}{r0 + 1}:{column_letters(c1)}{r1}",
            "majorDimension": "ROWS",
        }
        if rows:
            body["values"] = rows
        return body

    def metadata(self, ranges: list[str], with_merges: bool, with_data: bool) -> dict[str, Any]:
        """The body of ``spreadsheets.get``: properties, and per sheet its merges and formats."""
        picked: dict[str, list[tuple[int, int, int, int]]] = {}
        for a1 in ranges:
            sheet, r0, r1, c0, c1 = self.resolve(a1)
            picked.setdefault(sheet.title, []).append((r0, r1, c0, c1))
        titles = list(picked) if ranges else list(self.sheets)
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {"title": self.title, "locale": "en_US", "timeZone": self.time_zone},
            "sheets": [self._sheet_body(self.sheets[t], picked.get(t, []), with_merges, with_data) for t in titles],
        }

    def _sheet_body(self, sheet: Sheet, areas: list[tuple[int, int, int, int]], with_merges: bool,
                    with_data: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"properties": {
            "sheetId": sheet.sheet_id, "title": sheet.title, "index": sheet.sheet_id, "sheetType": "GRID",
            "gridProperties": {"rowCount": sheet.row_count, "columnCount": sheet.column_count},
        }}
        if with_merges and sheet.merges:
            body["merges"] = [
                {"sheetId": sheet.sheet_id, "startRowIndex": r0, "endRowIndex": r1, "startColumnIndex": c0,
                 "endColumnIndex": c1} for r0, r1, c0, c1 in sheet.merges
            ]
        if with_data:
            body["data"] = [_grid_data(sheet, *area) for area in areas]
        return body


def _grid_data(sheet: Sheet, r0: int, r1: int, c0: int, c1: int) -> dict[str, Any]:
    rows = []
    for r in range(r0, r1):
        cells = [sheet.cell(r, c) for c in range(c0, c1)]
        values = [{"effectiveFormat": {"numberFormat": {"type": cell.format_type, "pattern": cell.pattern}}}
                  if cell is not None and cell.format_type else {} for cell in cells]
        while values and not values[-1]:
            values.pop()
        rows.append({"values": values} if values else {})
    while rows and not rows[-1]:
        rows.pop()
    data: dict[str, Any] = {"rowData": rows} if rows else {}
    if r0:
        data["startRow"] = r0
    if c0:
        data["startColumn"] = c0
    return data


def _render(cell: Cell | None, value_render: str, date_render: str) -> Any:
    if cell is None:
        return ""
    if value_render == "FORMATTED_VALUE":
        return cell.formatted if cell.formatted is not None else _text(cell.value)
    if cell.format_type and date_render == "FORMATTED_STRING":
        return cell.formatted
    return cell.value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] == "":
        row.pop()
    return row


def _split_sheet(a1: str) -> tuple[str, str, str]:
    """(sheet name, "!", cells) with the sheet name's quotes removed (``''`` is one quote)."""
    if a1.startswith("'"):
        end = 1
        while True:
            end = a1.index("'", end)
            if a1[end + 1 : end + 2] == "'":
                end += 2
                continue
            break
        name, rest = a1[1:end].replace("''", "'"), a1[end + 1 :]
        return name, "!", rest.removeprefix("!")
    name, bang, cells = a1.partition("!")
    if _CELL_LIKE.match(name) or _R1C1.match(name):
        # Unquoted, a cell reference is a cell, not a sheet name: alone it is a range of the first
        # sheet; before "!" the range does not parse.
        if bang:
            raise RangeError(f"Unable to parse range: {a1}")
        return "", "", name
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise RangeError(f"Unable to parse range: {a1}")
    return name, bang, cells


def _quoted(name: str) -> str:
    plain = re.fullmatch(r"[A-Za-z0-9_]+", name) and not (_CELL_LIKE.match(name) or _R1C1.match(name))
    return name if plain else "'" + name.replace("'", "''") + "'"
