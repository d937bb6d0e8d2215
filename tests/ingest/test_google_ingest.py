"""Google Drive and Sheets → Iceberg through the real engine and the loopback double: each Drive file
version exactly once across pages and runs, nothing committed by a run that fails mid-paging, typed
Sheets columns read back from the table, and no secret in logs, errors or the table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from dativo_provider.connections import GoogleConfig
from dativo_provider.exceptions import ConfigError, DativoError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.google_drive import GoogleDriveSource
from dativo_provider.sources.google_drive import parse_spec as drive_spec
from dativo_provider.sources.google_sheets import GoogleSheetsSource
from dativo_provider.sources.google_sheets import parse_spec as sheets_spec
from dativo_provider.sources.http import ApiAuthError, ApiUnavailableError
from tests.doubles.google_api import google_error, make_service_account_key
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    clock,
    google,
    google_config,
    key_marker,
    service_account_info,
)

T0 = datetime(2024, 4, 1, 8, 0, tzinfo=UTC)
RETRY = {"max_attempts": 3, "base_delay": 0.5, "max_delay": 1.0, "jitter": 0.0}
COLUMNS = {"id": "int64", "version": "string"}


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def csv(*rows: tuple[int, str]) -> bytes:
    return ("id,version\n" + "".join(f"{i},{v}\n" for i, v in rows)).encode()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def drive(config, clock, folder: str):
    spec = {"type": "google_drive", "folder_id": folder, "columns": COLUMNS, "page_size": 2, "retry": RETRY}
    return GoogleDriveSource(drive_spec(spec), config, clock=clock)


def rows(catalog, table: str = "lake.files") -> list[tuple]:
    data = catalog.load().load_table(table).scan().to_arrow()
    return sorted(zip(data.column("id").to_pylist(), data.column("version").to_pylist(), strict=True))


def snapshots(catalog, table: str = "lake.files") -> int:
    return len(catalog.load().load_table(table).snapshots())


def is_list_page(request, page: int) -> bool:
    """The ``page``-th page (0-based) of a files.list call; the double's tokens carry the offset."""
    token = request.param("pageToken")
    return request.path == "/drive/v3/files" and (token is not None) == (page > 0)


def test_drive_incremental_runs_write_each_file_version_exactly_once(google, google_config, clock, catalog):
    folder = google.add_folder("landing")
    files = {n: google.add_file(f"part-{n}.csv", folder, csv((n, "v1")), at(n)) for n in range(5)}
    first = run_ingest(drive(google_config, clock, folder), catalog, "lake.files")

    google.update_file(files[1], csv((1, "v2"), (11, "v2")), at(10))  # modified
    google.add_file("part-5.csv", folder, csv((5, "v1")), at(10))  # new, same modifiedTime
    google.add_file("part-6.csv", folder, csv((6, "v1")), at(11))
    second = run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    third = run_ingest(drive(google_config, clock, folder), catalog, "lake.files")

    assert [r.rows_written for r in (first, second, third)] == [5, 4, 0]
    pages = [r for r in google.requests if r.path == "/drive/v3/files"]
    assert len(pages) == 3 + 4 + 4, "2 items a page: 5 files, then 7 files twice"
    assert second.watermark_before == first.watermark_after
    assert [f["path"] for f in second.source_details["files"]] == [
        "gdrive:part-1.csv", "gdrive:part-5.csv", "gdrive:part-6.csv"]
    assert rows(catalog) == sorted([(n, "v1") for n in range(7)] + [(1, "v2"), (11, "v2")])
    assert snapshots(catalog) == 2, "a run that reads nothing commits nothing"


def test_a_failure_mid_paging_commits_nothing_and_the_next_run_recovers(google, google_config, clock, catalog):
    folder = google.add_folder("landing")
    for n in range(3):
        google.add_file(f"a-{n}.csv", folder, csv((n, "v1")), at(n))
    run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    for n in range(3, 8):
        google.add_file(f"b-{n}.csv", folder, csv((n, "v1")), at(n))

    google.fail(503, google_error(503, "Backend Error", "backendError").body, times=None,
                match=lambda r: is_list_page(r, 2))
    with pytest.raises(ApiUnavailableError, match="HTTP 503"):
        run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    assert rows(catalog) == [(n, "v1") for n in range(3)] and snapshots(catalog) == 1

    google.clear_faults()
    google.fail(500, google_error(500, "Internal Error").body, times=None,
                match=lambda r: "/revisions/" in r.path and google.files[r.path.split("/")[4]].name == "b-6.csv")
    with pytest.raises(ApiUnavailableError, match="the content of gdrive:b-6.csv"):
        run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    assert rows(catalog) == [(n, "v1") for n in range(3)] and snapshots(catalog) == 1, "files 3-5 were not committed"

    google.clear_faults()
    recovered = run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    assert recovered.rows_written == 5
    assert rows(catalog) == [(n, "v1") for n in range(8)]


