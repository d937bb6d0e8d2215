"""Prove that a data subject's identifiers are physically gone from the storage of Iceberg tables.

A row deleted from an Iceberg table lives on in the files of older snapshots, in files no metadata
references any more, in the column bounds of manifests and in Parquet footers. Parquet pages and Avro
blocks are compressed, so searching raw bytes proves nothing: this module lists every file under each
table's location (and every file its metadata points to elsewhere), decodes it and compares each
value with every encoding of the identifiers.

Matching rules (written for few misses; a false alarm costs a look, a miss costs a breach):

* Text is compared case-insensitively. A non-numeric identifier (an e-mail, a UUID) matches anywhere
  inside a string as a token (:func:`~dativo_provider.privacy.identifiers.token_pattern`): a UUID not
  glued to letters or digits, an e-mail not glued to further address characters (``x@example.org``
  is not found in ``x@example.org.uk`` nor in ``john.x@example.org``). A numeric identifier matches a whole
  string (``" 42 "``) or a Hive-style path segment (``customer_id=42/``); as a free-text token it
  would collide with every count.
* Numbers (Parquet/ORC/Avro-data integer, float and decimal values; manifest bounds and partition
  values) match numeric identifiers, only in ``Identifiers.columns`` when that is given. Counters and
  sizes Iceberg computes itself (record counts, file sizes, ids in metadata) are never compared.
* Manifest bounds and Parquet statistics are decoded with the column's type (Iceberg single-value
  serialization: int32/int64 little-endian, decimals as big-endian unscaled, UUIDs as 16 bytes, text
  as UTF-8); a string bound of at least 8 characters that is a prefix of an identifier (a truncated
  bound, or one whose last character was incremented) matches too.
* A file that cannot be decoded, a location that cannot be listed and a table that cannot be loaded
  are findings: absence cannot be proven.

Findings never carry identifier values: any occurrence in a path is replaced with ``***``.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.privacy import identifiers as rule

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

FileKind = Literal["parquet", "avro", "metadata", "other"]
#: A partition spec's fields as in metadata JSON: ``[{"source-id": 1, "transform": "identity", ...}]``.
_Spec = list[dict[str, Any]]
KINDS: tuple[FileKind, ...] = ("parquet", "avro", "metadata", "other")
#: A string bound or statistic this long that is a prefix of an identifier counts as a leak.
PREFIX_MIN_CHARS = 8
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)
_NUMERIC = re.compile(r"[+-]?\d+")
#: Identifiers per regular expression when searching column values (see Identifiers.column_patterns).
_PATTERN_CHUNK = 200
_MAGIC_GZIP, _MAGIC_ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
#: Keys whose string values Iceberg computes (counters, settings): only non-numeric identifiers are sought.
_ICEBERG_KEY = re.compile(
    r"^(operation|(added|deleted|removed|total|changed)-[a-z-]+|partition-summaries-included|"
    r"(write|read|commit|history|gc|format|schema|snapshot|manifest|metadata|partitions)[.-].*)$"
)
#: Keys whose values name other files of the table (followed when outside the scanned locations).
_PATH_KEYS = frozenset({"metadata-file", "manifest-list", "statistics-path", "manifest_path", "file_path"})


@dataclass(frozen=True)
class Identifiers:
    """A subject's identifier values, and every encoding of them the verifier looks for.

    :param values: identifier values as text: ids (``"42"`` also matches the integer 42), e-mails (in
        any case: text is compared case-insensitively), UUIDs. Kept out of ``repr``.
    :param columns: if given, numbers (and their binary encodings) match only in these columns (leaf
        name or dotted path, any table). Text always matches everywhere. Give the identifier columns
        when ids are small integers that also occur as ordinary quantities.
    """

    values: tuple[str, ...] = field(repr=False)
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A blank value would be found in every empty string: refuse it (the rule of identifiers.py).
        cleaned = tuple(v.strip() for v in rule.validated_ids(self.values, parameter="Identifiers values"))
        if not cleaned:
            raise ConfigError("Identifiers: give at least one non-empty identifier value")
        object.__setattr__(self, "values", tuple(dict.fromkeys(cleaned)))
        object.__setattr__(self, "columns", tuple(c.lower() for c in self.columns))

    @functools.cached_property
    def texts(self) -> frozenset[str]:
        """Lower-cased text forms."""
        return frozenset(v.lower() for v in self.values)

    @functools.cached_property
    def integers(self) -> frozenset[int]:
        return frozenset(int(v) for v in self.values if _NUMERIC.fullmatch(v))

    @functools.cached_property
    def uuids(self) -> frozenset[uuid.UUID]:
        found = set()
        for value in self.values:
            try:
                found.add(uuid.UUID(value))
            except ValueError:
                continue
        return frozenset(found)

    @functools.cached_property
    def pattern(self) -> str:
        """The text rule as one regular expression (RE2 and Python syntax; use it case-insensitively)."""
        words, numbers = rule.token_pattern(self._texts(numeric=False)), self._alternatives(numeric=True)
        parts = [words] if words else []
        if numbers:
            parts.append(rf"^\s*(?:{numbers})\s*$|=(?:{numbers})(?:[/&,;]|$)")
        return "|".join(parts)

    @functools.cached_property
    def column_patterns(self) -> list[str]:
        """:attr:`pattern` split into patterns of at most :data:`_PATTERN_CHUNK` identifiers each: one
        alternation of thousands of values falls off RE2's fast path (measured 6.7× slower)."""
        if len(self.texts) <= _PATTERN_CHUNK:
            return [self.pattern]
        texts = sorted(self.texts)
        return [Identifiers(tuple(texts[i:i + _PATTERN_CHUNK])).pattern
                for i in range(0, len(texts), _PATTERN_CHUNK)]

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)

    @functools.cached_property
    def words_regex(self) -> re.Pattern[str] | None:
        """Only the non-numeric identifiers: for values Iceberg computes (summary counters)."""
        words = rule.token_pattern(self._texts(numeric=False))
        return re.compile(words, re.IGNORECASE) if words else None

    @functools.cached_property
    def token_regex(self) -> re.Pattern[str]:
        """Every identifier as a token, numbers too: for files that are not Iceberg's (CSV, JSON, logs)."""
        return re.compile(rule.token_pattern(self.texts), re.IGNORECASE | re.MULTILINE)

    def _texts(self, numeric: bool) -> list[str]:
        return [v for v in self.texts if bool(_NUMERIC.fullmatch(v)) == numeric]

    def _alternatives(self, numeric: bool) -> str:
        return "|".join(rule.escape(v) for v in sorted(self._texts(numeric), key=len, reverse=True))

    @functools.cached_property
    def _text_encodings(self) -> frozenset[bytes]:
        return frozenset({v.encode() for v in self.values} | {u.bytes for u in self.uuids})

    @functools.cached_property
    def _all_encodings(self) -> frozenset[bytes]:
        found = set(self._text_encodings)
        for n in self.integers:
            if _INT32[0] <= n <= _INT32[1]:
                found.add(n.to_bytes(4, "little", signed=True))
            if _INT64[0] <= n <= _INT64[1]:
                found.add(n.to_bytes(8, "little", signed=True))
            found.add(n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))
        return frozenset(found)

    def encodings(self, numeric: bool) -> frozenset[bytes]:
        """Binary forms: UTF-8 text and UUID bytes, plus (``numeric``) int32/int64 little-endian and
        big-endian two's complement (an unscaled decimal of scale 0) for each integer."""
        return self._all_encodings if numeric else self._text_encodings

    def scrub(self, text: str, *, numbers: bool = True) -> str:
        """``text`` with every occurrence of an identifier replaced by ``***``; numeric identifiers only
        where not glued to letters or digits, and only if ``numbers``."""
        for value in sorted(self.texts, key=len, reverse=True):
            if not _NUMERIC.fullmatch(value):
                text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
            elif numbers:
                bounded = rf"(?<![0-9a-z]){re.escape(value)}(?![0-9a-z])"
                text = re.sub(bounded, "***", text, flags=re.IGNORECASE)
        return text


