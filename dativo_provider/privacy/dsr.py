"""One data-subject request end to end, as the operators run it.

Erasure: discover → delete per table (one transaction each) → purge (refs, expiry, unreachable files,
old metadata) → verify by decoding every file → signed certificate. Every step is recorded in the
audit trail; a failure records ``failed`` and re-raises. Access and portability: discover → export.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.exceptions import TerminalError
from dativo_provider.privacy.request import SubjectRequest

if TYPE_CHECKING:
    from dativo_provider.contracts.model import Contract
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.privacy.audit import AuditTrail
    from dativo_provider.privacy.certificate import SigningKey

log = logging.getLogger(__name__)

#: A request this close to its deadline fails loudly instead of quietly running late.
DEADLINE_MARGIN = timedelta(days=3)


class DeadlineError(TerminalError):
    """The request's deadline has passed or is too close."""


def check_deadline(request: SubjectRequest, now: datetime | None = None, margin: timedelta = DEADLINE_MARGIN) -> None:
    """Fail loudly when the request is overdue or within ``margin`` of its deadline."""
    now = now or datetime.now(timezone.utc)
    assert request.deadline is not None
    left = request.deadline - now
    if left <= timedelta(0):
        raise DeadlineError(f"request {request.request_id} is overdue: its deadline was {request.deadline.isoformat()} "
                            f"({-left} ago); escalate it now")
    if left <= margin:
        raise DeadlineError(f"request {request.request_id} is due {request.deadline.isoformat()}, in {left}: "
                            f"less than the {margin} margin; escalate it now")


@dataclass
class ErasureOutcome:
    """What an erasure did; ``certificate`` is the signed document."""

    request_id: str
    certificate: dict[str, Any]
    verified: bool
    tables: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """For XCom and logs: no identifiers."""
        return {"request_id": self.request_id, "verified": self.verified, "tables": self.tables,
                "certificate_signature": self.certificate.get("signature", {}).get("key_id")}


def erase_subject(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest, *,
                  signing_key: SigningKey, hash_key: bytes, trail: AuditTrail | None = None,
                  refs_policy: Literal["fail", "remove", "repoint"] = "fail",
                  safety_window: timedelta = timedelta(minutes=30), now: datetime | None = None,
                  issuer: str = "dativo-airflow-provider", object_store: Any = None,
                  other_catalogs: Mapping[str, CatalogConfig] | None = None) -> ErasureOutcome:
    """Erase the subject of ``request`` from every table the contracts describe, and prove it.

    :param hash_key: the key identifiers are hashed with in the certificate (and the audit trail).
    :param trail: the audit trail; earlier exports of the same subject it records are removed too.
    :param object_store: credentials for exports on S3.
    :param other_catalogs: more catalogs by name to erase from (see :func:`discovery.discover`).
    """
    from dativo_provider.privacy.certificate import issue_certificate, request_section
    from dativo_provider.privacy.discovery import discover, split_table
    from dativo_provider.privacy.erase import delete_rows
    from dativo_provider.privacy.purge import purge_table
    from dativo_provider.privacy.verify import Identifiers

    contracts = list(contracts)
    started = now or datetime.now(timezone.utc)
    record = _Recorder(trail, request)
    record("received", {"kind": request.kind})
    try:
        catalogs = {None: catalog, **(other_catalogs or {})}
        found = discover(catalog, contracts, request, other_catalogs=other_catalogs)
        record("discovered", found.to_dict())
        # Numbers only count in the columns that identify the subject: a small id is also a quantity.
        columns = sorted({column for match in found.tables for column in match.match})
        identifiers = Identifiers(tuple(_identifier_values(found, request)), columns=tuple(columns))
        tables = []
        for match in found.tables:
            name, table = split_table(match.table)
            where = catalogs[name]
            deletion = delete_rows(where, table, found.row_filter(match.table), request_id=request.request_id)
            record("deleted", {"table": match.table, "rows": deletion.rows_deleted,
                               "files_rewritten": deletion.files_rewritten})
            purge = None
            if deletion.snapshot_id is not None:
                purge = purge_table(where, table, erased_snapshot_id=deletion.snapshot_id,
                                    refs_policy=refs_policy, safety_window=safety_window, now=now)
                record("purged", {"table": match.table, "snapshots_expired": purge.snapshots_expired,
                                  "files_removed": purge.files_removed, "refs_changed": purge.refs_changed})
            tables.append(_table_entry(match, deletion, purge))
        exports = _remove_earlier_exports(trail, hash_key, request, identifiers.values, object_store)
        if exports:
            record("deleted", {"exports_removed": len(exports)})
        verification = _verify(catalogs, sorted({m.table for m in found.tables}), identifiers,
                               lambda: sum(m.rows for m in discover(catalog, contracts, request,
                                                                    other_catalogs=other_catalogs).tables))
        record("verified", verification.to_dict())
        if not verification.passed:
            raise TerminalError(f"request {request.request_id}: erasure could not be verified: "
                                f"{len(verification.findings)} findings, rows still found "
                                f"{verification.discovery_rows}; see the audit trail")
        payload = {
            "request": request_section(request, hash_key),
            "tables": {t["table"]: {k: v for k, v in t.items() if k != "table"} for t in tables},
            "unidentifiable_tables": found.unidentifiable,
            "exports_removed": len(exports),
            "verification": verification.to_dict(),
            "timestamps": {"received": request.received_at.isoformat(), "started": started.isoformat(),
                           "completed": datetime.now(timezone.utc).isoformat()},
            "issuer": {"name": issuer},
        }
        if trail is not None:
            # The trail's head when the certificate is issued: removing later events is detectable.
            payload["audit_trail"] = {"head_seq": trail.store.head().seq, "head_hash": trail.store.head().hash}
        certificate = issue_certificate(payload, signing_key)
        record("completed", {"rows_deleted": certificate["totals"]["rows_deleted"], "verified": True})
        return ErasureOutcome(request.request_id, certificate, True, tables)
    except BaseException as exc:
        record("failed", {"error": type(exc).__name__, "message": str(exc)[:500]})
        raise


