"""Data-subject requests: what the audit trail recorded of each, with its certificate checked.

A request's id, kind, events and tables come from the audit trail (:mod:`dativo_provider.privacy.audit`,
the Iceberg store); its received time and deadline from its certificate (``request`` section) or from
facts the caller adds (the Airflow layer reads them from the request's DAG run). Subjects are shown
only as the trail's keyed hashes (HMAC-SHA256 under the trail key): no identifier is ever read here.

A certificate ``<certificates_dir>/<request_id>.json`` is verified with the key its signature names;
the keys come from the caller and are never served.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = logging.getLogger(__name__)

#: The trail events that end a request, and the status each gives it.
_FINAL = {"completed": "completed", "dry_run_completed": "completed (dry run)", "failed": "failed"}
#: Characters of a keyed hash shown (enough to tell subjects apart, short enough to read).
HASH_SHOWN = 16


@dataclass(frozen=True)
class RequestFacts:
    """What the trail does not record about a request: when it arrived and its deadline (ISO strings)."""

    received: str | None = None
    deadline: str | None = None


@dataclass
class SubjectRequestRow:
    """One request as the page shows it."""

    request_id: str
    catalog: str
    kind: str | None = None
    status: str = "open"
    received: str | None = None
    deadline: str | None = None
    overdue: bool = False
    last_event: str | None = None
    last_event_at: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    subject_hashes: list[str] = field(default_factory=list)
    certificate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def subject_requests(label: str, catalog: Catalog, audit_table: str, *, certificates_dir: Path | None = None,
                     verifying_keys: Mapping[str, Any] | None = None,
                     facts: Mapping[str, RequestFacts] | None = None,
                     now: datetime | None = None) -> list[SubjectRequestRow]:
    """Every request in ``audit_table`` (none when the catalog has no such table), newest first."""
    if not catalog.table_exists(audit_table):
        return []
    rows: dict[str, SubjectRequestRow] = {}
    for event in audit_events(catalog, audit_table):
        request_id = str(event.get("request_id"))
        _add_event(rows.setdefault(request_id, SubjectRequestRow(request_id, label)), event)
    moment = now or datetime.now(timezone.utc)
    for row in rows.values():
        _complete(row, certificates_dir, verifying_keys or {}, (facts or {}).get(row.request_id), moment)
    return sorted(rows.values(), key=lambda row: row.last_event_at or "", reverse=True)


def audit_events(catalog: Catalog, audit_table: str) -> Iterable[dict[str, Any]]:
    """The trail's readable events in ``seq`` order (unreadable ones are logged and skipped)."""
    from dativo_provider.privacy.audit_stores import IcebergAuditStore

    for stored in IcebergAuditStore(catalog, audit_table).read():
        if stored.event is None:
            log.warning("audit event %s is unreadable: %s", stored.where, stored.error)
            continue
        yield stored.event


def _add_event(row: SubjectRequestRow, event: Mapping[str, Any]) -> None:
    raw = event.get("details")
    details: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = str(event.get("event"))
    if name == "received" and details.get("kind"):
        row.kind = str(details["kind"])
    row.received = row.received or (str(details["received"]) if details.get("received") else None)
    row.deadline = row.deadline or (str(details["deadline"]) if details.get("deadline") else None)
    row.status = _FINAL.get(name, "open" if row.status not in _FINAL.values() else row.status)
    row.last_event, row.last_event_at = name, str(event.get("at"))
    row.events.append({"seq": event.get("seq"), "event": name, "at": event.get("at")})
    for table in _tables_in(details):
        if table not in row.tables:
            row.tables.append(table)
    for digest in event.get("subject") or []:
        shown = str(digest)[:HASH_SHOWN]
        if shown not in row.subject_hashes:
            row.subject_hashes.append(shown)