@dataclass
class Finding:
    """A place where an identifier (or something that cannot be proven free of one) was found.

    :param where: e.g. ``column email row group 0 (1 value)``, ``data_file.lower_bounds[2] (column
        email) in entry 3``, ``$.snapshots[2].summary``; never the identifier itself.
    """

    file: str
    kind: FileKind
    where: str


@dataclass
class VerificationResult:
    """What :func:`verify_erased` scanned and found. ``passed`` is the only verdict to act on."""

    passed: bool
    files_scanned: dict[str, int]
    bytes_scanned: int
    findings: list[Finding]
    #: Rows discovery still finds (must be 0); None when no rediscovery was given.
    discovery_rows: int | None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; holds no identifier value."""
        return asdict(self)


def verify_erased(
    catalog: CatalogConfig,
    tables: list[str],
    identifiers: Identifiers,
    *,
    rediscover: Callable[[], int] | None = None,
    object_store: ObjectStoreConfig | None = None,
) -> VerificationResult:
    """Decode every file of ``tables`` and search it for ``identifiers``.

    Scans every file under each table's location and its ``write.data.path``/``write.metadata.path``
    (orphans included), then any file its metadata references elsewhere.

    :param tables: ``namespace.name`` of each table to check.
    :param rediscover: reruns discovery and returns the subject's row count; must return 0 to pass.
    :param object_store: S3 credentials and endpoint; default: the catalog's ``s3.*`` properties.
    :returns: passed only if there is no finding and (with ``rediscover``) discovery finds no row.
        Reading errors of a file become findings; catalog and credential errors are raised.
    """
    started = time.monotonic()
    scan = _Scan(identifiers, object_store or _store_from_catalog(catalog))
    iceberg = catalog.load()
    for name in tables:
        scan.table(iceberg, name)
    rows = rediscover() if rediscover is not None else None
    # paths can hold identifiers (partition directories); a where holds only the names of columns and
    # keys (a key that matched is shown as [***]) and numbers we put there (row groups, entries)
    findings = [Finding(identifiers.scrub(f.file), f.kind, identifiers.scrub(f.where, numbers=False))
                for f in scan.findings]
    result = VerificationResult(
        passed=not findings and not rows,
        files_scanned=scan.counts,
        bytes_scanned=scan.bytes,
        findings=findings,
        discovery_rows=rows,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("verification of %s: passed=%s, %s files, %s bytes, %s findings",
             tables, result.passed, sum(scan.counts.values()), scan.bytes, len(findings))
    return result


def _store_from_catalog(catalog: CatalogConfig) -> ObjectStoreConfig:
    props = catalog.properties
    return ObjectStoreConfig(
        access_key_id=props.get("s3.access-key-id"),
        secret_access_key=props.get("s3.secret-access-key"),
        session_token=props.get("s3.session-token"),
        region=props.get("s3.region"),
        endpoint_url=props.get("s3.endpoint"),
    )


@dataclass
class _TableContext:
    """What the table's metadata JSON files say, to name manifest-list partition bounds."""

    columns: dict[int, tuple[str, Any]] = field(default_factory=dict)  # field id -> (name, iceberg type)
    specs: dict[int, _Spec] = field(default_factory=dict)  # spec id -> partition fields


