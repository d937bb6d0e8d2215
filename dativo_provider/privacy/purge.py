"""Erasure, step two: make a delete physical.

After :func:`~dativo_provider.privacy.erase.delete_rows` committed the erasure snapshot E on main, the
subject's rows still live in every older snapshot (time travel), in tags and branches that pin them,
in the data files those snapshots reference, and in the lower/upper bounds that E's own manifests
keep for the files it deleted. pyiceberg 0.12 only removes snapshots from the metadata
(``maintenance.expire_snapshots``) and has no orphan-file removal, so the purge does, in order:

1. refs: tags and branches that pin data from before the erasure fail the purge, or are removed or
   re-pointed to main's head, as the caller's policy says (checked before anything changes);
2. state: each ingest source's newest ``dativo.state`` is re-committed on main in an empty snapshot
   (ADR 0002), which also drops E's manifests of deleted entries from main's head;
3. expiry of every *tainted* snapshot: one that does not descend from E, or whose manifests still
   list a file the erasure deleted;
4. the metadata log is cut to post-expiry metadata files;
5. the sweep: every file under the table's location that the remaining metadata does not reach is
   deleted -- at once if an expired snapshot referenced it or it is an old metadata file, otherwise
   only once older than the safety window (a concurrent writer's files not committed yet). The
   metadata is reloaded after listing, so a commit landing meanwhile keeps its files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.exceptions import CommitConflictError, ConfigError, TerminalError
from dativo_provider.iceberg.commit import disable_builtin_retries, is_lost_race
from dativo_provider.iceberg.files import ManifestCache, OrphanSweep, pyarrow_io
from dativo_provider.iceberg.state import CARRIED_FROM_KEY, RUN_ID_KEY, SOURCE_KEY, STATE_KEY, read_state
from dativo_provider.privacy.erase import REQUEST_KEY

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

RefsPolicy = Literal["fail", "remove", "repoint"]
REFS_POLICIES: tuple[str, ...] = ("fail", "remove", "repoint")
#: Summary property of the snapshots the purge commits: the erasure snapshot it purged after.
PURGE_KEY = "dativo.dsr-purge"
#: Summary property of a state-carrying snapshot: the snapshot whose state it repeats.
_LOG_MAX = "write.metadata.previous-versions-max"
_ATTEMPTS = 10


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


def purge_table(
    catalog: CatalogConfig,
    table: str,
    *,
    erased_snapshot_id: int,
    refs_policy: RefsPolicy = "fail",
    safety_window: timedelta = timedelta(minutes=30),
    now: datetime | None = None,
) -> PurgeResult:
    """Remove every trace of the rows erased by snapshot ``erased_snapshot_id`` from ``table``.

    :param erased_snapshot_id: main's head after the delete (``TableDeletion.snapshot_id``); it must be
        an ancestor of (or equal to) main's head.
    :param refs_policy: for tags/branches pinning pre-erasure data: ``fail`` raises before any change,
        ``remove`` drops them, ``repoint`` moves them to main's head.
    :param safety_window: unreferenced files of unknown origin younger than this are kept.
    :param now: the time the safety window counts back from (default: now; naive means UTC).
    :raises RefsPinErasedDataError: policy ``fail`` and refs pin pre-erasure data; nothing changed.
    :raises ConfigError: bad policy, or the snapshot is not on main.
    :raises PurgeIncompleteError: the purge ran but a remaining snapshot still lists an erased file.
    :raises CommitConflictError: other writers kept winning the commit race; rerunning is safe.
    """
    if refs_policy not in REFS_POLICIES:
        raise ConfigError(f"refs_policy is {refs_policy!r}; expected one of {REFS_POLICIES}")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    purge = _Purge(catalog.load(), table, erased_snapshot_id)
    return purge.run(refs_policy, safety_window, now)


class _Purge:
    """One purge: the table, what the erasure deleted, and what the steps share."""

    def __init__(self, catalog: Catalog, name: str, erased: int) -> None:
        self.catalog = catalog
        self.name = name
        self.erased = erased
        self.result = PurgeResult(table=name)
        self.table = catalog.load_table(name)
        self.io = pyarrow_io(self.table)
        self.manifests = ManifestCache(self.table)
        self.known_metadata: set[str] = set()
        self.expired_files: set[str] = set()
        self._observe(self.table)
        self.erased_files = self._erased_files()

    def run(self, policy: RefsPolicy, window: timedelta, now: datetime) -> PurgeResult:
        started = time.monotonic()
        stale = self._stale_refs(self.table)
        if stale and policy == "fail":
            raise RefsPinErasedDataError(self.name, stale)
        states = _source_states(self.table)
        self._carry_states(states)
        self._change_refs_and_expire(policy)
        self._trim_metadata_log()
        _sweep(self, window, now)
        self._verify(states)
        log.info("%s: purge after snapshot %s done in %.1fs: %s", self.name, self.erased,
                 time.monotonic() - started, self.result)
        return self.result

    # --- what the erasure touched -------------------------------------------------------------

    def _erased_files(self) -> set[str]:
        """Files the erasure's snapshots (E and its parents from the same request) deleted."""
        metadata = self.table.metadata
        head = metadata.snapshot_by_name("main")
        erasure = metadata.snapshot_by_id(self.erased)
        if erasure is None or head is None or self.erased not in _ancestor_ids(head, metadata):
            raise ConfigError(f"{self.name}: snapshot {self.erased} is not on main; pass the erasure's "
                              "TableDeletion.snapshot_id")
        request = (erasure.summary or {}).get(REQUEST_KEY)
        erased: set[str] = set()
        for snapshot in _ancestors(erasure, metadata):
            if snapshot.snapshot_id != self.erased and (request is None or
                                                        (snapshot.summary or {}).get(REQUEST_KEY) != request):
                break
            erased |= self.manifests.deleted_by(snapshot)
        return erased

    def _tainted(self, metadata: TableMetadata) -> set[int]:
        """Snapshots that may return erased rows or still list erased files (with their bounds)."""
        descends: dict[int, bool] = {}
        return {s.snapshot_id for s in metadata.snapshots
                if not _descends_from(s, self.erased, metadata, descends)
                or self.manifests.mentions(s, self.erased_files)}

    def _stale_refs(self, table: Table) -> list[dict[str, Any]]:
        tainted = self._tainted(table.metadata)
        return [{"ref": name, "kind": ref.snapshot_ref_type.value, "from_snapshot": ref.snapshot_id}
                for name, ref in sorted(table.metadata.refs.items())
                if name != "main" and ref.snapshot_id in tainted]

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
                time.sleep(min(0.05 * 2**attempt, 2.0))
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
        """Re-commit each source's newest state on main; make sure main's head is clean."""
        for source, snapshot in states.items():
            self._commit(lambda table, s=source, o=snapshot: self._carry_one(table, s, o))
        self._commit(self._seal)

    def _carry_one(self, table: Table, source: str, original: Snapshot) -> Transaction | None:
        current = read_state(table, source)
        if current is not None and current.snapshot_id not in self._tainted(table.metadata):
            return None  # carried on an earlier attempt, or the source committed again meanwhile
        summary = original.summary or {}
        keys = (SOURCE_KEY, STATE_KEY, RUN_ID_KEY)
        properties = {k: summary[k] for k in keys if summary.get(k) is not None}
        properties |= {CARRIED_FROM_KEY: str(original.snapshot_id), PURGE_KEY: str(self.erased)}
        if source not in self.result.state_carried:
            self.result.state_carried.append(source)
        return _empty_commit(table, properties)

    def _seal(self, table: Table) -> Transaction | None:
        """An empty commit on main when its head still lists erased files (E's deleted entries)."""
        head = table.metadata.snapshot_by_name("main")
        if head is None or head.snapshot_id not in self._tainted(table.metadata):
            return None
        return _empty_commit(table, {PURGE_KEY: str(self.erased)})

    def _change_refs_and_expire(self, policy: RefsPolicy) -> None:
        """One transaction: handle stale refs, then expire every tainted snapshot."""
        def build(table: Table) -> Transaction | None:
            from pyiceberg.table.update.snapshot import ExpireSnapshots, ManageSnapshots

            stale = self._stale_refs(table)
            if stale and policy == "fail":
                raise RefsPinErasedDataError(self.name, stale)
            transaction = table.transaction()
            refs = ManageSnapshots(transaction)
            head = table.metadata.snapshot_by_name("main").snapshot_id
            for ref in stale:
                self._change_ref(table, refs, ref, policy, head)
            refs.commit()
            tainted = sorted(self._tainted(table.metadata))
            self.expired_files = self._files_of(table.metadata, tainted)
            self.result.refs_changed = stale
            self.result.snapshots_expired = len(tainted)
            ExpireSnapshots(transaction).by_ids(tainted).commit()
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

    def _files_of(self, metadata: TableMetadata, snapshot_ids: Iterable[int]) -> set[str]:
        """Every file the given snapshots reference: lists, manifests, entries, statistics."""
        ids = set(snapshot_ids)
        files: set[str] = set()
        for snapshot in metadata.snapshots:
            if snapshot.snapshot_id in ids:
                files |= self.manifests.all_files(snapshot)
        files.update(s.statistics_path for s in [*metadata.statistics, *metadata.partition_statistics]
                     if s.snapshot_id in ids)
        return files

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
        leaking = [s.snapshot_id for s in table.metadata.snapshots
                   if self.manifests.mentions(s, self.erased_files)]
        if leaking:
            raise PurgeIncompleteError(
                f"{self.name}: snapshots {leaking} still list files the erasure deleted (manifests "
                "written by another engine?); rewrite their manifests and purge again")
        lost = [source for source in states if read_state(table, source) is None]
        if lost:
            raise PurgeIncompleteError(f"{self.name}: the state of {lost} did not survive the purge")


