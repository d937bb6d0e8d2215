"""Feast definitions from our contracts and feature tables, applied to a Feast registry in code.

The API (stable; :mod:`dativo_provider.ml.feast_online` builds on it):

- :class:`FeastFeatureTable`: a feature table as Feast sees it (the :class:`FeatureTable`, the view's
  name, online flag, the contract it came from); :meth:`FeastFeatureTable.from_contract` reads a
  contract dataset's ``dativoFeatures``;
- :func:`feast_definitions`: its Feast ``Entity`` objects and ``FeatureView`` (schema typed from the
  Iceberg table's schema, else from the contract's logical types), over a
  :class:`~dativo_provider.ml.feast_offline.DativoIcebergSource`;
- :func:`feature_store`: a ``FeatureStore`` from a RepoConfig built in code (no feature repo), or from
  an existing repo (``repo_path``);
- :func:`apply_features`: applies the definitions, idempotently: an unchanged definition is not
  written again, and with nothing changed the registry is not touched at all.
- :func:`definitions_for` (definitions typed by each table's current schema) and
  :func:`offline_store_config` (the RepoConfig ``offline_store`` reading a catalog); the type mapping
  (``feast_type_of``, ``value_type_of``) lives in :mod:`dativo_provider.ml.feast_types`.

Feast is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.ml.feast_types import feast_type_of, parse_iceberg_type, value_type_of
from dativo_provider.ml.training_set import FeatureTable

if TYPE_CHECKING:
    from feast import Entity, FeatureStore, FeatureView
    from pyiceberg.schema import Schema
    from pyiceberg.types import IcebergType

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: Tags every feature view built here carries.
TAG_TABLE = "dativo.iceberg_table"
TAG_CONTRACT = "dativo.contract"
TAG_DATASET = "dativo.contract_dataset"

# ODCS logical types -> Iceberg type names, for a table that does not exist yet.
_LOGICAL = {"integer": "long", "number": "double", "string": "string", "boolean": "boolean",
            "timestamp": "timestamptz", "date": "date"}


@dataclass(frozen=True)
class FeastFeatureTable:
    """A feature table as a Feast feature view.

    :param feature_table: the table, entities, timestamp column, features and TTL.
    :param name: the feature view's name (default: the contract dataset's name, else the table's name).
    :param online: whether Feast serves the view online.
    :param contract: the contract file it was declared in, if any (a tag on the view).
    :param dataset: the contract dataset's name, if any.
    :param logical_types: column -> ODCS logical type, used when the Iceberg table does not exist yet.
    """

    feature_table: FeatureTable
    name: str = ""
    online: bool = True
    contract: str | None = None
    dataset: str | None = None
    logical_types: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.dataset or self.feature_table.table.rsplit(".", 1)[-1])

    @classmethod
    def from_contract(cls, path: str, dataset: str | None = None, *, table: str | None = None,
                      name: str | None = None) -> FeastFeatureTable:
        """The feature view a contract dataset declares with ``dativoFeatures``.

        :param table: overrides the dataset's ``physicalName``.
        :param name: the view's name; default the dataset's name.
        """
        from dativo_provider.contracts import load_contract
        from dativo_provider.quality.plan import dataset_of

        chosen = dataset_of(load_contract(path), dataset)
        features = FeatureTable.from_contract(path, chosen.name, table=table)
        online = chosen.features.online if chosen.features is not None else False
        types = {c.name: c.logical_type for c in chosen.columns if c.logical_type}
        return cls(features, name or chosen.name, online, str(path), chosen.name, types)


@dataclass(frozen=True)
class FeastDefinitions:
    """The Feast objects of one feature table: its entities (one per key column) and its view."""

    entities: tuple[Entity, ...]
    view: FeatureView

    @property
    def objects(self) -> list[Any]:
        return [*self.entities, self.view]


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_features` did, by object name."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def to_dict(self) -> dict[str, list[str]]:
        return {"created": list(self.created), "updated": list(self.updated),
                "unchanged": list(self.unchanged)}


def feast_definitions(spec: FeastFeatureTable | FeatureTable, schema: Schema | None = None, *,
                      snapshot_id: int | None = None, ref: str | None = None) -> FeastDefinitions:
    """The entities and feature view of ``spec``; types from ``schema`` (the Iceberg table's), else from
    the contract's logical types.

    :param snapshot_id: pin the view's source to this snapshot (else ``ref``, else main's head).
    :param ref: pin the view's source to this tag or branch.
    :raises ConfigError: a column missing from the schema, or of a type Feast cannot hold.
    """
    from feast import Entity, FeatureView, Field

    from dativo_provider.ml.feast_offline import DativoIcebergSource

    spec = spec if isinstance(spec, FeastFeatureTable) else FeastFeatureTable(spec)
    table = spec.feature_table
    types = _column_types(spec, schema)
    entities = tuple(Entity(name=key, join_keys=[key],
                            value_type=value_type_of(types[key], f"{table.table}.{key}"))
                     for key in table.entities)
    tags = {TAG_TABLE: table.table}
    if spec.contract:
        tags[TAG_CONTRACT] = spec.contract
    if spec.dataset:
        tags[TAG_DATASET] = spec.dataset
    source = DativoIcebergSource(table=table.table, timestamp_field=table.timestamp_column,
                                 snapshot_id=snapshot_id, ref=ref)
    fields = [Field(name=c, dtype=feast_type_of(types[c], f"{table.table}.{c}"))
              for c in [*table.entities, *table.features]]
    view = FeatureView(name=spec.name, entities=list(entities), schema=fields, source=source,
                       ttl=table.ttl or dt.timedelta(0), online=spec.online, tags=tags)
    return FeastDefinitions(entities, view)


def definitions_for(catalog: CatalogConfig, specs: Sequence[FeastFeatureTable | FeatureTable]
                    ) -> list[FeastDefinitions]:
    """:func:`feast_definitions` of each spec, typed by its Iceberg table's current schema (by the
    contract's logical types when the table does not exist yet)."""
    iceberg = catalog.load()
    found = []
    for spec in specs:
        name = spec.feature_table.table if isinstance(spec, FeastFeatureTable) else spec.table
        schema = iceberg.load_table(name).schema() if iceberg.table_exists(name) else None
        found.append(feast_definitions(spec, schema))
    return found


