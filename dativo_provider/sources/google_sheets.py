"""Google Sheets source: one sheet (or a box of it) as typed columns named by a header row.

Spec::

    {"type": "google_sheets", "conn_id": "google_cloud_default", "spreadsheet_id": "1BxiM...",
     "range": "Orders!A1:F", "header_row": 1, "columns": {"amount": "decimal(12,2)"},
     "merged_cells": "fill", "bad_rows": "fail", "chunk_rows": 5000}

* **Range.** A sheet name (``"Orders"``, ``"'Q1 plan'"``) or a box (``"Orders!B3:F"``; rows or
  columns left open run to the sheet's edge). Requests always quote the sheet name (``'Q1'!A1:F``),
  since unquoted the API reads ``Q1`` or ``FY2024`` as a cell of the first sheet. ``header_row``
  counts from the box's first row (default 1; rows above it, e.g. a title, are skipped); 0 means no
  header, and the columns are named by their letters. Only the header's columns are read: its last
  non-empty cell ends them. A spreadsheet not shared with the account fails saying so.
* **Names.** Header cells are trimmed. A blank header cell is named by its column letter (``"D"``);
  a name that repeats fails the run naming both columns.
* **Types.** Read with ``UNFORMATTED_VALUE`` and ``SERIAL_NUMBER`` dates; ``columns`` hints win,
  other columns are inferred from the first ``sample_rows`` data rows and the cells' number formats
  (:mod:`dativo_provider.sources.sheets_values`). ``"value_render": "FORMATTED_VALUE"`` reads every
  column as the text the sheet shows. A later value that does not fit its column is a bad row
  (``bad_rows``: ``fail`` or ``skip``), named by its cell (``'Orders'!C17``), never by its value.
* **Empty cells** are null (text columns too). The API leaves out trailing empty cells and rows:
  short rows are padded with nulls; rows with no value at all are skipped and counted.
* **Merged cells.** The API returns a merged region's value in its top-left cell only. With
  ``merged_cells: "fill"`` (default) the regions are read from ``spreadsheets.get`` and the value
  is copied into every cell of the region; ``"null"`` leaves the other cells null. A region whose
  top-left cell lies outside the data read (in the header, or left of the box) is not filled.
* **No cursor.** A sheet has no reliable change cursor, so every run reads it whole and the source
  declares that it repeats rows: write with ``mode: replace`` (or ``merge`` on a key column).
  The sheet is read in chunks of ``chunk_rows`` rows (one request each), so memory stays flat, but
  edits made while a run reads may be seen in part; the run commits all or nothing.
"""

from __future__ import annotations

import urllib.parse
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import pyarrow as pa

from dativo_provider.connections import GoogleConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source, SourceReport, SourceStream
from dativo_provider.sources.google_auth import GoogleAuth, api_client
from dativo_provider.sources.http import ApiAuthError, Clock, HttpClient, RetryPolicy
from dativo_provider.sources.saas import check_keys, positive_int, retry_policy
from dativo_provider.sources.sheets_values import (
    A1Range,
    CellError,
    column_letters,
    converter,
    hints,
    infer_type,
    is_empty,
    parse_a1,
    quote_sheet,
)

SPEC_KEYS = frozenset({
    "type", "conn_id", "spreadsheet_id", "range", "header_row", "columns", "value_render", "merged_cells",
    "bad_rows", "chunk_rows", "sample_rows", "retry",
})
VALUE_RENDERS = ("UNFORMATTED_VALUE", "FORMATTED_VALUE")
SHEET_FIELDS = "properties(title,timeZone),sheets(properties(sheetId,title,gridProperties),merges)"
FORMAT_FIELDS = "sheets(data(startRow,startColumn,rowData(values(effectiveFormat(numberFormat(type))))))"
#: A merged region: 0-based start and exclusive end of its rows and columns, as the API gives them.
Merge = tuple[int, int, int, int]


