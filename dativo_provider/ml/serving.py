"""Where a feature table's values were served: the ledger that lets an erasure follow them.

Materializing into a Feast online store or exporting to a SageMaker feature group copies a subject's
feature values out of Iceberg. Each such writer records its target on the *source* feature table, as a
table property ``dativo.serving.<kind>.<name>`` holding a JSON description (store kind and location,
entity key columns, connection *ids*: never credentials). An erasure that finds the subject in that
table reads the ledger and deletes the subject's entity keys from every recorded target.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

SERVING_PREFIX = "dativo.serving."
_NAME = re.compile(r"[A-Za-z0-9_.:/@-]+")


def serving_key(kind: str, name: str) -> str:
    """The table property of one target: ``dativo.serving.feast.<project>/<feature view>@<store>``."""
    if not _NAME.fullmatch(kind) or not _NAME.fullmatch(name):
        raise ConfigError(f"serving target {kind!r}/{name!r}: letters, digits and _ . : / @ - only")
    return f"{SERVING_PREFIX}{kind}.{name}"


def record_serving_target(catalog: CatalogConfig, table: str, kind: str, name: str,
                          target: Mapping[str, Any]) -> None:
    """Record (or update) one target on ``table``; a no-op when the same description is already there.

    ``target`` must be JSON-serialisable and hold no secret: connections by id, stores by location.
    It always carries ``kind`` and ``entity_columns`` (the feature table's columns that form the key).
    """
    if "entity_columns" not in target or not target["entity_columns"]:
        raise ConfigError(f"serving target {kind}/{name} on {table}: entity_columns is required")
    value = json.dumps({**target, "kind": kind, "name": name}, sort_keys=True, separators=(",", ":"))
    key = serving_key(kind, name)
    iceberg = catalog.load().load_table(table)
    if iceberg.properties.get(key) == value:
        return
    with iceberg.transaction() as transaction:
        transaction.set_properties({key: value})


def serving_targets(table: Table) -> list[dict[str, Any]]:
    """Every target recorded on ``table``, in key order."""
    found = []
    for key in sorted(table.properties):
        if key.startswith(SERVING_PREFIX):
            try:
                found.append(json.loads(table.properties[key]))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"table property {key} is not JSON ({exc}); rewrite it or remove it") from exc
    return found
