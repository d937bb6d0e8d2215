"""Validate OpenLineage events against the spec's own JSON schemas (vendored in ``openlineage_spec/``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPEC = Path(__file__).parent / "openlineage_spec"


@functools.cache
def _registry() -> tuple[Any, dict[str, Any]]:
    from referencing import Registry, Resource

    documents = [
        json.loads(p.read_text()) for p in [SPEC / "OpenLineage.json", *sorted(SPEC.glob("facets/*.json"))]
    ]
    by_id = {document["$id"]: document for document in documents}
    registry = Registry().with_resources((key, Resource.from_contents(doc)) for key, doc in by_id.items())
    return registry, by_id


def _validator(reference: str) -> Any:
    from jsonschema import Draft202012Validator

    registry, _ = _registry()
    return Draft202012Validator({"$ref": reference}, registry=registry)


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every facet of the event, as (where, facet)."""
    for kind in ("run", "job"):
        for name, facet in (event.get(kind, {}).get("facets") or {}).items():
            yield f"{kind}.{name}", facet
    for side in ("inputs", "outputs"):
        for dataset in event.get(side) or []:
            for group in ("facets", "inputFacets", "outputFacets"):
                for name, facet in (dataset.get(group) or {}).items():
                    yield f"{side}[{dataset['name']}].{group}.{name}", facet


def problems(event: dict[str, Any]) -> list[str]:
    """Schema violations of ``event`` and of each of its spec facets; [] when it is valid.

    A facet whose ``_schemaURL`` names a spec facet file in another version than the one vendored is a
    problem too: it would not be checked.
    """
    _, by_id = _registry()
    found = [
        f"event: {error.message} at {list(error.absolute_path)}"
        for error in _validator(
            "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
        ).iter_errors(event)
    ]
    for where, facet in facets_of(event):
        url = str(facet.get("_schemaURL", ""))
        document = url.split("#")[0]
        if not url.startswith("https://openlineage.io/spec/facets/"):
            continue
        if document not in by_id:
            found.append(f"{where}: schema {document} is not vendored")
            continue
        found += [
            f"{where}: {error.message} at {list(error.absolute_path)}"
            for error in _validator(url).iter_errors(facet)
        ]
    return found
