"""The files of an Iceberg table: which ones its metadata reaches, and removing the others.

Shared by the erasure purge (:mod:`dativo_provider.privacy.purge`) and table maintenance
(:mod:`dativo_provider.iceberg.maintenance`). pyiceberg 0.12 expires snapshots in the metadata only
and has no orphan-file removal: a file no remaining snapshot, statistics entry or metadata file names
stays on disk until :class:`OrphanSweep` deletes it.

Concurrent writers are the danger: a writer's data files, manifests and next ``metadata.json`` exist
before its commit does. The sweep therefore lists first and loads the metadata afterwards (a commit
landing in between keeps its files), and removes unknown files only once they are older than a
safety window -- except old metadata files, which are known to be dead by their version number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from dativo_provider.progress import ProgressLog

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot

log = logging.getLogger(__name__)

#: ``00012-<uuid>.metadata.json`` (pyiceberg, Java; ``…gz.metadata.json`` compressed), ``v12.metadata.json``.
_METADATA_VERSION = re.compile(r"^(?:(\d+)-.+|v(\d+))\.metadata\.json$")
#: Kinds of files :func:`file_kind` tells apart, in report order.
FILE_KINDS = ("data", "manifest", "manifest_list", "statistics", "metadata")


class TableLocation(NamedTuple):
    """The pyarrow file system of a table's location (configured like the table's FileIO), the
    location as a path in it, and a function mapping any location (``s3://…``) to such a path."""

    fs: pafs.FileSystem
    root: str
    to_path: Callable[[str], str]


def pyarrow_io(table: Table) -> TableLocation:
    """The :class:`TableLocation` of ``table``."""
    from dativo_provider.objectstore import table_filesystem

    return TableLocation(*table_filesystem(table.io.properties, table.metadata.location))


def list_files(fs: pafs.FileSystem, root: str) -> dict[str, pafs.FileInfo]:
    """Every file under ``root`` by path, with size and modification time."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    return {info.path: info for info in fs.get_file_info(selector) if info.type == pafs.FileType.File}


def file_kind(path: str) -> str:
    """One of :data:`FILE_KINDS`, told by the file's name (what Iceberg writers call their files)."""
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".metadata.json") or name == "version-hint.text":
        return "metadata"
    if name.endswith((".puffin", ".stats")):
        return "statistics"
    if name.endswith(".avro") and "/metadata/" in path:
        return "manifest_list" if name.startswith("snap-") else "manifest"
    return "data"


def metadata_version(location: str) -> int | None:
    """The version number in a metadata file's name; None for a name that carries none."""
    match = _METADATA_VERSION.match(location.rsplit("/", 1)[-1])
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


class ManifestCache:
    """Manifest lists and manifests of a table, each read once (they never change once written)."""

    def __init__(self, table: Table) -> None:
        self.io = table.io
        self._lists: dict[str, list[Any]] = {}
        self._entries: dict[str, list[tuple[int, int | None, str]]] = {}

    def manifests(self, snapshot: Snapshot) -> list[Any]:
        """The manifest files of ``snapshot``'s manifest list."""
        if snapshot.manifest_list not in self._lists:
            self._lists[snapshot.manifest_list] = snapshot.manifests(self.io)
        return self._lists[snapshot.manifest_list]

    def entries(self, manifest: Any) -> list[tuple[int, int | None, str]]:
        """(status, snapshot id, file path) of every entry, deleted ones included."""
        if manifest.manifest_path not in self._entries:
            self._entries[manifest.manifest_path] = [
                (int(e.status), e.snapshot_id, e.data_file.file_path)
                for e in manifest.fetch_manifest_entry(self.io, discard_deleted=False)
            ]
        return self._entries[manifest.manifest_path]

    def deleted_by(self, snapshot: Snapshot) -> set[str]:
        """Files ``snapshot`` itself deleted (its manifests' DELETED entries with its id)."""
        return {path for m in self.manifests(snapshot) for status, sid, path in self.entries(m)
                if status == 2 and sid == snapshot.snapshot_id}

    def mentions(self, snapshot: Snapshot, paths: set[str]) -> bool:
        """Whether any manifest of ``snapshot`` has an entry (live or deleted) for one of ``paths``."""
        return any(path in paths for m in self.manifests(snapshot) for _, _, path in self.entries(m))

    def live_files(self, snapshot: Snapshot) -> set[str]:
        """The manifest list, manifests, and files live in ``snapshot`` (not its deleted entries)."""
        files = {snapshot.manifest_list}
        for manifest in self.manifests(snapshot):
            files.add(manifest.manifest_path)
            files.update(path for status, _, path in self.entries(manifest) if status != 2)
        return files

    def all_files(self, snapshot: Snapshot) -> set[str]:
        """The manifest list, manifests, and every file their entries name, deleted ones included."""
        files = {snapshot.manifest_list}
        for manifest in self.manifests(snapshot):
            files.add(manifest.manifest_path)
            files.update(path for _, _, path in self.entries(manifest))
        return files

    def files_of(self, metadata: TableMetadata, snapshot_ids: Iterable[int],
                 progress: ProgressLog | None = None) -> set[str]:
        """Every file the given snapshots reference: lists, manifests, entries, statistics.

        :param progress: advanced once per snapshot read (reading manifests is the slow part).
        """
        ids = set(snapshot_ids)
        files: set[str] = set()
        seen: set[str] = set()
        for snapshot in metadata.snapshots:
            if snapshot.snapshot_id in ids:
                files.add(snapshot.manifest_list)
                for manifest in self.manifests(snapshot):
                    if manifest.manifest_path not in seen:  # snapshots share most manifests: each once
                        seen.add(manifest.manifest_path)
                        files.add(manifest.manifest_path)
                        files.update(path for _, _, path in self.entries(manifest))
                if progress is not None:
                    progress.advance()
        files.update(s.statistics_path for s in [*metadata.statistics, *metadata.partition_statistics]
                     if s.snapshot_id in ids)
        return files


