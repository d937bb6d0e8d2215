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
``prev_hash`` out of place). Cutting events off the *end* leaves a valid shorter chain, so the end is
recorded twice more:

* **beside the data**, sealed: the Iceberg store records the head in each snapshot summary
  (``dativo.audit.head-seq``/``-hash``/``-mac``), the object store in ``HEAD.json``. ``mac`` is
  HMAC-SHA256 under the trail key over the head (and, in Iceberg, the snapshot's parent), so whoever
  removes events and rewrites the head without the key is caught, and every sealed head still in the
  table's metadata must still be reached by the events. Someone who also rolls the store back whole
  (restores an older ``HEAD.json``, or rolls the table back and expires the newer snapshots) is caught
  only by an anchor:
* **outside the store**: :meth:`AuditTrail.anchor` returns a sealed :class:`Anchor` of a request's last
  event, for its certificate, its task log and an :class:`AnchorStore` (see
  :mod:`dativo_provider.privacy.anchors`); :func:`verify` takes them as ``anchors``.

Heads written before heads were sealed (no ``-mac``) are accepted with a :attr:`AuditCheck.warning`
that only anchors can show removed final events; an unsealed head *after* a sealed one is tampering.

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
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import CommitConflictError, ConfigError
from dativo_provider.privacy.anchors import HEAD_KIND, Anchor, AnchorStore, seal
from dativo_provider.privacy.audit_stores import (
    GENESIS,
    AuditStore,
    Head,
    IcebergAuditStore,
    ObjectAuditStore,
    RecordedHead,
    SeqTakenError,
    StoredEvent,
)
from dativo_provider.privacy.hashing import audit_key, canonical_json, subject_hash, subject_hashes

if TYPE_CHECKING:
    from dativo_provider.privacy.request import SubjectRequest

__all__ = [
    "EVENTS", "GENESIS", "AuditCheck", "AuditStore", "AuditTrail", "Head", "IcebergAuditStore",
    "ObjectAuditStore", "RecordedHead", "SeqTakenError", "StoredEvent", "audit_key", "event_hash",
    "subject_hash", "subject_hashes", "verify",
]

log = logging.getLogger(__name__)

EVENTS = ("received", "resumed", "discovered", "exported", "deleted", "purged", "verified", "completed", "failed",
          "restricted", "lifted", "terminated", "would_terminate", "dry_run_completed")
_FIELDS = ("seq", "request_id", "event", "at", "details", "subject", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of :func:`verify`. ``position`` is the first bad ``seq`` (None when valid)."""

    valid: bool
    position: int | None
    reason: str
    events: int = 0
    head_hash: str = GENESIS
    anchors: int = 0
    warning: str = ""


def event_hash(key: bytes | str, event: Mapping[str, Any]) -> str:
    """HMAC-SHA256(key, canonical JSON of ``event`` without ``hash``) as hex."""
    body = {name: value for name, value in event.items() if name != "hash"}
    return hmac.new(audit_key(key), canonical_json(body), hashlib.sha256).hexdigest()


class AuditTrail:
    """Appends events to ``store``, hash-chained and keyed with ``key`` (at least 16 bytes).

    :param max_attempts: how often an append re-reads the head after losing a race.
    :param anchors: where each request's latest event is anchored after every append (apart from
        ``store``), so a failed or abandoned request's last events can be shown removed too.
    """

    def __init__(self, store: AuditStore, key: bytes | str, max_attempts: int = 50,
                 anchors: AnchorStore | None = None) -> None:
        self.store = store
        self._key = audit_key(key)
        self.max_attempts = max_attempts
        self.anchors = anchors

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
                self.store.put(record, head, self._seal_head)
            except SeqTakenError:
                log.info("audit append lost a race for seq %d (attempt %d)", head.seq + 1, attempt)
                time.sleep(min(0.01 * 2**attempt, 0.5) * random.uniform(0.5, 1.5))
                continue
            self._witness(record)
            return record
        raise CommitConflictError(f"audit trail {self.store!r}: other writers won {self.max_attempts} times")

    def anchor(self, record: Mapping[str, Any]) -> Anchor:
        """The sealed :class:`Anchor` of ``record``, an event :meth:`append` returned: take it after a
        request's last event (``completed`` or ``failed``) and keep it outside the trail (certificate,
        task log, XCom). It is also recorded in ``anchors`` when the trail has them.

        :raises ConfigError: ``record`` is not an event of a trail with this key.
        :raises OSError: the anchor store could not be written (the anchor is not recorded there).
        """
        if not hmac.compare_digest(str(record.get("hash", "")), event_hash(self._key, record)):
            raise ConfigError(f"audit anchor: event seq {record.get('seq')!r} was not appended with this "
                              "trail's key")
        anchor = Anchor.of(self._key, record)
        if self.anchors is not None:
            self.anchors.put(anchor)
        return anchor

    def _seal_head(self, fields: Mapping[str, Any]) -> str:
        return seal(self._key, HEAD_KIND, fields)

    def _witness(self, record: Mapping[str, Any]) -> None:
        if self.anchors is None:
            return
        try:
            self.anchors.put(Anchor.of(self._key, record))
        except Exception as exc:  # the event is stored: failing now would make the caller append it twice
            log.warning("audit event seq %s is stored, but its anchor could not be written to %r: %s",
                        record["seq"], self.anchors, exc)

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


def verify(store: AuditStore, key: bytes | str, anchor: str | None = None,
           anchors: Iterable[Anchor] = ()) -> AuditCheck:
    """Check the whole trail; the first problem found decides ``position`` and ``reason``.

    In order: the chain, then each anchor, then the heads the store recorded beside the events.

    :param anchor: a head hash recorded outside the store; some event must still have it.
    :param anchors: anchors kept outside the store (a certificate's ``audit_trail``, an
        :class:`AnchorStore`): each anchored event must still be in the trail, unchanged.
    """
    key = audit_key(key)
    stored = store.read()
    hashes: list[str] = []
    for position, item in enumerate(stored):
        problem = _problem(item, position, hashes[-1] if hashes else GENESIS, key)
        if problem:
            return AuditCheck(False, position, problem, len(stored), hashes[-1] if hashes else GENESIS)
        hashes.append(item.event["hash"])  # type: ignore[index]
    head_hash = hashes[-1] if hashes else GENESIS
    anchors = list(anchors)
    for kept in anchors:
        problem = _anchor_problem(kept, hashes, key)
        if problem:
            return AuditCheck(False, min(kept.seq, len(hashes)), problem, len(hashes), head_hash)
    if anchor is not None and anchor not in hashes:
        return AuditCheck(False, len(hashes), f"no event has the anchor hash {anchor}: events after seq "
                          f"{len(hashes) - 1} were removed, or the anchor is from another trail",
                          len(hashes), head_hash)
    heads = list(getattr(store, "recorded_heads", list)())
    problem = _head_problem(heads, hashes, key)
    if problem:
        return AuditCheck(False, len(hashes), problem, len(hashes), head_hash)
    held = f"; {len(anchors)} anchor(s) hold" if anchors else ""
    return AuditCheck(True, None, f"{len(hashes)} event(s), chain intact{held}", len(hashes), head_hash,
                      anchors=len(anchors), warning=_head_warning(store, heads, hashes))


def _anchor_problem(anchor: Anchor, hashes: list[str], key: bytes) -> str | None:
    if anchor.mac and not anchor.sealed_by(key):
        return (f"the anchor of request {anchor.request_id!r} at seq {anchor.seq} is not sealed with this "
                "trail's key: it was altered, or it is from another trail")
    what = f"event {anchor.seq}"
    if anchor.event:
        what += f" ({anchor.event!r} of request {anchor.request_id!r})"
    if anchor.seq >= len(hashes):
        return (f"{what} is missing: the trail ends at seq {len(hashes) - 1}, so events were removed from "
                "its end")
    if not hmac.compare_digest(hashes[anchor.seq], anchor.hash):
        return f"{what} is not the anchored event: events were rewritten, or the anchor is from another trail"
    return None


def _head_problem(heads: list[RecordedHead], hashes: list[str], key: bytes) -> str | None:
    """Every sealed head must be genuine and still reached by the events; an unsealed head may only
    precede the sealed ones (written before heads were sealed)."""
    sealed = [head for head in heads if head.mac]
    for position, head in enumerate(heads):
        if not head.mac:
            if any(earlier.mac for earlier in heads[:position]):
                return (f"{head.where} records an unsealed head (seq {head.seq}) after sealed ones: the "
                        "head was rewritten without the trail key")
            continue
        if not head.sealed_by(key):
            return (f"{head.where} records a head (seq {head.seq}) that is not sealed with the trail key: "
                    "it was written without the key")
        if head.seq >= len(hashes):
            return (f"{head.where} recorded the head at seq {head.seq}, but the events end at seq "
                    f"{len(hashes) - 1}: events were removed from the end")
        if not hmac.compare_digest(hashes[head.seq], head.hash):
            return f"{head.where} recorded another hash for event {head.seq}: events were rewritten"
    if heads and not sealed:  # only heads from before sealing: the newest must still be the last event
        last = heads[-1]
        if last.seq != len(hashes) - 1 or last.hash != (hashes[-1] if hashes else GENESIS):
            return (f"{last.where} recorded the head at seq {last.seq}, but the events end at seq "
                    f"{len(hashes) - 1}: events were removed or rewritten")
    return None


def _head_warning(store: AuditStore, heads: list[RecordedHead], hashes: list[str]) -> str:
    if not hashes or any(head.mac for head in heads):
        return ""
    return (f"{store!r} records no sealed head (the trail was written by a version before heads were "
            "sealed, or its head was removed): only anchors show whether its last events were removed")


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
    return re.search(rf"(?<![\w.@-]){re.escape(identifier.lower())}(?![\w.@-])", text.lower()) is not None
