"""Google Drive source: CSV (or JSON Lines, Parquet) files in a Drive folder, each file version read once.

Spec::

    {"type": "google_drive", "conn_id": "google_cloud_default", "folder_id": "1AbC...",
     "recursive": true, "glob": "orders_*.csv", "format": "csv", "columns": {"id": "int64", ...},
     "csv": {"delimiter": ";"}, "bad_rows": "skip", "export_google_sheets": false}

* **Listing.** Drive v3 ``files.list`` with ``q = "'<folder>' in parents and trashed = false"``, 1000
  items a page (``pageToken``), shared drives included (``supportsAllDrives``,
  ``includeItemsFromAllDrives``); with ``recursive`` every subfolder is listed the same way and a
  file's path is ``sub/folder/name``. ``glob`` is matched against the file *name* (``fnmatch``, case
  sensitive). Folders, shortcuts and Google Docs types are skipped; native Google Sheets are exported
  as CSV (their first sheet) when ``export_google_sheets`` is true; one over Drive's 10 MB export
  limit fails the run naming it. Drive answers a folder that is not shared with the account (or
  does not exist) with an empty list, so an empty listing is checked with ``files.get`` on the
  folder: not visible fails the run saying so; visible and empty is a run that reads nothing. A glob
  that matches none of the listed files is logged as a warning. Pages may hold fewer items than
  asked, even none, before the last: every ``nextPageToken`` is followed. A listing Drive marks
  ``incompleteSearch`` fails the run (retryable) rather than advance the state past files it missed.
* **Reading.** Each file is downloaded to a temporary file (one at a time; deleted after it was
  read) and read by the files source's format readers (:mod:`dativo_provider.sources.file_formats`):
  same CSV options, type conversion, bad-row handling and messages. A binary file is fetched by its
  head revision (``revisions/<headRevisionId>?alt=media``), so the bytes are exactly the version that
  was listed even if the file changes meanwhile, and checked against its ``md5Checksum``.
* **Schema.** The declared ``columns``; without them, inferred from the first MiB of the oldest
  matching file (the whole file for Parquet), as the files source does, so it is stable across runs.
* **Incremental** (``incremental``: true = ``"manifest"``, the default). The state lists the file
  versions read, by file id (``modifiedTime``, size, ``md5Checksum``), like the files source: a new
  file is read once even if its ``modifiedTime`` was set into the past by its uploader (some sync
  clients keep the local time); a file with new bytes (another ``md5Checksum``; for an exported Google
  Sheet, a new ``modifiedTime``) is read again in full or fails the run (``changed_files``); a file
  whose ``modifiedTime`` moved but whose bytes did not (a rename, a re-upload of the same bytes) is not
  downloaded again. Entries ``manifest_horizon`` older than the newest file read are forgotten.
  ``"watermark"`` keeps the newest ``modifiedTime`` read and the ids at it, blind to back-dated files.
  The state is committed with the rows, so a failure while listing or downloading commits nothing and
  the next run reads the same files again.
* **Cut-off.** Drive's listing lags changes by a few seconds, so a run takes only files modified up to
  Drive's own clock (the first listing response's ``Date`` header) minus ``settle`` (default 60 s),
  and up to the caller's upper bound; later files wait for the next run (see ADR 0004).

The markdown_kv source reads ``gdrive://`` folders through :func:`open_api`, :func:`list_items`,
:func:`settled_items` and :func:`download`, so both sources list, cut off and download alike (and track
by the same :mod:`~dativo_provider.sources.file_stream` manifest).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import tempfile
import urllib.parse
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pyarrow as pa
import requests

from dativo_provider.connections import GoogleConfig
from dativo_provider.exceptions import ConfigError, SourceError, TransientError
from dativo_provider import objectstore
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source
from dativo_provider.sources.file_formats import FORMATS, CsvOptions, FileRead
from dativo_provider.sources.file_stream import (
    FileStream,
    FileVersion,
    Tracking,
    infer_file_schema,
    parse_tracking,
    plan_manifest,
    unread_files,
)
from dativo_provider.sources.files import COMPRESSION_SUFFIXES, parse_columns, parse_csv_options
from dativo_provider.sources.google_auth import ExportLimitError, GoogleAuth, api_client
from dativo_provider.sources.http import ApiNotFoundError, Clock, HttpClient, RetryPolicy
from dativo_provider.sources.saas import check_keys, duration, positive_int, retry_policy, utc_moment

log = logging.getLogger(__name__)

SPEC_KEYS = frozenset({
    "type", "conn_id", "folder_id", "recursive", "glob", "format", "columns", "csv", "bad_rows", "batch_rows",
    "incremental", "manifest_horizon", "changed_files", "export_google_sheets", "page_size", "retry",
    "settle",
})
FOLDER_MIME = "application/vnd.google-apps.folder"
SHEET_MIME = "application/vnd.google-apps.spreadsheet"
GOOGLE_TYPES_PREFIX = "application/vnd.google-apps."
LIST_FIELDS = "nextPageToken,incompleteSearch,files(id,name,mimeType,modifiedTime,md5Checksum,size,headRevisionId)"
MAX_PAGE_SIZE = 1000
#: Bytes downloaded to infer a schema (the format readers look at their first block, 1 MiB, too).
SAMPLE_BYTES = 1 << 20
CHUNK_BYTES = 1 << 16
MAX_BATCH_ROWS = 10_000_000
#: Files modified this close to Drive's clock may not be listed yet: they are left to the next run.
DEFAULT_SETTLE = timedelta(seconds=60)


@dataclass(frozen=True)
class DriveSpec:
    """A validated Google Drive source spec (see the module docstring)."""

    folder_id: str
    recursive: bool = False
    glob: str = "*"
    format: str = "csv"
    columns: pa.Schema | None = None
    csv: CsvOptions = CsvOptions()
    skip_bad_rows: bool = False
    batch_rows: int | None = None
    incremental: bool = True
    #: How the incremental state tracks files (the markdown_kv source tracks its Drive documents itself).
    tracking: Tracking = Tracking()
    export_google_sheets: bool = False
    page_size: int = MAX_PAGE_SIZE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    settle: timedelta = DEFAULT_SETTLE


@dataclass(frozen=True)
class DriveItem:
    """One listed file: its id, path below the folder, type, version and what identifies its bytes."""

    id: str
    path: str
    mime_type: str
    modified: datetime
    size: int | None = None
    md5: str | None = None
    revision: str | None = None

    @property
    def version(self) -> FileVersion:
        """The item as the files source's incremental state functions see it (keyed by id)."""
        return FileVersion(self.id, self.id, self.modified, self.size or 0, self.md5)

    @property
    def exported(self) -> bool:
        return self.mime_type == SHEET_MIME


