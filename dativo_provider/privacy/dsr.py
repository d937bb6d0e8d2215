"""One data-subject request end to end, as the operators run it.

Erasure (:func:`erase_subject`): resolve the identity over history → delete per table on every branch →
purge every table whose history holds the subject → verify by decoding every file → signed
certificate. It is resumable: progress is recorded as it goes, and the same request id run again
finishes the work. Every step is recorded in the audit trail; a failure records ``failed``, anchors the
trail after it, and re-raises. Access and portability: discover → export.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.exceptions import TerminalError
from dativo_provider.privacy.progress import DEFAULT_PROGRESS_TABLE
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
                  other_catalogs: Mapping[str, CatalogConfig] | None = None,
                  progress_table: str = DEFAULT_PROGRESS_TABLE) -> ErasureOutcome:
    """Erase the subject of ``request`` from every table the contracts describe, and prove it.

    The request is a resumable unit of work: each step is recorded in ``progress_table`` as it
    completes (see :mod:`dativo_provider.privacy.progress`), and running the same request id again
    continues where it stopped and ends in the state an uninterrupted run reaches. In order:

    1. resolve: discovery over every retained snapshot, joined with the identity an earlier attempt
       recorded (sealed) — the only record of e-mails once their rows are purged;
    2. refs: with policy ``fail``, tags pinning the subject's rows stop the request before anything
       is deleted;
    3. delete per table, on every branch head (retrying lost races);
    4. purge per table whose retained history still holds the subject, whether or not this run
       deleted rows there; the files found dirty are recorded first;
    5. earlier exports of the subject are removed; every file is decoded to verify;
    6. ``completed`` is appended to the trail, the trail anchored after it, the certificate signed,
       and the request's progress (and with it the identity) erased.

    :param hash_key: the key identifiers are hashed with in the certificate (and the audit trail); the
        progress table's sealing key is derived from it.
    :param trail: the audit trail; earlier exports of the same subject it records are removed too.
    :param object_store: credentials for exports on S3.
    :param other_catalogs: more catalogs by name to erase from (see :func:`discovery.discover`).
    :param progress_table: the progress table in ``catalog``.
    :raises RefsPinErasedDataError: policy ``fail`` and a tag pins the subject's rows; nothing changed.
    :raises TerminalError: verification found the subject after the erasure.
    """
    from dativo_provider.privacy.progress import ErasureProgress

    contracts = list(contracts)
    progress = ErasureProgress(catalog, hash_key, request.request_id, progress_table)
    record = _Recorder(trail, request)
    record("resumed" if progress.resumed else "received",
           {"kind": request.kind, "steps_done": len(progress.steps)})
    try:
        erasure = _Erasure(catalog, contracts, request, progress, record, other_catalogs or {})
        erasure.resolve()
        erasure.check_refs(refs_policy)
        for match in erasure.found.tables:
            erasure.delete(match)
        for match in erasure.found.tables:
            erasure.purge(match, refs_policy, safety_window, now)
        exports = erasure.remove_exports(trail, hash_key, object_store)
        verification = erasure.verify()
        record("verified", verification.to_dict())
        if not verification.passed:
            raise TerminalError(f"request {request.request_id}: erasure could not be verified: "
                                f"{len(verification.findings)} findings, rows still found "
                                f"{verification.discovery_rows}; see the audit trail")
        payload = erasure.certificate_payload(hash_key, exports, verification, issuer, now)
        completed = record("completed", {"rows_deleted": sum(t["rows_deleted"] for t in erasure.tables),
                                         "verified": True})
        if trail is not None:
            # Anchored after the completed event: removing it from the trail is detectable.
            payload["audit_trail"] = trail.anchor(completed).to_dict()
        certificate = _issue(payload, signing_key)
        progress.drop()
        return ErasureOutcome(request.request_id, certificate, True, erasure.tables)
    except BaseException as exc:
        failed = _record_failure(record, exc)
        _anchor_failure(trail, failed, request)
        raise


def _record_failure(record: _Recorder, exc: BaseException) -> dict[str, Any] | None:
    """``failed`` with the error's message, or without it when the message names an identifier (a small
    numeric id can be any number in it): the trail refuses identifiers in clear text."""
    from dativo_provider.exceptions import ConfigError

    try:
        return record("failed", {"error": type(exc).__name__, "message": str(exc)[:500]})
    except ConfigError:
        return record("failed", {"error": type(exc).__name__,
                                 "message": "withheld: it contains a value equal to one of the subject's identifiers"})


def _issue(payload: dict[str, Any], signing_key: SigningKey) -> dict[str, Any]:
    from dativo_provider.privacy.certificate import issue_certificate

    return issue_certificate(payload, signing_key)


def _anchor_failure(trail: AuditTrail | None, failed: dict[str, Any] | None, request: SubjectRequest) -> None:
    """Anchor the trail after a ``failed`` event too; a failure to do so must not hide the first."""
    if trail is None or failed is None:
        return
    try:
        trail.anchor(failed)
    except Exception as exc:  # noqa: BLE001 - the request's own error is the one to raise
        log.warning("request %s: could not anchor the failed event: %s", request.request_id, exc)


class _Erasure:
    """The steps of :func:`erase_subject`, sharing the discovery, the progress and the results."""

    def __init__(self, catalog: CatalogConfig, contracts: list[Any], request: SubjectRequest, progress: Any,
                 record: _Recorder, other_catalogs: Mapping[str, CatalogConfig]) -> None:
        self.catalog = catalog
        self.contracts = contracts
        self.request = request
        self.progress = progress
        self.record = record
        self.other_catalogs = other_catalogs
        self.catalogs: dict[str | None, CatalogConfig] = {None: catalog, **other_catalogs}
        self.found: Any = None
        self.tables: list[dict[str, Any]] = []

    def resolve(self) -> None:
        """Discovery over history, widened by (and widening) the identity recorded by earlier attempts."""
        import dataclasses

        from dativo_provider.privacy.discovery import discover
        from dativo_provider.privacy.progress import Identity, union_values

        known = self.progress.identity
        request = self.request
        if known.subject_ids or known.emails:
            request = dataclasses.replace(request, subject_ids=tuple(sorted({*request.subject_ids, *known.subject_ids})),
                                          emails=tuple(sorted({*request.emails, *known.emails})))
        found = discover(self.catalog, self.contracts, request, other_catalogs=self.other_catalogs)
        for match in found.tables:
            for column, values in known.matches.get(match.table, {}).items():
                match.match[column] = union_values(match.match.get(column, []), values)
        identity = Identity(set(found.subject_ids), set(found.emails),
                            {m.table: {c: list(v) for c, v in m.match.items()} for m in found.tables})
        self.progress.record("resolved", None, {"tables": len(found.tables)}, identity=identity)
        self.found = found
        self.record("discovered", found.to_dict())

    def check_refs(self, policy: str) -> None:
        """With policy ``fail``: every tag pinning the subject's rows, in every table not yet purged,
        before anything is deleted."""
        from dativo_provider.privacy.discovery import split_table
        from dativo_provider.privacy.purge import RefsPinErasedDataError, stale_refs

        if policy != "fail":
            return
        for match in self.found.tables:
            if self.progress.details("purged", match.table) is not None:
                continue
            name, table = split_table(match.table)
            stale = [r for r in stale_refs(self.catalogs[name], table, match.row_filter()) if r["kind"] == "tag"]
            if stale:
                raise RefsPinErasedDataError(match.table, stale)

    def delete(self, match: Any) -> None:
        """Delete on every branch; the totals come from the snapshots this request marked, so a commit
        whose record a crash prevented still counts on the rerun."""
        from dativo_provider.privacy.discovery import split_table
        from dativo_provider.privacy.erase import delete_rows, request_totals

        if self.progress.details("purged", match.table) is not None:
            return
        name, table = split_table(match.table)
        deletion = delete_rows(self.catalogs[name], table, match.row_filter(), request_id=self.request.request_id)
        if self.progress.details("purging", match.table) is None:
            totals = request_totals(self.catalogs[name], table, self.request.request_id)
            entry = {"rows_deleted": totals.rows_deleted, "files_rewritten": totals.files_rewritten,
                     "files_removed": totals.files_removed, "branches": sorted(totals.branches),
                     "erasure_snapshot": str(totals.snapshot_id) if totals.snapshot_id else None}
        else:  # an interrupted purge may have expired the marked snapshots: add to what was recorded
            entry = dict(self.progress.details("deleted", match.table) or {})
            for key in ("rows_deleted", "files_rewritten", "files_removed"):
                entry[key] = entry.get(key, 0) + getattr(deletion, key)
            entry["branches"] = sorted({*entry.get("branches", []), *deletion.branches})
        self.progress.record("deleted", match.table, entry)
        self.record("deleted", {"table": match.table, "rows": deletion.rows_deleted,
                                "files_rewritten": deletion.files_rewritten, "branches": sorted(deletion.branches)})

    def purge(self, match: Any, policy: str, window: timedelta, now: datetime | None) -> None:
        """Purge the table if its retained history holds the subject (dirty files recorded first)."""
        from dativo_provider.privacy.discovery import split_table
        from dativo_provider.privacy.purge import plan_purge

        deleted = self.progress.details("deleted", match.table) or {}
        done = self.progress.details("purged", match.table)
        if done is None:
            name, table = split_table(match.table)
            earlier = (self.progress.details("purging", match.table) or {}).get("dirty_files", [])
            plan = plan_purge(self.catalogs[name], table, subject=match.row_filter(),
                              request_id=self.request.request_id, dirty_files=earlier)
            done = {"files_removed": 0, "snapshots_expired": 0, "refs_changed": []}
            if plan.dirty_files:
                self.progress.record("purging", match.table, {"dirty_files": plan.dirty_files})
                result = plan.run(policy, window, now)  # type: ignore[arg-type]
                done = {"files_removed": result.files_removed, "snapshots_expired": result.snapshots_expired,
                        "refs_changed": result.refs_changed}
                self.record("purged", {"table": match.table, **done})
            self.progress.record("purged", match.table, done)
        self.tables.append({"table": match.table, "via": match.via, "rows_deleted": deleted.get("rows_deleted", 0),
                            "files_rewritten": deleted.get("files_rewritten", 0), **done,
                            "erasure_snapshot": deleted.get("erasure_snapshot")})

    def remove_exports(self, trail: Any, hash_key: bytes, object_store: Any) -> int:
        earlier = self.progress.details("exports_removed")
        removed = _remove_earlier_exports(trail, hash_key, self.request, self.identifiers().values, object_store)
        if removed:
            self.record("deleted", {"exports_removed": len(removed)})
        total = len(removed) + (earlier or {}).get("count", 0)
        self.progress.record("exports_removed", None, {"count": total})
        return total

    def identifiers(self) -> Any:
        from dativo_provider.privacy.matching import Identifiers

        # Numbers only count in the columns that identify the subject: a small id is also a quantity.
        columns = sorted({column for match in self.found.tables for column in match.match})
        return Identifiers(tuple(_identifier_values(self.found, self.request)), columns=tuple(columns))

    def verify(self) -> Any:
        from dativo_provider.privacy.discovery import discover

        return _verify(self.catalogs, sorted({m.table for m in self.found.tables}), self.identifiers(),
                       lambda: sum(m.rows for m in discover(self.catalog, self.contracts, self.request,
                                                            other_catalogs=self.other_catalogs).tables))

    def certificate_payload(self, hash_key: bytes, exports: int, verification: Any, issuer: str,
                            now: datetime | None) -> dict[str, Any]:
        from dativo_provider.privacy.certificate import request_section

        started = self.progress.started_at() or now or datetime.now(timezone.utc)
        return {
            "request": request_section(self.request, hash_key),
            "tables": {t["table"]: {k: v for k, v in t.items() if k != "table"} for t in self.tables},
            "unidentifiable_tables": self.found.unidentifiable,
            "exports_removed": exports,
            "verification": verification.to_dict(),
            "timestamps": {"received": self.request.received_at.isoformat(), "started": started.isoformat(),
                           "completed": datetime.now(timezone.utc).isoformat()},
            "issuer": {"name": issuer},
        }


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
    from dativo_provider.privacy.hashing import subject_hashes

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
    from dativo_provider.privacy.identifiers import is_blank

    values = {*request.subject_ids, *request.emails}
    for match in found.tables:
        for column_values in match.match.values():
            values.update(str(v) for v in column_values if not is_blank(v))
    return sorted(values)


class _Recorder:
    def __init__(self, trail: Any, request: SubjectRequest) -> None:
        self.trail = trail
        self.request = request

    def __call__(self, event: str, details: dict[str, Any]) -> dict[str, Any] | None:
        """Append ``event`` to the trail (when there is one) and return the stored record."""
        log.info("request %s: %s", self.request.request_id, event)
        if self.trail is None:
            return None
        return self.trail.append_request(self.request, event, details)
