"""Compaction: rewrite a table's small data files, partition by partition, into fewer larger ones.

Plan, rewrite, commit -- the same shape as every other writer here:

1. plan: the live data files of main's head, grouped by partition (current partition spec only); in
   each partition the files smaller than ``small_file_size`` are packed into bins of at most
   ``target_file_size`` bytes; a partition takes part when it has ``min_files`` small files or more,
   and a bin of one file is left alone. Files with delete files attached (other engines' merge-on-read)
   are left alone: rewriting them would have to apply the deletes.
2. rewrite: each bin is read whole (projected to the current schema), sorted by the table's sort order
   when it has one, and written as one new file.
3. commit: ONE ``overwrite`` snapshot on main that deletes every input and adds every output, so a
   reader sees all of it or none. On a lost race the table is reloaded; a bin whose inputs another
   writer removed meanwhile is dropped (its new file deleted), the others are committed again.

The compaction snapshot carries no source state: an ingest source's state stays where it is, in an
ancestor, and a run of that source in flight still commits (its state check sees no new state).
Memory: one bin at a time, so a few times ``target_file_size`` of Arrow data.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.iceberg.commit import commit_with_retries
from dativo_provider.iceberg.reader import stream_file
from dativo_provider.iceberg.writer import DataFileWriter
from dativo_provider.progress import ProgressLog

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import FileScanTask, Table, Transaction

log = logging.getLogger(__name__)

#: Summary property of the snapshots maintenance commits.
MAINTENANCE_KEY = "dativo.maintenance"
#: Rows per write call when a sorted bin is written (keeps row groups a sensible size).
_WRITE_ROWS = 262_144


@dataclass
class CompactionResult:
    """What compaction rewrote.

    :param files_compacted: small data files replaced.
    :param files_written: data files written in their place.
    :param partitions_compacted: partitions (of the current spec) that were rewritten.
    :param files_skipped_with_deletes: small files left alone because delete files apply to them.
    :param snapshot_id: the compaction snapshot, None when nothing was compacted.
    """

    files_compacted: int = 0
    files_written: int = 0
    bytes_compacted: int = 0
    bytes_written: int = 0
    rows_rewritten: int = 0
    partitions_compacted: int = 0
    files_skipped_with_deletes: int = 0
    sort_order: list[str] = field(default_factory=list)
    snapshot_id: int | None = None


@dataclass
class _Bin:
    """Small files of one partition, rewritten into one file."""

    partition: tuple[Any, ...]
    tasks: list[FileScanTask]
    outputs: list[DataFile] = field(default_factory=list)

    @property
    def inputs(self) -> list[DataFile]:
        return [task.file for task in self.tasks]


def compact_table(catalog: Catalog, identifier: str, *, target_file_size: int, small_file_size: int,
                  min_files: int) -> CompactionResult:
    """Rewrite the small data files of ``identifier``'s main branch (see the module docstring).

    :param target_file_size: bytes on disk a bin of small files may add up to.
    :param small_file_size: files smaller than this many bytes are candidates.
    :param min_files: a partition is compacted once it has this many small files.
    :raises CommitConflictError: other writers kept winning the commit race; rerunning is safe.
    """
    table = catalog.load_table(identifier)
    result = CompactionResult()
    sort_keys = sort_keys_of(table)
    result.sort_order = [" ".join(key) for key in sort_keys]
    bins = _plan(table, target_file_size, small_file_size, min_files, result)
    if not bins:
        log.info("%s: no partition has %d data files under %d bytes; nothing to compact", identifier,
                 min_files, small_file_size)
        return result
    total = sum(len(b.tasks) for b in bins)
    progress = ProgressLog(log, f"{identifier}: compaction", total=total, unit="files")
    try:
        for part in bins:
            part.outputs = _rewrite(table, part, sort_keys)
            progress.advance(len(part.tasks))
        committed, result.snapshot_id = _commit(catalog, identifier, bins)
    except BaseException:
        _discard(table, [b for b in bins if b.outputs])
        raise
    progress.finish()
    _count(result, committed)
    return result


def sort_keys_of(table: Table) -> list[tuple[str, str, str]]:
    """The table's sort order as Arrow sort keys: ``(column, "ascending"|"descending", "at_start"|"at_end")``.

    Only the leading identity-transform fields on top-level columns can be sorted by in Arrow; the
    order stops at the first other field (a bucket or truncate transform), which is logged.
    """
    from pyiceberg.table.sorting import NullOrder, SortDirection
    from pyiceberg.transforms import IdentityTransform

    keys: list[tuple[str, str, str]] = []
    for sort_field in table.sort_order().fields:
        name = table.schema().find_column_name(sort_field.source_id)
        if not isinstance(sort_field.transform, IdentityTransform) or name is None or "." in name:
            log.warning("%s: sort field %s is kept only up to it (Arrow sorts by top-level columns alone)",
                        table.name(), sort_field)
            break
        direction = "descending" if sort_field.direction == SortDirection.DESC else "ascending"
        nulls = "at_start" if sort_field.null_order == NullOrder.NULLS_FIRST else "at_end"
        keys.append((name, direction, nulls))
    return keys


def sort_rows(rows: pa.Table, keys: list[tuple[str, str, str]]) -> pa.Table:
    """``rows`` sorted by ``keys``; before pyarrow 25 nulls go where the first key says, for every key."""
    import pyarrow as pa

    if not keys:
        return rows
    if int(pa.__version__.split(".")[0]) >= 25:
        return rows.sort_by(keys)
    return rows.sort_by([key[:2] for key in keys], null_placement=keys[0][2])


def _plan(table: Table, target: int, small: int, min_files: int, result: CompactionResult) -> list[_Bin]:
    head = table.metadata.snapshot_by_name("main")
    if head is None:
        return []
    spec_id = table.metadata.default_spec_id
    partitions: dict[tuple[Any, ...], list[FileScanTask]] = {}
    for task in table.scan(snapshot_id=head.snapshot_id).plan_files():
        data_file = task.file
        if data_file.spec_id != spec_id or data_file.file_size_in_bytes >= small:
            continue
        if task.delete_files:
            result.files_skipped_with_deletes += 1
            continue
        values = data_file.partition  # a Record: indexable, but not typed as iterable
        partitions.setdefault(tuple(values[i] for i in range(len(values))), []).append(task)
    bins: list[_Bin] = []
    for partition, tasks in partitions.items():
        if len(tasks) >= min_files:
            bins += [b for b in _pack(partition, tasks, target) if len(b.tasks) > 1]
    return bins


def _pack(partition: tuple[Any, ...], tasks: list[FileScanTask], target: int) -> list[_Bin]:
    """First-fit by decreasing size: bins of at most ``target`` bytes (a bigger file gets its own)."""
    bins: list[_Bin] = []
    sizes: list[int] = []
    for task in sorted(tasks, key=lambda t: -t.file.file_size_in_bytes):
        size = task.file.file_size_in_bytes
        slot = next((i for i, used in enumerate(sizes) if used + size <= target), None)
        if slot is None:
            bins.append(_Bin(partition, []))
            sizes.append(0)
            slot = len(bins) - 1
        bins[slot].tasks.append(task)
        sizes[slot] += size
    return bins


def _rewrite(table: Table, part: _Bin, sort_keys: list[tuple[str, str, str]]) -> list[DataFile]:
    import pyarrow as pa

    schema = table.schema()
    writer = DataFileWriter(table, [], sys.maxsize)  # one output file per bin: the bin is the size bound
    try:
        rows = pa.Table.from_batches(
            [batch for task in part.tasks for batch in stream_file(table, task, schema)],
            schema=writer.arrow_schema,
        )
        rows = sort_rows(rows, sort_keys)
        for offset in range(0, max(rows.num_rows, 1), _WRITE_ROWS):
            writer.write(rows.slice(offset, _WRITE_ROWS))
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def _commit(catalog: Catalog, identifier: str, bins: list[_Bin]) -> tuple[list[_Bin], int | None]:
    """One overwrite snapshot replacing every bin whose inputs are all still live.

    :returns: the bins committed, and the snapshot (None when no bin was left).
    """
    committed: list[_Bin] = []

    def build(table: Table) -> Transaction | None:
        head = table.metadata.snapshot_by_name("main")
        tasks = table.scan(snapshot_id=head.snapshot_id).plan_files() if head else []
        live = {t.file.file_path for t in tasks}
        still = [b for b in bins if all(f.file_path in live for f in b.inputs)]
        gone = [b for b in bins if b not in still and b.outputs]
        if gone:
            log.warning("%s: %d bins lost an input file to another writer; their rewrite is dropped",
                        identifier, len(gone))
            _discard(table, gone)
        committed[:] = still
        if not still:
            return None
        transaction = table.transaction()
        properties = {MAINTENANCE_KEY: "compaction"}
        update = transaction.update_snapshot(snapshot_properties=properties, branch="main")
        with update.overwrite() as overwrite:
            for part in still:
                for data_file in part.inputs:
                    overwrite.delete_data_file(data_file)
                for data_file in part.outputs:
                    overwrite.append_data_file(data_file)
        return transaction

    table = commit_with_retries(catalog, identifier, build)
    head = table.metadata.snapshot_by_name("main")
    return committed, head.snapshot_id if committed and head else None


def _discard(table: Table, bins: list[_Bin]) -> None:
    """Delete the files written for ``bins`` (never committed)."""
    for part in bins:
        for data_file in part.outputs:
            try:
                table.io.delete(data_file.file_path)
            except OSError:
                pass
        part.outputs = []


def _count(result: CompactionResult, committed: list[_Bin]) -> None:
    result.partitions_compacted = len({b.partition for b in committed})
    for part in committed:
        result.files_compacted += len(part.inputs)
        result.bytes_compacted += sum(f.file_size_in_bytes for f in part.inputs)
        result.files_written += len(part.outputs)
        result.bytes_written += sum(f.file_size_in_bytes for f in part.outputs)
        result.rows_rewritten += sum(f.record_count for f in part.outputs)
