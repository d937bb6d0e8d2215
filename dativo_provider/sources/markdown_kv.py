"""Markdown-KV source: ``.md`` documents in a local directory, under an S3 prefix or in a Google Drive
folder, in one of three Arrow layouts (``string``, ``row_per_kv``, ``document_level``).

Local and S3 listing, the glob and hidden-file rules are the files source's
(:mod:`dativo_provider.sources.files`). A ``gdrive://<folder_id>`` path is listed, cut off and
downloaded (the listed head revision, md5-checked) by the google_drive source's functions
(:mod:`dativo_provider.sources.google_drive`); the glob and hidden-name rules are the same as on disk.
Every store hands over the document versions it lists, and the incremental state picks those not read
yet, as the files and google_drive sources do (:mod:`dativo_provider.sources.file_stream`): by default a
manifest of the versions read (path, or Drive file id → time, size, md5), so a back-dated document is
read once; with ``incremental: "watermark"`` the newest time read. The format and the layouts are
specified in ``docs/sources-markdown-kv.md``.

Decisions a user can observe:

* **doc_id** is the file's path relative to ``path`` (``"guides/setup.md"``; in Drive the folder
  names below the folder joined by ``/``), or with
  ``doc_id: "front_matter:<key>"`` that front-matter value as text (a document without it is bad).
* **extracted_at** (``row_per_kv``) is the run's upper bound (the operator's ``upper_bound``, e.g.
  the data interval end) when one is given, else the file's modification time (in Drive its
  ``modifiedTime``). The source never reads the clock, so a rerun produces identical rows.
* **Changed documents** (a path or Drive id read before, in another version) are read again in full,
  or fail the run with ``changed_files: "fail"``. Their rows are keyed by doc_id: a merge on
  ``doc_id`` replaces a document's row in the one-row-per-document layouts; ``row_per_kv`` appends
  the new version's entries (see the docs page for which write mode fits).
* **Batches** hold ``batch_docs`` documents (default 500); one document is read at a time.
* **Bad documents** (not UTF-8, malformed front matter, no front-matter doc_id, larger than
  :data:`MAX_DOCUMENT_BYTES`) fail the run naming the file and line, or with ``bad_docs: "skip"``
  are counted as one rejected row each and reported.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from dativo_provider import objectstore
from dativo_provider.connections import GoogleConfig, ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.markdown_kv.layouts import LAYOUTS, BatchBuilder, layout_schema
from dativo_provider.markdown_kv.parser import Document, MarkdownKVSyntaxError, parse_document, yaml_text
from dativo_provider.sources import google_drive
from dativo_provider.objectstore import StoreLocation
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source
from dativo_provider.sources.file_stream import (
    FileStream,
    FileVersion,
    ManifestPlan,
    Tracking,
    io_error,
    parse_tracking,
    plan_manifest,
    unread_files,
)
from dativo_provider.sources.files import glob_regex, list_files, wanted

#: Passed on to the google_drive source's spec; valid with a ``gdrive://`` path only.
DRIVE_KEYS = frozenset({"page_size", "retry", "settle"})
SPEC_KEYS = frozenset(
    {"type", "conn_id", "path", "glob", "layout", "incremental", "manifest_horizon", "changed_files", "doc_id",
     "batch_docs", "bad_docs"}
) | DRIVE_KEYS
DRIVE_SCHEME = "gdrive://"
DEFAULT_GLOB = "**/*.md"
BATCH_DOCUMENTS = 500
#: Documents are expected to be small; a bigger file is a bad document rather than a memory spike.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
FRONT_MATTER_ID = "front_matter:"


@dataclass(frozen=True)
class StoredDocument:
    """One document version to read.

    :param version: what the incremental state records (a Drive file is keyed by its id).
    :param relative: the path below ``path``: the default doc_id.
    :param display: names the document in errors and the report.
    """

    version: FileVersion
    relative: str
    display: str


class DocumentStore(Protocol):
    """Where the documents are: lists the versions a run may read and returns their bytes."""

    details: dict[str, Any]

    def listed(self, pattern: re.Pattern[str], upper: dt.datetime | None) -> list[StoredDocument]:
        """Every matching document version up to ``upper`` (and the store's own cut-off), oldest first."""
        ...

    def read(self, document: StoredDocument) -> bytes: ...

    def close(self) -> None: ...


class MarkdownKVSource(Source):
    """Markdown-KV files matching a glob under a local directory, an S3 prefix or a Drive folder.

    :param location: a local directory or S3 prefix, or the Drive folder as a google_drive spec
        (its ``glob`` and ``recursive`` are not used: ``glob`` here applies to the whole path).
    :param doc_id_key: take doc_id from this front-matter key; None: the relative path.
    :param connection: S3 settings for an S3 location, the Google credentials for a Drive folder.
    """

    def __init__(
        self,
        location: StoreLocation | google_drive.DriveSpec,
        glob: str,
        layout: str,
        *,
        doc_id_key: str | None = None,
        incremental: bool = True,
        tracking: Tracking | None = None,
        batch_docs: int = BATCH_DOCUMENTS,
        skip_bad_docs: bool = False,
        connection: ObjectStoreConfig | GoogleConfig | None = None,
    ) -> None:
        layout_schema(layout)  # fail on a wrong layout now, not at the first batch
        if isinstance(location, google_drive.DriveSpec) and not isinstance(connection, GoogleConfig):
            raise ConfigError("markdown_kv source: a gdrive:// path needs a Google connection: set 'conn_id' "
                              "to a google_cloud_platform or dativo_google connection")
        if isinstance(location, StoreLocation) and isinstance(connection, GoogleConfig):
            raise ConfigError("markdown_kv source: a Google connection reads gdrive:// paths only; use an "
                              "aws connection for S3")
        self.location = location
        self.glob = glob
        self.layout = layout
        self.doc_id_key = doc_id_key
        self.incremental = incremental
        self.tracking = tracking or Tracking()
        self.batch_docs = batch_docs
        self.skip_bad_docs = skip_bad_docs
        self.connection = connection
        self._pattern = glob_regex(glob)

    @property
    def identity(self) -> str:
        where = self.location
        base = f"gdrive://{where.folder_id}" if isinstance(where, google_drive.DriveSpec) else where.base
        return f"markdown_kv://{base.rstrip('/')}?glob={self.glob}&layout={self.layout}"

    @property
    def lineage(self) -> LineageDataset:
        if isinstance(self.location, google_drive.DriveSpec):
            return LineageDataset("gdrive://drive.google.com", self.location.folder_id)
        return LineageDataset(*self.location.openlineage_name())

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> MarkdownKVStream:
        if bounds.lookback is not None:
            raise ConfigError(
                "markdown_kv source: 'lookback' is not supported; each file version is read once"
            )
        upper = None if bounds.upper is None else _utc(bounds.upper)
        previous = dict(state) if self.incremental and state else None
        store = self._store()
        try:
            documents, manifest = self._unread(store.listed(self._pattern, upper), previous)
        except BaseException:
            store.close()
            raise
        return MarkdownKVStream(self, store, documents, previous, upper, manifest)

    def _unread(self, documents: list[StoredDocument], previous: Mapping[str, Any] | None
                ) -> tuple[list[StoredDocument], ManifestPlan | None]:
        """The listed versions this run reads (all of them unless incremental), in listing order, and the
        manifest plan that tracks them (None with ``incremental`` false or ``"watermark"``)."""
        if not self.incremental:
            return documents, None
        by_key = {document.version.relative: document for document in documents}
        if self.tracking.mode == "watermark":
            unread = unread_files([document.version for document in documents], previous)
            return [by_key[version.relative] for version in unread], None
        plan = plan_manifest([document.version for document in documents], previous, self.tracking,
                             "markdown_kv source", lambda version: by_key[version.relative].display)
        return [by_key[version.relative] for version in plan.todo], plan

    def _store(self) -> DocumentStore:
        if isinstance(self.location, google_drive.DriveSpec):
            assert isinstance(self.connection, GoogleConfig)  # checked in __init__
            return DriveDocuments(self.location, self.connection)
        assert not isinstance(self.connection, GoogleConfig)
        return FileDocuments(self.location, self.connection)


class FileDocuments:
    """Documents in a local directory or under an S3 prefix, listed by the files source."""

    def __init__(self, location: StoreLocation, connection: ObjectStoreConfig | None) -> None:
        self.location = location
        self.fs = location.filesystem(connection)
        self.details: dict[str, Any] = {}

    def listed(self, pattern: re.Pattern[str], upper: dt.datetime | None) -> list[StoredDocument]:
        files = [f for f in list_files(self.fs, self.location, pattern) if upper is None or f.mtime <= upper]
        return [StoredDocument(f, f.relative, self.location.display(f.path)) for f in files]

    def read(self, document: StoredDocument) -> bytes:
        try:
            with self.fs.open_input_stream(document.version.path) as stream:
                return stream.read()
        except OSError as exc:
            raise io_error(exc, f"reading {document.display}") from exc

    def close(self) -> None:
        pass


class DriveDocuments:
    """Documents in a Drive folder, listed, cut off and downloaded by the google_drive source's functions
    (versions keyed by file id); the glob and hidden-name rules are the files source's, matched against the
    path."""

    def __init__(self, spec: google_drive.DriveSpec, config: GoogleConfig) -> None:
        self.spec = spec
        self.auth, self.client = google_drive.open_api(config, spec)
        self.details: dict[str, Any] = {"folder_id": spec.folder_id}
        self._items: dict[str, google_drive.DriveItem] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="dativo-mdkv-gdrive-")

    def listed(self, pattern: re.Pattern[str], upper: dt.datetime | None) -> list[StoredDocument]:
        listing = google_drive.list_items(self.client, self.spec)
        listing.items = [item for item in listing.items if wanted(item.path, pattern)]
        items, cutoff = google_drive.settled_items(listing, self.spec, upper)
        self.details["cutoff"] = cutoff.isoformat(timespec="microseconds") if cutoff else None
        self._items = {item.id: item for item in items}
        return [StoredDocument(item.version, item.path, google_drive.display(item)) for item in items]

    def read(self, document: StoredDocument) -> bytes:
        target = os.path.join(self._tmp.name, "document")
        google_drive.download(self.client, self._items[document.version.relative], target)
        try:
            with open(target, "rb") as file:
                return file.read()
        finally:
            os.remove(target)

    def close(self) -> None:
        self.client.close()
        self.auth.close()
        self._tmp.cleanup()


