"""Optimistic commits against an Iceberg catalog: telling a lost race from a real failure.

Every writer here (ingest commits, the erasure's delete and purge, maintenance, the commit barrier)
retries a commit another writer won; these two helpers are what they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.table import Table


def disable_builtin_retries(table: Table) -> Table:
    """Switch off pyiceberg's own retry of a lost commit race on this in-memory table.

    pyiceberg would replay the commit on the new head, skipping the checks our callers make first (the
    same-source check here, idempotency or a rebuilt plan elsewhere): they retry themselves. Nothing
    is written to the catalog.
    """
    properties = {**table.metadata.properties, "commit.retry.num-retries": "0"}
    table.metadata = table.metadata.model_copy(update={"properties": properties})
    return table


def is_lost_race(exc: Exception) -> bool:
    """Did another writer win the commit race (so re-reading and retrying is right)?"""
    from pyiceberg.exceptions import BadRequestError, CommitFailedException

    if isinstance(exc, CommitFailedException):
        return True
    # A snapshot staged on metadata another commit has since advanced (its sequence number is taken),
    # on a branch nobody else moved, so the ref requirements passed: SQL catalogs raise a ValueError
    # when they apply the updates, a REST catalog answers 400 (SeaweedFS: "can't add snapshot with
    # sequence number 3, must be > than last sequence number 3"), not 409.
    if isinstance(exc, (ValueError, BadRequestError)) and "last sequence number" in str(exc):
        return True
    # SQLite-backed SQL catalogs report a concurrent writer as a locked database.
    return type(exc).__name__ == "OperationalError" and "locked" in str(exc)
