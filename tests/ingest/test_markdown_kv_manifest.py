"""Back-dated Markdown-KV documents → Iceberg through the real engine: a document that appears with an older
modification time than documents already loaded lands exactly once (local disk, S3 on moto, Google Drive on
the double), a rerun with nothing new commits nothing, a watermark-tracked table moves to the manifest
without rereading, and a document restored to an older version replaces its rows as the write mode says."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import read_state
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.file_stream import manifest_entries
from dativo_provider.sources.markdown_kv import MarkdownKVSource, from_spec
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    _key_pair,
    google,
    google_config,
    service_account_info,
)
from tests.sources.s3_server import moto_s3_server

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
FACTS = "kb.facts"
DOCS = "kb.docs"
LATEST_PER_DOCUMENT = WriteOptions(mode="merge", merge_keys=["doc_id"])


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def doc(name: str, version: int = 1) -> str:
    return f"# {name}\n\nversion:: {version}\n"


def write(path: Path, text: str, minutes: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    ns = int(at(minutes).timestamp() * 10**9)
    os.utime(path, ns=(ns, ns))


def local(path: Path, layout: str = "row_per_kv", **extra) -> MarkdownKVSource:
    return from_spec({"type": "markdown_kv", "path": str(path), "layout": layout, **extra}, None)


def facts(catalog, table: str = FACTS) -> list[tuple[str, str, str]]:
    rows = catalog.load().load_table(table).scan().to_arrow().to_pylist()
    return sorted((r["doc_id"], r["key"], r["value"]) for r in rows)


def snapshot_count(catalog, table: str = FACTS) -> int:
    return len(catalog.load().load_table(table).snapshots())


def stored_state(catalog, source: MarkdownKVSource, table: str = FACTS) -> dict:
    return read_state(catalog.load().load_table(table), source.identity).state


def test_local_back_dated_document_lands_exactly_once(tmp_path, catalog):
    kb = tmp_path / "kb"
    write(kb / "a.md", doc("A"), 10)
    write(kb / "guides" / "b.md", doc("B"), 20)
    source = local(kb)
    first = run_ingest(source, catalog, FACTS)

    write(kb / "guides" / "copied.md", doc("Copied"), 5)  # cp -p from an archive: older than both read
    second = run_ingest(source, catalog, FACTS)
    third = run_ingest(source, catalog, FACTS)

    assert [r.rows_written for r in (first, second, third)] == [2, 1, 0]
    assert facts(catalog) == [("a.md", "version", "1"), ("guides/b.md", "version", "1"),
                              ("guides/copied.md", "version", "1")]
    assert [f["path"] for f in second.source_details["files"]] == [str(kb / "guides" / "copied.md")]
    assert not third.committed and snapshot_count(catalog) == 2, "nothing new: nothing committed"
    assert second.watermark_after == first.watermark_after == "2024-05-01T12:20:00.000000+00:00"
    state = stored_state(catalog, source)
    assert sorted(manifest_entries(state)) == ["a.md", "guides/b.md", "guides/copied.md"]


def test_s3_object_listed_with_an_older_time_lands_exactly_once(catalog):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    with moto_s3_server() as s3:
        bucket = s3.new_bucket()
        client = s3.client()
        client.put_object(Bucket=bucket, Key="kb/a.md", Body=doc("A").encode())
        client.put_object(Bucket=bucket, Key="kb/b.md", Body=doc("B").encode())
        spec = {"type": "markdown_kv", "path": f"s3://{bucket}/kb", "layout": "row_per_kv"}
        first = run_ingest(from_spec(spec, s3.config()), catalog, FACTS)

        # Listed after the run, dated by when its (long) upload started: an hour before the others.
        client.put_object(Bucket=bucket, Key="kb/late.md", Body=doc("Late").encode())
        late = s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[bucket].keys["kb/late.md"]
        late.last_modified = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)  # naive UTC
        second = run_ingest(from_spec(spec, s3.config()), catalog, FACTS)
        third = run_ingest(from_spec(spec, s3.config()), catalog, FACTS)

    assert [r.rows_written for r in (first, second, third)] == [2, 1, 0]
    assert facts(catalog) == [("a.md", "version", "1"), ("b.md", "version", "1"), ("late.md", "version", "1")]
    assert [f["path"] for f in second.source_details["files"]] == [f"s3://{bucket}/kb/late.md"]
    assert snapshot_count(catalog) == 2


def drive(google_config, folder: str, **extra) -> MarkdownKVSource:
    spec = {"type": "markdown_kv", "path": f"gdrive://{folder}", "conn_id": "google_test", "page_size": 2,
            "layout": "row_per_kv", **extra}
    source = build_source(spec, google_config)
    assert isinstance(source, MarkdownKVSource)
    return source


def test_drive_back_dated_upload_lands_exactly_once(google, google_config, catalog):
    root = google.add_folder("kb")
    sub = google.add_folder("guides", root)
    google.add_file("a.md", root, doc("A").encode(), at(10), mime_type="text/markdown")
    setup = google.add_file("setup.md", sub, doc("Setup").encode(), at(20), mime_type="text/markdown")
    first = run_ingest(drive(google_config, root), catalog, FACTS)

    # Uploaded now, but the sync client kept the file's local time, a week earlier.
    google.add_file("synced.md", sub, doc("Synced").encode(), T0 - dt.timedelta(days=7), mime_type="text/markdown")
    # Touched (renamed, re-uploaded) without new bytes: a new modifiedTime, the same md5. Not read again.
    google.update_file(setup, doc("Setup").encode(), at(30))
    google.clear_log()
    second = run_ingest(drive(google_config, root), catalog, FACTS)
    downloads = [r.path for r in google.requests if "/revisions/" in r.path]
    third = run_ingest(drive(google_config, root), catalog, FACTS)

    assert [r.rows_written for r in (first, second, third)] == [2, 1, 0]
    assert facts(catalog) == [("a.md", "version", "1"), ("guides/setup.md", "version", "1"),
                              ("guides/synced.md", "version", "1")]
    assert [f["path"] for f in second.source_details["files"]] == ["gdrive:guides/synced.md"]
    assert len(downloads) == 1, "only the new document is downloaded"
    assert not third.committed and snapshot_count(catalog) == 2
    state = stored_state(catalog, drive(google_config, root))
    touched = manifest_entries(state)[setup]
    assert touched[0] == int(at(30).timestamp()) * 10**6, "the touched file is remembered at its new time"


def test_a_watermark_table_moves_to_the_manifest_without_rereading(tmp_path, catalog):
    kb = tmp_path / "kb"
    write(kb / "a.md", doc("A"), 10)
    write(kb / "b.md", doc("B"), 20)
    write(kb / "c.md", doc("C"), 20)
    before = run_ingest(local(kb, incremental="watermark"), catalog, FACTS)
    assert "manifest" not in stored_state(catalog, local(kb)), "a state from before manifests"

    write(kb / "d.md", doc("D"), 30)
    after = run_ingest(local(kb), catalog, FACTS)  # the default: manifest
    back_dated = tmp_path / "kb" / "e.md"
    write(back_dated, doc("E"), 25)
    later = run_ingest(local(kb), catalog, FACTS)

    assert [r.rows_written for r in (before, after, later)] == [3, 1, 1]
    assert [f["path"] for f in after.source_details["files"]] == [str(kb / "d.md")]
    assert facts(catalog) == [(f"{name}.md", "version", "1") for name in "abcde"], "each once"
    state = stored_state(catalog, local(kb))
    # The old watermark became the floor: b.md and c.md (at it) are entries, a.md (below it) needs none.
    assert state["manifest_floor"] == "2024-05-01T12:20:00.000000+00:00"
    assert sorted(manifest_entries(state)) == ["b.md", "c.md", "d.md", "e.md"]


def test_a_document_restored_to_an_older_version_replaces_its_rows(tmp_path, catalog):
    """A rewrite with an older time (restored with ``cp -p``) is a new version: read again in full."""
    kb = tmp_path / "kb"
    write(kb / "a.md", doc("A", 1), 10)
    write(kb / "b.md", doc("B", 1), 10)
    entries = local(kb)
    run_ingest(local(kb, "document_level"), catalog, DOCS, LATEST_PER_DOCUMENT)
    run_ingest(entries, catalog, FACTS, bounds=ReadBounds(upper=at(60)))

    write(kb / "a.md", doc("A", 22), 5)  # an archived version: older time, other bytes
    merged = run_ingest(local(kb, "document_level"), catalog, DOCS, LATEST_PER_DOCUMENT)
    appended = run_ingest(entries, catalog, FACTS, bounds=ReadBounds(upper=at(120)))

    assert merged.source_details["files_changed"] == ["a.md"]
    documents = catalog.load().load_table(DOCS).scan().to_arrow().to_pylist()
    assert sorted((d["doc_id"], d["raw_md"]) for d in documents) == [("a.md", doc("A", 22)), ("b.md", doc("B", 1))]
    # row_per_kv appends every version; extracted_at is the run's upper bound, so the latest run's rows win.
    assert appended.rows_written == 1
    rows = catalog.load().load_table(FACTS).scan().to_arrow()
    latest = rows.group_by("doc_id").aggregate([("extracted_at", "max")])
    newest = rows.join(latest, ["doc_id", "extracted_at"], ["doc_id", "extracted_at_max"], join_type="inner")
    assert sorted(zip(newest["doc_id"].to_pylist(), newest["value"].to_pylist(), strict=True)) == [
        ("a.md", "22"), ("b.md", "1")]


def test_changed_files_fail_names_the_document_and_commits_nothing(tmp_path, catalog):
    kb = tmp_path / "kb"
    write(kb / "guides" / "a.md", doc("A", 1), 10)
    source = local(kb, changed_files="fail")
    run_ingest(source, catalog, FACTS)
    write(kb / "guides" / "a.md", doc("A", 333), 40)
    write(kb / "new.md", doc("New"), 50)

    with pytest.raises(SourceError, match=r"markdown_kv source: 1 file\(s\) changed .*guides/a\.md"):
        run_ingest(source, catalog, FACTS)
    assert facts(catalog) == [("guides/a.md", "version", "1")] and snapshot_count(catalog) == 1


def test_a_manifest_horizon_bounds_the_state(tmp_path, catalog):
    kb = tmp_path / "kb"
    for n in range(4):
        write(kb / f"{n}.md", doc(str(n)), 60 * n)
    source = local(kb, manifest_horizon="90m")
    run_ingest(source, catalog, FACTS)
    write(kb / "recent.md", doc("Recent"), 100)  # within the horizon of the newest (180 min): read
    write(kb / "ancient.md", doc("Ancient"), 0)  # older than the floor (90 min): taken as read
    second = run_ingest(source, catalog, FACTS)

    assert [f["path"] for f in second.source_details["files"]] == [str(kb / "recent.md")]
    assert sorted(manifest_entries(stored_state(catalog, source))) == ["2.md", "3.md", "recent.md"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"incremental": "mtime"}, "markdown_kv source: 'incremental' must be true, false, 'manifest' or "
                                   "'watermark', not 'mtime'"),
        ({"incremental": "watermark", "manifest_horizon": "1d"},
         "markdown_kv source: 'manifest_horizon' applies to incremental 'manifest' (the default) only"),
        ({"incremental": False, "changed_files": "fail"}, "markdown_kv source: 'changed_files' applies to"),
        ({"changed_files": "ignore"}, "markdown_kv source: 'changed_files' is 'ignore'; expected 'reread' or"),
    ],
)
def test_tracking_mistakes_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        local(tmp_path, **extra)
