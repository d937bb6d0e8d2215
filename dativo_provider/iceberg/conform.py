"""Make each incoming batch exactly the table's shape: column order, storage types, nulls for gaps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_provider.calendar_range import find_out_of_range, out_of_range_help
from dativo_provider.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa


class BatchConformer:
    """Casts batches of ``incoming`` schema to ``target`` (the writer's schema), safely.

    A value that does not fit (overflow, sub-microsecond digits, a null in a required column, a date
    outside the years 1–9999) raises :class:`SourceError` naming the column; no value is silently
    changed.

    :param incoming: the source stream's schema.
    :param target: the table's Arrow schema (:attr:`DataFileWriter.arrow_schema`).
    :param required: names of the table's required columns.
    :param table: the target table, named in errors.
    """

    def __init__(self, incoming: pa.Schema, target: pa.Schema, required: set[str], table: str = "") -> None:
        import pyarrow as pa

        self._target = target
        self._positions = [incoming.get_field_index(f.name) for f in target]
        self._required = required
        self._identity = incoming.remove_metadata() == target.remove_metadata()
        self._temporal = [
            i for i, f in enumerate(target) if pa.types.is_date(f.type) or pa.types.is_timestamp(f.type)
        ]
        self._where = f"{table}: " if table else ""
        self._rows_seen = 0

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        if not self._identity:
            columns = [
                self._column(batch, position, field) for position, field in zip(self._positions, self._target)
            ]
            batch = pa.RecordBatch.from_arrays(columns, schema=self._target)
        else:
            # A source's NOT NULL is read when the run starts; a constraint dropped meanwhile would
            # otherwise let a null into a required column.
            for name in self._required:
                self._check_required(batch.column(name), name)
        for index in self._temporal:
            self._check_calendar(batch.column(index), self._target.field(index).name)
        self._rows_seen += batch.num_rows
        return batch

    def _column(self, batch: pa.RecordBatch, position: int, field: pa.Field) -> pa.Array:
        import pyarrow as pa

        if position < 0:
            if field.name in self._required:
                raise SourceError(
                    f"{self._where}required column {field.name!r} is missing from the source rows"
                )
            return pa.nulls(batch.num_rows, field.type)
        column = batch.column(position)
        if field.name in self._required:
            self._check_required(column, field.name)
        if column.type == field.type:
            return column
        try:
            return column.cast(field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(
                f"{self._where}column {field.name!r}: cannot store {column.type} as {field.type}: {exc}"
            ) from None

    def _check_required(self, column: pa.Array, name: str) -> None:
        if column.null_count:
            raise SourceError(
                f"{self._where}column {name!r} is required in the table but {column.null_count} rows are null"
            )

    def _check_calendar(self, column: pa.Array, name: str) -> None:
        found = find_out_of_range(column)
        if found is not None:
            row = self._rows_seen + found.position + 1
            raise SourceError(
                f"{self._where}column {name!r} holds {found.describe()} in row {row} of this run's rows. "
                f"{out_of_range_help(name)}"
            )
