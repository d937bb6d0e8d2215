"""Erasure, step one: delete a data subject's rows from one table, on every branch head, one
transaction per branch, retried when a concurrent writer wins the commit race.

The delete is pyiceberg's copy-on-write ``delete``: files whose metadata proves every row matches are
dropped, files that may hold a matching row are read and rewritten without it, all other files are
left alone. The rows are still in older snapshots, tags, and files no branch head references any
more; :func:`dativo_provider.privacy.purge.purge_table` makes the erasure physical.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import CommitConflictError, ConfigError
from dativo_provider.iceberg.barrier import Contention

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: The snapshot-summary property naming the request a delete was made for.
REQUEST_KEY = "dativo.dsr-request"
#: pyiceberg stops using file min/max bounds for an ``IN`` with more values than this
#: (``pyiceberg.expressions.visitors.IN_PREDICATE_LIMIT``): every file would then be read.
IN_CHUNK = 200


@dataclass
class TableDeletion:
    """What the delete transactions did to one table, summed over its branches.

    :param rows_deleted: rows the commits removed (from the snapshot summaries of the commits).
    :param files_rewritten: new data files written to hold the surviving rows of affected files.
    :param files_removed: data files the commits took out of the table (dropped whole or rewritten).
    :param snapshot_id: main's head after the delete; None when nothing matched on main (no commit).
    :param previous_snapshot_id: main's head before the delete.
    :param branches: branch → its head after the delete, for every branch where rows were deleted.
    :param attempts: commits tried; more than one branch, or above it, means lost races were retried.
    """

    table: str
    rows_deleted: int
    files_rewritten: int
    files_removed: int
    snapshot_id: int | None
    previous_snapshot_id: int | None
    branches: dict[str, int] = field(default_factory=dict)
    attempts: int = 0


#: Commit attempts per branch before an erasure gives up on a table that other writers keep changing
#: (after the first, each only re-applies the staged files to the new head: cheap).
ATTEMPTS = 40


def delete_rows(catalog: CatalogConfig, table: str, row_filter: BooleanExpression, *,
                request_id: str, attempts: int = ATTEMPTS) -> TableDeletion:
    """Delete every row of ``table`` that matches ``row_filter`` on every branch head (main first), one
    commit per branch.

    ``IN`` predicates with more than 200 values are split into an ``OR`` of ``IN`` s of at most 200, so
    pyiceberg keeps skipping files whose min/max bounds exclude every value. A commit that loses a race
    to another writer (or finds files a concurrent append added that the filter matches) is rebuilt on
    the new head and tried again, with bounded, jittered backoff.

    :param row_filter: a pyiceberg expression, e.g. ``In("customer_id", [42, 43])``.
    :param request_id: recorded as ``dativo.dsr-request`` in the summary of every snapshot the delete
        commits; :func:`~dativo_provider.privacy.purge.purge_table` finds the erasure by it.
    :raises ConfigError: ``request_id`` is empty.
    :raises CommitConflictError: other writers won the race ``attempts`` times on one branch; what was
        committed on other branches stays, and calling again finishes the rest.
    """
    if not request_id:
        raise ConfigError("delete_rows needs a request_id: it marks the erasure commit")
    pyiceberg_catalog = catalog.load()
    loaded = pyiceberg_catalog.load_table(table)
    deletion = TableDeletion(table, 0, 0, 0, None, _head(loaded, "main"))
    branches = sorted((name for name, ref in loaded.metadata.refs.items()
                       if ref.snapshot_ref_type.value == "branch"), key=lambda name: name != "main")
    with Contention(pyiceberg_catalog, table, request_id) as contention:
        for branch in branches:
            _delete_on_branch(pyiceberg_catalog, table, branch, row_filter, request_id, attempts, deletion,
                              contention)
    deletion.snapshot_id = deletion.branches.get("main")
    if deletion.branches:
        log.info("%s: request %s deleted %d rows (%d files out, %d written) on %s", table, request_id,
                 deletion.rows_deleted, deletion.files_removed, deletion.files_rewritten, sorted(deletion.branches))
    return deletion


def _delete_on_branch(catalog: Catalog, table: str, branch: str, row_filter: BooleanExpression,
                      request_id: str, attempts: int, deletion: TableDeletion, contention: Contention) -> None:
    """One branch: stage the delete on a fresh head and commit; on a lost race, rebase it.

    Staging decodes and rewrites files, which takes longer than a busy writer takes to commit again:
    restaging after every lost race would lose forever. So the files the staged delete removes and
    writes are kept, and the next attempt re-applies them to the new head as one overwrite (manifests
    only) unless another writer removed one of the files it removes (then it is staged anew). Files the
    other writers added meanwhile are decoded after the commit, outside the race: if one holds a row the
    filter matches, the branch gets another round. After a few lost races the provider's own writers are
    asked to wait (:mod:`dativo_provider.iceberg.barrier`).
    """
    from dativo_provider.iceberg.commit import disable_builtin_retries

    staged: _Staged | None = None
    for attempt in range(1, attempts + 1):
        deletion.attempts += 1
        iceberg_table = disable_builtin_retries(catalog.load_table(table))
        before = _head(iceberg_table, branch)
        if before is None:
            return
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                transaction = staged.rebase(iceberg_table, branch) if staged is not None else None
                if transaction is None:
                    transaction, staged = _stage(iceberg_table, branch, row_filter, request_id)
                    if not staged.removed and not staged.added:
                        # Nothing matched. pyiceberg would still validate the empty transaction against
                        # every file appended meanwhile, and call it a conflict whenever their bounds
                        # cannot rule the filter out: there is nothing to commit.
                        return
                committed = transaction.commit_transaction()
        except Exception as exc:
            if not _lost_race(exc):
                raise
            log.warning("%s: erasure delete on branch %s lost a race (attempt %d/%d): %s", table, branch,
                        attempt, attempts, exc)
            contention.lost()
            # Right after losing is the best time to rebase: the winner has just committed.
            time.sleep(random.uniform(0, min(0.01 * attempt, 0.2)))
            continue
        # The metadata as this commit left it: a writer committing right after must not count here.
        after = _head(committed, branch)
        if after is not None and after != before:
            _add_summary(committed, deletion, branch, before, after)
        if not _holds_match(committed, staged.others_added, row_filter):
            return
        log.info("%s: rows matching the erasure arrived on %s during the delete; deleting again", table, branch)
        staged = None
    raise CommitConflictError(f"{table}: the erasure delete on branch {branch!r} lost the commit race to other "
                              f"writers {attempts} times; nothing more was deleted there. Run the request again "
                              "(it resumes), or pause the writers of this table")


def _stage(table: Table, branch: str, row_filter: BooleanExpression, request_id: str) -> tuple[Any, _Staged]:
    """The delete staged column by column on ``branch``'s head, and the files it removes and writes."""
    from dativo_provider.privacy.rewrite import stage_delete

    transaction = table.transaction()
    for part in per_column(row_filter):
        stage_delete(transaction, chunk_in_predicates(part), branch=branch,
                     snapshot_properties={REQUEST_KEY: request_id})
    known = {s.snapshot_id for s in table.metadata.snapshots}
    removed: dict[str, DataFile] = {}
    added: dict[str, DataFile] = {}
    metadata = transaction.table_metadata
    for snapshot in metadata.snapshots:
        if snapshot.snapshot_id in known:
            continue
        for status, data_file in _own_entries(snapshot, table):
            if status == _DELETED:
                if data_file.file_path in added:  # written and dropped within the staged snapshots
                    del added[data_file.file_path]
                else:
                    removed[data_file.file_path] = data_file
            elif status == _ADDED:
                added[data_file.file_path] = data_file
    head = table.metadata.snapshot_by_name(branch)
    holding = _manifests_holding(head.manifests(table.io) if head else [], set(removed), table)
    return transaction, _Staged(_head(table, branch), request_id, list(removed.values()), list(added.values()),
                                holding)


