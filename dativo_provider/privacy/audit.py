"""A tamper-evident, append-only audit trail of data-subject requests.

Each event is one JSON object::

    {"seq": 42, "request_id": "dsr-1", "event": "deleted", "at": "2026-11-28T07:21:08.123456+00:00",
     "details": {"table": "crm.orders", "rows": 3}, "subject": ["<hex>", ...],
     "prev_hash": "<hash of event 41>", "hash": "<hex>"}

* ``seq`` counts 0, 1, 2 ... over the whole trail (one chain for all requests); event 0's
  ``prev_hash`` is 64 zeros.
* ``subject`` holds HMAC-SHA256(key, subject_kind + ":" + identifier) per identifier, sorted: the trail
  never holds an identifier in clear text, and :meth:`AuditTrail.append` refuses ``details`` that
  contain one.
* ``hash`` is HMAC-SHA256(key, canonical JSON of the event without ``hash``), not a plain SHA-256.
  With a plain hash, whoever can write to the store could edit an event and recompute every later
  hash, and the chain would still check. With the keyed hash, forging or re-chaining events needs the
  trail key, which lives in an Airflow Connection, not next to the data.

:func:`verify` walks the chain and names the first position that is wrong: an edited event (its hash
does not match), a removed one (a gap in ``seq``), reordered or inserted ones (``seq`` or
``prev_hash`` out of place). Cutting events off the *end* leaves a valid shorter chain; pass the head
hash recorded elsewhere (a signed certificate holds it) as ``anchor`` to detect that. The Iceberg store
also records the head in each snapshot summary, which :func:`verify` compares with the table.

Two stores share one small interface (:class:`AuditStore`): :class:`IcebergAuditStore` (one row per
event, appended with an optimistic commit that fails if another writer moved the head) and
:class:`ObjectAuditStore` (one file per event, ``00000042.json``, created exclusively: ``O_EXCL``-style
hard links locally, ``If-None-Match: *`` on S3). Two racing appends never share a ``seq``: the loser
re-reads the head and tries again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from dativo_provider.exceptions import CommitConflictError, ConfigError, DativoError
from dativo_provider.iceberg.commit import disable_builtin_retries, is_lost_race

if TYPE_CHECKING:
    from dativo_provider.privacy.request import SubjectRequest

log = logging.getLogger(__name__)

EVENTS = ("received", "discovered", "exported", "deleted", "purged", "verified", "completed", "failed",
          "restricted", "lifted", "terminated", "would_terminate", "dry_run_completed")
GENESIS = "0" * 64
_FIELDS = ("seq", "request_id", "event", "at", "details", "subject", "prev_hash", "hash")
_MIN_KEY_BYTES = 16


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


class AuditStore(Protocol):
    """Where events live. ``put`` must fail with :class:`SeqTakenError` if ``head`` is stale."""

    def head(self) -> Head: ...

    def put(self, event: dict[str, Any], head: Head) -> None: ...

    def read(self) -> list[StoredEvent]: ...


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of :func:`verify`. ``position`` is the first bad ``seq`` (None when valid)."""

    valid: bool
    position: int | None
    reason: str
    events: int = 0
    head_hash: str = GENESIS


def subject_hash(key: bytes | str, subject_kind: str, identifier: str) -> str:
    """HMAC-SHA256(key, subject_kind + ":" + identifier) as hex: how identifiers are stored."""
    message = f"{subject_kind}:{identifier}".encode()
    return hmac.new(audit_key(key), message, hashlib.sha256).hexdigest()


def subject_hashes(key: bytes | str, subject_kind: str, identifiers: Iterable[str]) -> list[str]:
    """The sorted, distinct keyed hashes of ``identifiers``."""
    return sorted({subject_hash(key, subject_kind, str(value)) for value in identifiers})


def event_hash(key: bytes | str, event: Mapping[str, Any]) -> str:
    """HMAC-SHA256(key, canonical JSON of ``event`` without ``hash``) as hex."""
    from dativo_provider.privacy.certificate import canonical_json

    body = {name: value for name, value in event.items() if name != "hash"}
    return hmac.new(audit_key(key), canonical_json(body), hashlib.sha256).hexdigest()


