"""Markdown-KV documents: the document model and the parser.

The grammar is specified in ``docs/sources-markdown-kv.md``; in short:

* optional YAML front matter between a first line ``---`` and the next ``---`` line, read with the
  YAML 1.2 core schema within :mod:`dativo_provider.safe_yaml` limits (no aliases at all);
* ATX headers (``#`` to ``######``) open sections, named by their header path ``"A > B"``;
* ``key:: value`` lines (optionally as list items ``- key:: value``) and ``- **key**: value`` /
  ``- **key:** value`` bullets are entries; a value continues on the following lines indented by
  spaces or a tab, blank lines between continuation lines included;
* lines inside fenced code blocks (```` ``` ```` or ``~~~``) are never keys or headers;
* setext headers (text underlined with ``===`` or ``---``) are plain text, not sections;
* anything else is prose and ignored.

This module needs only the standard library and PyYAML, so it is cheap to import.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from dativo_provider import safe_yaml
from dativo_provider.exceptions import SourceError

#: The section name of front-matter entries (a header path can never be ``None``, this one can clash
#: with a top-level header literally named ``front_matter``; their ``level`` tells them apart).
FRONT_MATTER_SECTION = "front_matter"
#: Separator between header texts in a section path.
PATH_SEPARATOR = " > "
#: Continuation lines lose at most this many leading spaces (or one tab).
MAX_INDENT = 4

_HEADER = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_LIST_MARKER = re.compile(r"[-*+][ \t]+")
_BOLD_BULLET = re.compile(r"[-*+][ \t]+\*\*([^*`]+?)(?::\*\*|\*\*[ \t]*:(?!:))(.*)")
#: Front matter is metadata: no aliases at all (a few nested ones expand exponentially when the values
#: are written out as text), and the default size and depth bounds.
FRONT_MATTER_LIMITS = safe_yaml.YamlLimits(max_aliases=0)
#: First characters a JSON text can start with (a cheap pre-check before ``json.loads``).
_JSON_START = frozenset('{["-0123456789tfn')


class MarkdownKVSyntaxError(SourceError):
    """A document that cannot be parsed. ``file`` and ``line`` (1-based) say where."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        super().__init__(f"{file}: line {line}: {problem}")
        self.file = file
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Entry:
    """One key and its value. ``ord`` is the 0-based position among the document's entries."""

    key: str
    value: str
    ord: int
    line: int

    @property
    def value_json(self) -> str | None:
        """The value itself when it is one valid JSON text, else None (see :func:`json_or_none`)."""
        return json_or_none(self.value)


@dataclass(frozen=True)
class Section:
    """A run of entries under one header (``level`` 1-6), or a leading pseudo-section (level 0).

    :param path: the header path ``"Intro > Details"``; :data:`FRONT_MATTER_SECTION` for front
        matter; None for entries before the first header.
    :param heading: the header's own text (None for the level-0 sections).
    """

    path: str | None
    heading: str | None
    level: int
    line: int
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class Document:
    """A parsed document: its front matter (YAML 1.2 core-schema values) and its sections in order."""

    name: str
    text: str
    front_matter: Mapping[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()

    @property
    def entries(self) -> Iterator[tuple[Section, Entry]]:
        """Every entry with its section, in document order (``ord`` ascending)."""
        for section in self.sections:
            for entry in section.entries:
                yield section, entry

    @property
    def title(self) -> str | None:
        """The front matter's ``title`` (as text), else the first level-1 header, else None."""
        if self.front_matter.get("title") not in (None, ""):
            return yaml_text(self.front_matter["title"])
        return next((s.heading for s in self.sections if s.level == 1), None)


# --- values -------------------------------------------------------------------------------------


def normalize_value(value: str) -> str:
    """A value as the parser returns it: LF line ends, each line right-stripped, the whole stripped.

    The renderer writes values in this form, so ``parse(render(v)) == normalize_value(v)``.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in value.split("\n")).strip()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_or_none(value: str) -> str | None:
    """``value`` if it is exactly one RFC 8259 JSON text (no ``NaN``/``Infinity``), else None.

    The text is kept as written, not re-serialised, so numbers keep every digit.
    """
    if not value or value[0] not in _JSON_START:
        return None
    try:
        json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def yaml_text(value: Any) -> str:
    """A front-matter value as entry text: strings as they are, dates ISO 8601, the rest compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


# --- parsing ------------------------------------------------------------------------------------


def parse_document(text: str, name: str = "<document>") -> Document:
    """Parse one Markdown-KV document.

    :param text: the document; a leading BOM is ignored, CRLF and CR line ends count as LF.
    :param name: the file name used in error messages.
    :raises MarkdownKVSyntaxError: malformed front matter (the message names the file and line).
    """
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    front_matter, body_start = _front_matter(lines, name)
    builder = _Builder()
    if front_matter:
        builder.open_section(FRONT_MATTER_SECTION, None, 0, 1)
        for key, value in front_matter.items():
            builder.add(yaml_text(key), yaml_text(value) if value is not None else "", 1)
    builder.open_section(None, None, 0, body_start + 1)
    _BodyParser(builder).feed(lines, body_start)
    return Document(name, text, front_matter, builder.sections())


def _front_matter(lines: list[str], name: str) -> tuple[dict[str, Any], int]:
    """The front matter mapping and the index of the first body line."""
    if lines[0].rstrip() != "---":
        return {}, 0
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if end is None:
        raise MarkdownKVSyntaxError(name, 1, "front matter opened by '---' is never closed by a '---' line")
    source = "\n".join(lines[1:end])
    try:
        loaded = safe_yaml.load_core_schema(source, FRONT_MATTER_LIMITS)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, name) from None
    if loaded is None:
        return {}, end + 1
    if not isinstance(loaded, dict):
        raise MarkdownKVSyntaxError(
            name, 2, f"front matter must be a mapping of keys to values, not a {type(loaded).__name__}"
        )
    return loaded, end + 1


