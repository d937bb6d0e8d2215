"""Markdown-KV source: ``.md`` documents in a local directory or under an S3 prefix, in one of three
Arrow layouts (``string``, ``row_per_kv``, ``document_level``).

Listing, the glob, hidden-file rules and incremental state are the files source's
(:mod:`dativo_provider.sources.files`): each file *version* is read once, by modification time.
The format and the layouts are specified in ``docs/sources-markdown-kv.md``.

Decisions a user can observe:

* **doc_id** is the file's path relative to ``path`` (``"guides/setup.md"``), or with
  ``doc_id: "front_matter:<key>"`` that front-matter value as text (a document without it is bad).
* **extracted_at** (``row_per_kv``) is the run's upper bound (the operator's ``upper_bound``, e.g.
  the data interval end) when one is given, else the file's modification time. The source never
  reads the clock, so a rerun produces identical rows.
* **Batches** hold ``batch_docs`` documents (default 500); one document is read at a time.
* **Bad documents** (not UTF-8, malformed front matter, no front-matter doc_id, larger than
  :data:`MAX_DOCUMENT_BYTES`) fail the run naming the file and line, or with ``bad_docs: "skip"``
  are counted as one rejected row each and reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.markdown_kv.layouts import LAYOUTS, BatchBuilder, layout_schema
from dativo_provider.markdown_kv.parser import Document, MarkdownKVSyntaxError, parse_document, yaml_text
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source, SourceReport, SourceStream
from dativo_provider.sources.files import (
    FileVersion,
    Location,
    glob_regex,
    io_error,
    list_files,
    next_state,
    parse_location,
    s3_filesystem,
    unread_files,
)

SPEC_KEYS = frozenset(
    {"type", "conn_id", "path", "glob", "layout", "incremental", "doc_id", "batch_docs", "bad_docs"}
)
DEFAULT_GLOB = "**/*.md"
BATCH_DOCUMENTS = 500
#: Documents are expected to be small; a bigger file is a bad document rather than a memory spike.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
FRONT_MATTER_ID = "front_matter:"
#: The report lists this many files; ``files_read`` always has the full count.
MAX_FILE_DETAILS = 100


class MarkdownKVSource(Source):
    """Markdown-KV files matching a glob under a local directory or an S3 prefix.

    :param doc_id_key: take doc_id from this front-matter key; None: the relative path.
    """

    def __init__(
        self,
        location: Location,
        glob: str,
        layout: str,
        *,
        doc_id_key: str | None = None,
        incremental: bool = True,
        batch_docs: int = BATCH_DOCUMENTS,
        skip_bad_docs: bool = False,
        connection: ObjectStoreConfig | None = None,
    ) -> None:
        layout_schema(layout)  # fail on a wrong layout now, not at the first batch
        self.location = location
        self.glob = glob
        self.layout = layout
        self.doc_id_key = doc_id_key
        self.incremental = incremental
        self.batch_docs = batch_docs
        self.skip_bad_docs = skip_bad_docs
        self.connection = connection
        self._pattern = glob_regex(glob)

    @property
    def identity(self) -> str:
        return f"markdown_kv://{self.location.base.rstrip('/')}?glob={self.glob}&layout={self.layout}"

    @property
    def lineage(self) -> LineageDataset:
        if self.location.bucket:
            prefix = self.location.base.removeprefix(self.location.bucket).strip("/")
            return LineageDataset(f"s3://{self.location.bucket}", prefix or "/")
        return LineageDataset("file", self.location.base)

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> MarkdownKVStream:
        if bounds.lookback is not None:
            raise ConfigError(
                "markdown_kv source: 'lookback' is not supported; each file version is read once"
            )
        upper = None if bounds.upper is None else _utc(bounds.upper)
        fs = s3_filesystem(self.connection) if self.location.bucket else pafs.LocalFileSystem()
        files = [f for f in list_files(fs, self.location, self._pattern) if upper is None or f.mtime <= upper]
        if self.incremental:
            files = unread_files(files, state)
        previous = dict(state) if self.incremental and state else None
        return MarkdownKVStream(self, fs, files, previous, upper)


class MarkdownKVStream(SourceStream):
    """The documents to read this run, in (modification time, path) order, ``batch_docs`` per batch."""

    def __init__(
        self,
        source: MarkdownKVSource,
        fs: pafs.FileSystem,
        files: list[FileVersion],
        previous_state: dict[str, Any] | None,
        upper: dt.datetime | None,
    ) -> None:
        self._source = source
        self._fs = fs
        self._files = files
        self._previous = previous_state
        self._upper = upper
        self._read: list[FileVersion] = []
        self._batches: Iterator[pa.RecordBatch] | None = None
        self.report = SourceReport(details={"files": [], "files_read": 0, "documents": 0})

    @property
    def schema(self) -> pa.Schema:
        return layout_schema(self._source.layout)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._batches is not None:
            raise SourceError("a markdown_kv stream can be iterated only once; open the source again")
        self._batches = self._all_batches()
        return self._batches

    def _all_batches(self) -> Iterator[pa.RecordBatch]:
        builder = BatchBuilder(self._source.layout)
        for file in self._files:
            self._add(builder, file)
            self._read.append(file)
            if builder.documents >= self._source.batch_docs:
                yield builder.flush()
        if builder.documents:
            yield builder.flush()

    def _add(self, builder: BatchBuilder, file: FileVersion) -> None:
        """Read, parse and add one file; a bad one raises, or is rejected under ``bad_docs: skip``."""
        detail = self._detail(file)
        try:
            text = self._text(file, detail["path"])
            document = self._parse(builder, text, detail["path"])
            doc_id = self._doc_id(file, document, detail["path"])
        except MarkdownKVSyntaxError as exc:
            if not self._source.skip_bad_docs:
                hint = f"{exc.problem}. Fix the document, or set bad_docs='skip' to skip such documents"
                raise MarkdownKVSyntaxError(exc.file, exc.line, hint) from None
            self.report.reject(f"{exc.file}:{exc.line}", exc.problem)
            detail["rejected"] = True
            return
        extracted_at = self._upper or file.mtime
        detail["rows"] = builder.add(doc_id, text, document, extracted_at)
        self.report.details["documents"] += 1

    def _text(self, file: FileVersion, display: str) -> str:
        if file.size > MAX_DOCUMENT_BYTES:
            raise MarkdownKVSyntaxError(display, 1, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            with self._fs.open_input_stream(file.path) as stream:
                data = stream.read()
        except OSError as exc:
            raise io_error(exc, f"reading {display}") from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise MarkdownKVSyntaxError(display, line, f"not UTF-8 (byte offset {exc.start})") from None

    def _parse(self, builder: BatchBuilder, text: str, display: str) -> Document | None:
        # The string layout stores text as is: it parses only to find a front-matter doc_id.
        if builder.needs_document or self._source.doc_id_key is not None:
            return parse_document(text, display)
        return None

    def _doc_id(self, file: FileVersion, document: Document | None, display: str) -> str:
        key = self._source.doc_id_key
        if key is None:
            return file.relative
        value = document.front_matter.get(key) if document is not None else None
        if value is None or value == "":
            raise MarkdownKVSyntaxError(display, 1, f"front matter has no {key!r} to use as doc_id")
        return yaml_text(value)

    def _detail(self, file: FileVersion) -> dict[str, Any]:
        detail = {
            "path": self._source.location.display(file.path),
            "mtime": file.mtime.isoformat(timespec="microseconds"),
            "size": file.size,
            "rows": 0,
        }
        self.report.details["files_read"] += 1
        if len(self.report.details["files"]) < MAX_FILE_DETAILS:
            self.report.details["files"].append(detail)
        return detail

    def state(self) -> dict[str, Any] | None:
        if not self._source.incremental:
            return None
        return next_state(self._previous, self._read)

    def close(self) -> None:
        if self._batches is not None:
            self._batches.close()


# --- spec ---------------------------------------------------------------------------------------


def from_spec(spec: Mapping[str, Any], connection: ObjectStoreConfig | None) -> MarkdownKVSource:
    """Build a :class:`MarkdownKVSource` from a spec dict, naming the key of any mistake.

    :param spec: ``{"type": "markdown_kv", "path": ..., "glob": "**/*.md", "layout": "row_per_kv",
        "doc_id": "path" | "front_matter:<key>", "incremental": true, "batch_docs": 500,
        "bad_docs": "fail" | "skip", "conn_id": ...}``.
    :param connection: S3 credentials and endpoint for an ``s3://`` path; None uses the default
        AWS credential chain. Ignored for local paths.
    """
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"markdown_kv source: unknown key {unknown[0]!r}; allowed: {sorted(SPEC_KEYS)}")
    if spec.get("type", "markdown_kv") != "markdown_kv":
        raise ConfigError(f"markdown_kv source: 'type' is {spec['type']!r}, not 'markdown_kv'")
    layout = _typed(spec, "layout", str, "row_per_kv")
    if layout not in LAYOUTS:
        raise ConfigError(f"markdown_kv source: 'layout' is {layout!r}; expected one of {', '.join(LAYOUTS)}")
    bad_docs = _typed(spec, "bad_docs", str, "fail")
    if bad_docs not in ("fail", "skip"):
        raise ConfigError(f"markdown_kv source: 'bad_docs' is {bad_docs!r}; expected 'fail' or 'skip'")
    batch_docs = _typed(spec, "batch_docs", int, BATCH_DOCUMENTS)
    if batch_docs < 1:
        raise ConfigError("markdown_kv source: 'batch_docs' must be at least 1")
    return MarkdownKVSource(
        _location(spec.get("path")),
        _typed(spec, "glob", str, DEFAULT_GLOB),
        layout,
        doc_id_key=_doc_id_key(_typed(spec, "doc_id", str, "path")),
        incremental=_typed(spec, "incremental", bool, True),
        batch_docs=batch_docs,
        skip_bad_docs=bad_docs == "skip",
        connection=connection,
    )


def _typed(spec: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = spec.get(key, default)
    # bool is an int subclass: True must not pass as a batch size.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or value == "":
        raise ConfigError(f"markdown_kv source: {key!r} must be a non-empty {kind.__name__}, not {value!r}")
    return value


def _doc_id_key(rule: str) -> str | None:
    if rule == "path":
        return None
    if rule.startswith(FRONT_MATTER_ID) and rule != FRONT_MATTER_ID:
        return rule.removeprefix(FRONT_MATTER_ID)
    raise ConfigError(f"markdown_kv source: 'doc_id' is {rule!r}; expected 'path' or 'front_matter:<key>'")


def _location(path: Any) -> Location:
    try:
        return parse_location(path)
    except ConfigError:
        # parse_location words its message for the files source.
        raise ConfigError(
            f"markdown_kv source: 'path' must be a local directory or s3://bucket/prefix, not {path!r}"
        ) from None


def _utc(value: Any) -> dt.datetime:
    """The upper bound as an aware UTC datetime (ISO strings accepted, naive values taken as UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"markdown_kv source: upper bound {value!r} is not an ISO-8601 timestamp"
            ) from None
    if not isinstance(value, dt.datetime):
        raise ConfigError(f"markdown_kv source: the upper bound must be a datetime, not {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
