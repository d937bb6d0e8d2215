"""Reading CSV, JSON Lines and Parquet streams as Arrow batches of one fixed schema, row by bad row.

This is the format layer of the files source; it knows nothing of listing or incremental state, so
any source that ends up with a file handle (object stores, Google Drive) can reuse it.

* Values are converted here, not by the readers: CSV columns are read as bytes and cast, JSON dates
  are cast from text. A value that does not convert then costs only its row.
* A batch that converts cleanly pays one cast per column; one with bad values is halved around the
  failures, so ``k`` bad rows in ``n`` cost ``O(k log n)`` casts.
* Messages name the file, the line (or row) and the column, never the value: it may be personal data.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.json as pjson
import pyarrow.parquet as pq

from dativo_provider.exceptions import SourceError

FORMATS = ("csv", "parquet", "jsonl")
BLOCK_BYTES = 1 << 20
PARQUET_BATCH_ROWS = 65_536
#: A JSON block that fails is parsed again in pieces of this many lines: each parse has a fixed cost
#: (~170 us), and a piece that fails is re-parsed around its bad line, so pieces must stay small.
RETRY_LINES = 128
_NO_COLUMNS = pa.schema([])
#: Where pyarrow's JSON parse errors say which row (0-based within the parsed text) failed.
_ROW = re.compile(r" in row (\d+)$")


@dataclass(frozen=True)
class CsvOptions:
    """How CSV files are parsed. An unquoted empty field is null in every column by default."""

    delimiter: str = ","
    quote_char: str = '"'
    header: bool = True
    null_values: tuple[str, ...] = ("",)
    encoding: str = "utf8"


def _ignore(location: str, reason: str) -> None:
    """Inference never rejects: bad rows in the sample are skipped."""


@dataclass(frozen=True)
class FileRead:
    """One file to read: the filesystem and path, its display name for messages, the schema its
    batches must have, and ``reject(location, reason)`` for bad rows (which may raise to stop)."""

    fs: pafs.FileSystem
    path: str
    display: str
    schema: pa.Schema = _NO_COLUMNS
    csv: CsvOptions = CsvOptions()
    batch_rows: int | None = None
    reject: Callable[[str, str], None] = _ignore

    def reject_at(self, number: int | None, reason: str) -> None:
        self.reject(f"{self.display}:{'?' if number is None else number}", reason)


def _convert(column: pa.Array, target: pa.DataType) -> pa.Array:
    if column.type == target:
        return column
    # CSV values arrive as bytes: checking UTF-8 first turns bad encoding into a per-row error.
    if pa.types.is_binary(column.type) and not pa.types.is_binary(target):
        column = pc.cast(column, pa.string())
    return pc.cast(column, target)


def _unconvertible(column: pa.Array, target: pa.DataType, start: int, length: int) -> Iterator[int]:
    """Rows in ``column[start:start+length]`` that do not convert. Halving around failures costs
    O(k log n) casts for k bad values, so a clean batch pays one cast."""
    try:
        _convert(column.slice(start, length), target)
        return
    except pa.ArrowInvalid:
        if length == 1:
            yield start
            return
    half = length // 2
    yield from _unconvertible(column, target, start, half)
    yield from _unconvertible(column, target, start + half, length - half)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.RecordBatch, dict[int, str]]:
    """Cast ``batch`` to ``schema`` by column name. Rows with a value that does not convert are
    dropped and returned as ``{row index: reason}``."""
    try:
        return _cast(batch, schema), {}
    except pa.ArrowInvalid:
        pass
    bad: dict[int, str] = {}
    for target in schema:
        for row in _unconvertible(batch.column(target.name), target.type, 0, batch.num_rows):
            bad.setdefault(row, f"column {target.name!r}: value does not convert to {target.type}")
    kept = batch.filter(pa.array([row not in bad for row in range(batch.num_rows)]))
    return _cast(kept, schema), dict(sorted(bad.items()))


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([_convert(batch.column(f.name), f.type) for f in schema], schema=schema)


#: A bad row found while parsing: its line (or record) number, if known, and why.
Problem = tuple[int | None, str]


def _emit(
    reading: FileRead,
    batch: pa.RecordBatch,
    number_of: Callable[[int], int | None],
    problems: list[Problem],
) -> Iterator[pa.RecordBatch]:
    """Conform one batch, reject its bad rows in file order, then yield it in ``batch_rows`` slices.

    :param number_of: maps a row index of ``batch`` to its line (or record) number in the file.
    :param problems: rows the parser already dropped from this part of the file.
    """
    good, bad = conform(batch, reading.schema)
    found = problems + [(number_of(row), reason) for row, reason in bad.items()]
    # In file order, so that with bad_rows="fail" the error names the first bad row.
    for number, reason in sorted(found, key=lambda problem: (problem[0] is None, problem[0] or 0)):
        reading.reject_at(number, reason)
    step = reading.batch_rows or max(good.num_rows, 1)
    for offset in range(0, good.num_rows, step):
        yield good.slice(offset, step)


def _check_columns(reading: FileRead, names: list[str]) -> None:
    """A file must carry exactly the schema's columns, in any order."""
    expected = reading.schema.names
    duplicate = next((n for n in names if names.count(n) > 1), None)
    missing = next((n for n in expected if n not in names), None)
    extra = next((n for n in names if n not in expected), None)
    if duplicate is not None:
        raise SourceError(f"{reading.display}: column {duplicate!r} appears more than once")
    if missing is not None:
        raise SourceError(f"{reading.display}: column {missing!r} is missing (the schema has {expected})")
    if extra is not None:
        raise SourceError(
            f"{reading.display}: column {extra!r} is not in the schema {expected}; declare it in 'columns'"
        )


