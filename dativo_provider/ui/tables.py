"""The tables list: one row per table from its metadata file, cached by metadata location.

A table's metadata file never changes once written (a commit writes a new one), so a row built from
it is valid for as long as the catalog points at that file. Listing therefore costs:

- SQL catalogs: one query for every table's metadata location, then only the files not seen before
  are read (in parallel). Every request is current.
- Other catalogs (REST, Glue, ...): listing and loading each table is the only portable way to learn
  its metadata location, so that listing is kept for ``listing_ttl`` seconds.

Nothing here reads a data file or a manifest: rows, files and size are the current snapshot's summary
totals (``total-records``, ``total-data-files``, ``total-files-size``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dativo_provider.iceberg.state import SOURCE_KEY, STATE_KEY
from dativo_provider.quality.quarantine import QUARANTINE_OF
from dativo_provider.quality.wap import CONTRACT_DATASET_PROPERTY, CONTRACT_PROPERTY

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table.metadata import TableMetadata

#: How many snapshots back the watermark is looked for (the newest commit of a source is usually near).
WATERMARK_DEPTH = 500
#: A state value longer than this (a file source's compressed manifest) is shown by its length only.
MAX_STATE_VALUE = 48
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


@dataclass(frozen=True)
class TableRow:
    """One table as the list shows it. Snapshot ids are strings: they exceed JavaScript's 2^53."""

    catalog: str
    namespace: str
    name: str
    rows: int | None
    files: int | None
    size_bytes: int | None
    snapshot_id: str | None
    committed_at: str | None
    snapshots: int
    source: str | None
    watermark: Any
    contract: str | None
    contract_dataset: str | None
    quarantine_of: str | None

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "table": self.identifier}


def table_row(catalog: str, identifier: tuple[str, ...], metadata: TableMetadata) -> TableRow:
    """The list row of a table, from its metadata alone."""
    snapshot = metadata.current_snapshot()
    summary: Any = snapshot.summary if snapshot and snapshot.summary is not None else {}
    source, watermark = _watermark(metadata)
    return TableRow(
        catalog=catalog,
        namespace=".".join(identifier[:-1]),
        name=identifier[-1],
        rows=_int(summary.get("total-records")),
        files=_int(summary.get("total-data-files")),
        size_bytes=_int(summary.get("total-files-size")),
        snapshot_id=str(snapshot.snapshot_id) if snapshot else None,
        committed_at=iso_ms(snapshot.timestamp_ms) if snapshot else None,
        snapshots=len(metadata.snapshots),
        source=source,
        watermark=watermark,
        contract=metadata.properties.get(CONTRACT_PROPERTY),
        contract_dataset=metadata.properties.get(CONTRACT_DATASET_PROPERTY),
        quarantine_of=metadata.properties.get(QUARANTINE_OF),
    )


def iso_ms(timestamp_ms: int) -> str:
    """Milliseconds since the epoch as an ISO 8601 UTC timestamp."""
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def redact_identity(identity: str) -> str:
    """A source identity without any ``user:password@`` part of a URL in it."""
    return _USERINFO.sub(r"\g<scheme>", identity)


def _watermark(metadata: TableMetadata) -> tuple[str | None, Any]:
    """The newest source state committed on main (see :mod:`dativo_provider.iceberg.state`)."""
    from pyiceberg.table.snapshots import ancestors_of

    head = metadata.snapshot_by_name("main")
    if head is None:
        return None, None
    for depth, snapshot in enumerate(ancestors_of(head, metadata)):
        if depth >= WATERMARK_DEPTH:
            break
        summary: Mapping[str, Any] = snapshot.summary or {}
        if summary.get(STATE_KEY):
            return redact_identity(summary.get(SOURCE_KEY) or ""), shown_state(json.loads(summary[STATE_KEY]))
    return None, None


def shown_state(state: Any) -> Any:
    """A source's committed state for display: long values (manifests, tokens of pages) shortened."""
    if isinstance(state, dict):
        return {key: shown_state(value) for key, value in state.items()}
    if isinstance(state, str) and len(state) > MAX_STATE_VALUE:
        return f"({len(state)} characters)"
    return state


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


