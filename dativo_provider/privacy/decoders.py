"""Decode one file of an Iceberg table and say where in it a subject's identifiers are.

One decoder per kind of file, each walking every value the file holds with the column's type at hand:
Parquet and ORC (every value of every column, row group by row group, and the statistics and footer),
Avro (manifests, manifest lists and Avro data files, with the file's own schema), table metadata JSON
(gzip and zstd too), and anything else as text. A decoder fills in a :class:`FileScan`: the places it
found (never the values) and the other files the file names, for the scan to follow.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.privacy.matching import (
    Identifiers,
    bound_matches,
    numeric_allowed,
    typed_candidates,
    value_matches,
)

if TYPE_CHECKING:
    import pyarrow as pa

FileKind = Literal["parquet", "avro", "metadata", "other"]
#: A partition spec's fields as in metadata JSON: ``[{"source-id": 1, "transform": "identity", ...}]``.
_Spec = list[dict[str, Any]]
KINDS: tuple[FileKind, ...] = ("parquet", "avro", "metadata", "other")
_MAGIC_GZIP, _MAGIC_ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
#: Keys whose string values Iceberg computes (counters, settings): only non-numeric identifiers are sought.
_ICEBERG_KEY = re.compile(
    r"^(operation|(added|deleted|removed|total|changed)-[a-z-]+|partition-summaries-included|"
    r"(write|read|commit|history|gc|format|schema|snapshot|manifest|metadata|partitions)[.-].*)$"
)
#: Keys whose values name other files of the table (followed when outside the scanned locations).
_PATH_KEYS = frozenset({"metadata-file", "manifest-list", "statistics-path", "manifest_path", "file_path"})


@dataclass
class TableContext:
    """What the table's metadata JSON files say, to name manifest-list partition bounds."""

    columns: dict[int, tuple[str, Any]] = field(default_factory=dict)  # field id -> (name, iceberg type)
    specs: dict[int, _Spec] = field(default_factory=dict)  # spec id -> partition fields


@dataclass
class FileScan:
    """One file to decode: what to look for, and what was found."""

    kind: FileKind
    ids: Identifiers
    context: TableContext
    wheres: list[str] = field(default_factory=list)
    references: set[str] = field(default_factory=set)
    size: int = 0


def is_metadata_json(uri: str) -> bool:
    name = uri.rsplit("/", 1)[-1]
    return ".metadata.json" in name or name == "version-hint.text"


#: File kinds by their first four bytes (an orphan may have any name); "PARE" is encrypted Parquet.
MAGIC_KINDS: dict[bytes, FileKind] = {b"PAR1": "parquet", b"PARE": "parquet", b"Obj\x01": "avro"}


def decode(handle: Any, path: str, scanned: FileScan) -> None:
    """Decode ``handle`` (the file at ``path``) as ``scanned.kind``, appending to ``scanned``."""
    DECODERS[scanned.kind](handle, path, scanned)


# --- Parquet and ORC --------------------------------------------------------------------------------


def _scan_parquet(handle: Any, path: str, scanned: FileScan) -> None:
    """Every value of every column, row group by row group (64k rows at a time), then the footer."""
    import pyarrow.parquet as pq

    ids = scanned.ids
    parquet = pq.ParquetFile(handle)
    for group in range(parquet.num_row_groups):
        hits: dict[str, int] = {}
        for batch in parquet.iter_batches(batch_size=65536, row_groups=[group], use_threads=True):
            _count_batch(batch, ids, hits)
        scanned.wheres += [f"column {c} row group {group} ({_values(n)})" for c, n in hits.items()]
        scanned.wheres += _parquet_statistics(parquet.metadata.row_group(group), group, ids)
    for key, value in (parquet.metadata.metadata or {}).items():
        if ids.regex.search(value.decode("utf-8", "replace")):
            scanned.wheres.append(f"footer key-value metadata {key.decode('utf-8', 'replace')!r}")


def _parquet_statistics(row_group: Any, number: int, ids: Identifiers) -> list[str]:
    wheres = []
    for j in range(row_group.num_columns):
        column = row_group.column(j)
        stats = column.statistics
        if stats is None or not stats.has_min_max:
            continue
        name = re.sub(r"\.list\.(element|item)\b", ".element", column.path_in_schema)
        name = name.replace(".key_value.", ".")
        numeric = numeric_allowed(ids, name)
        for label, value in (("min", stats.min), ("max", stats.max)):
            if value_matches(value, ids, numeric, prefix=True):
                wheres.append(f"column {name} row group {number} statistics ({label})")
    return wheres


