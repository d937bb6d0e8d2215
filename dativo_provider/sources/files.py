"""Files source: CSV, Parquet and JSON Lines files in a local directory or under an S3 prefix.

Local disk and S3 share one code path through :mod:`pyarrow.fs` (which one a path names is decided by
:mod:`dativo_provider.objectstore`). Every file is streamed, never read
whole: CSV and JSON Lines in 1 MB blocks, Parquet in batches (``batch_rows``, default 64Ki rows).
The format readers live in :mod:`dativo_provider.sources.file_formats`.

Decisions a user can observe:

* **Listing.** Files under ``path`` whose path relative to it matches ``glob``: ``*`` and ``?`` stay
  inside one directory, ``**/`` spans any number of them. Names starting with ``.`` or ``_`` at any
  level (``_SUCCESS``, ``.part`` files) are skipped, as Spark and pyarrow datasets do. Files are read
  in (modification time, path) order. Compressed files (``.gz``, ``.bz2``, ``.zst``) are decompressed
  on the fly for CSV and JSON Lines.
* **Schema.** The declared ``columns``; without them, pyarrow's type inference over the first block
  of the oldest non-empty matching file, widened so Iceberg can store it (no-type columns become
  strings, timestamps microseconds; CSV times stay strings). Inferring from the oldest file keeps the
  schema stable across incremental runs; declare ``columns`` when later rows need wider types.
  Every batch has exactly this schema: a file missing a column or carrying another one fails the
  run, naming the file and the column. No lineage column is added (the run report lists the files).
  ``timestamptz`` values need a zone (``Z`` or an offset) in CSV; in JSON Lines pyarrow reads a
  value without one as UTC.
* **Incremental** (``incremental``: true = ``"manifest"``, the default). Each file *version* is read
  once: the state lists the versions read (path → modification time, size), so a file that appears
  with an older time than files already read (``cp -p``, a slow multipart upload listed late) is read
  by the next run. A file whose time or size changed is read again in full (``changed_files:
  "reread"``: its earlier rows stay, so files rewritten in place need a merge write) or fails the run
  (``"fail"``). The manifest forgets entries ``manifest_horizon`` (30 days) older than the newest file
  read, and beyond :data:`~dativo_provider.sources.file_stream.MAX_MANIFEST_FILES` entries: files
  older than that floor are taken as read. ``"watermark"`` keeps only the newest time read and the
  paths at it (blind to back-dated files). S3 times have whole-second precision: a rewrite of the
  same size within the same second is not seen.
* **Bad rows.** With ``bad_rows="fail"`` the first malformed row fails the run; with ``"skip"`` every
  one is counted in the report. A location is ``<file>:<n>``: for CSV ``n`` is the record number with
  the header as 1 (the physical line unless the file has blank lines or values spanning lines), for
  JSON Lines the line, for Parquet the row. Messages never quote values: they may be personal data.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Generator, Iterator, Mapping
from datetime import UTC
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from dativo_provider import objectstore
from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.objectstore import StoreLocation
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source
from dativo_provider.sources.file_formats import FORMATS, CsvOptions, FileRead
from dativo_provider.sources.file_stream import (
    FileStream,
    FileVersion,
    ManifestPlan,
    Tracking,
    as_utc,
    infer_file_schema,
    io_error,
    iso_utc,
    next_state,
    parse_tracking,
    plan_manifest,
    unread_files,
)

SPEC_KEYS = frozenset({
    "type", "conn_id", "path", "glob", "format", "columns", "csv", "incremental", "manifest_horizon",
    "changed_files", "bad_rows", "batch_rows", "file_group",
})
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: Suffixes pyarrow decompresses by itself (``compression="detect"``), ignored when finding the format.
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")
SIMPLE_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
}
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
#: Iceberg's largest decimal precision.
MAX_DECIMAL_PRECISION = 38
HIDDEN_PREFIXES = (".", "_")


class FilesSource(Source):
    """Files matching a glob under a local directory or an S3 prefix, read as one Arrow stream."""

    def __init__(
        self,
        location: StoreLocation,
        glob: str,
        file_format: str,
        *,
        columns: pa.Schema | None = None,
        csv: CsvOptions | None = None,
        incremental: bool = True,
        tracking: Tracking | None = None,
        skip_bad_rows: bool = False,
        batch_rows: int | None = None,
        connection: ObjectStoreConfig | None = None,
        file_group: frozenset[str] | None = None,
    ) -> None:
        self.location = location
        self.glob = glob
        self.format = file_format
        self.columns = columns
        self.csv = csv or CsvOptions()
        self.incremental = incremental
        self.tracking = tracking or Tracking()
        self.skip_bad_rows = skip_bad_rows
        self.batch_rows = batch_rows
        self.connection = connection
        #: Read only these files (paths relative to ``path``) of those due: one part of a split ingest.
        self.file_group = file_group
        self._pattern = glob_regex(glob)

    @property
    def identity(self) -> str:
        return f"files://{self.location.base.rstrip('/')}?glob={self.glob}&format={self.format}"

    @property
    def lineage(self) -> LineageDataset:
        return LineageDataset(*self.location.openlineage_name())

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> FilesStream:
        if bounds.lookback is not None:
            raise ConfigError(
                "files source: 'lookback' is not supported; each file version is read once (the state "
                "remembers the versions read, see 'incremental')"
            )
        upper = as_utc(bounds.upper, "the upper bound") if bounds.upper is not None else None
        fs = self.location.filesystem(self.connection)
        files = list_files(fs, self.location, self._pattern)
        schema, origin = self._schema(fs, files)
        todo = [f for f in files if upper is None or f.mtime <= upper]
        previous = dict(state) if self.incremental and state else None
        manifest = None
        if self.incremental and self.tracking.mode == "manifest":
            manifest = plan_manifest(todo, previous, self.tracking, "files source",
                                     lambda f: self.location.display(f.path))
            todo = manifest.todo
        elif self.incremental:
            todo = unread_files(todo, previous)
        if self.file_group is not None:
            todo = [f for f in todo if f.relative in self.file_group]
        return FilesStream(self, fs, todo, schema, previous, origin, manifest)

    def _schema(self, fs: pafs.FileSystem, files: list[FileVersion]) -> tuple[pa.Schema, str]:
        """The declared schema, else the one inferred from the oldest non-empty file, and its origin."""
        if self.columns is not None:
            return self.columns, "declared"
        sample = next((f for f in files if f.size > 0), None)
        if sample is None:
            where = self.location.display(self.location.base)
            raise SourceError(
                f"files source: no files match glob {self.glob!r} under {where} and no 'columns' are "
                "declared to give an empty result its schema"
            )
        reading = FileRead(fs, sample.path, self.location.display(sample.path), csv=self.csv)
        return infer_file_schema(self.format, reading), reading.display


class FilesStream(FileStream):
    """The batches of the files to read this run, in (modification time, path) order."""

    kind = "files"

    def __init__(
        self,
        source: FilesSource,
        fs: pafs.FileSystem,
        files: list[FileVersion],
        schema: pa.Schema,
        previous_state: dict[str, Any] | None,
        schema_origin: str,
        manifest: ManifestPlan | None = None,
    ) -> None:
        super().__init__(incremental=source.incremental, previous=previous_state,
                         details={"schema_from": schema_origin}, skip_bad_rows=source.skip_bad_rows,
                         manifest=manifest)
        self._source = source
        self._fs = fs
        self._files = files
        self._schema = schema

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def file_groups(self, count: int) -> list[list[str]]:
        """The files this stream would read, as at most ``count`` non-empty groups of about equal bytes
        (paths relative to the source's ``path``): the parts of a split ingest."""
        count = min(count, len(self._files))
        sizes, groups = [0] * count, [[] for _ in range(count)]  # type: list[int], list[list[str]]
        for file in sorted(self._files, key=lambda f: (-f.size, f.relative)):  # largest first, to the lightest
            lightest = sizes.index(min(sizes))
            sizes[lightest] += file.size
            groups[lightest].append(file.relative)
        return groups

    def state_after_all(self) -> dict[str, Any] | None:
        """The state once every file this stream would read is in the table (what a split ingest
        commits after all its parts)."""
        if not self._incremental:
            return None
        if self._manifest is not None:
            return self._manifest.state_after(self._files)
        return next_state(self._previous, self._files)

    def _all_batches(self) -> Generator[pa.RecordBatch, None, None]:
        for file in self._files:
            yield from self._one_file(file)
            self._done(file)

    def _one_file(self, file: FileVersion) -> Iterator[pa.RecordBatch]:
        path = self._source.location.display(file.path)
        detail = self._record({"path": path, "mtime": iso_utc(file.mtime), "size": file.size, "rows": 0,
                               "rejected": 0})
        if file.size == 0:
            return
        reading = FileRead(self._fs, file.path, path, self._schema, self._source.csv, self._source.batch_rows,
                           reject=self._rejecter(detail))
        yield from self._file_batches(self._source.format, reading, detail)


# --- spec ---------------------------------------------------------------------------------------


def from_spec(spec: Mapping[str, Any], connection: ObjectStoreConfig | None) -> FilesSource:
    """Build a :class:`FilesSource` from a spec dict, naming the key of any mistake.

    :param spec: ``{"type": "files", "path": ..., "glob": ..., "format": ..., "columns": ...,
        "csv": {...}, "incremental": ..., "manifest_horizon": ..., "changed_files": ..., "bad_rows": ...,
        "batch_rows": ...}``.
    :param connection: S3 credentials and endpoint for an ``s3://`` path; None uses the default
        AWS credential chain. Ignored for local paths.
    """
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"files source: unknown key {unknown[0]!r}; allowed: {sorted(SPEC_KEYS)}")
    if spec.get("type", "files") != "files":
        raise ConfigError(f"files source: 'type' is {spec['type']!r}, not 'files'")
    glob = _typed(spec, "glob", str, "*")
    bad_rows = _typed(spec, "bad_rows", str, "fail")
    if bad_rows not in ("fail", "skip"):
        raise ConfigError(f"files source: 'bad_rows' is {bad_rows!r}; expected 'fail' or 'skip'")
    batch_rows = _typed(spec, "batch_rows", int, None)
    if batch_rows is not None and batch_rows < 1:
        raise ConfigError("files source: 'batch_rows' must be at least 1")
    columns = spec.get("columns")
    incremental, tracking = parse_tracking(spec, "files source")
    file_group = spec.get("file_group")
    if file_group is not None and (isinstance(file_group, str) or not isinstance(file_group, (list, tuple))
                                   or not all(isinstance(name, str) and name for name in file_group)):
        raise ConfigError("files source: 'file_group' must be a list of file paths relative to 'path'")
    return FilesSource(
        objectstore.parse(spec.get("path"), "files source: 'path'"),
        glob,
        _file_format(spec.get("format"), glob),
        columns=None if columns is None else parse_columns(columns),
        csv=parse_csv_options(spec.get("csv") or {}),
        incremental=incremental,
        tracking=tracking,
        skip_bad_rows=bad_rows == "skip",
        batch_rows=batch_rows,
        connection=connection,
        file_group=None if file_group is None else frozenset(file_group),
    )


