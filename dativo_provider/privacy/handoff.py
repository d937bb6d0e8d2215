"""Erasure hand-off: the heavy delete runs on Spark or Trino, the proof and the certificate stay ours.

A delete over a very large table may outgrow an Airflow worker. The hand-off splits the erasure of
:func:`~dativo_provider.privacy.dsr.erase_subject` into three steps that a DAG runs as three tasks:

1. **plan** (:func:`plan_handoff`): discovery finds the subject's tables and rows; for each table with
   rows on a branch head, the exact DELETE is rendered for the engine
   (:mod:`~dativo_provider.privacy.handoff_sql`) and written to a file readable by its owner only
   (it holds the identifiers in clear text). The plan (tables, the snapshot each DELETE is based on,
   the file and its HMAC under the trail key, value counts per column) is recorded in the audit trail (``discovered``)
   and returned: it holds no identifier;
2. **the external engine** runs the file (Spark's ``spark-sql -f``, a Trino connection), and, on a
   merge-on-read table, the compaction statement the plan gives inline;
3. **adopt and prove** (:func:`finish_handoff`): for each planned table the external commit is found
   (:func:`adopt_external_delete`: the delete or overwrite snapshots on main after the planned base;
   none, a rolled-back base, or any row of the subject left on a branch head fails the request), the
   tables are purged, earlier exports removed, every file decoded by the same verification as our own
   erasure, and the same signed certificate issued, naming the engine and its snapshot per table.

The request's ``failed`` event is recorded (and anchored) when step 3 fails, as in our own erasure.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dativo_provider.exceptions import ConfigError, TerminalError
from dativo_provider.privacy.erase import snapshot_property
from dativo_provider.privacy.handoff_sql import Engine, check_engine, compaction_statement, delete_statement

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo_provider.contracts.model import Contract
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.privacy.audit import AuditTrail
    from dativo_provider.privacy.certificate import SigningKey
    from dativo_provider.privacy.discovery import Discovery, TableMatch
    from dativo_provider.privacy.request import SubjectRequest

log = logging.getLogger(__name__)

#: Snapshot operations that can remove rows (copy-on-write rewrites are ``overwrite``).
DELETING_OPERATIONS = ("delete", "overwrite")
#: Summary keys by which engines name themselves (Iceberg's own, then Spark's and Trino's).
_ENGINE_KEYS = (("engine-name", None), ("spark.app.id", "spark"), ("trino_query_id", "trino"))


class ExternalDeleteMissingError(TerminalError):
    """The external engine committed no delete of the planned table, or left the subject's rows."""


@dataclass(frozen=True)
class PlannedTable:
    """One table handed to the engine.

    :param base_snapshot_id: main's head the DELETE was planned on (text: ids exceed 2^53).
    :param branches: the branch heads holding the subject's rows, each with its own DELETE.
    :param statement_path: the file holding the DELETE statement(s) (mode 0600; identifiers in clear).
    :param statement_mac: HMAC-SHA256 of the file's text under the hash key: a plain digest of a
        statement holding a small id would let anyone who reads XCom confirm a guessed id.
    :param compaction: the statement that makes a merge-on-read delete physical (no identifiers).
    """

    table: str
    base_snapshot_id: str | None
    rows: int
    branches: tuple[str, ...]
    match_columns: dict[str, int]
    statement_path: str
    statement_mac: str
    compaction: str


