"""Signed certificates of data-subject requests: what was done, to which tables, and whether it verified.

A certificate is one JSON object. Everything but its ``signature`` block is the signed payload::

    {
      "format": "dativo-dsr-certificate/1",
      "request": {"id": ..., "kind": "erasure", "received": ..., "deadline": ...,
                  "subject": {"kind": "customer", "identifier_hashes": ["<hmac-sha256 hex>", ...]}},
      "tables": {"crm.customers": {"rows_deleted": 1, "files_rewritten": 1, "files_removed": 3,
                                   "snapshots_expired": 4, "refs_changed": 0}, ...},
      "totals": {"rows_deleted": ..., ...},
      "verification": {"passed": true, "files_scanned": {"parquet": 9, "avro": 12, "json": 5},
                       "findings": 0},
      "timestamps": {"received": ..., "started": ..., "completed": ..., "issued": ...},
      "audit_trail": {"request_id": ..., "seq": 41, "event": "completed", "hash": "<hex>", "mac": "<hex>"},
      "issuer": {"name": ..., "key_id": "...", "algorithm": "ed25519"},
      "signature": {"algorithm": "ed25519", "key_id": "...", "value": "<base64>"}
    }

``audit_trail`` is the audit trail's :class:`~dativo_provider.privacy.anchors.Anchor` taken *after* the
request's ``completed`` event (so that event cannot hold the certificate's signature): removing the
event from the trail is then detected by ``verify(..., anchors=[audit_anchor(certificate)])``, i.e.
``dativo audit verify --certificate FILE``. Certificates from before anchors were sealed hold
``{"head_seq", "head_hash"}`` taken before ``completed``; they are still read.

The signed bytes are the canonical JSON (sorted keys, no whitespace, UTF-8) of the parsed document
without ``signature``. So whitespace between tokens and the order of object keys do not matter, while
any change to a value, to the order of a list, or an added or removed key does. The signature block
itself is covered too: its ``algorithm`` and ``key_id`` must equal the signed ``issuer`` fields, its
``value`` must be canonical base64, and it may hold no other key. Duplicate keys, invalid UTF-8 and
non-finite numbers are refused, so no two parsers can read one certificate differently.

Keys come from the caller (the Airflow layer reads them from a Connection); their material is kept
out of ``repr`` and never written into a certificate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.optional import require
from dativo_provider.privacy.anchors import Anchor
from dativo_provider.privacy.hashing import canonical_json, subject_hashes

if TYPE_CHECKING:
    from dativo_provider.privacy.request import SubjectRequest

FORMAT = "dativo-dsr-certificate/1"
ALGORITHMS = ("ed25519", "hmac-sha256")
#: Sections a payload must have; ``totals``, ``issuer`` and ``timestamps.issued`` are filled in.
REQUIRED_SECTIONS = ("request", "tables", "verification", "timestamps")
_MIN_SECRET_BYTES = 16
_SIGNATURE_KEYS = {"algorithm", "key_id", "value"}


@dataclass(frozen=True)
class SigningKey:
    """A key that signs certificates. Build it with :meth:`ed25519` or :meth:`hmac`."""

    algorithm: str
    key_id: str
    _material: Any = field(repr=False, compare=False)

    @classmethod
    def ed25519(cls, private_key: bytes | str, key_id: str) -> SigningKey:
        """An Ed25519 private key: PKCS#8 PEM (unencrypted) or the 32 raw bytes.

        :raises ConfigError: the key is not an Ed25519 private key.
        """
        serialization = require("cryptography.hazmat.primitives.serialization", "privacy")
        ed = require("cryptography.hazmat.primitives.asymmetric.ed25519", "privacy")
        data = private_key.encode() if isinstance(private_key, str) else bytes(private_key)
        try:
            if len(data) == 32:
                key = ed.Ed25519PrivateKey.from_private_bytes(data)
            else:
                key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"signing key {key_id!r}: not an unencrypted PEM or raw Ed25519 key "
                              f"({type(exc).__name__})") from None
        if not isinstance(key, ed.Ed25519PrivateKey):
            raise ConfigError(f"signing key {key_id!r}: expected an Ed25519 key, got {type(key).__name__}")
        return cls("ed25519", _key_id(key_id), key)

    @classmethod
    def hmac(cls, secret: bytes | str, key_id: str) -> SigningKey:
        """A shared secret for HMAC-SHA256 (at least 16 bytes; use 32 random bytes)."""
        return cls("hmac-sha256", _key_id(key_id), _secret(secret, key_id))

    def sign(self, message: bytes) -> bytes:
        if self.algorithm == "ed25519":
            return self._material.sign(message)
        return hmac.new(self._material, message, hashlib.sha256).digest()

    def verifying_key(self) -> VerifyingKey:
        """The key that checks this key's signatures (the public key for Ed25519)."""
        if self.algorithm == "ed25519":
            return VerifyingKey("ed25519", self.key_id, self._material.public_key())
        return VerifyingKey("hmac-sha256", self.key_id, self._material)

    def public_key_pem(self) -> str:
        """The Ed25519 public key as PEM, to publish for verifiers."""
        if self.algorithm != "ed25519":
            raise ConfigError(f"signing key {self.key_id!r} is an HMAC secret: it has no public key")
        return self.verifying_key().public_key_pem()