def sheets(config, clock, **spec):
    spec = {"type": "google_sheets", "spreadsheet_id": "1Book", "range": "Stock", "retry": RETRY, **spec}
    return GoogleSheetsSource(sheets_spec(spec), config, clock=clock)


def test_sheet_columns_empty_and_merged_cells_read_back_from_iceberg(google, google_config, clock, catalog):
    book = google.add_spreadsheet("1Book", "Inventory")
    book.put_sheet("Stock", [
        ["warehouse", "sku", "count", "price", "counted_on", "active"],
        ["Berlin", "A-1", 10, 2.5, date(2024, 4, 1), True],
        [None, "A-2", None, 3, date(2024, 4, 2)],
        [None, "A-3", 7, None, None, False],
        ["Paris", "B-1", 0, 1.25, date(2024, 4, 3), True],
    ], merges=[(1, 4, 0, 1)])
    options = WriteOptions(mode="replace")
    result = run_ingest(sheets(google_config, clock, columns={"price": "decimal(8,2)"}), catalog, "lake.stock", options)

    table = catalog.load().load_table("lake.stock")
    assert [(f.name, str(f.field_type)) for f in table.schema().fields] == [
        ("warehouse", "string"), ("sku", "string"), ("count", "long"), ("price", "decimal(8, 2)"),
        ("counted_on", "date"), ("active", "boolean")]
    data = sorted(table.scan().to_arrow().to_pylist(), key=lambda row: row["sku"])
    assert [row["warehouse"] for row in data] == ["Berlin", "Berlin", "Berlin", "Paris"]
    assert [row["count"] for row in data] == [10, None, 7, 0]
    assert [str(row["price"]) if row["price"] is not None else None for row in data] == ["2.50", "3.00", None, "1.25"]
    assert [row["active"] for row in data] == [True, None, False, True]
    assert data[1]["counted_on"] == date(2024, 4, 2)
    assert result.source_details["merged_cells_filled"] == 2

    book.put_sheet("Stock", [["warehouse", "sku", "count", "price", "counted_on", "active"],
                             ["Rome", "C-1", 3, 9.99, date(2024, 4, 9), True]])
    again = run_ingest(sheets(google_config, clock, columns={"price": "decimal(8,2)"}), catalog, "lake.stock", options)
    assert (again.rows_written, again.rows_deleted) == (1, 4)
    assert [row["sku"] for row in catalog.load().load_table("lake.stock").scan().to_arrow().to_pylist()] == ["C-1"]


def test_a_sheet_refuses_append_because_every_run_reads_it_whole(google_config, clock, catalog):
    with pytest.raises(ConfigError, match="mode 'merge'"):
        run_ingest(sheets(google_config, clock), catalog, "lake.stock", WriteOptions(mode="append"))


def test_the_service_account_key_and_tokens_never_reach_logs_errors_or_the_table(
    google, google_config, service_account_info, clock, catalog, caplog
):
    caplog.set_level("DEBUG")
    folder = google.add_folder("landing")
    google.add_file("a.csv", folder, csv((1, "v1")), at(1))
    wrong_key, _ = make_service_account_key(f"{google.url}/token", CLIENT_EMAIL)
    failing = GoogleConfig(service_account_info=wrong_key, drive_url=google.url, conn_id="google_bad")

    with pytest.raises(ApiAuthError) as failure:
        run_ingest(drive(failing, clock, folder), catalog, "lake.files")
    passing = run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    google.expire_tokens()  # the next run mints a new token after a 401: that path is logged too
    google.add_file("b.csv", folder, csv((2, "v1")), at(2))
    run_ingest(drive(google_config, clock, folder), catalog, "lake.files")

    assert passing.rows_written == 1 and "google_bad" in str(failure.value)
    assertions = [r.body["assertion"] for r in google.requests_to("/token")]
    secrets = [key_marker(service_account_info), key_marker(wrong_key), *google.issued, *assertions]
    assert len(google.issued) == 2
    table = catalog.load().load_table("lake.files")
    haystacks = {
        "logs": caplog.text,
        "error": f"{failure.value!r} {failure.value}",
        "summary": json.dumps(passing.to_dict(), default=str),
        "table metadata": table.metadata.model_dump_json(),
        "config repr": repr(google_config) + repr(failing),
    }
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret reached the {where}"
    assert isinstance(failure.value, DativoError) and not failure.value.retryable


def test_an_unshared_folder_fails_the_run_and_later_files_are_read_once_it_is_shared(google, google_config, clock,
                                                                                    catalog):
    folder = google.add_folder("finance", shared=False)
    google.add_file("a.csv", folder, csv((1, "v1")), at(1))
    with pytest.raises(DativoError, match=f"not shared with the service account {CLIENT_EMAIL}") as failure:
        run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    assert not failure.value.retryable
    assert not catalog.load().table_exists("lake.files"), "a run that cannot see its folder writes nothing"

    google.files[folder].shared = True  # the folder is shared with the account
    result = run_ingest(drive(google_config, clock, folder), catalog, "lake.files")
    assert result.rows_written == 1 and rows(catalog) == [(1, "v1")]
