"""Erasure, step one: delete a data subject's rows from one table in one transaction.

The delete is pyiceberg's copy-on-write ``delete``: files whose metadata proves every row matches are
dropped, files that may hold a matching row are read and rewritten without it, all other files are
left alone. The rows are still in older snapshots and in files no snapshot of main references any
more; :func:`dativo_provider.privacy.purge.purge_table` makes the erasure physical.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
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
    """What one delete transaction did to one table.

    :param rows_deleted: rows the commit removed (from the snapshot summaries of the commit).
    :param files_rewritten: new data files written to hold the surviving rows of affected files.
    :param files_removed: data files the commit took out of the table (dropped whole or rewritten).
    :param snapshot_id: main's head after the delete; None when nothing matched (no commit).
    :param previous_snapshot_id: main's head before the delete.
    """

    table: str
    rows_deleted: int
    files_rewritten: int
    files_removed: int
    snapshot_id: int | None
    previous_snapshot_id: int | None


def delete_rows(catalog: CatalogConfig, table: str, row_filter: BooleanExpression, *,
                request_id: str) -> TableDeletion:
    """Delete every row of ``table`` (on main) that matches ``row_filter``, as one commit.

    ``IN`` predicates with more than 200 values are split into an ``OR`` of ``IN`` s of at most 200, so
    pyiceberg keeps skipping files whose min/max bounds exclude every value.

    :param row_filter: a pyiceberg expression, e.g. ``In("customer_id", [42, 43])``.
    :param request_id: recorded as ``dativo.dsr-request`` in the summary of every snapshot the delete
        commits; :func:`~dativo_provider.privacy.purge.purge_table` finds the erasure by it.
    :raises ConfigError: ``request_id`` is empty or the table has no snapshot on main.
    :raises pyiceberg.exceptions.CommitFailedException: other writers kept winning the race after
        pyiceberg's own retries; nothing was deleted, calling again is safe.
    """
    if not request_id:
        raise ConfigError("delete_rows needs a request_id: it marks the erasure commit")
    iceberg_table = catalog.load().load_table(table)
    before = _head(iceberg_table)
    if before is None:
        return TableDeletion(table, 0, 0, 0, None, None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        transaction = iceberg_table.transaction()
        for part in per_column(row_filter):
            transaction.delete(chunk_in_predicates(part), snapshot_properties={REQUEST_KEY: request_id})
        transaction.commit_transaction()
        iceberg_table = catalog.load().load_table(table)
    after = _head(iceberg_table)
    if after == before:
        return TableDeletion(table, 0, 0, 0, None, before)
    deletion = _summarise(iceberg_table, table, before, after)
    log.info("%s: request %s deleted %d rows (%d files out, %d written) in snapshot %s", table, request_id,
             deletion.rows_deleted, deletion.files_removed, deletion.files_rewritten, after)
    return deletion


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


def _head(table: Table) -> int | None:
    snapshot = table.metadata.snapshot_by_name("main")
    return snapshot.snapshot_id if snapshot else None


def _summarise(table: Table, name: str, before: int | None, after: int) -> TableDeletion:
    """Totals over the snapshots the delete transaction committed (a DELETE and/or an OVERWRITE)."""
    from pyiceberg.table.snapshots import ancestors_between_ids

    rows = removed = written = 0
    for snapshot in ancestors_between_ids(before, after, table.metadata):
        summary = snapshot.summary
        rows += _count(summary, "deleted-records") - _count(summary, "added-records")
        removed += _count(summary, "deleted-data-files")
        written += _count(summary, "added-data-files")
    return TableDeletion(name, rows, written, removed, after, before)


def _count(summary: Any, key: str) -> int:
    value = summary.get(key) if summary is not None else None
    return int(value) if value else 0
