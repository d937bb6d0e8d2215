"""The three Arrow layouts a Markdown-KV document lands in, and a builder that batches documents.

=================  =========================================================================
``string``         one row per document: ``doc_id``, ``content`` (the text as read)
``row_per_kv``     one row per entry: ``doc_id``, ``section``, ``key``, ``value``, ``value_json``,
                   ``ord`` (int32), ``extracted_at`` (timestamp[us, UTC])
``document_level`` one row per document: ``doc_id``, ``title``,
                   ``sections`` list<struct<section, level int32,
                   kv list<struct<key, value, value_json, ord int32>>>>, ``raw_md``
=================  =========================================================================

All columns are nullable in the Arrow schema (Iceberg optional columns); which ones are never null
is documented in ``docs/sources-markdown-kv.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from dativo_provider.exceptions import ConfigError
from dativo_provider.markdown_kv.parser import Document

LAYOUTS = ("string", "row_per_kv", "document_level")

KV_TYPE = pa.struct(
    [("key", pa.string()), ("value", pa.string()), ("value_json", pa.string()), ("ord", pa.int32())]
)
SECTION_TYPE = pa.struct([("section", pa.string()), ("level", pa.int32()), ("kv", pa.list_(KV_TYPE))])

SCHEMAS: dict[str, pa.Schema] = {
    "string": pa.schema([("doc_id", pa.string()), ("content", pa.string())]),
    "row_per_kv": pa.schema(
        [
            ("doc_id", pa.string()),
            ("section", pa.string()),
            ("key", pa.string()),
            ("value", pa.string()),
            ("value_json", pa.string()),
            ("ord", pa.int32()),
            ("extracted_at", pa.timestamp("us", tz="UTC")),
        ]
    ),
    "document_level": pa.schema(
        [
            ("doc_id", pa.string()),
            ("title", pa.string()),
            ("sections", pa.list_(SECTION_TYPE)),
            ("raw_md", pa.string()),
        ]
    ),
}


def layout_schema(layout: str) -> pa.Schema:
    """The Arrow schema of ``layout``.

    :raises ConfigError: an unknown layout name.
    """
    if layout not in SCHEMAS:
        raise ConfigError(f"markdown_kv: 'layout' is {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return SCHEMAS[layout]


def string_row(doc_id: str, text: str) -> dict[str, Any]:
    return {"doc_id": doc_id, "content": text}


def kv_rows(doc_id: str, document: Document, extracted_at: dt.datetime) -> list[dict[str, Any]]:
    """One row per entry, in ``ord`` order."""
    return [
        {
            "doc_id": doc_id,
            "section": section.path,
            "key": entry.key,
            "value": entry.value,
            "value_json": entry.value_json,
            "ord": entry.ord,
            "extracted_at": extracted_at,
        }
        for section, entry in document.entries
    ]


def document_row(doc_id: str, document: Document) -> dict[str, Any]:
    """The whole document as one row with its sections nested."""
    sections = [
        {
            "section": section.path,
            "level": section.level,
            "kv": [
                {"key": e.key, "value": e.value, "value_json": e.value_json, "ord": e.ord}
                for e in section.entries
            ],
        }
        for section in document.sections
    ]
    return {"doc_id": doc_id, "title": document.title, "sections": sections, "raw_md": document.text}


class BatchBuilder:
    """Accumulates the rows of some documents in one layout; :meth:`flush` makes them a batch.

    :param layout: one of :data:`LAYOUTS`.
    """

    def __init__(self, layout: str) -> None:
        self.schema = layout_schema(layout)
        self.layout = layout
        self.documents = 0
        self._rows: list[dict[str, Any]] = []

    @property
    def needs_document(self) -> bool:
        """False for ``string``, which stores the text without parsing it."""
        return self.layout != "string"

    def add(self, doc_id: str, text: str, document: Document | None, extracted_at: dt.datetime) -> int:
        """Add one document's rows; returns how many rows it gave.

        :param document: the parsed document (may be None for the ``string`` layout).
        :param extracted_at: the ``row_per_kv`` timestamp, passed in by the caller (never "now").
        """
        if self.layout == "string":
            rows = [string_row(doc_id, text)]
        elif document is None:
            raise ValueError(f"the {self.layout} layout needs the parsed document")
        elif self.layout == "row_per_kv":
            rows = kv_rows(doc_id, document, extracted_at)
        else:
            rows = [document_row(doc_id, document)]
        self._rows.extend(rows)
        self.documents += 1
        return len(rows)

    def flush(self) -> pa.RecordBatch:
        """The rows added since the last flush, as one batch of :attr:`schema`."""
        batch = pa.RecordBatch.from_pylist(self._rows, schema=self.schema)
        self._rows = []
        self.documents = 0
        return batch
