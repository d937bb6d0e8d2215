"""Make each incoming batch exactly the table's shape: column order, storage types, nulls for gaps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_provider.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa


class BatchConformer:
    """Casts batches of ``incoming`` schema to ``target`` (the writer's schema), safely.

    A value that does not fit (overflow, sub-microsecond digits, a null in a required column)
    raises :class:`SourceError` naming the column; no value is silently changed.

    :param incoming: the source stream's schema.
    :param target: the table's Arrow schema (:attr:`DataFileWriter.arrow_schema`).
    :param required: names of the table's required columns.
    """

    def __init__(self, incoming: pa.Schema, target: pa.Schema, required: set[str]) -> None:
        self._target = target
        self._positions = [incoming.get_field_index(f.name) for f in target]
        self._required = required
        self._identity = incoming.remove_metadata() == target.remove_metadata()

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        if self._identity:
            return batch
        columns = [
            self._column(batch, position, field) for position, field in zip(self._positions, self._target)
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self._target)

    def _column(self, batch: pa.RecordBatch, position: int, field: pa.Field) -> pa.Array:
        import pyarrow as pa

        if position < 0:
            if field.name in self._required:
                raise SourceError(f"required column {field.name!r} is missing from the source rows")
            return pa.nulls(batch.num_rows, field.type)
        column = batch.column(position)
        if field.name in self._required and column.null_count:
            raise SourceError(f"column {field.name!r} is required in the table but {column.null_count} rows are null")
        if column.type == field.type:
            return column
        try:
            return column.cast(field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(f"column {field.name!r}: cannot store {column.type} as {field.type}: {exc}") from exc
