"""Back-dated files → Iceberg through the real engine: a file that appears with an older modification time
than files already loaded lands exactly once (local disk, S3 on moto, Google Drive on the double), a
repeated run writes nothing, and a run that fails commits neither the rows nor the manifest."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from dativo_provider.exceptions import SourceError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import read_state
from dativo_provider.ingest import engine
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.sources.file_stream import manifest_entries
from dativo_provider.sources.files import from_spec
from dativo_provider.sources.google_drive import GoogleDriveSource, parse_spec
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    clock,
    google,
    google_config,
    service_account_info,
)
from tests.sources.s3_server import moto_s3_server

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
COLUMNS = {"id": "int64", "file": "string"}
TABLE = "lake.landing"


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def body(name: str, *ids: int) -> bytes:
    return ("id,file\n" + "".join(f"{i},{name}\n" for i in ids)).encode()


def write(folder: Path, name: str, minutes: int, *ids: int) -> None:
    (folder / name).write_bytes(body(name, *ids))
    ns = int((T0 + dt.timedelta(minutes=minutes)).timestamp()) * 10**9
    os.utime(folder / name, ns=(ns, ns))


def table_rows(catalog) -> list[tuple[int, str]]:
    data = catalog.load().load_table(TABLE).scan().to_arrow()
    return sorted(zip(data.column("id").to_pylist(), data.column("file").to_pylist(), strict=True))


def snapshot_count(catalog) -> int:
    return len(catalog.load().load_table(TABLE).snapshots())


def test_local_back_dated_file_lands_exactly_once(tmp_path, catalog):
    landing = tmp_path / "landing"
    landing.mkdir()
    source = from_spec({"type": "files", "path": str(landing), "glob": "*.csv", "columns": COLUMNS}, None)
    write(landing, "a.csv", 10, 1, 2)
    write(landing, "b.csv", 20, 3)
    first = run_ingest(source, catalog, TABLE)

    write(landing, "copied.csv", 5, 4, 5)  # cp -p from an archive: older than both files loaded
    second = run_ingest(source, catalog, TABLE)
    third = run_ingest(source, catalog, TABLE)

    assert [r.rows_written for r in (first, second, third)] == [3, 2, 0]
    assert table_rows(catalog) == [(1, "a.csv"), (2, "a.csv"), (3, "b.csv"), (4, "copied.csv"),
                                   (5, "copied.csv")]
    assert snapshot_count(catalog) == 2, "the repeated run found nothing new and committed nothing"
    assert [f["path"] for f in second.source_details["files"]] == [str(landing / "copied.csv")]
    state = read_state(catalog.load().load_table(TABLE), source.identity).state
    assert sorted(manifest_entries(state)) == ["a.csv", "b.csv", "copied.csv"]


def test_a_failed_run_commits_neither_rows_nor_manifest(tmp_path, catalog, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    source = from_spec({"type": "files", "path": str(landing), "glob": "*.csv", "columns": COLUMNS}, None)
    write(landing, "a.csv", 10, 1)
    run_ingest(source, catalog, TABLE)
    write(landing, "late.csv", 5, 2)
    (landing / "broken.csv").write_text("id,file\nnot-a-number,broken.csv\n")
    with pytest.raises(SourceError, match="broken.csv"):
        run_ingest(source, catalog, TABLE)  # fails mid-stream, after late.csv was read

    (landing / "broken.csv").unlink()

    def crash(*args, **kwargs):
        raise RuntimeError("worker died before the catalog commit")

    monkeypatch.setattr(engine, "commit", crash)
    with pytest.raises(RuntimeError, match="worker died"):
        run_ingest(source, catalog, TABLE)
    monkeypatch.undo()
    assert table_rows(catalog) == [(1, "a.csv")]

    result = run_ingest(source, catalog, TABLE)
    assert result.rows_written == 1
    assert table_rows(catalog) == [(1, "a.csv"), (2, "late.csv")]
    assert run_ingest(source, catalog, TABLE).rows_written == 0


def test_s3_object_listed_with_an_older_time_lands_exactly_once(catalog):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    with moto_s3_server() as s3:
        bucket = s3.new_bucket()
        client = s3.client()
        client.put_object(Bucket=bucket, Key="in/a.csv", Body=body("a.csv", 1))
        client.put_object(Bucket=bucket, Key="in/b.csv", Body=body("b.csv", 2))
        spec = {"type": "files", "path": f"s3://{bucket}/in", "glob": "*.csv", "columns": COLUMNS}
        first = run_ingest(from_spec(spec, s3.config()), catalog, TABLE)

        # S3 dates an object by when its upload started (a multipart upload that ran long, a copy that
        # keeps the source's date in some tools): it is listed after the run with an older LastModified.
        client.put_object(Bucket=bucket, Key="in/late.csv", Body=body("late.csv", 3, 4))
        late = s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[bucket].keys["in/late.csv"]
        late.last_modified = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)  # naive UTC
        second = run_ingest(from_spec(spec, s3.config()), catalog, TABLE)
        third = run_ingest(from_spec(spec, s3.config()), catalog, TABLE)

    assert [r.rows_written for r in (first, second, third)] == [2, 2, 0]
    assert table_rows(catalog) == [(1, "a.csv"), (2, "b.csv"), (3, "late.csv"), (4, "late.csv")]
    assert second.watermark_after == first.watermark_after, "the newest time read did not move"


def drive(config, clock, folder: str) -> GoogleDriveSource:
    spec = {"type": "google_drive", "folder_id": folder, "columns": COLUMNS, "page_size": 2,
            "retry": {"max_attempts": 3, "base_delay": 0.5, "max_delay": 1.0, "jitter": 0.0}}
    return GoogleDriveSource(parse_spec(spec), config, clock=clock)


def test_drive_back_dated_upload_lands_exactly_once(google, google_config, clock, catalog):
    folder = google.add_folder("landing")
    for n in range(3):
        google.add_file(f"part-{n}.csv", folder, body(f"part-{n}.csv", n), T0 + dt.timedelta(minutes=10 + n))
    first = run_ingest(drive(google_config, clock, folder), catalog, TABLE)

    # Uploaded now, but the sync client set modifiedTime to the file's local time, a week earlier.
    google.add_file("synced.csv", folder, body("synced.csv", 7, 8), T0 - dt.timedelta(days=7))
    second = run_ingest(drive(google_config, clock, folder), catalog, TABLE)
    third = run_ingest(drive(google_config, clock, folder), catalog, TABLE)

    assert [r.rows_written for r in (first, second, third)] == [3, 2, 0]
    assert table_rows(catalog) == [(0, "part-0.csv"), (1, "part-1.csv"), (2, "part-2.csv"), (7, "synced.csv"),
                                   (8, "synced.csv")]
    assert [f["path"] for f in second.source_details["files"]] == ["gdrive:synced.csv"]
    assert snapshot_count(catalog) == 2
