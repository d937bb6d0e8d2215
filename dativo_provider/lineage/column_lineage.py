"""Column lineage: which input columns each output column comes from, and how.

Two sources of it:

* :func:`identity_lineage` -- an ingest copies each source column into the column of the same name;
* :func:`sql_column_lineage` -- a transform's DuckDB SQL, parsed with sqlglot (the ``duckdb`` dialect).
  sqlglot, not the OpenLineage SQL parser shipped with the provider: that parser names the input
  columns but not how they are used, and cannot expand ``SELECT *``; sqlglot qualifies every column
  against the inputs' schemas, so each link gets OpenLineage's transformation type (1-2-0 facet):

  ==========  ================  ======================================================
  type        subtype           when the input column ...
  ==========  ================  ======================================================
  DIRECT      IDENTITY          is the output value as is (``SELECT id``, through CTEs)
  DIRECT      TRANSFORMATION    feeds an expression (``amount * 2``, a CASE branch)
  DIRECT      AGGREGATION       is aggregated (``SUM(amount)``, also over a window)
  INDIRECT    WINDOW            partitions or orders a window
  INDIRECT    CONDITIONAL       is tested by a CASE/IF condition
  INDIRECT    FILTER            is in WHERE / HAVING (whole dataset)
  INDIRECT    JOIN              is in a join condition (whole dataset)
  INDIRECT    GROUP_BY, SORT    groups or orders the rows (whole dataset)
  ==========  ================  ======================================================

  Links through CTEs and subqueries are followed to the base relations; a composed link keeps the
  first INDIRECT role met, else the strongest DIRECT one. The whole-dataset links (FILTER, JOIN,
  GROUP_BY, SORT) go in the facet's ``dataset`` list, as the spec asks.

Nothing here raises on SQL it cannot read: it returns what it could find (possibly nothing); lineage
never fails a task. sqlglot is imported inside the function (it comes with the ``ml`` extra's feast
and with soda); without it the SQL lineage is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DIRECT, INDIRECT = "DIRECT", "INDIRECT"
_DIRECT_STRENGTH = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}


@dataclass(frozen=True, order=True)
class SourceColumn:
    """One input column feeding an output column (or the whole output, in ``dataset``).

    :param relation: the input as the SQL names it (the transform's input key; ``batch`` on ingest).
    """

    relation: str
    column: str
    type: str = DIRECT
    subtype: str = "IDENTITY"


@dataclass(frozen=True)
class ColumnLineage:
    """Output column → its source columns; ``dataset``: links that apply to every output column."""

    fields: Mapping[str, tuple[SourceColumn, ...]] = field(default_factory=dict)
    dataset: tuple[SourceColumn, ...] = ()

    def relations(self) -> set[str]:
        """Every input relation named."""
        links = [*self.dataset, *(link for links in self.fields.values() for link in links)]
        return {link.relation for link in links}


def identity_lineage(
    columns: Iterable[str], relation: str, source_columns: Iterable[str] | None = None
) -> ColumnLineage:
    """Each output column from the input column of the same name (an ingest without a transform).

    :param source_columns: the input's columns when known: output columns not among them get no link.
    """
    known = None if source_columns is None else set(source_columns)
    return ColumnLineage(
        fields={name: (SourceColumn(relation, name),) for name in columns if known is None or name in known}
    )


def sql_column_lineage(
    sql: str, relations: Mapping[str, Sequence[str]], dialect: str = "duckdb"
) -> ColumnLineage:
    """The column lineage of one SELECT (module doc); empty if the SQL cannot be read.

    :param relations: the relations the SQL reads and their columns, ``{"orders": ["id", ...]}``; a
        relation with no columns listed is still qualified when the SQL names its columns.
    """
    try:
        return _Resolver(sql, relations, dialect).lineage()
    except Exception as exc:  # noqa: BLE001 - lineage never fails the caller
        # Report nothing rather than a guess.
        log.warning("column lineage: could not read the SQL (%s: %s)", type(exc).__name__, exc)
        return ColumnLineage()


class _Resolver:
    """Walks the qualified SQL's scopes from each output column down to the base relations."""

    def __init__(self, sql: str, relations: Mapping[str, Sequence[str]], dialect: str) -> None:
        from sqlglot import parse_one
        from sqlglot.optimizer.qualify import qualify
        from sqlglot.optimizer.scope import build_scope

        schema: dict[str, object] = {
            name: dict.fromkeys(columns, "VARCHAR") for name, columns in relations.items()
        }
        tree = qualify(
            parse_one(sql, dialect=dialect),
            schema=schema,
            dialect=dialect,
            validate_qualify_columns=False,
            identify=False,
        )
        root = build_scope(tree)
        if root is None:
            raise ValueError("not a query")
        self.root = root

    def lineage(self) -> ColumnLineage:
        fields: dict[str, set[SourceColumn]] = {}
        for position, name in enumerate(self._output_names(self.root)):
            found: set[SourceColumn] = set()
            for branch in self._branches(self.root):
                found |= self._projection(branch, position, ("DIRECT", "IDENTITY"))
            fields[name] = found
        return ColumnLineage(
            fields={name: tuple(sorted(links)) for name, links in fields.items()},
            dataset=tuple(sorted(self._dataset_links())),
        )

    # -- the projections --------------------------------------------------------------------------

    @staticmethod
    def _branches(scope: Any) -> list[Any]:
        """The SELECT scopes of a query: itself, or each branch of a UNION."""
        # sqlglot 26+ calls them set_operation_scopes, earlier releases union_scopes.
        branches = getattr(scope, "set_operation_scopes", None) or getattr(scope, "union_scopes", None)
        if branches:
            return [branch for union in branches for branch in _Resolver._branches(union)]
        return [scope]

    def _output_names(self, scope: Any) -> list[str]:
        return [select.alias_or_name for select in self._branches(scope)[0].expression.selects]

    def _projection(self, scope: Any, position: int | str, role: tuple[str, str]) -> set[SourceColumn]:
        """Base columns of the projection at ``position`` (or named so) of ``scope``, with their roles."""
        from sqlglot import exp

        selects = scope.expression.selects
        if isinstance(position, int):
            projection = selects[position] if position < len(selects) else None
        else:
            projection = next((s for s in selects if s.alias_or_name == position), None)
        if projection is None:
            return set()
        value = projection.this if isinstance(projection, exp.Alias) else projection
        found: set[SourceColumn] = set()
        for column in value.find_all(exp.Column):
            found |= self._column(scope, column, _compose(role, _role(column, value)))
        return found

    def _column(self, scope: Any, column: Any, role: tuple[str, str]) -> set[SourceColumn]:
        """A column of ``scope`` resolved to base relations: a table's column, or a CTE/subquery's
        projection followed further down."""
        from sqlglot import exp

        source = scope.sources.get(column.table)
        if isinstance(source, exp.Table):
            return {SourceColumn(source.name, column.name, *role)}
        if source is None:  # an unqualified or unknown column: nothing trustworthy to say
            return set()
        found: set[SourceColumn] = set()
        for branch in self._branches(source):
            found |= self._projection(branch, column.name, role)
        return found

    # -- the whole-dataset links -----------------------------------------------------------------

    def _dataset_links(self) -> set[SourceColumn]:
        from sqlglot import exp

        found: set[SourceColumn] = set()
        for scope in self.root.traverse():
            select = scope.expression
            if not isinstance(select, exp.Select):
                continue
            clauses = [
                (select.args.get("where"), "FILTER"),
                (select.args.get("having"), "FILTER"),
                (select.args.get("group"), "GROUP_BY"),
                (select.args.get("order"), "SORT"),
                *((join.args.get("on"), "JOIN") for join in select.args.get("joins") or []),
            ]
            for clause, subtype in clauses:
                for column in clause.find_all(exp.Column) if clause is not None else ():
                    found |= self._column(scope, column, (INDIRECT, subtype))
        return found


def _role(column: Any, value: Any) -> tuple[str, str]:
    """How ``column`` is used inside the projection ``value``: walk up from it to the projection."""
    from sqlglot import exp

    if column is value:
        return DIRECT, "IDENTITY"
    role = (DIRECT, "TRANSFORMATION")
    child, node = column, column.parent
    while node is not None and child is not value:
        if isinstance(node, exp.Window) and child is not node.this:
            return INDIRECT, "WINDOW"  # in PARTITION BY / ORDER BY
        if isinstance(node, exp.If) and child is node.this:
            return INDIRECT, "CONDITIONAL"  # a CASE WHEN's condition
        if isinstance(node, exp.AggFunc):
            role = (DIRECT, "AGGREGATION")
        child, node = node, node.parent
    return role


def _compose(outer: tuple[str, str], inner: tuple[str, str]) -> tuple[str, str]:
    """A link through two levels: the first INDIRECT role met, else the stronger DIRECT one."""
    if outer[0] == INDIRECT:
        return outer
    if inner[0] == INDIRECT:
        return inner
    return max(outer, inner, key=lambda role: _DIRECT_STRENGTH[role[1]])
