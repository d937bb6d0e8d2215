"""Move connections of this provider's renamed types to their new names (see docs/connections.md).

``python -m dativo_provider.hooks.migration connections.json`` rewrites a file written by
``airflow connections export`` in place, giving each connection of a renamed type its new type, and
prints what changed; ``airflow connections import --overwrite`` then stores it. An ``iceberg``
connection changes only when it was written for this provider (:func:`reads_own_fields`): one
written for the official Iceberg provider keeps its type.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dativo_provider.hooks.iceberg import CONN_TYPE, OFFICIAL_CONN_TYPE, reads_own_fields
from dativo_provider.sources.registry import legacy_names


def renamed_type(conn: Any) -> str | None:
    """The type ``conn`` should have now, or None when its type needs no change."""
    if conn.conn_type == OFFICIAL_CONN_TYPE:
        return CONN_TYPE if reads_own_fields(conn) else None
    kind = legacy_names().get(conn.conn_type)
    return kind.name if kind else None


def migrate_export(path: Path) -> list[str]:
    """Rewrite an ``airflow connections export`` JSON file in place; returns one line per change."""
    connections: dict[str, dict[str, Any]] = json.loads(path.read_text())
    changes = []
    for conn_id, fields in connections.items():
        new = renamed_type(_connection(conn_id, fields))
        if new:
            changes.append(f"{conn_id}: {fields['conn_type']} -> {new}")
            fields["conn_type"] = new
    path.write_text(json.dumps(connections, indent=2))
    return changes


def _connection(conn_id: str, fields: Mapping[str, Any]) -> Any:
    extra = fields.get("extra") or {}
    extra_dejson = extra if isinstance(extra, Mapping) else json.loads(extra)
    return SimpleNamespace(conn_id=conn_id, conn_type=fields.get("conn_type"), host=fields.get("host"),
                           extra_dejson=extra_dejson)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dativo_provider.hooks.migration CONNECTIONS_JSON", file=sys.stderr)
        return 2
    changes = migrate_export(Path(args[0]))
    print("\n".join(changes) if changes else "no connection of a renamed type")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