def _widen(kind: pa.DataType) -> pa.DataType:
    """An inferred type as Iceberg can store it."""
    if pa.types.is_null(kind):
        return pa.string()
    if pa.types.is_dictionary(kind):
        return _widen(kind.value_type)
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", kind.tz)
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_widen(f.type)) for f in kind])
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(kind.value_field.with_type(_widen(kind.value_type)))
    return kind


def _widen_schema(schema: pa.Schema, csv: bool = False) -> pa.Schema:
    # Arrow has no string-to-time cast, so CSV times stay text.
    return pa.schema(
        pa.field(f.name, pa.string() if csv and pa.types.is_time(f.type) else _widen(f.type)) for f in schema
    )


# --- CSV ----------------------------------------------------------------------------------------


def _csv_reader(
    reading: FileRead, stream: pa.NativeFile, on_invalid: Callable[[Any], str], typed: bool
) -> pcsv.CSVStreamingReader:
    """A streaming CSV reader; ``typed`` reads the schema's columns as bytes, else pyarrow infers."""
    options = reading.csv
    read = pcsv.ReadOptions(
        # Serial reading is what makes pyarrow number the rows it rejects (and is not slower here).
        use_threads=False,
        block_size=BLOCK_BYTES,
        encoding=options.encoding,
        column_names=None if options.header else (reading.schema.names or None),
        autogenerate_column_names=not options.header and not reading.schema.names,
    )
    parse = pcsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote_char,
        newlines_in_values=True,
        invalid_row_handler=on_invalid,
    )
    convert = pcsv.ConvertOptions(
        column_types={name: pa.binary() for name in reading.schema.names} if typed else None,
        null_values=list(options.null_values),
        strings_can_be_null=True,
    )
    return pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)


def _infer_csv(reading: FileRead) -> pa.Schema:
    with reading.fs.open_input_stream(reading.path, compression="detect") as stream:
        return _widen_schema(_csv_reader(reading, stream, lambda row: "skip", typed=False).schema, csv=True)


def _read_csv(reading: FileRead) -> Iterator[pa.RecordBatch]:
    """Read every column as bytes and convert here: a value that does not convert then costs its
    row, where pyarrow's own conversion would abort the file without saying which row."""
    pending: list[Problem] = []  # rows pyarrow dropped for a wrong column count, not yet reported
    skipped: list[int] = []  # their record numbers, to number the rows it kept
    header = 1 if reading.csv.header else 0

    def on_invalid(row: Any) -> str:
        # An exception raised here would be swallowed by pyarrow: collect, report with the block.
        pending.append((row.number, f"expected {row.expected_columns} columns, found {row.actual_columns}"))
        if row.number is not None:
            skipped.append(row.number)
        return "skip"

    with reading.fs.open_input_stream(reading.path, compression="detect") as stream:
        reader = _csv_reader(reading, stream, on_invalid, typed=True)
        _check_columns(reading, reader.schema.names)
        kept = 0
        for batch in reader:
            number_of = partial(_record_number, skipped, header + kept + 1)
            # pyarrow parses a block ahead: rows it dropped after this batch wait for the next one.
            last = number_of(batch.num_rows - 1) if batch.num_rows else 0
            problems = [problem for problem in pending if (problem[0] or 0) < last]
            pending[:] = [problem for problem in pending if (problem[0] or 0) >= last]
            yield from _emit(reading, batch, number_of, problems)
            kept += batch.num_rows
        for number, reason in pending:  # rows dropped after the last kept one
            reading.reject_at(number, reason)


