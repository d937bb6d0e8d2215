"""Lineage edges through OpenMetadata's REST API (``PUT /api/v1/lineage``), for servers without the
OpenLineage endpoint (before 1.12) or for edges no OpenLineage event carries.

An edge names tables by their fully qualified names; they are resolved to ids with one GET each
(cached). ``PUT`` adds or updates the edge, so sending it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.lineage.openmetadata_client import OpenMetadataClient, OpenMetadataNotFound, quote_path
from dativo_provider.lineage.openmetadata_mapping import fqn, split_fqn


@dataclass(frozen=True)
class LineageEdge:
    """``source`` feeds ``target`` (table FQNs); ``columns`` maps a target column to its source columns.

    :param pipeline_fqn: an OpenMetadata pipeline (e.g. the Airflow task) to show on the edge, if it exists.
    """

    source: str
    target: str
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str | None = None
    pipeline_fqn: str | None = None


def add_lineage(client: OpenMetadataClient, edges: Iterable[LineageEdge]) -> int:
    """Send each edge; the number sent.

    :raises ConfigError: an edge names a table OpenMetadata does not have (sync it first).
    """
    ids: dict[tuple[str, str], str] = {}
    sent = 0
    for edge in edges:
        details: dict[str, Any] = {"source": "PipelineLineage" if edge.pipeline_fqn else "Manual"}
        if edge.columns:
            details["columnsLineage"] = [
                {
                    "fromColumns": [fqn(*split_fqn(edge.source), c) for c in sources],
                    "toColumn": fqn(*split_fqn(edge.target), target),
                }
                for target, sources in sorted(edge.columns.items())
            ]
        if edge.pipeline_fqn:
            details["pipeline"] = {"id": _id(client, ids, "pipeline", edge.pipeline_fqn), "type": "pipeline"}
        if edge.description:
            details["description"] = edge.description
        client.put(
            "/lineage",
            {
                "edge": {
                    "fromEntity": {"id": _id(client, ids, "table", edge.source), "type": "table"},
                    "toEntity": {"id": _id(client, ids, "table", edge.target), "type": "table"},
                    "lineageDetails": details,
                }
            },
        )
        sent += 1
    return sent


def _id(client: OpenMetadataClient, cache: dict[tuple[str, str], str], kind: str, name: str) -> str:
    if (kind, name) not in cache:
        try:
            cache[kind, name] = client.get(f"/{kind}s/name/{quote_path(name)}")["id"]
        except OpenMetadataNotFound:
            raise ConfigError(f"lineage: OpenMetadata has no {kind} {name!r}; sync it first") from None
    return cache[kind, name]
