"""Commit written data files as ONE snapshot, for every write mode, retrying lost races.

Each attempt reloads the table, re-checks that no other run of the same source committed in the
meantime, works out which existing files the mode removes, and commits a single ``append`` or
``overwrite`` snapshot. The new data files are written once, before the first attempt; only the
metadata (and, for ``merge``, the rewritten files) is redone on a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from dativo_provider.exceptions import CommitConflictError, ConcurrentRunError
from dativo_provider.iceberg.barrier import wait_at_barrier
from dativo_provider.iceberg.races import disable_builtin_retries, is_lost_race
from dativo_provider.iceberg.reader import stream_file
from dativo_provider.iceberg.state import CARRIED_FROM_KEY, read_state
from dativo_provider.iceberg.tables import backoff, creation_raced
from dativo_provider.iceberg.writer import DataFileWriter

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import FileScanTask, Table, Transaction
    from pyiceberg.table.metadata import TableMetadata

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Up to this many distinct merge keys are pushed down as ``IN`` (pyiceberg stops pruning above 200).
_IN_PUSHDOWN_LIMIT = 200


@dataclass
class CommitPlan:
    """What to commit.

    :param new_files: data files already written for this run.
    :param keys: distinct merge-key values of the new rows (``merge`` only).
    :param expected_state_snapshot: the snapshot holding the state this run started from; if
        another snapshot of the same source appears first, the commit is refused.
    :param creation: the staged creation of a table that does not exist yet: the first attempt creates
        it and adds the files in one commit; if another run created it first, the files go to theirs.
    """

    identifier: str
    mode: str
    branch: str
    new_files: list[DataFile]
    properties: dict[str, str]
    source_identity: str
    expected_state_snapshot: int | None
    merge_keys: tuple[str, ...] = ()
    keys: pa.Table | None = None
    sort_by: list[tuple[str, str]] = field(default_factory=list)
    target_file_bytes: int = 128 * 1024 * 1024
    track_state: bool = True
    creation: Transaction | None = None

    def file_io(self, catalog: Catalog) -> FileIO:
        """Where the new files live: the staged table's storage, else the catalog's table."""
        if self.creation is not None:
            return self.creation._table.io  # noqa: SLF001 - pyiceberg offers no public view of it
        return catalog.load_table(self.identifier).io


@dataclass
class CommitOutcome:
    snapshot_id: int | None
    previous_snapshot_id: int | None
    attempts: int
    files_removed: int = 0
    rows_deleted: int = 0
    #: Files merge wrote to keep the other rows of files that held a merged key.
    files_rewritten: int = 0
    bytes_rewritten: int = 0


@dataclass
class _Removal:
    """Existing files the mode drops, and (merge) the files rewritten without the merged keys."""

    files: list[DataFile] = field(default_factory=list)
    replacements: list[DataFile] = field(default_factory=list)
    rows_deleted: int = 0
    writer: DataFileWriter | None = None

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def commit(catalog: Catalog, plan: CommitPlan, max_attempts: int) -> CommitOutcome:
    """Commit ``plan`` as one snapshot on ``plan.branch``.

    :raises ConcurrentRunError: another run of the same source committed first (its rows would repeat).
    :raises CommitConflictError: other writers won the race ``max_attempts`` times.
    """
    if plan.creation is not None and _creates_apart(catalog):
        _create_empty(catalog, plan)
    if plan.creation is not None:
        _add_files_to_creation(plan)
    for attempt in range(1, max_attempts + 1):
        if plan.creation is not None:
            created = _create_with_files(catalog, plan, attempt, max_attempts)
            if created is not None:
                return CommitOutcome(snapshot_id=_head_id(created, plan.branch), previous_snapshot_id=None,
                                     attempts=attempt)
            continue
        table = wait_at_barrier(catalog, catalog.load_table(plan.identifier))
        _check_no_concurrent_run(table, plan)
        previous = _head_id(table, plan.branch)
        removal = _plan_removal(table, plan)
        try:
            committed = _commit_once(table, plan, removal)
        except Exception as exc:
            removal.discard()
            if not is_lost_race(exc):
                raise
            log.warning("commit to %s lost a race with another writer (attempt %d/%d): %s", plan.identifier,
                        attempt, max_attempts, exc)
            backoff(attempt)
            continue
        return CommitOutcome(
            snapshot_id=_head_id(committed, plan.branch),
            previous_snapshot_id=previous,
            attempts=attempt,
            files_removed=len(removal.files),
            rows_deleted=removal.rows_deleted,
            files_rewritten=len(removal.replacements),
            bytes_rewritten=sum(f.file_size_in_bytes for f in removal.replacements),
        )
    raise CommitConflictError(
        f"could not commit to {plan.identifier}: other writers won the commit race {max_attempts} times"
    )


def _creates_apart(catalog: Catalog) -> bool:
    """Must a new table be created in a commit of its own, before the rows are added?

    A REST catalog: SeaweedFS's accepts two creations of one table racing (both answer success, the
    later replaces the earlier, and the rows the earlier added with it vanish). Created empty, the
    table can be replaced only before anyone adds rows; the add commits then assert the table's uuid
    and the loser of a replacement retries on the table that stayed.
    """
    return type(catalog).__name__ == "RestCatalog"


def _create_empty(catalog: Catalog, plan: CommitPlan) -> None:
    """Commit the staged creation alone (or find the table another run created); the files follow."""
    from dativo_provider.iceberg.tables import commit_creation

    assert plan.creation is not None
    staged = plan.creation.table_metadata
    table, created = commit_creation(catalog, plan.identifier, plan.creation)
    if not created:
        _check_same_layout(table, staged, plan.identifier)
    plan.creation = None


def _add_files_to_creation(plan: CommitPlan) -> None:
    assert plan.creation is not None
    update = plan.creation.update_snapshot(snapshot_properties=plan.properties, branch=plan.branch)
    with update.fast_append() as append:
        for data_file in plan.new_files:
            append.append_data_file(data_file)


def _create_with_files(catalog: Catalog, plan: CommitPlan, attempt: int, max_attempts: int) -> Table | None:
    """Create the staged table with the new files in one commit.

    :returns: the created table; None when the attempt lost a race. If another run created the table,
        ``plan.creation`` is cleared and the next attempt commits to that table like to any other.
    :raises CommitConflictError: the other run's table has another schema or partitioning than the
        one these files were written for (a rerun writes into that table).
    """
    assert plan.creation is not None
    try:
        return plan.creation.commit_transaction()
    except Exception as exc:
        if not creation_raced(exc):
            raise
        log.warning("creating %s lost a race with another writer (attempt %d/%d): %s", plan.identifier,
                    attempt, max_attempts, exc)
    if catalog.table_exists(plan.identifier):
        _check_same_layout(catalog.load_table(plan.identifier), plan.creation.table_metadata, plan.identifier)
        plan.creation = None
    else:
        backoff(attempt)
    return None


def _check_same_layout(winner: Table, staged: TableMetadata, identifier: str) -> None:
    """The files written for our staged table fit the winner's only with the same field ids and spec."""
    same_schema = winner.schema().as_struct() == staged.schema().as_struct()
    if same_schema and winner.spec().fields == staged.spec().fields:
        return
    raise CommitConflictError(
        f"another run created {identifier} at the same time with another schema or partitioning than this "
        "run's files were written for; rerun to write into that table"
    )


