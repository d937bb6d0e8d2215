"""The markdown_kv source on a Google Drive folder, against the loopback Google double: the google_drive
source's listing (paging, subfolders, Google types skipped), revision-pinned downloads and incremental
state, the markdown_kv glob, parser and layouts, and one run through the engine into Iceberg."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.markdown_kv.parser import MarkdownKVSyntaxError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.file_stream import manifest_entries
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    _key_pair,
    google,
    google_config,
    service_account_info,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LIST = "/drive/v3/files"
MD = "text/markdown"
# The example of docs/sources-markdown-kv.md, "From Google Drive".
SETUP = "---\ntitle: Setup\n---\n# Setup\n\npython:: 3.11\n\n## Steps\n\n- **first**: pip install dativo\n"
FAQ = "# FAQ\n\nquestion:: How do refunds work?\nanswer:: Within 14 days.\n"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def source(google_config, folder: str, **extra):
    spec = {"type": "markdown_kv", "path": f"gdrive://{folder}", "conn_id": "google_test", "page_size": 2,
            **extra}
    return build_source(spec, google_config)


def read(source, state=None, bounds=ReadBounds()):
    with source.open(state, bounds) as stream:
        batches = list(stream)
        assert all(batch.schema == stream.schema for batch in batches)
        return pa.Table.from_batches(batches, schema=stream.schema), stream.state(), stream.report


def downloads(google) -> list[str]:
    return [r.path for r in google.requests if "/revisions/" in r.path]


@pytest.fixture
def folder(google) -> str:
    """A knowledge base: two documents at the top, one in a subfolder, and files the source must skip."""
    root = google.add_folder("kb")
    guides = google.add_folder("guides", root)
    google.add_file("setup.md", guides, SETUP.encode(), at(0), mime_type=MD)
    google.add_file("faq.md", root, FAQ.encode(), at(2), mime_type=MD)
    google.add_file("empty.md", root, b"", at(3), mime_type=MD)
    google.add_file("_draft.md", root, b"k:: hidden\n", at(4), mime_type=MD)
    google.add_file("notes.txt", root, b"k:: not markdown\n", at(5), mime_type="text/plain")
    google.add_file("doc.md", root, b"", at(6), mime_type="application/vnd.google-apps.document")
    google.trash(google.add_file("old.md", root, b"k:: trashed\n", at(7), mime_type=MD))
    return root


def test_documents_across_pages_and_subfolders_parse_to_the_documented_rows(google, google_config, folder):
    table, state, report = read(source(google_config, folder))

    assert table.to_pylist() == [
        {"doc_id": "guides/setup.md", "section": "front_matter", "key": "title", "value": "Setup",
         "value_json": None, "ord": 0, "extracted_at": at(0)},
        {"doc_id": "guides/setup.md", "section": "Setup", "key": "python", "value": "3.11",
         "value_json": "3.11", "ord": 1, "extracted_at": at(0)},
        {"doc_id": "guides/setup.md", "section": "Setup > Steps", "key": "first",
         "value": "pip install dativo", "value_json": None, "ord": 2, "extracted_at": at(0)},
        {"doc_id": "faq.md", "section": "FAQ", "key": "question", "value": "How do refunds work?",
         "value_json": None, "ord": 0, "extracted_at": at(2)},
        {"doc_id": "faq.md", "section": "FAQ", "key": "answer", "value": "Within 14 days.",
         "value_json": None, "ord": 1, "extracted_at": at(2)},
    ]
    root_pages = [r for r in google.requests if r.path == LIST and r.param("q").startswith(f"'{folder}'")]
    assert [page.param("pageToken") is None for page in root_pages] == [True, False, False]
    assert all(page.param("pageSize") == "2" for page in root_pages)
    assert len(downloads(google)) == 3, "the listed head revision of each matching document"
    assert report.details["files_read"] == report.details["documents"] == 3
    assert [f["path"] for f in report.details["files"]] == ["gdrive:guides/setup.md", "gdrive:faq.md",
                                                            "gdrive:empty.md"]
    assert state["watermark"].startswith("2024-03-01T09:03:00") and state["manifest_files"] == 3

    google.clear_log()
    top, _, _ = read(source(google_config, folder, layout="document_level", glob="*.md"))
    assert top.to_pylist() == [
        {"doc_id": "faq.md", "title": "FAQ", "raw_md": FAQ, "sections": [
            {"section": "FAQ", "level": 1, "kv": [
                {"key": "question", "value": "How do refunds work?", "value_json": None, "ord": 0},
                {"key": "answer", "value": "Within 14 days.", "value_json": None, "ord": 1}]}]},
        {"doc_id": "empty.md", "title": None, "raw_md": "", "sections": []},
    ]
    listed = {r.param("q") for r in google.requests if r.path == LIST}
    assert listed == {f"'{folder}' in parents and trashed = false"}, "no / or ** in the glob: no subfolder"


def test_a_modified_document_is_read_again_and_unchanged_ones_are_not(google, google_config, folder):
    faq = next(f.id for f in google.files.values() if f.name == "faq.md")
    docs = source(google_config, folder, layout="string")
    _, state, _ = read(docs)

    google.update_file(faq, FAQ.replace("14", "30").encode(), at(10))
    google.clear_log()
    table, state, _ = read(docs, state)
    assert table.to_pylist() == [{"doc_id": "faq.md", "content": FAQ.replace("14", "30")}]
    assert downloads(google) == [f"/drive/v3/files/{faq}/revisions/{google.files[faq].head_revision}"]
    assert state["watermark"] == "2024-03-01T09:10:00.000000+00:00"
    assert manifest_entries(state)[faq][2] == hashlib.md5(FAQ.replace("14", "30").encode()).hexdigest()

    google.clear_log()
    table, again, _ = read(docs, state)
    assert table.num_rows == 0 and again == state and downloads(google) == []


def test_bad_documents_are_named_by_their_drive_path(google, google_config):
    root = google.add_folder("kb")
    google.add_file("bad.md", root, b"---\ntitle: x\n  - broken: [\n---\n", at(1), mime_type=MD)
    with pytest.raises(MarkdownKVSyntaxError, match=r"gdrive:bad\.md: line 3: malformed YAML"):
        read(source(google_config, root))
    table, _, report = read(source(google_config, root, bad_docs="skip"))
    assert table.num_rows == 0 and report.rejected_samples[0].location == "gdrive:bad.md:3"


def test_identity_lineage_and_spec_mistakes(google_config, tmp_path):
    drive = source(google_config, "1FolderId", glob="*.md")
    assert drive.identity == "markdown_kv://gdrive://1FolderId?glob=*.md&layout=row_per_kv"
    assert (drive.lineage.namespace, drive.lineage.name) == ("gdrive://drive.google.com", "1FolderId")
    with pytest.raises(ConfigError, match="a gdrive:// path needs a Google connection"):
        build_source({"type": "markdown_kv", "path": "gdrive://1FolderId"}, None)
    with pytest.raises(ConfigError, match="a Google connection reads gdrive:// paths only"):
        build_source({"type": "markdown_kv", "path": str(tmp_path)}, google_config)
    with pytest.raises(ConfigError, match="'settle' applies to gdrive:// paths only"):
        build_source({"type": "markdown_kv", "path": str(tmp_path), "settle": "0s"}, None)
    with pytest.raises(ConfigError, match=r"'path' must be gdrive://<folder_id>, not 'gdrive://a/b'"):
        build_source({"type": "markdown_kv", "path": "gdrive://a/b"}, google_config)
    with pytest.raises(ConfigError, match="markdown_kv source: 'page_size'"):
        source(google_config, "1FolderId", page_size=0)


def test_through_the_engine_into_iceberg_once(google, google_config, folder, tmp_path):
    catalog = embedded_catalog(tmp_path)
    merge = WriteOptions(mode="merge", merge_keys=["doc_id"])
    first = run_ingest(source(google_config, folder, layout="document_level"), catalog, "kb.docs", merge)
    again = run_ingest(source(google_config, folder, layout="document_level"), catalog, "kb.docs", merge)

    table = catalog.load().load_table("kb.docs").scan().to_arrow()
    assert (first.rows_written, again.rows_written) == (3, 0)
    titles = dict(zip(table.column("doc_id").to_pylist(), table.column("title").to_pylist(), strict=True))
    assert titles == {"empty.md": None, "faq.md": "FAQ", "guides/setup.md": "Setup"}
    assert first.source == f"markdown_kv://gdrive://{folder}?glob=**/*.md&layout=document_level"
