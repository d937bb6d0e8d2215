"""Discovery: every table and column that holds a data subject's rows, found from contracts.

What identifies the subject, in the order it is resolved:

1. **Subject identifiers**: columns whose contract says ``dativoDataSubject: <subject_kind>``; they
   match the request's ``subject_ids`` cast to the column's type (an id that does not parse for an
   integer column matches nothing).
2. **E-mail columns**: pii/restricted string columns named ``email`` or ``*_email``; they match after
   :func:`~dativo_provider.privacy.request.normalise_email` (done in Arrow on the streamed column, and
   turned into the concrete stored values, e.g. ``" Zoe@Example.NET"``).
3. **Identity resolution**: in the subject's own records — datasets whose identifier column declares
   no relationship (``customers``, not ``orders``) — the rows matched by id or e-mail give more ids and
   e-mails, until nothing new appears. Every retained snapshot is searched (branches, tags and the
   history of main, and the quarantine tables), so an e-mail a ``merge`` has since replaced is found. So a request by e-mail finds the customer id, and a request by
   id finds tickets sent from the customer's address without a customer id. Tables that *reference*
   a subject never widen the identity (a ticket from the subject's address naming another customer
   does not make that customer the subject).
4. **Relationships**: ``a.x -> b.y`` is followed both ways: the values of ``b.y`` in the subject's rows
   of ``b`` select rows of ``a`` and vice versa, transitively. Edges between identifier columns add
   nothing (both already match the subject's ids) and cost no scan.

Quarantine tables (``<table>_quarantine``) that exist are searched with their table's match columns, and
so are tables that record a contract dataset under another name (``dativo.contract``: e.g. a training
set built from the dataset); in such a copy, a row whose single-column primary key is that of one of the
subject's rows of the dataset is the subject's row too (a ticket sent anonymously from the subject's
address, copied without its e-mail column).
A dataset with personal data that none of this can reach is reported in ``unidentifiable``; a dataset
whose table is absent in ``missing``. Reads are column-pruned streams; row counts are pyiceberg scans
filtered by ``In``. Everything is read at one snapshot per table, recorded for the export.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.contracts.model import Contract, Dataset
from dativo_provider.exceptions import ConfigError
from dativo_provider.privacy.identifiers import email_columns_mask, is_blank, is_email_column, normalised_emails
from dativo_provider.privacy.request import SubjectRequest

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: Classifications of personal data (the columns an export or erasure is about).
PERSONAL = ("pii", "restricted", "confidential")
#: Classifications that make a dataset hold personal data for the ``unidentifiable`` report.
PERSONAL_DATA = ("pii", "restricted")
QUARANTINE_SUFFIX = "_quarantine"
#: Separates a catalog name from a table name in matches from ``other_catalogs``: ``archive:ns.t``.
CATALOG_SEPARATOR = ":"


def split_table(name: str) -> tuple[str | None, str]:
    """``archive:ns.t`` → (``archive``, ``ns.t``); ``ns.t`` → (None, ``ns.t``)."""
    catalog, separator, table = name.partition(CATALOG_SEPARATOR)
    return (catalog, table) if separator else (None, name)
META_PREFIX = "_dativo_"
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
#: International (+CC ...) or North-American ``(555) 123-4567`` numbers; a heuristic, not a validator.
PHONE_PATTERN = r"(?:\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4})|(?:\(\d{3}\)\s?\d{3}-\d{4})"


@dataclass
class TableMatch:
    """One table that can hold the subject's rows, and how they are selected.

    :param match: column → concrete values; a row is the subject's if ANY column holds one of its values.
    :param rows: the subject's rows in the table at ``snapshot_id``.
    """

    table: str
    dataset: str
    contract_id: str
    personal_columns: tuple[str, ...]
    match: dict[str, list[Any]] = field(repr=False)
    via: str
    rows: int
    snapshot_id: int | None

    def row_filter(self) -> BooleanExpression:
        """``Or`` of ``In(column, values)``; ``AlwaysFalse`` when nothing can match."""
        from pyiceberg.expressions import AlwaysFalse, In, Or

        parts = [In(column, values) for column, values in self.match.items() if values]
        return functools.reduce(Or, parts) if parts else AlwaysFalse()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without identifier values: only how many values each column matched."""
        return {"table": self.table, "dataset": self.dataset, "contract_id": self.contract_id,
                "personal_columns": list(self.personal_columns),
                "match_columns": {column: len(values) for column, values in self.match.items()},
                "via": self.via, "rows": self.rows, "snapshot_id": self.snapshot_id}


