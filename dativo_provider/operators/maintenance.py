"""IcebergMaintenanceOperator: scheduled compaction, snapshot expiry and orphan-file removal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors, native_list
from dativo_provider.operators.lineage import OpenLineageFacets


class IcebergMaintenanceOperator(OpenLineageFacets, BaseOperator):
    """Keep Iceberg tables lean: compact small files, expire old snapshots, delete orphan files.

    Each table goes through :func:`~dativo_provider.iceberg.maintenance.maintain_table`; the task returns
    the totals and one result per table (snapshots expired, files removed by kind, bytes reclaimed,
    files compacted). Each ingest source's newest state, every tag and branch head and the history of
    ``protect_refs`` always survive, so the next incremental run continues where it stopped. For many
    tables, map the task over them (``.expand(tables=[...])``) so one failing table stops no other.

    :param tables: one table ``"namespace.table"`` or several (templated; a list, a JSON list or comma
        separated).
    :param expire_snapshots: False leaves every snapshot (compaction and the orphan sweep still run).
    :param expire_older_than: snapshots younger than this are kept; None keeps by ``retain_last`` alone.
    :param retain_last: the newest snapshots of each branch always kept.
    :param protect_refs: tags/branches whose whole history is kept (templated), e.g. a training-set tag.
    :param remove_orphans: delete files no snapshot references once older than ``orphan_safety_window``
        (a killed writer's leftovers); files of expired snapshots are deleted either way.
    :param orphan_safety_window: longer than any write to these tables can take.
    :param compact: rewrite small data files per partition, in the table's sort order.
    :param target_file_size_mb: size compaction aims at.
    :param min_files_to_compact: a partition is compacted once it has this many small files.
    :param iceberg_conn_id: the catalog (the embedded one without ``iceberg_default``).
    """

    template_fields: Sequence[str] = ("tables", "protect_refs")
    ui_color = "#e2f0d9"

    def __init__(
        self,
        *,
        tables: str | Sequence[str],
        expire_snapshots: bool = True,
        expire_older_than: timedelta | None = timedelta(days=7),
        retain_last: int = 1,
        protect_refs: str | Sequence[str] = (),
        remove_orphans: bool = True,
        orphan_safety_window: timedelta = timedelta(days=3),
        compact: bool = False,
        target_file_size_mb: int = 128,
        min_files_to_compact: int = 5,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.expire_snapshots = expire_snapshots
        self.expire_older_than = expire_older_than
        self.retain_last = retain_last
        self.protect_refs = protect_refs
        self.remove_orphans = remove_orphans
        self.orphan_safety_window = orphan_safety_window
        self.compact = compact
        self.target_file_size_mb = target_file_size_mb
        self.min_files_to_compact = min_files_to_compact
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Maintain each table in turn, log what each run removed, return the totals and results."""
        from dativo_provider.iceberg.maintenance import maintain_table

        with airflow_errors():
            tables = native_list(self.tables)
            if not tables:
                raise ConfigError(f"{self.task_id}: 'tables' is empty; name at least one table")
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            results = [maintain_table(catalog, table, **self._options()).to_dict() for table in tables]
        for result in results:
            self.log.info(
                "%s: %d snapshots expired, files removed %s (%d bytes reclaimed), %d orphans younger than "
                "the window kept, %d small files compacted into %d, states carried: %s",
                result["table"], result["snapshots_expired"], result["files_removed"], result["bytes_reclaimed"],
                result["orphans_kept_younger_than_window"], result["files_compacted"], result["files_written"],
                result["states_carried"] or "none",
            )
        self.run_summary = _totals(results)
        return self.run_summary

    def _options(self) -> dict[str, Any]:
        return {
            "expire_snapshots": self.expire_snapshots,
            "expire_older_than": self.expire_older_than,
            "retain_last": self.retain_last,
            "protect_refs": native_list(self.protect_refs) or (),
            "remove_orphans": self.remove_orphans,
            "orphan_safety_window": self.orphan_safety_window,
            "compact": self.compact,
            "target_file_size_mb": self.target_file_size_mb,
            "min_files_to_compact": self.min_files_to_compact,
        }


def _totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tables": results,
        "snapshots_expired": sum(r["snapshots_expired"] for r in results),
        "files_removed": sum(sum(r["files_removed"].values()) for r in results),
        "bytes_reclaimed": sum(r["bytes_reclaimed"] for r in results),
        "files_compacted": sum(r["files_compacted"] for r in results),
    }