class TableListCache:
    """Rows by ``(catalog, metadata location)``, and per catalog the last listing when it is not SQL.

    :param max_rows: rows kept (least recently used go first).
    :param listing_ttl: seconds a non-SQL catalog's listing is reused.
    :param readers: threads reading metadata files not seen before.
    """

    def __init__(self, max_rows: int = 50_000, listing_ttl: float = 60.0, readers: int = 8) -> None:
        self.max_rows = max_rows
        self.listing_ttl = listing_ttl
        self.readers = readers
        self._rows: OrderedDict[tuple[str, str], TableRow] = OrderedDict()
        self._listings: dict[str, tuple[float, dict[tuple[str, ...], str]]] = {}
        self._lock = threading.Lock()

    def rows(self, label: str, catalog: Catalog) -> list[TableRow]:
        """Every table of ``catalog``, shown as catalog ``label``, sorted by identifier."""
        locations = sql_metadata_locations(catalog)
        if locations is None:
            locations = self._listing(label, catalog)
        missing = {ident: loc for ident, loc in locations.items() if self._get(label, loc) is None}
        if missing:
            self._read(label, catalog, missing)
        found = ((ident, self._get(label, loc)) for ident, loc in sorted(locations.items()))
        return [row for _, row in found if row is not None]

    def _get(self, catalog: str, location: str) -> TableRow | None:
        with self._lock:
            row = self._rows.get((catalog, location))
            if row is not None:
                self._rows.move_to_end((catalog, location))
            return row

    def _put(self, catalog: str, location: str, row: TableRow) -> None:
        with self._lock:
            self._rows[(catalog, location)] = row
            while len(self._rows) > self.max_rows:
                self._rows.popitem(last=False)

    def _read(self, label: str, catalog: Catalog, missing: Mapping[tuple[str, ...], str]) -> None:
        from pyiceberg.io import load_file_io
        from pyiceberg.serializers import FromInputFile

        def read(item: tuple[tuple[str, ...], str]) -> None:
            ident, location = item
            io = load_file_io(properties=dict(catalog.properties), location=location)
            metadata = FromInputFile.table_metadata(io.new_input(location))
            self._put(label, location, table_row(label, ident, metadata))

        with ThreadPoolExecutor(max_workers=self.readers) as pool:
            list(pool.map(read, missing.items()))

    def _listing(self, label: str, catalog: Catalog) -> dict[tuple[str, ...], str]:
        """Identifier -> metadata location by listing and loading every table (kept ``listing_ttl``)."""
        now = time.monotonic()
        kept = self._listings.get(label)
        if kept is not None and now - kept[0] < self.listing_ttl:
            return kept[1]
        locations: dict[tuple[str, ...], str] = {}
        for ident in all_tables(catalog):
            table = catalog.load_table(ident)
            locations[tuple(ident)] = table.metadata_location
            if self._get(label, table.metadata_location) is None:
                self._put(label, table.metadata_location, table_row(label, tuple(ident), table.metadata))
        self._listings[label] = (now, locations)
        return locations

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._listings.clear()


def all_tables(catalog: Catalog) -> Iterable[tuple[str, ...]]:
    """Every table identifier, nested namespaces included."""
    pending = list(catalog.list_namespaces())
    while pending:
        namespace = pending.pop()
        yield from (tuple(ident) for ident in catalog.list_tables(namespace))
        children = catalog.list_namespaces(namespace)
        pending.extend(child for child in children if tuple(child) != tuple(namespace))


def sql_metadata_locations(catalog: Catalog) -> dict[tuple[str, ...], str] | None:
    """Identifier -> metadata location of every table of a SQL catalog in one query; None otherwise."""
    kind = type(catalog).__name__
    if kind not in ("SqlCatalog", "DbApiCatalog"):
        return None
    try:
        rows = _sql_rows(catalog, _TABLES_QUERY + " AND (iceberg_type IS NULL OR iceberg_type = 'TABLE')")
    except Exception:  # a v0 catalog database has no iceberg_type column (and no views)
        rows = _sql_rows(catalog, _TABLES_QUERY)
    return {(*str(namespace).split("."), str(name)): str(location) for namespace, name, location in rows}


_TABLES_QUERY = ("SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
                 "WHERE catalog_name = {p} AND metadata_location IS NOT NULL")


def _sql_rows(catalog: Catalog, query: str) -> list[Any]:
    if type(catalog).__name__ == "DbApiCatalog":
        return list(catalog._db.query(query.format(p="?"), catalog.name))  # type: ignore[attr-defined]
    from sqlalchemy import text

    with catalog.engine.connect() as connection:  # type: ignore[attr-defined]
        return list(connection.execute(text(query.format(p=":name")), {"name": catalog.name}).all())
