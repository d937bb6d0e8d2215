"""Stream one data file of a table as batches of a requested schema, one row group at a time.

pyiceberg's ``ArrowScan`` reads ahead several row groups and fragments, which makes a rewrite of
large files cost hundreds of MB; merges only need one file's batches in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.table import FileScanTask, Table

#: Rows per batch when streaming a file.
_BATCH_ROWS = 65_536


def stream_file(table: Table, task: FileScanTask, schema: Schema) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``task``'s data file projected to ``schema`` (a subset of the table's).

    Files with delete files attached (written by other engines) go through pyiceberg's scan, which
    applies the deletes; ours never have any.
    """
    if task.delete_files:
        yield from _scan(table, task, schema)
        return
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import _to_requested_schema, pyarrow_to_schema

    with table.io.new_input(task.file.file_path).open() as stream:
        parquet = pq.ParquetFile(stream)
        file_schema = pyarrow_to_schema(parquet.schema_arrow, name_mapping=table.schema().name_mapping)
        columns = _file_columns(file_schema, schema)
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            yield _to_requested_schema(schema, file_schema, batch)


def _file_columns(file_schema: Schema, schema: Schema) -> list[str]:
    """The file's top-level column names holding the requested fields (matched by field id)."""
    wanted = {field.field_id for field in schema.fields}
    return [field.name for field in file_schema.fields if field.field_id in wanted]


def _scan(table: Table, task: FileScanTask, schema: Schema) -> Iterator[pa.RecordBatch]:
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    yield from ArrowScan(table.metadata, table.io, schema, AlwaysTrue()).to_record_batches([task])