def parse_spec(spec: Mapping[str, Any]) -> DriveSpec:
    """Validate a spec; every error names the key."""
    check_keys(spec, SPEC_KEYS, "google_drive")
    folder = spec.get("folder_id")
    if not isinstance(folder, str) or not folder.strip() or "'" in folder:
        raise ConfigError(f"google_drive source: 'folder_id' must be a Drive folder id, got {folder!r}")
    fmt = spec.get("format", "csv")
    if fmt not in FORMATS:
        raise ConfigError(f"google_drive source: 'format' is {fmt!r}; expected one of {', '.join(FORMATS)} "
                          "(XLSX is not supported: export the workbook as CSV, or use the google_sheets "
                          "source)")
    bad_rows = spec.get("bad_rows", "fail")
    if bad_rows not in ("fail", "skip"):
        raise ConfigError(f"google_drive source: 'bad_rows' is {bad_rows!r}; expected 'fail' or 'skip'")
    incremental, tracking = parse_tracking(spec, "google_drive source")
    return DriveSpec(
        folder_id=folder.strip(),
        recursive=_flag(spec, "recursive", False),
        glob=_text(spec, "glob", "*"),
        format=fmt,
        columns=_reworded(parse_columns, spec["columns"]) if spec.get("columns") is not None else None,
        csv=_reworded(parse_csv_options, spec.get("csv") or {}),
        skip_bad_rows=bad_rows == "skip",
        batch_rows=positive_int(spec, "batch_rows", 1, MAX_BATCH_ROWS, "google_drive") if "batch_rows" in spec
        else None,
        incremental=incremental,
        tracking=tracking,
        export_google_sheets=_flag(spec, "export_google_sheets", False),
        page_size=positive_int(spec, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE, "google_drive"),
        retry=retry_policy(spec.get("retry"), "google_drive"),
        settle=duration(spec.get("settle", DEFAULT_SETTLE), "google_drive source: 'settle'") or timedelta(0),
    )


