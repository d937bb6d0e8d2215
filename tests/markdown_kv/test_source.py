"""The markdown_kv source on its own: spec checks, layouts, batching, bad documents, S3."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.markdown_kv.parser import MarkdownKVSyntaxError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.file_stream import manifest_entries
from dativo_provider.sources.markdown_kv import from_spec
from tests.sources.s3_server import moto_s3_server

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def write(path: Path, text: str, minutes: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    ns = int((T0 + dt.timedelta(minutes=minutes)).timestamp()) * 10**9
    os.utime(path, ns=(ns, ns))


def read(source, state=None, bounds=ReadBounds()):
    with source.open(state, bounds) as stream:
        batches = list(stream)
        assert all(batch.schema == stream.schema for batch in batches)
        return batches, stream.state(), stream.report


def spec(where: Path, **extra) -> dict:
    return {"type": "markdown_kv", "path": str(where), **extra}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"layout": "rows"}, "'layout' is 'rows'; expected one of string, row_per_kv, document_level"),
        ({"doc_id": "front_matter:"}, "'doc_id' is 'front_matter:'"),
        ({"doc_id": "title"}, "expected 'path' or 'front_matter:<key>'"),
        ({"batch_docs": 0}, "'batch_docs' must be at least 1"),
        ({"batch_docs": True}, "'batch_docs' must be a non-empty int"),
        ({"bad_docs": "ignore"}, "'bad_docs' is 'ignore'"),
        ({"format": "md"}, "unknown key 'format'"),
        ({"path": "gs://b/x"}, "markdown_kv source: 'path' must be a local directory or s3://bucket/prefix"),
    ],
)
def test_spec_mistakes_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_spec(spec(tmp_path, **extra), None)


def test_registered_with_build_source_and_defaults(tmp_path):
    source = build_source(spec(tmp_path), None)
    settings = (source.layout, source.glob, source.doc_id_key, source.batch_docs)
    assert settings == ("row_per_kv", "**/*.md", None, 500)
    assert source.identity == f"markdown_kv://{tmp_path}?glob=**/*.md&layout=row_per_kv"
    assert (source.lineage.namespace, source.lineage.name) == ("file", str(tmp_path))


def test_batches_hold_batch_docs_documents_and_doc_id_is_the_relative_path(tmp_path):
    for i in range(5):
        write(tmp_path / "d" / f"{i}.md", f"# Doc {i}\nn:: {i}\n", minutes=i)
    write(tmp_path / "d" / "_draft.md", "n:: hidden\n", minutes=9)
    write(tmp_path / "d" / "notes.txt", "n:: not markdown\n", minutes=9)
    batches, state, report = read(from_spec(spec(tmp_path, layout="document_level", batch_docs=2), None))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    table = pa.Table.from_batches(batches)
    assert table.column("doc_id").to_pylist() == [f"d/{i}.md" for i in range(5)]
    assert table.column("title").to_pylist() == [f"Doc {i}" for i in range(5)]
    assert state["watermark"] == "2024-05-01T12:04:00.000000+00:00"
    assert sorted(manifest_entries(state)) == [f"d/{i}.md" for i in range(5)]
    assert (report.details["files_read"], report.details["documents"]) == (5, 5)


def test_extracted_at_is_the_upper_bound_else_the_file_version(tmp_path):
    write(tmp_path / "a.md", "k:: v\n", minutes=1)
    source = from_spec(spec(tmp_path), None)
    (batch,), _, _ = read(source)
    assert batch.column("extracted_at").to_pylist() == [T0 + dt.timedelta(minutes=1)]
    upper = T0 + dt.timedelta(hours=1)
    (batch,), _, _ = read(source, bounds=ReadBounds(upper=upper.isoformat()))
    assert batch.column("extracted_at").to_pylist() == [upper]
    assert read(source, bounds=ReadBounds(upper=T0))[0] == []  # the file is newer than the bound


def test_doc_id_from_front_matter(tmp_path):
    write(tmp_path / "a.md", "---\nslug: intro\n---\nk:: v\n")
    write(tmp_path / "b.md", "---\nslug: 42\n---\nk:: v\n", minutes=1)
    for layout in ("string", "row_per_kv"):
        batches, _, _ = read(from_spec(spec(tmp_path, layout=layout, doc_id="front_matter:slug"), None))
        doc_ids = pa.Table.from_batches(batches).column("doc_id").to_pylist()
        assert list(dict.fromkeys(doc_ids)) == ["intro", "42"], layout


def test_bad_documents_fail_naming_file_and_line_or_are_skipped(tmp_path):
    write(tmp_path / "ok.md", "k:: v\n")
    write(tmp_path / "bad.md", "---\ntitle: x\n  - broken: [\n---\n", minutes=1)
    write(tmp_path / "latin1.md", "k:: v\n", minutes=2)
    (tmp_path / "latin1.md").write_bytes("k:: one\nname:: Jos\xe9\n".encode("latin-1"))
    os.utime(tmp_path / "latin1.md", ns=(int(T0.timestamp() + 120) * 10**9,) * 2)
    expected = re.escape(f"{tmp_path / 'bad.md'}: line 3: malformed YAML") + ".*bad_docs='skip'"
    with pytest.raises(MarkdownKVSyntaxError, match=expected):
        read(from_spec(spec(tmp_path), None))

    batches, state, report = read(from_spec(spec(tmp_path, bad_docs="skip"), None))
    assert pa.Table.from_batches(batches).column("doc_id").to_pylist() == ["ok.md"]
    assert report.rows_rejected == 2
    assert [(r.location, r.reason) for r in report.rejected_samples] == [
        (f"{tmp_path / 'bad.md'}:3", "malformed YAML front matter: mapping values are not allowed here"),
        (f"{tmp_path / 'latin1.md'}:2", "not UTF-8 (byte offset 18)"),  # 0-based: 8 + len("name:: Jos")
    ]
    assert state["watermark"] == "2024-05-01T12:02:00.000000+00:00"  # rejected versions are not re-read


def test_a_missing_front_matter_doc_id_is_a_bad_document(tmp_path):
    write(tmp_path / "a.md", "k:: v\n")
    expected = "a.md: line 1: front matter has no 'slug' to use as doc_id"
    with pytest.raises(MarkdownKVSyntaxError, match=expected):
        read(from_spec(spec(tmp_path, layout="string", doc_id="front_matter:slug"), None))


def test_the_string_layout_keeps_the_text_unparsed(tmp_path):
    text = "---\nnot: [closed\n---\r\nk:: v\n"
    write(tmp_path / "a.md", text)
    (batch,), _, _ = read(from_spec(spec(tmp_path, layout="string"), None))
    assert batch.to_pylist() == [{"doc_id": "a.md", "content": text}]


def test_lookback_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'lookback' is not supported"):
        from_spec(spec(tmp_path), None).open(None, ReadBounds(lookback=dt.timedelta(hours=1)))


def test_s3_prefix_incrementally():
    with moto_s3_server() as s3:
        bucket = s3.new_bucket()
        client = s3.client()
        client.put_object(Bucket=bucket, Key="kb/guides/a.md", Body="# A\nk:: 1\n".encode())
        client.put_object(Bucket=bucket, Key="kb/b.txt", Body=b"k:: no\n")
        source = from_spec({"type": "markdown_kv", "path": f"s3://{bucket}/kb"}, s3.config())
        (batch,), state, _ = read(source)
        assert batch.select(["doc_id", "section", "key", "value"]).to_pylist() == [
            {"doc_id": "guides/a.md", "section": "A", "key": "k", "value": "1"}
        ]
        assert (source.lineage.namespace, source.lineage.name) == (f"s3://{bucket}", "kb")
        assert read(source, state)[0] == []