def _scan_orc(handle: Any, path: str, scanned: FileScan) -> None:
    from pyarrow import orc

    ids = scanned.ids
    reader = orc.ORCFile(handle)
    for stripe in range(reader.nstripes):
        hits: dict[str, int] = {}
        _count_batch(reader.read_stripe(stripe), ids, hits)
        scanned.wheres += [f"column {c} stripe {stripe} ({_values(n)})" for c, n in hits.items()]


def _values(count: int) -> str:
    return f"{count} value{'s' * (count > 1)}"


def _count_batch(batch: pa.RecordBatch, ids: Identifiers, hits: dict[str, int]) -> None:
    for name, column in zip(batch.schema.names, batch.columns):
        for path, leaf in _leaves(column, name):
            found = _count_array(leaf, ids, numeric_allowed(ids, path))
            if found:
                hits[path] = hits.get(path, 0) + found


def _leaves(array: pa.Array, path: str) -> Iterator[tuple[str, pa.Array]]:
    """Primitive arrays under ``array``: struct fields, list items, map keys and values."""
    import pyarrow as pa

    kind = array.type
    if pa.types.is_dictionary(kind):
        array, kind = array.dictionary_decode(), kind.value_type
    if pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            yield from _leaves(array.field(i), f"{path}.{kind.field(i).name}")
    elif pa.types.is_map(kind):
        yield from _leaves(array.keys, f"{path}.key")
        yield from _leaves(array.items, f"{path}.value")
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        yield from _leaves(array.flatten(), f"{path}.element")
    else:
        yield path, array


