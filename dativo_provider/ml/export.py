"""Export an Iceberg snapshot (a tag, branch or snapshot id) as Parquet files, streamed batch by batch.

The hand-off to tools that load Parquet and not Iceberg: BigQuery load jobs (then Vertex AI Feature
Store), a SageMaker job's input channel, another lakehouse. :func:`export_snapshot_parquet` resolves
the ref to one snapshot first, so the files hold exactly that snapshot's rows whatever is committed
meanwhile; rows stream from the scan into ``part-00000.parquet``, ``part-00001.parquet`` ... under the
destination (a new file every ``max_rows_per_file`` rows), so memory stays at about one batch and one
row group. A rerun into the same destination overwrites the same names and removes ``part-*.parquet``
files left by an earlier, longer export, so the destination always holds one export.

Destinations: a local path or ``file://``, ``s3://`` (credentials from an
:class:`~dativo_provider.connections.ObjectStoreConfig`, else the AWS chain) and ``gs://`` (Google
application-default credentials, through :mod:`pyarrow.fs`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from pyiceberg.table import Table

    from dativo_provider.connections import ObjectStoreConfig
    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: Rows per file unless told otherwise: a few hundred MB of typical feature rows.
MAX_ROWS_PER_FILE = 5_000_000
_PART = re.compile(r"^part-(\d{5,})\.parquet$")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_snapshot_parquet` wrote.

    :param files: the files, as URIs of the destination's scheme (``gs://…``, ``s3://…``, a local path).
    """

    table: str
    ref: str
    snapshot_id: int
    destination: str
    files: tuple[str, ...]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["snapshot_id"] = str(self.snapshot_id)  # above 2**53: JavaScript readers lose digits
        data["files"] = list(self.files)
        return data


def export_snapshot_parquet(catalog: CatalogConfig, table: str, ref: str | int | None, destination: str, *,
                            columns: Sequence[str] = (), max_rows_per_file: int = MAX_ROWS_PER_FILE,
                            compression: str = "zstd", object_store: ObjectStoreConfig | None = None,
                            filesystem: pafs.FileSystem | None = None) -> ExportResult:
    """Write the rows of ``table`` at ``ref`` as Parquet files under ``destination`` (module doc).

    :param ref: a tag or branch name, a snapshot id, or None for main's head.
    :param columns: export only these columns (all when empty).
    :param object_store: S3 credentials and endpoint for an ``s3://`` destination.
    :param filesystem: write through this :mod:`pyarrow.fs` file system instead (``destination`` is then
        a path in it).
    :raises ConfigError: no such table, ref or snapshot (the table's refs named), a bad destination or
        ``max_rows_per_file``.
    """
    if max_rows_per_file < 1:
        raise ConfigError(f"max_rows_per_file is {max_rows_per_file}; it must be at least 1")
    loaded = _load(catalog, table)
    ref_name, snapshot_id = resolve_ref(loaded, table, ref)
    fs, base, display = _destination(destination, object_store, filesystem)
    fs.create_dir(base, recursive=True)
    scan = loaded.scan(snapshot_id=snapshot_id, selected_fields=tuple(columns) or ("*",))
    reader = scan.to_arrow_batch_reader()
    written = _write_parts(fs, base, reader, max_rows_per_file, compression)
    _remove_stale_parts(fs, base, keep=len(written.files))
    result = ExportResult(table, ref_name, snapshot_id, destination,
                          tuple(display(path) for path in written.files), written.rows)
    log.info("%s at %s (snapshot %s): %d rows exported to %d Parquet file(s) under %s", table, ref_name,
             snapshot_id, result.rows, len(result.files), destination)
    return result


def tag_snapshot(catalog: CatalogConfig, table: str, tag: str, ref: str | int | None = None) -> int:
    """Tag the snapshot ``ref`` resolves to (main's head by default) as ``tag``; returns its snapshot id.

    A tag that already exists is kept where it is, so a rerun exports the snapshot the first run
    tagged (a tag names one training or serving cut; moving it would change what it means).

    :raises ConfigError: no such table or ref; ``tag`` is a branch.
    """
    loaded = _load(catalog, table)
    existing = loaded.metadata.refs.get(tag)
    if existing is not None:
        if str(existing.snapshot_ref_type) != "tag":
            raise ConfigError(f"{table}: {tag!r} is a branch, not a tag; choose another tag name")
        log.info("%s: tag %r exists (snapshot %s); kept", table, tag, existing.snapshot_id)
        return existing.snapshot_id
    _, snapshot_id = resolve_ref(loaded, table, ref)
    loaded.manage_snapshots().create_tag(snapshot_id, tag).commit()
    log.info("%s: snapshot %s tagged %r", table, snapshot_id, tag)
    return snapshot_id