def feature_store(*, project: str = "", registry: str = "",
                  online_store: Mapping[str, Any] | str | None = None, catalog: CatalogConfig | None = None,
                  snapshots: Mapping[str, str | int] | None = None, repo_path: str | None = None
                  ) -> FeatureStore:
    """A Feast ``FeatureStore`` configured in code, or the existing repo at ``repo_path``.

    :param project: the Feast project name.
    :param registry: the registry: a file path (``.db``/``.pb``), or a SQL registry URL
        (``postgresql://...``, ``sqlite:///...``).
    :param online_store: a Feast online store config (``{"type": "redis", "connection_string":
        "127.0.0.1:6379"}``, ``{"type": "postgres", "host": ..., "database": ..., "user": ...,
        "password": ..., "sslmode": "disable"}``) or a path, meaning SQLite at that path.
    :param catalog: the Iceberg catalog the offline store reads (``get_historical_features``).
    :param snapshots: ``namespace.table`` -> snapshot id or ref, read instead of main's head.
    :param repo_path: an existing feature repo (its ``feature_store.yaml``); the other arguments must
        then be left out.
    """
    from feast import FeatureStore, RepoConfig

    if repo_path is not None:
        if project or registry or online_store or catalog or snapshots:
            raise ConfigError(f"feature_store(repo_path={repo_path!r}): the repo's feature_store.yaml "
                              "configures the store; leave project, registry, online_store, catalog and "
                              "snapshots out")
        return FeatureStore(repo_path=repo_path)
    if not project or not registry:
        raise ConfigError("feature_store: give project= and registry= (or repo_path= of an existing repo)")
    return FeatureStore(config=RepoConfig(
        project=project, provider="local", registry=_registry_config(registry),
        online_store=_online_store_config(online_store),
        offline_store=offline_store_config(catalog, snapshots),
        entity_key_serialization_version=3))


def offline_store_config(catalog: CatalogConfig | None, snapshots: Mapping[str, str | int] | None = None
                         ) -> dict[str, Any]:
    """The ``offline_store`` mapping of a RepoConfig reading ``catalog``'s Iceberg tables."""
    from dativo_provider.ml.feast_offline import OFFLINE_STORE_TYPE

    config: dict[str, Any] = {"type": OFFLINE_STORE_TYPE}
    if catalog is not None:
        config.update(catalog_name=catalog.name, catalog_properties=dict(catalog.properties))
    config["snapshots"] = {k: str(v) for k, v in (snapshots or {}).items()}
    return config