@dataclass(frozen=True)
class HandoffPlan:
    """What :func:`plan_handoff` handed over; ``to_dict()`` is XCom- and log-safe."""

    request_id: str
    engine: str
    engine_catalog: str
    tables: list[PlannedTable] = field(default_factory=list)
    #: Tables the subject has rows in only in history (no DELETE needed; step 3 purges them).
    history_only: list[str] = field(default_factory=list)
    #: Spark only: every table's DELETEs in one file, for one ``spark-sql -f`` (a Trino call takes one
    #: statement, so Trino runs the tables' files one by one). None for Trino.
    statements_path: str | None = None
    statements_mac: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_handoff(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest, *,
                 engine: str, engine_catalog: str, statement_dir: str | os.PathLike[str],
                 trail: AuditTrail | None, hash_key: bytes | str) -> HandoffPlan:
    """Step 1: find the subject's rows and write the engine's DELETE per table (see the module doc).

    :param engine: ``spark`` or ``trino``.
    :param engine_catalog: the name the engine gives the Iceberg catalog (Spark's ``spark.sql.catalog.<name>``,
        Trino's catalog).
    :param statement_dir: where ``<request_id>/<table>.sql`` files go (folders 0700, files 0600); the
        engine must be able to read them (a shared path when spark-sql runs elsewhere).
    :param hash_key: the audit trail's key; the plan holds each file's HMAC under it (:func:`read_statement`).
    :raises ConfigError: not an erasure, an unknown engine, or a branch holding rows for Trino.
    """
    from dativo_provider.privacy.discovery import discover

    checked = check_engine(engine)
    if request.kind != "erasure":
        raise ConfigError(f"a hand-off erases; request {request.request_id} is {request.kind!r}")
    if trail is not None:
        trail.append_request(request, "received", {"kind": request.kind, "handoff": checked})
    found = discover(catalog, contracts, request)
    folder = Path(statement_dir) / request.request_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    plan = HandoffPlan(request.request_id, checked, engine_catalog)
    loaded = catalog.load()
    for match in found.tables:
        if ":" in match.table:
            raise ConfigError(f"{match.table}: the hand-off erases from one catalog; other catalogs are not handed off")
        branches = _branches_holding(loaded.load_table(match.table), match)
        if not branches:
            plan.history_only.append(match.table)
            continue
        plan.tables.append(_plan_table(match, branches, checked, engine_catalog, folder, hash_key))
    if checked == "spark":
        plan = _with_combined_file(plan, folder, hash_key)
    if trail is not None:
        trail.append_request(request, "discovered", {**found.to_dict(), "handoff": plan.to_dict()})
    log.info("request %s: %d tables handed to %s, %d purged only", request.request_id, len(plan.tables),
             checked, len(plan.history_only))
    return plan


def _branches_holding(table: Table, match: TableMatch) -> list[str]:
    """Branch heads (main first) where the subject has rows now."""
    row_filter = match.row_filter()
    heads = sorted(((name, ref.snapshot_id) for name, ref in table.metadata.refs.items()
                    if ref.snapshot_ref_type.value == "branch"), key=lambda item: item[0] != "main")
    return [name for name, snapshot_id in heads
            if table.scan(row_filter=row_filter, snapshot_id=snapshot_id).count() > 0]


def _plan_table(match: TableMatch, branches: list[str], engine: Engine, engine_catalog: str,
                folder: Path, hash_key: bytes | str) -> PlannedTable:
    statements = [delete_statement(match.table, match.match, engine, engine_catalog, branch) for branch in branches]
    if engine == "trino" and len(statements) > 1:  # handoff_sql refuses branches for Trino already
        raise ConfigError(f"{match.table}: Trino takes one statement per call")
    text = ";\n".join(statements) + (";\n" if engine == "spark" else "\n")
    path = folder / (match.table.replace("/", "_") + ".sql")
    _write_private(path, text)
    return PlannedTable(
        table=match.table, base_snapshot_id=str(match.snapshot_id) if match.snapshot_id is not None else None,
        rows=match.rows, branches=tuple(branches),
        match_columns={column: len(values) for column, values in match.match.items()},
        statement_path=str(path), statement_mac=statement_mac(hash_key, text),
        compaction=compaction_statement(match.table, engine, engine_catalog))


def _with_combined_file(plan: HandoffPlan, folder: Path, hash_key: bytes | str) -> HandoffPlan:
    import dataclasses

    texts = [Path(t.statement_path).read_text(encoding="utf-8") for t in plan.tables]
    text = "".join(texts) or "-- nothing to delete: no branch head holds the subject's rows\n"
    path = folder / "all-tables.sql"
    _write_private(path, text)
    return dataclasses.replace(plan, statements_path=str(path),
                               statements_mac=statement_mac(hash_key, text))


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def statement_mac(hash_key: bytes | str, text: str) -> str:
    """HMAC-SHA256 of a statement's text under the audit trail's key, as hex."""
    from dativo_provider.privacy.hashing import audit_key

    return hmac.new(audit_key(hash_key), text.encode("utf-8"), hashlib.sha256).hexdigest()


def read_statement(planned: Mapping[str, Any], hash_key: bytes | str) -> str:
    """The planned statement file's text, checked against the HMAC the plan recorded.

    :param hash_key: the audit trail's key (the ``dativo_dsr_hash_key`` connection).
    :raises TerminalError: the file changed since it was planned.
    """
    text = Path(planned["statement_path"]).read_text(encoding="utf-8")
    if not hmac.compare_digest(statement_mac(hash_key, text), str(planned["statement_mac"])):
        raise TerminalError(f"{planned['table']}: the statement file {planned['statement_path']} changed since "
                            "it was planned (or the hash key is not the plan's); plan the request again")
    return text


