"""Export (GDPR Art. 15 and 20): all of a subject's rows, one file per table, with a manifest.

Layout under ``destination/<request_id>/``: ``<table>.json|csv|parquet`` for every table with rows,
and ``manifest.json`` (request id, format, created time, per table: rows, file, SHA-256, snapshot id).

Decisions:

* Each table is read at the snapshot discovery counted (time travel), so the files hold exactly the
  rows discovery reported, even if the table moved since.
* ``_dativo_*`` columns of quarantine tables (run id, failed checks, reason) are pipeline bookkeeping,
  not the subject's data: they are left out. A quarantined row is exported under its quarantine
  table's name, so it is still visible that it was held back.
* JSON: one array of row objects per file; timestamps ISO 8601, decimals as strings (no float
  rounding), binary as base64. CSV: pyarrow's writer (nested values as JSON text). Parquet: as stored.
* Tables where the subject has no rows get no file; the manifest still lists them with 0 rows.
* A discovery that would select rows by a blank value (an empty or whitespace-only id or e-mail,
  see :mod:`dativo_provider.privacy.identifiers`) is refused before anything is written: it would hand
  out every anonymous row.
* Never world-readable: locally the request directory is 0700 and every file 0600 (created so, not
  chmod-ed after writing); on S3 every object is written with the ``private`` canned ACL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from dativo_provider.exceptions import ConfigError, TerminalError
from dativo_provider.privacy import identifiers as rule
from dativo_provider.privacy.discovery import split_table

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.connections import ObjectStoreConfig
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.privacy.discovery import Discovery, TableMatch

log = logging.getLogger(__name__)

ExportFormat = Literal["json", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("json", "csv", "parquet")
MANIFEST = "manifest.json"
META_PREFIX = "_dativo_"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ExportedTable:
    """One table's part of an export. ``file`` is None when the subject has no rows there."""

    table: str
    rows: int
    snapshot_id: int | None
    file: str | None = None
    sha256: str | None = None
    bytes: int = 0


@dataclass
class ExportManifest:
    """What an export wrote. ``to_dict()`` holds no identifier values (only the request id)."""

    request_id: str
    format: str
    location: str
    created_at: datetime
    tables: list[ExportedTable] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "format": self.format, "location": self.location,
                "created_at": self.created_at.isoformat(), "total_rows": self.total_rows,
                "tables": [vars(t).copy() for t in self.tables]}