@dataclass(frozen=True)
class SheetsSpec:
    """A validated Google Sheets source spec (see the module docstring)."""

    spreadsheet_id: str
    range: A1Range
    header_row: int = 1
    hints: Mapping[str, pa.DataType] = field(default_factory=dict)
    value_render: str = "UNFORMATTED_VALUE"
    fill_merged: bool = True
    skip_bad_rows: bool = False
    chunk_rows: int = 5000
    sample_rows: int = 1000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    range_text: str = ""


def parse_spec(spec: Mapping[str, Any]) -> SheetsSpec:
    """Validate a spec; every error names the key."""
    check_keys(spec, SPEC_KEYS, "google_sheets")
    book = spec.get("spreadsheet_id")
    if not isinstance(book, str) or not book.strip() or "/" in book:
        raise ConfigError(f"google_sheets source: 'spreadsheet_id' must be a spreadsheet id, got {book!r}")
    header = spec.get("header_row", 1)
    if isinstance(header, bool) or not isinstance(header, int) or header < 0:
        raise ConfigError(f"google_sheets source: 'header_row' must be 0 (no header) or a row number, got "
                          f"{header!r}")
    parsed = SheetsSpec(
        spreadsheet_id=book.strip(), range=parse_a1(spec.get("range")), header_row=header,
        hints=hints(spec.get("columns")),
        value_render=_choice(spec, "value_render", VALUE_RENDERS),
        fill_merged=_choice(spec, "merged_cells", ("fill", "null")) == "fill",
        skip_bad_rows=_choice(spec, "bad_rows", ("fail", "skip")) == "skip",
        chunk_rows=positive_int(spec, "chunk_rows", 5000, 100_000, "google_sheets"),
        sample_rows=positive_int(spec, "sample_rows", 1000, 100_000, "google_sheets"),
        retry=retry_policy(spec.get("retry"), "google_sheets"), range_text=str(spec.get("range")).strip(),
    )
    if parsed.value_render == "FORMATTED_VALUE" and any(t != pa.string() for t in parsed.hints.values()):
        raise ConfigError("google_sheets source: with value_render FORMATTED_VALUE every column is text; "
                          "drop the non-string 'columns' hints or read UNFORMATTED_VALUE")
    return parsed


