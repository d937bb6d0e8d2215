"""Google Drive source against the loopback double: listing and paging, filters, downloads through the
files source's CSV reader, incremental file versions, retries and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dativo_provider.exceptions import ConfigError, SourceError, TransientError
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.google_drive import GoogleDriveSource, parse_spec
from dativo_provider.sources.google_auth import ExportLimitError
from dativo_provider.sources.http import ApiAuthError, ApiNotFoundError
from tests.doubles.google_api import EXPORT_LIMIT_BYTES, google_error
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    clock,
    google,
    google_config,
    service_account_info,
)
from tests.doubles.server import Fault, Response

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LIST = "/drive/v3/files"
FAST = {"max_attempts": 4, "base_delay": 0.5, "max_delay": 2.0, "jitter": 0.0}


def csv(*rows: tuple) -> bytes:
    return ("id,name\n" + "".join(f"{i},{name}\n" for i, name in rows)).encode()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def drive(google_config, clock, folder: str, **spec):
    spec = {"type": "google_drive", "folder_id": folder, "retry": FAST, **spec}
    return GoogleDriveSource(parse_spec(spec), google_config, clock=clock)


def downloads(google) -> list[str]:
    return [r.path.split("/")[4] for r in google.requests if r.path.startswith("/drive/v3/files/")]


def ids(table) -> list[int]:
    return sorted(table.column("id").to_pylist())


@pytest.fixture
def folder(google) -> str:
    return google.add_folder("exports")


def test_lists_every_page_with_the_parent_filter_and_reads_each_csv(google, google_config, clock, folder, read_all):
    for n in range(5):
        google.add_file(f"orders_{n}.csv", folder, csv((n, f"n{n}")), at(n))
    table, state = read_all(drive(google_config, clock, folder, page_size=2))

    assert ids(table) == [0, 1, 2, 3, 4]
    pages = [r for r in google.requests if r.path == LIST]
    assert [p.param("pageToken") is None for p in pages] == [True, False, False]
    first = pages[0]
    assert first.param("q") == f"'{folder}' in parents and trashed = false"
    assert first.param("pageSize") == "2"
    assert (first.param("supportsAllDrives"), first.param("includeItemsFromAllDrives")) == ("true", "true")
    for name in ("id", "name", "mimeType", "modifiedTime", "md5Checksum", "size", "headRevisionId"):
        assert name in first.param("fields")
    assert all(r.headers["authorization"].startswith("Bearer ya29.") for r in pages)
    assert state["watermark"].startswith("2024-03-01T09:04:00")


def test_recursive_glob_trash_and_google_types(google, google_config, clock, folder, read_all):
    sub = google.add_folder("2024", folder)
    google.add_file("a.csv", folder, csv((1, "a")), at(1))
    google.add_file("b.csv", sub, csv((2, "b")), at(2))
    google.add_file("notes.txt", folder, b"not csv", at(3), mime_type="text/plain")
    google.trash(google.add_file("gone.csv", folder, csv((9, "trashed")), at(4)))
    google.add_file("doc", folder, b"", at(5), mime_type="application/vnd.google-apps.document")
    google.add_google_sheet("sheet.csv", folder, csv((3, "from a sheet")), at(6))

    flat, _ = read_all(drive(google_config, clock, folder, glob="*.csv"))
    assert ids(flat) == [1]
    deep, _ = read_all(drive(google_config, clock, folder, glob="*.csv", recursive=True,
                             export_google_sheets=True))
    assert ids(deep) == [1, 2, 3]
    exports = [r for r in google.requests if r.path.endswith("/export")]
    assert [r.param("mimeType") for r in exports] == ["text/csv"]


def test_shared_drive_items_are_listed(google, google_config, clock, read_all):
    shared = google.add_folder("team", drive_id="0AshareD")
    google.add_file("x.csv", shared, csv((7, "x")), at(1), drive_id="0AshareD")
    table, _ = read_all(drive(google_config, clock, shared))
    assert ids(table) == [7]


def test_incremental_reads_each_new_or_modified_version_once(google, google_config, clock, folder, read_all):
    first = google.add_file("a.csv", folder, csv((1, "a1")), at(1))
    google.add_file("b.csv", folder, csv((2, "b1")), at(2))
    source = drive(google_config, clock, folder, page_size=1)
    _, state = read_all(source)

    google.update_file(first, csv((1, "a2")), at(3))
    google.add_file("c.csv", folder, csv((3, "c1")), at(3))  # same modifiedTime as the update
    google.clear_log()
    table, state = read_all(source, state)
    assert sorted(table.column("name").to_pylist()) == ["a2", "c1"]
    assert state["manifest_files"] == 3
    assert len(downloads(google)) == 2 + 1, "two new versions (and the schema sample); b.csv is not downloaded"

    google.clear_log()
    table, again = read_all(source, state)
    assert table.num_rows == 0 and again == state


def test_the_listed_revision_is_read_even_if_the_file_changes_meanwhile(google, google_config, clock, folder,
                                                                         read_all):
    file_id = google.add_file("a.csv", folder, csv((1, "listed")), at(1))

    def change_on_download(request) -> None:
        if "/revisions/" in request.path and not google.files[file_id].version > 1:
            google.update_file(file_id, csv((1, "changed")), at(2))

    google.before.append(change_on_download)
    source = drive(google_config, clock, folder, columns={"id": "int64", "name": "string"})
    table, state = read_all(source)
    assert table.column("name").to_pylist() == ["listed"]
    table, _ = read_all(source, state)
    assert table.column("name").to_pylist() == ["changed"], "the newer version is read by the next run"


def test_an_md5_mismatch_is_downloaded_again(google, google_config, clock, folder, read_all):
    google.add_file("a.csv", folder, csv((1, "a")), at(1))
    truncated = Response(200, None, {"Content-Type": "text/csv"}, raw=b"id,name\n1,")
    google.faults.append(Fault(truncated, 1, lambda r: "/revisions/" in r.path))
    table, _ = read_all(drive(google_config, clock, folder, columns={"id": "int64", "name": "string"}))
    assert table.column("name").to_pylist() == ["a"]
    assert clock.sleeps == [0.5]


def test_429_with_retry_after_and_500_then_success_are_retried(google, google_config, clock, folder, read_all):
    for n in range(3):
        google.add_file(f"{n}.csv", folder, csv((n, "x")), at(n))
    google.fail(429, google_error(429, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits").body,
                headers={"Retry-After": "3"}, match=lambda r: r.path == LIST and r.param("pageToken") is not None)
    google.fail(500, google_error(500, "Internal Error", "backendError").body,
                match=lambda r: "/revisions/" in r.path)
    table, _ = read_all(drive(google_config, clock, folder, page_size=2))
    assert ids(table) == [0, 1, 2]
    assert clock.sleeps == [3.0, 0.5]


def test_an_expired_token_is_replaced_mid_run(google, google_config, clock, folder, read_all):
    google.add_file("a.csv", folder, csv((1, "a")), at(1))
    google.add_file("b.csv", folder, csv((2, "b")), at(2))
    seen = []

    def expire_before_the_second_download(request) -> None:
        if "/revisions/" in request.path:
            seen.append(request.path)
            if len(seen) == 2:
                google.expire_tokens()

    google.before.append(expire_before_the_second_download)
    table, _ = read_all(drive(google_config, clock, folder, columns={"id": "int64", "name": "string"}))
    assert ids(table) == [1, 2]
    assert len(google.requests_to("/token")) == 2


def test_bad_rows_fail_naming_file_and_line_or_are_skipped(google, google_config, clock, folder, read_all):
    google.add_file("a.csv", folder, b"id,name\n1,ok\nnot-a-number,x\n3,ok\n", at(1))
    columns = {"id": "int64", "name": "string"}
    with pytest.raises(SourceError, match=r"gdrive:a\.csv:3: column 'id'") as failure:
        read_all(drive(google_config, clock, folder, columns=columns))
    assert "not-a-number" not in str(failure.value)

    with drive(google_config, clock, folder, columns=columns, bad_rows="skip").open(None, ReadBounds()) as stream:
        assert sum(batch.num_rows for batch in stream) == 2
        assert stream.report.rows_rejected == 1
        assert stream.report.rejected_samples[0].location == "gdrive:a.csv:3"


def test_schema_is_inferred_from_the_oldest_file_and_csv_options_apply(google, google_config, clock, folder,
                                                                       read_all):
    google.add_file("new.csv", folder, b"id;amount\n2;2.5\n", at(2))
    google.add_file("old.csv", folder, b"id;amount\n1;1.5\n", at(1))
    table, _ = read_all(drive(google_config, clock, folder, csv={"delimiter": ";"}))
    assert str(table.schema) == "id: int64\namount: double"
    assert table.sort_by("id").column("amount").to_pylist() == [1.5, 2.5]


def test_upper_bound_leaves_later_files_for_a_later_run(google, google_config, clock, folder, read_all):
    google.add_file("a.csv", folder, csv((1, "a")), at(1))
    google.add_file("b.csv", folder, csv((2, "b")), at(10))
    source = drive(google_config, clock, folder)
    table, state = read_all(source, None, ReadBounds(upper=at(5)))
    assert ids(table) == [1]
    table, _ = read_all(source, state)
    assert ids(table) == [2]


def test_an_empty_folder_needs_declared_columns(google, google_config, clock, folder, read_all):
    with pytest.raises(SourceError, match="no file in folder .* declare|declared"):
        read_all(drive(google_config, clock, folder))
    table, state = read_all(drive(google_config, clock, folder, columns={"id": "int64"}))
    assert table.num_rows == 0 and state is None


COLUMNS = {"id": "int64", "name": "string"}


@pytest.mark.parametrize("where", ["unshared", "missing"])
def test_a_folder_the_account_cannot_see_fails_saying_so(google, google_config, clock, read_all, where):
    unshared = google.add_folder("finance", shared=False)
    google.add_file("orders.csv", unshared, csv((1, "a")), at(1))
    folder = unshared if where == "unshared" else "1NoSuchFolder"
    # Drive lists both as an empty folder, with 200; only files.get on the folder tells them apart.
    with pytest.raises(SourceError, match=f"folder '{folder}' is not shared with the service account "
                                          f"{CLIENT_EMAIL} or does not exist") as failure:
        read_all(drive(google_config, clock, folder, columns=COLUMNS))
    assert not isinstance(failure.value, ApiAuthError)
    check = [r for r in google.requests if r.path == f"/drive/v3/files/{folder}"]
    assert [(r.param("supportsAllDrives"), r.param("fields")) for r in check] == [("true", "id,name,mimeType")]


def test_a_visible_empty_folder_reads_nothing_and_a_file_id_is_not_a_folder(google, google_config, clock, folder,
                                                                            read_all):
    table, state = read_all(drive(google_config, clock, folder, columns=COLUMNS))
    assert table.num_rows == 0 and state is None
    sheet = google.add_file("orders.csv", folder, csv((1, "a")), at(1))
    with pytest.raises(SourceError, match=r"'orders\.csv'\) is a text/csv file, not a folder"):
        read_all(drive(google_config, clock, sheet, columns=COLUMNS))


def test_a_glob_that_matches_nothing_warns(google, google_config, clock, folder, read_all, caplog):
    google.add_file("orders.csv", folder, csv((1, "a")), at(1))
    with caplog.at_level("WARNING", logger="dativo_provider.sources.google_drive"):
        table, _ = read_all(drive(google_config, clock, folder, glob="invoices_*.csv", columns=COLUMNS))
    assert table.num_rows == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"Google Drive folder {folder!r} lists 1 item(s) but no csv file matches glob 'invoices_*.csv'"]
    assert not [r for r in google.requests if r.path == f"/drive/v3/files/{folder}"], "a non-empty folder is visible"


def test_partial_and_empty_pages_are_followed_to_the_last_token(google, google_config, clock, folder, read_all):
    for n in range(5):
        google.add_file(f"orders_{n}.csv", folder, csv((n, f"n{n}")), at(n))
    google.page_sizes = [0, 1, 0, 2]  # then pageSize (1000): the last two files
    table, _ = read_all(drive(google_config, clock, folder))
    assert ids(table) == [0, 1, 2, 3, 4]
    assert len([r for r in google.requests if r.path == LIST]) == 5


def test_an_incomplete_search_fails_the_run_before_anything_is_read(google, google_config, clock, folder,
                                                                   read_all):
    google.add_file("orders.csv", folder, csv((1, "a")), at(1))
    google.incomplete_search = True
    with pytest.raises(TransientError, match="could not list folder .* completely \\(incompleteSearch\\)"):
        read_all(drive(google_config, clock, folder))
    assert "incompleteSearch" in next(r for r in google.requests if r.path == LIST).param("fields")
    assert not downloads(google)


def test_a_google_sheet_over_the_export_limit_fails_naming_it(google, google_config, clock, folder, read_all):
    row = b"1,%s\n" % (b"x" * 1000)
    google.add_google_sheet("big", folder, b"id,name\n" + row * (EXPORT_LIMIT_BYTES // len(row) + 1), at(1))
    with pytest.raises(ExportLimitError) as failure:
        read_all(drive(google_config, clock, folder, export_google_sheets=True, columns=COLUMNS))
    message = str(failure.value)
    assert "cannot export gdrive:big as CSV: it exceeds Drive's 10 MB export limit" in message
    assert "split it" in message and "authentication" not in message
    assert not isinstance(failure.value, ApiAuthError)
    exports = [r for r in google.requests if r.path.endswith("/export")]
    assert len(exports) == 1, "a size limit is not retried"


def test_a_file_that_vanished_fails_with_its_name(google, google_config, clock, folder, read_all):
    google.add_file("a.csv", folder, csv((1, "a")), at(1))
    google.fail(404, google_error(404, "File not found: x.", "notFound").body, match=lambda r: "/revisions/" in r.path)
    with pytest.raises(ApiNotFoundError, match=r"the content of gdrive:a\.csv"):
        read_all(drive(google_config, clock, folder, columns={"id": "int64", "name": "string"}))


@pytest.mark.parametrize(("spec", "message"), [
    ({"folder_id": ""}, "'folder_id' must be a Drive folder id"),
    ({"folder_id": "f", "format": "xlsx"}, "XLSX is not supported"),
    ({"folder_id": "f", "recursive": "yes"}, "'recursive' must be true or false"),
    ({"folder_id": "f", "columns": {"id": "long"}}, "google_drive source: 'columns.id'"),
    ({"folder_id": "f", "bad_rows": "ignore"}, "'bad_rows' is 'ignore'"),
    ({"folder_id": "f", "nope": 1}, r"unknown key\(s\) \['nope'\]"),
])
def test_spec_mistakes_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec({"type": "google_drive", **spec})


def test_identity_and_lineage_name_the_folder(google_config, clock):
    source = drive(google_config, clock, "1FolderId", glob="*.csv", recursive=True)
    assert source.identity == "gdrive://1FolderId?glob=*.csv&recursive=true&format=csv"
    assert (source.lineage.namespace, source.lineage.name) == ("gdrive://drive.google.com", "1FolderId")
    with pytest.raises(ConfigError, match="needs a Google connection"):
        GoogleDriveSource(parse_spec({"folder_id": "f"}), None)


def test_files_newer_than_drives_clock_less_settle_wait_for_the_next_run(google, google_config, clock, folder,
                                                                         read_all):
    google.now = at(30)
    google.add_file("old.csv", folder, csv((1, "old")), at(10))
    google.add_file("fresh.csv", folder, csv((2, "fresh")), at(30) - timedelta(seconds=20))
    source = drive(google_config, clock, folder)
    table, state = read_all(source)
    assert ids(table) == [1] and state["watermark"].startswith("2024-03-01T09:10:00")

    google.now = at(32)
    table, _ = read_all(source, state)
    assert ids(table) == [2]
    table, _ = read_all(drive(google_config, clock, folder, settle="0s"))
    assert ids(table) == [1, 2]
