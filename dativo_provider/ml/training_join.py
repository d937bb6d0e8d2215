"""The point-in-time (as-of) join behind a training set, in DuckDB.

Each label row (entity keys + event time) gets, from every feature table, the newest row of the same
entity whose feature time is at or before the event time -- never one from after it (no leakage). When
that newest row is older than the feature table's TTL the features are null: a stale value is not
silently used. A feature table holding two rows for one entity and time is refused, since either could
be picked and the set would not be reproducible.

Inputs are read at pinned snapshots straight into DuckDB (Arrow streams, no pandas); the joined rows
leave as a stream of Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.ml.training_manifest import PinnedInput
from dativo_provider.ml.transform import connect_duckdb, to_arrow_reader
from dativo_provider.quality.rows import quote_identifier

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

#: Rows per batch the join hands on.
BATCH_ROWS = 65_536
#: The event/feature time as DuckDB compares it (a column added to the staged copies).
_TIME = "__dativo_time"


def output_columns(inputs: Sequence[PinnedInput]) -> list[str]:
    """The training set's columns: the label columns, then each feature table's features in order."""
    labels, features = _split(inputs)
    names = list(labels.columns)
    for view in features:
        absent = [e for e in view.entities if e not in labels.columns]
        if absent:
            raise ConfigError(f"entities {absent} of feature table {view.table} are not columns read from "
                              f"the label table {labels.table} ({list(labels.columns)}); the join matches "
                              "them by name")
        for name in _features_of(view):
            if name in names:
                raise ConfigError(f"feature {name!r} of {view.table} clashes with a column already in the "
                                  "training set (a label column or another feature table's feature); "
                                  "rename one")
            names.append(name)
    return names


def as_of_rows(catalog: Catalog, inputs: Sequence[PinnedInput], batch_rows: int = BATCH_ROWS
               ) -> Iterator[pa.RecordBatch]:
    """Yield the training set's rows, joined as of each label's event time (the module doc's rules).

    :param inputs: the label table first, then the feature tables, each at its pinned snapshot.
    :raises ConfigError: a column named in a definition is not in its table at that snapshot.
    :raises SourceError: a feature table holds two rows for one entity and time.
    """
    output_columns(inputs)  # refuses clashing names before anything is read
    connection = connect_duckdb()  # timestamps without a zone are compared as UTC
    try:
        labels, features = _split(inputs)
        _stage(connection, catalog, labels, "labels")
        for number, view in enumerate(features):
            _stage(connection, catalog, view, f"features_{number}")
            _refuse_duplicates(connection, view, f"features_{number}")
        reader = to_arrow_reader(connection.sql(_join_sql(labels, features)), batch_rows)
        yield from reader
    finally:
        connection.close()


def _split(inputs: Sequence[PinnedInput]) -> tuple[PinnedInput, list[PinnedInput]]:
    if not inputs or inputs[0].role != "labels" or any(i.role != "features" for i in inputs[1:]):
        raise ConfigError("a training set needs its label table first, then one or more feature tables")
    if len(inputs) < 2:
        raise ConfigError(f"training set over {inputs[0].table}: name at least one feature table")
    return inputs[0], list(inputs[1:])


def _features_of(view: PinnedInput) -> list[str]:
    return [c for c in view.columns if c not in view.entities and c != view.timestamp_column]


def _stage(connection: Any, catalog: Catalog, pinned: PinnedInput, name: str) -> None:
    """Copy the columns the join needs from the pinned snapshot into a DuckDB table ``name``."""
    table = catalog.load_table(pinned.table)
    snapshot = table.metadata.snapshot_by_id(pinned.snapshot_id)
    if snapshot is None:
        raise ConfigError(f"{pinned.table}: snapshot {pinned.snapshot_id} no longer exists")
    schema = table.metadata.schema_by_id(snapshot.schema_id) if snapshot.schema_id is not None else None
    present = set((schema or table.schema()).column_names)
    missing = [c for c in pinned.columns if c not in present]
    if missing:
        raise ConfigError(f"{pinned.table} (snapshot {pinned.snapshot_id}) has no column(s) {missing} that "
                          f"the training set's {pinned.role} definition names; it has {sorted(present)}")
    scan = table.scan(snapshot_id=pinned.snapshot_id, selected_fields=pinned.columns)
    reader = scan.to_arrow_batch_reader()
    connection.register("dativo_pinned_input", reader)
    try:
        connection.execute(f"CREATE TEMP TABLE {name} AS SELECT {_select(pinned.columns)}, "
                           f"CAST({_quote(pinned.timestamp_column)} AS TIMESTAMPTZ) AS {_TIME} "
                           "FROM dativo_pinned_input")
    finally:
        connection.unregister("dativo_pinned_input")


def _refuse_duplicates(connection: Any, view: PinnedInput, name: str) -> None:
    keys = ", ".join([*(_quote(e) for e in view.entities), _TIME])
    duplicate = connection.execute(f"SELECT {keys}, count(*) FROM {name} WHERE {_TIME} IS NOT NULL "
                                   f"GROUP BY {keys} HAVING count(*) > 1 LIMIT 1").fetchone()
    if duplicate is not None:
        example = dict(zip([*view.entities, view.timestamp_column], duplicate[:-1], strict=True))
        raise SourceError(f"{view.table} (snapshot {view.snapshot_id}) holds {duplicate[-1]} rows for "
                          f"{example}: a feature table needs one row per entity and time, or the as-of join "
                          "could pick either and the training set would not be reproducible")


def _join_sql(labels: PinnedInput, features: list[PinnedInput]) -> str:
    selected = [f"l.{_quote(c)}" for c in labels.columns]
    joins = []
    for number, view in enumerate(features):
        alias = f"f{number}"
        on = " AND ".join(f"l.{_quote(e)} = {alias}.{_quote(e)}" for e in view.entities)
        joins.append(f"ASOF LEFT JOIN features_{number} {alias} ON {on} AND l.{_TIME} >= {alias}.{_TIME}")
        fresh = (f"{alias}.{_TIME} >= l.{_TIME} - to_microseconds({view.ttl_seconds * 1_000_000}::BIGINT)"
                 if view.ttl_seconds is not None else None)
        for feature in _features_of(view):
            value = f"{alias}.{_quote(feature)}"
            selected.append(f"CASE WHEN {fresh} THEN {value} END AS {_quote(feature)}" if fresh
                            else f"{value} AS {_quote(feature)}")
    order = ", ".join(f"l.{_quote(c)}" for c in [*labels.entities, labels.timestamp_column])
    return f"SELECT {', '.join(selected)} FROM labels l {' '.join(joins)} ORDER BY {order}"


def _select(columns: Sequence[str]) -> str:
    return ", ".join(_quote(c) for c in columns)


def _quote(identifier: str) -> str:
    return quote_identifier(identifier, "duckdb")
