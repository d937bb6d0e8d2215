"""What every file-reading source shares: file versions read once, and one stream shape over them.

The files, markdown_kv and google_drive sources list *file versions* (a path or id, a modification
time, a size, for Drive an md5) and read each version once. They remember what they read in one of
two ways:

* **manifest** (:func:`plan_manifest`, the files and google_drive default): the state lists every file
  version read (path or id → time, size, checksum), so a file that appears later with an *older*
  modification time (``cp -p``, a back-dated upload, an object listed late) is still read, once. It
  stays bounded: entries older than a floor (the newest time read less a horizon, or the time that
  keeps at most :data:`MAX_MANIFEST_FILES` entries) are dropped, and files older than the floor are
  taken as read. The entries are stored zlib-compressed (:func:`manifest_entries` decodes them).
* **watermark** (:func:`unread_files`, :func:`next_state`): the newest modification time read and the
  files that have exactly that time. Cheaper, but blind to back-dated files.

Their streams are the same too (:class:`FileStream`): iterated once, one file after another, each file
recorded in the report (the first :data:`MAX_FILE_DETAILS`), bad rows failing the run or counted, the
state valid after the last batch.
"""

from __future__ import annotations

import base64
import json
import zlib
from abc import abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pyarrow as pa

from dativo_provider.exceptions import ConfigError, DativoError, SourceError, TransientError
from dativo_provider.sources.base import WATERMARK_KEY, SourceReport, SourceStream
from dativo_provider.sources.file_formats import FileRead, infer_schema, read_batches

FILES_STATE_KEY = "files_at_watermark"
#: Manifest state keys: the compressed entries, their count, and the floor below which files count as read.
MANIFEST_KEY = "manifest"
MANIFEST_COUNT_KEY = "manifest_files"
MANIFEST_FLOOR_KEY = "manifest_floor"
#: The manifest keeps at most about this many entries (the state sits in every snapshot's summary).
MAX_MANIFEST_FILES = 10_000
#: Entries older than the newest file read less this are dropped (``manifest_horizon``).
DEFAULT_MANIFEST_HORIZON = timedelta(days=30)
TRACKING_MODES = ("manifest", "watermark")
CHANGED_FILES_POLICIES = ("reread", "fail")
#: The report lists this many files; ``files_read`` always has the full count.
MAX_FILE_DETAILS = 100
#: pyarrow S3 error fragments that a retry cannot fix.
_TERMINAL_IO_MARKERS = ("ACCESS_DENIED", "NO_SUCH_BUCKET", "INVALID_ACCESS_KEY", "SIGNATURE", "status 403")


@dataclass(frozen=True)
class FileVersion:
    """One listed file: its pyarrow.fs path (or id), its path relative to the prefix, and its version."""

    path: str
    relative: str
    mtime: datetime
    size: int
    #: A checksum of the bytes when the store lists one (Drive's md5Checksum): a new time with the same
    #: checksum is not a new version.
    checksum: str | None = None


# --- incremental state --------------------------------------------------------------------------


def unread_files(files: list[FileVersion], state: Mapping[str, Any] | None) -> list[FileVersion]:
    """The files newer than the state's watermark, or at it and not yet read."""
    if not state:
        return files
    watermark, seen = _parse_state(state)
    return [f for f in files if f.mtime > watermark or (f.mtime == watermark and f.relative not in seen)]


def next_state(previous: Mapping[str, Any] | None, read: list[FileVersion]) -> dict[str, Any] | None:
    """The state after reading ``read`` (all at or after the previous watermark): newest time + its files."""
    if not read:
        return dict(previous) if previous else None
    top = max(f.mtime for f in read)
    at_top = {f.relative for f in read if f.mtime == top}
    if previous:
        watermark, seen = _parse_state(previous)
        if watermark == top:
            at_top |= seen
    return {WATERMARK_KEY: iso_utc(top), FILES_STATE_KEY: sorted(at_top)}


def _parse_state(state: Mapping[str, Any]) -> tuple[datetime, set[str]]:
    try:
        watermark = as_utc(state[WATERMARK_KEY], "the stored watermark")
    except (KeyError, TypeError, ConfigError) as exc:
        raise SourceError(f"files source: stored state {_shown(state)} is not a files-source state") from exc
    if MANIFEST_KEY in state:  # switched back from a manifest: its entries at the watermark are the seen ones
        top = _micros(watermark)
        return watermark, {name for name, entry in manifest_entries(state).items() if entry[0] == top}
    return watermark, set(state.get(FILES_STATE_KEY) or ())