def _tables_in(details: Mapping[str, Any]) -> list[str]:
    found = [str(details["table"])] if isinstance(details.get("table"), str) else []
    tables = details.get("tables")
    if isinstance(tables, dict):
        found.extend(str(name) for name in tables)
    elif isinstance(tables, list):
        found.extend(str(t.get("table")) if isinstance(t, dict) else str(t) for t in tables)
    return found


def _complete(row: SubjectRequestRow, certificates_dir: Path | None, keys: Mapping[str, Any],
              facts: RequestFacts | None, now: datetime) -> None:
    row.certificate = certificate_status(certificates_dir, row.request_id, keys)
    section = (row.certificate or {}).get("request") or {}
    row.received = row.received or section.get("received") or (facts.received if facts else None)
    row.deadline = row.deadline or section.get("deadline") or (facts.deadline if facts else None)
    if row.deadline and row.status == "open":
        row.overdue = _parse(row.deadline) < now
    for table in (row.certificate or {}).get("tables") or []:
        if table not in row.tables:
            row.tables.append(table)


def certificate_status(certificates_dir: Path | None, request_id: str,
                       keys: Mapping[str, Any]) -> dict[str, Any] | None:
    """The certificate of ``request_id`` summarised, with whether its signature verifies."""
    from dativo_provider.privacy.certificate import verify_certificate

    path = _certificate_path(certificates_dir, request_id)
    if path is None:
        return None
    raw = path.read_bytes()
    try:
        document = json.loads(raw)
    except ValueError as exc:
        return {"file": path.name, "valid": False, "reason": f"not JSON: {exc}"}
    signature = document.get("signature") if isinstance(document, dict) else None
    key_id = str(signature.get("key_id")) if isinstance(signature, dict) else ""
    key = keys.get(key_id)
    check = verify_certificate(raw, key) if key is not None else None
    return {
        "file": path.name,
        "valid": check.valid if check else None,
        "reason": check.reason if check else f"no verifying key for key id {key_id!r} is configured",
        "key_id": key_id,
        "request": _request_section(document.get("request")),
        "tables": sorted(document["tables"]) if isinstance(document.get("tables"), dict) else [],
        "totals": document.get("totals"),
        "verification": _verification(document.get("verification")),
        "issued": (document.get("timestamps") or {}).get("issued"),
    }


def _certificate_path(certificates_dir: Path | None, request_id: str) -> Path | None:
    if certificates_dir is None or "/" in request_id or "\\" in request_id or request_id.startswith("."):
        return None
    path = certificates_dir / f"{request_id}.json"
    return path if path.is_file() else None


def _request_section(section: Any) -> dict[str, Any]:
    """The certificate's request section: its subject appears only as keyed hashes, shortened."""
    if not isinstance(section, dict):
        return {}
    raw = section.get("subject")
    subject: dict[str, Any] = raw if isinstance(raw, dict) else {}
    hashes = [str(h)[:HASH_SHOWN] for h in subject.get("identifier_hashes") or []]
    return {"kind": section.get("kind"), "received": section.get("received"),
            "deadline": section.get("deadline"), "subject_kind": subject.get("kind"),
            "identifier_hashes": hashes}


def _verification(section: Any) -> dict[str, Any] | None:
    if not isinstance(section, dict):
        return None
    return {"passed": section.get("passed"), "findings": section.get("findings"),
            "files_scanned": section.get("files_scanned")}


def _parse(moment: str) -> datetime:
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def audit_check(catalog: Catalog, audit_table: str, key: bytes | None) -> dict[str, Any] | None:
    """Whether the trail's hash chain and sealed heads verify under ``key`` (None: no key, or no trail)."""
    from dativo_provider.privacy.audit import verify
    from dativo_provider.privacy.audit_stores import IcebergAuditStore

    if key is None or not catalog.table_exists(audit_table):
        return None
    check = verify(IcebergAuditStore(catalog, audit_table), key)
    return {"valid": check.valid, "position": check.position, "reason": check.reason, "events": check.events,
            "warning": check.warning}