@dataclass
class _FileScan:
    """One file to decode: what to look for, and what was found."""

    kind: FileKind
    ids: Identifiers
    context: _TableContext
    wheres: list[str] = field(default_factory=list)
    references: set[str] = field(default_factory=set)
    size: int = 0


class _Scan:
    """Lists, decodes and searches the files of each table, collecting findings."""

    def __init__(self, identifiers: Identifiers, store: ObjectStoreConfig) -> None:
        self.ids = identifiers
        self.store = store
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.bytes = 0
        self.seen: set[str] = set()

    def table(self, iceberg: Any, name: str) -> None:
        try:
            table = iceberg.load_table(name)
        except Exception as exc:  # any failure: the table's files cannot be found, so nothing is proven
            self.findings.append(Finding(name, "other", f"table cannot be loaded ({type(exc).__name__}); "
                                                        "its files were not scanned"))
            return
        roots = {table.location()} | {table.properties[k] for k in ("write.data.path", "write.metadata.path")
                                      if table.properties.get(k)}
        files = [uri for root in sorted(roots) for uri in self._list(root)]
        context = _TableContext()
        while files:
            files = [uri for uri in dict.fromkeys(files) if uri not in self.seen]
            self.seen.update(files)
            references = self._scan_files(files, context)
            files = [uri for uri in sorted(references) if uri not in self.seen and self._exists(uri)]

    def _scan_files(self, uris: list[str], context: _TableContext) -> set[str]:
        """Metadata JSON first (it names the partition specs manifest lists need), the rest in parallel."""
        first = [u for u in uris if _is_metadata_json(u)]
        rest = [u for u in uris if not _is_metadata_json(u)]
        references: set[str] = set()
        workers = min(8, os.cpu_count() or 1)
        for group in (first, rest):
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for uri, scanned in zip(group, pool.map(lambda u: self._scan_file(u, context), group)):
                    self.counts[scanned.kind] += 1
                    self.bytes += scanned.size
                    self.findings.extend(Finding(uri, scanned.kind, w) for w in scanned.wheres)
                    references |= {_normalise_uri(r, uri) for r in scanned.references}
        return references

    def _scan_file(self, uri: str, context: _TableContext) -> _FileScan:
        scanned = _FileScan("metadata" if _is_metadata_json(uri) else "other", self.ids, context)
        if self.ids.regex.search(unquote(uri)):
            scanned.wheres.append("file path")
        try:
            fs, path = self._fs(uri)
            with fs.open_input_file(path) as handle:
                scanned.size = handle.size()
                if scanned.kind != "metadata":
                    scanned.kind = _MAGIC_KINDS.get(handle.read(4), "other")
                    handle.seek(0)
                _DECODERS[scanned.kind](handle, path, scanned)
        except Exception as exc:  # every reading or decoding failure means absence cannot be proven
            scanned.wheres.append(f"cannot be decoded ({type(exc).__name__}: {str(exc)[:200]})")
        return scanned

    def _list(self, root: str) -> list[str]:
        import pyarrow.fs as pafs

        fs, path = self._fs(root)
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        except OSError as exc:
            self.findings.append(Finding(root, "other", f"location cannot be listed ({type(exc).__name__})"))
            return []
        prefix = root.split("://", 1)[0] + "://" if "://" in root else ""
        prefix += "/" if prefix == "file://" and not path.startswith("/") else ""
        return sorted(prefix + i.path for i in infos if i.type == pafs.FileType.File)

    def _exists(self, uri: str) -> bool:
        """True also when it cannot be told: scanning then reports the error."""
        import pyarrow.fs as pafs

        try:
            fs, path = self._fs(uri)
            return fs.get_file_info(path).type == pafs.FileType.File
        except Exception:  # noqa: BLE001 - unknown scheme, permissions: let the scan report it
            return True

    def _fs(self, uri: str) -> tuple[pafs.FileSystem, str]:
        scheme = urlsplit(uri).scheme
        if scheme in ("s3", "s3a", "s3n"):
            return self._s3(), uri.split("://", 1)[1]
        if scheme in ("", "file"):
            return _local(), uri.removeprefix("file://")
        import pyarrow.fs as pafs

        return pafs.FileSystem.from_uri(uri)

    @functools.cached_property
    def _s3_fs(self) -> pafs.FileSystem:
        from dativo_provider.sources.files import s3_filesystem

        return s3_filesystem(self.store)

    def _s3(self) -> pafs.FileSystem:
        return self._s3_fs