def export_subject(catalog: CatalogConfig, discovery: Discovery, destination: str | os.PathLike[str], *,
                   fmt: ExportFormat = "json", object_store: ObjectStoreConfig | None = None,
                   now: datetime | None = None,
                   other_catalogs: Mapping[str, CatalogConfig] | None = None) -> ExportManifest:
    """Write the subject's rows from every table ``discovery`` matched under ``destination/<request_id>/``.

    :param destination: a local directory or ``s3://bucket/prefix``.
    :param object_store: S3 credentials and endpoint (None: the AWS default chain); local paths ignore it.
    :param now: the manifest's creation time (default: now, UTC).
    :raises ConfigError: unknown format, a request id that is not a safe file name, or a discovery that
        selects rows by a blank identifier (nothing is written then).
    :raises TerminalError: a table's snapshot read by discovery is gone (re-run discovery). Files already
        written stay; a re-run overwrites them.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format is {fmt!r}; expected one of {FORMATS}")
    if not _SAFE.match(discovery.request_id):
        raise ConfigError(f"request id {discovery.request_id!r} cannot name a folder: use letters, digits, . _ -")
    _refuse_blank_identifiers(discovery)
    store = _Store.open(str(destination), discovery.request_id, object_store)
    manifest = ExportManifest(discovery.request_id, fmt, store.location, now or datetime.now(timezone.utc))
    catalogs: dict[str | None, Any] = {None: catalog.load(),
                                       **{name: c.load() for name, c in (other_catalogs or {}).items()}}
    for match in discovery.tables:
        name, _ = split_table(match.table)
        manifest.tables.append(_export_table(catalogs[name], match, store, fmt))
    store.write_bytes(MANIFEST, json.dumps(manifest.to_dict(), indent=2).encode(), "application/json")
    log.info("export %s: %d rows from %d tables to %s", discovery.request_id, manifest.total_rows,
             len(manifest.tables), store.location)
    return manifest


def _refuse_blank_identifiers(discovery: Discovery) -> None:
    rule.validated_ids(discovery.subject_ids, parameter="discovery subject_ids", request_id=discovery.request_id)
    rule.validated_ids(discovery.emails, parameter="discovery emails", request_id=discovery.request_id)
    for match in discovery.tables:
        for column, values in match.match.items():
            rule.validated_ids(values, parameter=f"discovery's selection of {match.table}.{column}",
                               request_id=discovery.request_id)


def _export_table(iceberg: Any, match: TableMatch, store: _Store, fmt: str) -> ExportedTable:
    entry = ExportedTable(match.table, 0, match.snapshot_id)
    if not match.rows or match.snapshot_id is None:
        return entry
    reader = _subject_reader(iceberg, match)
    name = f"{match.table}.{fmt}"
    with store.sink(name, _CONTENT_TYPES[fmt]) as sink:
        entry.rows = _WRITERS[fmt](reader, sink)
    entry.file, (entry.sha256, entry.bytes) = name, store.digest(name)
    if entry.rows != match.rows:  # the snapshot is fixed, so this means a bug, never a race
        raise TerminalError(f"{match.table}: exported {entry.rows} rows but discovery counted {match.rows} "
                          f"at snapshot {match.snapshot_id}")
    return entry


def _subject_reader(iceberg: Any, match: TableMatch) -> pa.RecordBatchReader:
    table = iceberg.load_table(split_table(match.table)[1])
    if table.metadata.snapshot_by_id(match.snapshot_id) is None:
        raise TerminalError(f"{match.table}: snapshot {match.snapshot_id} that discovery read is gone; "
                          "run discovery again, then export")
    columns = tuple(f.name for f in table.schema().fields if not f.name.startswith(META_PREFIX))
    return table.scan(row_filter=match.row_filter(), selected_fields=columns,
                      snapshot_id=match.snapshot_id).to_arrow_batch_reader()


# --- formats ------------------------------------------------------------------------------------


def _write_json(reader: pa.RecordBatchReader, sink: BinaryIO) -> int:
    rows = 0
    sink.write(b"[")
    for batch in reader:
        for row in batch.to_pylist():
            sink.write((b",\n" if rows else b"\n") + json.dumps(row, default=_json_value, ensure_ascii=False).encode())
            rows += 1
    sink.write(b"\n]\n" if rows else b"]\n")
    return rows


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot export a {type(value).__name__} as JSON")


def _write_csv(reader: pa.RecordBatchReader, sink: BinaryIO) -> int:
    import pyarrow.csv as pacsv

    rows, writer = 0, None
    for batch in reader:
        batch = _flat(batch)
        writer = writer or pacsv.CSVWriter(sink, batch.schema)
        writer.write_batch(batch)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    return rows


def _flat(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Nested columns as JSON text (CSV has no lists or structs)."""
    import pyarrow as pa
    import pyarrow.types as pat

    columns = []
    for column in batch.columns:
        if pat.is_nested(column.type):
            column = pa.array([None if v is None else json.dumps(v, default=_json_value) for v in column.to_pylist()],
                              pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _write_parquet(reader: pa.RecordBatchReader, sink: BinaryIO) -> int:
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


_WRITERS = {"json": _write_json, "csv": _write_csv, "parquet": _write_parquet}
_CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


# --- where files go -----------------------------------------------------------------------------


class _Store:
    """The request's folder: a private local directory or an S3 prefix written with a private ACL."""

    def __init__(self, location: str, fs: Any = None, root: str = "") -> None:
        self.location = location
        self.fs = fs
        self.root = root

    @classmethod
    def open(cls, destination: str, request_id: str, object_store: ObjectStoreConfig | None) -> _Store:
        from dativo_provider import objectstore

        where = objectstore.parse(destination, "the export destination")
        if where.is_s3:
            root = f"{where.base}/{request_id}"
            return cls(where.display(root), where.filesystem(object_store), root)
        folder = Path(where.base) / request_id
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask, and the folder may be older
        return cls(str(folder))

    @contextmanager
    def sink(self, name: str, content_type: str) -> Iterator[BinaryIO]:
        if self.fs is not None:
            with self.fs.open_output_stream(f"{self.root}/{name}",
                                            metadata={"ACL": "private", "Content-Type": content_type}) as out:
                yield out
            return
        path = os.path.join(self.location, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.fchmod(fd, 0o600)  # an older file keeps its mode on O_CREAT; make sure it is private
        with os.fdopen(fd, "wb") as out:
            yield out

    def write_bytes(self, name: str, data: bytes, content_type: str) -> None:
        with self.sink(name, content_type) as out:
            out.write(data)

    def digest(self, name: str) -> tuple[str, int]:
        """SHA-256 and size of the file as stored (read back, so it proves what is there)."""
        sha, size = hashlib.sha256(), 0
        if self.fs is not None:
            with self.fs.open_input_stream(f"{self.root}/{name}") as stream:
                while chunk := stream.read(1 << 20):
                    sha.update(chunk)
                    size += len(chunk)
        else:
            with open(os.path.join(self.location, name), "rb") as stream:
                while chunk := stream.read(1 << 20):
                    sha.update(chunk)
                    size += len(chunk)
        return sha.hexdigest(), size


__all__ = ["ExportManifest", "ExportedTable", "export_subject"]