@dataclass(frozen=True)
class VerifyingKey:
    """A key that checks certificate signatures. Build it with :meth:`ed25519` or :meth:`hmac`.

    :param key_id: when set, a certificate signed under another key id is refused.
    """

    algorithm: str
    key_id: str | None
    _material: Any = field(repr=False, compare=False)

    @classmethod
    def ed25519(cls, public_key: bytes | str, key_id: str | None = None) -> VerifyingKey:
        """An Ed25519 public key: SubjectPublicKeyInfo PEM or the 32 raw bytes."""
        serialization = require("cryptography.hazmat.primitives.serialization", "privacy")
        ed = require("cryptography.hazmat.primitives.asymmetric.ed25519", "privacy")
        data = public_key.encode() if isinstance(public_key, str) else bytes(public_key)
        try:
            if len(data) == 32:
                key = ed.Ed25519PublicKey.from_public_bytes(data)
            else:
                key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"not a PEM or raw Ed25519 public key ({type(exc).__name__}: {exc})") from None
        if not isinstance(key, ed.Ed25519PublicKey):
            raise ConfigError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls("ed25519", key_id, key)

    @classmethod
    def hmac(cls, secret: bytes | str, key_id: str | None = None) -> VerifyingKey:
        """The shared HMAC-SHA256 secret the certificate was signed with."""
        return cls("hmac-sha256", key_id, _secret(secret, key_id or "hmac"))

    def check(self, message: bytes, signature: bytes) -> bool:
        if self.algorithm == "hmac-sha256":
            expected = hmac.new(self._material, message, hashlib.sha256).digest()
            return hmac.compare_digest(expected, signature)
        exceptions = require("cryptography.exceptions", "privacy")
        try:
            self._material.verify(signature, message)
        except exceptions.InvalidSignature:
            return False
        return True

    def public_key_pem(self) -> str:
        serialization = require("cryptography.hazmat.primitives.serialization", "privacy")
        return self._material.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


@dataclass(frozen=True)
class CertificateCheck:
    """The outcome of :func:`verify_certificate`; ``reason`` says why it is (in)valid."""

    valid: bool
    reason: str


def request_section(request: SubjectRequest, hash_key: bytes | str) -> dict[str, Any]:
    """The ``request`` section of a certificate: the subject's identifiers as keyed hashes only.

    :param hash_key: the audit-trail key, so the hashes match the trail's ``subject`` fields.
    """
    return {
        "id": request.request_id,
        "kind": request.kind,
        "received": _iso(request.received_at),
        "deadline": _iso(request.deadline) if request.deadline else None,
        "subject": {
            "kind": request.subject_kind,
            "identifier_hashes": subject_hashes(hash_key, request.subject_kind,
                                                (*request.subject_ids, *request.emails)),
        },
    }


def issue_certificate(payload: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """Sign ``payload`` and return the certificate (a new dict; ``payload`` is not changed).

    ``totals`` (the sum of each numeric per-table figure) and ``timestamps.issued`` are added when
    missing; ``issuer.key_id`` and ``issuer.algorithm`` are always set from ``key``.

    :raises ConfigError: a required section is missing, a ``signature`` is already there, or a value
        cannot be written as JSON (NaN, a non-string key, an unknown type).
    """
    document = _prepared(payload, key)
    try:
        message = canonical_json(document)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"certificate payload is not plain JSON: {exc}") from None
    signature = base64.b64encode(key.sign(message)).decode("ascii")
    return {**document, "signature": {"algorithm": key.algorithm, "key_id": key.key_id, "value": signature}}


def verify_certificate(document: Mapping[str, Any] | bytes | str, key: VerifyingKey) -> CertificateCheck:
    """Check a certificate's signature; any change to its content makes it invalid.

    :param document: the parsed certificate, or the file's bytes or text.
    """
    try:
        parsed = _parse(document) if isinstance(document, (bytes, str)) else json.loads(canonical_json(document))
    except (ValueError, TypeError) as exc:
        return CertificateCheck(False, f"not a valid JSON certificate: {exc}")
    if not isinstance(parsed, dict):
        return CertificateCheck(False, "not a valid JSON certificate: the top level is not an object")
    problem = _signature_problem(parsed, key)
    if problem:
        return CertificateCheck(False, problem)
    signed = {k: v for k, v in parsed.items() if k != "signature"}
    signature = base64.b64decode(parsed["signature"]["value"])
    if not key.check(canonical_json(signed), signature):
        return CertificateCheck(False, "the signature does not match the content: the certificate was "
                                       "changed after signing, or signed with another key")
    request_id = (parsed.get("request") or {}).get("id") if isinstance(parsed.get("request"), dict) else None
    return CertificateCheck(True, f"valid {key.algorithm} signature by key {parsed['signature']['key_id']!r}"
                                  f" for request {request_id!r}")


