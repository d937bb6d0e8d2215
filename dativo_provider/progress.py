"""Progress of a long step, logged at a steady interval rather than per item.

A task log that prints one line per file drowns in a million-file table; one that prints nothing
for an hour looks hung. :class:`ProgressLog` prints at most one line per interval with the count,
the bytes (when the step knows them) and the rate; :meth:`ProgressLog.finish` prints the last one.
A step that ends with its own summary line (an ingest) does not call ``finish``, so the log holds one
summary, not two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic

#: Seconds between two progress lines of one step.
DEFAULT_INTERVAL_S = 10.0


class ProgressLog:
    """Log ``<what>: <done>[/<total>] <unit> [(<bytes>)] running after <s>s, <rate> <unit>/s``.

    :param logger: where the lines go (INFO).
    :param what: the step, e.g. ``"lake.orders: compaction"``.
    :param total: how many items the step has, when known.
    :param unit: what an item is, e.g. ``"files"`` or ``"rows"``.
    :param interval: seconds between lines.
    :param clock: a monotonic clock in seconds; default this module's ``monotonic`` (tests replace either).
    """

    def __init__(self, logger: logging.Logger, what: str, total: int | None = None, unit: str = "items",
                 interval: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] | None = None) -> None:
        self.logger = logger
        self.what = what
        self.total = total
        self.unit = unit
        self.interval = interval
        self.clock = clock or monotonic
        self.done = 0
        self.bytes = 0
        self.started = self._last = self.clock()

    def advance(self, items: int = 1, note: str = "", *, nbytes: int = 0) -> None:
        """Count ``items`` (and ``nbytes``) more done; log if the interval has passed since the last line."""
        self.done += items
        self.bytes += nbytes
        now = self.clock()
        if now - self._last >= self.interval:
            self._line(now, note)

    def finish(self, note: str = "") -> None:
        """Log the final count, the time taken and the mean rate."""
        self._line(self.clock(), note, final=True)

    def _line(self, now: float, note: str, final: bool = False) -> None:
        self._last = now
        elapsed = now - self.started
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        size = f" ({format_bytes(self.bytes)})" if self.bytes else ""
        rate = f", {_number(self.done / elapsed)} {self.unit}/s" if elapsed > 0 else ""
        self.logger.info("%s: %s %s%s %s after %.0fs%s%s", self.what, count, self.unit, size,
                         "done" if final else "running", elapsed, rate, f" ({note})" if note else "")


def format_bytes(count: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: bytes in the largest binary unit that keeps the number >= 1."""
    if count < 1024:
        return f"{count} B"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def _number(value: float) -> str:
    """A rate readably: whole numbers from 10 up, one decimal below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
