"""Markdown-KV: an LLM-friendly document format of ``key:: value`` lines under Markdown headers.

* :mod:`~dativo_provider.markdown_kv.parser` — the document model and :func:`parse_document`
  (standard library and PyYAML only);
* :mod:`~dativo_provider.markdown_kv.layouts` — the Arrow layouts ``string``, ``row_per_kv`` and
  ``document_level``;
* :mod:`~dativo_provider.markdown_kv.render` and :mod:`~dativo_provider.markdown_kv.sink` — rows
  rendered as documents, into a string column or ``.mdkv`` files.

The source that reads documents into Iceberg is :mod:`dativo_provider.sources.markdown_kv`. The
format is specified in ``docs/sources-markdown-kv.md``. Names are imported lazily, so importing
the parser does not import pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Document": "parser",
    "Entry": "parser",
    "Section": "parser",
    "MarkdownKVSyntaxError": "parser",
    "parse_document": "parser",
    "normalize_value": "parser",
    "json_or_none": "parser",
    "LAYOUTS": "layouts",
    "BatchBuilder": "layouts",
    "layout_schema": "layouts",
    "MarkdownKVRenderError": "render",
    "render_document": "render",
    "render_table_to_markdown_kv": "render",
    "render_to_batches": "sink",
    "write_markdown_kv_files": "sink",
    "WriteResult": "sink",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