@dataclass
class _Staged:
    """A staged delete as files: on ``base``, remove these, add those; and what others added since."""

    base: int | None
    request_id: str
    removed: list[DataFile]
    added: list[DataFile]
    holding: set[str] = field(default_factory=set)
    others_added: list[DataFile] = field(default_factory=list)

    def rebase(self, table: Table, branch: str) -> Any:
        """The same change as one overwrite on ``branch``'s new head, or None when it must be staged anew."""
        from pyiceberg.table.snapshots import ancestors_between_ids

        head = _head(table, branch)
        if self.base is None or head is None or not _is_ancestor(table, self.base, head):
            return None
        gone: set[str] = set()
        removed = {f.file_path for f in self.removed}
        for snapshot in ancestors_between_ids(self.base, head, table.metadata):
            for status, data_file in _own_entries(snapshot, table):
                if status == _DELETED:
                    gone.add(data_file.file_path)
                elif status == _ADDED:
                    self.others_added.append(data_file)
            own = [m for m in snapshot.manifests(table.io) if m.added_snapshot_id == snapshot.snapshot_id]
            self.holding |= _manifests_holding(own, removed, table)  # a rewritten manifest may list them
        if gone & removed:
            return None
        transaction = table.transaction()
        overwrite = _overwrite_known_manifests(self.holding, transaction, branch, {REQUEST_KEY: self.request_id})
        with overwrite:
            for data_file in self.removed:
                overwrite.delete_data_file(data_file)
            for data_file in self.added:
                overwrite.append_data_file(data_file)
        self.base = head
        return transaction


