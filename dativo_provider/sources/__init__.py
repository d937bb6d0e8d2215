"""Source connectors. ``build_source`` turns a source spec (a plain dict) into a :class:`Source`.

Modules are imported only when their kind is asked for, so a missing extra fails with its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.sources.base import ReadBounds, Source, SourceStream

#: source ``type`` -> module defining ``from_spec(spec, connection) -> Source``
SOURCE_MODULES: dict[str, str] = {
    "postgres": "dativo_provider.sources.postgres",
    "mysql": "dativo_provider.sources.mysql",
    "files": "dativo_provider.sources.files",
    "stripe": "dativo_provider.sources.stripe",
    "hubspot": "dativo_provider.sources.hubspot",
    "google_drive": "dativo_provider.sources.google_drive",
    "google_sheets": "dativo_provider.sources.google_sheets",
    "markdown_kv": "dativo_provider.sources.markdown_kv",
}


def build_source(spec: Mapping[str, Any], connection: Any = None) -> Source:
    """Build the source a spec describes.

    :param spec: the source spec; ``spec["type"]`` picks the connector.
    :param connection: the connector's config (``DatabaseConfig``, ``ObjectStoreConfig`` or None),
        built from an Airflow Connection by the hooks.
    """
    kind = spec.get("type")
    if kind not in SOURCE_MODULES:
        raise ConfigError(f"source 'type' is {kind!r}; expected one of {sorted(SOURCE_MODULES)}")
    module = importlib.import_module(SOURCE_MODULES[kind])
    return module.from_spec(spec, connection)


__all__ = ["ReadBounds", "Source", "SourceStream", "build_source", "SOURCE_MODULES"]