def _typed(spec: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = spec.get(key, default)
    if value is None and default is None:
        return None
    # bool is an int subclass: True must not pass as a batch size.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or value == "":
        raise ConfigError(f"files source: {key!r} must be a non-empty {kind.__name__}, not {value!r}")
    return value


def _file_format(value: Any, glob: str) -> str:
    if value is not None:
        if value not in FORMATS:
            raise ConfigError(f"files source: 'format' is {value!r}; expected one of {', '.join(FORMATS)}")
        return value
    name = glob.lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    fmt = EXTENSIONS.get(os.path.splitext(name)[1])
    if fmt is None:
        raise ConfigError(
            f"files source: set 'format' ({', '.join(FORMATS)}); glob {glob!r} has no known extension"
        )
    return fmt


def parse_columns(columns: Any) -> pa.Schema:
    """``{name: type name}`` to an Arrow schema; type names are :data:`SIMPLE_TYPES` or ``decimal(p,s)``."""
    if not isinstance(columns, Mapping) or not columns:
        raise ConfigError("files source: 'columns' must be a non-empty mapping of column name to type name")
    return pa.schema([pa.field(str(name), _parse_type(str(name), kind)) for name, kind in columns.items()])


def _parse_type(column: str, name: Any) -> pa.DataType:
    text = str(name).strip().lower()
    if text in SIMPLE_TYPES:
        return SIMPLE_TYPES[text]
    match = _DECIMAL.fullmatch(text)
    if match:
        precision, scale = int(match[1]), int(match[2])
        if 1 <= precision <= MAX_DECIMAL_PRECISION and scale <= precision:
            return pa.decimal128(precision, scale)
    raise ConfigError(
        f"files source: 'columns.{column}' has type {name!r}; expected one of "
        f"{', '.join(SIMPLE_TYPES)} or decimal(p,s) with 1 <= p <= {MAX_DECIMAL_PRECISION}, s <= p"
    )


def parse_csv_options(values: Any) -> CsvOptions:
    """The ``csv`` spec block to :class:`CsvOptions`, naming any wrong key."""
    if not isinstance(values, Mapping):
        raise ConfigError("files source: 'csv' must be a mapping")
    allowed = sorted(CsvOptions.__dataclass_fields__)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"files source: unknown key 'csv.{unknown[0]}'; allowed: {allowed}")
    given: dict[str, Any] = {k: tuple(v) if k == "null_values" else v for k, v in values.items()}
    options = CsvOptions(**given)
    for key in ("delimiter", "quote_char"):
        if not isinstance(getattr(options, key), str) or len(getattr(options, key)) != 1:
            raise ConfigError(f"files source: 'csv.{key}' must be one character")
    if not isinstance(options.header, bool):
        raise ConfigError("files source: 'csv.header' must be true or false")
    if not all(isinstance(v, str) for v in options.null_values):
        raise ConfigError("files source: 'csv.null_values' must be a list of strings")
    try:
        codecs.lookup(options.encoding)
    except (LookupError, TypeError) as exc:
        raise ConfigError(f"files source: 'csv.encoding' {options.encoding!r} is not an encoding") from exc
    return options