def _record_number(skipped: list[int], first: int, row: int) -> int:
    """The record number of kept row ``row`` of a batch whose first row would be record ``first``
    if pyarrow had dropped nothing, given the sorted record numbers it did drop."""
    position = first + row
    number = position
    while (shifted := position + bisect_right(skipped, number)) != number:
        number = shifted
    return number


# --- JSON Lines ---------------------------------------------------------------------------------


def _infer_jsonl(reading: FileRead) -> pa.Schema:
    with reading.fs.open_input_stream(reading.path, compression="detect") as stream:
        block = next(_line_blocks(stream), b"")
    return _widen_schema(_parse_json(block, None).schema)


def _read_jsonl(reading: FileRead) -> Iterator[pa.RecordBatch]:
    """Parse newline-aligned blocks with pyarrow: ``open_json`` cannot go on after a bad line,
    and a block that fails here is parsed again line-aware by :func:`_reparse_block`."""
    # pyarrow's JSON reader has no date parser: dates travel as text and are cast afterwards.
    parse_schema = pa.schema(
        field.with_type(pa.string()) if pa.types.is_date(field.type) else field for field in reading.schema
    )
    first_line = 1
    with reading.fs.open_input_stream(reading.path, compression="detect") as stream:
        for block in _line_blocks(stream):
            lines = _BlockLines(block, first_line)
            problems: list[Problem] = []
            try:
                table = _parse_json(block, parse_schema)
            except pa.ArrowInvalid:
                table, lines.numbers, problems = _reparse_block(
                    _numbered_lines(block, first_line), parse_schema
                )
            yield from _emit(reading, _one_batch(table), lines, problems)
            first_line += block.count(b"\n")


def _reparse_block(
    lines: list[tuple[int, bytes]], schema: pa.Schema
) -> tuple[pa.Table, list[int], list[Problem]]:
    """Parse the numbered lines of a block that failed as a whole: the good lines' table and line
    numbers, and the bad lines. :mod:`json` screens out syntax, shape and unknown fields first;
    values of the wrong type are found by pyarrow in pieces of :data:`RETRY_LINES` lines."""
    screened = [(number, line, _shape_problem(line, schema.names)) for number, line in lines]
    candidates = [(number, line) for number, line, reason in screened if reason is None]
    table, numbers, problems = _merge(
        (
            _parse_lines(candidates[start : start + RETRY_LINES], schema)
            for start in range(0, len(candidates), RETRY_LINES)
        ),
        schema,
    )
    return table, numbers, problems + [(number, reason) for number, _, reason in screened if reason]


def _line_blocks(stream: pa.NativeFile) -> Iterator[bytes]:
    """Chunks of about :data:`BLOCK_BYTES` that end at a line end, so no line is split."""
    carry = b""
    while chunk := stream.read(BLOCK_BYTES):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        yield carry


def _numbered_lines(block: bytes, first_line: int) -> list[tuple[int, bytes]]:
    return [(first_line + i, line) for i, line in enumerate(block.split(b"\n")) if line.strip()]


@dataclass
class _BlockLines:
    """Line numbers of a block's rows, worked out only when a row needs one."""

    block: bytes
    first_line: int
    numbers: list[int] | None = None

    def __call__(self, row: int) -> int | None:
        if self.numbers is None:
            self.numbers = [n for n, _ in _numbered_lines(self.block, self.first_line)]
        # A line holding two objects breaks the row-to-line mapping: say "unknown", never a wrong line.
        return self.numbers[row] if row < len(self.numbers) else None


def _parse_json(data: bytes, schema: pa.Schema | None) -> pa.Table:
    if not data.strip():
        return pa.table({}) if schema is None else schema.empty_table()
    return pjson.read_json(
        pa.BufferReader(data),
        read_options=pjson.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=pjson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="infer" if schema is None else "error"
        ),
    )