@dataclass
class Discovery:
    """Where a subject's data is. ``to_dict()`` is safe for logs and XCom (no identifier values)."""

    request_id: str
    subject_kind: str
    tables: list[TableMatch] = field(default_factory=list)
    unidentifiable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    #: The identity resolved (request's identifiers and all found): never in ``to_dict`` or ``repr``.
    subject_ids: tuple[str, ...] = field(default=(), repr=False)
    emails: tuple[str, ...] = field(default=(), repr=False)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def table(self, table: str) -> TableMatch:
        """The match for catalog identifier ``table``.

        :raises ConfigError: discovery found no such table.
        """
        for match in self.tables:
            if match.table == table:
                return match
        raise ConfigError(f"discovery {self.request_id!r} has no table {table!r}; "
                          f"it searched {[t.table for t in self.tables]}")

    def row_filter(self, table: str) -> BooleanExpression:
        """The pyiceberg filter selecting the subject's rows of ``table``: ``Or`` of ``In``."""
        return self.table(table).row_filter()

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "subject_kind": self.subject_kind,
                "tables": [t.to_dict() for t in self.tables], "total_rows": self.total_rows,
                "unidentifiable": list(self.unidentifiable), "missing": list(self.missing),
                "flagged": [dict(f) for f in self.flagged]}


def discover(catalog: CatalogConfig, contracts: Iterable[Contract | str | Path], request: SubjectRequest, *,
             scan_values: bool = False, other_catalogs: Mapping[str, CatalogConfig] | None = None) -> Discovery:
    """Find every table holding the subject of ``request``, by the rules in the module doc.

    :param contracts: contracts, contract files, or directories of them.
    :param scan_values: also scan unclassified string columns for e-mail/phone-like values and report
        (counts only) where contracts miss personal data.
    :param other_catalogs: more catalogs by name (e.g. an archive). Their tables that a contract names
        or that record a contract are searched with the values resolved in ``catalog``; their matches
        are named ``<name>:<table>`` (see :func:`split_table`).
    :raises ConfigError: no contract was given, or a contract file does not lint clean.
    """
    datasets = _datasets(contracts)
    search = _Search(catalog.load(), datasets, request,
                     {name: config.load() for name, config in (other_catalogs or {}).items()})
    result = Discovery(request.request_id, request.subject_kind)
    result.missing = [d.table for d in datasets if d.iceberg is None]
    result.unidentifiable = [d.table for d in search.unidentifiable()]
    result.tables = search.matches()
    result.subject_ids, result.emails = tuple(sorted(search.ids)), tuple(sorted(search.emails))
    if scan_values:
        result.flagged = [f for d in datasets for f in _flag(d)]
    log.info("discovery %s: %d rows in %d tables; unidentifiable %s; missing %s", request.request_id,
             result.total_rows, len(result.tables), result.unidentifiable, result.missing)
    return result


# --- the datasets searched ----------------------------------------------------------------------