# --- listing and state --------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob matched against a path relative to the prefix: ``*``, ``?``, ``[...]``, ``**/``."""
    parts, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] in "*?":
            parts.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def list_files(fs: pafs.FileSystem, location: StoreLocation, pattern: re.Pattern[str]) -> list[FileVersion]:
    """Every visible file under the location matching ``pattern``, sorted by (mtime, path)."""
    selector = pafs.FileSelector(location.base, recursive=True, allow_not_found=True)
    try:
        infos = fs.get_file_info(selector)
    except OSError as exc:
        raise io_error(exc, f"listing {location.display(location.base)}") from exc
    files = []
    for info in infos:
        relative = info.path[len(location.base) :].lstrip("/")
        if info.type == pafs.FileType.File and wanted(relative, pattern):
            mtime = info.mtime.astimezone(UTC)
            files.append(FileVersion(info.path, relative, mtime, info.size or 0))
    return sorted(files, key=lambda f: (f.mtime, f.path))


def wanted(relative: str, pattern: re.Pattern[str]) -> bool:
    """Whether a file at ``relative`` (below the prefix) is read: it matches and no part of it is hidden."""
    hidden = any(part.startswith(HIDDEN_PREFIXES) for part in relative.split("/"))
    return not hidden and pattern.fullmatch(relative) is not None