def _flag(spec: Mapping[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"google_drive source: {key!r} must be true or false, got {value!r}")
    return value


def _text(spec: Mapping[str, Any], key: str, default: str) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"google_drive source: {key!r} must be a non-empty string, got {value!r}")
    return value


def _reworded(parse: Any, value: Any) -> Any:
    """The files source's parsers, their messages naming this source."""
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("files source", "google_drive source", 1)) from None


def from_spec(spec: Mapping[str, Any], connection: GoogleConfig | None) -> GoogleDriveSource:
    """Build a Drive source from its spec and the connection's :class:`GoogleConfig`."""
    return GoogleDriveSource(parse_spec(spec), connection)


class GoogleDriveSource(Source):
    """Files in one Drive folder (and, with ``recursive``, its subfolders).

    :param spec: the validated spec.
    :param config: the Google credentials.
    :param clock: time source for retry waits and token expiry (tests inject one that does not sleep).
    """

    def __init__(self, spec: DriveSpec, config: GoogleConfig | None, clock: Clock | None = None) -> None:
        if not isinstance(config, GoogleConfig):
            raise ConfigError("google_drive source needs a Google connection: set 'conn_id' to a "
                              "google_cloud_platform or dativo_google connection")
        self.spec = spec
        self.config = config
        self.clock = clock

    @property
    def identity(self) -> str:
        spec = self.spec
        sheets = "&export_google_sheets=true" if spec.export_google_sheets else ""
        return (f"gdrive://{spec.folder_id}?glob={spec.glob}&recursive={str(spec.recursive).lower()}"
                f"&format={spec.format}{sheets}")

    @property
    def lineage(self) -> LineageDataset:
        return LineageDataset("gdrive://drive.google.com", self.spec.folder_id)

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> DriveStream:
        if bounds.lookback is not None:
            raise ConfigError("google_drive source: 'lookback' is not supported; each file version is read "
                              "once (the state remembers the versions read, see 'incremental')")
        auth, client = open_api(self.config, self.spec, self.clock)
        stream = DriveStream(self, client, auth, dict(state) if self.spec.incremental and state else None)
        try:
            stream.prepare(utc_moment(bounds.upper, "google_drive source: the upper bound"))
        except BaseException:
            stream.close()
            raise
        return stream