def audit_anchor(document: Mapping[str, Any] | bytes | str) -> Anchor | None:
    """The audit-trail anchor the certificate holds (its ``audit_trail`` section), or None.

    The anchor is sealed under the trail key, so it can be trusted without checking the certificate's
    signature; an anchor from an older certificate is not sealed and is checked by position and hash.

    :raises ConfigError: not a JSON certificate, a malformed ``audit_trail``, or an anchor of another
        request than the certificate's.
    """
    try:
        parsed = _parse(document) if isinstance(document, (bytes, str)) else dict(document)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a valid JSON certificate: {exc}") from None
    section = parsed.get("audit_trail") if isinstance(parsed, dict) else None
    if section is None:
        return None
    request = parsed.get("request")
    request_id = str(request.get("id", "")) if isinstance(request, dict) else ""
    anchor = Anchor.from_dict(section, request_id=request_id)
    if request_id and anchor.request_id != request_id:
        raise ConfigError(f"the certificate of request {request_id!r} anchors request {anchor.request_id!r}")
    return anchor


def write_certificate(path: str | os.PathLike[str], document: Mapping[str, Any]) -> Path:
    """Write the certificate as indented JSON, readable by its owner only (mode 0600), atomically."""
    target = Path(path)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    descriptor, temporary = tempfile.mkstemp(prefix=".certificate-", dir=target.parent or ".")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _prepared(payload: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise ConfigError(f"certificate payload must be a JSON object, not {type(payload).__name__}")
    if "signature" in payload:
        raise ConfigError("certificate payload already has a 'signature' block; pass the unsigned payload")
    missing = [name for name in REQUIRED_SECTIONS if name not in payload]
    if missing:
        raise ConfigError(f"certificate payload lacks {', '.join(missing)}; required: {REQUIRED_SECTIONS}")
    document = dict(payload)
    document.setdefault("format", FORMAT)
    document.setdefault("totals", _totals(document["tables"]))
    timestamps = dict(document["timestamps"])
    timestamps.setdefault("issued", _iso(datetime.now(timezone.utc)))
    document["timestamps"] = timestamps
    document["issuer"] = {**dict(document.get("issuer") or {}), "key_id": key.key_id,
                          "algorithm": key.algorithm}
    return document


def _totals(tables: Any) -> dict[str, int]:
    if not isinstance(tables, Mapping):
        raise ConfigError("certificate 'tables' must map table names to their figures")
    totals: dict[str, int] = {}
    for figures in tables.values():
        for name, value in dict(figures).items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return totals


def _signature_problem(parsed: dict[str, Any], key: VerifyingKey) -> str | None:
    block = parsed.get("signature")
    if not isinstance(block, dict):
        return "the certificate has no signature block"
    if set(block) != _SIGNATURE_KEYS:
        return f"the signature block must hold exactly {sorted(_SIGNATURE_KEYS)}, it holds {sorted(block)}"
    section = parsed.get("issuer")
    issuer = section if isinstance(section, dict) else {}
    if block["algorithm"] != key.algorithm:
        return f"signed with {block['algorithm']!r}, but the verifying key is {key.algorithm!r}"
    if block["algorithm"] != issuer.get("algorithm") or block["key_id"] != issuer.get("key_id"):
        return "the signature block's algorithm or key id differs from the signed issuer section"
    if key.key_id is not None and block["key_id"] != key.key_id:
        return f"signed with key {block['key_id']!r}, but the verifying key is {key.key_id!r}"
    value = block["value"]
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or base64.b64encode(raw).decode("ascii") != value:
        return "the signature value is not canonical base64"
    return None


def _parse(data: bytes | str) -> Any:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate key {name!r}")
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not key_id.strip():
        raise ConfigError("a signing key needs a non-empty key id (it is written into each certificate)")
    return key_id


def _secret(secret: bytes | str, key_id: str) -> bytes:
    data = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(data) < _MIN_SECRET_BYTES:
        raise ConfigError(f"HMAC key {key_id!r} is {len(data)} bytes; use at least {_MIN_SECRET_BYTES} "
                          "(32 random bytes recommended)")
    return data


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ConfigError(f"timestamp {moment.isoformat()} has no time zone; pass an aware UTC datetime")
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