def _count_array(array: pa.Array, ids: Identifiers, numeric: bool) -> int:
    """How many values of a primitive array match."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        array = array.cast(pa.large_string() if pa.types.is_string_view(kind) else pa.large_binary())
        kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
            or pa.types.is_large_binary(kind):
        matched = pc.match_substring_regex(array, ids.column_patterns[0], ignore_case=True)
        for pattern in ids.column_patterns[1:]:
            matched = pc.or_(matched, pc.match_substring_regex(array, pattern, ignore_case=True))
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            exact = pc.is_in(array, value_set=pa.array(sorted(ids.encodings(numeric)), kind))
            matched = pc.or_(matched, exact)
        return pc.sum(matched).as_py() or 0
    candidates = typed_candidates(kind, ids) if numeric or pa.types.is_fixed_size_binary(kind) else []
    if not candidates:
        return 0
    return pc.sum(pc.is_in(array, value_set=pa.array(candidates, kind))).as_py() or 0


# --- Avro -------------------------------------------------------------------------------------------


def _scan_avro(handle: Any, path: str, scanned: FileScan) -> None:
    """Every field of every record, with pyiceberg's reader and the file's own schema.

    In manifests and manifest lists only strings, binaries, bounds and partition values are compared
    (their numbers are counts, sizes and ids Iceberg computes); in an Avro data file every value is.
    """
    from pyiceberg.avro.file import AvroFile

    ids = scanned.ids
    reader: AvroFile[Any] = AvroFile(_bytes_input(path, handle.read()))
    with reader as avro:
        meta = avro.header.meta
        # Header values are numbers Iceberg computes (sequence numbers, ids) and schemas: a small
        # numeric id would match a sequence number, so only the non-numeric identifiers are sought.
        words = ids.words_regex
        for key, value in meta.items():
            if key != "avro.schema" and words is not None and words.search(str(value)):
                scanned.wheres.append(f"header {key!r}")
        walker = _AvroWalker(meta, scanned)
        for number, record in enumerate(avro):
            walker.struct(record, avro.schema.as_struct(), "", number)


def _bytes_input(path: str, data: bytes) -> Any:
    """A pyiceberg InputFile over bytes already read (its Avro reader reads whole files anyway)."""
    import io

    from pyiceberg.io import InputFile

    class BytesInputFile(InputFile):
        def __len__(self) -> int:
            return len(data)

        def exists(self) -> bool:
            return True

        def open(self, seekable: bool = True) -> Any:
            return io.BytesIO(data)

    return BytesInputFile(path)


class _AvroWalker:
    """Walks decoded Avro records beside their Iceberg schema, appending where identifiers are."""

    def __init__(self, meta: Mapping[str, str], scanned: FileScan):
        self.ids, context = scanned.ids, scanned.context
        self.scanned = scanned
        self.structural = "partition-spec" in meta or "snapshot-id" in meta  # a manifest or manifest list
        self.columns: dict[int, tuple[str | None, Any]] = dict(context.columns)
        self.specs = context.specs
        self.spec: _Spec | None = None
        if "schema" in meta:
            self.columns.update(_schema_columns(json.loads(meta["schema"])))
        if "partition-spec" in meta:
            self.spec = json.loads(meta["partition-spec"])

    def struct(self, record: Any, struct: Any, path: str, entry: int) -> None:
        for position, nested in enumerate(struct.fields):
            value = record[position]
            if value is None:
                continue
            where = f"{path}.{nested.name}" if path else nested.name
            if nested.name in _PATH_KEYS and isinstance(value, str):
                self.scanned.references.add(value)
            if self.structural and nested.field_id == 102:  # data_file.partition
                self._partition(value, nested.field_type, self.spec, where, entry)
            elif self.structural and nested.field_id in (125, 128):  # lower_bounds, upper_bounds
                self._bounds(value, where, entry)
            elif self.structural and nested.field_id == 507:  # manifest list: partition summaries
                spec_id = _by_id(record, struct, 502)
                self._summaries(value, nested.field_type.element_type, self.specs.get(spec_id), where, entry)
            else:
                self.value(value, nested.field_type, where, entry)

    def value(self, value: Any, kind: Any, path: str, entry: int) -> None:
        from pyiceberg.types import ListType, MapType, StructType

        if isinstance(kind, StructType):
            self.struct(value, kind, path, entry)
        elif isinstance(kind, ListType):
            for item in value:
                if item is not None:
                    self.value(item, kind.element_type, f"{path}[]", entry)
        elif isinstance(kind, MapType):
            for key, item in value.items():
                self.value(key, kind.key_type, f"{path}{{key}}", entry)
                if item is not None:
                    self.value(item, kind.value_type, f"{path}{{value}}", entry)
        elif value_matches(value, self.ids, not self.structural and numeric_allowed(self.ids, path)):
            self.found(path, entry)

    def _bounds(self, bounds: Mapping[int, bytes], path: str, entry: int) -> None:
        for field_id, raw in bounds.items():
            name, kind = self.columns.get(field_id, (None, None))
            if bound_matches(raw, kind, self.ids, name is None or numeric_allowed(self.ids, name)):
                self.found(f"{path}[{field_id}] (column {name or 'unknown'})", entry)

    def _partition(self, record: Any, struct: Any, spec: _Spec | None, path: str, entry: int) -> None:
        for position, nested in enumerate(struct.fields):
            numeric = self._partition_numeric(spec, position, nested.name)
            if numeric is not None and value_matches(record[position], self.ids, numeric, prefix=True):
                self.found(f"{path}.{nested.name}", entry)

    def _summaries(self, summaries: list[Any], struct: Any, spec: _Spec | None, path: str,
                   entry: int) -> None:
        for position, summary in enumerate(summaries):
            numeric = self._partition_numeric(spec, position, None)
            if numeric is None:
                continue
            kind = self._partition_type(spec, position)
            for label, raw in (("lower_bound", _by_id(summary, struct, 510)),
                               ("upper_bound", _by_id(summary, struct, 511))):
                if raw is not None and bound_matches(raw, kind, self.ids, numeric):
                    self.found(f"{path}[{position}].{label}", entry)

    def _partition_numeric(self, spec: _Spec | None, position: int, name: str | None) -> bool | None:
        """None: the transform hides the value (bucket, dates); else whether numbers are compared."""
        if spec is None or position >= len(spec):
            return not self.ids.columns or (name is not None and numeric_allowed(self.ids, name))
        transform = str(spec[position].get("transform", ""))
        if transform != "identity" and not transform.startswith("truncate"):
            return None
        source = self.columns.get(spec[position].get("source-id", -1), (spec[position].get("name"), None))[0]
        return numeric_allowed(self.ids, source or "")

    def _partition_type(self, spec: _Spec | None, position: int) -> Any:
        if spec is None or position >= len(spec):
            return None
        return self.columns.get(spec[position].get("source-id", -1), (None, None))[1]

    def found(self, path: str, entry: int) -> None:
        self.scanned.wheres.append(f"{path} in entry {entry}")


def _by_id(record: Any, struct: Any, field_id: int) -> Any:
    for position, nested in enumerate(struct.fields):
        if nested.field_id == field_id:
            return record[position]
    return None


def _schema_columns(schema: Mapping[str, Any]) -> dict[int, tuple[str, Any]]:
    """Field id -> (dotted name, pyiceberg type) for an Iceberg schema in its JSON form."""
    from pyiceberg.schema import Schema, index_by_id

    parsed = Schema.model_validate(schema)
    return {fid: (parsed.find_column_name(fid) or nested.name, nested.field_type)
            for fid, nested in index_by_id(parsed).items()}


# --- Metadata JSON and everything else -------------------------------------------------------------


def _scan_metadata(handle: Any, path: str, scanned: FileScan) -> None:
    """Every key and value of a table metadata file (gzip and zstd too); numbers are Iceberg's own."""
    ids = scanned.ids
    raw = _decompressed(handle.read())
    if path.rsplit("/", 1)[-1] == "version-hint.text":
        int(raw.decode().strip())  # a version number, nothing else: anything else fails decoding
        return
    document = json.loads(raw)
    for schema in document.get("schemas", []) + ([document["schema"]] if "schema" in document else []):
        scanned.context.columns.update(_schema_columns(schema))
    for spec in document.get("partition-specs", []):
        scanned.context.specs[spec["spec-id"]] = spec["fields"]
    for where, key in _json_hits(document, "$", None, ids, scanned.references):
        scanned.wheres.append(where if key is None else f"{where} (a key)")