class MarkdownKVStream(FileStream):
    """The documents to read this run, in (modification time, path) order, ``batch_docs`` per batch."""

    kind = "markdown_kv"

    def __init__(
        self,
        source: MarkdownKVSource,
        store: DocumentStore,
        documents: list[StoredDocument],
        previous_state: dict[str, Any] | None,
        upper: dt.datetime | None,
        manifest: ManifestPlan | None = None,
    ) -> None:
        super().__init__(incremental=source.incremental, previous=previous_state,
                         details={**store.details, "documents": 0}, manifest=manifest)
        self._source = source
        self._store = store
        self._documents = documents
        self._upper = upper

    @property
    def schema(self) -> pa.Schema:
        return layout_schema(self._source.layout)

    def _all_batches(self) -> Generator[pa.RecordBatch, None, None]:
        builder = BatchBuilder(self._source.layout)
        for document in self._documents:
            self._add(builder, document)
            self._done(document.version)
            if builder.documents >= self._source.batch_docs:
                yield builder.flush()
        if builder.documents:
            yield builder.flush()

    def _add(self, builder: BatchBuilder, stored: StoredDocument) -> None:
        """Read, parse and add one file; a bad one raises, or is rejected under ``bad_docs: skip``."""
        detail = self._record({"path": stored.display,
                               "mtime": stored.version.mtime.isoformat(timespec="microseconds"),
                               "size": stored.version.size, "rows": 0})
        try:
            text = self._text(stored)
            document = self._parse(builder, text, stored.display)
            doc_id = self._doc_id(stored, document)
        except MarkdownKVSyntaxError as exc:
            if not self._source.skip_bad_docs:
                hint = f"{exc.problem}. Fix the document, or set bad_docs='skip' to skip such documents"
                raise MarkdownKVSyntaxError(exc.file, exc.line, hint) from None
            self.report.reject(f"{exc.file}:{exc.line}", exc.problem)
            detail["rejected"] = True
            return
        extracted_at = self._upper or stored.version.mtime
        detail["rows"] = builder.add(doc_id, text, document, extracted_at)
        self.report.details["documents"] += 1

    def _text(self, stored: StoredDocument) -> str:
        if stored.version.size > MAX_DOCUMENT_BYTES:
            raise MarkdownKVSyntaxError(stored.display, 1, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        data = self._store.read(stored)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            problem = f"not UTF-8 (byte offset {exc.start})"
            raise MarkdownKVSyntaxError(stored.display, line, problem) from None

    def _parse(self, builder: BatchBuilder, text: str, display: str) -> Document | None:
        # The string layout stores text as is: it parses only to find a front-matter doc_id.
        if builder.needs_document or self._source.doc_id_key is not None:
            return parse_document(text, display)
        return None

    def _doc_id(self, stored: StoredDocument, document: Document | None) -> str:
        key = self._source.doc_id_key
        if key is None:
            return stored.relative
        value = document.front_matter.get(key) if document is not None else None
        if value is None or value == "":
            raise MarkdownKVSyntaxError(stored.display, 1, f"front matter has no {key!r} to use as doc_id")
        return yaml_text(value)

    def _release(self) -> None:
        self._store.close()


# --- spec ---------------------------------------------------------------------------------------


def from_spec(
    spec: Mapping[str, Any], connection: ObjectStoreConfig | GoogleConfig | None
) -> MarkdownKVSource:
    """Build a :class:`MarkdownKVSource` from a spec dict, naming the key of any mistake.

    :param spec: ``{"type": "markdown_kv", "path": ..., "glob": "**/*.md", "layout": "row_per_kv",
        "doc_id": "path" | "front_matter:<key>", "incremental": true | false | "manifest" | "watermark",
        "manifest_horizon": "30d", "changed_files": "reread" | "fail", "batch_docs": 500,
        "bad_docs": "fail" | "skip", "conn_id": ...}``; with ``path: "gdrive://<folder_id>"`` also
        the google_drive source's ``page_size``, ``retry`` and ``settle``.
    :param connection: S3 credentials and endpoint for an ``s3://`` path (None uses the default
        AWS credential chain; ignored for local paths); the Google credentials for a Drive folder.
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
    glob = _typed(spec, "glob", str, DEFAULT_GLOB)
    incremental, tracking = parse_tracking(spec, "markdown_kv source")
    path = spec.get("path")
    if isinstance(path, str) and path.startswith(DRIVE_SCHEME):
        location: StoreLocation | google_drive.DriveSpec = _drive_folder(spec, path, glob)
    else:
        location = _location(path)
        given = sorted(DRIVE_KEYS & set(spec))
        if given:
            raise ConfigError(f"markdown_kv source: {given[0]!r} applies to gdrive:// paths only")
    return MarkdownKVSource(
        location,
        glob,
        layout,
        doc_id_key=_doc_id_key(_typed(spec, "doc_id", str, "path")),
        incremental=incremental,
        tracking=tracking,
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


def _location(path: Any) -> StoreLocation:
    try:
        return objectstore.parse(path)
    except ConfigError:
        # A gdrive:// path is the one more kind of location this source reads.
        raise ConfigError(
            f"markdown_kv source: 'path' must be a local directory or s3://bucket/prefix, or "
            f"gdrive://<folder_id> for a Drive folder, not {path!r}"
        ) from None


def _drive_folder(spec: Mapping[str, Any], path: str, glob: str) -> google_drive.DriveSpec:
    """The Drive folder as a google_drive spec: every file listed (the glob is matched later against the
    path), subfolders only when the glob can reach into them. Its incremental settings are unused: the
    markdown_kv source tracks what it read itself, the same way for every store."""
    folder = path.removeprefix(DRIVE_SCHEME).rstrip("/")
    if not folder or "/" in folder:
        raise ConfigError(f"markdown_kv source: 'path' must be gdrive://<folder_id>, not {path!r}")
    drive = {"folder_id": folder, "recursive": "/" in glob or "**" in glob, **{key: spec[key] for key in DRIVE_KEYS & set(spec)}}
    try:
        return google_drive.parse_spec(drive)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("google_drive source", "markdown_kv source", 1)) from None


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
