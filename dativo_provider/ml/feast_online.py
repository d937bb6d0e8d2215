"""Materialize an Iceberg feature table into Feast's online store, fast and incrementally.

:func:`materialize_online` runs, in order:

1. **describe** the feature view from the Feast ``FeatureStore``: join keys and their value types, the
   features and their types, the timestamp column (the view's batch source's, unless given);
2. **position**: read the last snapshot materialized for this project and view, kept in the online
   store itself (``dativo_feast_position`` table / key, see :mod:`~dativo_provider.ml.feast_stores`);
3. **plan** the rows to write, in DuckDB over Arrow streamed from pyiceberg:

   - *unchanged*: the snapshot is the one already materialized: nothing is written;
   - *append*: every snapshot since then only appended: read only the added data files, take each
     entity's latest added row, and keep it if it is at least as new as that entity's latest row in
     the old snapshot (which reads only the key and timestamp columns);
   - *diff*: anything else (overwrite, delete, merge): each entity's latest row in the old and the new
     snapshot, ``new EXCEPT old`` is written, entities with no row left are **deleted** from the store
     (a user who deleted a customer's rows expects the online store to forget them too);
   - *full*: no usable position (first run, ``full=True``, the old snapshot expired or the schema
     gained a feature): each entity's latest row;

4. **write** in batches, in Feast's own serialization (:mod:`~dativo_provider.ml.feast_encoding`);
5. **record** the position (only after the data: a crash before it leaves a rerun to redo the same
   upserts, so reruns are idempotent), the materialization interval in the Feast registry (so
   ``feast materialize-incremental`` continues after it), and the store in the table's serving ledger
   (:mod:`~dativo_provider.ml.serving`) so a data-subject erasure can find it.

Ties (two rows of an entity with the same latest timestamp) resolve to either row.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.ml.feast_stores import (
    EncodedBatch,
    OnlineWriter,
    StoreLocation,
    location_of_feast_config,
    open_writer,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)
SERVING_KIND = "feast"


@dataclass(frozen=True)
class FeatureViewSpec:
    """What the materializer needs of a Feast feature view: names and Feast value types.

    :param join_key_types: Feast value type name (``INT64``, ``STRING`` ...) per join key column.
    :param features: Feast value type name per feature column, in the view's order.
    """

    project: str
    name: str
    join_key_types: Mapping[str, str]
    features: Mapping[str, str]
    timestamp_column: str

    @property
    def entity_columns(self) -> tuple[str, ...]:
        return tuple(self.join_key_types)

    @classmethod
    def from_feature_store(cls, store: Any, feature_view: str, timestamp_column: str | None = None
                           ) -> FeatureViewSpec:
        """From a ``feast.FeatureStore`` and a view applied to its registry."""
        view = store.get_feature_view(feature_view)
        keys = {column.name: column.dtype.to_value_type().name for column in view.entity_columns}
        features = {column.name: column.dtype.to_value_type().name for column in view.features}
        column = timestamp_column or getattr(view.batch_source, "timestamp_field", None)
        if not column:
            raise ConfigError(f"feature view {feature_view!r}: its batch source has no timestamp_field; "
                              "pass timestamp_column")
        if not keys:
            raise ConfigError(f"feature view {feature_view!r} has no entity join keys")
        return cls(store.project, view.name, keys, features, column)


@dataclass(frozen=True)
class MaterializeResult:
    """One run: what was read and written where."""

    table: str
    snapshot_id: int
    previous_snapshot_id: int | None
    mode: str
    rows_read: int
    entities_written: int
    entities_deleted: int
    project: str
    feature_view: str
    store: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "snapshot_id": str(self.snapshot_id),
                "previous_snapshot_id": None if self.previous_snapshot_id is None else str(self.previous_snapshot_id),
                "mode": self.mode, "rows_read": self.rows_read, "entities_written": self.entities_written,
                "entities_deleted": self.entities_deleted, "project": self.project,
                "feature_view": self.feature_view, "store": self.store, "seconds": round(self.seconds, 3)}


def materialize_online(
    catalog: CatalogConfig,
    table: str,
    store: Any,
    feature_view: str,
    *,
    snapshot_id: int | None = None,
    timestamp_column: str | None = None,
    conn_id: str | None = None,
    full: bool = False,
    batch_rows: int = 100_000,
    duckdb_settings: Mapping[str, str] | None = None,
    record_target: bool = True,
) -> MaterializeResult:
    """Write each entity's latest values of ``table`` (at ``snapshot_id``, default main's head) into the
    online store of ``store`` (a ``feast.FeatureStore``) for ``feature_view``; see the module docstring.

    :param conn_id: the Airflow connection the online store came from, recorded instead of its secrets.
    :param full: ignore the position and write every entity's latest row.
    :raises ConfigError: the table has no snapshot, a column is missing, a type is not supported.
    """
    started = time.monotonic()
    spec = FeatureViewSpec.from_feature_store(store, feature_view, timestamp_column)
    location, password = location_of_feast_config(store.config.online_store, conn_id)
    iceberg = catalog.load().load_table(table)
    snapshot = _snapshot_id(iceberg, table, snapshot_id)
    writer = open_writer(location, spec.project, spec.name, password=password, features=list(spec.features))
    try:
        run = _Run(iceberg, table, spec, writer, batch_rows, duckdb_settings)
        previous = None if full else run.previous_snapshot(writer.read_position())
        mode = run.mode(previous, snapshot)
        latest = run.execute(mode, previous, snapshot)
        if mode != "unchanged":
            writer.write_position({"table": table, "snapshot_id": snapshot,
                                   "materialized_at": dt.datetime.now(dt.timezone.utc).isoformat()})
    finally:
        writer.close()
    if latest is not None:
        _record_interval(store, spec.name, latest)
    if record_target:
        _record_target(catalog, table, spec, location)
    result = MaterializeResult(table, snapshot, previous, mode, run.rows_read, run.entities_written,
                               run.entities_deleted, spec.project, spec.name, location.describe(),
                               time.monotonic() - started)
    log.info("Feast %s/%s@%s: %s from snapshot %s, %d entities written, %d deleted", spec.project, spec.name,
             location.kind, mode, snapshot, result.entities_written, result.entities_deleted)
    return result


def _snapshot_id(iceberg: Table, table: str, snapshot_id: int | None) -> int:
    if snapshot_id is not None:
        if iceberg.metadata.snapshot_by_id(int(snapshot_id)) is None:
            raise ConfigError(f"table {table}: snapshot {snapshot_id} does not exist (expired?)")
        return int(snapshot_id)
    current = iceberg.current_snapshot()
    if current is None:
        raise ConfigError(f"table {table} has no snapshot yet: nothing to materialize")
    return current.snapshot_id


class _Run:
    """The planning and writing of one materialization."""

    def __init__(self, iceberg: Table, table: str, spec: FeatureViewSpec, writer: OnlineWriter,
                 batch_rows: int, duckdb_settings: Mapping[str, str] | None) -> None:
        self.iceberg, self.table, self.spec, self.writer = iceberg, table, spec, writer
        self.batch_rows, self.duckdb_settings = batch_rows, duckdb_settings
        self.columns = [*spec.entity_columns, spec.timestamp_column, *spec.features]
        missing = [name for name in self.columns if name not in iceberg.schema().column_names]
        if missing:
            raise ConfigError(f"table {table}: feature view {spec.name!r} needs column(s) {missing}")
        self.rows_read = self.entities_written = self.entities_deleted = 0

    def previous_snapshot(self, position: Mapping[str, Any] | None) -> int | None:
        """The position's snapshot if it is still usable for a diff against this table."""
        if not position or position.get("table") != self.table:
            return None
        previous = int(position["snapshot_id"])
        if self.iceberg.metadata.snapshot_by_id(previous) is None:
            log.warning("Last materialized snapshot %s of %s has expired: writing every entity", previous, self.table)
            return None
        return previous

    def mode(self, previous: int | None, snapshot: int) -> str:
        if previous is None:
            return "full"
        if previous == snapshot:
            return "unchanged"
        old_schema = self._schema_at(previous)
        if any(name not in old_schema for name in self.columns):
            return "full"
        between = self._snapshots_between(previous, snapshot)
        if between is not None and all(_operation(item) == "append" for item in between):
            return "append"
        return "diff"

    def _schema_at(self, snapshot: int) -> list[str]:
        found = self.iceberg.metadata.snapshot_by_id(snapshot)
        schema_id = found.schema_id if found is not None else None
        schemas = {schema.schema_id: schema for schema in self.iceberg.metadata.schemas}
        return (schemas.get(schema_id) or self.iceberg.schema()).column_names  # type: ignore[arg-type]

    def _snapshots_between(self, previous: int, snapshot: int) -> list[Any] | None:
        """Snapshots after ``previous`` up to ``snapshot``, or None if ``previous`` is not an ancestor."""
        from pyiceberg.table.snapshots import ancestors_of

        out: list[Any] = []
        for item in ancestors_of(self.iceberg.metadata.snapshot_by_id(snapshot), self.iceberg.metadata):
            if item.snapshot_id == previous:
                return out
            out.append(item)
        return None

    def execute(self, mode: str, previous: int | None, snapshot: int) -> dt.datetime | None:
        """Write what ``mode`` calls for; return the newest event time written (None if nothing)."""
        if mode == "unchanged":
            return None
        from dativo_provider.ml.transform import connect_duckdb

        connection = connect_duckdb(self.duckdb_settings)
        try:
            newest = None
            for batch in self._changes(connection, mode, previous, snapshot):
                newest = _max_time(newest, batch.column(self.spec.timestamp_column))
                self._write(batch)
            self.writer.flush()
            if mode == "diff":
                self._delete_gone(connection)
            return newest
        finally:
            connection.close()

    # -- planning (DuckDB) -----------------------------------------------------------------------------

    def _q(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _latest(self, source: str) -> str:
        keys = ", ".join(self._q(name) for name in self.spec.entity_columns)
        return (f"SELECT {', '.join(self._q(name) for name in self.columns)} FROM {source} "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {self._q(self.spec.timestamp_column)} "
                "DESC) = 1")

    def _scan(self, snapshot: int, columns: Sequence[str]) -> pa.RecordBatchReader:
        return self.iceberg.scan(snapshot_id=snapshot, selected_fields=tuple(columns)).to_arrow_batch_reader()

    def _counted(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        import pyarrow as pa

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                self.rows_read += batch.num_rows
                yield batch

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def _changes(self, connection: Any, mode: str, previous: int | None, snapshot: int
                 ) -> Iterator[pa.RecordBatch]:
        from dativo_provider.ml.transform import to_arrow_reader

        keys = ", ".join(self._q(name) for name in self.spec.entity_columns)
        stamp = self._q(self.spec.timestamp_column)
        if mode == "full":
            connection.register("new_rows", self._counted(self._scan(snapshot, self.columns)))
            query = self._latest("new_rows")
        elif mode == "append":
            added = self.iceberg.incremental_append_scan(from_snapshot_id_exclusive=previous,
                                                         to_snapshot_id_inclusive=snapshot,
                                                         selected_fields=tuple(self.columns))
            connection.register("added_rows", self._counted(added.to_arrow_batch_reader()))
            assert previous is not None
            connection.register("old_times", self._scan(previous, [*self.spec.entity_columns,
                                                                   self.spec.timestamp_column]))
            columns = ", ".join(f"added.{self._q(name)}" for name in self.columns)
            query = (f"WITH added AS ({self._latest('added_rows')}), old AS (SELECT {keys}, max({stamp}) AS "
                     f"old_ts FROM old_times GROUP BY {keys}) SELECT {columns} FROM added LEFT JOIN old "
                     f"USING ({keys}) WHERE old.old_ts IS NULL OR added.{stamp} >= old.old_ts")
        else:
            assert previous is not None
            connection.register("new_rows", self._counted(self._scan(snapshot, self.columns)))
            connection.execute(f"CREATE TEMP TABLE new_latest AS {self._latest('new_rows')}").fetchall()
            connection.register("old_rows", self._scan(previous, self.columns))
            connection.execute(f"CREATE TEMP TABLE old_latest AS {self._latest('old_rows')}").fetchall()
            query = "SELECT * FROM new_latest EXCEPT SELECT * FROM old_latest"
        yield from to_arrow_reader(connection.sql(query), self.batch_rows)

    def _delete_gone(self, connection: Any) -> None:
        from dativo_provider.ml.transform import to_arrow_table

        keys = ", ".join(self._q(name) for name in self.spec.entity_columns)
        gone = to_arrow_table(connection.sql(f"SELECT {keys} FROM old_latest EXCEPT SELECT {keys} FROM new_latest"))
        if gone.num_rows:
            from dativo_provider.ml.feast_encoding import encode_entity_keys

            encoded = encode_entity_keys({name: gone.column(name) for name in self.spec.entity_columns},
                                         dict(self.spec.join_key_types))
            self.entities_deleted += self.writer.delete(encoded.to_pylist())

    # -- writing ---------------------------------------------------------------------------------------

    def _write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self.writer.write(encode_batch(batch, self.spec))
        self.entities_written += batch.num_rows


def encode_batch(batch: pa.RecordBatch, spec: FeatureViewSpec) -> EncodedBatch:
    """One batch of latest rows in Feast's serialization."""
    from dativo_provider.ml.feast_encoding import encode_entity_keys, encode_values

    keys = encode_entity_keys({name: batch.column(name) for name in spec.entity_columns}, dict(spec.join_key_types))
    values = {name: encode_values(batch.column(name), kind, column=name) for name, kind in spec.features.items()}
    raw = {name: batch.column(name) for name in spec.features}
    return EncodedBatch(keys, values, _epoch_nanos(batch.column(spec.timestamp_column)), raw, dict(spec.features))


def _epoch_nanos(column: pa.Array) -> np.ndarray:
    """Event times as UTC epoch nanoseconds (a naive timestamp is taken as UTC, as Feast does)."""
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_timestamp(column.type):
        raise ConfigError(f"timestamp column has type {column.type}, not a timestamp")
    if column.null_count:
        raise ConfigError(f"timestamp column: {column.null_count} null event time(s)")
    nanos = column.cast(pa.timestamp("ns", tz=column.type.tz)).cast(pa.int64())
    return np.asarray(nanos.to_numpy(zero_copy_only=False), dtype=np.int64)


def _max_time(current: dt.datetime | None, column: pa.Array) -> dt.datetime | None:
    import pyarrow.compute as pc

    value = pc.max(column).as_py()
    if value is None:
        return current
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value if current is None or value > current else current


def _operation(snapshot: Any) -> str:
    summary = snapshot.summary
    operation = getattr(summary, "operation", None) if summary is not None else None
    return str(getattr(operation, "value", operation))


def _record_interval(store: Any, view_name: str, end: dt.datetime) -> None:
    """Extend the view's materialization intervals to ``end`` so Feast's own incremental continues after it.

    Best effort: a registry that cannot be written only loses this hint, never the materialization.
    """
    try:
        view = store.get_feature_view(view_name)
        start = view.most_recent_end_time or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.timezone.utc)
        if end > start:
            store.registry.apply_materialization(view, store.project, start, end)
    except Exception as exc:  # the registry is a hint here; the online store is already written
        log.warning("Could not record the materialization interval of %s in the Feast registry: %s", view_name, exc)


def serving_target(spec: FeatureViewSpec, location: StoreLocation) -> dict[str, Any]:
    """The serving-ledger entry of one view in one store (no secrets)."""
    return {"store": location.describe(), "project": spec.project, "feature_view": spec.name,
            "entity_columns": list(spec.entity_columns), "join_key_types": dict(spec.join_key_types),
            "features": list(spec.features)}


def serving_name(spec: FeatureViewSpec, location: StoreLocation) -> str:
    return f"{spec.project}/{spec.name}@{location.kind}"


def _record_target(catalog: CatalogConfig, table: str, spec: FeatureViewSpec, location: StoreLocation) -> None:
    from dativo_provider.ml.serving import record_serving_target

    record_serving_target(catalog, table, SERVING_KIND, serving_name(spec, location), serving_target(spec, location))


def _target_writer(target: Mapping[str, Any], password: str | None) -> OnlineWriter:
    location = StoreLocation.from_dict(target["store"])
    return open_writer(location, str(target["project"]), str(target["feature_view"]), password=password,
                       features=list(target.get("features") or ()))


def _encoded_keys(target: Mapping[str, Any], keys: Sequence[tuple[Any, ...]]) -> list[bytes]:
    import pyarrow as pa

    from dativo_provider.ml.feast_encoding import encode_entity_keys

    columns = list(target["entity_columns"])
    types = dict(target["join_key_types"])
    if any(len(key) != len(columns) for key in keys):
        raise ConfigError(f"entity keys must be tuples of {len(columns)} value(s): {columns}")
    arrays = {name: pa.array([key[index] for key in keys]) for index, name in enumerate(columns)}
    return encode_entity_keys(arrays, types).to_pylist()


def delete_entities(target: Mapping[str, Any], keys: Sequence[tuple[Any, ...]], *,
                    password: str | None = None) -> int:
    """Remove every feature of these entities from a recorded Feast target; return how many were there.

    :param target: one entry of :func:`~dativo_provider.ml.serving.serving_targets` of kind ``feast``.
    :param keys: entity key tuples, in the order of ``target["entity_columns"]``.
    :param password: the store's password, resolved by the caller from ``target["store"]["conn_id"]``.
    """
    if not keys:
        return 0
    writer = _target_writer(target, password)
    try:
        return writer.delete(_encoded_keys(target, keys))
    finally:
        writer.close()


def count_entities(target: Mapping[str, Any], keys: Sequence[tuple[Any, ...]], *,
                   password: str | None = None) -> int:
    """How many of these entities have values in a recorded Feast target."""
    if not keys:
        return 0
    writer = _target_writer(target, password)
    try:
        return writer.count(_encoded_keys(target, keys))
    finally:
        writer.close()
