"""Google Sheets source against the loopback double: typed columns, empty, ragged and merged cells,
headers, hints, bad rows, chunked reads and the API's errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.google_sheets import GoogleSheetsSource, parse_spec
from dativo_provider.sources.http import ApiAuthError, ApiNotFoundError, ApiRequestError, ApiUnavailableError
from dativo_provider.sources.sheets_values import A1Range, infer_type, parse_a1, serial_to_datetime
from tests.doubles.google_api import google_error, sheets_error
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    clock,
    google,
    google_config,
    service_account_info,
)

BOOK = "1SheetDouble"
FAST = {"max_attempts": 4, "base_delay": 0.5, "max_delay": 2.0, "jitter": 0.0}
HEADER = ["id", "region", "amount", "paid", "day", "at", "slot", "note"]
ROWS = [
    [1, "EU", 10.5, True, date(2024, 1, 15), datetime(2024, 1, 15, 13, 45, 30, 250000), time(9, 30), "first"],
    [2, None, 3, False, date(2024, 1, 16), datetime(2024, 1, 16), time(17, 0)],  # ragged: no note
    [],  # a blank row
    [3, "US", 7.25, None, None, None, None, "third"],
]


def sheets(google_config, clock, **spec):
    spec = {"type": "google_sheets", "spreadsheet_id": BOOK, "range": "Orders", "retry": FAST, **spec}
    return GoogleSheetsSource(parse_spec(spec), google_config, clock=clock)


@pytest.fixture
def book(google):
    return google.add_spreadsheet(BOOK, "Shop", time_zone="Europe/Berlin")


def values_calls(google) -> list[str]:
    return [r.path.split("/values/")[1] for r in google.requests if "/values/" in r.path]


def test_columns_are_typed_from_values_and_number_formats(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [HEADER, *ROWS])
    table, state = read_all(sheets(google_config, clock))

    assert state is None
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("id", "int64"), ("region", "string"), ("amount", "double"), ("paid", "bool"), ("day", "date32[day]"),
        ("at", "timestamp[us]"), ("slot", "time64[us]"), ("note", "string"),
    ]
    assert table.to_pylist() == [
        {"id": 1, "region": "EU", "amount": 10.5, "paid": True, "day": date(2024, 1, 15),
         "at": datetime(2024, 1, 15, 13, 45, 30, 250000), "slot": time(9, 30), "note": "first"},
        {"id": 2, "region": None, "amount": 3.0, "paid": False, "day": date(2024, 1, 16),
         "at": datetime(2024, 1, 16), "slot": time(17, 0), "note": None},
        {"id": 3, "region": "US", "amount": 7.25, "paid": None, "day": None, "at": None, "slot": None,
         "note": "third"},
    ]


def test_requests_follow_the_sheets_api(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [HEADER, *ROWS])
    read_all(sheets(google_config, clock))

    metadata = [r for r in google.requests if r.path == f"/v4/spreadsheets/{BOOK}"]
    assert [r.param("ranges") for r in metadata] == ["'Orders'", "'Orders'!A2:H5"]
    assert "merges" in metadata[0].param("fields") and "numberFormat" in metadata[1].param("fields")
    header, data = [r for r in google.requests if "/values/" in r.path]
    assert header.param("valueRenderOption") == "FORMATTED_VALUE"
    assert (data.param("valueRenderOption"), data.param("dateTimeRenderOption"), data.param("majorDimension")) == (
        "UNFORMATTED_VALUE", "SERIAL_NUMBER", "ROWS")
    assert all(r.headers["authorization"].startswith("Bearer ya29.") for r in google.requests if r.path != "/token")


def test_large_sheets_are_read_in_chunks_within_the_grid(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [["n"], *[[n] for n in range(1, 26)]], row_count=30)
    with sheets(google_config, clock, chunk_rows=10, sample_rows=5).open(None, ReadBounds()) as stream:
        batches = list(stream)
    assert [b.num_rows for b in batches] == [10, 10, 5]
    # The header row is read to the grid's edge; the data only as wide as the header.
    assert values_calls(google) == ["%27Orders%27%21A1%3AZ1", "%27Orders%27%21A2%3AA11",
                                    "%27Orders%27%21A12%3AA21", "%27Orders%27%21A22%3AA30"]
    assert stream.report.details["rows"] == 25 and stream.report.details["blank_rows"] == 0


def test_blank_rows_are_skipped_and_counted(google, google_config, clock, book):
    book.put_sheet("Orders", [HEADER, *ROWS])
    with sheets(google_config, clock).open(None, ReadBounds()) as stream:
        assert sum(b.num_rows for b in stream) == 3
    assert stream.report.details["blank_rows"] == 1


def test_merged_cells_are_filled_from_their_top_left_cell(google, google_config, clock, book, read_all):
    rows = [["region", "city", "sales"], ["EU", "Berlin", 1], [None, "Paris", 2], [None, "Rome", 3], ["US", "NYC", 4]]
    # EU is merged down rows 2-4 (0-based 1..3) of column A; the region crosses a chunk boundary.
    book.put_sheet("Orders", rows, merges=[(1, 4, 0, 1), (0, 1, 1, 3)])
    filled, _ = read_all(sheets(google_config, clock, chunk_rows=2))
    assert filled.column("region").to_pylist() == ["EU", "EU", "EU", "US"]
    with sheets(google_config, clock, chunk_rows=2).open(None, ReadBounds()) as stream:
        list(stream)
    assert stream.report.details["merged_cells_filled"] == 2

    plain, _ = read_all(sheets(google_config, clock, merged_cells="null"))
    assert plain.column("region").to_pylist() == ["EU", None, None, "US"]


def test_headers_blank_become_letters_duplicates_fail(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [["Report for January"], [" id ", None, "total"], [1, "x", 2]])
    table, _ = read_all(sheets(google_config, clock, header_row=2))
    assert table.column_names == ["id", "B", "total"]
    assert table.to_pylist() == [{"id": 1, "B": "x", "total": 2}]

    book.put_sheet("Dupes", [["id", "amount", "amount"], [1, 2, 3]])
    with pytest.raises(SourceError, match="header 'amount' is in columns B and C"):
        read_all(sheets(google_config, clock, range="Dupes"))
    book.put_sheet("Empty", [[], [1]])
    with pytest.raises(SourceError, match="the header row is empty"):
        read_all(sheets(google_config, clock, range="Empty"))


def test_no_header_names_columns_by_letter_within_the_box(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [["skip", 1, "a"], ["skip", 2, "b"]])
    table, _ = read_all(sheets(google_config, clock, range="Orders!B1:C", header_row=0))
    assert table.to_pylist() == [{"B": 1, "C": "a"}, {"B": 2, "C": "b"}]


def test_hints_override_inference(google, google_config, clock, book, read_all):
    rows = [["sku", "price", "at", "qty", "on"], ["00123", 19.99, datetime(2024, 7, 1, 12, 0), "42", "2024-07-01"],
            [5, 0.1, datetime(2024, 12, 1, 12, 0), 7, None]]
    book.put_sheet("Orders", rows)
    hints = {"sku": "string", "price": "decimal(10,2)", "at": "timestamptz", "qty": "int64", "on": "date"}
    table, _ = read_all(sheets(google_config, clock, columns=hints))
    assert str(table.schema.field("price").type) == "decimal128(10, 2)"
    assert table.to_pylist() == [
        {"sku": "00123", "price": Decimal("19.99"), "qty": 42, "on": date(2024, 7, 1),
         "at": datetime(2024, 7, 1, 10, 0, tzinfo=UTC)},  # Berlin summer time is UTC+2
        {"sku": "5", "price": Decimal("0.10"), "qty": 7, "on": None, "at": datetime(2024, 12, 1, 11, 0, tzinfo=UTC)},
    ]
    with pytest.raises(ConfigError, match=r"'columns' names \['nope'\], which are not in the header"):
        read_all(sheets(google_config, clock, columns={"nope": "string"}))


def test_a_later_value_that_does_not_fit_fails_naming_the_cell_or_is_skipped(google, google_config, clock, book,
                                                                             read_all):
    rows = [["id", "amount"], *[[n, n * 1.5] for n in range(1, 6)], ["seven", 7.5], [8, "#N/A"], [9, 9.0]]
    book.put_sheet("Orders", rows)
    with pytest.raises(SourceError, match=r"'Orders'!A7: column 'id': the cell is not a whole number") as failure:
        read_all(sheets(google_config, clock, sample_rows=5))
    assert "seven" not in str(failure.value)

    with sheets(google_config, clock, sample_rows=5, bad_rows="skip").open(None, ReadBounds()) as stream:
        table = pa.Table.from_batches(list(stream), stream.schema)
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5, 9]
    assert [(r.location, r.reason) for r in stream.report.rejected_samples] == [
        ("'Orders'!A7", "column 'id': the cell is not a whole number (int64)"),
        ("'Orders'!B8", "column 'amount': the cell holds a formula error (double)"),
    ]


def test_formatted_value_reads_what_the_sheet_shows(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [["id", "day", "ok"], [1, date(2024, 1, 15), True]])
    table, _ = read_all(sheets(google_config, clock, value_render="FORMATTED_VALUE"))
    assert table.to_pylist() == [{"id": "1", "day": "2024-01-15", "ok": "TRUE"}]
    with pytest.raises(ConfigError, match="every column is text"):
        parse_spec({"spreadsheet_id": BOOK, "range": "Orders", "value_render": "FORMATTED_VALUE",
                    "columns": {"id": "int64"}})


def test_retries_on_429_and_500_while_reading_chunks(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [["n"], *[[n] for n in range(1, 6)]], row_count=6)
    chunk = lambda r: r.path.endswith("A4%3AA5")  # noqa: E731
    google.fail(429, google_error(429, "Quota exceeded for quota metric 'Read requests'").body,
                headers={"Retry-After": "12"}, match=chunk)
    google.fail(500, google_error(500, "Internal error encountered.").body, match=chunk)
    table, _ = read_all(sheets(google_config, clock, chunk_rows=2))
    assert table.column("n").to_pylist() == [1, 2, 3, 4, 5]
    assert clock.sleeps == [12.0, 1.0]  # Retry-After, then the second backoff step


def test_unknown_sheets_and_spreadsheets_fail_clearly(google, google_config, clock, book, read_all):
    book.put_sheet("Orders", [["id"], [1]])
    with pytest.raises(ApiRequestError, match="Unable to parse range: 'Nope'"):
        read_all(sheets(google_config, clock, range="Nope"))
    with pytest.raises(ApiNotFoundError, match="spreadsheet 'missing'"):
        read_all(sheets(google_config, clock, spreadsheet_id="missing"))


@pytest.mark.parametrize("name", ["Q1", "FY2024", "My Sheet", "O'Brien", "R1C1"])
def test_sheet_names_that_look_like_cells_or_hold_quotes_read_their_own_sheet(google, google_config, clock, book,
                                                                               read_all, name):
    # Unquoted, Q1 is the cell Q1 of the first sheet and FY2024 a cell beyond its grid (Google's A1 guide).
    book.put_sheet("Summary", [["id", "what"], [0, "the first sheet"]])
    book.put_sheet(name, [["id", "what"], [1, f"sheet {name}"], [2, "second row"]])
    table, _ = read_all(sheets(google_config, clock, range="'" + name.replace("'", "''") + "'"))
    assert table.to_pylist() == [{"id": 1, "what": f"sheet {name}"}, {"id": 2, "what": "second row"}]
    quoted = "'" + name.replace("'", "''") + "'"
    assert {r.param("ranges") for r in google.requests if r.path == f"/v4/spreadsheets/{BOOK}"} == {
        quoted, f"{quoted}!A2:B3"}


def test_the_double_reads_unquoted_cell_like_names_as_the_api_does(book):
    from tests.doubles.google_sheets_model import RangeError

    book.put_sheet("Summary", [["first"]])
    book.put_sheet("Q1", [["q1"]])
    assert book.values("Q1", "FORMATTED_VALUE", "SERIAL_NUMBER")["range"] == "Summary!Q1:Q1"  # a cell of sheet 1
    assert book.values("'Q1'!A1", "FORMATTED_VALUE", "SERIAL_NUMBER")["values"] == [["q1"]]
    for unparsable in ("Q1!A1:B2", "FY2024", "My Sheet!A1"):
        with pytest.raises(RangeError):
            book.values(unparsable, "FORMATTED_VALUE", "SERIAL_NUMBER")


def test_a_spreadsheet_not_shared_with_the_account_fails_saying_so(google, google_config, clock, read_all):
    google.add_spreadsheet("1Private", shared=False).put_sheet("Orders", [["id"], [1]])
    with pytest.raises(SourceError, match=f"spreadsheet '1Private' is not shared with the service account "
                                          f"{CLIENT_EMAIL}: share it") as failure:
        read_all(sheets(google_config, clock, spreadsheet_id="1Private"))
    assert not isinstance(failure.value, ApiAuthError)


def test_sheets_error_info_is_read_a_missing_scope_stays_an_auth_error(google, google_config, clock, book,
                                                                       read_all):
    book.put_sheet("Orders", [["id"], [1]])
    scope = sheets_error(403, "Request had insufficient authentication scopes.", "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                         metadata={"service": "sheets.googleapis.com", "method": "google.apps.sheets.v4.Get"})
    google.fail(403, scope.body, match=lambda r: r.path.startswith("/v4/"))
    with pytest.raises(ApiAuthError, match=r"\(ACCESS_TOKEN_SCOPE_INSUFFICIENT; "
                                           r"method=google\.apps\.sheets\.v4\.Get; service=sheets\.googleapis\.com\)"):
        read_all(sheets(google_config, clock))
    quota = sheets_error(429, "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per "
                              "minute per user'", "RATE_LIMIT_EXCEEDED",
                         metadata={"quota_metric": "sheets.googleapis.com/read_requests",
                                   "service": "sheets.googleapis.com"})
    google.fail(429, quota.body, times=None, match=lambda r: r.path.startswith("/v4/"))
    with pytest.raises(ApiUnavailableError, match=r"RATE_LIMIT_EXCEEDED; quota_metric=sheets\.googleapis\.com/"
                                                  r"read_requests"):
        read_all(sheets(google_config, clock, retry={**FAST, "max_attempts": 2}))


def test_the_source_demands_a_write_mode_that_does_not_duplicate(google_config, clock):
    source = sheets(google_config, clock, range="'Q1 plan'!A1:F")
    assert source.may_repeat_rows
    assert source.identity == f"gsheets://{BOOK}/'Q1 plan'!A1:F"
    assert source.lineage.name == f"{BOOK}/Q1 plan"
    with pytest.raises(ConfigError, match="'lookback' does not apply"):
        source.open(None, ReadBounds(lookback=1))


@pytest.mark.parametrize(("text", "expected"), [
    ("Sheet1", A1Range("Sheet1")),
    ("Sheet1!A1:Z", A1Range("Sheet1", 1, 1, 26, None)),
    ("'My ''best'' sheet'!B3:F100", A1Range("My 'best' sheet", 2, 3, 6, 100)),
    ("Data!C:E", A1Range("Data", 3, 1, 5, None)),
    ("Data!AA10", A1Range("Data", 27, 10, 27, 10)),
])
def test_a1_ranges(text, expected):
    assert parse_a1(text) == expected


@pytest.mark.parametrize("text", ["", "!A1:B2", "Sheet!Z1:A1", "'open", "Sheet!1A"])
def test_bad_a1_ranges(text):
    with pytest.raises(ConfigError, match="'range'"):
        parse_a1(text)


def test_serials_convert_exactly_to_the_millisecond():
    assert serial_to_datetime(45306.573263888889) == datetime(2024, 1, 15, 13, 45, 30)
    assert serial_to_datetime(0) == datetime(1899, 12, 30)
    assert serial_to_datetime(-1.5) == datetime(1899, 12, 28, 12, 0)


@pytest.mark.parametrize(("values", "formats", "expected"), [
    ([], set(), pa.string()),
    ([True, False, ""], set(), pa.bool_()),
    ([1, 2.0, "#N/A"], set(), pa.int64()),
    ([1, 2.5], {"CURRENCY"}, pa.float64()),
    ([45306, 45307], {"DATE"}, pa.date32()),
    ([45306, 45307.5], {"DATE", "DATE_TIME"}, pa.timestamp("us")),
    ([45306, 45307], {"DATE", ""}, pa.int64()),
    ([0.25], {"TIME"}, pa.time64("us")),
    ([1, "one"], set(), pa.string()),
    ([True, 1], set(), pa.string()),
])
def test_inference_rules(values, formats, expected):
    assert infer_type(values, formats) == expected