@dataclass
class _Target:
    """One contract dataset and its table (or quarantine table) in the catalog."""

    contract: Contract
    dataset: Dataset
    table: str
    iceberg: Table | None
    quarantine_of: _Target | None = None

    @property
    def snapshot_id(self) -> int | None:
        snapshot = self.iceberg.current_snapshot() if self.iceberg is not None else None
        return snapshot.snapshot_id if snapshot else None

    @property
    def copy_of(self) -> _Target | None:
        """The dataset this table copies under another name (recording its contract), not a quarantine."""
        of = self.quarantine_of
        if of is None or self.iceberg is None or "dativo.quarantine-of" in self.iceberg.properties:
            return None
        return None if split_table(self.table)[1].endswith(QUARANTINE_SUFFIX) else of

    def has(self, column: str) -> bool:
        return self.iceberg is not None and column in {f.name for f in self.iceberg.schema().fields}

    def field_type(self, column: str) -> Any:
        assert self.iceberg is not None
        return self.iceberg.schema().find_field(column).field_type

    def batches(self, columns: Iterable[str], row_filter: Any = None, *,
                history: bool = False) -> Iterator[pa.RecordBatch]:
        """The columns' values at ``snapshot_id``, streamed; with ``history``, in every file any retained
        snapshot (branches and tags included) references."""
        from pyiceberg.expressions import AlwaysTrue

        if self.iceberg is None or self.snapshot_id is None:
            return iter(())
        if history:
            from dativo_provider.privacy.history import history_batches

            return (batch for _, batch in history_batches(self.iceberg, columns, row_filter))
        scan = self.iceberg.scan(row_filter=row_filter if row_filter is not None else AlwaysTrue(),
                                 selected_fields=tuple(columns), snapshot_id=self.snapshot_id)
        return iter(scan.to_arrow_batch_reader())


def _datasets(contracts: Iterable[Contract | str | Path]) -> list[_Target]:
    loaded = list(_contracts(contracts))
    if not loaded:
        raise ConfigError("discover: no contracts given; pass contract files or a directory of them")
    return [_Target(contract, dataset, dataset.physical_name or dataset.name, None)
            for contract in loaded for dataset in contract.datasets]


def _contracts(items: Iterable[Contract | str | Path]) -> Iterator[Contract]:
    from dativo_provider.contracts.loader import contract_files, load_contract

    for item in items:
        if isinstance(item, Contract):
            yield item
        else:
            yield from (load_contract(path) for path in contract_files(Path(item)))


def _personal(dataset: Dataset, kind: str) -> tuple[str, ...]:
    return tuple(c.name for c in dataset.columns if c.data_subject == kind or c.classification in PERSONAL)


# --- the search ---------------------------------------------------------------------------------