class DriveStream(FileStream):
    """The batches of the files to read this run, in (modifiedTime, path) order."""

    kind = "google_drive"

    def __init__(self, source: GoogleDriveSource, client: HttpClient, auth: GoogleAuth,
                 previous: dict[str, Any] | None) -> None:
        super().__init__(incremental=source.spec.incremental, previous=previous,
                         details={"folder_id": source.spec.folder_id},
                         skip_bad_rows=source.spec.skip_bad_rows)
        self.source = source
        self.spec = source.spec
        self.client = client
        self.auth = auth
        self._todo: list[DriveItem] = []
        self._schema: pa.Schema | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="dativo-gdrive-")

    def prepare(self, upper: datetime | None) -> None:
        """List the folder, settle the schema and pick the file versions not read yet."""
        listing = list_items(self.client, self.spec)
        self.report.details["files_listed"] = len(listing.items)
        self._schema = self._settle_schema(listing.items)
        if self.spec.incremental and self.spec.tracking.mode == "manifest":
            settled, cutoff = settled_items(listing, self.spec, upper)
            by_id = {item.id: item for item in settled}
            plan = plan_manifest([item.version for item in settled], self._previous, self.spec.tracking,
                                 "google_drive source", lambda version: display(by_id[version.relative]))
            self._use_manifest(plan)
            self._todo = [by_id[version.relative] for version in plan.todo]
        else:
            self._todo, cutoff = unread_items(listing, self.spec, upper, self._previous)
        self.report.details["cutoff"] = _iso(cutoff) if cutoff else None

    @property
    def schema(self) -> pa.Schema:
        assert self._schema is not None
        return self._schema

    def _settle_schema(self, items: list[DriveItem]) -> pa.Schema:
        if self.spec.columns is not None:
            self.report.details["schema_from"] = "declared"
            return self.spec.columns
        sample = next((item for item in items if item.size != 0), None)
        if sample is None:
            raise SourceError(
                f"google_drive source: no file in folder {self.spec.folder_id!r} matches glob "
                f"{self.spec.glob!r} and no 'columns' are declared to give an empty result its schema"
            )
        # Parquet keeps its schema at the end, and half a compressed stream does not decompress.
        partial_read = self.spec.format != "parquet" and not _compression_suffix(sample.path)
        target = self._download(sample, "sample", SAMPLE_BYTES if partial_read else None)
        fs, path = objectstore.resolve(target)
        reading = FileRead(fs, path, display(sample), csv=self.spec.csv)
        self.report.details["schema_from"] = reading.display
        try:
            return infer_file_schema(self.spec.format, reading)
        finally:
            os.remove(target)

    def _all_batches(self) -> Generator[pa.RecordBatch, None, None]:
        for number, item in enumerate(self._todo):
            yield from self._one_file(item, str(number))
            self._done(item.version)
        self.report.details["requests"] = self.client.requests_sent

    def _one_file(self, item: DriveItem, name: str) -> Iterator[pa.RecordBatch]:
        detail = self._record({"path": display(item), "id": item.id, "modified": _iso(item.modified),
                               "size": item.size, "rows": 0, "rejected": 0})
        target = self._download(item, name)
        fs, path = objectstore.resolve(target)
        reading = FileRead(fs, path, detail["path"], self.schema, self.spec.csv, self.spec.batch_rows,
                           reject=self._rejecter(detail))
        try:
            if os.path.getsize(target):
                yield from self._file_batches(self.spec.format, reading, detail, "reading the download of")
        finally:
            os.remove(target)

    def _download(self, item: DriveItem, name: str, limit: int | None = None) -> str:
        """Save the item's bytes (the first ``limit`` of them, cut at a line end) to a temporary file."""
        target = os.path.join(self._tmp.name, name + _compression_suffix(item.path))
        download(self.client, item, target, limit)
        return target

    def _release(self) -> None:
        self.client.close()
        self.auth.close()
        self._tmp.cleanup()


# --- listing and downloading --------------------------------------------------------------------


@dataclass
class Listing:
    """The matching files, by (modified, path), and Drive's clock when the listing began."""

    items: list[DriveItem] = field(default_factory=list)
    started: datetime | None = None
    #: Every item listed (folders and files the glob or type left out included).
    entries: int = 0


def list_items(client: HttpClient, spec: DriveSpec) -> Listing:
    """The readable files of the folder (and subfolders if recursive) that match."""
    folders, seen, listing = [(spec.folder_id, "")], {spec.folder_id}, Listing()
    items = listing.items
    while folders:
        folder, prefix = folders.pop(0)
        for entry in list_children(client, folder, spec.page_size, listing):
            listing.entries += 1
            name, mime = str(entry.get("name", "")), str(entry.get("mimeType", ""))
            if mime == FOLDER_MIME:
                if spec.recursive and entry["id"] not in seen:
                    seen.add(entry["id"])
                    folders.append((entry["id"], f"{prefix}{name}/"))
            elif _readable(mime, spec) and fnmatch.fnmatchcase(name, spec.glob):
                items.append(_item(entry, prefix + name))
    items.sort(key=lambda item: (item.modified, item.path, item.id))
    if not listing.entries:
        check_folder(client, spec.folder_id)
    elif not items:
        log.warning("Google Drive folder %r lists %d item(s) but no %s file matches glob %r", spec.folder_id,
                    listing.entries, spec.format, spec.glob)
    return listing


