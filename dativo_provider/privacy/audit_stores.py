"""Where the audit trail's events live: one file per event, or one Iceberg row per event.

Both stores follow :class:`AuditStore`: ``put`` stores event ``seq`` only if no other writer stored
that ``seq`` first (:class:`SeqTakenError`, so the trail re-reads the head and tries again), and
records the new head beside the events, sealed under the trail key through the ``sealer`` the trail
hands in (a store never holds the key). :class:`ObjectAuditStore` keeps ``00000042.json`` files,
created exclusively (``O_EXCL``-style hard links locally, ``If-None-Match: *`` on S3), and the head in
``HEAD.json``; :class:`IcebergAuditStore` appends one row per event with an optimistic commit that fails
if another writer moved the head, and records the head in each snapshot summary.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from dativo_provider.exceptions import ConfigError, DativoError
from dativo_provider.iceberg.commit import disable_builtin_retries, is_lost_race
from dativo_provider.privacy.anchors import HEAD_KIND, seal
from dativo_provider.privacy.hashing import canonical_json
from dativo_provider.privacy.objects import ObjectFiles

log = logging.getLogger(__name__)

#: The ``prev_hash`` of event 0, and the head hash of an empty trail.
GENESIS = "0" * 64


class SeqTakenError(DativoError):
    """Another writer stored an event with this ``seq`` first (the append is retried)."""

    retryable = True


@dataclass(frozen=True)
class Head:
    """The last event of a trail (``seq`` -1 and the genesis hash when empty) and the store's token."""

    seq: int
    hash: str
    token: Any = None


@dataclass(frozen=True)
class StoredEvent:
    """One event as read back: ``where`` names it in messages; ``event`` is None when unreadable."""

    where: str
    event: dict[str, Any] | None
    error: str = ""


#: Seals a head's fields under the trail key (the store never holds the key itself).
Sealer = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class RecordedHead:
    """A head a store recorded beside its events: ``seq``, ``hash``, ``mac`` (empty when written before
    heads were sealed) and what else the seal covers (``binding``, e.g. the snapshot's parent)."""

    where: str
    seq: int
    hash: str
    mac: str
    binding: Mapping[str, Any] = field(default_factory=dict)

    def sealed_by(self, key: bytes) -> bool:
        expected = seal(key, HEAD_KIND, {"seq": self.seq, "hash": self.hash, **self.binding})
        return hmac.compare_digest(self.mac, expected)


class AuditStore(Protocol):
    """Where events live. ``put`` must fail with :class:`SeqTakenError` if ``head`` is stale, and
    records the new head beside the event sealed with ``sealer`` where it can. A store may also offer
    ``recorded_heads() -> list[RecordedHead]`` (oldest first, as of the last :meth:`read`)."""

    def head(self) -> Head: ...

    def put(self, event: dict[str, Any], head: Head, sealer: Sealer) -> None: ...

    def read(self) -> list[StoredEvent]: ...



_EVENT_FILE = re.compile(r"(\d+)\.json")
_HEAD_FILE = "HEAD.json"