def _manifests_holding(manifests: Any, paths: set[str], table: Table) -> set[str]:
    """The manifests among ``manifests`` that list one of ``paths`` as live."""
    return {m.manifest_path for m in manifests
            if any(e.data_file.file_path in paths for e in m.fetch_manifest_entry(table.io, discard_deleted=True))}


@functools.cache
def _known_manifests_overwrite() -> type:
    """pyiceberg's OVERWRITE producer, told which manifests list the files it removes.

    pyiceberg decodes every manifest of the head to find them, which on a table that receives a commit
    every few hundred milliseconds (one manifest each) takes longer than the next commit takes to
    arrive; a rebase then never wins. Here only the manifests known to hold them are decoded and
    rewritten; every other manifest is carried over as it is.
    """
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    class KnownManifestsOverwrite(_OverwriteFiles):
        def __init__(self, holding: set[str], transaction: Any, branch: str, properties: dict[str, str]) -> None:
            super().__init__(operation=Operation.OVERWRITE, transaction=transaction, io=transaction._table.io,
                             branch=branch, snapshot_properties=properties)
            self._holding = holding

        def _head_manifests(self) -> list[Any]:
            head = self._transaction.table_metadata.snapshot_by_name(self._target_branch)
            return head.manifests(self._io) if head else []

        def _existing_manifests(self) -> list[Any]:
            kept = []
            for manifest in self._head_manifests():
                if manifest.manifest_path not in self._holding:
                    kept.append(manifest)
                    continue
                survivors = [e for e in manifest.fetch_manifest_entry(self._io, discard_deleted=True)
                             if e.data_file not in self._deleted_data_files]
                if not survivors:
                    continue
                with self.new_manifest_writer(self.spec(manifest.partition_spec_id)) as writer:
                    for entry in survivors:
                        writer.add_entry(ManifestEntry.from_args(
                            status=ManifestEntryStatus.EXISTING, snapshot_id=entry.snapshot_id,
                            sequence_number=entry.sequence_number, file_sequence_number=entry.file_sequence_number,
                            data_file=entry.data_file))
                kept.append(writer.to_manifest_file())
            return kept

        def _deleted_entries(self) -> list[Any]:
            return [ManifestEntry.from_args(
                        status=ManifestEntryStatus.DELETED, snapshot_id=self._snapshot_id,
                        sequence_number=entry.sequence_number, file_sequence_number=entry.file_sequence_number,
                        data_file=entry.data_file)
                    for manifest in self._head_manifests() if manifest.manifest_path in self._holding
                    for entry in manifest.fetch_manifest_entry(self._io, discard_deleted=True)
                    if entry.data_file in self._deleted_data_files]

    return KnownManifestsOverwrite


def _overwrite_known_manifests(holding: set[str], transaction: Any, branch: str, properties: dict[str, str]) -> Any:
    """A :func:`_known_manifests_overwrite` producer (the class is built on first use: pyiceberg is heavy)."""
    return _known_manifests_overwrite()(holding, transaction, branch, properties)


_ADDED, _DELETED = 1, 2


def _own_entries(snapshot: Any, table: Table) -> list[tuple[int, DataFile]]:
    """(status, data file) of the entries ``snapshot`` itself added or deleted."""
    entries = []
    for manifest in snapshot.manifests(table.io):
        if manifest.added_snapshot_id != snapshot.snapshot_id:  # entries of a snapshot are in its own manifests
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
            if entry.snapshot_id == snapshot.snapshot_id and int(entry.status) in (_ADDED, _DELETED):
                entries.append((int(entry.status), entry.data_file))
    return entries


def _is_ancestor(table: Table, ancestor: int, snapshot_id: int) -> bool:
    from pyiceberg.table.snapshots import ancestors_of

    start = table.metadata.snapshot_by_id(snapshot_id)
    return any(s.snapshot_id == ancestor for s in ancestors_of(start, table.metadata)) if start else False


def _holds_match(table: Table, files: list[DataFile], row_filter: BooleanExpression) -> bool:
    """Whether any of ``files`` holds a row ``row_filter`` matches (decoded)."""
    from dativo_provider.privacy.history import history_batches

    if not files:
        return False
    columns = sorted({t.term.name for part in per_column(row_filter) for t in _terms(part)})
    return any(batch.num_rows for _, batch in history_batches(table, columns, row_filter, files=files))


def _terms(expression: Any) -> list[Any]:
    from pyiceberg.expressions import Or

    if isinstance(expression, Or):
        return _terms(expression.left) + _terms(expression.right)
    return [expression]


