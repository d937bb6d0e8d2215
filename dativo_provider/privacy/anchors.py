"""Anchors: one audit event's position and hash, kept outside the trail, so removing it is detected.

A hash chain proves that no event was edited, removed or inserted *between* others, but a chain cut
short at the end is still a valid chain. An :class:`Anchor` records where a request's trail ended
(``seq`` and ``hash`` of its ``completed`` or ``failed`` event, or of its latest event while it runs)
somewhere an attacker of the trail's store does not also control:

* a completed erasure: in its signed certificate (section ``audit_trail``);
* any request, including failed and abandoned ones: an :class:`AnchorStore`, one small file per
  request under a directory or ``s3://`` prefix apart from the trail's, updated after each event;
* the task's log and XCom (:meth:`Anchor.to_dict` holds no identifier).

Each anchor is sealed: ``mac`` is HMAC-SHA256 under the trail key over its fields, so an anchor is
authentic wherever it was kept, and pointing it at an earlier event needs the key. Wherever the trail
records its own head beside the data (a snapshot summary, a ``HEAD.json``), that head is sealed the
same way (:func:`seal`, with another ``kind``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from dativo_provider.exceptions import ConfigError
from dativo_provider.privacy.hashing import canonical_json
from dativo_provider.privacy.objects import ObjectFiles

ANCHOR_KIND = "dativo-audit-anchor"
HEAD_KIND = "dativo-audit-head"
_ANCHOR_FILE = re.compile(r"[^/]+\.anchor\.json")


def seal(key: bytes, kind: str, fields: Mapping[str, Any]) -> str:
    """HMAC-SHA256(key, canonical JSON of ``fields`` plus ``kind``) as hex; ``kind`` keeps a head's
    seal from passing for an anchor's or an event's hash."""
    return hmac.new(key, canonical_json({**fields, "kind": kind}), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """Event ``seq`` of the trail, with ``hash``, was ``event`` of ``request_id``.

    ``mac`` is empty only for anchors read from certificates written before anchors were sealed
    (``{"head_seq", "head_hash"}``); those are checked by position and hash alone.
    """

    request_id: str
    seq: int
    event: str
    hash: str
    mac: str = ""

    @classmethod
    def of(cls, key: bytes, record: Mapping[str, Any]) -> Anchor:
        """The sealed anchor of ``record``, an event as :meth:`AuditTrail.append` returned it."""
        request_id, seq = str(record["request_id"]), int(record["seq"])
        event, digest = str(record["event"]), str(record["hash"])
        fields = {"request_id": request_id, "seq": seq, "event": event, "hash": digest}
        return cls(request_id, seq, event, digest, mac=seal(key, ANCHOR_KIND, fields))

    def sealed_by(self, key: bytes) -> bool:
        """Whether ``mac`` is this anchor's seal under ``key``."""
        fields = {name: value for name, value in asdict(self).items() if name != "mac"}
        return bool(self.mac) and hmac.compare_digest(self.mac, seal(key, ANCHOR_KIND, fields))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, no identifier: for a certificate, a log line or XCom."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, request_id: str = "") -> Anchor:
        """Read :meth:`to_dict`'s form, or an older certificate's ``{"head_seq", "head_hash"}``.

        :param request_id: the request it belongs to, for the older form (which does not say).
        :raises ConfigError: neither form.
        """
        if isinstance(data, Mapping) and set(data) == {"head_seq", "head_hash"}:
            data = {"request_id": request_id, "seq": data["head_seq"], "event": "", "hash": data["head_hash"]}
        names = {"request_id", "seq", "event", "hash", "mac"}
        if not isinstance(data, Mapping) or not {"request_id", "seq", "hash"} <= set(data) <= names:
            raise ConfigError(f"not an audit anchor: expected the keys {sorted(names)}, got "
                              f"{sorted(data) if isinstance(data, Mapping) else type(data).__name__}")
        seq, digest = data["seq"], data["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(digest, str):
            raise ConfigError(f"not an audit anchor: seq {seq!r} / hash {digest!r}")
        return cls(str(data["request_id"]), seq, str(data.get("event", "")), digest, str(data.get("mac", "")))


class AnchorStore:
    """The latest anchor of each request, one file ``<request id>.anchor.json`` per request.

    Keep it apart from the trail (another bucket, prefix or account): it is what still shows a
    request's last events after someone removed them from the trail's store.

    :param location: a local directory or ``s3://bucket/prefix``.
    :param connection: S3 credentials and endpoint (an ``ObjectStoreConfig``); None for the AWS chain.
    """

    def __init__(self, location: str, connection: Any = None) -> None:
        self.files = ObjectFiles(location, connection)

    def __repr__(self) -> str:
        return f"AnchorStore({self.files.location!r})"

    def put(self, anchor: Anchor) -> None:
        """Record ``anchor`` as its request's latest, unless a later one is recorded already."""
        name = _file_name(anchor.request_id)
        current = self.files.read_name(name)
        if current is not None and _parse(current, name).seq >= anchor.seq:
            return
        self.files.replace(name, canonical_json(anchor.to_dict()) + b"\n")

    def read(self) -> list[Anchor]:
        """Every request's anchor, in file-name order.

        :raises ConfigError: a file is not an anchor (names it).
        """
        found = self.files.names(_ANCHOR_FILE)
        return [_parse(self.files.read(path), f"{self.files.location}/{name}")
                for name, path in sorted(found.items())]


def _file_name(request_id: str) -> str:
    return f"{quote(request_id, safe='')}.anchor.json"


def _parse(data: bytes, where: str) -> Anchor:
    try:
        return Anchor.from_dict(json.loads(data.decode("utf-8")))
    except (ValueError, UnicodeDecodeError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