def _json_hits(node: Any, path: str, key: str | None, ids: Identifiers,
               references: set[str]) -> Iterator[tuple[str, str | None]]:
    if isinstance(node, dict):
        for name, value in node.items():
            if ids.regex.search(name):
                yield path, name
                child = f"{path}[***]"
            else:
                child = f"{path}.{name}" if re.fullmatch(r"[\w-]+", name) else f"{path}[{json.dumps(name)}]"
            yield from _json_hits(value, child, name, ids, references)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _json_hits(value, f"{path}[{index}]", key, ids, references)
    elif isinstance(node, str):
        if key in _PATH_KEYS:
            references.add(node)
        regex = ids.words_regex if key is not None and _ICEBERG_KEY.match(key) else ids.regex
        if regex is not None and regex.search(node):
            yield path, None
    elif key in ("initial-default", "write-default") and value_matches(node, ids, True):
        yield path, None


def _scan_other(handle: Any, path: str, scanned: FileScan) -> None:
    """ORC data files; Hadoop ``.crc`` checksums; else UTF-8 text (after gzip/zstd), in 8 MB pieces.

    Text that is not Iceberg's (an export, a log) is searched for every identifier as a token.
    """
    ids = scanned.ids
    head = handle.read(4)
    handle.seek(0)
    if head[:3] == b"ORC":
        return _scan_orc(handle, path, scanned)
    if head == b"crc\x00" and path.endswith(".crc"):
        return None  # 4-byte checksums of another file's bytes: they hold no value
    compressed = head[:2] == _MAGIC_GZIP or head == _MAGIC_ZSTD
    chunks = iter([_decompressed(handle.read())]) if compressed else _chunks(handle)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    carry, overlap = "", max(len(v) for v in ids.texts) + 2
    for chunk in chunks:
        text = carry + decoder.decode(chunk)
        if ids.token_regex.search(text):
            scanned.wheres.append("text content")
            return None
        carry = text[-overlap:]
    decoder.decode(b"", final=True)  # raises on a truncated UTF-8 sequence: not text
    return None


def _chunks(handle: Any, size: int = 8 << 20) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


def _decompressed(raw: bytes) -> bytes:
    if raw[:2] == _MAGIC_GZIP:
        return gzip.decompress(raw)
    if raw[:4] == _MAGIC_ZSTD:
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw


DECODERS: dict[str, Callable[[Any, str, FileScan], None]] = {
    "parquet": _scan_parquet,
    "avro": _scan_avro,
    "metadata": _scan_metadata,
    "other": _scan_other,
}
