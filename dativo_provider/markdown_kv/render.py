"""Rendering rows as Markdown-KV documents: the sink side of the format.

Every non-null column of a row becomes a ``key:: value`` line; a value's later lines are indented by
four spaces, so parsing a rendered document gives back the same keys and values (values in the
normal form of :func:`~dativo_provider.markdown_kv.parser.normalize_value`).

Values are written as text: strings as they are; booleans ``true``/``false``; integers and decimals
as plain digits (a decimal keeps its scale and never an exponent: ``0.0000000000``, not ``0E-10``);
floats as Python's shortest round-trip repr (``NaN``, ``Infinity``, ``-Infinity`` for the special
values); dates, times and timestamps in ISO 8601; durations as ``str(timedelta)``; binary
as base64; lists, structs and maps as compact JSON (maps as objects; decimals inside them as JSON
strings). Nulls are left out: a null and a missing column read back the same.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dativo_provider.exceptions import ConfigError, TerminalError
from dativo_provider.markdown_kv.parser import normalize_value, parse_document

#: Continuation lines are indented by this, which the parser removes again (at most 4 spaces).
INDENT = "    "
#: Separator between the values of several ``key_columns`` / ``group_by`` columns in a doc_id.
DOC_ID_SEPARATOR = "/"
ROW_HEADING = "Row"


class MarkdownKVRenderError(TerminalError):
    """Rows that cannot be rendered as asked (a null or repeated document id, unsorted groups)."""


# --- values and documents -----------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return decimal_digits(value)  # a JSON string, so no digit is lost to a float
    return str(value)  # timedelta


def decimal_digits(value: decimal.Decimal) -> str:
    """Plain digits with the column's scale: ``0.0000000000``, ``0.0000001000``, never ``0E-10``/``1.000E-7``."""
    return format(value, "f")