# --- step 3: adopt the external delete ---------------------------------------------------------------


@dataclass
class ExternalDeletion:
    """The external engine's commits on one table's main after the planned base snapshot.

    :param erasure_snapshot: the newest delete/overwrite snapshot: after it main holds no row of the subject.
    :param engine_seen: the engine named in that snapshot's summary (None when it names none).
    :param snapshots: the engine's commits since the base (its deletes, and commits naming the same engine).
    :param rows_deleted: the subject's rows on main at the base (main holds none after the engine's commits).
    """

    table: str
    engine: str
    engine_seen: str | None
    base_snapshot: str
    erasure_snapshot: str
    snapshots: list[str]
    rows_at_base: int
    rows_deleted: int
    files_removed: int
    files_rewritten: int
    delete_files_added: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adopt_external_delete(catalog: CatalogConfig, planned: Mapping[str, Any], match: TableMatch,
                          engine: str) -> ExternalDeletion:
    """Find the commit in which ``engine`` deleted the subject's rows of one planned table, and check it.

    :param planned: the table's entry of :meth:`HandoffPlan.to_dict`.
    :param match: the table's match from a discovery run now (its filter selects the subject's rows).
    :raises ExternalDeleteMissingError: main did not move past the base, the base is no longer an ancestor
        of main, no snapshot since deleted anything, or a branch head still holds the subject's rows (the
        count is named; the values never are).
    """
    from pyiceberg.table.snapshots import ancestors_of

    name = planned["table"]
    table = catalog.load().load_table(name)
    base = int(planned["base_snapshot_id"])
    head = table.metadata.snapshot_by_name("main")
    since = []
    for snapshot in ancestors_of(head, table.metadata) if head else ():
        if snapshot.snapshot_id == base:
            break
        since.append(snapshot)
    else:
        raise ExternalDeleteMissingError(f"{name}: the planned base snapshot {base} is not an ancestor of main any "
                                         "more (rolled back or expired); plan the request again")
    deleting = [s for s in reversed(since) if _operation(s) in DELETING_OPERATIONS]
    if not deleting:
        raise ExternalDeleteMissingError(f"{name}: {engine} committed no delete on main since snapshot {base} "
                                         f"({len(since)} other commits); run the external step, then this again")
    row_filter = match.row_filter()
    rows_at_base = table.scan(row_filter=row_filter, snapshot_id=base).count()
    heads = {name: ref.snapshot_id for name, ref in table.metadata.refs.items()
             if ref.snapshot_ref_type.value == "branch"}
    for branch, snapshot_id in sorted(heads.items(), key=lambda item: item[0] != "main"):
        left = table.scan(row_filter=row_filter, snapshot_id=snapshot_id).count()
        if left:
            raise ExternalDeleteMissingError(f"{name}: after {engine}'s commits, branch {branch!r} still holds "
                                             f"{left} of the subject's rows ({rows_at_base} at the base on main); "
                                             "the external delete was incomplete")
    erasure = deleting[-1]
    seen = _engine_named(erasure)
    # An engine may commit a delete as two snapshots (a delete, then an append of the rows kept): the
    # commits that name the same engine belong to it; other writers' commits are not counted.
    ours = [s for s in reversed(since) if s in deleting or (seen is not None and _engine_named(s) == seen)]
    totals = _summed(ours)
    # The subject's rows on main before the engine's commits; after them main holds none (checked above).
    totals["rows_deleted"] = rows_at_base
    return ExternalDeletion(
        table=name, engine=engine, engine_seen=seen, base_snapshot=str(base),
        erasure_snapshot=str(erasure.snapshot_id), snapshots=[str(s.snapshot_id) for s in ours],
        rows_at_base=rows_at_base, **totals)


def _operation(snapshot: Any) -> str | None:
    operation = getattr(snapshot.summary, "operation", None) if snapshot.summary is not None else None
    return getattr(operation, "value", operation)


def _engine_named(snapshot: Any) -> str | None:
    for key, engine in _ENGINE_KEYS:
        value = snapshot_property(snapshot, key)
        if value:
            return engine or value
    return None


def _summed(snapshots: list[Any]) -> dict[str, int]:
    def count(summary: Any, key: str) -> int:
        value = summary.get(key) if summary is not None else None
        return int(value) if value else 0

    totals = {"rows_deleted": 0, "files_removed": 0, "files_rewritten": 0, "delete_files_added": 0}
    for snapshot in snapshots:
        summary = snapshot.summary
        totals["files_removed"] += count(summary, "deleted-data-files")
        totals["files_rewritten"] += count(summary, "added-data-files")
        totals["delete_files_added"] += count(summary, "added-delete-files")
    return totals