def _yaml_error(exc: yaml.YAMLError, name: str) -> MarkdownKVSyntaxError:
    # Only YAML's problem description: str(exc) quotes the offending line (maybe personal data).
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 2 if mark is not None else 1  # +1 for 1-based, +1 for the opening '---'
    problem = getattr(exc, "problem", None) or type(exc).__name__
    if isinstance(exc, safe_yaml.YamlLimitError):
        return MarkdownKVSyntaxError(name, line, f"front matter refused: {problem}")
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return MarkdownKVSyntaxError(name, line, f"malformed YAML front matter: {detail}")


class _Builder:
    """Collects sections and entries, numbering entries in document order."""

    def __init__(self) -> None:
        self._done: list[Section] = []
        self._current: Section | None = None
        self._entries: list[Entry] = []
        self._ord = 0

    def open_section(self, path: str | None, heading: str | None, level: int, line: int) -> None:
        self._close_section()
        self._current = Section(path, heading, level, line)

    def add(self, key: str, value: str, line: int) -> None:
        self._entries.append(Entry(key, normalize_value(value), self._ord, line))
        self._ord += 1

    def _close_section(self) -> None:
        current = self._current
        # Level-0 pseudo-sections appear only when they hold entries; every header appears.
        if current is not None and (self._entries or current.level > 0):
            entries = tuple(self._entries)
            self._done.append(Section(current.path, current.heading, current.level, current.line, entries))
        self._entries = []

    def sections(self) -> tuple[Section, ...]:
        self._close_section()
        self._current = None
        return tuple(self._done)


class _BodyParser:
    """A line-by-line state machine over the body: open value, open fence, header stack."""

    def __init__(self, builder: _Builder) -> None:
        self._builder = builder
        self._headers: list[tuple[int, str]] = []
        self._fence: tuple[str, int] | None = None
        self._open: tuple[str, int, list[str]] | None = None  # key, line, value lines
        self._indent = 0
        self._blank_lines = 0

    def feed(self, lines: list[str], start: int) -> None:
        for number, line in enumerate(lines[start:], start=start + 1):
            if self._open is not None and self._continues(line):
                continue
            self._line(line, number)
        self._close_value()

    def _continues(self, line: str) -> bool:
        """Take ``line`` as part of the open value if it is blank or indented; else close the value."""
        first = line[:1]
        if first and first not in " \t" and not first.isspace():  # the common case, checked cheaply
            self._close_value()
            return False
        if not line.strip():
            self._blank_lines += 1
            return True
        if first not in " \t":  # other Unicode whitespace does not indent
            self._close_value()
            return False
        assert self._open is not None  # feed() only asks while a value is open
        _, _, value = self._open
        if len(value) == 1:  # the first continuation line sets how many spaces an indent is
            spaces = len(line) - len(line.lstrip(" "))
            self._indent = MAX_INDENT if line[0] == "\t" else min(spaces, MAX_INDENT)
        value.extend([""] * self._blank_lines)
        value.append(_dedent(line, self._indent))
        self._blank_lines = 0
        return True

    def _close_value(self) -> None:
        if self._open is not None:
            key, line, value = self._open
            self._builder.add(key, "\n".join(value), line)
        self._open = None
        self._blank_lines = 0

    def _line(self, line: str, number: int) -> None:
        if self._fence is not None:
            if _closes_fence(line, self._fence):
                self._fence = None
            return
        if (fence := _FENCE_OPEN.fullmatch(line)) and not (fence[1][0] == "`" and "`" in fence[2]):
            self._fence = (fence[1][0], len(fence[1]))
        elif header := _HEADER.fullmatch(line):
            self._header(len(header[1]), _CLOSING_HASHES.sub("", header[2] or "").strip(), number)
        elif entry := parse_entry_line(line):
            self._open = (entry[0], number, [entry[1]])

    def _header(self, level: int, text: str, number: int) -> None:
        while self._headers and self._headers[-1][0] >= level:
            self._headers.pop()
        self._headers.append((level, text))
        path = PATH_SEPARATOR.join(heading for _, heading in self._headers)
        self._builder.open_section(path, text, level, number)


def _dedent(line: str, indent: int) -> str:
    if line[0] == "\t":
        return line[1:]
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


def _closes_fence(line: str, fence: tuple[str, int]) -> bool:
    stripped = line.rstrip(" \t")
    body = stripped.lstrip(" ")
    return len(stripped) - len(body) <= 3 and len(body) >= fence[1] and body == fence[0] * len(body)


def parse_entry_line(line: str) -> tuple[str, str] | None:
    """``(key, first value line)`` if ``line`` starts an entry, else None.

    Checked in order: a bold bullet ``- **key**: value`` (or ``- **key:** value``), then
    ``key:: value`` with an optional list marker in front. The key is the text before the first
    ``::``, stripped; it may not be empty, start with whitespace, ``>`` (a blockquote) or ``|`` (a
    table row), or contain a backtick (so prose with ``inline::code`` in backticks is not a key).
    """
    if bullet := _BOLD_BULLET.fullmatch(line):
        key = bullet[1].strip()
        return (key, bullet[2].strip()) if key else None
    if marker := _LIST_MARKER.match(line):
        line = line[marker.end() :]
    split = line.find("::")
    if split <= 0 or line[0].isspace() or line[0] in ">|" or "`" in line[:split]:
        return None
    key = line[:split].rstrip()
    return key, line[split + 2 :].strip()
