"""Table maintenance users can schedule: compact small files, expire snapshots, remove orphan files.

pyiceberg 0.12 expires snapshots in the metadata only and has no orphan-file removal, so a table
written every hour grows without bound, and a writer killed mid-write (SIGKILL, an OOM kill, a lost
node) leaves Parquet files no snapshot names. :func:`maintain_table` runs, in order:

1. **compaction** (opt-in): small data files rewritten per partition in the table's sort order, one
   ``overwrite`` commit (:mod:`dativo_provider.iceberg.compaction`);
2. **expiry**: snapshots older than ``expire_older_than`` and beyond the newest ``retain_last`` of each
   branch are expired. Never expired: the head of every tag and branch, every ancestor of the refs the
   caller protects, and each ingest source's newest state. A source's state is read by walking a
   branch's ancestry to the newest snapshot of that source (:mod:`dativo_provider.iceberg.state`), so
   when expiry would cut that walk, the state is first re-committed on top of the branch in an empty
   snapshot marked ``dativo.carried-from`` (as the erasure purge does); a run of the source in flight
   still commits. Such carriers do not count towards ``retain_last``. Training-set pins (branches
   under :data:`PINNED_REF_PREFIX`) keep their snapshot: as every ref head it is never expired, and
   this module sets no max-ref-age on a ref and never removes one (Iceberg's max-ref-age, which would
   drop a tag or branch once old, is not applied), and no state is ever carried onto a pin, so its
   head stays the snapshot the training set read.
3. **sweep** (:class:`~dativo_provider.iceberg.files.OrphanSweep`): files only the expired snapshots
   referenced and metadata files older than the current one are deleted at once; with
   ``remove_orphans`` every other file under the table location that no snapshot, statistics entry or
   metadata file reaches is deleted once older than ``orphan_safety_window`` -- long enough that no
   writer still running can have written it (a writer's files exist before its commit does).

Each step commits on freshly loaded metadata and retries a lost race with other writers.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import CommitConflictError, ConfigError
from dativo_provider.iceberg.commit import commit_with_retries, disable_builtin_retries, is_lost_race
from dativo_provider.iceberg.compaction import compact_table
from dativo_provider.iceberg.files import FILE_KINDS, ManifestCache, OrphanSweep, pyarrow_io
from dativo_provider.iceberg.state import CARRIED_FROM_KEY, SOURCE_KEY, carried_properties, read_state
from dativo_provider.progress import ProgressLog

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

_MB = 1024 * 1024
#: Carries plus lost races one expiry may go through before giving up.
#: Refs under this prefix pin a snapshot for a reader (:mod:`dativo_provider.ml.training_set`): only an
#: erasure commits to them, never maintenance.
PINNED_REF_PREFIX = "dativo-training/"
_MAX_ROUNDS = 40


@dataclass(frozen=True)
class Retention:
    """Which snapshots expiry keeps (see :func:`maintain_table` for each parameter)."""

    older_than: timedelta | None = timedelta(days=7)
    retain_last: int = 1
    protect_refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.retain_last < 1:
            raise ConfigError(f"retain_last is {self.retain_last}; it must be at least 1 (branch heads stay)")
        if self.older_than is not None and self.older_than < timedelta(0):
            raise ConfigError(f"expire_older_than is {self.older_than}; it must not be negative")


@dataclass
class MaintenanceResult:
    """What one maintenance run of one table changed.

    :param snapshots_expired: snapshots removed from the metadata.
    :param states_carried: ``source`` names (``branch:source`` off main) whose state was re-committed.
    :param files_removed: files deleted, by kind (data, manifest, manifest_list, statistics, metadata).
    :param bytes_reclaimed: bytes of every file deleted.
    :param orphans_kept_younger_than_window: unreachable files left because they are younger than the
        safety window; a later run removes them.
    :param files_compacted: small data files replaced by compaction; ``files_written`` took their place.
    """

    table: str
    snapshots_expired: int = 0
    states_carried: list[str] = field(default_factory=list)
    files_removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILE_KINDS, 0))
    bytes_reclaimed: int = 0
    orphans_kept_younger_than_window: int = 0
    files_compacted: int = 0
    files_written: int = 0
    partitions_compacted: int = 0
    bytes_compacted: int = 0
    compaction_snapshot_id: int | None = None
    snapshot_id: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def maintain_table(
    catalog: CatalogConfig,
    table: str,
    *,
    expire_snapshots: bool = True,
    expire_older_than: timedelta | None = timedelta(days=7),
    retain_last: int = 1,
    protect_refs: Sequence[str] = (),
    remove_orphans: bool = True,
    orphan_safety_window: timedelta = timedelta(days=3),
    compact: bool = False,
    target_file_size_mb: int = 128,
    small_file_size_mb: float | None = None,
    min_files_to_compact: int = 5,
    now: datetime | None = None,
) -> MaintenanceResult:
    """Compact, expire and sweep ``table`` (the module docstring gives the order and guarantees).

    :param expire_snapshots: False skips expiry (compaction and the orphan sweep still run).
    :param expire_older_than: snapshots younger than this are kept; None: age keeps nothing, so only
        ``retain_last`` (and the always-kept snapshots) remain.
    :param retain_last: the newest snapshots of each branch kept whatever their age (at least 1). A
        branch's own ``min-snapshots-to-keep`` / ``max-snapshot-age-ms`` override both, as in Iceberg.
    :param protect_refs: tags/branches whose snapshot and every ancestor are kept (e.g. a training-set tag).
    :param remove_orphans: delete unreachable files older than ``orphan_safety_window``.
    :param orphan_safety_window: longer than any write can take; younger unreachable files are kept.
    :param compact: rewrite small data files first.
    :param target_file_size_mb: compaction packs small files into files of about this size.
    :param small_file_size_mb: files below this are compacted (default three quarters of the target).
    :param min_files_to_compact: a partition is compacted once it has this many small files.
    :param now: the time ages count back from (default now; naive means UTC).
    :raises ConfigError: a parameter out of range (the message names it), or no such table.
    :raises CommitConflictError: other writers kept winning the commit race; rerunning is safe.
    """
    retention = Retention(expire_older_than, retain_last, tuple(protect_refs))
    _check(orphan_safety_window, target_file_size_mb, small_file_size_mb, min_files_to_compact)
    now = _aware(now or datetime.now(timezone.utc))
    with catalog.load() as iceberg:  # closing it releases a SQL catalog's pooled connections
        run = _Maintenance(iceberg, table, now)
        if compact:
            small = small_file_size_mb if small_file_size_mb is not None else target_file_size_mb * 0.75
            run.compact(int(target_file_size_mb * _MB), int(small * _MB), min_files_to_compact)
        if expire_snapshots:
            run.expire(retention)
        if remove_orphans or run.expired_files:
            run.sweep(orphan_safety_window, remove_orphans)
        return run.finish()


def _check(window: timedelta, target_mb: int, small_mb: float | None, min_files: int) -> None:
    if window < timedelta(0):
        raise ConfigError(f"orphan_safety_window is {window}; it must not be negative")
    if window < timedelta(hours=1):
        log.warning("orphan_safety_window is %s: a writer still running may lose files it has not "
                    "committed yet; use 0 only when no writer can be running", window)
    if target_mb < 1:
        raise ConfigError(f"target_file_size_mb is {target_mb}; it must be at least 1")
    if small_mb is not None and not 0 < small_mb <= target_mb:
        raise ConfigError(f"small_file_size_mb is {small_mb}; it must be above 0 and at most "
                          "target_file_size_mb")
    if min_files < 2:
        raise ConfigError(f"min_files_to_compact is {min_files}; it must be at least 2")


def _load(catalog: Catalog, name: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(name)
    except NoSuchTableError as exc:
        raise ConfigError(f"{name}: no such table in catalog {catalog.name!r}; nothing to maintain") from exc


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class _Maintenance:
    """One maintenance run: the table, what the steps found, and the result."""

    def __init__(self, catalog: Catalog, name: str, now: datetime) -> None:
        self.catalog = catalog
        self.name = name
        self.now = now
        self.started = time.monotonic()
        self.result = MaintenanceResult(table=name)
        self.table = _load(catalog, name)
        self.manifests = ManifestCache(self.table)
        self.expired_files: set[str] = set()

    def compact(self, target: int, small: int, min_files: int) -> None:
        compacted = compact_table(self.catalog, self.name, target_file_size=target, small_file_size=small,
                                  min_files=min_files)
        self.result.files_compacted = compacted.files_compacted
        self.result.files_written = compacted.files_written
        self.result.partitions_compacted = compacted.partitions_compacted
        self.result.bytes_compacted = compacted.bytes_compacted
        self.result.compaction_snapshot_id = compacted.snapshot_id

    def expire(self, retention: Retention) -> None:
        """Carry states the expiry would cut off, then expire in one commit (re-planned on a lost race)."""
        for protected in retention.protect_refs:
            if protected not in self.table.metadata.refs:
                log.warning("%s: protect_refs names %r, which is no tag or branch of this table", self.name,
                            protected)
        for _ in range(_MAX_ROUNDS):
            table = disable_builtin_retries(self.catalog.load_table(self.name))
            expired = expiry_plan(table.metadata, retention, self.now)
            lost = lost_states(table.metadata, expired)
            if lost:
                self._carry(*lost[0])
            elif not expired or self._commit_expiry(table, expired):
                return
        raise CommitConflictError(f"{self.name}: expiry lost the commit race {_MAX_ROUNDS} times; rerun")

    def _carry(self, branch: str, source: str, snapshot: Snapshot) -> None:
        def build(table: Table) -> Transaction | None:
            current = read_state(table, source, branch)
            if current is not None and current.snapshot_id != snapshot.snapshot_id:
                return None  # the source committed a newer state meanwhile
            transaction = table.transaction()
            properties = carried_properties(snapshot)
            with transaction.update_snapshot(snapshot_properties=properties, branch=branch).fast_append():
                pass
            return transaction

        commit_with_retries(self.catalog, self.name, build)
        carried = source if branch == "main" else f"{branch}:{source}"
        if carried not in self.result.states_carried:
            self.result.states_carried.append(carried)
        log.info("%s: state of %s re-committed on %s (snapshot %s would expire)", self.name, source, branch,
                 snapshot.snapshot_id)

    def _commit_expiry(self, table: Table, expired: set[int]) -> bool:
        """Expire ``expired`` on ``table``; False when another writer won the race."""
        from pyiceberg.table.update.snapshot import ExpireSnapshots

        progress = ProgressLog(log, f"{self.name}: reading expired snapshots", total=len(expired),
                               unit="snapshots")
        files = self.manifests.files_of(table.metadata, expired, progress)
        transaction = table.transaction()
        ExpireSnapshots(transaction).by_ids(sorted(expired)).commit()
        try:
            transaction.commit_transaction()
        except Exception as exc:
            if not is_lost_race(exc):
                raise
            log.warning("%s: expiry lost a commit race; planning again: %s", self.name, exc)
            time.sleep(random.uniform(0.05, 0.5))
            return False
        self.expired_files = files
        self.result.snapshots_expired = len(expired)
        log.info("%s: expired %d snapshots", self.name, len(expired))
        return True

    def sweep(self, window: timedelta, orphans: bool) -> None:
        location = pyarrow_io(self.table)
        swept = OrphanSweep(self.catalog, self.name, self.manifests, location).run(
            window, self.now, delete_at_once=self.expired_files, unknown_files=orphans)
        for kind, count in swept.removed.items():
            self.result.files_removed[kind] = self.result.files_removed.get(kind, 0) + count
        self.result.bytes_reclaimed += swept.bytes_removed
        self.result.orphans_kept_younger_than_window = swept.kept_younger_than_window

    def finish(self) -> MaintenanceResult:
        head = self.catalog.load_table(self.name).metadata.snapshot_by_name("main")
        self.result.snapshot_id = head.snapshot_id if head else None
        self.result.seconds = round(time.monotonic() - self.started, 3)
        log.info("%s: maintenance done: %s", self.name, self.result)
        return self.result


def expiry_plan(metadata: TableMetadata, retention: Retention, now: datetime) -> set[int]:
    """The snapshots ``retention`` lets go (heads of refs never among them); source states not considered."""
    cutoff = _ms(now - retention.older_than) if retention.older_than is not None else None
    keep: set[int] = set()
    for name, ref in metadata.refs.items():
        head = metadata.snapshot_by_id(ref.snapshot_id)
        if head is None:
            continue
        keep.add(ref.snapshot_id)
        if name in retention.protect_refs:
            keep.update(s.snapshot_id for s in _ancestors(head, metadata))
        elif ref.snapshot_ref_type.value == "branch":
            count = ref.min_snapshots_to_keep or retention.retain_last
            age = _ms(now) - ref.max_snapshot_age_ms if ref.max_snapshot_age_ms else cutoff
            keep |= _branch_kept(head, metadata, count, age)
    return {s.snapshot_id for s in metadata.snapshots
            if s.snapshot_id not in keep and (cutoff is None or s.timestamp_ms < cutoff)}


def _branch_kept(head: Snapshot, metadata: TableMetadata, count: int, cutoff: int | None) -> set[int]:
    """A branch's newest ``count`` snapshots (state carriers ride along uncounted) and those newer than
    ``cutoff``, walking from the head until a snapshot is neither."""
    kept: set[int] = set()
    counted = 0
    for snapshot in _ancestors(head, metadata):
        young = cutoff is not None and snapshot.timestamp_ms >= cutoff
        if counted >= count and not young:
            break
        kept.add(snapshot.snapshot_id)
        counted += _summary(snapshot, CARRIED_FROM_KEY) is None
    return kept


def lost_states(metadata: TableMetadata, expired: set[int]) -> list[tuple[str, str, Snapshot]]:
    """``(branch, source, snapshot)`` for each source whose newest state on a branch would no longer be
    found by :func:`~dativo_provider.iceberg.state.read_state` once ``expired`` are gone."""
    lost = []
    for name, ref in sorted(metadata.refs.items()):
        head = metadata.snapshot_by_id(ref.snapshot_id)
        if ref.snapshot_ref_type.value != "branch" or head is None or name.startswith(PINNED_REF_PREFIX):
            continue  # no source runs on a pin: a carried state would only move it off its snapshot
        seen: set[str] = set()
        cut = False
        for snapshot in _ancestors(head, metadata):
            cut = cut or snapshot.snapshot_id in expired
            source = _summary(snapshot, SOURCE_KEY)
            if source is not None and source not in seen:
                seen.add(source)
                if cut:
                    lost.append((name, source, snapshot))
    return lost


def _ancestors(snapshot: Snapshot, metadata: TableMetadata) -> Iterable[Snapshot]:
    from pyiceberg.table.snapshots import ancestors_of

    return ancestors_of(snapshot, metadata)


def _summary(snapshot: Snapshot, key: str) -> str | None:
    # ``in`` on pyiceberg's Summary model does not look at its properties: use get().
    return snapshot.summary.get(key) if snapshot.summary is not None else None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
