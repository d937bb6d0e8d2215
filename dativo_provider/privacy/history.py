"""A table's whole retained history, read file by file: what every snapshot (main, branches, tags) can
still return.

Discovery resolves identities here (an e-mail a ``merge`` has since replaced is still in older
snapshots), and the purge decides here which files hold a subject's rows and so which snapshots must
go. Each data file any retained snapshot references is read once, without applying delete files: a row
a position delete hides is still on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table


def history_files(table: Table, row_filter: BooleanExpression | None = None) -> list[DataFile]:
    """Every data file a retained snapshot references, once each.

    Each distinct manifest is read once, whatever the number of snapshots that share it (a table with
    thousands of appends has thousands of snapshots over mostly the same manifests).

    :param row_filter: skip files whose column bounds rule every row out (pyiceberg's inclusive
        metrics evaluator; with counts-only metrics, nothing is skipped).
    """
    from pyiceberg.manifest import DataFileContent
    from pyiceberg.expressions.visitors import _InclusiveMetricsEvaluator

    may_match = (_InclusiveMetricsEvaluator(table.schema(), row_filter).eval
                 if row_filter is not None else (lambda _file: True))
    manifests: dict[str, Any] = {}
    for snapshot in table.metadata.snapshots:
        for manifest in snapshot.manifests(table.io):
            manifests.setdefault(manifest.manifest_path, manifest)
    files: dict[str, DataFile] = {}
    for manifest in manifests.values():
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            data_file = entry.data_file
            if data_file.content == DataFileContent.DATA and data_file.file_path not in files \
                    and may_match(data_file):
                files[data_file.file_path] = data_file
    return list(files.values())


def history_batches(table: Table, columns: Iterable[str], row_filter: BooleanExpression | None = None,
                    files: list[DataFile] | None = None) -> Iterator[tuple[str, pa.RecordBatch]]:
    """``(file path, batch)`` of ``columns`` over every file of :func:`history_files`, rows filtered.

    Files written before a column existed give nulls for it (pyiceberg maps columns by field id, so
    renamed columns are read under their current name).
    """
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    row_filter = row_filter if row_filter is not None else AlwaysTrue()
    schema = table.schema().select(*columns)
    reader = ArrowScan(table.metadata, table.io, schema, row_filter)
    for data_file in files if files is not None else history_files(table, row_filter):
        for batch in reader.to_record_batches([FileScanTask(data_file)]):
            if batch.num_rows:
                yield data_file.file_path, batch


def files_holding(table: Table, row_filter: BooleanExpression) -> dict[str, int]:
    """Path → matching rows, for every file in the table's history holding a row ``row_filter`` matches.

    Decoded, not inferred from metadata: a file counts only if a row in it really matches.
    """
    from pyiceberg.expressions import AlwaysFalse

    if row_filter == AlwaysFalse():
        return {}
    column = _first_column(row_filter, table)
    found: dict[str, int] = {}
    for path, batch in history_batches(table, [column], row_filter):
        found[path] = found.get(path, 0) + batch.num_rows
    return found


def _first_column(expression: Any, table: Table) -> str:
    """A column the filter reads (any will do: the scan evaluates the whole filter on each row)."""
    from pyiceberg.expressions.visitors import extract_field_ids

    bound_ids = extract_field_ids(_bind(expression, table))
    name = table.schema().find_column_name(min(bound_ids)) if bound_ids else None
    return name or table.schema().fields[0].name


def _bind(expression: Any, table: Table) -> Any:
    from pyiceberg.expressions.visitors import bind

    return bind(table.schema(), expression, case_sensitive=True)
