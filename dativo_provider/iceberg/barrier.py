"""A commit barrier: how an erasure asks this provider's own writers to hold their commits for a moment.

Iceberg has no locks. An erasure's delete and purge stage work on the head they loaded, and a writer
that commits every few hundred milliseconds on a table with hundreds of snapshots can win every race:
loading that table's metadata alone takes longer than the writer's period. So after a few lost races
an erasure raises a barrier, the table property ``dativo.commit-barrier`` (holder and expiry), and
writers that commit through :func:`dativo_provider.iceberg.commit.commit` wait at it before each attempt,
until it is lowered or expires. Setting a property wins its race almost always: the catalog applies it
to whatever metadata is current, with no snapshot to rebuild.

Writers outside this provider do not know the barrier; against them the erasure still relies on its
retries. An erasure that dies holding a barrier blocks nobody past its expiry.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

BARRIER_KEY = "dativo.commit-barrier"
#: How long a barrier holds writers at most, whatever happens to its holder.
DEFAULT_TTL = timedelta(minutes=2)
_POLL_SECONDS = 0.1


class Contention:
    """Counts the lost races of one holder on one table; raises the barrier after ``after`` of them.

    Use as a context manager: the barrier, if raised, is lowered on exit.
    """

    def __init__(self, catalog: Catalog, identifier: str, holder: str, *, after: int = 3,
                 ttl: timedelta = DEFAULT_TTL) -> None:
        self.catalog = catalog
        self.identifier = identifier
        self.holder = holder
        self.after = after
        self.ttl = ttl
        self.losses = 0
        self.raised = False

    def __enter__(self) -> Contention:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.raised:
            _set(self.catalog, self.identifier, None)
            self.raised = False

    def lost(self) -> None:
        """One more lost race; the barrier goes up when they reach ``after`` (and is renewed after)."""
        self.losses += 1
        if self.losses >= self.after:
            until = datetime.now(timezone.utc) + self.ttl
            _set(self.catalog, self.identifier, json.dumps({"holder": self.holder, "until": until.isoformat()}))
            if not self.raised:
                log.warning("%s: %d lost commit races; asking this provider's writers to wait (until %s)",
                            self.identifier, self.losses, until.isoformat())
            self.raised = True


def wait_at_barrier(catalog: Catalog, table: Table) -> Table:
    """``table`` reloaded once no live barrier stands on it (a barrier past its expiry is ignored)."""
    waited = 0.0
    while True:
        until = _barrier_until(table)
        if until is None or datetime.now(timezone.utc) >= until:
            if waited:
                log.info("%s: waited %.1fs at an erasure's commit barrier", ".".join(table.name()), waited)
            return table
        time.sleep(_POLL_SECONDS)
        waited += _POLL_SECONDS
        table = catalog.load_table(table.name())


def _barrier_until(table: Table) -> datetime | None:
    raw = table.metadata.properties.get(BARRIER_KEY)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(json.loads(raw)["until"])
    except (ValueError, KeyError, TypeError):
        return None  # a malformed barrier holds nobody


def _set(catalog: Catalog, identifier: str, value: str | None) -> None:
    """Set or remove the barrier property; retried: a property update rarely loses, but it can."""
    from dativo_provider.iceberg.races import is_lost_race

    for attempt in range(1, 21):
        table = catalog.load_table(identifier)
        transaction = table.transaction()
        if value is None:
            if BARRIER_KEY not in table.metadata.properties:
                return
            transaction.remove_properties(BARRIER_KEY)
        else:
            transaction.set_properties({BARRIER_KEY: value})
        try:
            transaction.commit_transaction()
            return
        except Exception as exc:
            if not is_lost_race(exc):
                raise
            time.sleep(0.01 * attempt)
    log.warning("%s: could not %s the commit barrier", identifier, "lower" if value is None else "raise")
