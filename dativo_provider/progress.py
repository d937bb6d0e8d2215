"""Progress of a long step, logged at a steady interval rather than per item.

A task log that prints one line per file drowns in a million-file table; one that prints nothing
for an hour looks hung. :class:`ProgressLog` prints at most one line per interval, and always the last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two progress lines of one step.
DEFAULT_INTERVAL_S = 30.0


class ProgressLog:
    """Log ``<what>: <done>/<total> <unit>`` every ``interval`` seconds while a step advances.

    :param logger: where the lines go (INFO).
    :param what: the step, e.g. ``"lake.orders: compaction"``.
    :param total: how many items the step has, when known.
    :param unit: what an item is, e.g. ``"files"``.
    :param interval: seconds between lines.
    :param clock: a monotonic clock in seconds (tests pass their own).
    """

    def __init__(self, logger: logging.Logger, what: str, total: int | None = None, unit: str = "items",
                 interval: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.total = total
        self.unit = unit
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.started = self._last = clock()

    def advance(self, items: int = 1, note: str = "") -> None:
        """Count ``items`` more done; log if the interval has passed since the last line."""
        self.done += items
        if self.clock() - self._last >= self.interval:
            self._line(note)

    def finish(self, note: str = "") -> None:
        """Log the final count and the time taken."""
        self._line(note, final=True)

    def _line(self, note: str, final: bool = False) -> None:
        now = self.clock()
        self._last = now
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        state = "done" if final else "running"
        self.logger.info("%s: %s %s %s after %.0fs%s", self.what, count, self.unit, state, now - self.started,
                         f" ({note})" if note else "")
