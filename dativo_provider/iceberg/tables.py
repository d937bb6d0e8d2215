"""Create target tables from a source schema: partition spec, sort order and properties in one commit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

_TRANSFORM = re.compile(r"^\s*(?P<name>\w+)\s*\(\s*(?:(?P<arg>\d+)\s*,\s*)?(?P<column>[^()]+?)\s*\)\s*$")
_METRICS = re.compile(r"^(none|counts|full|truncate\(\d+\))$")


def load_or_create(
    catalog: Catalog, identifier: str, schema: pa.Schema, options: Any
) -> tuple[Table, bool]:
    """Load ``identifier``, or create it from ``schema`` with the options' spec, order and properties.

    Concurrent creators are fine: whoever loses the race loads the winner's table.

    :returns: the table and whether this call created it.
    """
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError

    try:
        return catalog.load_table(identifier), False
    except NoSuchTableError:
        pass
    namespace = identifier.rsplit(".", 1)[0]
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except NamespaceAlreadyExistsError:
        pass
    try:
        return _create(catalog, identifier, schema, options), True
    except TableAlreadyExistsError:
        return catalog.load_table(identifier), False


def _create(catalog: Catalog, identifier: str, schema: pa.Schema, options: Any) -> Table:
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
    return transaction.commit_transaction()


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
        (schema.find_column_name(f.source_id), "descending" if f.direction == SortDirection.DESC else "ascending")
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
