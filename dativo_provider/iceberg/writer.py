"""Stream Arrow batches into rolling Parquet data files of an Iceberg table, without committing.

Files are written first and committed afterwards (see :mod:`dativo_provider.iceberg.commit`), so a
lost commit race is retried with the same files instead of re-reading a consumed source stream.
Memory stays flat: a batch is encoded as soon as it arrives, on one background thread, while the
source produces the next one.
"""

from __future__ import annotations

import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.manifest import DataFile
    from pyiceberg.partitioning import PartitionKey
    from pyiceberg.table import Table

#: Batches accepted but not yet encoded; bounds memory while the source runs ahead.
_MAX_PENDING_BATCHES = 2


@dataclass
class _OpenFile:
    path: str
    stream: Any
    writer: Any
    partition_key: PartitionKey | None
    arrow_bytes: int = 0


class DataFileWriter:
    """Write batches (already in the table's column order and storage types) into data files.

    :param table: the target table; files follow its current schema, partition spec and properties.
    :param sort_by: ``[(column, "ascending"|"descending")]``; each written batch is sorted by it.
    :param target_file_bytes: roll to a new file after this many bytes of in-memory Arrow data.
    """

    def __init__(self, table: Table, sort_by: list[tuple[str, str]], target_file_bytes: int) -> None:
        from pyiceberg.io.pyarrow import schema_to_pyarrow
        from pyiceberg.schema import sanitize_column_names
        from pyiceberg.table.locations import load_location_provider

        metadata = table.metadata
        self._table = table
        self._schema = metadata.schema()
        self._spec = metadata.spec()
        self._file_schema = sanitize_column_names(self._schema)
        self._file_arrow = _small_types(schema_to_pyarrow(self._file_schema, include_field_ids=True))
        self._locations = load_location_provider(metadata.location, metadata.properties)
        self._sort_by = sort_by
        self._target = target_file_bytes
        self._write_uuid = uuid.uuid4()
        self._counter = 0
        self._open: dict[str, _OpenFile] = {}
        self._written: list[DataFile] = []
        self._paths: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-writer")
        self._pending: deque[Future[None]] = deque()

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema (names, storage types) batches must have: the table's, in its column order."""
        from pyiceberg.io.pyarrow import _pyarrow_schema_ensure_small_types, schema_to_pyarrow

        return _pyarrow_schema_ensure_small_types(schema_to_pyarrow(self._schema, include_field_ids=False))

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Queue rows for encoding; blocks while two batches are already waiting."""
        while len(self._pending) >= _MAX_PENDING_BATCHES:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._encode, batch))

    def close(self) -> list[DataFile]:
        """Finish every file and return the data files, ready to commit."""
        self._drain()
        for key in list(self._open):
            self._roll(key)
        self._pool.shutdown()
        return list(self._written)

    def abort(self) -> None:
        """Stop and delete every file this writer created; nothing was committed."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)
        for open_file in self._open.values():
            _close_quietly(open_file)
        io = self._table.io
        for path in self._paths:
            try:
                io.delete(path)
            except OSError:
                pass

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def _encode(self, batch: pa.RecordBatch | pa.Table) -> None:
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self._sort_by:
            table = table.sort_by(self._sort_by)
        if self._spec.is_unpartitioned():
            self._append(None, table)
            return
        from pyiceberg.io.pyarrow import _determine_partitions

        for part in _determine_partitions(self._spec, self._schema, table):
            self._append(part.partition_key, part.arrow_table_partition)

    def _append(self, partition_key: PartitionKey | None, table: pa.Table) -> None:
        key = partition_key.to_path() if partition_key else ""
        open_file = self._open.get(key) or self._start(key, partition_key)
        # Same columns in the same order; names (sanitised) and field ids differ. The cast carries
        # the field ids into nested children (list elements, struct fields), which Parquet needs.
        renamed = table.rename_columns(self._file_arrow.names).cast(self._file_arrow)
        open_file.writer.write_table(renamed, row_group_size=len(renamed) or None)
        open_file.arrow_bytes += table.nbytes
        if open_file.arrow_bytes >= self._target:
            self._roll(key)

    def _start(self, key: str, partition_key: PartitionKey | None) -> _OpenFile:
        import pyarrow.parquet as pq
        from pyiceberg.io.pyarrow import _get_parquet_writer_kwargs

        self._counter += 1
        path = self._locations.new_data_location(
            data_file_name=f"{self._counter:05d}-0-{self._write_uuid}.parquet", partition_key=partition_key
        )
        stream = _create(self._table, path)
        self._paths.append(path)
        writer = pq.ParquetWriter(
            stream,
            schema=self._file_arrow,
            store_decimal_as_integer=True,
            **_get_parquet_writer_kwargs(self._table.metadata.properties),
        )
        self._open[key] = _OpenFile(path, stream, writer, partition_key)
        return self._open[key]

    def _roll(self, key: str) -> None:
        from pyiceberg.io.pyarrow import (
            compute_statistics_plan,
            data_file_statistics_from_parquet_metadata,
            parquet_path_to_id_mapping,
        )
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
        from pyiceberg.typedef import Record

        open_file = self._open.pop(key)
        open_file.writer.close()
        open_file.stream.close()
        metadata = self._table.metadata
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=open_file.writer.writer.metadata,
            stats_columns=compute_statistics_plan(self._file_schema, metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(self._file_schema),
        )
        data_file = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=open_file.path,
            file_format=FileFormat.PARQUET,
            partition=open_file.partition_key.partition if open_file.partition_key else Record(),
            file_size_in_bytes=len(self._table.io.new_input(open_file.path)),
            sort_order_id=None,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )
        # from_args does not keep the spec id (it is not stored in the file), so set it here.
        data_file.spec_id = metadata.default_spec_id
        self._written.append(data_file)