class _Search:
    """Resolves the subject's identity, then the match columns and values of every table."""

    def __init__(self, catalog: Catalog, targets: list[_Target], request: SubjectRequest,
                 others: Mapping[str, Catalog] | None = None) -> None:
        from pyiceberg.exceptions import NoSuchTableError

        self.request = request
        self.kind = request.subject_kind
        self.targets = targets
        self.quarantines: list[_Target] = []
        for target in targets:
            try:
                target.iceberg = catalog.load_table(target.table)
            except NoSuchTableError:
                continue
            name = target.table + QUARANTINE_SUFFIX
            if catalog.table_exists(name):
                self.quarantines.append(_Target(target.contract, target.dataset, name, catalog.load_table(name),
                                                quarantine_of=target))
        self._add_tables_named_by_properties(catalog)
        for name, other in (others or {}).items():
            self._add_tables_named_by_properties(other, prefix=f"{name}{CATALOG_SEPARATOR}", by_name=True)
        contracts = {id(t.contract): t.contract for t in targets}.values()
        self.edges = list(dict.fromkeys(
            (r.from_dataset, r.from_columns[0], r.to_dataset, r.to_columns[0])
            for contract in contracts for r in contract.relationships
            if len(r.from_columns) == 1 and len(r.to_columns) == 1))
        for contract in contracts:
            for r in contract.relationships:
                if len(r.from_columns) != 1 or len(r.to_columns) != 1:
                    log.warning("%s: composite relationship %s.%s -> %s.%s is not followed by discovery",
                                contract.id, r.from_dataset, r.from_columns, r.to_dataset, r.to_columns)
        self.ids, self.emails = self._resolve_identity()
        self.values: dict[tuple[str, str], set[Any]] = {}
        self._follow_relationships()

    def _add_tables_named_by_properties(self, catalog: Catalog, prefix: str = "", by_name: bool = False) -> None:
        """Tables created under a contract record it (``dativo.contract``), and quarantine tables the
        table they guard (``dativo.quarantine-of``): find those whatever their names.

        :param prefix: names tables of another catalog (``archive:``); there ``by_name`` also takes
            tables named like a contract's table, or its quarantine.
        """
        from dativo_provider.quality.quarantine import QUARANTINE_OF
        from dativo_provider.quality.wap import CONTRACT_DATASET_PROPERTY, CONTRACT_PROPERTY

        known = set() if prefix else {t.table for t in self.targets} | {q.table for q in self.quarantines}
        by_dataset: dict[tuple[str | None, str | None], _Target] = {
            (t.contract.id, t.dataset.name): t for t in self.targets}
        by_table = {t.table: t for t in self.targets} if by_name else {}
        found: dict[str, tuple[Table, dict[str, str]]] = {}
        for namespace in catalog.list_namespaces():
            for identifier in catalog.list_tables(namespace):
                name = ".".join(identifier)
                if name not in known:
                    table = catalog.load_table(identifier)
                    found[name] = (table, dict(table.properties))
        copies: dict[str, _Target] = {}
        for name, (table, properties) in found.items():
            target = by_dataset.get((properties.get(CONTRACT_PROPERTY), properties.get(CONTRACT_DATASET_PROPERTY)))
            target = target or by_table.get(name)
            if target is not None:
                copies[name] = _Target(target.contract, target.dataset, prefix + name, table, quarantine_of=target)
        guarded = {t.table: t for t in self.targets} | {n: c for n, c in copies.items()}
        for name, (table, properties) in found.items():
            of = guarded.get(properties.get(QUARANTINE_OF, ""))
            if of is None and by_name and name.endswith(QUARANTINE_SUFFIX):
                of = guarded.get(name.removesuffix(QUARANTINE_SUFFIX))
            if of is not None and name not in copies:
                copies[name] = _Target(of.contract, of.dataset, prefix + name, table, quarantine_of=of)
        self.quarantines.extend(copies.values())

    # identifiers and e-mails ------------------------------------------------------------------

    def identifiers(self, target: _Target) -> list[str]:
        return [c.name for c in target.dataset.columns if c.data_subject == self.kind and target.has(c.name)]

    def email_columns(self, target: _Target) -> list[str]:
        from pyiceberg.types import StringType

        return [c.name for c in target.dataset.columns
                if is_email_column(c) and target.has(c.name) and isinstance(target.field_type(c.name), StringType)]

    def _roots(self) -> list[_Target]:
        """The subject's own records (and their quarantines): an identifier column that references
        nothing, and an e-mail column."""
        referencing = {(e[0], e[1]) for e in self.edges}
        return [t for t in self.targets + self.quarantines if t.iceberg is not None and self.email_columns(t)
                and any((t.dataset.name, c) not in referencing for c in self.identifiers(t))]

    def _resolve_identity(self) -> tuple[set[str], set[str]]:
        ids, emails = set(self.request.subject_ids), set(self.request.emails)
        for _ in range(10):  # each round can only add; the subject's records are few
            before = (len(ids), len(emails))
            for root in self._roots():
                found_ids, found_emails = self._identity_in(root, ids, emails)
                ids |= found_ids
                emails |= found_emails
            if (len(ids), len(emails)) == before:
                break
        return ids, emails

    def _identity_in(self, root: _Target, ids: set[str], emails: set[str]) -> tuple[set[str], set[str]]:
        import pyarrow.compute as pc

        id_columns, email_columns = self.identifiers(root), self.email_columns(root)
        found_ids: set[str] = set()
        found_emails: set[str] = set()
        for batch in root.batches(id_columns + email_columns, history=True):
            mask = email_columns_mask(batch, email_columns, emails)
            for column in id_columns:
                typed = _typed(root, column, ids)
                if typed:
                    mask = pc.or_(mask, pc.fill_null(pc.is_in(batch[column], _array(typed)), False))
            if not pc.any(mask).as_py():
                continue
            rows = batch.filter(mask)
            found_ids |= {str(v) for c in id_columns for v in rows[c].to_pylist() if not is_blank(v)}
            found_emails |= {v for c in email_columns for v in normalised_emails(rows[c]).to_pylist() if v}
        return found_ids, found_emails

    # relationships ----------------------------------------------------------------------------

    def _follow_relationships(self) -> None:
        by_name = {t.dataset.name: t for t in self.targets}
        for _ in range(len(self.edges) + 1):
            changed = False
            for a_ds, a_col, b_ds, b_col in self.edges:
                for src, src_col, dst, dst_col in ((a_ds, a_col, b_ds, b_col), (b_ds, b_col, a_ds, a_col)):
                    source, target = by_name.get(src), by_name.get(dst)
                    if source is None or target is None or source.iceberg is None:
                        continue
                    if self._is_identifier(source, src_col) and self._is_identifier(target, dst_col):
                        continue  # both match the subject's ids already
                    changed |= self._carry(source, src_col, target, dst_col)
            if not changed:
                return

    def _is_identifier(self, target: _Target, column: str) -> bool:
        found = target.dataset.column(column)
        return found is not None and found.data_subject == self.kind

    def _carry(self, source: _Target, src_col: str, target: _Target, dst_col: str) -> bool:
        """Add the values of ``source.src_col`` in the subject's rows to ``target.dst_col``."""
        match = self.match_of(source)
        if not any(match.values()) or not source.has(src_col):
            return False
        found = {v for batch in source.batches([src_col], _filter(match), history=True)
                 for v in batch[src_col].to_pylist() if not is_blank(v)}
        known = self.values.setdefault((target.dataset.name, dst_col), set())
        new = found - known
        known |= new
        return bool(new)

    # per table ------------------------------------------------------------------------------

    def match_of(self, target: _Target) -> dict[str, list[Any]]:
        """Column → the subject's values in ``target`` (e-mail columns: the stored spellings)."""
        match: dict[str, list[Any]] = {}
        for column in self.identifiers(target):
            match[column] = sorted(_typed(target, column, self.ids))
        for (dataset, column), values in self.values.items():
            if dataset == target.dataset.name and target.has(column):
                match[column] = sorted(set(match.get(column, [])) | values)
        for column in self.email_columns(target):
            match[column] = sorted(self._stored_emails(target, column))
        copied = target.copy_of
        if copied is not None and len(copied.dataset.primary_key) == 1 and target.has(copied.dataset.primary_key[0]):
            key = copied.dataset.primary_key[0]
            match[key] = sorted(set(match.get(key, [])) | self._subject_keys(copied, key))
        return match

    def _subject_keys(self, target: _Target, key: str) -> set[Any]:
        """The primary-key values of the subject's rows of ``target`` in any retained snapshot."""
        cache: dict[str, set[Any]] = self.__dict__.setdefault("_keys", {})
        if target.table not in cache:
            match = self.match_of(target)
            cache[target.table] = set() if not any(match.values()) or not target.has(key) else {
                v for batch in target.batches([key], _filter(match), history=True)
                for v in batch[key].to_pylist() if not is_blank(v)}
        return cache[target.table]

    def _stored_emails(self, target: _Target, column: str) -> set[str]:
        import pyarrow.compute as pc

        if not self.emails:
            return set()
        found: set[str] = set()
        for batch in target.batches([column], history=True):
            mask = email_columns_mask(batch, [column], self.emails)
            if pc.any(mask).as_py():
                found |= set(batch.filter(mask)[column].to_pylist())
        return found

    def reachable(self, target: _Target) -> bool:
        """Whether any column can select the subject's rows: its own, or through relationships."""
        if not hasattr(self, "_reach"):
            exists = {t.dataset.name for t in self.targets if t.iceberg is not None}
            reach = {t.dataset.name for t in self.targets
                     if t.iceberg is not None and (self.identifiers(t) or self.email_columns(t))}
            for _ in range(len(self.edges) + 1):
                for a_ds, _a, b_ds, _b in self.edges:
                    if {a_ds, b_ds} <= exists and {a_ds, b_ds} & reach:
                        reach |= {a_ds, b_ds}
            self._reach = reach
        return target.dataset.name in self._reach

    def unidentifiable(self) -> list[_Target]:
        return [t for t in self.targets if t.iceberg is not None and not self.reachable(t)
                and any(c.classification in PERSONAL_DATA or c.data_subject for c in t.dataset.columns)]

    def matches(self) -> list[TableMatch]:
        out = []
        for target in [t for t in self.targets if t.iceberg is not None and self.reachable(t)] + self.quarantines:
            match = self.match_of(target)
            table = TableMatch(target.table, target.dataset.name, target.contract.id,
                               tuple(c for c in _personal(target.dataset, self.kind) if target.has(c)),
                               match, self._via(target, match), 0, target.snapshot_id)
            table.rows = _count(target, table)
            out.append(table)
        return out

    def _via(self, target: _Target, match: dict[str, list[Any]]) -> str:
        parts = []
        for column in match:
            if self._is_identifier(target, column):
                parts.append(f"subject identifier {column}")
            elif column in self.email_columns(target):
                parts.append(f"{column} (normalised)")
            elif target.copy_of is not None and (column,) == target.copy_of.dataset.primary_key:
                parts.append(f"{column} of the subject's rows in {target.copy_of.table}")
            for a_ds, a_col, b_ds, b_col in self.edges:
                if (a_ds, a_col) == (target.dataset.name, column) or (b_ds, b_col) == (target.dataset.name, column):
                    parts.append(f"relationship {a_ds}.{a_col} -> {b_ds}.{b_col}")
        text = "; ".join(dict.fromkeys(parts))
        if target.quarantine_of is not None:
            of = target.quarantine_of.table
            held = target.copy_of is None
            text += f" (quarantine of {of})" if held else f" (table recording contract dataset {of})"
            if CATALOG_SEPARATOR in target.table:
                text += f" in catalog {split_table(target.table)[0]}"
        return text


