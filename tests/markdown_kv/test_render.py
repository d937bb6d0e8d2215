"""The Markdown-KV sink: rows rendered as documents, into a string column and onto storage."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.markdown_kv.parser import parse_document
from dativo_provider.markdown_kv.render import MarkdownKVRenderError, render_table_to_markdown_kv
from dativo_provider.markdown_kv.sink import file_name, render_to_batches, write_markdown_kv_files
from tests.sources.s3_server import moto_s3_server

ORDERS = pa.table(
    {
        "customer": ["bob", "ann", "bob", "ann"],
        "order_id": pa.array([1, 2, 3, 4], pa.int64()),
        "note": ["first", None, "multi\nline", "x::y"],
    }
)


def kv(text: str) -> list[tuple[str | None, str, str]]:
    return [(s.path, e.key, e.value) for s, e in parse_document(text).entries]


def test_every_arrow_type_is_written_as_documented():
    table = pa.table(
        {
            "s": ["text"],
            "i": pa.array([-7], pa.int64()),
            "f": pa.array([0.1], pa.float64()),
            "nan": pa.array([float("nan")], pa.float64()),
            "inf": pa.array([float("-inf")], pa.float64()),
            "b": [True],
            "d": pa.array([decimal.Decimal("12.50")], pa.decimal128(10, 2)),
            "day": pa.array([dt.date(2024, 2, 29)]),
            "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)], pa.timestamp("us", "UTC")),
            "raw": pa.array([b"\x00\xff"], pa.binary()),
            "tags": pa.array([["a", "é"]], pa.list_(pa.string())),
            "obj": pa.array([{"n": 1, "price": decimal.Decimal("1.10")}],
                            pa.struct([("n", pa.int32()), ("price", pa.decimal128(5, 2))])),
            "m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
            "missing": pa.array([None], pa.string()),
        }
    )
    ((doc_id, text),) = render_table_to_markdown_kv(table)
    assert doc_id == "0"
    assert text == (
        "s:: text\n"
        "i:: -7\n"
        "f:: 0.1\n"
        "nan:: NaN\n"
        "inf:: -Infinity\n"
        "b:: true\n"
        "d:: 12.50\n"
        "day:: 2024-02-29\n"
        "at:: 2024-01-02T03:04:05.000006+00:00\n"
        "raw:: AP8=\n"
        'tags:: ["a","é"]\n'
        'obj:: {"n":1,"price":"1.10"}\n'
        'm:: {"k":1}\n'
    )


def test_one_document_per_row_with_key_columns_and_a_title():
    rendered = render_table_to_markdown_kv(ORDERS, key_columns=["customer", "order_id"], title_column="note")
    documents = list(rendered)
    assert [doc_id for doc_id, _ in documents] == ["bob/1", "ann/2", "bob/3", "ann/4"]
    assert documents[2][1] == "# multi line\n\ncustomer:: bob\norder_id:: 3\nnote:: multi\n    line\n"
    assert kv(documents[2][1]) == [
        ("multi line", "customer", "bob"),
        ("multi line", "order_id", "3"),
        ("multi line", "note", "multi\nline"),
    ]
    assert kv(documents[1][1]) == [(None, "customer", "ann"), (None, "order_id", "2")]  # null note: no title


def test_group_by_makes_one_document_per_group_with_a_section_per_row():
    documents = dict(render_table_to_markdown_kv(ORDERS, group_by=["customer"]))
    assert list(documents) == ["ann", "bob"]  # a table is sorted by the group columns, stably
    assert documents["bob"] == (
        "customer:: bob\n"
        "\n## Row 1\n\norder_id:: 1\nnote:: first\n"
        "\n## Row 2\n\norder_id:: 3\nnote:: multi\n    line\n"
    )
    assert kv(documents["ann"]) == [
        (None, "customer", "ann"),
        ("Row 1", "order_id", "2"),
        ("Row 2", "order_id", "4"),
        ("Row 2", "note", "x::y"),
    ]


def test_group_by_streams_batches_whose_groups_are_adjacent():
    batches = ORDERS.sort_by("customer").to_batches(max_chunksize=1)
    documents = render_table_to_markdown_kv(iter(batches), group_by=["customer"])
    assert [doc_id for doc_id, _ in documents] == ["ann", "bob"]
    with pytest.raises(MarkdownKVRenderError, match=r"group_by values reappear at row 2 \(first at row 0\)"):
        list(render_table_to_markdown_kv(ORDERS.to_batches(max_chunksize=1), group_by=["customer"]))


def test_document_ids_must_be_unique_and_not_null():
    with pytest.raises(MarkdownKVRenderError, match=r"key_columns repeat at row 2 \(first at row 0\)"):
        list(render_table_to_markdown_kv(ORDERS, key_columns=["customer"]))
    with pytest.raises(MarkdownKVRenderError, match="row 1 has a null 'note'"):
        list(render_table_to_markdown_kv(ORDERS, key_columns=["note"]))


def test_bad_options_and_column_names_are_config_errors():
    with pytest.raises(ConfigError, match="not both"):
        list(render_table_to_markdown_kv(ORDERS, key_columns=["order_id"], group_by=["customer"]))
    with pytest.raises(ConfigError, match="column 'nope' is not in the rows"):
        list(render_table_to_markdown_kv(ORDERS, title_column="nope"))
    with pytest.raises(ConfigError, match="column 'a::b' cannot be a Markdown-KV key"):
        list(render_table_to_markdown_kv(pa.table({"a::b": [1]})))
    assert list(render_table_to_markdown_kv(iter([]))) == []


def test_render_to_batches_gives_the_string_layout_in_batches():
    batches = list(render_to_batches(ORDERS, key_columns=["order_id"], batch_documents=3))
    assert [b.num_rows for b in batches] == [3, 1]
    assert batches[0].schema.names == ["doc_id", "content"]
    table = pa.Table.from_batches(batches)
    assert table.column("doc_id").to_pylist() == ["1", "2", "3", "4"]
    assert kv(table.column("content")[3].as_py()) == [(None, "customer", "ann"), (None, "order_id", "4"),
                                                       (None, "note", "x::y")]


def test_file_names_are_flat_reversible_and_never_hidden():
    assert file_name("bob/1") == "bob%2F1.mdkv"
    assert file_name(".env") == "%2Eenv.mdkv"
    assert file_name("_x") == "%5Fx.mdkv"
    assert file_name("%2Eenv") == "%252Eenv.mdkv"
    assert file_name("日本 doc") == "%E6%97%A5%E6%9C%AC%20doc.mdkv"


def test_write_files_locally(tmp_path: Path):
    target = tmp_path / "out" / "docs"
    result = write_markdown_kv_files(ORDERS, str(target), group_by=["customer"], title_column="customer")
    assert result.documents == 2
    assert sorted(result.paths) == [str(target / "ann.mdkv"), str(target / "bob.mdkv")]
    assert sorted(p.name for p in target.iterdir()) == ["ann.mdkv", "bob.mdkv"]  # no temporary files left
    text = (target / "ann.mdkv").read_text(encoding="utf-8")
    assert result.bytes_written == len(text.encode()) + len((target / "bob.mdkv").read_bytes())
    assert parse_document(text).title == "ann"

    again = write_markdown_kv_files(ORDERS, str(target), group_by=["customer"], title_column="customer")
    assert again.documents == 2 and (target / "ann.mdkv").read_text(encoding="utf-8") == text


def test_write_files_to_s3():
    with moto_s3_server() as s3:
        bucket = s3.new_bucket()
        result = write_markdown_kv_files(ORDERS, f"s3://{bucket}/mdkv/", connection=s3.config(),
                                         key_columns=["order_id"])
        assert result.documents == 4
        assert result.paths[0] == f"s3://{bucket}/mdkv/1.mdkv"
        body = s3.client().get_object(Bucket=bucket, Key="mdkv/4.mdkv")["Body"].read().decode()
    assert kv(body) == [(None, "customer", "ann"), (None, "order_id", "4"), (None, "note", "x::y")]


def test_a_bad_sink_path_is_a_config_error():
    with pytest.raises(ConfigError, match="markdown_kv sink: path must be"):
        write_markdown_kv_files(ORDERS, "gs://bucket/x")
