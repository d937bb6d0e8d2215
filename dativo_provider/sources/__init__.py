"""Source connectors. ``build_source`` turns a source spec (a plain dict) into a :class:`Source`.

Which module builds which ``type`` is in :mod:`dativo_provider.sources.registry`. Modules are imported
only when their kind is asked for, so a missing extra fails with its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from dativo_provider.sources.base import ReadBounds, Source, SourceStream
from dativo_provider.sources.registry import SOURCE_TYPES, source_type


def build_source(spec: Mapping[str, Any], connection: Any = None) -> Source:
    """Build the source a spec describes.

    :param spec: the source spec; ``spec["type"]`` picks the connector.
    :param connection: the connector's config (``DatabaseConfig``, ``ObjectStoreConfig`` or None),
        built from an Airflow Connection by the hooks.
    :raises ConfigError: an unknown ``type`` (the message lists the valid ones).
    """
    module = importlib.import_module(source_type(spec.get("type")).module)
    return module.from_spec(spec, connection)


__all__ = ["ReadBounds", "Source", "SourceStream", "build_source", "SOURCE_TYPES"]
