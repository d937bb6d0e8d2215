"""Feast's offline store over our Iceberg tables: ``get_historical_features`` at pinned snapshots.

Feast 0.67 has no Iceberg offline store: its contrib ``IcebergSource`` reads the current snapshot only,
through the DuckDB offline store, which needs ``ibis`` (not installed with our ``ml`` extra). This
module adds two Feast plug-ins, found by Feast through their class paths:

- :class:`DativoIcebergSource`, a Feast ``DataSource`` naming an Iceberg table (``namespace.table``),
  its event-time column and, optionally, a pin: a snapshot id or a ref (tag or branch, e.g. a training
  set's ``dativo-training/<name>/<run>``);
- :class:`DativoIcebergOfflineStore` (config :class:`DativoIcebergOfflineStoreConfig`): the point-in-time
  join in DuckDB, the same ``ASOF LEFT JOIN`` our training sets use
  (:mod:`dativo_provider.ml.training_join`). A source is read through pyiceberg's scan at its snapshot,
  which applies the snapshot's delete files (and a copy-on-write merge's replaced files are not in the
  snapshot at all); only the columns the requested views use are read, and only rows whose event time
  can match an entity row (at or before the latest event time, and no older than the earliest event
  time minus the views' TTL). ``pull_latest_from_table_or_query`` and ``pull_all_from_table_or_query``
  work too, so ``feast materialize`` reads Iceberg through this store.

The catalog (its properties may hold credentials) lives in the offline store config, built in code or
read from ``feature_store.yaml``, never in the registry. The config's ``snapshots`` maps tables to a
snapshot id or ref, overriding the sources' pins for every retrieval through that store.

Semantics against our training sets: the same as-of rule (feature time <= event time, newest such row,
null when it is older than the TTL, the bound inclusive). Against Feast's other offline stores: two
feature rows with one entity and time are refused unless the source has a ``created_timestamp_column``
(then the latest created wins, as in Feast), where Feast would take either; rows come back in the entity
frame's order (Feast promises no order); a TTL of 0 means no limit, as in Feast; the entity rows must be
a pandas DataFrame (no SQL entity query).

Importing this module imports Feast (about 4 s): only :mod:`dativo_provider.ml.feast_registry` and
Feast itself import it, when they need it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.offline_store import OfflineStore, RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.value_type import ValueType
from pydantic import StrictStr

from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.ml.transform import connect_duckdb, to_arrow_table
from dativo_provider.quality.rows import quote_identifier

log = logging.getLogger(__name__)

#: The offline store's ``type`` in a RepoConfig or ``feature_store.yaml``.
OFFLINE_STORE_TYPE = "dativo_provider.ml.feast_offline.DativoIcebergOfflineStore"
_SOURCE_CLASS = "dativo_provider.ml.feast_offline.DativoIcebergSource"


class DativoIcebergSource(DataSource):
    """A Feast data source over an Iceberg table of the offline store's catalog.

    :param table: ``namespace.table``.
    :param timestamp_field: the column holding the time a row's values became true.
    :param snapshot_id: read this snapshot (else ``ref``, else main's head at retrieval time).
    :param ref: read the snapshot this tag or branch points to at retrieval time.
    :param name: unique in the project; default ``table`` (``table@pin`` when pinned).
    """

    def __init__(self, *, table: str, timestamp_field: str, snapshot_id: int | None = None,
                 ref: str | None = None, name: str | None = None, created_timestamp_column: str = "",
                 field_mapping: dict[str, str] | None = None, description: str = "",
                 tags: dict[str, str] | None = None, owner: str = ""):
        if snapshot_id is not None and ref:
            raise ConfigError(f"Iceberg source {table}: give snapshot_id or ref, not both")
        self.table = table
        self.snapshot_id = snapshot_id
        self.ref = ref or None
        pin = str(snapshot_id) if snapshot_id is not None else ref
        super().__init__(name=name or (f"{table}@{pin}" if pin else table), timestamp_field=timestamp_field,
                         created_timestamp_column=created_timestamp_column, field_mapping=field_mapping,
                         description=description, tags=tags, owner=owner)

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    def __hash__(self) -> int:
        return super().__hash__()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DativoIcebergSource) and super().__eq__(other)
                and (self.table, self.snapshot_id, self.ref) == (other.table, other.snapshot_id, other.ref))

    def _options(self) -> dict[str, Any]:
        snapshot = None if self.snapshot_id is None else str(self.snapshot_id)
        return {"table": self.table, "snapshot_id": snapshot,
                "ref": self.ref}

    def _to_proto_impl(self) -> DataSourceProto:
        proto = DataSourceProto(
            name=self.name, type=DataSourceProto.CUSTOM_SOURCE, data_source_class_type=_SOURCE_CLASS,
            field_mapping=self.field_mapping, description=self.description, tags=self.tags, owner=self.owner,
            custom_options=DataSourceProto.CustomSourceOptions(
                configuration=json.dumps(self._options(), sort_keys=True).encode()))
        proto.timestamp_field = self.timestamp_field
        proto.created_timestamp_column = self.created_timestamp_column
        return proto

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DativoIcebergSource:
        options = json.loads(data_source.custom_options.configuration)
        snapshot = options.get("snapshot_id")
        return DativoIcebergSource(
            name=data_source.name, table=options["table"], timestamp_field=data_source.timestamp_field,
            snapshot_id=int(snapshot) if snapshot is not None else None, ref=options.get("ref"),
            created_timestamp_column=data_source.created_timestamp_column,
            field_mapping=dict(data_source.field_mapping), description=data_source.description,
            tags=dict(data_source.tags), owner=data_source.owner)

    def validate(self, config: RepoConfig) -> None:
        _catalog_of(config).load().load_table(self.table)

    @staticmethod
    def source_datatype_to_feast_value_type() -> Callable[[str], ValueType]:
        from dativo_provider.ml.feast_types import value_type_of_iceberg_name

        return value_type_of_iceberg_name

    def get_table_column_names_and_types(self, config: RepoConfig) -> Iterable[tuple[str, str]]:
        table = _catalog_of(config).load().load_table(self.table)
        return [(field.name, str(field.field_type)) for field in table.schema().fields]

    def get_table_query_string(self) -> str:
        return self.table



class DativoIcebergOfflineStoreConfig(FeastConfigBaseModel):
    """The offline store's settings (``offline_store:`` in a RepoConfig or ``feature_store.yaml``).

    :param catalog_name: the pyiceberg catalog name.
    :param catalog_properties: pyiceberg catalog properties (``type``, ``uri``, ``warehouse`` ...).
    :param snapshots: ``namespace.table`` -> snapshot id or ref name, overriding the sources' pins.
    """

    type: StrictStr = OFFLINE_STORE_TYPE
    catalog_name: StrictStr = "dativo"
    catalog_properties: dict[str, str] = {}
    snapshots: dict[str, str] = {}


class DativoIcebergOfflineStore(OfflineStore):
    """Feast offline store reading :class:`DativoIcebergSource` tables at their snapshot (module doc)."""

    @staticmethod
    def get_historical_features(config: RepoConfig, feature_views: list[FeatureView], feature_refs: list[str],
                                entity_df: pd.DataFrame | str, registry: BaseRegistry, project: str,
                                full_feature_names: bool = False) -> RetrievalJob:
        if not isinstance(entity_df, pd.DataFrame):
            raise ConfigError("get_historical_features over Iceberg takes the entity rows as a pandas "
                              "DataFrame; a SQL entity query is not supported by this offline store")
        from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df

        event_column = infer_event_timestamp_from_entity_df(
            dict(zip(entity_df.columns, entity_df.dtypes, strict=True)))
        times = pd.to_datetime(entity_df[event_column], utc=True)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        metadata = RetrievalMetadata(
            features=feature_refs, keys=[c for c in entity_df.columns if c != event_column],
            min_event_timestamp=times.min().to_pydatetime() if len(times) else None,
            max_event_timestamp=times.max().to_pydatetime() if len(times) else None)

        def run() -> pa.Table:
            return historical_rows(config, feature_views, feature_refs, entity_df, event_column,
                                   full_feature_names)

        return ArrowRetrievalJob(run, full_feature_names, odfvs, metadata)

    @staticmethod
    def pull_latest_from_table_or_query(config: RepoConfig, data_source: DataSource,
                                        join_key_columns: list[str], feature_name_columns: list[str],
                                        timestamp_field: str, created_timestamp_column: str | None,
                                        start_date: dt.datetime,
                                        end_date: dt.datetime) -> RetrievalJob:
        def run() -> pa.Table:
            return _pull(config, data_source, join_key_columns, feature_name_columns, timestamp_field,
                         created_timestamp_column, start_date, end_date, latest_only=True)

        return ArrowRetrievalJob(run)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source: DataSource, join_key_columns: list[str],
                                     feature_name_columns: list[str], timestamp_field: str,
                                     created_timestamp_column: str | None = None,
                                     start_date: dt.datetime | None = None,
                                     end_date: dt.datetime | None = None) -> RetrievalJob:
        def run() -> pa.Table:
            return _pull(config, data_source, join_key_columns, feature_name_columns, timestamp_field,
                         created_timestamp_column, start_date, end_date, latest_only=False)

        return ArrowRetrievalJob(run)


class ArrowRetrievalJob(RetrievalJob):
    """A retrieval that runs when its rows are asked for (``to_arrow``/``to_df``), once."""

    def __init__(self, run: Callable[[], pa.Table], full_feature_names: bool = False,
                 on_demand_feature_views: list[OnDemandFeatureView] | None = None,
                 metadata: RetrievalMetadata | None = None):
        self._run = run
        self._rows: pa.Table | None = None
        self._full_feature_names = full_feature_names
        self._odfvs = on_demand_feature_views or []
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        if self._rows is None:
            self._rows = self._run()
        return self._rows

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def persist(self, storage: Any, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        raise ConfigError("saving a Feast dataset is not supported over Iceberg: write a training set "
                          "instead (TrainingSetOperator), which pins and records its inputs")


# -- the point-in-time join ---------------------------------------------------------------------------

_ROW = "__dativo_row"
_TIME = "__dativo_time"


def historical_rows(config: RepoConfig, feature_views: Sequence[FeatureView], feature_refs: Sequence[str],
                    entity_df: pd.DataFrame, event_column: str, full_feature_names: bool = False) -> pa.Table:
    """The entity rows, each with every requested feature as of its event time (the module doc's rules),
    in the entity frame's order.

    :raises ConfigError: a view whose source is not an Iceberg source, a column missing at the snapshot.
    :raises SourceError: a feature table with two rows for one entity and time (and no created time).
    """
    entities = pa.Table.from_pandas(entity_df, preserve_index=False)
    entities = entities.append_column(_ROW, pa.array(range(entities.num_rows), pa.int64()))
    times = pd.to_datetime(entity_df[event_column], utc=True)
    first, last = (times.min().to_pydatetime(), times.max().to_pydatetime()) if len(times) else (None, None)
    connection = connect_duckdb()
    try:
        connection.register("dativo_entities", entities)
        connection.execute(f"CREATE TEMP TABLE entities AS SELECT *, CAST({_quote(event_column)} AS "
                           f"TIMESTAMPTZ) AS {_TIME} FROM dativo_entities").fetchall()
        connection.unregister("dativo_entities")
        selected = [f"e.{_quote(c)}" for c in entity_df.columns]
        joins = []
        for number, view in enumerate(feature_views):
            names = _requested(view, feature_refs)
            if not names:
                continue
            source = _iceberg_source(view)
            earliest = first - view.ttl if view.ttl and first is not None else None
            mapping = {feature: column for column, feature in source.field_mapping.items()}
            keys = view.projection.join_key_map or {k: k for k in view.join_keys}
            columns = [*(mapping.get(k, k) for k in keys), *(mapping.get(n, n) for n in names)]
            rows = read_source(config, source, [*columns, source.timestamp_field,
                                                *([source.created_timestamp_column]
                                                  if source.created_timestamp_column else [])],
                               earliest, last)
            alias = f"f{number}"
            _stage(connection, rows, alias, source, [mapping.get(k, k) for k in keys])
            on = " AND ".join(f"e.{_quote(entity)} = {alias}.{_quote(mapping.get(key, key))}"
                              for key, entity in keys.items())
            joins.append(f"ASOF LEFT JOIN {alias} ON {on} AND e.{_TIME} >= {alias}.{_TIME}")
            fresh = (f"{alias}.{_TIME} >= e.{_TIME} - to_microseconds({_micros(view.ttl)}::BIGINT)"
                     if view.ttl else None)
            prefix = view.projection.name_alias or view.name
            for name in names:
                value = f"{alias}.{_quote(mapping.get(name, name))}"
                label = _quote(f"{prefix}__{name}" if full_feature_names else name)
                selected.append(f"CASE WHEN {fresh} THEN {value} END AS {label}" if fresh
                                else f"{value} AS {label}")
        sql = f"SELECT {', '.join(selected)} FROM entities e {' '.join(joins)} ORDER BY e.{_ROW}"
        return to_arrow_table(connection.sql(sql))
    finally:
        connection.close()


def _requested(view: FeatureView, feature_refs: Sequence[str]) -> list[str]:
    prefix = f"{view.projection.name_to_use()}:"
    return [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(prefix)]


def _iceberg_source(view: FeatureView) -> DativoIcebergSource:
    if not isinstance(view.batch_source, DativoIcebergSource):
        raise ConfigError(f"feature view {view.name}: its source {type(view.batch_source).__name__} is "
                          "not an Iceberg source; this offline store reads DativoIcebergSource only "
                          "(build views with dativo_provider.ml.feast_registry)")
    return view.batch_source


def _stage(connection: Any, rows: pa.Table, name: str, source: DativoIcebergSource, keys: list[str]) -> None:
    """Copy ``rows`` into the DuckDB table ``name`` with their time as ``__dativo_time``; one row per key
    and time (the latest created, when the source has a created-time column; else refuse duplicates)."""
    connection.register("dativo_feature_rows", rows)
    try:
        connection.execute(f"CREATE TEMP TABLE {name} AS SELECT *, CAST({_quote(source.timestamp_field)} AS "
                           f"TIMESTAMPTZ) AS {_TIME} FROM dativo_feature_rows").fetchall()
    finally:
        connection.unregister("dativo_feature_rows")
    group = ", ".join([*(_quote(k) for k in keys), _TIME])
    if source.created_timestamp_column:
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name} QUALIFY "
                           f"row_number() OVER (PARTITION BY {group} ORDER BY "
                           f"{_quote(source.created_timestamp_column)} DESC NULLS LAST) = 1").fetchall()
        return
    duplicate = connection.execute(f"SELECT {group}, count(*) FROM {name} WHERE {_TIME} IS NOT NULL "
                                   f"GROUP BY {group} HAVING count(*) > 1 LIMIT 1").fetchone()
    if duplicate is not None:
        example = dict(zip([*keys, source.timestamp_field], duplicate[:-1], strict=True))
        raise SourceError(f"{source.table} holds {duplicate[-1]} rows for {example}: one row per entity and "
                          "time is needed (or a created_timestamp_column to choose), else either could be "
                          "served")


def _pull(config: RepoConfig, data_source: DataSource, keys: list[str], features: list[str], time: str,
          created: str | None, start: dt.datetime | None, end: dt.datetime | None, latest_only: bool
          ) -> pa.Table:
    """The rows of ``data_source`` with time in [start, end]; with ``latest_only`` the newest per key."""
    if not isinstance(data_source, DativoIcebergSource):
        raise ConfigError(f"source {data_source.name} is not an Iceberg source; this offline store reads "
                          "DativoIcebergSource only")
    columns = [*keys, *features, time, *([created] if created else [])]
    rows = read_source(config, data_source, columns, start, end)
    if not latest_only or not keys:
        return rows
    order = f"{_quote(time)} DESC" + (f", {_quote(created)} DESC" if created else "")
    connection = connect_duckdb()
    try:
        connection.register("dativo_rows", rows)
        return to_arrow_table(connection.sql(
            f"SELECT {', '.join(_quote(c) for c in columns)} FROM dativo_rows QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(_quote(k) for k in keys)} ORDER BY {order}) = 1"))
    finally:
        connection.close()


def _micros(ttl: dt.timedelta) -> int:
    return ttl // dt.timedelta(microseconds=1)


def _quote(identifier: str) -> str:
    return quote_identifier(identifier, "duckdb")


# -- reading a source at its snapshot -----------------------------------------------------------------

def read_source(config: RepoConfig, source: DativoIcebergSource, columns: Iterable[str] | None = None,
                earliest: dt.datetime | None = None, latest: dt.datetime | None = None) -> pa.Table:
    """The source's rows at its snapshot (the config's ``snapshots`` first, then the source's pin, then
    main's head), delete files applied; only ``columns`` (all when None) and event times within
    ``[earliest, latest]`` (either bound optional).

    :raises ConfigError: no such table, snapshot or ref, or a named column missing at that snapshot.
    """
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, LessThanOrEqual

    catalog = _catalog_of(config).load()
    try:
        table = catalog.load_table(source.table)
    except NoSuchTableError:
        raise ConfigError(f"Feast source {source.name}: no table {source.table} in catalog "
                          f"{catalog.name!r}") from None
    snapshot_id = _snapshot_of(table, source, config.offline_store.snapshots.get(source.table))
    schema = table.metadata.schema_by_id(table.metadata.snapshot_by_id(snapshot_id).schema_id or 0) \
        or table.schema()
    names = schema.column_names
    selected = list(dict.fromkeys(columns)) if columns else list(names)
    missing = [c for c in selected if c not in names]
    if missing:
        raise ConfigError(f"Feast source {source.name}: {source.table} at snapshot {snapshot_id} has no "
                          f"column(s) {missing}; it has {sorted(names)}")
    time = source.timestamp_field
    row_filter: Any = AlwaysTrue()
    if latest is not None:
        row_filter = And(row_filter, LessThanOrEqual(time, _literal(latest, schema.find_type(time))))
    if earliest is not None:
        row_filter = And(row_filter, GreaterThanOrEqual(time, _literal(earliest, schema.find_type(time))))
    scan = table.scan(snapshot_id=snapshot_id, row_filter=row_filter, selected_fields=tuple(selected))
    rows = scan.to_arrow()
    log.info("Feast source %s: read %d rows of %s at snapshot %d", source.name, rows.num_rows, source.table,
             snapshot_id)
    return rows


def _snapshot_of(table: Any, source: DativoIcebergSource, override: str | None) -> int:
    pin: str | int | None = override if override else (source.snapshot_id if source.snapshot_id is not None
                                                         else source.ref)
    if pin is None or pin == "main":
        head = table.metadata.snapshot_by_name("main")
        if head is None:
            raise ConfigError(f"Feast source {source.name}: {source.table} has no snapshot yet")
        return int(head.snapshot_id)
    if isinstance(pin, int) or str(pin).isdigit():
        if table.metadata.snapshot_by_id(int(pin)) is None:
            raise ConfigError(f"Feast source {source.name}: {source.table} has no snapshot {pin}")
        return int(pin)
    ref = table.metadata.refs.get(str(pin))
    if ref is None:
        raise ConfigError(f"Feast source {source.name}: {source.table} has no tag or branch {pin!r}; it has "
                          f"{sorted(table.metadata.refs)}")
    return int(ref.snapshot_id)


def _catalog_of(config: RepoConfig) -> Any:
    from dativo_provider.iceberg.catalog import CatalogConfig

    store = config.offline_store
    if not isinstance(store, DativoIcebergOfflineStoreConfig):
        raise ConfigError(f"an Iceberg source needs offline_store type {OFFLINE_STORE_TYPE!r}; this feature "
                          f"store's is {getattr(store, 'type', store)!r}")
    if not store.catalog_properties:
        raise ConfigError("offline_store.catalog_properties is empty: give the Iceberg catalog's "
                          "properties (type, uri, warehouse ...)")
    return CatalogConfig(store.catalog_name, dict(store.catalog_properties))


def _refuse_write(table: Any, data_source: DataSource, repo_path: str, *args: Any, **kwargs: Any) -> None:
    raise ConfigError(f"Feast cannot write to {data_source.name} through this offline store: Iceberg tables "
                      "are written by the ingest path (IcebergIngestOperator, FeatureTransformOperator)")


def _literal(moment: dt.datetime, column_type: Any) -> str:
    """``moment`` as pyiceberg compares it with a ``column_type`` column (UTC; zoned for timestamptz)."""
    from pyiceberg.types import TimestamptzType

    utc = (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
    if isinstance(column_type, TimestamptzType):
        return utc.isoformat()
    return utc.replace(tzinfo=None).isoformat()


def snapshots_of_training_set(manifest: Any) -> dict[str, str]:
    """``table -> ref`` of a training set's inputs (its :class:`TrainingSetManifest`), for the offline
    store's ``snapshots``: a retrieval through it reads exactly what the training set read (and, after an
    erasure, the pins' erased state, as the set's rebuild does)."""
    return {item.table: item.ref or str(item.snapshot_id) for item in manifest.inputs}
