"""What every file-reading source shares: file versions read once, and one stream shape over them.

The files, markdown_kv and google_drive sources list *file versions* (a path or id, a modification
time, a size) and read each version once. Their incremental state is the same: the newest
modification time read and the files that have exactly that time (:func:`unread_files`,
:func:`next_state`). Their streams are the same too (:class:`FileStream`): iterated once, one file after
another, each file recorded in the report (the first :data:`MAX_FILE_DETAILS`), bad rows failing the
run or counted, the state valid after the last batch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa

from dativo_provider.exceptions import ConfigError, DativoError, SourceError, TransientError
from dativo_provider.sources.base import WATERMARK_KEY, SourceReport, SourceStream
from dativo_provider.sources.file_formats import FileRead, infer_schema, read_batches

FILES_STATE_KEY = "files_at_watermark"
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
        return as_utc(state[WATERMARK_KEY], "the stored watermark"), set(state.get(FILES_STATE_KEY) or ())
    except (KeyError, TypeError, ConfigError) as exc:
        raise SourceError(f"files source: stored state {dict(state)!r} is not a files-source state") from exc


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
                 skip_bad_rows: bool = False) -> None:
        self._incremental = incremental
        self._previous = previous
        self._skip_bad_rows = skip_bad_rows
        self._read: list[FileVersion] = []
        self._batches: Generator[pa.RecordBatch, None, None] | None = None
        self.report = SourceReport(details={**details, "files": [], "files_read": 0})

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
        return next_state(self._previous, self._read)

    def close(self) -> None:
        # Closing the generator runs its ``with``/``finally`` blocks: open files are closed.
        if self._batches is not None:
            self._batches.close()
        self._release()

    def _release(self) -> None:
        """Release what the stream holds besides its batches (API clients, temporary files)."""
