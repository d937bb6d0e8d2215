"""Prove that a data subject's identifiers are physically gone from the storage of Iceberg tables.

A row deleted from an Iceberg table lives on in the files of older snapshots, in files no metadata
references any more, in the column bounds of manifests and in Parquet footers. Parquet pages and Avro
blocks are compressed, so searching raw bytes proves nothing: this module lists every file under each
table's location (and every file its metadata points to elsewhere), decodes it and compares each
value with every encoding of the identifiers (:mod:`~dativo_provider.privacy.matching` says
what matches; :mod:`~dativo_provider.privacy.decoders` decodes each kind of file).

Findings never carry identifier values: any occurrence in a path is replaced with ``***``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from dativo_provider import progress as progress_log
from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.privacy.decoders import (
    KINDS,
    MAGIC_KINDS,
    FileKind,
    FileScan,
    TableContext,
    decode,
    is_metadata_json,
)
from dativo_provider.privacy.matching import Identifiers

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["Finding", "Identifiers", "VerificationResult", "verify_erased"]

log = logging.getLogger(__name__)


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
    :param object_store: S3 credentials and endpoint; default: each table's FileIO properties, i.e. the
        catalog's ``s3.*`` properties and what a REST catalog vends with the table (endpoint,
        short-lived credentials), which the catalog's own properties then lack.
    :returns: passed only if there is no finding and (with ``rediscover``) discovery finds no row.
        Reading errors of a file become findings; catalog and credential errors are raised.
    """
    started = time.monotonic()
    # No final line: the verdict below is the summary.
    decoded = progress_log.ProgressLog(log, f"verification of {len(tables)} table(s)", unit="files",
                                       interval=progress_log.DEFAULT_INTERVAL_S)
    scan = _Scan(identifiers, object_store, decoded)
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


class _Scan:
    """Lists, decodes and searches the files of each table, collecting findings."""

    def __init__(self, identifiers: Identifiers, store: ObjectStoreConfig | None,
                 decoded: progress_log.ProgressLog | None = None) -> None:
        self.ids = identifiers
        self.store = store
        self.decoded = decoded
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.bytes = 0
        self.seen: set[str] = set()
        #: The FileIO properties of the table being scanned, and S3 file systems built from them by bucket.
        self._table_io: dict[str, Any] = {}
        self._s3_by_bucket: dict[str, pafs.FileSystem] = {}

    def table(self, iceberg: Any, name: str) -> None:
        try:
            table = iceberg.load_table(name)
        except Exception as exc:  # any failure: the table's files cannot be found, so nothing is proven
            self.findings.append(Finding(name, "other", f"table cannot be loaded ({type(exc).__name__}); "
                                                        "its files were not scanned"))
            return
        self._table_io, self._s3_by_bucket = dict(table.io.properties), {}
        roots = {table.location()} | {table.properties[k] for k in ("write.data.path", "write.metadata.path")
                                      if table.properties.get(k)}
        files = [uri for root in sorted(roots) for uri in self._list(root)]
        context = TableContext()
        while files:
            files = [uri for uri in dict.fromkeys(files) if uri not in self.seen]
            self.seen.update(files)
            references = self._scan_files(files, context)
            files = [uri for uri in sorted(references) if uri not in self.seen and self._exists(uri)]
        self._served_metadata(name, table)

    def _served_metadata(self, name: str, table: Any) -> None:
        """The metadata the catalog answers with, searched like a metadata file; what the current
        metadata file already showed is not repeated. A SQL catalog serves that file; a REST catalog may
        serve metadata from its own store (SeaweedFS does), which then need not equal any file in storage
        (the file may even be gone)."""
        import io

        scanned = FileScan("metadata", self.ids, TableContext())
        try:
            decode(io.BytesIO(table.metadata.model_dump_json().encode()), "served.metadata.json", scanned)
        except Exception as exc:  # absence cannot be proven
            scanned.wheres.append(f"cannot be decoded ({type(exc).__name__}: {str(exc)[:200]})")
        in_file = {f.where for f in self.findings if f.file == table.metadata_location}
        self.findings.extend(Finding(f"{name} (metadata served by the catalog)", "metadata", where)
                             for where in scanned.wheres if where not in in_file)

    def _scan_files(self, uris: list[str], context: TableContext) -> set[str]:
        """Metadata JSON first (it names the partition specs manifest lists need), the rest in parallel."""
        first = [u for u in uris if is_metadata_json(u)]
        rest = [u for u in uris if not is_metadata_json(u)]
        references: set[str] = set()
        workers = min(8, os.cpu_count() or 1)
        for group in (first, rest):
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for uri, scanned in zip(group, pool.map(lambda u: self._scan_file(u, context), group)):
                    self.counts[scanned.kind] += 1
                    self.bytes += scanned.size
                    if self.decoded is not None:
                        self.decoded.advance(1, f"{self.bytes} bytes")
                    self.findings.extend(Finding(uri, scanned.kind, w) for w in scanned.wheres)
                    references |= {_normalise_uri(r, uri) for r in scanned.references}
        return references

    def _scan_file(self, uri: str, context: TableContext) -> FileScan:
        scanned = FileScan("metadata" if is_metadata_json(uri) else "other", self.ids, context)
        if self.ids.regex.search(unquote(uri)):
            scanned.wheres.append("file path")
        try:
            fs, path = self._fs(uri)
            with fs.open_input_file(path) as handle:
                scanned.size = handle.size()
                if scanned.kind != "metadata":
                    scanned.kind = MAGIC_KINDS.get(handle.read(4), "other")
                    handle.seek(0)
                decode(handle, path, scanned)
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
        from dativo_provider.objectstore import uri_filesystem

        return uri_filesystem(uri, lambda: self._s3(uri))

    def _s3(self, uri: str) -> pafs.FileSystem:
        """S3 as the caller's ``object_store`` says, else configured like the table's FileIO: a REST
        catalog may vend the endpoint and credentials with each table, and the catalog's properties
        then hold neither."""
        bucket = "" if self.store is not None else uri.split("://", 1)[1].split("/", 1)[0]
        if bucket not in self._s3_by_bucket:  # a race builds it twice, harmlessly
            if self.store is not None:
                from dativo_provider.objectstore import s3_filesystem

                self._s3_by_bucket[bucket] = s3_filesystem(self.store)
            else:
                from pyiceberg.io.pyarrow import PyArrowFileIO

                self._s3_by_bucket[bucket] = PyArrowFileIO(self._table_io).fs_by_scheme("s3", bucket)
        return self._s3_by_bucket[bucket]


def _normalise_uri(reference: str, referrer: str) -> str:
    if "://" in reference or not reference.startswith("/"):
        return reference
    return f"file://{reference}" if referrer.startswith("file://") else reference