def format_value(value: Any) -> str:
    """A Python value from Arrow's ``to_pylist`` as Markdown-KV text (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(value) if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return decimal_digits(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return str(value)


def check_key(key: str) -> None:
    """Raise :class:`ConfigError` unless ``key:: value`` parses back with exactly this key.

    Rules out empty keys, keys with surrounding whitespace, ``::``, a backtick or a line break, and
    keys that would read as a header (``# x``), a fence or a bullet.
    """
    if not _reads_back(key):
        raise ConfigError(
            f"markdown_kv: column {key!r} cannot be a Markdown-KV key (it must be non-empty, without "
            "surrounding spaces, '::', backticks or line breaks, and not start like a header, list or fence)"
        )


def _reads_back(key: str) -> bool:
    # Parsing the rendered line is the one sure test: it covers headers, fences and bullets alike.
    if "\n" in key or "\r" in key:
        return False
    return [(entry.key, entry.value) for _, entry in parse_document(f"{key}:: x").entries] == [(key, "x")]


def render_entry(key: str, value: str) -> list[str]:
    """The lines of one entry: ``key:: first line`` and the later lines indented."""
    first, *rest = normalize_value(value).split("\n")
    return [f"{key}:: {first}".rstrip(), *(INDENT + line if line else "" for line in rest)]


def render_document(entries: Iterable[tuple[str, str]], *, title: str | None = None) -> str:
    """One document: an optional ``# title`` line, then the entries. Keys must pass :func:`check_key`."""
    lines = [f"# {_one_line(title)}", ""] if title is not None else []
    for key, value in entries:
        lines.extend(render_entry(key, value))
    return "\n".join(lines) + "\n"


def render_group(
    head: Sequence[tuple[str, str]], rows: Sequence[Sequence[tuple[str, str]]], *, title: str | None = None
) -> str:
    """One document for a group of rows: the group's own entries, then a ``## Row n`` section per row."""
    parts = [render_document(head, title=title)]
    for number, entries in enumerate(rows, start=1):
        parts.append(f"\n## {ROW_HEADING} {number}\n\n" + render_document(entries))
    return "".join(parts)


def _one_line(title: str) -> str:
    # A title is display text, not an entry: line breaks would end the header, so they become spaces.
    return " ".join(normalize_value(title).split("\n"))


# --- tables -------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Which columns play which role; validated once against the schema."""

    schema: pa.Schema
    key_columns: tuple[str, ...]
    group_by: tuple[str, ...]
    title_column: str | None
    seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key_columns and self.group_by:
            raise ConfigError("markdown_kv: give key_columns (one document per row) or group_by, not both")
        for name in (*self.key_columns, *self.group_by, *([self.title_column] if self.title_column else [])):
            if name not in self.schema.names:
                raise ConfigError(f"markdown_kv: column {name!r} is not in the rows ({self.schema.names})")
        for name in self.schema.names:
            check_key(name)

    def doc_id(self, row: dict[str, Any], number: int) -> str:
        """The id from ``key_columns``/``group_by`` values joined by ``/``, else the row number."""
        columns = self.group_by or self.key_columns
        if not columns:
            return str(number)
        for name in columns:
            if row[name] is None:
                raise MarkdownKVRenderError(
                    f"markdown_kv: row {number} has a null {name!r}; it names the document"
                )
        return DOC_ID_SEPARATOR.join(format_value(row[name]) for name in columns)

    def claim(self, doc_id: str, number: int) -> None:
        """Fail if an earlier row already made a document with this id (files would overwrite)."""
        if not (self.group_by or self.key_columns):
            return  # row numbers are unique; no need to remember them
        earlier = self.seen.setdefault(doc_id, number)
        if earlier == number:
            return
        if self.group_by:
            what, hint = "group_by values reappear", "sort rows by group_by (a pa.Table is sorted for you)"
        else:
            what, hint = "key_columns repeat", "use group_by to put rows with one key into one document"
        raise MarkdownKVRenderError(f"markdown_kv: {what} at row {number} (first at row {earlier}); {hint}")

    def title(self, row: dict[str, Any]) -> str | None:
        value = row[self.title_column] if self.title_column else None
        return None if value is None else format_value(value)


def _entries(row: dict[str, Any], skip: Sequence[str] = ()) -> list[tuple[str, str]]:
    return [
        (name, format_value(value)) for name, value in row.items() if value is not None and name not in skip
    ]


def _rows(
    data: pa.Table | Iterable[pa.RecordBatch], plan_args: dict[str, Any]
) -> tuple[_Plan, Iterator[dict[str, Any]]]:
    """The plan and the rows one batch at a time; a table is sorted by ``group_by`` first (stable)."""
    if isinstance(data, pa.Table):
        if plan_args["group_by"]:
            data = data.sort_by([(name, "ascending") for name in plan_args["group_by"]])
        plan = _Plan(data.schema, **plan_args)
        batches: Iterator[pa.RecordBatch] = iter(data.to_batches())
    else:
        batches = iter(data)
        first = next(batches, None)
        if first is None:
            return _Plan(pa.schema([]), (), (), None), iter(())
        plan = _Plan(first.schema, **plan_args)
        batches = _chain(first, batches)
    return plan, (row for batch in batches for row in batch.to_pylist(maps_as_pydicts="strict"))


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def render_table_to_markdown_kv(
    data: pa.Table | Iterable[pa.RecordBatch],
    *,
    key_columns: Sequence[str] = (),
    group_by: Sequence[str] = (),
    title_column: str | None = None,
) -> Iterator[tuple[str, str]]:
    """Render rows as Markdown-KV documents, streaming: yields ``(doc_id, text)``.

    :param data: a table, or record batches of one schema (read once, batch by batch).
    :param key_columns: columns whose values, joined by ``/``, are a row's doc_id; without them
        (and without ``group_by``) the doc_id is the row's 0-based position in ``data``.
    :param group_by: one document per distinct value of these columns: their entries first, then
        a ``## Row n`` section per row. Batches must hold a group's rows next to each other; a
        ``pa.Table`` is sorted (stably) for you.
    :param title_column: its value becomes the ``# title`` line (of a group: its first row's).
    :raises ConfigError: a named column is missing, or a column name cannot be a key.
    :raises MarkdownKVRenderError: a null or repeated document id, or a group split across the input.
    """
    args = {"key_columns": tuple(key_columns), "group_by": tuple(group_by), "title_column": title_column}
    plan, rows = _rows(data, args)
    if plan.group_by:
        yield from _grouped(plan, rows)
        return
    for number, row in enumerate(rows):
        doc_id = plan.doc_id(row, number)
        plan.claim(doc_id, number)
        yield doc_id, render_document(_entries(row), title=plan.title(row))


def _grouped(plan: _Plan, rows: Iterator[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """One document per run of rows with equal ``group_by`` values; memory holds one group."""
    current: str | None = None
    head: list[tuple[str, str]] = []
    members: list[list[tuple[str, str]]] = []
    title: str | None = None
    for number, row in enumerate(rows):
        doc_id = plan.doc_id(row, number)
        if doc_id != current:
            if current is not None:
                yield current, render_group(head, members, title=title)
            plan.claim(doc_id, number)
            current, members, title = doc_id, [], plan.title(row)
            head = _entries({name: row[name] for name in plan.group_by})
        members.append(_entries(row, skip=plan.group_by))
    if current is not None:
        yield current, render_group(head, members, title=title)