def request_totals(catalog: CatalogConfig, table: str, request_id: str) -> TableDeletion:
    """What every delete of ``request_id`` did to ``table`` so far, on any branch, read from the
    snapshots it marked: right after a crash between a commit and its record, and across reruns.

    Before a purge expires them; once the purge ran, its caller's record is the account.
    """
    loaded = catalog.load().load_table(table)
    totals = TableDeletion(table, 0, 0, 0, None, None)
    for snapshot in loaded.metadata.snapshots:
        summary = snapshot.summary
        if summary is None or summary.get(REQUEST_KEY) != request_id:
            continue
        totals.rows_deleted += _count(summary, "deleted-records") - _count(summary, "added-records")
        totals.files_removed += _count(summary, "deleted-data-files")
        totals.files_rewritten += _count(summary, "added-data-files")
    for name, ref in loaded.metadata.refs.items():
        if ref.snapshot_ref_type.value != "branch":
            continue
        marked = _newest_marked(loaded, name, request_id)
        if marked is not None:
            totals.branches[name] = marked
    totals.snapshot_id = totals.branches.get("main")
    return totals


def _newest_marked(table: Table, branch: str, request_id: str) -> int | None:
    from pyiceberg.table.snapshots import ancestors_of

    head = table.metadata.snapshot_by_name(branch)
    for snapshot in ancestors_of(head, table.metadata) if head else ():
        if (snapshot.summary or {}).get(REQUEST_KEY) == request_id:
            return snapshot.snapshot_id
    return None


def _lost_race(exc: Exception) -> bool:
    """Another writer moved the branch between staging and commit: rebuilding on the new head is right.

    Besides a lost commit race, pyiceberg reports this as a conflict validation: files a concurrent
    append added match the filter.
    """
    from pyiceberg.exceptions import ValidationException

    from dativo_provider.iceberg.commit import is_lost_race

    return is_lost_race(exc) or isinstance(exc, ValidationException)


def per_column(expression: BooleanExpression) -> list[BooleanExpression]:
    """A top-level ``OR`` split into one expression per column it tests.

    pyiceberg's copy-on-write delete keeps every row where a column the filter references is null
    (so that ``NOT (a = 1)`` never drops rows with a null ``a``). For ``customer_id IN (…) OR email IN
    (…)`` that would keep a ticket sent from the subject's address without a customer id. Deleting
    column by column, in one transaction, removes every row any term matches.
    """
    from pyiceberg.expressions import Or

    terms: list[BooleanExpression] = []

    def flatten(node: BooleanExpression) -> None:
        if isinstance(node, Or):
            flatten(node.left)
            flatten(node.right)
        else:
            terms.append(node)

    flatten(expression)
    by_column: dict[str, list[BooleanExpression]] = {}
    for term in terms:
        column = getattr(getattr(term, "term", None), "name", None) or repr(term)
        by_column.setdefault(column, []).append(term)
    return [group[0] if len(group) == 1 else Or(*group) for group in by_column.values()]


def chunk_in_predicates(expression: BooleanExpression) -> BooleanExpression:
    """``expression`` with each ``IN`` of over :data:`IN_CHUNK` values split into an ``OR`` of ``IN`` s."""
    from pyiceberg.expressions import And, In, Not, Or

    if isinstance(expression, In) and len(expression.literals) > IN_CHUNK:
        values = sorted(expression.literals, key=lambda literal: literal.value)
        chunks = [In(expression.term, values[i:i + IN_CHUNK]) for i in range(0, len(values), IN_CHUNK)]
        return chunks[0] if len(chunks) == 1 else Or(*chunks)
    if isinstance(expression, (And, Or)):
        return type(expression)(chunk_in_predicates(expression.left), chunk_in_predicates(expression.right))
    if isinstance(expression, Not):
        return Not(chunk_in_predicates(expression.child))
    return expression


def _head(table: Table, branch: str) -> int | None:
    snapshot = table.metadata.snapshot_by_name(branch)
    return snapshot.snapshot_id if snapshot else None


def _add_summary(table: Table, deletion: TableDeletion, branch: str, before: int, after: int) -> None:
    """Add the totals of the snapshots one branch's delete committed (a DELETE and/or an OVERWRITE)."""
    from pyiceberg.table.snapshots import ancestors_between_ids

    for snapshot in ancestors_between_ids(before, after, table.metadata):
        summary = snapshot.summary
        deletion.rows_deleted += _count(summary, "deleted-records") - _count(summary, "added-records")
        deletion.files_removed += _count(summary, "deleted-data-files")
        deletion.files_rewritten += _count(summary, "added-data-files")
    deletion.branches[branch] = after


def _count(summary: Any, key: str) -> int:
    value = summary.get(key) if summary is not None else None
    return int(value) if value else 0