def _check_no_concurrent_run(table: Table, plan: CommitPlan) -> None:
    if not plan.track_state:
        return
    current = read_state(table, plan.source_identity, plan.branch)
    current_id = current.snapshot_id if current else None
    if current_id != plan.expected_state_snapshot and not _carried(table, current_id, plan.expected_state_snapshot):
        raise ConcurrentRunError(
            f"another run of {plan.source_identity} committed snapshot {current_id} to {plan.identifier} "
            "while this run was writing; this run's rows would repeat. Rerun to continue from its watermark."
        )


def _carried(table: Table, current_id: int | None, expected_id: int | None) -> bool:
    """An erasure purge re-committed the state this run started from (same state, new snapshot id)."""
    if current_id is None or expected_id is None:
        return False
    snapshot = table.metadata.snapshot_by_id(current_id)
    summary = snapshot.summary if snapshot is not None else None
    return summary is not None and summary.get(CARRIED_FROM_KEY) == str(expected_id)


def _head_id(table: Table, branch: str) -> int | None:
    snapshot = table.metadata.snapshot_by_name(branch)
    return snapshot.snapshot_id if snapshot else None


def _commit_once(table: Table, plan: CommitPlan, removal: _Removal) -> Table:
    disable_builtin_retries(table)
    transaction = table.transaction()
    update = transaction.update_snapshot(snapshot_properties=plan.properties, branch=plan.branch)
    if removal.files:
        with update.overwrite() as overwrite:
            for data_file in removal.files:
                overwrite.delete_data_file(data_file)
            for data_file in [*removal.replacements, *plan.new_files]:
                overwrite.append_data_file(data_file)
    else:
        with update.fast_append() as append:
            for data_file in plan.new_files:
                append.append_data_file(data_file)
    return transaction.commit_transaction()


def _plan_removal(table: Table, plan: CommitPlan) -> _Removal:
    if plan.mode == "append" or _head_id(table, plan.branch) is None:
        return _Removal()
    if plan.mode == "replace":
        return _removal_of(list(_live_files(table, plan.branch)))
    if plan.mode == "overwrite":
        return _removal_of(_files_in_partitions_of(table, plan))
    return _rewrite_without_keys(table, plan)


def _removal_of(files: list[DataFile]) -> _Removal:
    return _Removal(files=files, rows_deleted=sum(f.record_count for f in files))


def _live_files(table: Table, branch: str, row_filter: Any = None) -> Iterator[DataFile]:
    for task in _scan_tasks(table, branch, row_filter):
        yield task.file


def _scan_tasks(table: Table, branch: str, row_filter: Any = None) -> list[FileScanTask]:
    from pyiceberg.expressions import AlwaysTrue

    scan = table.scan(row_filter=row_filter or AlwaysTrue(), snapshot_id=_head_id(table, branch))
    return list(scan.plan_files())


