"""The Source interface every connector implements.

A source is opened once per run with the state the previous run committed (read back from the
Iceberg table) and yields Arrow record batches of one declared schema. After the last batch it
reports the state to store with the commit that writes those rows, so a crash before the commit
leaves neither rows nor state behind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

#: Keys of a source state that the engine understands; everything else is the source's own.
WATERMARK_KEY = "watermark"
#: The cursor column (or field) a state's watermark belongs to.
CURSOR_KEY = "cursor"

#: How many rejected rows a report keeps as samples (the count is always exact).
MAX_REJECT_SAMPLES = 20


def committed_watermark(state: Mapping[str, Any] | None, cursor: str, where: str) -> Any:
    """The watermark a previous run committed, refusing a state kept for another cursor.

    :param where: names the source in the error, e.g. ``"postgres source"``.
    """
    if not state:
        return None
    stored = state.get(CURSOR_KEY)
    if stored is not None and stored != cursor:
        raise ConfigError(
            f"{where}: the table's stored state tracks cursor {stored!r} but this source reads by "
            f"{cursor!r}; reset the table's state (or use a new table) before changing the cursor"
        )
    return state.get(WATERMARK_KEY)


@dataclass(frozen=True)
class ReadBounds:
    """Incremental limits the caller hands to a source; the engine never asks what time it is.

    :param upper: inclusive upper bound for the cursor (e.g. the Airflow data interval end), or None.
    :param lookback: re-read this far behind the stored watermark, to catch late-arriving rows.
        A ``datetime.timedelta`` for time cursors, a number for numeric cursors.
    """

    upper: Any = None
    lookback: Any = None


@dataclass(frozen=True)
class LineageDataset:
    """A dataset as OpenLineage names it: ``namespace`` (scheme://authority) and ``name``."""

    namespace: str
    name: str


@dataclass
class RejectedRow:
    """A row the source could not read. ``location`` names the file and line, or the key."""

    location: str
    reason: str


@dataclass
class SourceReport:
    """What a source saw while streaming; filled in as batches are produced."""

    rows_rejected: int = 0
    #: Rows an explicit transform removed (filtered out) on the way to the table; negative when it
    #: made several rows of one. Set by :mod:`dativo_provider.ml.transform`.
    rows_dropped: int = 0
    rejected_samples: list[RejectedRow] = field(default_factory=list)
    #: Things the source read, e.g. file paths and versions, for the run summary.
    details: dict[str, Any] = field(default_factory=dict)

    def reject(self, location: str, reason: str) -> None:
        self.rows_rejected += 1
        if len(self.rejected_samples) < MAX_REJECT_SAMPLES:
            self.rejected_samples.append(RejectedRow(location, reason))


class SourceStream(ABC):
    """One open read. Use it as a context manager; iterate it once for the batches."""

    report: SourceReport

    @property
    @abstractmethod
    def schema(self) -> pa.Schema:
        """The exact Arrow schema every batch has; known before the first batch."""

    @abstractmethod
    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """Yield the batches. May be consumed only once."""

    @abstractmethod
    def state(self) -> dict[str, Any] | None:
        """The state to commit with these rows, valid after iteration ends. None if not incremental.

        Must be JSON-serialisable. Put the cursor value under ``"watermark"`` so it is reported.
        """

    def close(self) -> None:
        """Release server cursors, files, connections."""

    def __enter__(self) -> SourceStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Source(ABC):
    """A configured connector. Holds no open resources until :meth:`open`."""

    #: True when a run may re-read rows an earlier run already wrote (a lookback window).
    #: The engine then insists on a write mode that deduplicates (merge on keys).
    may_repeat_rows: bool = False
    #: Identities this source's state was committed under before (a renamed identity): the engine
    #: continues from their state until the source commits under its current one.
    former_identities: tuple[str, ...] = ()

    @property
    @abstractmethod
    def identity(self) -> str:
        """A stable name for what this source reads (no secrets): the key of its state in the table."""

    @property
    @abstractmethod
    def lineage(self) -> LineageDataset:
        """The dataset read, as OpenLineage names it."""

    @abstractmethod
    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SourceStream:
        """Start reading after ``state`` (None: from the beginning) within ``bounds``."""