def _shown(state: Mapping[str, Any]) -> str:
    """A state for an error message, without the (long, compressed) manifest."""
    return repr({k: ("..." if k == MANIFEST_KEY else v) for k, v in state.items()})


# --- manifest state -----------------------------------------------------------------------------

#: A manifest entry: modification time (microseconds since the epoch), size, checksum or None.
Entry = tuple[int, int, str | None]


@dataclass(frozen=True)
class Tracking:
    """How an incremental file source remembers what it read (``incremental``, ``manifest_horizon``,
    ``changed_files`` in its spec).

    :param mode: ``"manifest"`` (every file version read is listed) or ``"watermark"``.
    :param horizon: manifest entries this much older than the newest file read are dropped, and files
        older than that are taken as read; None keeps entries until :data:`MAX_MANIFEST_FILES`.
    :param changed_files: a file read before that has a new version: ``"reread"`` it in full, or
        ``"fail"`` the run naming it.
    """

    mode: str = "manifest"
    horizon: timedelta | None = DEFAULT_MANIFEST_HORIZON
    changed_files: str = "reread"
    max_files: int = MAX_MANIFEST_FILES


def parse_tracking(spec: Mapping[str, Any], where: str) -> tuple[bool, Tracking]:
    """The spec's ``incremental`` (true, false, ``"manifest"``, ``"watermark"``), ``manifest_horizon`` and
    ``changed_files``: whether the source is incremental, and how it tracks files; errors name the key."""
    from dativo_provider.sources.sql_common import parse_lookback

    value = spec.get("incremental", True)
    if value is not True and value is not False and value not in TRACKING_MODES:
        raise ConfigError(f"{where}: 'incremental' must be true, false, 'manifest' or 'watermark', "
                          f"not {value!r}")
    mode = "watermark" if value == "watermark" else "manifest"
    manifest_keys = sorted({"manifest_horizon", "changed_files"} & set(spec))
    if manifest_keys and (mode != "manifest" or value is False):
        raise ConfigError(f"{where}: {manifest_keys[0]!r} applies to incremental 'manifest' (the default) "
                          "only")
    horizon = parse_lookback(spec.get("manifest_horizon", DEFAULT_MANIFEST_HORIZON),
                             f"{where}: 'manifest_horizon'")
    if horizon is not None and not isinstance(horizon, timedelta):
        horizon = timedelta(seconds=float(horizon))
    changed = spec.get("changed_files", "reread")
    if changed not in CHANGED_FILES_POLICIES:
        raise ConfigError(f"{where}: 'changed_files' is {changed!r}; expected 'reread' or 'fail'")
    return value is not False, Tracking(mode, horizon, changed)


@dataclass
class ManifestPlan:
    """What a manifest-tracked run reads (:attr:`todo`, in listing order) and the state it commits after.

    :param changed: versions in :attr:`todo` whose file was read before in another version.
    :param touched: files whose time moved but whose checksum did not: remembered again, not re-read.
    """

    tracking: Tracking
    previous: Mapping[str, Any] | None
    entries: dict[str, Entry]
    floor: int | None
    watermark: int | None
    todo: list[FileVersion] = field(default_factory=list)
    changed: list[FileVersion] = field(default_factory=list)
    touched: dict[str, Entry] = field(default_factory=dict)

    def state_after(self, read: list[FileVersion]) -> dict[str, Any] | None:
        """The state once ``read`` are in the table: the manifest with them, compacted below its floor."""
        if not read and not self.touched:
            return dict(self.previous) if self.previous else None
        entries = {**self.entries, **self.touched, **{f.relative: _entry(f) for f in read}}
        newest = max([entry[0] for entry in entries.values()] + [self.watermark or 0])
        floor = _compacted_floor(entries, self.floor, self.tracking)
        kept = {name: entry for name, entry in entries.items() if floor is None or entry[0] >= floor}
        return {WATERMARK_KEY: iso_utc(_moment(newest)), MANIFEST_FLOOR_KEY: None if floor is None else
                iso_utc(_moment(floor)), MANIFEST_COUNT_KEY: len(kept), MANIFEST_KEY: _pack(kept)}