def _small_types(schema: pa.Schema) -> pa.Schema:
    """pyiceberg's Arrow schema with 32-bit offsets (string, binary, list), keeping every field id.

    Readers then get ``string`` rather than ``large_string`` back, and no batch needs an offsets copy.
    """
    import pyarrow as pa

    return pa.schema([_small_field(f) for f in schema], metadata=schema.metadata)


def _small_field(field: pa.Field) -> pa.Field:
    import pyarrow as pa
    import pyarrow.types as t

    kind = field.type
    if t.is_large_string(kind):
        kind = pa.string()
    elif t.is_large_binary(kind):
        kind = pa.binary()
    elif t.is_large_list(kind) or t.is_list(kind):
        kind = pa.list_(_small_field(kind.value_field))
    elif t.is_struct(kind):
        kind = pa.struct([_small_field(kind.field(i)) for i in range(kind.num_fields)])
    elif t.is_map(kind):
        kind = pa.map_(_small_field(kind.key_field), _small_field(kind.item_field))
    return field.with_type(kind)


def _create(table: Table, path: str) -> Any:
    """Open ``path`` for writing; storage refusing access becomes an error naming the settings to check."""
    try:
        return table.io.new_output(path).create(overwrite=True)
    except OSError as exc:
        if "ACCESS_DENIED" not in str(exc) and "Access Denied" not in str(exc):
            raise
        # A REST catalog may vend storage credentials with the table (pyiceberg asks for them); one that
        # does not, or a catalog of another type, leaves them to the catalog properties.
        given = "s3.access-key-id" in table.io.properties
        raise ConfigError(
            f"{'.'.join(table.name())}: the storage refused to let this run write {path} (access denied). "
            + ("The catalog properties' s3.access-key-id may not write there. " if given else
               "Neither the catalog vended storage credentials with the table nor do the catalog properties "
               "give s3.access-key-id and s3.secret-access-key. ")
            + "Set s3.access-key-id and s3.secret-access-key (and s3.endpoint for S3-compatible storage) "
            "in the catalog connection, or use a catalog that vends credentials."
        ) from exc


def _close_quietly(open_file: _OpenFile) -> None:
    try:
        open_file.writer.close()
        open_file.stream.close()
    except Exception:  # noqa: BLE001 - the files are deleted next; their close errors do not matter
        pass