class ObjectAuditStore:
    """One JSON file per event, ``{seq:08d}.json``, under a local directory or ``s3://bucket/prefix``,
    and the sealed head in ``HEAD.json`` ({"seq", "hash", "mac"}).

    Event files are created exclusively (see :class:`~dativo_provider.privacy.objects.ObjectFiles`).
    ``HEAD.json`` is replaced after each event; it may lag behind the events (a crash, or racing
    writers) but never gets ahead of them, so :func:`verify` only objects to a head the events do not
    reach. S3 writes need the ``aws`` extra.

    :param connection: S3 credentials and endpoint (an ``ObjectStoreConfig``); None for the AWS chain.
    """

    def __init__(self, location: str, connection: Any = None) -> None:
        self.files = ObjectFiles(location, connection)
        self.location = self.files.location
        self.connection = connection
        self._heads: list[RecordedHead] = []

    def __repr__(self) -> str:
        return f"ObjectAuditStore({self.location!r})"

    def head(self) -> Head:
        names = self._names()
        if not names:
            return Head(-1, GENESIS)
        event = json.loads(self.files.read(names[max(names)]))
        return Head(int(event["seq"]), str(event["hash"]))

    def put(self, event: dict[str, Any], head: Head, sealer: Sealer) -> None:
        try:
            self.files.create(f"{event['seq']:08d}.json", canonical_json(event) + b"\n")
        except FileExistsError:
            raise SeqTakenError(f"{self.location}/{event['seq']:08d}.json exists") from None
        try:
            self._put_head(event, sealer)
        except Exception as exc:  # the event is stored and chained; a lagging head is allowed
            log.warning("%r: event %d stored, but %s was not updated: %s", self, event["seq"], _HEAD_FILE,
                        exc)

    def read(self) -> list[StoredEvent]:
        # The head first: it is written after its event, so it can never be ahead of the listing.
        self._heads = self._read_head()
        events = []
        for seq, path in sorted(self._names().items()):
            where = path.rsplit("/", 1)[-1]
            try:
                event = json.loads(self.files.read(path).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                events.append(StoredEvent(where, None, f"not JSON: {exc}"))
                continue
            if not isinstance(event, dict):
                events.append(StoredEvent(where, None, "not a JSON object"))
                continue
            events.append(_check_name(where, seq, event))
        return events

    def recorded_heads(self) -> list[RecordedHead]:
        """``HEAD.json`` as of the last :meth:`read` (none for trails written before it existed)."""
        return list(self._heads)

    def _names(self) -> dict[int, str]:
        return {int(_EVENT_FILE.fullmatch(name).group(1)): path  # type: ignore[union-attr]
                for name, path in self.files.names(_EVENT_FILE).items()}

    def _read_head(self) -> list[RecordedHead]:
        data = self.files.read_name(_HEAD_FILE)
        if data is None:
            return []
        where = f"{self.location}/{_HEAD_FILE}"
        try:
            head = json.loads(data.decode("utf-8"))
            # Never written unsealed (HEAD.json came with sealing), so a missing mac fails the seal.
            return [RecordedHead(where, int(head["seq"]), str(head["hash"]), str(head.get("mac") or "none"))]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            return [RecordedHead(f"{where} (unreadable)", -1, "", "unreadable")]

    def _put_head(self, event: Mapping[str, Any], sealer: Sealer) -> None:
        current = self._read_head()
        if current and current[0].seq >= event["seq"]:  # a racing writer recorded a later head
            return
        fields = {"seq": event["seq"], "hash": event["hash"]}
        self.files.replace(_HEAD_FILE, canonical_json({**fields, "mac": sealer(fields)}) + b"\n")


def _check_name(where: str, seq: int, event: dict[str, Any]) -> StoredEvent:
    if event.get("seq") != seq:
        return StoredEvent(where, None, f"the file is named for seq {seq} but holds seq {event.get('seq')!r}")
    return StoredEvent(where, event)


_HEAD_SEQ = "dativo.audit.head-seq"
_HEAD_HASH = "dativo.audit.head-hash"
_HEAD_MAC = "dativo.audit.head-mac"


class IcebergAuditStore:
    """One row per event in an Iceberg table (created on first use), one snapshot per event.

    Each append commits against the snapshot its head was read from (pyiceberg's own retries are
    switched off on the in-memory table), so a concurrent append makes it fail and re-read. Every
    snapshot's summary records the head (``dativo.audit.head-seq``/``-hash``), sealed with ``-mac``
    over the head and the snapshot's parent id (so a sealed head cannot be copied into another
    commit): appends read the head from there, and :func:`verify` checks every sealed head still in
    the table's metadata against the rows.

    :param catalog: a pyiceberg catalog (e.g. ``CatalogConfig.load()``).
    """

    def __init__(self, catalog: Any, identifier: str = "dativo.dsr_audit") -> None:
        self.catalog = catalog
        self.identifier = identifier
        self._read_from: Any = None

    def __repr__(self) -> str:
        return f"IcebergAuditStore({self.identifier!r})"

    def head(self) -> Head:
        table = self._table()
        snapshot = table.current_snapshot()
        if snapshot is None:
            return Head(-1, GENESIS, table)
        summary = snapshot.summary
        if summary.get(_HEAD_SEQ) is not None:
            return Head(int(summary[_HEAD_SEQ]), str(summary[_HEAD_HASH]), table)
        rows = table.scan(selected_fields=("seq", "hash")).to_arrow().sort_by([("seq", "descending")])
        if rows.num_rows == 0:
            return Head(-1, GENESIS, table)
        return Head(rows["seq"][0].as_py(), rows["hash"][0].as_py(), table)

    def put(self, event: dict[str, Any], head: Head, sealer: Sealer) -> None:
        import pyarrow as pa

        table = head.token
        disable_builtin_retries(table)
        row = {**event, "at": datetime.fromisoformat(event["at"]),
               "details": json.dumps(event["details"], sort_keys=True, separators=(",", ":"))}
        data = pa.Table.from_pylist([row], schema=table.schema().as_arrow())
        # The commit's parent is the snapshot the head was read from (retries are off), so seal it too.
        parent = table.current_snapshot().snapshot_id if table.current_snapshot() else None
        mac = sealer({"seq": event["seq"], "hash": event["hash"], "parent": parent})
        try:
            table.append(data, snapshot_properties={_HEAD_SEQ: str(event["seq"]), _HEAD_HASH: event["hash"],
                                                    _HEAD_MAC: mac})
        except Exception as exc:
            if is_lost_race(exc):
                raise SeqTakenError(f"{self.identifier}: another append committed first") from None
            raise

    def read(self) -> list[StoredEvent]:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = self._read_from = self.catalog.load_table(self.identifier)
        except NoSuchTableError:
            raise ConfigError(f"audit table {self.identifier} does not exist") from None
        rows = table.scan().to_arrow().sort_by([("seq", "ascending")]).to_pylist()
        return [_stored_row(row) for row in rows]

    def recorded_heads(self) -> list[RecordedHead]:
        """The head each snapshot still in the table's metadata recorded, oldest first (as of the
        last :meth:`read`), with the snapshot's actual parent as the seal's binding."""
        table = self._read_from or self._table()
        snapshots = sorted(table.metadata.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
        heads = []
        for snapshot in snapshots:
            summary = snapshot.summary
            if summary is None or summary.get(_HEAD_SEQ) is None:
                continue
            heads.append(RecordedHead(
                f"snapshot {snapshot.snapshot_id} of {self.identifier}", _int(summary.get(_HEAD_SEQ)),
                str(summary.get(_HEAD_HASH)), str(summary.get(_HEAD_MAC) or ""),
                {"parent": snapshot.parent_snapshot_id}))
        return heads

    def _table(self) -> Any:
        from pyiceberg.exceptions import NoSuchTableError

        for attempt in range(3):
            try:
                return self.catalog.load_table(self.identifier)
            except NoSuchTableError:
                pass
            try:
                self.catalog.create_namespace_if_not_exists(self.identifier.rsplit(".", 1)[0])
                return self.catalog.create_table(self.identifier, schema=_audit_schema())
            except Exception:  # a concurrent first append created it (catalogs say so differently)
                if attempt == 2:
                    raise
                time.sleep(random.uniform(0.01, 0.1))
        raise AssertionError("unreachable")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _audit_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("details", pa.string(), nullable=False),
        pa.field("subject", pa.list_(pa.string()), nullable=False),
        pa.field("prev_hash", pa.string(), nullable=False),
        pa.field("hash", pa.string(), nullable=False),
    ])


def _stored_row(row: dict[str, Any]) -> StoredEvent:
    where = f"row seq {row['seq']}"
    try:
        details = json.loads(row["details"])
    except (TypeError, ValueError) as exc:
        return StoredEvent(where, None, f"details are not JSON: {exc}")
    at = row["at"]
    text = at.astimezone(timezone.utc).isoformat(timespec="microseconds") if isinstance(at, datetime) else at
    return StoredEvent(where, {**row, "at": text, "details": details, "subject": list(row["subject"] or [])})