def _parse_lines(
    lines: list[tuple[int, bytes]], schema: pa.Schema
) -> tuple[pa.Table, list[int], list[Problem]]:
    """Parse numbered lines that failed together: the good ones' table and line numbers, and the
    bad lines. Each failure splits the lines around the row pyarrow names, or in halves when it
    names none, so k bad lines cost O(k log n) parses at most."""
    try:
        return _parse_json(b"\n".join(line for _, line in lines), schema), [n for n, _ in lines], []
    except pa.ArrowInvalid as exc:
        if len(lines) == 1:
            return schema.empty_table(), [], [(lines[0][0], _arrow_reason(exc))]
        named = _ROW.search(str(exc))
    # A wrong hint costs parses, never correctness: the named line alone is parsed again.
    row = int(named[1]) if named and int(named[1]) < len(lines) else None
    pieces = (
        [lines[: len(lines) // 2], lines[len(lines) // 2 :]]
        if row is None
        else [lines[:row], lines[row : row + 1], lines[row + 1 :]]
    )
    return _merge((_parse_lines(piece, schema) for piece in pieces if piece), schema)


def _merge(
    parsed: Iterable[tuple[pa.Table, list[int], list[Problem]]], schema: pa.Schema
) -> tuple[pa.Table, list[int], list[Problem]]:
    tables, numbers, problems = [schema.empty_table()], [], []
    for table, piece_numbers, piece_problems in parsed:
        tables.append(table)
        numbers += piece_numbers
        problems += piece_problems
    return pa.concat_tables(tables), numbers, problems


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else _empty_batch(table.schema)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def _shape_problem(line: bytes, names: list[str]) -> str | None:
    """Why a line cannot be a row, as far as :mod:`json` can tell (None: it may be one)."""
    try:
        value = json.loads(line)
    except UnicodeDecodeError:
        return "not valid UTF-8"
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err.msg} at column {err.colno})"
    if not isinstance(value, dict):
        return "not a JSON object"
    extra = next((key for key in value if key not in names), None)
    return None if extra is None else f"field {extra!r} is not in the schema; declare it in 'columns'"


def _arrow_reason(exc: pa.ArrowInvalid) -> str:
    """pyarrow's message for one bad line, less its row number and any quoted value."""
    message = str(exc).removeprefix("JSON parse error: ")
    return re.sub(r"(couldn't parse):.*", r"\1 the value", _ROW.sub("", message))


# --- Parquet ------------------------------------------------------------------------------------


def _infer_parquet(reading: FileRead) -> pa.Schema:
    with reading.fs.open_input_file(reading.path) as handle:
        return _widen_schema(pq.ParquetFile(handle).schema_arrow)


def _row_after(base: int, row: int) -> int:
    """The 1-based number of row ``row`` of a batch that follows ``base`` rows."""
    return base + row + 1


def _read_parquet(reading: FileRead) -> Iterator[pa.RecordBatch]:
    with reading.fs.open_input_file(reading.path) as handle:
        parquet = pq.ParquetFile(handle)
        _check_columns(reading, parquet.schema_arrow.names)
        for target in reading.schema:
            _check_castable(reading, parquet.schema_arrow.field(target.name).type, target)
        rows = 0
        batch_size = reading.batch_rows or PARQUET_BATCH_ROWS
        for batch in parquet.iter_batches(batch_size=batch_size, columns=reading.schema.names):
            yield from _emit(reading, batch, partial(_row_after, rows), [])
            rows += batch.num_rows


def _check_castable(reading: FileRead, kind: pa.DataType, target: pa.Field) -> None:
    try:
        _convert(pa.array([], type=kind), target.type)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
        raise SourceError(
            f"{reading.display}: column {target.name!r} is {kind}, which does not convert to {target.type}"
        ) from exc


def infer_schema(file_format: str, reading: FileRead) -> pa.Schema:
    """The schema of ``reading``'s file as pyarrow infers it from the first block, widened for Iceberg."""
    return _INFER[file_format](reading)


def read_batches(file_format: str, reading: FileRead) -> Iterator[pa.RecordBatch]:
    """Stream the file as batches of exactly ``reading.schema``, handing bad rows to ``reading.reject``.

    :raises SourceError: the file's columns do not fit the schema (names the file and the column).
    :raises pyarrow.ArrowException: the file is unreadable as a whole (a corrupt Parquet footer).
    """
    return _READERS[file_format](reading)


_INFER: dict[str, Callable[[FileRead], pa.Schema]] = {
    "csv": _infer_csv,
    "jsonl": _infer_jsonl,
    "parquet": _infer_parquet,
}
_READERS: dict[str, Callable[[FileRead], Iterator[pa.RecordBatch]]] = {
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
}
