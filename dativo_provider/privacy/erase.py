"""Erasure, step one: delete a data subject's rows from one table, on every branch head, one
transaction per branch, retried when a concurrent writer wins the commit race.

The delete is copy-on-write (:func:`dativo_provider.privacy.rewrite.stage_delete`, pyiceberg's
semantics with the affected files rewritten in parallel): files whose metadata proves every row matches
are dropped, files that hold a matching row are rewritten without it, all other files are left alone.
A lost race rebases the staged files onto the new head (:mod:`dativo_provider.privacy.staged_delete`).
The rows are still in older snapshots, tags, and files no branch head references any more;
:func:`dativo_provider.privacy.purge.purge_table` makes the erasure physical.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import CommitConflictError, ConfigError
from dativo_provider.iceberg.barrier import Contention
from dativo_provider.privacy.rewrite import or_terms

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

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
    from dativo_provider.privacy.staged_delete import StagedDelete, holds_match, stage

    parts = [chunk_in_predicates(part) for part in per_column(row_filter)]
    columns = sorted({term.term.name for term in or_terms(row_filter)})
    staged: StagedDelete | None = None
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
                    transaction, staged = stage(iceberg_table, branch, parts, {REQUEST_KEY: request_id})
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
        assert staged is not None  # staged above, or rebased from the attempt before
        if not holds_match(committed, staged.others_added, row_filter, columns):
            return
        log.info("%s: rows matching the erasure arrived on %s during the delete; deleting again", table, branch)
        staged = None
    raise CommitConflictError(f"{table}: the erasure delete on branch {branch!r} lost the commit race to other "
                              f"writers {attempts} times; nothing more was deleted there. Run the request again "
                              "(it resumes), or pause the writers of this table")


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
        if snapshot_property(snapshot, REQUEST_KEY) == request_id:
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

    by_column: dict[str, list[BooleanExpression]] = {}
    for term in or_terms(expression):
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


def snapshot_property(snapshot: Snapshot, key: str) -> str | None:
    """``key`` of the snapshot's summary, None when it has no summary or no such key."""
    return snapshot.summary.get(key) if snapshot.summary is not None else None


def _count(summary: Any, key: str) -> int:
    value = summary.get(key) if summary is not None else None
    return int(value) if value else 0
