"""The keyed hashes and canonical bytes that the audit trail, its anchors and certificates share.

Identifiers are stored only as HMAC-SHA256 under the trail key (:func:`subject_hash`), so the trail,
the certificates and the anchors can name a subject without holding the value; whatever is hashed,
sealed or signed is first turned into :func:`canonical_json`, so two writers of the same content
produce the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from dativo_provider.exceptions import ConfigError

_MIN_KEY_BYTES = 16


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity: the bytes that are signed and hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def audit_key(key: bytes | str) -> bytes:
    """``key`` as bytes; :class:`ConfigError` when shorter than 16 bytes."""
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(data) < _MIN_KEY_BYTES:
        raise ConfigError(f"the audit key is {len(data)} bytes; use at least {_MIN_KEY_BYTES} "
                          "(32 random bytes recommended)")
    return data


def subject_hash(key: bytes | str, subject_kind: str, identifier: str) -> str:
    """HMAC-SHA256(key, subject_kind + ":" + identifier) as hex: how identifiers are stored."""
    message = f"{subject_kind}:{identifier}".encode()
    return hmac.new(audit_key(key), message, hashlib.sha256).hexdigest()


def subject_hashes(key: bytes | str, subject_kind: str, identifiers: Iterable[str]) -> list[str]:
    """The sorted, distinct keyed hashes of ``identifiers``."""
    return sorted({subject_hash(key, subject_kind, str(value)) for value in identifiers})
