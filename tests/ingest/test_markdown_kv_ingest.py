"""Markdown-KV documents → Iceberg through the real engine: each layout, incremental runs, failures."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.markdown_kv.parser import MarkdownKVSyntaxError
from dativo_provider.markdown_kv.sink import write_markdown_kv_files
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.markdown_kv import from_spec

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
RUNBOOK = """---
title: Failover
owner: sre
---
# Failover

severity:: 1

## Steps

- **first**: promote the replica
command:: pg_ctl promote
  -D /data
limits:: {"rto_minutes": 15}
"""
FAQ = "# FAQ\n\nquestion:: How do refunds work?\nanswer:: Within 14 days.\n"


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def write(path: Path, text: str, minutes: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    ns = int((T0 + dt.timedelta(minutes=minutes)).timestamp()) * 10**9
    os.utime(path, ns=(ns, ns))


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def read(catalog, name: str) -> pa.Table:
    return catalog.load().load_table(name).scan().to_arrow()


def source(path: Path, layout: str, **extra):
    return from_spec({"type": "markdown_kv", "path": str(path), "layout": layout, **extra}, None)


def test_row_per_kv_lands_one_row_per_entry(tmp_path, catalog):
    write(tmp_path / "docs" / "ops" / "failover.md", RUNBOOK, 1)
    write(tmp_path / "docs" / "faq.md", FAQ, 2)
    result = run_ingest(source(tmp_path / "docs", "row_per_kv"), catalog, "kb.facts")
    table = read(catalog, "kb.facts")
    assert result.rows_written == 8
    assert str(table.schema.field("ord").type) == "int32"
    assert table.schema.field("extracted_at").type == pa.timestamp("us", tz="UTC")
    rows = sorted(table.to_pylist(), key=lambda r: (r["doc_id"], r["ord"]))
    assert rows == [
        {"doc_id": "faq.md", "section": "FAQ", "key": "question", "value": "How do refunds work?",
         "value_json": None, "ord": 0, "extracted_at": at(2)},
        {"doc_id": "faq.md", "section": "FAQ", "key": "answer", "value": "Within 14 days.",
         "value_json": None, "ord": 1, "extracted_at": at(2)},
        {"doc_id": "ops/failover.md", "section": "front_matter", "key": "title", "value": "Failover",
         "value_json": None, "ord": 0, "extracted_at": at(1)},
        {"doc_id": "ops/failover.md", "section": "front_matter", "key": "owner", "value": "sre",
         "value_json": None, "ord": 1, "extracted_at": at(1)},
        {"doc_id": "ops/failover.md", "section": "Failover", "key": "severity", "value": "1",
         "value_json": "1", "ord": 2, "extracted_at": at(1)},
        {"doc_id": "ops/failover.md", "section": "Failover > Steps", "key": "first",
         "value": "promote the replica", "value_json": None, "ord": 3, "extracted_at": at(1)},
        {"doc_id": "ops/failover.md", "section": "Failover > Steps", "key": "command",
         "value": "pg_ctl promote\n-D /data", "value_json": None, "ord": 4, "extracted_at": at(1)},
        {"doc_id": "ops/failover.md", "section": "Failover > Steps", "key": "limits",
         "value": '{"rto_minutes": 15}', "value_json": '{"rto_minutes": 15}', "ord": 5,
         "extracted_at": at(1)},
    ]


def test_document_level_lands_one_row_per_document_with_nested_sections(tmp_path, catalog):
    write(tmp_path / "failover.md", RUNBOOK, 1)
    run_ingest(source(tmp_path, "document_level"), catalog, "kb.docs")
    (row,) = read(catalog, "kb.docs").to_pylist()
    assert (row["doc_id"], row["title"], row["raw_md"]) == ("failover.md", "Failover", RUNBOOK)
    assert row["sections"] == [
        {"section": "front_matter", "level": 0, "kv": [
            {"key": "title", "value": "Failover", "value_json": None, "ord": 0},
            {"key": "owner", "value": "sre", "value_json": None, "ord": 1},
        ]},
        {"section": "Failover", "level": 1, "kv": [
            {"key": "severity", "value": "1", "value_json": "1", "ord": 2},
        ]},
        {"section": "Failover > Steps", "level": 2, "kv": [
            {"key": "first", "value": "promote the replica", "value_json": None, "ord": 3},
            {"key": "command", "value": "pg_ctl promote\n-D /data", "value_json": None, "ord": 4},
            {"key": "limits", "value": '{"rto_minutes": 15}', "value_json": '{"rto_minutes": 15}', "ord": 5},
        ]},
    ]
    sections_type = read(catalog, "kb.docs").schema.field("sections").type
    assert str(sections_type.value_type.field("kv").type.value_type.field("ord").type) == "int32"


def test_string_layout_lands_the_text(tmp_path, catalog):
    write(tmp_path / "faq.md", FAQ, 1)
    run_ingest(source(tmp_path, "string"), catalog, "kb.text")
    assert read(catalog, "kb.text").to_pylist() == [{"doc_id": "faq.md", "content": FAQ}]


def test_incremental_runs_read_each_file_version_once(tmp_path, catalog):
    """Run 1: two docs. Run 2: one rewritten, one new. Run 3: nothing new. Merge keeps the latest."""
    write(tmp_path / "a.md", "# A\nv:: 1\n", 1)
    write(tmp_path / "b.md", "# B\nv:: 1\n", 2)
    docs = source(tmp_path, "document_level")
    options = WriteOptions(mode="merge", merge_keys=["doc_id"])
    first = run_ingest(docs, catalog, "kb.docs", options)
    facts = run_ingest(source(tmp_path, "row_per_kv"), catalog, "kb.facts")

    write(tmp_path / "b.md", "# B\nv:: 2\nnew:: yes\n", 3)
    write(tmp_path / "c.md", "# C\nv:: 1\n", 4)
    second = run_ingest(docs, catalog, "kb.docs", options)
    facts_2 = run_ingest(source(tmp_path, "row_per_kv"), catalog, "kb.facts")
    third = run_ingest(docs, catalog, "kb.docs", options)

    assert [r.rows_read for r in (first, second, third)] == [2, 2, 0]
    assert not third.committed
    assert second.watermark_after == "2024-05-01T12:04:00.000000+00:00"
    latest = {r["doc_id"]: r["raw_md"] for r in read(catalog, "kb.docs").to_pylist()}
    assert latest == {"a.md": "# A\nv:: 1\n", "b.md": "# B\nv:: 2\nnew:: yes\n", "c.md": "# C\nv:: 1\n"}

    # Appending entries keeps every version; extracted_at (the file version here) tells them apart.
    assert (facts.rows_written, facts_2.rows_written) == (2, 3)
    facts_rows = read(catalog, "kb.facts").to_pylist()
    rows = {(r["doc_id"], r["key"], r["value"], r["extracted_at"]) for r in facts_rows}
    assert rows == {("a.md", "v", "1", at(1)), ("b.md", "v", "1", at(2)), ("b.md", "v", "2", at(3)),
                    ("b.md", "new", "yes", at(3)), ("c.md", "v", "1", at(4))}


def test_a_rerun_of_the_same_interval_writes_nothing_twice(tmp_path, catalog):
    write(tmp_path / "a.md", "k:: 1\n", 1)
    write(tmp_path / "b.md", "k:: 2\n", 10)
    facts = source(tmp_path, "row_per_kv")
    interval = ReadBounds(upper=at(5))
    run_ingest(facts, catalog, "kb.facts", bounds=interval)
    rerun = run_ingest(facts, catalog, "kb.facts", bounds=interval)
    run_ingest(facts, catalog, "kb.facts", bounds=ReadBounds(upper=at(60)))
    assert rerun.rows_read == 0
    assert sorted((r["doc_id"], r["extracted_at"]) for r in read(catalog, "kb.facts").to_pylist()) == [
        ("a.md", at(5)), ("b.md", at(60))  # extracted_at is the run's upper bound when it has one
    ]


def test_a_bad_document_in_a_later_batch_commits_nothing_and_the_next_run_recovers(tmp_path, catalog):
    for i in range(5):
        write(tmp_path / f"{i}.md", f"k:: {i}\n", i)
    write(tmp_path / "9.md", "---\nbroken: [\n---\n", 9)
    facts = source(tmp_path, "row_per_kv", batch_docs=2)
    with pytest.raises(MarkdownKVSyntaxError, match="9.md: line 2: malformed YAML"):
        run_ingest(facts, catalog, "kb.facts")
    # The table may have been created from the schema, but no snapshot holds any of the rows read.
    iceberg = catalog.load()
    assert not iceberg.table_exists("kb.facts") or iceberg.load_table("kb.facts").current_snapshot() is None

    write(tmp_path / "9.md", "---\nfixed: true\n---\n", 9)
    result = run_ingest(facts, catalog, "kb.facts")
    assert result.rows_written == 6 and len(read(catalog, "kb.facts")) == 6


def test_skipped_bad_documents_are_counted_as_rejected_rows(tmp_path, catalog):
    write(tmp_path / "ok.md", "k:: v\n", 1)
    write(tmp_path / "bad.md", "---\nunclosed: true\n", 2)
    result = run_ingest(source(tmp_path, "document_level", bad_docs="skip"), catalog, "kb.docs")
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (2, 1, 1)
    assert result.rejected_samples[0].location == f"{tmp_path / 'bad.md'}:1"


def test_sink_files_ingest_back_to_the_same_keys_and_values(tmp_path, catalog):
    rows = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["Ada", "Grace"],
                     "bio": ["Wrote the first program.\n\nAlso: poetry::science", None]})
    write_markdown_kv_files(rows, str(tmp_path / "out"), key_columns=["id"], title_column="name")
    run_ingest(source(tmp_path / "out", "row_per_kv", glob="*.mdkv"), catalog, "kb.people")
    people = read(catalog, "kb.people").to_pylist()
    back = sorted((r["doc_id"], r["section"], r["key"], r["value"]) for r in people)
    assert back == [
        ("1.mdkv", "Ada", "bio", "Wrote the first program.\n\nAlso: poetry::science"),
        ("1.mdkv", "Ada", "id", "1"),
        ("1.mdkv", "Ada", "name", "Ada"),
        ("2.mdkv", "Grace", "id", "2"),
        ("2.mdkv", "Grace", "name", "Grace"),
    ]
