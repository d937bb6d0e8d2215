"""Create target tables from a source schema: partition spec, sort order and properties in one commit."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from dativo_provider.exceptions import CommitConflictError, ConfigError
from dativo_provider.iceberg.races import is_lost_race

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table, Transaction

_TRANSFORM = re.compile(r"^\s*(?P<name>\w+)\s*\(\s*(?:(?P<arg>\d+)\s*,\s*)?(?P<column>[^()]+?)\s*\)\s*$")
_METRICS = re.compile(r"^(none|counts|full|truncate\(\d+\))$")
#: Tries to create a table while a SQLite catalog is locked by other writers.
_CREATE_ATTEMPTS = 10


def load_or_create(
    catalog: Catalog, identifier: str, schema: pa.Schema, options: Any
) -> tuple[Table, bool]:
    """Load ``identifier``, or create it from ``schema`` with the options' spec, order and properties.

    Concurrent creators are fine: whoever loses the race loads the winner's table.

    :returns: the table and whether this call created it.
    """
    table, creation = load_or_stage(catalog, identifier, schema, options)
    if creation is None:
        return table, False
    return commit_creation(catalog, identifier, creation)


def load_or_stage(
    catalog: Catalog, identifier: str, schema: pa.Schema, options: Any
) -> tuple[Table, Transaction | None]:
    """Load ``identifier``, or stage its creation without committing it.

    A staged table can be written to (its files go where the table will live) and is created by the
    commit that adds its first rows (:func:`dativo_provider.iceberg.commit.commit`), so a run that
    fails before then leaves no table behind.

    :returns: the loaded table and None, or the staged table and its create transaction.
    """
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.table import StagedTable

    try:
        return catalog.load_table(identifier), None
    except NoSuchTableError:
        pass
    _ensure_namespace(catalog, identifier.rsplit(".", 1)[0])
    creation = _stage(catalog, identifier, schema, options)
    base = creation._table  # noqa: SLF001 - pyiceberg offers no public view of a staged table
    staged = StagedTable(identifier=base.name(), metadata=creation.table_metadata,
                         metadata_location=base.metadata_location, io=base.io, catalog=catalog)
    return staged, creation


def commit_creation(catalog: Catalog, identifier: str, creation: Transaction) -> tuple[Table, bool]:
    """Commit a staged creation as it is; if another run created the table first, load theirs.

    :returns: the table and whether this call created it.
    :raises CommitConflictError: the catalog stayed locked by other writers.
    """
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            return creation.commit_transaction(), True
        except Exception as exc:
            if not creation_raced(exc):
                raise
            if catalog.table_exists(identifier):
                return catalog.load_table(identifier), False
            backoff(attempt)
    raise CommitConflictError(
        f"could not create {identifier}: the catalog stayed busy {_CREATE_ATTEMPTS} times; rerun"
    )


def creation_raced(exc: Exception) -> bool:
    """Could committing a creation have failed because another writer was at the catalog first?

    A creator that finds the table there reports ``TableAlreadyExistsError`` or, when the other
    table existed as its commit started, ``CommitFailedException("Table already exists")``; a SQLite
    catalog may also be locked. Whether the other writer created the table, the catalog says.
    """
    from pyiceberg.exceptions import TableAlreadyExistsError

    return isinstance(exc, TableAlreadyExistsError) or is_lost_race(exc)


def backoff(attempt: int) -> None:
    """Sleep before retrying a lost race: growing with the attempt, jittered so racers spread out."""
    time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.5))


def _ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create the namespace unless it exists; a concurrent creator winning is fine."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        # Two creators can both see no namespace and both insert it: the loser's error (an
        # IntegrityError from a SQL catalog) is harmless once the namespace is there.
        if not catalog.namespace_exists(namespace):
            raise


def _stage(catalog: Catalog, identifier: str, schema: pa.Schema, options: Any) -> Transaction:
    properties = {**options.table_properties, **column_properties(options.column_properties)}
    transaction = catalog.create_table_transaction(identifier, schema=schema, properties=properties)
    if options.partition_by:
        with transaction.update_spec() as spec:
            for expression in options.partition_by:
                column, transform = parse_transform(expression)
                spec.add_field(column, transform, _partition_field_name(column, expression))
    if options.sort_by:
        with transaction.update_sort_order() as order:
            for column, direction in parse_sort(options.sort_by):
                (order.desc if direction == "descending" else order.asc)(column, _identity())
    docs = {c: p["doc"] for c, p in options.column_properties.items() if p.get("doc")}
    if docs:
        with transaction.update_schema() as update:
            for column, doc in docs.items():
                update.update_column(column, doc=doc)
    return transaction


def column_properties(per_column: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Iceberg table properties for per-column settings (metrics mode today)."""
    properties = {}
    for column, settings in per_column.items():
        metrics = settings.get("metrics")
        if metrics is None:
            continue
        if not _METRICS.match(metrics):
            raise ConfigError(
                f"column_properties.{column}.metrics is {metrics!r}; expected none, counts, full or truncate(N)"
            )
        properties[f"write.metadata.metrics.column.{column}"] = metrics
    return properties


def parse_transform(expression: str) -> tuple[str, Any]:
    """``"day(ts)"`` → ``("ts", DayTransform())``; a bare column name is an identity partition."""
    from pyiceberg import transforms

    match = _TRANSFORM.match(expression)
    if match is None:
        return expression.strip(), transforms.IdentityTransform()
    name, arg, column = match["name"].lower(), match["arg"], match["column"]
    simple = {
        "identity": transforms.IdentityTransform,
        "year": transforms.YearTransform,
        "month": transforms.MonthTransform,
        "day": transforms.DayTransform,
        "hour": transforms.HourTransform,
    }
    if name in simple and arg is None:
        return column, simple[name]()
    if name == "bucket" and arg is not None:
        return column, transforms.BucketTransform(int(arg))
    if name == "truncate" and arg is not None:
        return column, transforms.TruncateTransform(int(arg))
    raise ConfigError(
        f"partition_by entry {expression!r} is not understood; use a column name, identity(c), year(c), "
        "month(c), day(c), hour(c), bucket(N, c) or truncate(N, c)"
    )


def parse_sort(entries: tuple[str, ...]) -> list[tuple[str, str]]:
    """``["a", "b desc"]`` → ``[("a", "ascending"), ("b", "descending")]``."""
    parsed = []
    for entry in entries:
        words = entry.rsplit(maxsplit=1)
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            parsed.append((words[0], "descending" if words[1].lower() == "desc" else "ascending"))
        else:
            parsed.append((entry.strip(), "ascending"))
    return parsed


def sort_columns(table: Table) -> list[tuple[str, str]]:
    """The table's sort order as ``[(column, direction)]`` (identity-transform fields only)."""
    from pyiceberg.table.sorting import SortDirection
    from pyiceberg.transforms import IdentityTransform

    schema = table.schema()
    return [
        (
            cast(str, schema.find_column_name(f.source_id)),
            "descending" if f.direction == SortDirection.DESC else "ascending",
        )
        for f in table.sort_order().fields
        if isinstance(f.transform, IdentityTransform)
    ]


def _partition_field_name(column: str, expression: str) -> str:
    match = _TRANSFORM.match(expression)
    if match is None or match["name"].lower() == "identity":
        return column
    return f"{column}_{match['name'].lower()}"


def _identity() -> Any:
    from pyiceberg.transforms import IdentityTransform

    return IdentityTransform()