def check_folder(client: HttpClient, folder: str) -> None:
    """Tell an empty folder from one the account cannot see: Drive lists both as empty, but only a
    visible one answers ``files.get``."""
    principal = getattr(client.auth, "principal", "the account of the credentials")
    try:
        body = client.get(f"/drive/v3/files/{urllib.parse.quote(folder, safe='')}",
                          {"fields": "id,name,mimeType", "supportsAllDrives": "true"}, what=f"folder {folder!r}").body
    except ApiNotFoundError:
        raise SourceError(f"Google Drive folder {folder!r} is not shared with {principal} or does not exist: share "
                          "the folder with that account (Viewer is enough) or fix 'folder_id'") from None
    if body.get("mimeType") != FOLDER_MIME:
        raise SourceError(f"Google Drive item {folder!r} ({body.get('name')!r}) is a {body.get('mimeType')} file, "
                          "not a folder; set 'folder_id' to the folder that holds the files")


def list_children(client: HttpClient, folder: str, page_size: int,
                  listing: Listing) -> Iterator[Mapping[str, Any]]:
    """Every item directly in ``folder`` that is not trashed, page by page; notes Drive's clock in
    ``listing.started``."""
    params = {"q": f"'{folder}' in parents and trashed = false", "fields": LIST_FIELDS, "pageSize": page_size,
              "supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
    token, tokens = None, set()
    while True:
        response = client.get("/drive/v3/files", {**params, **({"pageToken": token} if token else {})},
                              what=f"the items of folder {folder!r}")
        listing.started = listing.started or response.server_time
        if response.body.get("incompleteSearch"):
            raise TransientError(f"Google Drive could not list folder {folder!r} completely (incompleteSearch); "
                                 "nothing was read, a retry lists it again")
        # A page may hold fewer items than pageSize, or none, with more to come: only the token ends it.
        yield from response.body.get("files") or []
        token = response.body.get("nextPageToken")
        if not token:
            return
        if token in tokens:
            raise SourceError(f"Google Drive returned the same page token twice listing folder {folder!r}")
        tokens.add(token)


def open_api(config: GoogleConfig, spec: DriveSpec,
             clock: Clock | None = None) -> tuple[GoogleAuth, HttpClient]:
    """The credentials and the Drive API client a run uses (the caller closes both)."""
    auth = GoogleAuth(config, clock=clock, policy=spec.retry)
    return auth, api_client("Google Drive", config.drive_url, auth, policy=spec.retry, clock=clock)


def settled_items(listing: Listing, spec: DriveSpec,
                  upper: datetime | None) -> tuple[list[DriveItem], datetime | None]:
    """The listed items modified up to the cut-off, in listing order, and the cut-off."""
    cutoff = _cutoff(upper, listing.started, spec.settle)
    return [item for item in listing.items if cutoff is None or item.modified <= cutoff], cutoff


def unread_items(listing: Listing, spec: DriveSpec, upper: datetime | None,
                 previous: Mapping[str, Any] | None) -> tuple[list[DriveItem], datetime | None]:
    """The listed file versions a watermark-tracked run reads, in listing order, and the cut-off it applied:
    those modified up to the cut-off and, when incremental, not in the ``previous`` state (keyed by id)."""
    todo, cutoff = settled_items(listing, spec, upper)
    if spec.incremental:
        unread = {v.relative for v in unread_files([item.version for item in todo], previous)}
        todo = [item for item in todo if item.id in unread]
    return todo, cutoff


def _cutoff(upper: datetime | None, started: datetime | None, settle: timedelta) -> datetime | None:
    """The newest modifiedTime this run takes: the caller's bound or Drive's clock less ``settle``."""
    limits = [moment for moment in (upper, started - settle if started else None) if moment is not None]
    return min(limits) if limits else None


def _readable(mime: str, spec: DriveSpec) -> bool:
    if mime == SHEET_MIME:
        return spec.export_google_sheets and spec.format == "csv"
    return not mime.startswith(GOOGLE_TYPES_PREFIX)


def _item(entry: Mapping[str, Any], path: str) -> DriveItem:
    try:
        modified = utc_moment(entry["modifiedTime"], "Drive modifiedTime")
        size = int(entry["size"]) if entry.get("size") is not None else None
    except (KeyError, ValueError, ConfigError) as exc:
        raise SourceError(f"Google Drive listed {path!r} without a readable modifiedTime or size") from exc
    assert modified is not None
    return DriveItem(str(entry["id"]), path, str(entry["mimeType"]), modified, size, entry.get("md5Checksum"),
                     entry.get("headRevisionId"))


def download(client: HttpClient, item: DriveItem, target: str, limit: int | None = None) -> None:
    """Save the item's listed version to ``target``; in full it is checked against its ``md5Checksum``."""
    path, params = content_request(item)
    check = item.md5 if limit is None else None
    try:
        client.request("GET", path, params=params, stream=True, what=f"the content of {display(item)}",
                       read_body=partial(save_body, target, check, limit))
    except ExportLimitError as exc:
        raise ExportLimitError(
            f"Google Drive cannot export {display(item)} as CSV: it exceeds Drive's 10 MB export limit. Read it "
            "with the google_sheets source, keep it in the folder as an uploaded CSV file (its original "
            "format), or split it into smaller spreadsheets", api=exc.api, status=exc.status, method=exc.method,
            path=path) from None


def content_request(item: DriveItem) -> tuple[str, dict[str, str]]:
    """Where an item's bytes are: the CSV export of a Google Sheet, else the listed head revision."""
    file_id = urllib.parse.quote(item.id, safe="")
    if item.exported:
        return f"/drive/v3/files/{file_id}/export", {"mimeType": "text/csv"}
    if item.revision:
        revision = urllib.parse.quote(item.revision, safe="")
        return f"/drive/v3/files/{file_id}/revisions/{revision}", {"alt": "media"}
    return f"/drive/v3/files/{file_id}", {"alt": "media", "supportsAllDrives": "true"}


def save_body(target: str, md5: str | None, limit: int | None, response: requests.Response) -> int:
    """Stream a download into ``target`` (starting over on a retry); returns the bytes written.

    :param md5: the listed ``md5Checksum``: a mismatch (a truncated or changed download) raises
        ``ValueError``, which the HTTP client retries.
    :param limit: stop after about this many bytes and cut the file after its last line end.
    """
    digest = hashlib.md5(usedforsecurity=False) if md5 else None
    written = 0
    with open(target, "wb") as out:
        for chunk in response.iter_content(CHUNK_BYTES):
            out.write(chunk)
            written += len(chunk)
            if digest is not None:
                digest.update(chunk)
            if limit is not None and written >= limit:
                return _cut_at_line_end(out)
    if digest is not None and digest.hexdigest() != md5:
        raise ValueError("the downloaded bytes do not match the file's md5Checksum")
    return written


def _cut_at_line_end(out: Any) -> int:
    """A sample must not end in half a row: drop the bytes after the last newline."""
    out.flush()
    with open(out.name, "rb") as sample:
        data = sample.read()
    end = data.rfind(b"\n") + 1
    out.truncate(end or len(data))
    return end or len(data)


def display(item: DriveItem) -> str:
    """How errors and reports name a Drive file: ``gdrive:<path below the folder>``."""
    return f"gdrive:{item.path}"


def _compression_suffix(name: str) -> str:
    """Keep ``.gz`` & co. on the temporary file: the readers pick the decompression from the suffix."""
    return next((suffix for suffix in COMPRESSION_SUFFIXES if name.lower().endswith(suffix)), "")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