def _files_in_partitions_of(table: Table, plan: CommitPlan) -> list[DataFile]:
    """Files whose partition equals one of the new files' partitions (all files if unpartitioned)."""
    written = {(f.spec_id, _partition_tuple(f)) for f in plan.new_files}
    return [f for f in _live_files(table, plan.branch) if (f.spec_id, _partition_tuple(f)) in written]


def _partition_tuple(data_file: DataFile) -> tuple[Any, ...]:
    partition = data_file.partition
    return tuple(partition[i] for i in range(len(partition)))


def _rewrite_without_keys(table: Table, plan: CommitPlan) -> _Removal:
    """Copy-on-write delete of every row whose merge key is among the new rows' keys.

    Candidate files are first probed on the key columns alone; only files that hold a key are
    rewritten, streamed batch by batch.
    """
    assert plan.keys is not None
    removal = _Removal()
    candidates = _scan_tasks(table, plan.branch, _key_filter(plan.keys, plan.merge_keys))
    key_schema = table.schema().select(*plan.merge_keys)
    try:
        for task in candidates:
            hits = sum(
                batch.num_rows - _without_keys(batch, plan.keys, plan.merge_keys).num_rows
                for batch in stream_file(table, task, key_schema)
            )
            if not hits:
                continue
            removal.writer = removal.writer or DataFileWriter(table, plan.sort_by, plan.target_file_bytes)
            removal.files.append(task.file)
            removal.rows_deleted += hits
            for batch in stream_file(table, task, table.schema()):
                remaining = _without_keys(batch, plan.keys, plan.merge_keys)
                if remaining.num_rows:
                    removal.writer.write(remaining)
        if removal.writer is not None:
            removal.replacements = removal.writer.close()
    except BaseException:
        removal.discard()
        raise
    return removal


def _without_keys(batch: pa.RecordBatch, keys: pa.Table, key_columns: tuple[str, ...]) -> pa.Table:
    """The rows of ``batch`` whose key is not in ``keys``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = pa.Table.from_batches([batch])
    if len(key_columns) == 1:
        column = key_columns[0]
        hit = pc.is_in(rows.column(column), value_set=keys.column(column).combine_chunks())
        return rows.filter(pc.invert(hit))
    return rows.join(keys, keys=list(key_columns), join_type="left anti").select(rows.column_names)


def _key_filter(keys: pa.Table, key_columns: tuple[str, ...]) -> Any:
    """A pruning filter on the first key column: ``IN`` for few keys, else its min..max range."""
    import pyarrow.compute as pc
    import pyarrow.types as t
    from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, In, LessThanOrEqual

    column = key_columns[0]
    values = keys.column(column)
    if not (t.is_integer(values.type) or t.is_string(values.type)) or len(values) == 0:
        return AlwaysTrue()
    if len(key_columns) == 1 and len(values) <= _IN_PUSHDOWN_LIMIT:
        return In(column, set(values.to_pylist()))
    bounds = pc.min_max(values)
    return And(GreaterThanOrEqual(column, bounds["min"].as_py()), LessThanOrEqual(column, bounds["max"].as_py()))


def commit_with_retries(
    catalog: Catalog, identifier: str, build: Callable[[Table], Transaction | None], *, attempts: int = 10
) -> Table:
    """Build a transaction on freshly loaded metadata and commit it; rebuild and retry a lost race.

    :param build: makes the transaction from the loaded table (pyiceberg's own retries are off); it
        returns None when there is nothing to commit, and the loaded table is returned.
    :returns: the table as committed.
    :raises CommitConflictError: other writers won the race ``attempts`` times; rerunning is safe.
    """
    for attempt in range(1, attempts + 1):
        table = disable_builtin_retries(catalog.load_table(identifier))
        transaction = build(table)
        if transaction is None:
            return table
        try:
            return transaction.commit_transaction()
        except Exception as exc:
            if not is_lost_race(exc):
                raise
            log.warning("commit to %s lost a race (attempt %d/%d): %s", identifier, attempt, attempts, exc)
            backoff(attempt)
    raise CommitConflictError(f"{identifier}: other writers won the commit race {attempts} times; rerun")


def retry_lost_races(identifier: str, attempt_once: Callable[[], _T], *, attempts: int = 10) -> _T:
    """Call ``attempt_once`` (it loads the table afresh and commits) again each time it loses a race.

    For commits with nothing to rebuild, such as creating, moving or removing a branch: on a SQL catalog
    any concurrent commit to the table makes them lose, even one on another branch.

    :raises CommitConflictError: other writers won the race ``attempts`` times; rerunning is safe.
    """
    for attempt in range(1, attempts + 1):
        try:
            return attempt_once()
        except Exception as exc:
            if not is_lost_race(exc):
                raise
            log.warning("commit to %s lost a race (attempt %d/%d): %s", identifier, attempt, attempts, exc)
            backoff(attempt)
    raise CommitConflictError(f"{identifier}: other writers won the commit race {attempts} times; rerun")
