"""DriftSnapshotTrigger: poll an Iceberg table until its branch head is a snapshot worth checking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DriftSnapshotTrigger(BaseTrigger):
    """Fire once the head of ``branch`` is a snapshot other than ``after_snapshot_id`` and committed
    after ``committed_after_ms`` (both optional).

    It only reads table metadata (the catalog's pointer and the metadata file), in a thread so the
    triggerer's event loop never blocks; the drift statistics run in the worker afterwards. Only the
    connection id travels in the serialized trigger, never catalog credentials.

    :param table: ``"namespace.table"``.
    :param iceberg_conn_id: the ``iceberg`` connection, resolved in the triggerer.
    :param poll_interval: seconds between polls.
    """

    def __init__(self, table: str, iceberg_conn_id: str, branch: str = "main",
                 after_snapshot_id: str | None = None, committed_after_ms: int | None = None,
                 poll_interval: float = 60.0) -> None:
        super().__init__()
        self.table = table
        self.iceberg_conn_id = iceberg_conn_id
        self.branch = branch
        self.after_snapshot_id = after_snapshot_id
        self.committed_after_ms = committed_after_ms
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "table": self.table, "iceberg_conn_id": self.iceberg_conn_id, "branch": self.branch,
            "after_snapshot_id": self.after_snapshot_id, "committed_after_ms": self.committed_after_ms,
            "poll_interval": self.poll_interval,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                head = await asyncio.to_thread(self._head)
            except Exception as exc:  # noqa: BLE001 - the sensor decides; the error text has no secret
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if head is not None and self._is_new(*head):
                yield TriggerEvent({"status": "success", "snapshot_id": str(head[0])})
                return
            self.log.info("No new snapshot of %s yet (head %s); next poll in %ss", self.table,
                          head[0] if head else None, self.poll_interval)
            await asyncio.sleep(self.poll_interval)

    def _head(self) -> tuple[int, int] | None:
        from dativo_provider.hooks.iceberg import IcebergHook
        from dativo_provider.ml.drift_iceberg import head_snapshot

        return head_snapshot(IcebergHook(self.iceberg_conn_id).get_catalog_config(), self.table, self.branch)

    def _is_new(self, snapshot_id: int, committed_ms: int) -> bool:
        return is_new_snapshot(snapshot_id, committed_ms, self.after_snapshot_id, self.committed_after_ms)


def is_new_snapshot(snapshot_id: int, committed_ms: int, after_snapshot_id: str | None,
                    committed_after_ms: int | None) -> bool:
    """The rule the sensor's pokes and the trigger share."""
    if after_snapshot_id is not None and str(snapshot_id) == str(after_snapshot_id):
        return False
    return committed_after_ms is None or committed_ms > committed_after_ms