def _verify(catalogs: Mapping[str | None, Any], tables: list[str], identifiers: Any, rediscover: Any) -> Any:
    """verify_erased per catalog, combined into one result (rows rediscovered across all of them)."""
    from dativo_provider.privacy.discovery import split_table
    from dativo_provider.privacy.verify import verify_erased

    by_catalog: dict[str | None, list[str]] = {}
    for name in tables:
        catalog_name, table = split_table(name)
        by_catalog.setdefault(catalog_name, []).append(table)
    results = [verify_erased(catalogs[name], names, identifiers) for name, names in by_catalog.items()]
    if not results:
        results = [verify_erased(catalogs[None], [], identifiers)]
    combined = results[0]
    for other in results[1:]:
        combined.findings.extend(other.findings)
        combined.bytes_scanned += other.bytes_scanned
        for kind, count in other.files_scanned.items():
            combined.files_scanned[kind] = combined.files_scanned.get(kind, 0) + count
    combined.discovery_rows = rediscover()
    combined.passed = not combined.findings and combined.discovery_rows == 0
    return combined


def _remove_earlier_exports(trail: Any, hash_key: bytes, request: SubjectRequest, identifiers: Iterable[str],
                            object_store: Any) -> list[str]:
    """Delete every earlier export of this subject the audit trail records (GDPR Art. 17 covers the
    copies we handed out too); returns the locations removed."""
    if trail is None:
        return []
    from dativo_provider.privacy.audit import subject_hashes

    ours = set(subject_hashes(hash_key, request.subject_kind, identifiers))
    removed = []
    for stored in trail.store.read():
        event = stored.event or {}
        location = (event.get("details") or {}).get("location")
        if event.get("event") == "exported" and location and ours & set(event.get("subject") or []):
            _delete_tree(location, object_store)
            removed.append(location)
    return removed


def _delete_tree(location: str, object_store: Any) -> None:
    import pyarrow.fs as pafs

    if location.startswith("s3://"):
        from dativo_provider.sources.files import s3_filesystem

        fs, path = s3_filesystem(object_store), location.removeprefix("s3://")
    else:
        fs, path = pafs.LocalFileSystem(), location
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def _identifier_values(found: Any, request: SubjectRequest) -> list[str]:
    """Everything that identifies the subject: the request's ids and e-mails and every key discovery
    resolved (e.g. the customer id behind an e-mail)."""
    values = {*request.subject_ids, *request.emails}
    for match in found.tables:
        for column_values in match.match.values():
            values.update(str(v) for v in column_values)
    return sorted(values)


def _table_entry(match: Any, deletion: Any, purge: Any) -> dict[str, Any]:
    return {
        "table": match.table,
        "via": match.via,
        "rows_deleted": deletion.rows_deleted,
        "files_rewritten": deletion.files_rewritten,
        "files_removed": (purge.files_removed if purge else 0),
        "snapshots_expired": (purge.snapshots_expired if purge else 0),
        "refs_changed": (purge.refs_changed if purge else []),
        "erasure_snapshot": str(deletion.snapshot_id) if deletion.snapshot_id else None,
    }


class _Recorder:
    def __init__(self, trail: Any, request: SubjectRequest) -> None:
        self.trail = trail
        self.request = request

    def __call__(self, event: str, details: dict[str, Any]) -> None:
        if self.trail is not None:
            self.trail.append_request(self.request, event, details)
        log.info("request %s: %s", self.request.request_id, event)