def resolve_ref(table: Table, name: str, ref: str | int | None) -> tuple[str, int]:
    """``(ref name, snapshot id)`` of a tag or branch, a snapshot id, or main's head (None).

    :raises ConfigError: no such ref or snapshot, naming the table's refs.
    """
    refs = ", ".join(sorted(table.metadata.refs)) or "none"
    text = str(ref).strip() if ref is not None else "main"
    if text.isdigit() and text not in table.metadata.refs:
        if table.metadata.snapshot_by_id(int(text)) is None:
            raise ConfigError(f"{name}: no snapshot {text} (its refs: {refs})")
        return f"snapshot {text}", int(text)
    snapshot = table.metadata.snapshot_by_name(text)
    if snapshot is None:
        why = "has no snapshot yet" if text == "main" else f"has no tag or branch {text!r}"
        raise ConfigError(f"{name} {why} (its refs: {refs})")
    return text, snapshot.snapshot_id


@dataclass
class _Written:
    files: list[str]
    rows: int = 0


def _write_parts(fs: pafs.FileSystem, base: str, reader: pa.RecordBatchReader, max_rows: int,
                 compression: str) -> _Written:
    """Stream ``reader`` into part files of at most ``max_rows`` rows (one empty file for no rows)."""
    written = _Written([])
    writer: pq.ParquetWriter | None = None
    in_file = 0
    try:
        for batch in _sliced(reader, max_rows):
            if writer is None or in_file + batch.num_rows > max_rows:
                _close(writer)
                writer, in_file = _open(fs, base, len(written.files), reader.schema, compression), 0
                written.files.append(_part(base, len(written.files)))
            writer.write_batch(batch)
            in_file += batch.num_rows
            written.rows += batch.num_rows
        if writer is None:
            writer = _open(fs, base, 0, reader.schema, compression)
            written.files.append(_part(base, 0))
    finally:
        _close(writer)
    return written


def _sliced(reader: pa.RecordBatchReader, max_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches of ``reader``, none longer than ``max_rows`` (so a file never overflows)."""
    for batch in reader:
        for start in range(0, batch.num_rows, max_rows):
            yield batch.slice(start, max_rows)


def _open(fs: pafs.FileSystem, base: str, index: int, schema: pa.Schema,
          compression: str) -> pq.ParquetWriter:
    import pyarrow.parquet as pq

    return pq.ParquetWriter(_part(base, index), schema, filesystem=fs, compression=compression)


def _close(writer: pq.ParquetWriter | None) -> None:
    if writer is not None:
        writer.close()


def _part(base: str, index: int) -> str:
    return f"{base}/part-{index:05d}.parquet"


def _remove_stale_parts(fs: pafs.FileSystem, base: str, keep: int) -> None:
    """Delete ``part-N.parquet`` files with N >= ``keep``: left by an earlier export with more files."""
    import pyarrow.fs as pafs

    for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
        match = _PART.match(info.base_name)
        if match and int(match.group(1)) >= keep:
            fs.delete_file(info.path)
            log.info("removed %s, left by an earlier export", info.path)


def _destination(destination: str, object_store: ObjectStoreConfig | None, filesystem: pafs.FileSystem | None
                 ) -> tuple[pafs.FileSystem, str, Any]:
    """The file system, the base path in it, and how to show a path of it as a URI."""
    if filesystem is not None:
        return filesystem, destination.rstrip("/"), str
    if not isinstance(destination, str) or not destination.strip():
        raise ConfigError(f"destination must be a local path, s3://bucket/prefix or gs://bucket/prefix, "
                          f"not {destination!r}")
    if destination.startswith("gs://"):
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(destination)
        return fs, path.rstrip("/"), lambda p: f"gs://{p}"
    from dativo_provider.objectstore import parse

    location = parse(destination, "export destination")
    return location.filesystem(object_store), location.base, location.display


def _load(catalog: CatalogConfig, table: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load().load_table(table)
    except NoSuchTableError:
        raise ConfigError(f"{table}: no such table in catalog {catalog.name!r}") from None
