"""The Markdown-KV parser against a corpus of tricky documents, with expected output written by hand.

Each expectation below follows the grammar in ``docs/sources-markdown-kv.md``; none was produced by
running the parser. Entries are ``(section, key, value)`` in document order, so ``ord`` is the index.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.markdown_kv.parser import (
    FRONT_MATTER_SECTION as FM,
    MarkdownKVSyntaxError,
    json_or_none,
    normalize_value,
    parse_document,
)
from dativo_provider.markdown_kv.render import check_key, render_document, render_table_to_markdown_kv

CORPUS = Path(__file__).parent / "corpus"


def parse(name: str):
    return parse_document((CORPUS / name).read_text(encoding="utf-8"), name)


def entries(name: str) -> list[tuple[str | None, str, str]]:
    document = parse(name)
    found = [(section.path, entry.key, entry.value) for section, entry in document.entries]
    assert [entry.ord for _, entry in document.entries] == list(range(len(found)))
    return found


def sections(name: str) -> list[tuple[str | None, int]]:
    return [(section.path, section.level) for section in parse(name).sections]


def test_no_front_matter_keys_before_the_first_header_have_no_section():
    assert entries("no_front_matter.md") == [
        (None, "status", "draft"),
        (None, "owner", "Ada Lovelace"),
        ("Summary", "priority", "high"),
    ]
    assert sections("no_front_matter.md") == [(None, 0), ("Summary", 1)]
    assert parse("no_front_matter.md").front_matter == {}


def test_headers_only_every_header_is_a_section_even_without_keys():
    assert entries("headers_only.md") == []
    assert sections("headers_only.md") == [
        ("Handbook", 1),
        ("Handbook > Onboarding", 2),
        ("Handbook > Onboarding > First week", 3),
        ("Handbook > Offboarding", 2),
    ]
    assert parse("headers_only.md").title == "Handbook"


def test_keys_with_spaces_are_stripped_and_an_indented_line_continues_the_open_value():
    assert entries("keys_with_spaces.md") == [
        # The indented second line is a continuation, even though it looks like an entry.
        ("Customer", "full name", "Grace Hopper\ndate of birth  ::  1906-12-09"),
        ("Customer", "Account Manager", "Alan Turing"),
        ("Customer", "key with  two spaces", "yes"),
    ]


def test_the_key_ends_at_the_first_double_colon():
    assert entries("values_with_double_colon.md") == [
        ("Code", "signature", "std::vector<int>::size()"),
        ("Code", "ipv6", "fe80::1ff:fe23:4567:890a"),
        ("Code", "ratio", "1::2::3"),
        ("Code", "time", "12:30"),
        ("Code", "url", "https://example.com/a::b?c=d"),
    ]


def test_multi_line_values_indented_by_spaces_or_a_tab():
    assert entries("multiline_values.md") == [
        ("Notes", "spaces", "first line\nsecond line\nthird line"),
        ("Notes", "tab", "alpha\nbeta\ngamma"),
        # Blank lines followed by another indented line stay inside the value.
        ("Notes", "blank lines", "one\n\ntwo\n\n\nthree"),
        # The first continuation line sets the indent (4); a line indented less loses all of it.
        ("Notes", "nested", '{\n"a": 1,\n"b": [\n  2\n]\n}'),
        # An indent is at most 4 spaces: deeper indentation is kept.
        ("Notes", "deep first", "x\n  six spaces\n    eight spaces"),
        ("Notes", "empty first", "only continuation"),
        ("Notes", "next", "after"),
    ]


def test_unicode_keys_values_and_headers_are_kept_as_written():
    assert entries("unicode.md") == [
        (FM, "título", "Café"),
        ("日本語の見出し", "名前", "山田太郎"),
        ("日本語の見出し", "emoji", "🚀 launch ✨"),
        ("日本語の見出し", "שם", "ערך בעברית"),
        ("日本語の見出し", "combining", "e\u0301te\u0301"),  # no Unicode normalisation
        ("日本語の見出し", "nbsp key", "a\u00a0b"),
    ]


def test_empty_values():
    assert entries("empty_values.md") == [
        ("Empty", "nothing", ""),
        ("Empty", "spaces only", ""),
        ("Empty", "then", "value"),
        ("Empty", "trailing blank lines", "x"),
        ("Empty", "last", ""),
    ]


def test_duplicate_keys_are_all_kept_in_order():
    assert entries("duplicate_keys.md") == [
        (None, "tag", "alpha"),
        (None, "tag", "beta"),
        ("Section", "tag", "gamma"),
        ("Section", "tag", "alpha"),
    ]


def test_bold_bullets_and_list_items():
    assert entries("bullets.md") == [
        ("People", "name", "Ada Lovelace"),
        ("People", "role", "mathematician"),
        ("People", "born", "1815"),
        ("People", "notes", "first line\ncontinued line"),
        ("People", "tags", "poet, analyst"),
        ("People", "url", "https://example.com/a::b"),
        ("People", "**emphasis**", "stays verbatim"),
    ]


def test_setext_headers_are_plain_text():
    assert entries("setext.md") == [(None, "a", "1"), (None, "b", "2")]
    assert sections("setext.md") == [(None, 0)]
    assert parse("setext.md").title is None


def test_lines_in_code_fences_are_neither_keys_nor_headers():
    assert entries("code_fences.md") == [
        ("Example", "real", "yes"),
        # An indented fence inside a value is continuation text.
        ("Example", "snippet", "see below\n```\nindented:: continuation\n```"),
        ("Example", "after", "fence"),
        # "never closed:: no" is inside a fence that runs to the end of the document.
    ]
    assert sections("code_fences.md") == [("Example", 1)]


def test_front_matter_becomes_the_first_section_with_values_as_text():
    document = parse("front_matter.md")
    assert entries("front_matter.md") == [
        (FM, "title", "Release notes"),
        (FM, "version", "2"),
        (FM, "draft", "false"),
        (FM, "tags", '["iceberg","airflow"]'),
        (FM, "published", "2024-03-01"),
        (FM, "owner", '{"name":"Ada","team":"data"}'),
        (FM, "empty", ""),
        ("Release notes", "summary", "First release"),
    ]
    assert [(s.path, s.level) for s in document.sections] == [(FM, 0), ("Release notes", 1)]
    assert [e.value_json for _, e in document.entries] == [
        None, "2", "false", '["iceberg","airflow"]', None, '{"name":"Ada","team":"data"}', None, None
    ]
    assert document.title == "Release notes"


def test_prose_that_looks_like_keys():
    assert entries("prose_pitfalls.md") == [
        ("Pitfalls", "key", "value"),
        ("Pitfalls > Closing hashes", "k2", "v2"),
    ]


@pytest.mark.parametrize(
    ("name", "line", "problem"),
    [
        ("bad_yaml.md", 4, "malformed YAML front matter: expected ',' or ']', but got ':'"),
        ("unclosed_front_matter.md", 1, "never closed"),
        ("list_front_matter.md", 2, "must be a mapping of keys to values, not a list"),
    ],
)
def test_malformed_front_matter_names_the_file_and_line(name, line, problem):
    with pytest.raises(MarkdownKVSyntaxError) as caught:
        parse(name)
    assert (caught.value.file, caught.value.line) == (name, line)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{name}: line {line}: ")
    assert isinstance(caught.value, SourceError)


def test_yaml_error_messages_do_not_quote_the_document():
    text = "---\nsecret: [sk_live_123\nowner: x\n---\n"
    with pytest.raises(MarkdownKVSyntaxError) as caught:
        parse_document(text, "doc.md")
    assert "sk_live_123" not in str(caught.value)


def test_yaml_aliases_are_refused_so_front_matter_cannot_expand_exponentially():
    laughs = "---\na: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n---\n"
    with pytest.raises(MarkdownKVSyntaxError, match=r"line 3: front matter refused: YAML aliases \(\*name\)"):
        parse_document(laughs, "doc.md")
    assert parse_document("---\nemphasis: '*not an alias*'\n---\n").front_matter == {"emphasis": "*not an alias*"}


def test_crlf_line_ends_and_a_bom():
    text = "\ufeff---\r\ntitle: Windows\r\n---\r\n# H\r\nk:: one\r\n  two\r\n"
    document = parse_document(text)
    assert [(s.path, e.key, e.value) for s, e in document.entries] == [
        (FM, "title", "Windows"), ("H", "k", "one\ntwo")
    ]
    assert document.text == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", "42"),
        ("-1.5e3", "-1.5e3"),
        ("true", "true"),
        ("null", "null"),  # JSON null is the text "null"; SQL NULL means "not JSON"
        ('"quoted"', '"quoted"'),
        ('{"a": [1, 2]}', '{"a": [1, 2]}'),
        ("12345678901234567890.123456789", "12345678901234567890.123456789"),
        ("hello", None),
        ("", None),
        ("NaN", None),
        ("Infinity", None),
        ("1 2", None),
        ("{'a': 1}", None),
        ("2024-03-01", None),
        ("[" * 100_000, None),
    ],
)
def test_value_json_is_the_value_when_it_is_one_json_text(value, expected):
    assert json_or_none(value) == expected


# --- round trip ---------------------------------------------------------------------------------

#: Pieces random values are made of: everything the grammar gives a meaning to, and unicode.
VALUE_PIECES = [
    *string.ascii_letters[:10], " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", ":", "::", "#", "# ", "## ",
    "- ", "- **k**: v", "**", "`", "```", "~~~", "---", ">", "|", "{", "}", '"', "é", "日本", "🚀",
    "\u00a0", "\u0301", "key:: value", "\n    ", "\n\t",
]
KEY_PIECES = [
    *string.ascii_letters[:8], " ", ":", "-", "*", "#", "_", ".", "é", "日", "🚀", "(", ")", "/", "\u00a0"
]


def random_text(rng: random.Random, pieces: list[str], most: int) -> str:
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, most)))


def random_keys(rng: random.Random, count: int) -> list[str]:
    keys: dict[str, None] = {}
    while len(keys) < count:
        key = random_text(rng, KEY_PIECES, 6)
        try:
            check_key(key)
        except ConfigError:
            continue
        keys[key] = None
    return list(keys)


def test_normalize_value_is_idempotent_and_is_what_rendering_keeps():
    rng = random.Random(20261128)
    for _ in range(2000):
        value = random_text(rng, VALUE_PIECES, 12)
        once = normalize_value(value)
        assert normalize_value(once) == once
        document = parse_document(render_document([("k", value)]))
        assert [(e.key, e.value) for _, e in document.entries] == [("k", once)], repr(value)


def test_round_trip_of_random_tables_through_render_and_parse():
    """Seeded random values (hypothesis is not installed): render each row, parse it back."""
    rng = random.Random(7)
    for _ in range(40):
        keys = random_keys(rng, rng.randint(1, 6))
        rows = [
            {k: None if rng.random() < 0.15 else random_text(rng, VALUE_PIECES, 10) for k in keys}
            for _ in range(rng.randint(1, 8))
        ]
        table = pa.Table.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in keys]))
        for (doc_id, text), row in zip(render_table_to_markdown_kv(table), rows, strict=True):
            parsed = [(e.key, e.value) for _, e in parse_document(text, doc_id).entries]
            assert parsed == [(k, normalize_value(v)) for k, v in row.items() if v is not None], text


@pytest.mark.parametrize(
    "key",
    ["", " lead", "trail ", "a::b", "a:", "with `tick`", "line\nbreak", "# header", "## h", "```fence",
     "~~~fence", "- **bold**: x", "- item", "> quote", "| cell", "\ufeffbom"],
)
def test_keys_that_cannot_be_written_are_refused(key):
    with pytest.raises(ConfigError, match="cannot be a Markdown-KV key"):
        check_key(key)


@pytest.mark.parametrize("key", ["a", "full name", "#hashtag", "a:b", "-", "日本", "**bold**", "x-y_z.1"])
def test_keys_that_can_be_written_read_back(key):
    check_key(key)
    (_, entry), = parse_document(render_document([(key, "v")])).entries
    assert (entry.key, entry.value) == (key, "v")