def finish_handoff(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest,
                   plan: Mapping[str, Any], certificate_path: str | os.PathLike[str], *, signing_key: SigningKey,
                   hash_key: bytes, trail: AuditTrail | None, refs_policy: str = "fail",
                   safety_window: timedelta = timedelta(minutes=30), now: datetime | None = None,
                   object_store: Any = None, issuer: str = "dativo-airflow-provider") -> dict[str, Any]:
    """Step 3: adopt the engine's deletes, purge, verify by decoding every file, and sign the certificate.

    :param plan: :meth:`HandoffPlan.to_dict` of step 1 (e.g. from XCom).
    :returns: as :func:`~dativo_provider.privacy.dsr.erase_request`: the summary with ``certificate_path``
        and ``certificate_sha256``, and ``engine``.
    :raises ExternalDeleteMissingError: see :func:`adopt_external_delete`; nothing was purged.
    :raises TerminalError: verification found the subject after the purge.
    """
    from dativo_provider.privacy.certificate import write_certificate
    from dativo_provider.privacy.purge import REFS_POLICIES

    if refs_policy not in REFS_POLICIES:
        raise ConfigError(f"refs_policy is {refs_policy!r}; expected one of {REFS_POLICIES}")
    if plan.get("request_id") != request.request_id:
        raise ConfigError(f"the plan is of request {plan.get('request_id')!r}, not {request.request_id!r}")
    adoption = _Adoption(catalog, list(contracts), request, plan, trail)
    try:
        certificate = adoption.run(signing_key, hash_key, refs_policy, safety_window, now, object_store, issuer)
    except BaseException as exc:
        adoption.failed(exc)
        raise
    path = Path(certificate_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_certificate(path, certificate)
    log.info("request %s: %s's delete adopted and verified; certificate %s", request.request_id, plan["engine"], path)
    return {"request_id": request.request_id, "verified": True, "engine": plan["engine"], "tables": adoption.tables,
            "certificate_signature": certificate["signature"]["key_id"], "certificate_path": str(path),
            "certificate_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


class _Adoption:
    """The steps of :func:`finish_handoff`, sharing the discovery and the per-table results."""

    def __init__(self, catalog: CatalogConfig, contracts: list[Any], request: SubjectRequest,
                 plan: Mapping[str, Any], trail: AuditTrail | None) -> None:
        self.catalog = catalog
        self.contracts = contracts
        self.request = request
        self.plan = plan
        self.trail = trail
        self.tables: list[dict[str, Any]] = []
        self.found: Discovery | None = None

    def record(self, event: str, details: dict[str, Any]) -> dict[str, Any] | None:
        log.info("request %s: %s", self.request.request_id, event)
        return self.trail.append_request(self.request, event, details) if self.trail is not None else None

    def run(self, signing_key: SigningKey, hash_key: bytes, policy: str, window: timedelta, now: datetime | None,
            object_store: Any, issuer: str) -> dict[str, Any]:
        from dativo_provider.privacy.certificate import issue_certificate
        from dativo_provider.privacy.discovery import discover

        self.found = found = discover(self.catalog, self.contracts, self.request)
        started = datetime.now(UTC)
        deletions = {planned["table"]: self.adopt(planned, found.table(planned["table"]))
                     for planned in self.plan["tables"]}
        for match in found.tables:
            self.purge(match, deletions.get(match.table), policy, window, now)
        exports = self.remove_exports(hash_key, object_store)
        verification = self.verify()
        section = {**verification.to_dict(), "serving": {"targets": 0, "entities_remaining": 0}}
        self.record("verified", section)
        if not verification.passed:
            raise TerminalError(f"request {self.request.request_id}: the hand-off erasure could not be verified: "
                                f"{len(verification.findings)} findings, rows still found "
                                f"{verification.discovery_rows}; see the audit trail")
        payload = self.payload(hash_key, exports, section, started, issuer)
        completed = self.record("completed", {"rows_deleted": sum(t["rows_deleted"] for t in self.tables),
                                              "verified": True, "handoff": self.plan["engine"]})
        if self.trail is not None and completed is not None:
            payload["audit_trail"] = self.trail.anchor(completed).to_dict()
        return issue_certificate(payload, signing_key)

    def adopt(self, planned: Mapping[str, Any], match: TableMatch) -> ExternalDeletion:
        deletion = adopt_external_delete(self.catalog, planned, match, self.plan["engine"])
        self.record("deleted", {"table": deletion.table, "rows": deletion.rows_deleted,
                                "files_rewritten": deletion.files_rewritten, "branches": list(planned["branches"]),
                                "engine": {"name": deletion.engine, "named_in_snapshot": deletion.engine_seen,
                                           "erasure_snapshot": deletion.erasure_snapshot,
                                           "base_snapshot": deletion.base_snapshot,
                                           "snapshots": deletion.snapshots,
                                           "statement_mac": planned["statement_mac"]}})
        return deletion

    def purge(self, match: TableMatch, deletion: ExternalDeletion | None, policy: str, window: timedelta,
              now: datetime | None) -> None:
        from dativo_provider.privacy.purge import plan_purge

        purge = plan_purge(self.catalog, match.table, subject=match.row_filter(), request_id=self.request.request_id)
        done: dict[str, Any] = {"files_removed": 0, "snapshots_expired": 0, "refs_changed": []}
        if purge.dirty_files:
            result = purge.run(policy, window, now)  # type: ignore[arg-type]
            done = {"files_removed": result.files_removed, "snapshots_expired": result.snapshots_expired,
                    "refs_changed": result.refs_changed}
            self.record("purged", {"table": match.table, **done})
        entry = {"table": match.table, "via": match.via,
                 "rows_deleted": deletion.rows_deleted if deletion else 0,
                 "files_rewritten": deletion.files_rewritten if deletion else 0, **done,
                 "erasure_snapshot": deletion.erasure_snapshot if deletion else None}
        if deletion is not None:
            entry["engine"] = {"name": deletion.engine, "named_in_snapshot": deletion.engine_seen,
                               "snapshots": deletion.snapshots, "base_snapshot": deletion.base_snapshot}
        self.tables.append(entry)

    def remove_exports(self, hash_key: bytes, object_store: Any) -> int:
        # The same rule as our own erasure: Art. 17 covers the copies we handed out too.
        from dativo_provider.privacy.dsr import remove_earlier_exports

        removed = remove_earlier_exports(self.trail, hash_key, self.request, self.identifiers().values, object_store)
        if removed:
            self.record("deleted", {"exports_removed": len(removed)})
        return len(removed)

    def identifiers(self) -> Any:
        from dativo_provider.privacy.identifiers import is_blank
        from dativo_provider.privacy.matching import Identifiers

        found = cast("Discovery", self.found)
        values = {*self.request.subject_ids, *self.request.emails}
        for match in found.tables:
            for column_values in match.match.values():
                values.update(str(v) for v in column_values if not is_blank(v))
        columns = sorted({column for match in found.tables for column in match.match})
        return Identifiers(tuple(sorted(values)), columns=tuple(columns))

    def verify(self) -> Any:
        from dativo_provider.privacy.discovery import discover
        from dativo_provider.privacy.verify import verify_erased

        found = cast("Discovery", self.found)
        return verify_erased(self.catalog, sorted({m.table for m in found.tables}), self.identifiers(),
                             rediscover=lambda: discover(self.catalog, self.contracts, self.request).total_rows)

    def payload(self, hash_key: bytes, exports: int, verification: dict[str, Any], started: datetime,
                issuer: str) -> dict[str, Any]:
        from dativo_provider.privacy.certificate import request_section

        found = cast("Discovery", self.found)
        return {
            "request": request_section(self.request, hash_key),
            "tables": {t["table"]: {k: v for k, v in t.items() if k != "table"} for t in self.tables},
            "unidentifiable_tables": found.unidentifiable,
            "exports_removed": exports,
            "serving": [],
            "verification": verification,
            "handoff": {"engine": self.plan["engine"], "engine_catalog": self.plan["engine_catalog"]},
            "timestamps": {"received": self.request.received_at.isoformat(), "started": started.isoformat(),
                           "completed": datetime.now(UTC).isoformat()},
            "issuer": {"name": issuer},
        }

    def failed(self, exc: BaseException) -> None:
        """``failed`` in the trail, anchored; the message withheld when it names an identifier."""
        try:
            record = self.record("failed", {"error": type(exc).__name__, "message": str(exc)[:500]})
        except ConfigError:
            record = self.record("failed", {"error": type(exc).__name__, "message": "withheld: it contains a "
                                            "value equal to one of the subject's identifiers"})
        if self.trail is not None and record is not None:
            try:
                self.trail.anchor(record)
            except Exception as anchor_error:  # noqa: BLE001 - the request's own error is the one to raise
                log.warning("request %s: could not anchor the failed event: %s", self.request.request_id,
                            anchor_error)