@functools.cache
def _local() -> pafs.FileSystem:
    import pyarrow.fs as pafs

    return pafs.LocalFileSystem()


def _normalise_uri(reference: str, referrer: str) -> str:
    if "://" in reference or not reference.startswith("/"):
        return reference
    return f"file://{reference}" if referrer.startswith("file://") else reference


def _is_metadata_json(uri: str) -> bool:
    name = uri.rsplit("/", 1)[-1]
    return ".metadata.json" in name or name == "version-hint.text"


#: File kinds by their first four bytes (an orphan may have any name); "PARE" is encrypted Parquet.
_MAGIC_KINDS: dict[bytes, FileKind] = {b"PAR1": "parquet", b"PARE": "parquet", b"Obj\x01": "avro"}


# --- Parquet and ORC --------------------------------------------------------------------------------


def _scan_parquet(handle: Any, path: str, scanned: _FileScan) -> None:
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
        numeric = _numeric_allowed(ids, name)
        for label, value in (("min", stats.min), ("max", stats.max)):
            if _value_matches(value, ids, numeric, prefix=True):
                wheres.append(f"column {name} row group {number} statistics ({label})")
    return wheres


def _scan_orc(handle: Any, path: str, scanned: _FileScan) -> None:
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
            found = _count_array(leaf, ids, _numeric_allowed(ids, path))
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
    candidates = _typed_candidates(kind, ids) if numeric or pa.types.is_fixed_size_binary(kind) else []
    if not candidates:
        return 0
    return pc.sum(pc.is_in(array, value_set=pa.array(candidates, kind))).as_py() or 0


