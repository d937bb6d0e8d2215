"""One data-subject request end to end, as the operators run it: one function per kind of request.

* Discovery (:func:`discover_request`): every table holding the subject's rows.
* Access and portability (:func:`export_request`): discover → export with a manifest.
* Restriction (:func:`restrict_request`): record or lift the subject in the restriction registry.
* Erasure (:func:`erase_request`, around :func:`erase_subject`): resolve the identity over history →
  delete per table on every branch → delete the subject's entities from every serving copy (Feast
  online stores, SageMaker feature groups) → purge every table whose history holds the subject →
  verify by decoding every file and counting the serving copies → signed certificate, written to a
  file. It is resumable: progress is recorded as it goes, and the same request id run again finishes
  the work; a failure records ``failed``, anchors the trail after it, and re-raises.

Every step is recorded in the audit trail (``received`` first); results hold no identifier.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from dativo_provider import progress as progress_log
from dativo_provider.exceptions import ConfigError, TerminalError
from dativo_provider.privacy.progress import DEFAULT_PROGRESS_TABLE
from dativo_provider.privacy.purge import REFS_POLICIES
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.restriction import DEFAULT_TABLE as DEFAULT_RESTRICTIONS_TABLE

if TYPE_CHECKING:
    from dativo_provider.connections import ObjectStoreConfig
    from dativo_provider.contracts.model import Contract
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.privacy.audit import AuditTrail
    from dativo_provider.privacy.certificate import SigningKey
    from dativo_provider.privacy.discovery import Discovery
    from dativo_provider.privacy.export import ExportManifest
    from dativo_provider.privacy.serving_erasure import ServingResolver

#: What an erasure does with tags and branches that pin the subject's rows (one of :data:`REFS_POLICIES`).
RefsPolicy = Literal["fail", "remove", "repoint"]
RESTRICTION_ACTIONS = ("restrict", "lift")

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


def discover_request(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest,
                     *, trail: AuditTrail, scan_values: bool = False,
                     other_catalogs: Mapping[str, CatalogConfig] | None = None) -> Discovery:
    """Find every table holding the subject of ``request``; ``received`` and ``discovered`` go to the trail.

    :param scan_values: also scan unclassified string columns for personal-looking values (counts only).
    :param other_catalogs: more catalogs by name to search (see :func:`discovery.discover`).
    """
    from dativo_provider.privacy.discovery import discover

    trail.append_request(request, "received", {"kind": request.kind})
    found = discover(catalog, contracts, request, scan_values=scan_values, other_catalogs=other_catalogs)
    trail.append_request(request, "discovered", found.to_dict())
    log.info("request %s: %d rows in %d tables", request.request_id, found.total_rows, len(found.tables))
    return found


@dataclass(frozen=True)
class ExportOutcome:
    """What :func:`export_request` found and wrote; ``manifest.to_dict()`` is the identifier-free result."""

    discovery: Discovery
    manifest: ExportManifest


def export_request(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest,
                   destination: str | os.PathLike[str], *, trail: AuditTrail, fmt: str = "json",
                   other_catalogs: Mapping[str, CatalogConfig] | None = None,
                   object_store: ObjectStoreConfig | None = None) -> ExportOutcome:
    """Access and portability (GDPR Art. 15/20): discover, then export every row of the subject.

    The trail records ``received``, ``discovered`` and ``exported`` (row counts and where the export is,
    so that an erasure of the same subject removes it; file hashes stay in the manifest).

    :param destination: a local directory or ``s3://bucket/prefix``.
    :param fmt: ``json``, ``csv`` or ``parquet``.
    :raises ConfigError: an unknown format, before anything is read or recorded.
    """
    from dativo_provider.privacy.export import FORMATS, export_subject

    if fmt not in FORMATS:
        raise ConfigError(f"export format is {fmt!r}; expected one of {FORMATS}")
    found = discover_request(catalog, contracts, request, trail=trail, other_catalogs=other_catalogs)
    manifest = export_subject(catalog, found, destination, fmt=cast(Any, fmt), other_catalogs=other_catalogs,
                              object_store=object_store)
    trail.append_request(request, "exported", _export_event(manifest))
    log.info("request %s: exported %d rows from %d tables to %s", request.request_id, manifest.total_rows,
             len(manifest.tables), manifest.location)
    return ExportOutcome(found, manifest)


def _export_event(manifest: ExportManifest) -> dict[str, Any]:
    return {"format": manifest.format, "total_rows": manifest.total_rows, "location": manifest.location,
            "tables": {t.table: t.rows for t in manifest.tables}}


@dataclass(frozen=True)
class RestrictionOutcome:
    """What :func:`restrict_request` changed: ``rows`` added to (or lifted in) the registry."""

    request_id: str
    action: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "action": self.action, "rows": self.rows}


def restrict_request(catalog: CatalogConfig, request: SubjectRequest, *, trail: AuditTrail, hash_key: bytes,
                     action: str = "restrict", restrictions_table: str = DEFAULT_RESTRICTIONS_TABLE,
                     lift_request_id: str | None = None) -> RestrictionOutcome:
    """Restrict the subject's processing (GDPR Art. 18), or lift the restriction.

    The trail records ``received``, ``restricted`` or ``lifted``, and ``completed``.

    :param hash_key: the registry's key (identifiers are stored as keyed hashes).
    :param action: ``restrict`` or ``lift``.
    :param restrictions_table: the registry table (created on first use).
    :param lift_request_id: the request that lifts; default: ``request``'s id.
    :raises ConfigError: an unknown action, before anything is recorded.
    """
    from dativo_provider.privacy.restriction import RestrictionRegistry

    if action not in RESTRICTION_ACTIONS:
        raise ConfigError(f"restriction action is {action!r}; expected one of {RESTRICTION_ACTIONS}")
    trail.append_request(request, "received", {"kind": request.kind})
    registry = RestrictionRegistry(catalog, hash_key, table=restrictions_table)
    if action == "restrict":
        rows = registry.restrict(request)
    else:
        rows = registry.lift(request, lift_request_id=lift_request_id or request.request_id)
    event = "restricted" if action == "restrict" else "lifted"
    trail.append_request(request, event, {"registry": restrictions_table, "rows": rows})
    trail.append_request(request, "completed", {"action": action, "rows": rows})
    log.info("request %s: %s, %d registry rows", request.request_id, event, rows)
    return RestrictionOutcome(request.request_id, action, rows)


def erase_request(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest,
                  certificate_path: str | os.PathLike[str], *, signing_key: SigningKey, hash_key: bytes,
                  trail: AuditTrail, refs_policy: str = "fail", safety_window: timedelta = timedelta(minutes=30),
                  other_catalogs: Mapping[str, CatalogConfig] | None = None,
                  object_store: ObjectStoreConfig | None = None,
                  serving_resolver: ServingResolver | None = None) -> dict[str, Any]:
    """Erase the subject (GDPR Art. 17) with :func:`erase_subject` and write its signed certificate.

    The certificate file is readable by its owner only (0600), in folders created 0700.

    :param refs_policy: ``fail``, ``remove`` or ``repoint`` (see :func:`erase_subject`).
    :param serving_resolver: reaches serving targets behind connections (see :func:`erase_subject`).
    :returns: :meth:`ErasureOutcome.summary` with ``certificate_path`` and ``certificate_sha256``.
    :raises ConfigError: not an erasure request, or an unknown ``refs_policy``, before anything is done.
    """
    from dativo_provider.privacy.certificate import write_certificate

    if request.kind != "erasure":
        raise ConfigError(f"an erasure takes an erasure request; {request.request_id} is {request.kind!r}")
    if refs_policy not in REFS_POLICIES:
        raise ConfigError(f"refs_policy is {refs_policy!r}; expected one of {REFS_POLICIES}")
    outcome = erase_subject(catalog, contracts, request, signing_key=signing_key, hash_key=hash_key, trail=trail,
                            refs_policy=cast(RefsPolicy, refs_policy), safety_window=safety_window,
                            other_catalogs=other_catalogs, object_store=object_store,
                            serving_resolver=serving_resolver)
    path = Path(certificate_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_certificate(path, outcome.certificate)
    log.info("request %s: erased and verified; certificate %s", request.request_id, path)
    return {**outcome.summary(), "certificate_path": str(path),
            "certificate_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


@dataclass
class ErasureOutcome:
    """What an erasure did; ``certificate`` is the signed document."""

    request_id: str
    certificate: dict[str, Any]
    verified: bool
    tables: list[dict[str, Any]] = field(default_factory=list)
    #: One entry per serving target erased (:meth:`ServingErasure.to_dict`).
    serving: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """For XCom and logs: no identifiers."""
        return {"request_id": self.request_id, "verified": self.verified, "tables": self.tables,
                "serving": self.serving,
                "certificate_signature": self.certificate.get("signature", {}).get("key_id")}


def erase_subject(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest, *,
                  signing_key: SigningKey, hash_key: bytes, trail: AuditTrail | None = None,
                  refs_policy: RefsPolicy = "fail",
                  safety_window: timedelta = timedelta(minutes=30), now: datetime | None = None,
                  issuer: str = "dativo-airflow-provider", object_store: Any = None,
                  other_catalogs: Mapping[str, CatalogConfig] | None = None,
                  progress_table: str = DEFAULT_PROGRESS_TABLE,
                  serving_resolver: ServingResolver | None = None) -> ErasureOutcome:
    """Erase the subject of ``request`` from every table the contracts describe, and prove it.

    The request is a resumable unit of work: each step is recorded in ``progress_table`` as it
    completes (see :mod:`dativo_provider.privacy.progress`), and running the same request id again
    continues where it stopped and ends in the state an uninterrupted run reaches. In order:

    1. resolve: discovery over every retained snapshot, joined with the identity an earlier attempt
       recorded (sealed) — the only record of e-mails once their rows are purged;
    2. refs: with policy ``fail``, tags pinning the subject's rows stop the request before anything
       is deleted;
    3. delete per table, on every branch head (retrying lost races);
    3b. serving copies: for each table with serving targets (:mod:`dativo_provider.ml.serving`), the
       subject's entity keys, read from the table's retained history, are deleted from every Feast
       online store and SageMaker feature group and counted again (must be 0); see
       :mod:`dativo_provider.privacy.serving_erasure` for why this order survives a crash;
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
    :param serving_resolver: target → keyword arguments for its kind's delete/count functions (a
        client, a store configuration), for targets behind connections; the Airflow operator builds it.
    :raises RefsPinErasedDataError: policy ``fail`` and a tag pins the subject's rows; nothing changed.
    :raises TerminalError: verification found the subject after the erasure.
    :raises ServingTargetUnreachableError: a serving target could not be reached (retryable; resumes).
    :raises ServingCopyRemainsError: a serving target still holds the subject's entities.
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
        erasure.delete_all()
        erasure.erase_serving_all(serving_resolver)
        erasure.purge_all(refs_policy, safety_window, now)
        exports = erasure.remove_exports(trail, hash_key, object_store)
        verification = erasure.verify()
        serving_remaining = erasure.verify_serving(serving_resolver)
        verification.passed = verification.passed and serving_remaining == 0
        record("verified", erasure.verification_section(verification, serving_remaining))
        if not verification.passed:
            raise TerminalError(f"request {request.request_id}: erasure could not be verified: "
                                f"{len(verification.findings)} findings, rows still found "
                                f"{verification.discovery_rows}, serving entities remaining "
                                f"{serving_remaining}; see the audit trail")
        payload = erasure.certificate_payload(hash_key, exports, verification, issuer, now, serving_remaining)
        completed = record("completed", {"rows_deleted": sum(t["rows_deleted"] for t in erasure.tables),
                                         "verified": True})
        if trail is not None and completed is not None:
            # Anchored after the completed event: removing it from the trail is detectable.
            payload["audit_trail"] = trail.anchor(completed).to_dict()
        certificate = _issue(payload, signing_key)
        progress.drop()
        return ErasureOutcome(request.request_id, certificate, True, erasure.tables, erasure.serving)
    except BaseException as exc:
        failed = _record_failure(record, exc)
        _anchor_failure(trail, failed, request)
        raise


