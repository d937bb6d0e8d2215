"""Manifest-diff tracking of the files and google_drive sources: every file version not read before is read
once, whatever its modification time; changed files are re-read or refused; the state stays bounded."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.file_stream import MANIFEST_KEY, Tracking, manifest_entries
from dativo_provider.sources.files import FilesSource, from_spec
from dativo_provider.sources.google_drive import GoogleDriveSource, parse_spec
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    clock,
    google,
    google_config,
    service_account_info,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def write(path: Path, ids: list[int], mtime: dt.datetime) -> None:
    path.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    ns = int(mtime.timestamp()) * 10**9 + mtime.microsecond * 1000
    os.utime(path, ns=(ns, ns))


def files(path: Path, **spec) -> FilesSource:
    return from_spec({"type": "files", "path": str(path), "glob": "*.csv", **spec}, None)


def ids(table) -> list[int]:
    return sorted(table.column("id").to_pylist())


def test_a_back_dated_file_is_read_by_the_next_run_once(tmp_path, read_all):
    write(tmp_path / "a.csv", [1], at(10))
    write(tmp_path / "b.csv", [2], at(20))
    src = files(tmp_path)
    first, state = read_all(src)

    write(tmp_path / "copied.csv", [3], at(5))  # cp -p: older than every file read so far
    second, state2 = read_all(src, state)
    third, state3 = read_all(src, state2)

    assert (ids(first), ids(second), ids(third)) == ([1, 2], [3], [])
    assert state3 == state2, "a run that reads nothing leaves the state as it was: the engine commits nothing"
    assert sorted(manifest_entries(state2)) == ["a.csv", "b.csv", "copied.csv"]
    assert state2["watermark"] == "2024-05-01T12:20:00.000000+00:00", "still the newest time read"


def test_the_watermark_mode_misses_the_back_dated_file(tmp_path, read_all):
    # The behaviour the manifest replaces as the default, kept as an option: documented blind spot.
    write(tmp_path / "a.csv", [1], at(10))
    src = files(tmp_path, incremental="watermark")
    _, state = read_all(src)
    write(tmp_path / "copied.csv", [3], at(5))
    assert read_all(src, state)[0].num_rows == 0


def test_a_changed_file_is_reread_and_reported(tmp_path, read_all):
    write(tmp_path / "a.csv", [1], at(10))
    src = files(tmp_path)
    _, state = read_all(src)
    write(tmp_path / "a.csv", [1, 11], at(10))  # same time, other size: another version
    with src.open(state, ReadBounds()) as stream:
        rows = sum(batch.num_rows for batch in stream)
        assert stream.report.details["files_changed"] == ["a.csv"]
        assert rows == 2
        assert manifest_entries(stream.state())["a.csv"][1] == len("id\n1\n11\n")


def test_changed_files_fail_refuses_the_run_naming_the_file(tmp_path, read_all):
    write(tmp_path / "a.csv", [1], at(10))
    write(tmp_path / "b.csv", [2], at(11))
    src = files(tmp_path, changed_files="fail")
    _, state = read_all(src)
    write(tmp_path / "a.csv", [1, 11], at(30))
    write(tmp_path / "c.csv", [3], at(31))
    with pytest.raises(SourceError, match=rf"1 file\(s\) changed after they were read.*{tmp_path / 'a.csv'}"):
        read_all(src, state)


def test_a_watermark_state_continues_without_rereading(tmp_path, read_all):
    # A table loaded before manifests has a watermark state: files at or before it count as read,
    # except those at exactly the watermark that it does not list.
    write(tmp_path / "a.csv", [1], at(10))
    write(tmp_path / "b.csv", [2], at(20))
    write(tmp_path / "c.csv", [3], at(20))
    write(tmp_path / "d.csv", [4], at(30))
    old = {"watermark": at(20).isoformat(timespec="microseconds"), "files_at_watermark": ["b.csv"]}
    table, state = read_all(files(tmp_path), old)
    assert ids(table) == [3, 4]
    assert state["manifest_floor"] == "2024-05-01T12:20:00.000000+00:00"
    write(tmp_path / "late.csv", [5], at(25))  # back-dated below the newest read, above the old watermark
    assert ids(read_all(files(tmp_path), state)[0]) == [5]
    # ... and switching back to the watermark mode re-reads nothing.
    assert read_all(files(tmp_path, incremental="watermark"), state)[0].num_rows == 0


def test_the_manifest_forgets_entries_past_the_horizon(tmp_path, read_all):
    write(tmp_path / "old.csv", [1], at(0))
    write(tmp_path / "new.csv", [2], at(24 * 60))  # a day later
    src = files(tmp_path, manifest_horizon="12h")
    _, state = read_all(src)

    assert list(manifest_entries(state)) == ["new.csv"]
    assert state["manifest_floor"] == "2024-05-02T00:00:00.000000+00:00"
    write(tmp_path / "late.csv", [3], at(13 * 60))  # inside the horizon: read
    write(tmp_path / "ancient.csv", [4], at(60))  # behind the floor: taken as read (documented)
    table, state = read_all(src, state)
    assert ids(table) == [3]
    assert read_all(src, state)[0].num_rows == 0, "old.csv, dropped from the manifest, is not read again"


def test_the_manifest_keeps_at_most_max_files_entries(tmp_path, read_all):
    for n in range(6):
        write(tmp_path / f"f{n}.csv", [n], at(n))
    src = FilesSource(files(tmp_path).location, "*.csv", "csv", tracking=Tracking(horizon=None, max_files=3))
    table, state = read_all(src)
    assert ids(table) == list(range(6))
    assert sorted(manifest_entries(state)) == ["f3.csv", "f4.csv", "f5.csv"]
    assert state["manifest_files"] == 3
    assert read_all(src, state)[0].num_rows == 0


def test_the_manifest_state_is_compact(tmp_path, read_all):
    for n in range(2000):
        write(tmp_path / f"orders-2024-05-01-part-{n:05d}.csv", [n], at(n / 100))
    _, state = read_all(files(tmp_path))
    assert state["manifest_files"] == 2000
    assert len(state[MANIFEST_KEY]) < 20 * 2000, "a few bytes an entry, not the ~70 of plain JSON"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"incremental": "yes"}, "'incremental' must be true, false, 'manifest' or 'watermark'"),
        ({"incremental": "watermark", "manifest_horizon": "1d"}, "'manifest_horizon' applies to incremental"),
        ({"incremental": False, "changed_files": "fail"}, "'changed_files' applies to incremental"),
        ({"changed_files": "merge"}, "'changed_files' is 'merge'; expected 'reread' or 'fail'"),
        ({"manifest_horizon": "soon"}, "'manifest_horizon' 'soon' is not a duration"),
    ],
)
def test_spec_mistakes_name_the_key(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        files(tmp_path, **spec)
    with pytest.raises(ConfigError, match=message):
        parse_spec({"type": "google_drive", "folder_id": "1x", **spec})


# --- Google Drive -------------------------------------------------------------------------------


def drive(google_config, clock, folder: str, **spec) -> GoogleDriveSource:
    spec = {"type": "google_drive", "folder_id": folder, "columns": {"id": "int64"}, **spec}
    return GoogleDriveSource(parse_spec(spec), google_config, clock=clock)


def csv(*values: int) -> bytes:
    return ("id\n" + "".join(f"{v}\n" for v in values)).encode()


def content_requests(google) -> list[str]:
    return [r.path for r in google.requests if "/revisions/" in r.path or r.param("alt") == "media"]


def test_drive_a_back_dated_upload_is_read_once(google, google_config, clock, read_all):
    folder = google.add_folder("landing")
    google.add_file("a.csv", folder, csv(1), at(10))
    src = drive(google_config, clock, folder)
    _, first = read_all(src)

    google.add_file("synced.csv", folder, csv(2), at(1))  # a sync client kept the local modifiedTime
    table, state = read_all(src, first)
    assert ids(table) == [2]
    assert read_all(src, state)[0].num_rows == 0
    assert read_all(drive(google_config, clock, folder, incremental="watermark"), first)[0].num_rows == 0


def test_drive_a_new_modified_time_with_the_same_bytes_is_not_downloaded_again(google, google_config, clock,
                                                                                  read_all):
    folder = google.add_folder("landing")
    file_id = google.add_file("a.csv", folder, csv(1), at(10))
    src = drive(google_config, clock, folder)
    _, state = read_all(src)

    google.update_file(file_id, csv(1), at(40))  # re-uploaded unchanged: new revision, same md5Checksum
    google.clear_log()
    table, touched = read_all(src, state)
    assert table.num_rows == 0 and content_requests(google) == []
    assert manifest_entries(touched)[file_id][0] > manifest_entries(state)[file_id][0], "the new time is kept"

    google.update_file(file_id, csv(1, 5), at(50))  # new bytes: read again
    table, _ = read_all(src, touched)
    assert ids(table) == [1, 5]


def test_drive_changed_files_fail_names_the_drive_path(google, google_config, clock, read_all):
    folder = google.add_folder("landing")
    file_id = google.add_file("orders.csv", folder, csv(1), at(10))
    src = drive(google_config, clock, folder, changed_files="fail")
    _, state = read_all(src)
    google.update_file(file_id, csv(1, 2), at(20))
    with pytest.raises(SourceError, match=r"google_drive source: 1 file\(s\) changed .*gdrive:orders\.csv"):
        read_all(src, state)


def test_drive_an_exported_sheet_without_checksum_is_reread_when_its_time_moves(google, google_config, clock,
                                                                                read_all):
    folder = google.add_folder("landing")
    sheet = google.add_google_sheet("stock", folder, csv(1), at(10))
    src = drive(google_config, clock, folder, export_google_sheets=True)
    first, state = read_all(src)
    assert read_all(src, state)[0].num_rows == 0

    google.update_file(sheet, csv(1, 2), at(30))  # edited in the Sheets UI: no md5Checksum, a new time
    table, _ = read_all(src, state)
    assert (ids(first), ids(table)) == ([1], [1, 2])
