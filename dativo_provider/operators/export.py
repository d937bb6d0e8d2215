"""Snapshot export: an Iceberg tag, branch or snapshot as Parquet files for tools that do not read Iceberg."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors
from dativo_provider.operators.lineage import OpenLineageFacets


class SnapshotExportOperator(OpenLineageFacets, BaseOperator):
    """Export ``table`` at ``ref`` as Parquet files under ``destination``, streamed batch by batch.

    One call of :func:`~dativo_provider.ml.export.export_snapshot_parquet`: the ref is resolved to one
    snapshot before reading, so the files hold that snapshot's rows whatever is committed meanwhile; files
    are ``part-00000.parquet`` ... (``max_rows_per_file`` rows at most), and a rerun leaves exactly one
    export. The task returns the table, ref, snapshot id, files and row count. Typical next step: a
    BigQuery load of ``gs://bucket/prefix/*.parquet`` (Google provider), see
    ``example_dags/example_vertex_feature_export.py``.

    :param table: ``"namespace.table"`` (templated).
    :param destination: a local path, ``s3://bucket/prefix`` or ``gs://bucket/prefix`` (templated);
        ``gs://`` uses Google application-default credentials.
    :param ref: a tag or branch name, or a snapshot id (templated); default main's head.
    :param tag: first tag the snapshot ``ref`` resolves to with this name (templated), then export the
        tag; an existing tag is kept, so a rerun exports what the first run tagged.
    :param columns: export only these columns (templated); default all.
    :param max_rows_per_file: start a new file after this many rows.
    :param aws_conn_id: an ``aws`` connection for an ``s3://`` destination (default: the AWS chain).
    :param iceberg_conn_id: the ``iceberg`` connection (default: the embedded catalog).
    """

    template_fields: Sequence[str] = ("table", "destination", "ref", "tag", "columns")
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        table: str,
        destination: str,
        ref: str | int | None = None,
        tag: str | None = None,
        columns: Sequence[str] = (),
        max_rows_per_file: int | None = None,
        aws_conn_id: str | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.destination = destination
        self.ref = ref
        self.tag = tag
        self.columns = columns
        self.max_rows_per_file = max_rows_per_file
        self.aws_conn_id = aws_conn_id
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Tag (if asked), resolve the ref, stream the snapshot to Parquet, return what was written."""
        from dativo_provider.ml.export import MAX_ROWS_PER_FILE, export_snapshot_parquet, tag_snapshot

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            ref = self.ref or None
            if self.tag:
                tag_snapshot(catalog, self.table, self.tag, ref)
                ref = self.tag
            result = export_snapshot_parquet(
                catalog, self.table, ref, self.destination, columns=tuple(self.columns or ()),
                max_rows_per_file=self.max_rows_per_file or MAX_ROWS_PER_FILE, object_store=self._s3())
        self.log.info("%s at %s (snapshot %s): %d rows in %d file(s) under %s", result.table, result.ref,
                      result.snapshot_id, result.rows, len(result.files), result.destination)
        self.run_summary = result.to_dict()
        return self.run_summary

    def _s3(self) -> Any:
        """The S3 credentials of ``aws_conn_id`` (None: the AWS credential chain)."""
        if not self.aws_conn_id:
            return None
        from dativo_provider.hooks.sources import source_connection_config

        return source_connection_config({"type": "files", "conn_id": self.aws_conn_id})