def plan_manifest(files: list[FileVersion], state: Mapping[str, Any] | None, tracking: Tracking,
                  where: str, shown: Callable[[FileVersion], str] | None = None) -> ManifestPlan:
    """Pick the listed versions not in the state's manifest: new files, and files with a new version.

    :param where: names the source in errors.
    :param shown: how an error names a file (default: its path below the prefix).
    :raises SourceError: a file changed after it was read and ``changed_files`` is ``"fail"``.
    """
    plan = ManifestPlan(tracking, state, *_stored_manifest(state, files))
    for version in files:
        known, now = plan.entries.get(version.relative), _entry(version)
        if known == now:
            continue
        if known is None:
            if plan.floor is None or now[0] >= plan.floor:
                plan.todo.append(version)
        elif version.checksum is not None and known[2] == version.checksum:
            plan.touched[version.relative] = now
        else:
            plan.changed.append(version)
            plan.todo.append(version)
    if plan.changed and tracking.changed_files == "fail":
        names = ", ".join((shown or (lambda v: v.relative))(v) for v in plan.changed[:5])
        raise SourceError(
            f"{where}: {len(plan.changed)} file(s) changed after they were read, and their earlier rows are "
            f"in the table: {names}. Nothing was read. Set changed_files='reread' to read them again (with "
            "write mode 'merge' their rows replace the earlier ones), or restore the files"
        )
    return plan


def manifest_entries(state: Mapping[str, Any]) -> dict[str, Entry]:
    """The file versions a manifest state lists: ``{path or id: (time in µs, size, checksum)}``."""
    try:
        rows = json.loads(zlib.decompress(base64.b64decode(state[MANIFEST_KEY])))
        return {str(name): (int(micros), int(size), checksum) for name, micros, size, checksum in rows}
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise SourceError(f"files source: stored state {_shown(state)} has no readable manifest") from exc


def _stored_manifest(state: Mapping[str, Any] | None,
                     files: list[FileVersion]) -> tuple[dict[str, Entry], int | None, int | None]:
    """The entries, floor and watermark of a state; a watermark state (before manifests) becomes a floor at
    its watermark plus entries for the listed files it read at exactly that time."""
    if not state:
        return {}, None, None
    if MANIFEST_KEY in state:
        floor = state.get(MANIFEST_FLOOR_KEY)
        watermark = _micros(as_utc(state[WATERMARK_KEY], "the stored watermark"))
        floor_micros = None if floor is None else _micros(as_utc(floor, "the stored manifest floor"))
        return manifest_entries(state), floor_micros, watermark
    moment, seen = _parse_state(state)
    top = _micros(moment)
    return {f.relative: _entry(f) for f in files if f.relative in seen and _micros(f.mtime) == top}, top, top


def _compacted_floor(entries: Mapping[str, Entry], floor: int | None, tracking: Tracking) -> int | None:
    """The floor after a run: never lower than before, at most ``horizon`` behind the newest entry, and high
    enough to keep about ``max_files`` entries (files sharing the floor's time are all kept)."""
    times = sorted((entry[0] for entry in entries.values()), reverse=True)
    candidates = [] if floor is None else [floor]
    if tracking.horizon is not None:
        candidates.append(times[0] - _micros_of(tracking.horizon))
    if len(times) > tracking.max_files:
        candidates.append(times[tracking.max_files - 1])
    return max(candidates) if candidates else None


def _entry(version: FileVersion) -> Entry:
    return _micros(version.mtime), version.size, version.checksum


def _pack(entries: Mapping[str, Entry]) -> str:
    # Sorted paths share prefixes and neighbouring times share digits: zlib keeps an entry to a few bytes.
    rows = [[name, *entries[name]] for name in sorted(entries)]
    packed = zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 9)
    return base64.b64encode(packed).decode("ascii")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return _micros_of(moment - _EPOCH)


