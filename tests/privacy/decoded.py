"""An independent decoded scan of every file under a warehouse, for the erasure tests.

It shares no code with ``dativo_provider.privacy.verify``: Parquet files are read whole with pyarrow,
Avro manifests and manifest lists through pyiceberg's Avro reader, metadata JSON with ``json``. E-mails
are looked for in every decoded string, case-insensitively, as whole addresses (not followed by more
domain characters); ids in the named id columns of Parquet files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def occurrences(root: Path, *, emails: Iterable[str], ids: Iterable[int] = (),
                id_columns: Iterable[str] = ("customer_id",)) -> list[str]:
    """``path: what`` for every file under ``root`` that still holds one of ``emails`` or ``ids``."""
    patterns = [re.compile(re.escape(e.strip().lower()) + r"(?![a-z0-9.-]*[a-z0-9])") for e in emails]
    wanted_ids, columns = set(ids), set(id_columns)
    found = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        for what in _hits(path, patterns, wanted_ids, columns):
            found.append(f"{path}: {what}")
    return found


def _hits(path: Path, patterns: list[re.Pattern], ids: set[int], id_columns: set[str]) -> Iterator[str]:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        for name in table.column_names:
            column = table[name]
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                yield from _text_hits(name, (v for v in column.to_pylist() if v is not None), patterns)
            elif name in id_columns and ids and pa.types.is_integer(column.type):
                hits = pc.sum(pc.is_in(column, pa.array(sorted(ids), column.type)).cast("int64")).as_py()
                if hits:
                    yield f"{name}: {hits} rows"
    elif path.suffix == ".avro":
        yield from _text_hits("avro", (v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                                       for v in _avro_leaves(path) if isinstance(v, (str, bytes))), patterns)
    elif path.name.endswith(".json"):
        yield from _text_hits("json", [json.dumps(json.loads(path.read_text()))], patterns)
    elif path.suffix == ".db":
        yield from _text_hits("sqlite", [path.read_bytes().decode("utf-8", "replace")], patterns)


def _text_hits(where: str, values: Iterable[str], patterns: list[re.Pattern]) -> Iterator[str]:
    for value in values:
        lowered = value.lower()
        for pattern in patterns:
            if pattern.search(lowered):
                yield f"{where}: {pattern.pattern}"
                return


def _avro_leaves(path: Path) -> Iterator[object]:
    from pyiceberg.avro.file import AvroFile
    from pyiceberg.io.pyarrow import PyArrowFileIO

    with AvroFile(PyArrowFileIO().new_input(str(path))) as reader:
        for record in reader:
            yield from _leaves(record)


def _leaves(value: object) -> Iterator[object]:
    from pyiceberg.typedef import Record

    if isinstance(value, Record):
        for i in range(len(value)):
            yield from _leaves(value[i])
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(k)
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
