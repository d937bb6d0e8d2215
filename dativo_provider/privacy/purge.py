"""Erasure, step two: make a delete physical.

After :func:`~dativo_provider.privacy.erase.delete_rows` removed the subject's rows from every branch
head, the rows still live in older snapshots (time travel), in tags that pin them, in the data files
those snapshots reference, and in the lower/upper bounds that the delete's own manifests keep for the
files it deleted. pyiceberg 0.12 only removes snapshots from the metadata
(``maintenance.expire_snapshots``) and has no orphan-file removal, so the purge does, in order:

0. the *dirty* files: every data file in the table's retained history that holds a row the subject
   filter matches, found by decoding (:func:`~dativo_provider.privacy.history.files_holding`), plus
   the files the request's deletes removed and any the caller recorded on an earlier attempt; a
   snapshot is *tainted* when its manifests list a dirty file (live or as a deleted entry);
1. refs: tags (and branches created since the delete) whose head still holds dirty files fail the
   purge, or are removed or re-pointed to main's head, as the caller's policy says (checked before
   anything changes). A branch head the delete cleaned is never moved: its other rows stay;
2. state: each ingest source's newest ``dativo.state`` is re-committed on main in an empty snapshot
   when its snapshot, or one between it and main's head, is tainted: expiry would cut it off main's
   ancestry, where the next run looks for it (ADR 0002);
3. seal: an empty commit on each branch whose head lists dirty files only as deleted entries (the
   delete's own manifests, with their bounds);
4. expiry of every tainted snapshot. Snapshots that never held the subject stay: time travel to them
   keeps working;
5. the metadata log is cut to post-expiry metadata files;
6. the sweep: every file under the table's location that the remaining metadata does not reach is
   deleted -- at once if an expired snapshot referenced it, it is dirty, or it is an old metadata file,
   otherwise only once older than the safety window (a concurrent writer's files not committed yet).
   The metadata is reloaded after listing, so a commit landing meanwhile keeps its files.

Every step is idempotent: a purge interrupted anywhere and run again with the same arguments (and the
dirty files of the first attempt) ends in the same state.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.exceptions import CommitConflictError, ConfigError, TerminalError
from dativo_provider.iceberg.barrier import Contention
from dativo_provider.iceberg.commit import disable_builtin_retries, is_lost_race
from dativo_provider.iceberg.files import ManifestCache, OrphanSweep, pyarrow_io
from dativo_provider.iceberg.state import CARRIED_FROM_KEY, RUN_ID_KEY, SOURCE_KEY, STATE_KEY, read_state
from dativo_provider.privacy.erase import REQUEST_KEY, snapshot_property

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

RefsPolicy = Literal["fail", "remove", "repoint"]
REFS_POLICIES: tuple[str, ...] = ("fail", "remove", "repoint")
#: Summary property of the snapshots the purge commits: the request it purged for.
PURGE_KEY = "dativo.dsr-purge"
#: Summary property of a state-carrying snapshot: the snapshot whose state it repeats.
_LOG_MAX = "write.metadata.previous-versions-max"
_ATTEMPTS = 40


class RefsPinErasedDataError(TerminalError):
    """Tags or branches pin snapshots that still hold the erased rows and the policy is ``fail``."""

    def __init__(self, table: str, refs: list[dict[str, Any]]) -> None:
        listed = ", ".join(f"{r['kind']} {r['ref']!r} (snapshot {r['from_snapshot']})" for r in refs)
        super().__init__(
            f"{table}: {listed} pin data from before the erasure; nothing was changed. Drop or move them, or "
            "purge again with refs_policy='remove' or 'repoint' to have the purge do it (recorded)."
        )
        self.refs = refs


class PurgeIncompleteError(TerminalError):
    """After the purge a snapshot still lists a file the erasure deleted: the erasure is not physical."""


@dataclass
class PurgeResult:
    """What the purge changed.

    :param refs_changed: one entry per tag/branch handled: ``ref``, ``kind`` (tag/branch),
        ``from_snapshot``, ``to_snapshot`` (None when removed).
    :param files_removed: data, delete, manifest, manifest-list and statistics files deleted.
    :param metadata_files_removed: table metadata JSON files deleted.
    :param state_carried: sources whose newest state was re-committed on main.
    :param dirty_files: the files found holding the subject (paths only): pass them to a rerun.
    :param kept_files_younger_than_window: unreferenced files left alone because they are younger
        than the safety window (possibly a concurrent writer's); a later purge removes them.
    """

    table: str
    refs_changed: list[dict[str, Any]] = field(default_factory=list)
    snapshots_expired: int = 0
    files_removed: int = 0
    bytes_removed: int = 0
    metadata_files_removed: int = 0
    state_carried: list[str] = field(default_factory=list)
    kept_files_younger_than_window: int = 0
    dirty_files: list[str] = field(default_factory=list, repr=False)


def purge_table(
    catalog: CatalogConfig,
    table: str,
    *,
    subject: BooleanExpression,
    request_id: str | None = None,
    dirty_files: Iterable[str] = (),
    refs_policy: RefsPolicy = "fail",
    safety_window: timedelta = timedelta(minutes=30),
    now: datetime | None = None,
) -> PurgeResult:
    """Remove every trace of the rows ``subject`` matches from ``table``'s history and storage.

    :param subject: the filter the erasure deleted with (``Discovery.row_filter(table)``).
    :param request_id: the erasure's request: files its deletes removed are dirty, and the purge's own
        snapshots are marked with it.
    :param dirty_files: files an earlier attempt found dirty (:attr:`PurgeResult.dirty_files`): once
        expiry committed they are unreachable, and only this list says they go at once.
    :param refs_policy: for tags (and branches) pinning the subject's rows: ``fail`` raises before any
        change, ``remove`` drops them, ``repoint`` moves them to main's head.
    :param safety_window: unreferenced files of unknown origin younger than this are kept.
    :param now: the time the safety window counts back from (default: now; naive means UTC).
    :raises RefsPinErasedDataError: policy ``fail`` and refs pin the subject's rows; nothing changed.
    :raises ConfigError: bad policy.
    :raises PurgeIncompleteError: the purge ran but a branch head still holds the subject's rows or a
        remaining snapshot still lists a dirty file.
    :raises CommitConflictError: other writers kept winning the commit race; rerunning is safe.
    """
    return plan_purge(catalog, table, subject=subject, request_id=request_id,
                      dirty_files=dirty_files).run(refs_policy, safety_window, now)


def plan_purge(catalog: CatalogConfig, table: str, *, subject: BooleanExpression, request_id: str | None = None,
               dirty_files: Iterable[str] = ()) -> PurgePlan:
    """Find the files holding the subject (decoding the table's history) without changing anything.

    Record :attr:`PurgePlan.dirty_files` before :meth:`PurgePlan.run`: a purge interrupted after its
    expiry committed needs them to finish. Parameters as :func:`purge_table`.
    """
    return PurgePlan(catalog.load(), table, subject, request_id, set(dirty_files))


def stale_refs(catalog: CatalogConfig, table: str, subject: BooleanExpression) -> list[dict[str, Any]]:
    """Tags and branches other than main whose head holds a row ``subject`` matches (nothing changes).

    Branch heads are cleaned by :func:`~dativo_provider.privacy.erase.delete_rows`; what this returns
    is what a purge would apply its refs policy to, checked before anything is deleted.
    """
    from dativo_provider.privacy.history import files_holding

    loaded = catalog.load().load_table(table)
    manifests = ManifestCache(loaded)
    dirty = set(files_holding(loaded, subject))
    return [{"ref": name, "kind": ref.snapshot_ref_type.value, "from_snapshot": ref.snapshot_id}
            for name, ref in sorted(loaded.metadata.refs.items())
            if name != "main" and _live_dirty(manifests, loaded.metadata.snapshot_by_id(ref.snapshot_id), dirty)]


class PurgePlan:
    """One purge: the table, the files that hold the subject (:attr:`dirty_files`), and what the steps share."""

    def __init__(self, catalog: Catalog, name: str, subject: BooleanExpression, request_id: str | None,
                 dirty: set[str]) -> None:
        from dativo_provider.privacy.history import files_holding

        self.catalog = catalog
        self.name = name
        self.request_id = request_id
        self.marker = request_id or "purge"
        self.result = PurgeResult(table=name)
        self.table = catalog.load_table(name)
        self.io = pyarrow_io(self.table)
        self.manifests = ManifestCache(self.table)
        self.known_metadata: set[str] = set()
        self.expired_files: set[str] = set()
        self._observe(self.table)
        self._dirty_manifests: dict[str, bool] = {}
        self.dirty = dirty | set(files_holding(self.table, subject)) | self._deleted_by_request()
        self.result.dirty_files = sorted(self.dirty)

    @property
    def dirty_files(self) -> list[str]:
        return sorted(self.dirty)

    def run(self, policy: RefsPolicy = "fail", window: timedelta = timedelta(minutes=30),
            now: datetime | None = None) -> PurgeResult:
        """Carry out the purge (steps 1-6 of the module doc); see :func:`purge_table`."""
        if policy not in REFS_POLICIES:
            raise ConfigError(f"refs_policy is {policy!r}; expected one of {REFS_POLICIES}")
        now = now or datetime.now(timezone.utc)
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        with Contention(self.catalog, self.name, self.marker) as self.contention:
            return self._run(policy, window, now)

    def _run(self, policy: RefsPolicy, window: timedelta, now: datetime) -> PurgeResult:
        started = time.monotonic()
        self._check_main()
        stale = self._stale_refs(self.table)
        if stale and policy == "fail":
            raise RefsPinErasedDataError(self.name, stale)
        states = _source_states(self.table)
        self._carry_states(states)
        self._seal_branches()
        self._change_refs_and_expire(policy)
        self._trim_metadata_log()
        _sweep(self, window, now)
        self._verify(states)
        log.info("%s: purge (%d dirty files) done in %.1fs: %s", self.name, len(self.dirty),
                 time.monotonic() - started, self.result)
        return self.result

    # --- what holds the subject ---------------------------------------------------------------

    def _deleted_by_request(self) -> set[str]:
        """Files the request's own delete snapshots removed (on any branch)."""
        if self.request_id is None:
            return set()
        return {path for s in self.table.metadata.snapshots
                if snapshot_property(s, REQUEST_KEY) == self.request_id for path in self.manifests.deleted_by(s)}

    def _tainted(self, metadata: TableMetadata) -> set[int]:
        """Snapshots whose manifests list a dirty file: they may return the rows or keep their bounds.

        Decided per distinct manifest, once: snapshots of a busy table share most of their manifests.
        """
        def dirty_manifest(manifest: Any) -> bool:
            path = manifest.manifest_path
            if path not in self._dirty_manifests:
                self._dirty_manifests[path] = any(p in self.dirty for _, _, p in self.manifests.entries(manifest))
            return self._dirty_manifests[path]

        return {s.snapshot_id for s in metadata.snapshots if any(map(dirty_manifest, self.manifests.manifests(s)))}

    def _stale_refs(self, table: Table) -> list[dict[str, Any]]:
        """Refs other than main whose head still holds dirty files live (a cleaned head only needs a seal)."""
        return [{"ref": name, "kind": ref.snapshot_ref_type.value, "from_snapshot": ref.snapshot_id}
                for name, ref in sorted(table.metadata.refs.items())
                if name != "main" and _live_dirty(self.manifests, table.metadata.snapshot_by_id(ref.snapshot_id),
                                                  self.dirty)]

    # --- commits ------------------------------------------------------------------------------

    def _commit(self, build: Callable[[Table], Transaction | None]) -> Table:
        """Build a transaction on freshly loaded metadata and commit it, retrying lost races."""
        for attempt in range(1, _ATTEMPTS + 1):
            table = self.catalog.load_table(self.name)
            self._observe(table)
            disable_builtin_retries(table)
            transaction = build(table)
            if transaction is None:
                return table
            try:
                committed = transaction.commit_transaction()
            except Exception as exc:
                if not is_lost_race(exc):
                    raise
                log.warning("%s: purge commit lost a race (attempt %d/%d): %s", self.name, attempt,
                            _ATTEMPTS, exc)
                self.contention.lost()
                # Right after losing is the best time to try again: the winner has just committed.
                time.sleep(random.uniform(0, min(0.01 * attempt, 0.2)))
                continue
            self._observe(committed)
            self.table = committed
            return committed
        raise CommitConflictError(f"{self.name}: other writers won the commit race {_ATTEMPTS} times; "
                                  "rerun the purge")

    def _observe(self, table: Table) -> None:
        """Remember every metadata file seen: once unreferenced, they may be deleted at once."""
        self.known_metadata.add(table.metadata_location)
        self.known_metadata.update(entry.metadata_file for entry in table.metadata.metadata_log)

    def _carry_states(self, states: dict[str, Snapshot]) -> None:
        """Re-commit on main each source's newest state that sits in a tainted snapshot."""
        for source, snapshot in states.items():
            self._commit(functools.partial(self._carry_one, source=source, original=snapshot))

    def _carry_one(self, table: Table, source: str, original: Snapshot) -> Transaction | None:
        current = read_state(table, source)
        if current is not None and not self._cut_off(table, current.snapshot_id):
            return None  # clean, carried on an earlier attempt, or the source committed again meanwhile
        keys = (SOURCE_KEY, STATE_KEY, RUN_ID_KEY)
        properties = {k: value for k in keys if (value := snapshot_property(original, k)) is not None}
        properties |= {CARRIED_FROM_KEY: str(original.snapshot_id), PURGE_KEY: self.marker}
        if source not in self.result.state_carried:
            self.result.state_carried.append(source)
        return _empty_commit(table, properties, "main")

    def _cut_off(self, table: Table, snapshot_id: int) -> bool:
        """Whether expiry takes ``snapshot_id`` out of main's ancestry: it, or a snapshot between it and
        main's head, is tainted (states are read by walking the ancestry, which stops at a gap)."""
        tainted = self._tainted(table.metadata)
        for snapshot in _ancestors(table.metadata.snapshot_by_name("main"), table.metadata):
            if snapshot.snapshot_id in tainted:
                return True
            if snapshot.snapshot_id == snapshot_id:
                return False
        return True

    def _seal_branches(self) -> None:
        """An empty commit on every branch whose cleaned head still lists dirty files as deleted entries."""
        branches = [name for name, ref in sorted(self.table.metadata.refs.items())
                    if ref.snapshot_ref_type.value == "branch"]
        for branch in branches:
            self._commit(functools.partial(self._seal, branch=branch))

    def _seal(self, table: Table, branch: str) -> Transaction | None:
        head = table.metadata.snapshot_by_name(branch)
        if (head is None or head.snapshot_id not in self._tainted(table.metadata)
                or _live_dirty(self.manifests, head, self.dirty)):
            return None
        return _empty_commit(table, {PURGE_KEY: self.marker}, branch)

    def _change_refs_and_expire(self, policy: RefsPolicy) -> None:
        """One transaction: handle stale refs, then expire every tainted snapshot."""
        def build(table: Table) -> Transaction | None:
            from pyiceberg.table.update.snapshot import ExpireSnapshots, ManageSnapshots

            stale = self._stale_refs(table)
            if stale and policy == "fail":
                raise RefsPinErasedDataError(self.name, stale)
            transaction = table.transaction()
            refs = ManageSnapshots(transaction)
            main = table.metadata.snapshot_by_name("main")
            assert main is not None  # a purge runs only after a delete committed on main
            head = main.snapshot_id
            for ref in stale:
                self._change_ref(table, refs, ref, policy, head)
            refs.commit()
            tainted = sorted(self._tainted(table.metadata))
            self.expired_files = self.manifests.files_of(table.metadata, tainted)
            self.result.refs_changed = stale
            self.result.snapshots_expired = len(tainted)
            if not tainted and not stale:
                return None
            expire = ExpireSnapshots(transaction)
            # by_ids re-derives the transaction's metadata (a deep copy) twice per id, which on a busy table
            # takes seconds; the ids were just computed on this metadata, and commit() still leaves out
            # every ref head.
            expire._snapshot_ids_to_expire.update(tainted)
            expire.commit()
            return transaction

        self._commit(build)

    @staticmethod
    def _change_ref(table: Table, refs: Any, ref: dict[str, Any], policy: RefsPolicy, head: int) -> None:
        """Stage removing ``ref``, or moving it to ``head`` with its retention settings; record it."""
        name, current = ref["ref"], table.metadata.refs[ref["ref"]]
        is_tag = ref["kind"] == "tag"
        refs.remove_tag(name) if is_tag else refs.remove_branch(name)
        ref["to_snapshot"] = None if policy == "remove" else head
        if policy == "remove":
            return
        if is_tag:
            refs.create_tag(head, name, current.max_ref_age_ms)
        else:
            refs.create_branch(head, name, current.max_ref_age_ms, current.max_snapshot_age_ms,
                               current.min_snapshots_to_keep)

    def _trim_metadata_log(self) -> None:
        """Keep only post-expiry metadata files in the log: log length 1, then the user's setting back."""
        original = self.table.metadata.properties.get(_LOG_MAX)
        self._commit(lambda table: table.transaction().set_properties({_LOG_MAX: "1"}))

        def restore(table: Table) -> Transaction:
            if original is None:
                return table.transaction().remove_properties(_LOG_MAX)
            return table.transaction().set_properties({_LOG_MAX: original})

        self._commit(restore)

    def _verify(self, states: dict[str, Snapshot]) -> None:
        table = self.catalog.load_table(self.name)
        leaking = sorted(self._tainted(table.metadata))
        if leaking:
            raise PurgeIncompleteError(
                f"{self.name}: snapshots {leaking} still list files that hold the subject's rows (a branch "
                "created during the erasure, or manifests written by another engine?); erase and purge again")
        lost = [source for source in states if read_state(table, source) is None]
        if lost:
            raise PurgeIncompleteError(f"{self.name}: the state of {lost} did not survive the purge")

    def _check_main(self) -> None:
        head = self.table.metadata.snapshot_by_name("main")
        if head is not None and _live_dirty(self.manifests, head, self.dirty):
            raise PurgeIncompleteError(f"{self.name}: main's head still holds the subject's rows; run the "
                                       "delete (delete_rows) before the purge")


def _sweep(purge: PurgePlan, window: timedelta, now: datetime) -> None:
    """The purge's sweep: dirty files, files of expired snapshots and metadata files seen during the purge
    go at once."""
    sweep = OrphanSweep(purge.catalog, purge.name, purge.manifests, purge.io)
    swept = sweep.run(window, now, delete_at_once=purge.expired_files | purge.known_metadata | purge.dirty)
    result = purge.result
    result.files_removed += swept.files_removed
    result.metadata_files_removed += swept.metadata_files_removed
    result.bytes_removed += swept.bytes_removed
    result.kept_files_younger_than_window += swept.kept_younger_than_window


def _source_states(table: Table) -> dict[str, Snapshot]:
    """The newest snapshot of each ingest source in main's ancestry."""
    head = table.metadata.snapshot_by_name("main")
    states: dict[str, Snapshot] = {}
    for snapshot in _ancestors(head, table.metadata) if head else ():
        source = snapshot_property(snapshot, SOURCE_KEY)
        if source is not None and source not in states:
            states[source] = snapshot
    return states


def _empty_commit(table: Table, properties: dict[str, str], branch: str) -> Transaction:
    """A transaction adding one snapshot on ``branch`` with no new files (drops manifests with no live file)."""
    transaction = table.transaction()
    with transaction.update_snapshot(snapshot_properties=properties, branch=branch).fast_append():
        pass
    return transaction


def _live_dirty(manifests: ManifestCache, snapshot: Snapshot | None, dirty: set[str]) -> bool:
    """Whether ``snapshot`` can still return a dirty file's rows (lists one as live)."""
    return snapshot is not None and bool(manifests.live_files(snapshot) & dirty)


def _ancestors(snapshot: Snapshot | None, metadata: TableMetadata) -> Iterable[Snapshot]:
    from pyiceberg.table.snapshots import ancestors_of

    return ancestors_of(snapshot, metadata)