def _record_failure(record: _Recorder, exc: BaseException) -> dict[str, Any] | None:
    """``failed`` with the error's message, or without it when the message names an identifier (a small
    numeric id can be any number in it): the trail refuses identifiers in clear text."""
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
        self.catalogs: dict[str | None, CatalogConfig] = {None: catalog}
        self.catalogs.update(other_catalogs)
        self.found: Any = None
        self.tables: list[dict[str, Any]] = []
        self.serving: list[dict[str, Any]] = []
        self.serving_keys: list[Any] = []  # per table, the subject's entity keys: memory only
        self.rows_deleted = self.files_removed = 0  # by this run, for the progress lines

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

    def delete_all(self) -> None:
        """Delete table by table; a line at a steady interval says how far (each table logs its own totals)."""
        deleting = self._progress("delete")
        for match in self.found.tables:
            self.delete(match)
            deleting.advance(1, f"{self.rows_deleted} rows deleted")

    def erase_serving_all(self, resolver: ServingResolver | None) -> None:
        """Every serving copy of every table, before any purge: the keys come from the history."""
        for match in self.found.tables:
            self.erase_serving(match, resolver)

    def erase_serving(self, match: Any, resolver: ServingResolver | None) -> None:
        """Delete the subject's entities from the table's serving targets; recorded with counts only."""
        from dativo_provider.privacy.discovery import split_table
        from dativo_provider.privacy.serving_erasure import collect_keys, erase_targets

        earlier = self.progress.details("serving", match.table)
        if self.progress.details("purged", match.table) is not None:  # its history is gone; this was done
            self.serving.extend((earlier or {}).get("targets", []))
            return
        name, table = split_table(match.table)
        found = collect_keys(match.table, self.catalogs[name].load().load_table(table), match.match,
                             match.row_filter())
        if not found.targets:
            return
        results = [r.to_dict() for r in erase_targets(found, resolver, earlier)]
        self.progress.record("serving", match.table, {"targets": results})
        self.serving_keys.append(found)
        self.serving.extend(results)
        self.record("deleted", {"table": match.table, "serving": [
            {k: r[k] for k in ("kind", "name", "entity_keys", "entities_deleted", "entities_remaining")}
            for r in results]})

    def verify_serving(self, resolver: ServingResolver | None) -> int:
        """The subject's entities the serving targets hold now (what this run erased, counted again)."""
        from dativo_provider.privacy.serving_erasure import recount

        return sum(recount(found, resolver) for found in self.serving_keys)

    def verification_section(self, verification: Any, serving_remaining: int) -> dict[str, Any]:
        return {**verification.to_dict(), "serving": {"targets": len(self.serving),
                                                      "entities_remaining": serving_remaining}}

    def purge_all(self, policy: str, window: timedelta, now: datetime | None) -> None:
        purging = self._progress("purge")
        for match in self.found.tables:
            self.purge(match, policy, window, now)
            purging.advance(1, f"{self.files_removed} files removed")

    def _progress(self, step: str) -> progress_log.ProgressLog:
        return progress_log.ProgressLog(log, f"request {self.request.request_id}: {step}", total=len(self.found.tables),
                                        unit="tables", interval=progress_log.DEFAULT_INTERVAL_S)

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
            entry: dict[str, Any] = {
                "rows_deleted": totals.rows_deleted, "files_rewritten": totals.files_rewritten,
                "files_removed": totals.files_removed, "branches": sorted(totals.branches),
                "erasure_snapshot": str(totals.snapshot_id) if totals.snapshot_id else None}
        else:  # an interrupted purge may have expired the marked snapshots: add to what was recorded
            entry = dict(self.progress.details("deleted", match.table) or {})
            for key in ("rows_deleted", "files_rewritten", "files_removed"):
                entry[key] = entry.get(key, 0) + getattr(deletion, key)
            entry["branches"] = sorted({*entry.get("branches", []), *deletion.branches})
        self.progress.record("deleted", match.table, entry)
        self.rows_deleted += deletion.rows_deleted
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
                self.files_removed += result.files_removed
                self.record("purged", {"table": match.table, **done})
            self.progress.record("purged", match.table, done)
        self.tables.append({"table": match.table, "via": match.via, "rows_deleted": deleted.get("rows_deleted", 0),
                            "files_rewritten": deleted.get("files_rewritten", 0), **done,
                            "erasure_snapshot": deleted.get("erasure_snapshot")})

    def remove_exports(self, trail: Any, hash_key: bytes, object_store: Any) -> int:
        earlier = self.progress.details("exports_removed")
        removed = remove_earlier_exports(trail, hash_key, self.request, self.identifiers().values, object_store)
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
                            now: datetime | None, serving_remaining: int = 0) -> dict[str, Any]:
        from dativo_provider.privacy.certificate import request_section

        started = self.progress.started_at() or now or datetime.now(timezone.utc)
        return {
            "request": request_section(self.request, hash_key),
            "tables": {t["table"]: {k: v for k, v in t.items() if k != "table"} for t in self.tables},
            "unidentifiable_tables": self.found.unidentifiable,
            "exports_removed": exports,
            "serving": sorted(self.serving, key=lambda s: (s["table"], s["kind"], s["name"])),
            "verification": self.verification_section(verification, serving_remaining),
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


def remove_earlier_exports(trail: Any, hash_key: bytes, request: SubjectRequest, identifiers: Iterable[str],
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

    from dativo_provider import objectstore

    fs, path = objectstore.resolve(location, object_store)
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