# --- helpers ------------------------------------------------------------------------------------


def _typed(target: _Target, column: str, ids: Iterable[str]) -> set[Any]:
    """``ids`` as values of ``column``'s type; ids that do not parse are left out (they match nothing)."""
    from pyiceberg.types import IntegerType, LongType, StringType

    kind = target.field_type(column)
    if isinstance(kind, (IntegerType, LongType)):
        limit = 2**31 if isinstance(kind, IntegerType) else 2**63
        return {n for n in (_int(i) for i in ids) if n is not None and -limit <= n < limit}
    if isinstance(kind, StringType):
        return set(ids)
    raise ConfigError(f"{target.table}.{column} identifies a data subject but is of type {kind}; "
                      "subject identifiers must be integer or string columns")


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _array(values: set[Any]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(values))


def _filter(match: dict[str, list[Any]]) -> BooleanExpression:
    from pyiceberg.expressions import AlwaysFalse, In, Or

    parts = [In(column, values) for column, values in match.items() if values]
    return functools.reduce(Or, parts) if parts else AlwaysFalse()


def _count(target: _Target, table: TableMatch) -> int:
    """The subject's rows: a filtered scan reading one column (pyiceberg prunes files by bounds, except
    that an ``In`` of more than 200 values disables pruning — correct, only slower)."""
    if not any(table.match.values()):
        return 0
    first = next(column for column, values in table.match.items() if values)
    return sum(batch.num_rows for batch in target.batches([first], table.row_filter()))


def _flag(target: _Target) -> Iterator[dict[str, Any]]:
    """E-mail/phone-like values in string columns the contract does not treat as personal (counts only)."""
    import pyarrow.compute as pc
    from pyiceberg.types import StringType

    if target.iceberg is None:
        return
    declared = {c.name for c in target.dataset.columns if c.classification in PERSONAL_DATA or c.data_subject}
    columns = [f.name for f in target.iceberg.schema().fields if isinstance(f.field_type, StringType)
               and f.name not in declared and not f.name.startswith(META_PREFIX)]
    if not columns:
        return
    counts = {(c, kind): 0 for c in columns for kind in ("email", "phone")}
    for batch in target.batches(columns):
        for column in columns:
            for kind, pattern in (("email", EMAIL_PATTERN), ("phone", PHONE_PATTERN)):
                hits = pc.match_substring_regex(batch[column], pattern)
                counts[(column, kind)] += pc.sum(pc.fill_null(hits, False).cast("int64")).as_py() or 0
    for (column, kind), rows in counts.items():
        if rows:
            yield {"table": target.table, "dataset": target.dataset.name, "column": column,
                   "pattern": kind, "rows": rows}


__all__ = ["Discovery", "TableMatch", "discover"]