def _micros_of(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def as_utc(value: Any, what: str) -> datetime:
    """A datetime or ISO-8601 string as an aware UTC datetime; naive values are taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"files source: {what} {value!r} is not an ISO-8601 timestamp") from exc
    if not isinstance(value, datetime):
        raise ConfigError(f"files source: {what} must be a datetime or ISO-8601 string, not {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# --- reading ------------------------------------------------------------------------------------


def io_error(exc: OSError, action: str) -> DativoError:
    """Terminal for missing permissions, buckets or directories; transient for the rest (network)."""
    terminal = isinstance(exc, (PermissionError, NotADirectoryError))
    if terminal or any(marker in str(exc) for marker in _TERMINAL_IO_MARKERS):
        return SourceError(f"{action} failed: {exc}")
    return TransientError(f"{action} failed: {exc}; a retry may succeed")


def infer_file_schema(file_format: str, reading: FileRead) -> pa.Schema:
    """The schema of a sample file, as the format readers infer it; errors name the file."""
    try:
        return infer_schema(file_format, reading)
    except pa.ArrowException as exc:
        raise SourceError(f"{reading.display}: cannot infer a schema ({exc}); declare 'columns'") from exc
    except OSError as exc:
        raise io_error(exc, f"reading {reading.display}") from exc


class FileStream(SourceStream):
    """A stream over file versions, read one after another; each version read is remembered for the state.

    A subclass yields its batches from :meth:`_all_batches`, calls :meth:`_record` for each file it
    starts and :meth:`_done` for each it finished, and releases what it holds in :meth:`_release`.

    :param incremental: whether :meth:`state` reports a state (None otherwise).
    :param previous: the state the run started from.
    :param details: the report's first details (the list of files and their count follow).
    :param skip_bad_rows: count rows the format readers reject instead of failing the run.
    """

    #: Names the source in messages, e.g. ``"files"``.
    kind: ClassVar[str]

    def __init__(self, *, incremental: bool, previous: Mapping[str, Any] | None, details: Mapping[str, Any],
                 skip_bad_rows: bool = False, manifest: ManifestPlan | None = None) -> None:
        self._incremental = incremental
        self._previous = previous
        self._skip_bad_rows = skip_bad_rows
        self._read: list[FileVersion] = []
        self._batches: Generator[pa.RecordBatch, None, None] | None = None
        self._manifest: ManifestPlan | None = None
        self.report = SourceReport(details={**details, "files": [], "files_read": 0})
        if manifest is not None:
            self._use_manifest(manifest)

    def _use_manifest(self, plan: ManifestPlan) -> None:
        """Track this run's files with ``plan``; the report names the files read again in a new version."""
        self._manifest = plan
        self.report.details["files_changed"] = [v.relative for v in plan.changed[:MAX_FILE_DETAILS]]

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._batches is not None:
            raise SourceError(f"a {self.kind} stream can be iterated only once; open the source again")
        self._batches = self._all_batches()
        return self._batches

    @abstractmethod
    def _all_batches(self) -> Generator[pa.RecordBatch, None, None]:
        """Every batch of every file to read, in order."""

    def _record(self, detail: dict[str, Any]) -> dict[str, Any]:
        """Count a file as read and list its ``detail`` in the report (the first ones); returns it."""
        self.report.details["files_read"] += 1
        if len(self.report.details["files"]) < MAX_FILE_DETAILS:
            self.report.details["files"].append(detail)
        return detail

    def _done(self, version: FileVersion) -> None:
        """``version`` was read to its end: the state moves past it."""
        self._read.append(version)

    def _file_batches(self, file_format: str, reading: FileRead, detail: dict[str, Any],
                      action: str = "reading") -> Iterator[pa.RecordBatch]:
        """The batches of one file, counted in ``detail["rows"]``; errors name the file."""
        try:
            for batch in read_batches(file_format, reading):
                detail["rows"] += batch.num_rows
                yield batch
        except pa.ArrowException as exc:
            raise SourceError(f"{reading.display}: {exc}") from exc
        except OSError as exc:
            raise io_error(exc, f"{action} {reading.display}") from exc

    def _rejecter(self, detail: dict[str, Any]) -> Callable[[str, str], None]:
        """The ``reject`` callback of a :class:`FileRead`: fail the run, or count the row in ``detail``."""

        def reject(location: str, reason: str) -> None:
            if not self._skip_bad_rows:
                raise SourceError(
                    f"{location}: {reason}. Fix the file, or set bad_rows='skip' to skip such rows"
                )
            detail["rejected"] += 1
            self.report.reject(location, reason)

        return reject

    def state(self) -> dict[str, Any] | None:
        if not self._incremental:
            return None
        if self._manifest is not None:
            return self._manifest.state_after(self._read)
        return next_state(self._previous, self._read)

    def close(self) -> None:
        # Closing the generator runs its ``with``/``finally`` blocks: open files are closed.
        if self._batches is not None:
            self._batches.close()
        self._release()

    def _release(self) -> None:
        """Release what the stream holds besides its batches (API clients, temporary files)."""