def apply_features(store: FeatureStore, definitions: Sequence[FeastDefinitions]) -> ApplyResult:
    """Apply entities and feature views that are new or differ from the registry's; nothing else.

    A view's comparison ignores what the registry adds (timestamps, materialization intervals,
    version number), so re-applying unchanged definitions writes nothing.

    :raises ConfigError: two definitions give one entity different key types.
    """
    entities = _unique_entities(definitions)
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    to_apply: list[Any] = []
    for entity in entities:
        _sort(_registered_entity(store, entity.name), entity, created, updated, unchanged, to_apply)
    for definition in definitions:
        existing = _registered_view(store, definition.view.name)
        _sort(existing, _as_registered(definition.view, existing), created, updated, unchanged, to_apply)
    if to_apply:
        store.apply(to_apply)
    log.info("Feast project %s: created %s, updated %s, unchanged %s", store.project, created, updated,
             unchanged)
    return ApplyResult(tuple(created), tuple(updated), tuple(unchanged))


def _column_types(spec: FeastFeatureTable, schema: Schema | None) -> dict[str, IcebergType]:
    table = spec.feature_table
    wanted = [*table.entities, *table.features]
    if schema is not None:
        present = {f.name: f.field_type for f in schema.fields}
        missing = [c for c in [*wanted, table.timestamp_column] if c not in present]
        if missing:
            raise ConfigError(f"feature view {spec.name}: {table.table} has no column(s) {missing}; it has "
                              f"{sorted(present)}")
        return {c: present[c] for c in wanted}
    untyped = [c for c in wanted if _LOGICAL.get(str(spec.logical_types.get(c, "")).lower()) is None]
    if untyped:
        raise ConfigError(f"feature view {spec.name}: {table.table} does not exist yet and the contract "
                          f"gives no usable logicalType for {untyped}; load the table first")
    return {c: parse_iceberg_type(_LOGICAL[str(spec.logical_types[c]).lower()]) for c in wanted}


def _unique_entities(definitions: Sequence[FeastDefinitions]) -> list[Entity]:
    chosen: dict[str, Entity] = {}
    for definition in definitions:
        for entity in definition.entities:
            seen = chosen.setdefault(entity.name, entity)
            if seen.value_type != entity.value_type:
                raise ConfigError(f"entity {entity.name}: {seen.value_type.name} in one feature view, "
                                  f"{entity.value_type.name} in {definition.view.name}; the key types "
                                  "must agree")
    return list(chosen.values())


def _registered_entity(store: FeatureStore, name: str) -> Any:
    from feast.errors import EntityNotFoundException

    try:
        return store.get_entity(name)
    except EntityNotFoundException:
        return None


def _registered_view(store: FeatureStore, name: str) -> Any:
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException:
        return None


def _as_registered(view: FeatureView, existing: FeatureView | None) -> FeatureView:
    """``view`` with what the registry adds copied from ``existing``, so equality compares definitions."""
    if existing is None:
        return view
    view.materialization_intervals = list(existing.materialization_intervals)
    view.created_timestamp = existing.created_timestamp
    view.current_version_number = existing.current_version_number
    return view


def _sort(existing: Any, wanted: Any, created: list[str], updated: list[str], unchanged: list[str],
          to_apply: list[Any]) -> None:
    if existing is None:
        created.append(wanted.name)
        to_apply.append(wanted)
    elif _same(existing, wanted):
        unchanged.append(wanted.name)
    else:
        updated.append(wanted.name)
        to_apply.append(wanted)


def _same(existing: Any, wanted: Any) -> bool:
    """Equal definitions, compared as the registry stores them: ``to_proto`` of each without the
    registry's bookkeeping (every ``meta`` message: timestamps, materialization intervals)."""
    left, right = existing.to_proto(), wanted.to_proto()
    _drop_meta(left)
    _drop_meta(right)
    return bool(left.SerializeToString(deterministic=True) == right.SerializeToString(deterministic=True))


def _drop_meta(message: Any) -> None:
    for descriptor, value in list(message.ListFields()):
        if descriptor.name == "meta":
            message.ClearField("meta")
        elif descriptor.message_type is not None and not descriptor.is_repeated:
            _drop_meta(value)


def _registry_config(registry: str) -> Any:
    """A file path is Feast's file registry; a SQLAlchemy URL its SQL registry."""
    if "://" in registry and not registry.startswith(("file://", "s3://", "gs://")):
        return {"registry_type": "sql", "path": registry}
    return registry


def _online_store_config(online_store: Mapping[str, Any] | str | None) -> Any:
    if online_store is None:
        return {"type": "sqlite"}
    if isinstance(online_store, str):
        return {"type": "sqlite", "path": online_store}
    if "type" not in online_store:
        raise ConfigError(f"online_store {sorted(online_store)}: say which store with 'type' (sqlite, redis, "
                          "postgres ...)")
    return dict(online_store)