def _sweep(purge: _Purge, window: timedelta, now: datetime) -> None:
    """The purge's sweep: files of expired snapshots and metadata files seen during the purge go at once."""
    sweep = OrphanSweep(purge.catalog, purge.name, purge.manifests, purge.io)
    swept = sweep.run(window, now, delete_at_once=purge.expired_files | purge.known_metadata)
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
        source = (snapshot.summary or {}).get(SOURCE_KEY)
        if source is not None and source not in states:
            states[source] = snapshot
    return states


def _empty_commit(table: Table, properties: dict[str, str]) -> Transaction:
    """A transaction adding one snapshot on main with no new files (drops manifests with no live file)."""
    transaction = table.transaction()
    with transaction.update_snapshot(snapshot_properties=properties, branch="main").fast_append():
        pass
    return transaction


def _ancestors(snapshot: Snapshot, metadata: TableMetadata) -> Iterable[Snapshot]:
    from pyiceberg.table.snapshots import ancestors_of

    return ancestors_of(snapshot, metadata)


def _ancestor_ids(snapshot: Snapshot, metadata: TableMetadata) -> set[int]:
    return {s.snapshot_id for s in _ancestors(snapshot, metadata)}


def _descends_from(snapshot: Snapshot, ancestor: int, metadata: TableMetadata, memo: dict[int, bool]) -> bool:
    """Whether ``ancestor`` is ``snapshot`` or one of its ancestors (memoised walk)."""
    path = []
    found = False
    current: Snapshot | None = snapshot
    while current is not None:
        if current.snapshot_id in memo:
            found = memo[current.snapshot_id]
            break
        path.append(current.snapshot_id)
        if current.snapshot_id == ancestor:
            found = True
            break
        parent = current.parent_snapshot_id
        current = metadata.snapshot_by_id(parent) if parent is not None else None
    for snapshot_id in path:
        memo[snapshot_id] = found
    return found