def _choice(spec: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = spec.get(key, allowed[0])
    if value not in allowed:
        raise ConfigError(f"google_sheets source: {key!r} is {value!r}; expected one of {', '.join(allowed)}")
    return value


def from_spec(spec: Mapping[str, Any], connection: GoogleConfig | None) -> GoogleSheetsSource:
    """Build a Sheets source from its spec and the connection's :class:`GoogleConfig`."""
    return GoogleSheetsSource(parse_spec(spec), connection)


class GoogleSheetsSource(Source):
    """One sheet of a spreadsheet, read whole every run.

    :param spec: the validated spec.
    :param config: the Google credentials.
    :param clock: time source for retry waits and token expiry (tests inject one that does not sleep).
    """

    #: A sheet has no cursor: each run re-reads every row, so the engine requires replace or merge.
    may_repeat_rows = True

    def __init__(self, spec: SheetsSpec, config: GoogleConfig | None, clock: Clock | None = None) -> None:
        if not isinstance(config, GoogleConfig):
            raise ConfigError("google_sheets source needs a Google connection: set 'conn_id' to a "
                              "google_cloud_platform or dativo_google connection")
        self.spec = spec
        self.config = config
        self.clock = clock

    @property
    def identity(self) -> str:
        return f"gsheets://{self.spec.spreadsheet_id}/{self.spec.range_text}"

    @property
    def lineage(self) -> LineageDataset:
        return LineageDataset("gsheets://sheets.googleapis.com",
                              f"{self.spec.spreadsheet_id}/{self.spec.range.sheet}")

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SheetStream:
        if bounds.lookback is not None:
            raise ConfigError("google_sheets source: 'lookback' does not apply; every run reads the whole "
                              "sheet")
        auth = GoogleAuth(self.config, clock=self.clock, policy=self.spec.retry)
        client = api_client("Google Sheets", self.config.sheets_url, auth, policy=self.spec.retry,
                            clock=self.clock)
        stream = SheetStream(self.spec, client, auth)
        try:
            stream.prepare()
        except BaseException:
            stream.close()
            raise
        return stream


@dataclass
class Layout:
    """Where the data is, learnt before the first batch. Rows and columns 1-based and inclusive."""

    first_col: int
    last_col: int
    first_row: int
    last_row: int
    names: list[str]
    zone: tzinfo | None
    merges: list[Merge]


class SheetStream(SourceStream):
    """The sheet's rows in chunks, one Arrow batch per chunk."""

    def __init__(self, spec: SheetsSpec, client: HttpClient, auth: GoogleAuth) -> None:
        self.spec = spec
        self.client = client
        self.auth = auth
        self.sheet = spec.range.sheet
        self.report = SourceReport(details={"spreadsheet_id": spec.spreadsheet_id, "sheet": self.sheet,
                                            "rows": 0, "blank_rows": 0, "merged_cells_filled": 0})
        self.layout: Layout | None = None
        self._schema: pa.Schema | None = None
        self._converters: list[Any] = []
        self._first: list[tuple[int, list[Any]]] | None = None
        self._anchors: dict[tuple[int, int], Any] = {}
        self._consumed = False

    @property
    def schema(self) -> pa.Schema:
        assert self._schema is not None
        return self._schema

    # -- before the first batch ------------------------------------------------------------------

    def prepare(self) -> None:
        """Read the sheet's size, merges, time zone and header, then the first chunk to type the columns."""
        self.layout = self._layout()
        self.report.details["range_read"] = self._box(self.layout.first_row, self.layout.last_row)
        has_rows = self.layout.first_row <= self.layout.last_row
        self._first = self._rows(self.layout.first_row) if has_rows else []
        self._schema = self._settle_schema()

    def _layout(self) -> Layout:
        """The box clipped to the grid, the columns the header names, and the rows below it."""
        properties, sheet = self._sheet_metadata()
        grid = sheet["properties"].get("gridProperties") or {}
        rows, cols = int(grid.get("rowCount", 0)), int(grid.get("columnCount", 0))
        box = self.spec.range
        last_row, last_col = min(box.last_row or rows, rows), min(box.last_col or cols, cols)
        header_at = box.first_row + self.spec.header_row - 1 if self.spec.header_row else None
        if header_at is None:
            names = [column_letters(c) for c in range(box.first_col, last_col + 1)]
        else:
            names = self._header(header_at, box.first_col, last_col)
        merges = _merges(sheet) if self.spec.fill_merged else []
        first_data_row = header_at + 1 if header_at else box.first_row
        return Layout(box.first_col, box.first_col + len(names) - 1, first_data_row, last_row, names,
                      _zone(properties.get("timeZone")), merges)

    def _sheet_metadata(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        try:
            body = self.client.get(self._book_path(), {"ranges": quote_sheet(self.sheet), "fields": SHEET_FIELDS},
                                   what=f"sheet {self.sheet!r} of spreadsheet {self.spec.spreadsheet_id!r}").body
        except ApiAuthError as exc:
            # A spreadsheet not shared with the account: 403 PERMISSION_DENIED with no reason (a missing
            # scope names one, ACCESS_TOKEN_SCOPE_INSUFFICIENT, and stays an authentication error).
            if exc.status != 403 or not str(exc).endswith("(PERMISSION_DENIED)"):
                raise
            raise SourceError(f"spreadsheet {self.spec.spreadsheet_id!r} is not shared with {self.auth.principal}: "
                              "share it with that account (Viewer is enough)") from None
        sheets = [s for s in body.get("sheets") or [] if s.get("properties", {}).get("title") == self.sheet]
        if not sheets:
            raise SourceError(f"spreadsheet {self.spec.spreadsheet_id!r} has no sheet named {self.sheet!r}")
        return body.get("properties") or {}, sheets[0]

    def _header(self, row: int, first_col: int, last_col: int) -> list[str]:
        cells = self._values(self.spec.range.box(row, row, first_col, last_col), "FORMATTED_VALUE")
        header = [str(value).strip() for value in (cells[0] if cells else [])]
        if not any(header):
            raise SourceError(f"{quote_sheet(self.sheet)}!{row}:{row}: the header row is empty; set "
                              "'header_row' to the row holding the column names, or 0 for none")
        names = [name or column_letters(first_col + i) for i, name in enumerate(header)]
        for i, name in enumerate(names):
            if name in names[:i]:
                first = column_letters(first_col + names.index(name))
                raise SourceError(f"{quote_sheet(self.sheet)}: header {name!r} is in columns {first} and "
                                  f"{column_letters(first_col + i)}; rename one of them in the sheet")
        unknown = sorted(set(self.spec.hints) - set(names))
        if unknown:
            raise ConfigError(f"google_sheets source: 'columns' names {unknown}, which are not in the "
                              f"header {names}")
        return names

    def _settle_schema(self) -> pa.Schema:
        layout = self.layout
        assert layout is not None and self._first is not None
        sample = self._first[: self.spec.sample_rows]
        formats = self._formats(sample) if self._needs_inference() and sample else {}
        fields = [pa.field(name, self.spec.hints.get(name) or self._inferred(j, sample, formats))
                  for j, name in enumerate(layout.names)]
        self._converters = [converter(f.type, layout.zone) for f in fields]
        self.report.details["columns"] = {f.name: str(f.type) for f in fields}
        return pa.schema(fields)

    def _inferred(self, j: int, sample: list[tuple[int, list[Any]]],
                  formats: Mapping[tuple[int, int], str]) -> pa.DataType:
        """The type of the ``j``-th column from its sampled values and their cells' number formats."""
        assert self.layout is not None
        if self.spec.value_render == "FORMATTED_VALUE":
            return pa.string()
        column = self.layout.first_col + j
        numeric = [(number, row[j]) for number, row in sample
                   if isinstance(row[j], (int, float)) and not isinstance(row[j], bool)]
        return infer_type([row[j] for _, row in sample], {formats.get((n, column), "") for n, _ in numeric})

    def _needs_inference(self) -> bool:
        assert self.layout is not None
        unhinted = any(name not in self.spec.hints for name in self.layout.names)
        return self.spec.value_render == "UNFORMATTED_VALUE" and unhinted

    def _formats(self, sample: list[tuple[int, list[Any]]]) -> dict[tuple[int, int], str]:
        """The number-format type of each sampled cell, keyed by (row, column), both 1-based."""
        box = self._box(sample[0][0], sample[-1][0])
        body = self.client.get(self._book_path(), {"ranges": box, "fields": FORMAT_FIELDS},
                               what=f"the number formats of {box}").body
        found: dict[tuple[int, int], str] = {}
        for sheet in body.get("sheets") or []:
            for data in sheet.get("data") or []:
                top, left = int(data.get("startRow", 0)), int(data.get("startColumn", 0))
                for i, row in enumerate(data.get("rowData") or []):
                    for j, cell in enumerate(row.get("values") or []):
                        kind = ((cell.get("effectiveFormat") or {}).get("numberFormat") or {}).get("type")
                        if kind:
                            found[(top + i + 1, left + j + 1)] = kind
        return found

    # -- batches ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._consumed:
            raise SourceError("a google_sheets stream can be iterated only once; open the source again")
        self._consumed = True
        return self._batches()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        layout = self.layout
        assert layout is not None and self._first is not None
        rows, self._first = self._first, None
        start = layout.first_row
        while start <= layout.last_row:
            if rows:
                yield self._batch(rows)
            start += self.spec.chunk_rows
            rows = self._rows(start) if start <= layout.last_row else []
        self.report.details["requests"] = self.client.requests_sent

    def _rows(self, start: int) -> list[tuple[int, list[Any]]]:
        """The non-blank rows of the chunk starting at row ``start``: padded, merged cells filled."""
        assert self.layout is not None
        end = min(start + self.spec.chunk_rows - 1, self.layout.last_row)
        width = len(self.layout.names)
        rows = []
        for i, raw in enumerate(self._values(self._box(start, end), self.spec.value_render)):
            row = list(raw[:width]) + [""] * (width - len(raw))
            self._fill_merged(start + i, row)
            if all(is_empty(value) for value in row):
                self.report.details["blank_rows"] += 1
            else:
                rows.append((start + i, row))
        return rows

    def _fill_merged(self, number: int, row: list[Any]) -> None:
        """Copy each merged region's top-left value into its other cells on this row (0-based merges)."""
        layout = self.layout
        assert layout is not None
        index, offset = number - 1, layout.first_col - 1
        for top, bottom, left, right in layout.merges:
            if not top <= index < bottom:
                continue
            if index == top and left >= offset:
                self._anchors[(top, left)] = row[left - offset] if left - offset < len(row) else ""
            value = self._anchors.get((top, left), "")
            for column in range(max(left, offset), min(right, offset + len(row))):
                if (index, column) != (top, left) and is_empty(row[column - offset]) and not is_empty(value):
                    row[column - offset] = value
                    self.report.details["merged_cells_filled"] += 1

    def _batch(self, rows: list[tuple[int, list[Any]]]) -> pa.RecordBatch:
        columns: list[list[Any]] = [[] for _ in self.schema]
        for number, row in rows:
            converted = self._convert(number, row)
            if converted is not None:
                for column, value in zip(columns, converted, strict=True):
                    column.append(value)
        self.report.details["rows"] += len(columns[0]) if columns else 0
        arrays = [pa.array(values, f.type) for values, f in zip(columns, self.schema, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _convert(self, number: int, row: list[Any]) -> list[Any] | None:
        """The row's typed values, or None after rejecting it (which raises unless bad rows are skipped)."""
        assert self.layout is not None
        values = []
        for j, (convert, value) in enumerate(zip(self._converters, row, strict=True)):
            try:
                values.append(convert(value))
            except (CellError, OverflowError) as exc:
                cell = f"{quote_sheet(self.sheet)}!{column_letters(self.layout.first_col + j)}{number}"
                reason = f"column {self.layout.names[j]!r}: the cell {exc} ({self.schema.field(j).type})"
                if not self.spec.skip_bad_rows:
                    raise SourceError(f"{cell}: {reason}. Fix the cell, declare the column's type in "
                                      "'columns', or set bad_rows='skip'") from None
                self.report.reject(cell, reason)
                return None
        return values

    # -- requests --------------------------------------------------------------------------------

    def _values(self, box: str, render: str) -> list[list[Any]]:
        path = f"{self._book_path()}/values/{urllib.parse.quote(box, safe='')}"
        params = {"valueRenderOption": render, "dateTimeRenderOption": "SERIAL_NUMBER",
                  "majorDimension": "ROWS"}
        body = self.client.get(path, params, what=f"the values of {box}").body
        return body.get("values") or []

    def _book_path(self) -> str:
        return f"/v4/spreadsheets/{urllib.parse.quote(self.spec.spreadsheet_id, safe='')}"

    def _box(self, first_row: int, last_row: int) -> str:
        assert self.layout is not None
        return self.spec.range.box(first_row, last_row, self.layout.first_col, self.layout.last_col)

    def state(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        self.client.close()
        self.auth.close()


def _merges(sheet: Mapping[str, Any]) -> list[Merge]:
    return [(int(m.get("startRowIndex", 0)), int(m.get("endRowIndex", 0)), int(m.get("startColumnIndex", 0)),
             int(m.get("endColumnIndex", 0))) for m in sheet.get("merges") or []]


def _zone(name: Any) -> tzinfo | None:
    """The spreadsheet's time zone (``timestamptz`` columns read wall times in it); None if unknown."""
    try:
        return zoneinfo.ZoneInfo(str(name)) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