def reachable_files(table: Table, manifests: ManifestCache) -> set[str]:
    """Every location ``table``'s metadata reaches: the current metadata file and its log, each
    snapshot's manifest list, manifests and live files, and statistics files."""
    metadata = table.metadata
    files = {table.metadata_location, *(e.metadata_file for e in metadata.metadata_log)}
    for snapshot in metadata.snapshots:
        files |= manifests.live_files(snapshot)
    files.update(s.statistics_path for s in [*metadata.statistics, *metadata.partition_statistics])
    return files


@dataclass
class SweepResult:
    """What a sweep deleted and kept.

    :param removed: files deleted, by :func:`file_kind`.
    :param kept_younger_than_window: unreachable files left alone because they are younger than the
        safety window (possibly a concurrent writer's); a later sweep removes them.
    """

    removed: dict[str, int] = field(default_factory=dict)
    bytes_removed: int = 0
    kept_younger_than_window: int = 0

    @property
    def metadata_files_removed(self) -> int:
        return self.removed.get("metadata", 0)

    @property
    def files_removed(self) -> int:
        """Every file deleted except table metadata JSON files."""
        return sum(count for kind, count in self.removed.items() if kind != "metadata")


class OrphanSweep:
    """Delete files under a table's location that its metadata does not reach.

    An unreachable file is deleted when it is known to be dead (``delete_at_once``: files of snapshots
    just expired, metadata files seen and since dropped), when it is a metadata file under the table's
    ``metadata/`` folder with a version below the current metadata file's (old metadata: no commit can
    make it current again), or when it is older than the safety window. Everything else -- a data file,
    manifest or newer metadata file a concurrent writer has not committed yet -- is kept and counted.

    :param catalog: the catalog to reload the table from after listing.
    :param name: the table identifier.
    :param manifests: a cache of the table's manifests (shared with the caller's other steps).
    :param location: the table's file system and root, :func:`pyarrow_io`.
    """

    def __init__(
        self, catalog: Catalog, name: str, manifests: ManifestCache, location: TableLocation
    ) -> None:
        self.catalog = catalog
        self.name = name
        self.manifests = manifests
        self.fs, self.root, self._path = location

    def run(self, window: timedelta, now: datetime, *, delete_at_once: Iterable[str] = (),
            unknown_files: bool = True) -> SweepResult:
        """Sweep once.

        :param window: unreachable files of unknown origin younger than this are kept.
        :param now: the time the window counts back from (timezone-aware).
        :param delete_at_once: locations known to be dead; deleted whatever their age, if unreachable.
        :param unknown_files: False deletes only ``delete_at_once`` files (no orphan removal).
        """
        listed = list_files(self.fs, self.root)
        # Loaded after listing: a commit landing meanwhile keeps its files.
        table = self.catalog.load_table(self.name)
        reachable = {self._path(f) for f in reachable_files(table, self.manifests)}
        dead = {self._path(p) for p in delete_at_once}
        old_metadata = _OldMetadata(self._path(table.metadata_location))
        result = SweepResult()
        doomed = []
        for path, info in listed.items():
            if path in reachable:
                continue
            if path in dead or old_metadata.holds(path):
                doomed.append(info)
            elif not unknown_files:
                continue
            elif info.mtime is not None and now - info.mtime >= window:
                doomed.append(info)
            else:
                result.kept_younger_than_window += 1
        self._delete(doomed, result)
        log.info("%s: swept %d unreachable files (%d bytes); kept %d younger than %s", self.name,
                 len(doomed), result.bytes_removed, result.kept_younger_than_window, window)
        return result

    def _delete(self, infos: list[pafs.FileInfo], result: SweepResult) -> None:
        def delete(info: pafs.FileInfo) -> int | None:
            try:
                self.fs.delete_file(info.path)
            except FileNotFoundError:
                return None  # someone else deleted it: not ours to count
            return info.size or 0

        progress = ProgressLog(log, f"{self.name}: deleting", total=len(infos), unit="unreachable files")
        with ThreadPoolExecutor(max_workers=8) as pool:
            sizes = []
            for size in pool.map(delete, infos):
                sizes.append(size)
                progress.advance()
        for info, size in zip(infos, sizes):
            if size is None:
                continue
            kind = file_kind(info.path)
            result.removed[kind] = result.removed.get(kind, 0) + 1
            result.bytes_removed += size


class _OldMetadata:
    """Metadata files older than the current one: same folder, lower version number.

    A concurrent commit writes version current+1 (or higher) before it lands, and a commit prepared
    from an older version can only fail, so every lower version outside the log is dead.
    """

    def __init__(self, current: str) -> None:
        self.folder = current.rsplit("/", 1)[0]
        self.version = metadata_version(current)

    def holds(self, path: str) -> bool:
        if self.version is None or path.rsplit("/", 1)[0] != self.folder:
            return False
        version = metadata_version(path)
        return version is not None and version < self.version