def _typed_candidates(kind: pa.DataType, ids: Identifiers) -> list[Any]:
    """The identifiers as values of an Arrow numeric (or 16-byte UUID) type, those that fit."""
    import pyarrow as pa

    if pa.types.is_integer(kind):
        low, high = (0, 2 ** kind.bit_width - 1) if pa.types.is_unsigned_integer(kind) else \
            (-(2 ** (kind.bit_width - 1)), 2 ** (kind.bit_width - 1) - 1)
        return sorted(n for n in ids.integers if low <= n <= high)
    if pa.types.is_floating(kind):
        return sorted(float(n) for n in ids.integers if abs(n) < 2**53)
    if pa.types.is_decimal(kind):
        return sorted(Decimal(n) for n in ids.integers if len(str(abs(n))) <= kind.precision - kind.scale)
    if pa.types.is_fixed_size_binary(kind):
        return sorted(e for e in ids.encodings(False) if len(e) == kind.byte_width)
    return []


def _numeric_allowed(ids: Identifiers, path: str) -> bool:
    if not ids.columns:
        return True
    path = path.lower()
    names = [part for part in path.split(".") if part not in ("element", "key", "value")] or [path]
    return path in ids.columns or names[-1] in ids.columns


def _value_matches(value: Any, ids: Identifiers, numeric: bool, *, prefix: bool = False) -> bool:
    """One decoded Python value (a statistic, bound, partition value, Avro datum)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return bool(ids.regex.search(value)) or (prefix and _prefix_match(value, ids))
    if isinstance(value, int):
        return numeric and value in ids.integers
    if isinstance(value, float):
        return numeric and value.is_integer() and int(value) in ids.integers
    if isinstance(value, Decimal):
        return numeric and value == value.to_integral_value() and int(value) in ids.integers
    if isinstance(value, uuid.UUID):
        return value in ids.uuids
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_match(bytes(value), ids, numeric, prefix=prefix)
    return False


def _bytes_match(raw: bytes, ids: Identifiers, numeric: bool, *, prefix: bool) -> bool:
    if raw in ids.encodings(numeric):
        return True
    text = raw.decode("utf-8", "ignore")
    return bool(text and ids.regex.search(text)) or (prefix and _prefix_match(text, ids))


def _prefix_match(text: str, ids: Identifiers) -> bool:
    """A truncated string bound: a prefix of an identifier, or one with its last character incremented."""
    text = text.lower()
    if len(text) < PREFIX_MIN_CHARS:
        return False
    for value in ids.texts:
        if len(text) > len(value):
            continue
        if value.startswith(text):
            return True
        last = value[len(text) - 1]
        if value.startswith(text[:-1]) and ord(last) < 0x10FFFF and text[-1] == chr(ord(last) + 1):
            return True
    return False


# --- Avro -------------------------------------------------------------------------------------------


def _scan_avro(handle: Any, path: str, scanned: _FileScan) -> None:
    """Every field of every record, with pyiceberg's reader and the file's own schema.

    In manifests and manifest lists only strings, binaries, bounds and partition values are compared
    (their numbers are counts, sizes and ids Iceberg computes); in an Avro data file every value is.
    """
    from pyiceberg.avro.file import AvroFile

    ids = scanned.ids
    with AvroFile(_bytes_input(path, handle.read())) as avro:
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

    def __init__(self, meta: Mapping[str, str], scanned: _FileScan):
        self.ids, context = scanned.ids, scanned.context
        self.scanned = scanned
        self.structural = "partition-spec" in meta or "snapshot-id" in meta  # a manifest or manifest list
        self.columns = dict(context.columns)
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
        elif _value_matches(value, self.ids, not self.structural and _numeric_allowed(self.ids, path)):
            self.found(path, entry)

    def _bounds(self, bounds: Mapping[int, bytes], path: str, entry: int) -> None:
        for field_id, raw in bounds.items():
            name, kind = self.columns.get(field_id, (None, None))
            if _bound_matches(raw, kind, self.ids, name is None or _numeric_allowed(self.ids, name)):
                self.found(f"{path}[{field_id}] (column {name or 'unknown'})", entry)

    def _partition(self, record: Any, struct: Any, spec: _Spec | None, path: str, entry: int) -> None:
        for position, nested in enumerate(struct.fields):
            numeric = self._partition_numeric(spec, position, nested.name)
            if numeric is not None and _value_matches(record[position], self.ids, numeric, prefix=True):
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
                if raw is not None and _bound_matches(raw, kind, self.ids, numeric):
                    self.found(f"{path}[{position}].{label}", entry)

    def _partition_numeric(self, spec: _Spec | None, position: int, name: str | None) -> bool | None:
        """None: the transform hides the value (bucket, dates); else whether numbers are compared."""
        if spec is None or position >= len(spec):
            return not self.ids.columns or (name is not None and _numeric_allowed(self.ids, name))
        transform = str(spec[position].get("transform", ""))
        if transform != "identity" and not transform.startswith("truncate"):
            return None
        source = self.columns.get(spec[position].get("source-id"), (spec[position].get("name"), None))[0]
        return _numeric_allowed(self.ids, source or "")

    def _partition_type(self, spec: _Spec | None, position: int) -> Any:
        if spec is None or position >= len(spec):
            return None
        return self.columns.get(spec[position].get("source-id"), (None, None))[1]

    def found(self, path: str, entry: int) -> None:
        self.scanned.wheres.append(f"{path} in entry {entry}")


def _by_id(record: Any, struct: Any, field_id: int) -> Any:
    for position, nested in enumerate(struct.fields):
        if nested.field_id == field_id:
            return record[position]
    return None


def _bound_matches(raw: bytes, kind: Any, ids: Identifiers, numeric: bool) -> bool:
    """A bound in Iceberg's single-value serialization, decoded with the column type when known."""
    if kind is not None:
        from pyiceberg.conversions import from_bytes
        from pyiceberg.types import BinaryType, FixedType, PrimitiveType

        if isinstance(kind, PrimitiveType) and not isinstance(kind, BinaryType | FixedType):
            try:
                return _value_matches(from_bytes(kind, raw), ids, numeric, prefix=True)
            except Exception:  # a bound that does not decode as its type: compare the bytes instead
                log.debug("bound of type %s does not decode; comparing bytes", kind)
    return _bytes_match(raw, ids, numeric, prefix=True)


def _schema_columns(schema: Mapping[str, Any]) -> dict[int, tuple[str, Any]]:
    """Field id -> (dotted name, pyiceberg type) for an Iceberg schema in its JSON form."""
    from pyiceberg.schema import Schema, index_by_id

    parsed = Schema.model_validate(schema)
    return {fid: (parsed.find_column_name(fid) or nested.name, nested.field_type)
            for fid, nested in index_by_id(parsed).items()}


# --- Metadata JSON and everything else -------------------------------------------------------------


def _scan_metadata(handle: Any, path: str, scanned: _FileScan) -> None:
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
    elif key in ("initial-default", "write-default") and _value_matches(node, ids, True):
        yield path, None


def _scan_other(handle: Any, path: str, scanned: _FileScan) -> None:
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


_DECODERS: dict[str, Callable[[Any, str, _FileScan], None]] = {
    "parquet": _scan_parquet,
    "avro": _scan_avro,
    "metadata": _scan_metadata,
    "other": _scan_other,
}