class AuditTrail:
    """Appends events to ``store``, hash-chained and keyed with ``key`` (at least 16 bytes).

    :param max_attempts: how often an append re-reads the head after losing a race.
    """

    def __init__(self, store: AuditStore, key: bytes | str, max_attempts: int = 50) -> None:
        self.store = store
        self._key = audit_key(key)
        self.max_attempts = max_attempts

    def __repr__(self) -> str:
        return f"AuditTrail(store={self.store!r})"

    def append(self, request_id: str, event: str, details: Mapping[str, Any] | None = None, *,
               subject_kind: str = "", identifiers: Sequence[str] = (), at: datetime | None = None
               ) -> dict[str, Any]:
        """Append one event and return it as stored.

        :param identifiers: the subject's identifiers, stored only as keyed hashes.
        :raises ConfigError: unknown event, ``details`` not a JSON object or holding an identifier.
        :raises CommitConflictError: other writers won the race ``max_attempts`` times.
        """
        body = self._body(request_id, event, details, subject_kind, identifiers, at)
        for attempt in range(1, self.max_attempts + 1):
            head = self.store.head()
            record = {**body, "seq": head.seq + 1, "prev_hash": head.hash}
            record["hash"] = event_hash(self._key, record)
            try:
                self.store.put(record, head)
            except SeqTakenError:
                log.info("audit append lost a race for seq %d (attempt %d)", head.seq + 1, attempt)
                time.sleep(min(0.01 * 2**attempt, 0.5) * random.uniform(0.5, 1.5))
                continue
            return record
        raise CommitConflictError(f"audit trail {self.store!r}: other writers won {self.max_attempts} times")

    def append_request(self, request: SubjectRequest, event: str,
                       details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Append an event about ``request``, with all its identifiers (ids and e-mails) hashed."""
        return self.append(request.request_id, event, details, subject_kind=request.subject_kind,
                           identifiers=(*request.subject_ids, *request.emails))

    def _body(self, request_id: str, event: str, details: Mapping[str, Any] | None, subject_kind: str,
              identifiers: Sequence[str], at: datetime | None) -> dict[str, Any]:
        if event not in EVENTS:
            raise ConfigError(f"audit event {event!r} is unknown; expected one of {EVENTS}")
        if isinstance(identifiers, str):
            raise ConfigError("identifiers must be a sequence of strings, not one string")
        details = dict(details or {})
        _refuse_identifiers(details, [str(value) for value in identifiers])
        moment = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
        return {
            "request_id": str(request_id),
            "event": event,
            "at": moment.isoformat(timespec="microseconds"),
            "details": json.loads(json.dumps(details, allow_nan=False)),
            "subject": subject_hashes(self._key, subject_kind, identifiers) if identifiers else [],
        }


def verify(store: AuditStore, key: bytes | str, anchor: str | None = None) -> AuditCheck:
    """Check the whole trail; the first problem found decides ``position`` and ``reason``.

    :param anchor: a head hash recorded outside the store (e.g. in a certificate); the trail must
        still contain the event with this hash, which detects events cut off the end.
    """
    key = audit_key(key)
    previous = GENESIS
    stored = store.read()
    for position, item in enumerate(stored):
        problem = _problem(item, position, previous, key)
        if problem:
            return AuditCheck(False, position, problem, len(stored), previous)
        previous = item.event["hash"]  # type: ignore[index]
        if previous == anchor:
            anchor = None
    extra = getattr(store, "head_problem", None)
    problem = extra(len(stored) - 1, previous) if extra else None
    if problem:
        return AuditCheck(False, len(stored), problem, len(stored), previous)
    if anchor is not None:
        return AuditCheck(False, len(stored), f"no event has the anchor hash {anchor}: events after seq "
                          f"{len(stored) - 1} were removed, or the anchor is from another trail",
                          len(stored), previous)
    return AuditCheck(True, None, f"{len(stored)} event(s), chain intact", len(stored), previous)


def _problem(item: StoredEvent, position: int, previous: str, key: bytes) -> str | None:
    if item.event is None:
        return f"{item.where}: {item.error}"
    event = item.event
    if set(event) != set(_FIELDS):
        return f"{item.where}: fields are {sorted(event)}, expected {sorted(_FIELDS)}"
    if event["seq"] != position:
        if isinstance(event["seq"], int) and event["seq"] > position:
            return f"event {position} is missing ({item.where} holds seq {event['seq']})"
        return f"{item.where}: seq {event['seq']!r} is out of place at position {position}"
    if not hmac.compare_digest(str(event["hash"]), event_hash(key, event)):
        return f"event {position} ({item.where}) was edited: its hash does not match its content"
    if event["prev_hash"] != previous:
        return f"event {position} ({item.where}) does not follow event {position - 1}: the chain is broken"
    return None


def _refuse_identifiers(details: Any, identifiers: list[str]) -> None:
    if isinstance(details, Mapping):
        for name, value in details.items():
            _refuse_identifiers(name, identifiers)
            _refuse_identifiers(value, identifiers)
    elif isinstance(details, (list, tuple)):
        for value in details:
            _refuse_identifiers(value, identifiers)
    elif isinstance(details, str) and any(_contains(details, i) for i in identifiers if i):
        raise ConfigError("audit details contain one of the subject's identifiers in clear text; "
                          "pass identifiers only through 'identifiers' (they are stored hashed)")


def _contains(text: str, identifier: str) -> bool:
    """Does ``text`` hold ``identifier``? Whole tokens only: a customer id 87 is not inside the
    snapshot id 4870…, but is inside "customer 87"; e-mails and other text match case-insensitively."""
    import re

    return re.search(rf"(?<![\w.@-]){re.escape(identifier.lower())}(?![\w.@-])", text.lower()) is not None


def audit_key(key: bytes | str) -> bytes:
    """``key`` as bytes; :class:`ConfigError` when shorter than 16 bytes."""
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(data) < _MIN_KEY_BYTES:
        raise ConfigError(f"the audit key is {len(data)} bytes; use at least {_MIN_KEY_BYTES} "
                          "(32 random bytes recommended)")
    return data


# ---------------------------------------------------------------------------------------------- stores

_EVENT_FILE = re.compile(r"^(\d+)\.json$")


class ObjectAuditStore:
    """One JSON file per event, ``{seq:08d}.json``, under a local directory or ``s3://bucket/prefix``.

    Files are created exclusively: locally by hard-linking a fully written temporary file (fails if
    the name exists, and a crash never leaves half an event); on S3 with ``If-None-Match: *``. Reads
    and listings go through ``pyarrow.fs``; S3 writes through boto3 (pyarrow cannot send conditional
    headers), so S3 needs the ``aws`` extra.

    :param connection: S3 credentials and endpoint (an ``ObjectStoreConfig``); None for the AWS chain.
    """

    def __init__(self, location: str, connection: Any = None) -> None:
        self.location = location.rstrip("/")
        self.connection = connection
        self._s3 = self.location.startswith("s3://")
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"ObjectAuditStore({self.location!r})"

    def head(self) -> Head:
        names = self._names()
        if not names:
            return Head(-1, GENESIS)
        last = max(names)
        event = json.loads(self._read_bytes(names[last]))
        return Head(int(event["seq"]), str(event["hash"]))

    def put(self, event: dict[str, Any], head: Head) -> None:
        from dativo_provider.privacy.certificate import canonical_json

        name = f"{event['seq']:08d}.json"
        data = canonical_json(event) + b"\n"
        if self._s3:
            self._put_s3(name, data)
        else:
            self._put_local(name, data)

    def read(self) -> list[StoredEvent]:
        events = []
        for seq, path in sorted(self._names().items()):
            where = path.rsplit("/", 1)[-1]
            try:
                event = json.loads(self._read_bytes(path).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                events.append(StoredEvent(where, None, f"not JSON: {exc}"))
                continue
            if not isinstance(event, dict):
                events.append(StoredEvent(where, None, "not a JSON object"))
                continue
            events.append(_check_name(where, seq, event))
        return events

    def _filesystem(self) -> Any:
        if self._fs is None:
            import pyarrow.fs as pafs

            if self._s3:
                from dativo_provider.sources.files import s3_filesystem

                self._fs = s3_filesystem(self.connection)
            else:
                self._fs = pafs.LocalFileSystem()
        return self._fs

    def _root(self) -> str:
        return self.location.removeprefix("s3://")

    def _names(self) -> dict[int, str]:
        import pyarrow.fs as pafs

        if not self._s3:  # names only: a listing that stats files races with temporary files vanishing
            import os

            names = os.listdir(self.location) if os.path.isdir(self.location) else []
            return {int(m.group(1)): os.path.join(self.location, m.group(0))
                    for m in map(_EVENT_FILE.match, names) if m}

        selector = pafs.FileSelector(self._root(), allow_not_found=True, recursive=False)
        names = {}
        for info in self._filesystem().get_file_info(selector):
            match = _EVENT_FILE.match(info.base_name)
            if match and info.type == pafs.FileType.File:
                names[int(match.group(1))] = info.path
        return names

    def _read_bytes(self, path: str) -> bytes:
        with self._filesystem().open_input_stream(path) as stream:
            return stream.read()

    def _put_local(self, name: str, data: bytes) -> None:
        import os
        import tempfile

        os.makedirs(self.location, mode=0o700, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".event-", dir=self.location)
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, os.path.join(self.location, name))
        except FileExistsError:
            raise SeqTakenError(f"{self.location}/{name} exists") from None
        finally:
            os.unlink(temporary)

    def _put_s3(self, name: str, data: bytes) -> None:
        from dativo_provider.optional import require

        require("boto3", "aws")
        from botocore.exceptions import ClientError

        bucket, _, prefix = self._root().partition("/")
        key = f"{prefix}/{name}" if prefix else name
        try:
            _s3_client(self.connection).put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*",
                                                   ContentType="application/json")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise SeqTakenError(f"s3://{bucket}/{key} exists") from None
            raise


def _check_name(where: str, seq: int, event: dict[str, Any]) -> StoredEvent:
    if event.get("seq") != seq:
        return StoredEvent(where, None, f"the file is named for seq {seq} but holds seq {event.get('seq')!r}")
    return StoredEvent(where, event)


def _s3_client(connection: Any) -> Any:
    import boto3

    options = {
        "aws_access_key_id": getattr(connection, "access_key_id", None),
        "aws_secret_access_key": getattr(connection, "secret_access_key", None),
        "aws_session_token": getattr(connection, "session_token", None),
        "region_name": getattr(connection, "region", None),
        "endpoint_url": getattr(connection, "endpoint_url", None),
    }
    return boto3.client("s3", **{k: v for k, v in options.items() if v})


_HEAD_SEQ = "dativo.audit.head-seq"
_HEAD_HASH = "dativo.audit.head-hash"


class IcebergAuditStore:
    """One row per event in an Iceberg table (created on first use), one snapshot per event.

    Each append commits against the snapshot its head was read from (pyiceberg's own retries are
    switched off on the in-memory table), so a concurrent append makes it fail and re-read. Every
    snapshot's summary records the head (``dativo.audit.head-seq``/``-hash``): appends read the head
    from there, and :func:`verify` checks that the rows still reach it (rows cut off the end).

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

    def put(self, event: dict[str, Any], head: Head) -> None:
        import pyarrow as pa

        table = head.token
        disable_builtin_retries(table)
        row = {**event, "at": datetime.fromisoformat(event["at"]),
               "details": json.dumps(event["details"], sort_keys=True, separators=(",", ":"))}
        data = pa.Table.from_pylist([row], schema=table.schema().as_arrow())
        try:
            table.append(data, snapshot_properties={_HEAD_SEQ: str(event["seq"]), _HEAD_HASH: event["hash"]})
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

    def head_problem(self, last_seq: int, last_hash: str) -> str | None:
        """Whether the latest audit commit's recorded head is the last row :meth:`read` returned."""
        from pyiceberg.table.snapshots import ancestors_of

        table = self._read_from or self._table()
        for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
            recorded = snapshot.summary.get(_HEAD_SEQ)
            if recorded is None:
                continue
            if int(recorded) != last_seq or snapshot.summary.get(_HEAD_HASH) != last_hash:
                return (f"snapshot {snapshot.snapshot_id} of {self.identifier} recorded the head at seq "
                        f"{recorded}, but the rows end at seq {last_seq}: events were removed or rewritten")
            return None
        return None

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
