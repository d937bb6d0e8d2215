"""Incremental state lives in the snapshot summary of the commit that wrote the rows.

Reading it back walks the branch's ancestry to the newest snapshot a run of the same source
committed. A crash before the commit leaves no state and no rows, so the next run starts from the
last committed watermark: the watermark can never be ahead of committed data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

SOURCE_KEY = "dativo.source"
STATE_KEY = "dativo.state"
RUN_ID_KEY = "dativo.run-id"
#: Set on a snapshot that re-commits an older snapshot's state (an erasure purge expires the original).
CARRIED_FROM_KEY = "dativo.carried-from"


@dataclass(frozen=True)
class CommittedState:
    """The state a run of ``source`` stored, and the snapshot that stored it."""

    snapshot_id: int
    state: dict[str, Any] | None


def read_state(table: Table, source_identity: str, branch: str = "main") -> CommittedState | None:
    """The newest state ``source_identity`` committed on ``branch``; None if it never did."""
    from pyiceberg.table.snapshots import ancestors_of

    head = table.metadata.snapshot_by_name(branch)
    if head is None:
        return None
    for snapshot in ancestors_of(head, table.metadata):
        summary = snapshot.summary
        if summary is not None and summary.get(SOURCE_KEY) == source_identity:
            raw = summary.get(STATE_KEY)
            return CommittedState(snapshot.snapshot_id, json.loads(raw) if raw else None)
    return None


def snapshot_properties(source_identity: str, state: dict[str, Any] | None, run_id: str | None) -> dict[str, str]:
    """The summary properties that record which source (and state) a commit belongs to."""
    properties = {SOURCE_KEY: source_identity}
    if state is not None:
        properties[STATE_KEY] = json.dumps(state, sort_keys=True, default=str)
    if run_id:
        properties[RUN_ID_KEY] = run_id
    return properties


def carried_properties(snapshot: Snapshot) -> dict[str, str]:
    """The summary properties that repeat ``snapshot``'s source state in a new, empty snapshot.

    A commit that started from ``snapshot``'s state still lands afterwards: the commit check accepts a
    snapshot whose ``CARRIED_FROM_KEY`` names the one it started from.
    """
    summary: Mapping[str, str] = snapshot.summary or {}
    properties = {k: summary[k] for k in (SOURCE_KEY, STATE_KEY, RUN_ID_KEY) if summary.get(k) is not None}
    return properties | {CARRIED_FROM_KEY: str(snapshot.snapshot_id)}
