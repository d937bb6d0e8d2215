"""Front matter read with YAML 1.2 core-schema types and bounded like every user YAML; decimals as digits."""

from __future__ import annotations

import decimal
import time

import pyarrow as pa
import pytest

from dativo_provider.markdown_kv.parser import FRONT_MATTER_SECTION as FM
from dativo_provider.markdown_kv.parser import MarkdownKVSyntaxError, parse_document
from dativo_provider.markdown_kv.render import format_value, render_table_to_markdown_kv


def front_matter_entries(front_matter: str) -> list[tuple[str, str]]:
    document = parse_document(f"---\n{front_matter}---\n# Body\n")
    return [(entry.key, entry.value) for section, entry in document.entries if section.path == FM]


def test_front_matter_has_no_yaml_1_1_surprises():
    # YAML 1.1 (PyYAML's default) reads these as 668, 630, True, True/False keys and a date.
    assert front_matter_entries(
        "zip: 01234\n"
        "t: 10:30\n"
        "answer: yes\n"
        "on: off\n"
        "published: 2024-03-01\n"
        "octal: 0o17\n"
        "hex: 0x1F\n"
        "n: 42\n"
        "x: -1.5\n"
        "flag: true\n"
        "none: ~\n"
        "quoted: '007'\n"
    ) == [
        ("zip", "01234"),
        ("t", "10:30"),
        ("answer", "yes"),
        ("on", "off"),
        ("published", "2024-03-01"),
        ("octal", "15"),
        ("hex", "31"),
        ("n", "42"),
        ("x", "-1.5"),
        ("flag", "true"),
        ("none", ""),
        ("quoted", "007"),
    ]


def test_the_front_matter_mapping_and_doc_ids_see_the_same_values():
    document = parse_document("---\nzip: 01234\nt: 10:30\ncount: 3\n---\n")
    assert document.front_matter == {"zip": "01234", "t": "10:30", "count": 3}


@pytest.mark.parametrize(
    ("front_matter", "line", "problem"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", 2, "front matter refused: nesting deeper than 64 levels"),
        ("a: &a [x]\nb: [*a]\n", 3, "front matter refused: YAML aliases (*name) are not supported here"),
        ("a: |\n" + "  " + "x" * 1_000_001 + "\n", 1, "front matter refused: the YAML is 1,000,0"),
    ],
    ids=["deep", "alias", "huge"],
)
def test_hostile_front_matter_is_refused_quickly_naming_the_line(front_matter, line, problem):
    start = time.monotonic()
    with pytest.raises(MarkdownKVSyntaxError) as caught:
        parse_document(f"---\n{front_matter}---\n", "kb/x.md")
    assert time.monotonic() - start < 1.0
    assert (caught.value.file, caught.value.line) == ("kb/x.md", line)
    assert caught.value.problem.startswith(problem)
    assert "xxxx" not in str(caught.value)  # never quotes the document


def test_malformed_front_matter_keeps_pyyaml_s_wording():
    with pytest.raises(MarkdownKVSyntaxError) as caught:
        parse_document("---\na: [1, 2\nb: c\n---\n", "doc.md")
    assert caught.value.problem.startswith("malformed YAML front matter: expected ',' or ']', but got ':'")


@pytest.mark.parametrize(
    ("value", "arrow_type", "text"),
    [
        ("0E-10", pa.decimal128(38, 10), "0.0000000000"),
        ("1.000E-7", pa.decimal128(38, 10), "0.0000001000"),
        ("-12345678901234567890123456789.123456789", pa.decimal128(38, 9),
         "-12345678901234567890123456789.123456789"),
        ("1E+2", pa.decimal128(5, 0), "100"),
    ],
)
def test_decimals_render_as_plain_digits_with_their_scale(value, arrow_type, text):
    table = pa.table({
        "d": pa.array([decimal.Decimal(value)], arrow_type),
        "in_struct": pa.array([{"d": decimal.Decimal(value)}], pa.struct([("d", arrow_type)])),
    })
    ((_, document),) = render_table_to_markdown_kv(table)
    assert document == f'd:: {text}\nin_struct:: {{"d":"{text}"}}\n'
    assert format_value(decimal.Decimal(value)) == text
    (_, entry), _ = parse_document(document).entries
    assert entry.value == text and entry.value_json == text  # plain digits are also a JSON number
