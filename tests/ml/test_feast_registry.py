"""Feast definitions from contracts, applied to a real Feast registry (file registry, SQLite online store)
over Iceberg tables on a SQLite catalog: fields, types, TTL, online flag and tags as registered; a
re-apply with no change writes nothing; an existing feature repo works the same way."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ml.feast_registry import (
    TAG_CONTRACT,
    TAG_DATASET,
    TAG_TABLE,
    FeastFeatureTable,
    apply_features,
    definitions_for,
    feast_definitions,
    feature_store,
)
from dativo_provider.ml.training_set import FeatureTable
from tests.ml.test_training_set import CONTRACT, load, sample

UTC = dt.timezone.utc


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def contract_view() -> FeastFeatureTable:
    return FeastFeatureTable.from_contract(str(CONTRACT), table="ml.customer_features")


def store_at(tmp_path, catalog=None, **kwargs):
    kwargs.setdefault("online_store", str(tmp_path / "online.db"))
    return feature_store(project="shop", registry=str(tmp_path / "registry.db"), catalog=catalog, **kwargs)


def test_apply_registers_the_contracts_view_with_its_types_ttl_and_tags(catalog, tmp_path):
    load(catalog, sample())
    result = apply_features(store_at(tmp_path, catalog), definitions_for(catalog, [contract_view()]))
    assert (result.created, result.updated, result.unchanged) == (
        ("customer_id", "customer_features"), (), ())
    # A second store on the same registry file reads what the first wrote.
    store = store_at(tmp_path, catalog)
    assert [v.name for v in store.list_feature_views()] == ["customer_features"]
    view = store.get_feature_view("customer_features")
    assert [(f.name, str(f.dtype)) for f in view.features] == [
        ("orders_30d", "Int64"), ("spend_30d", "Float64"), ("days_since_last_order", "Int64")]
    assert [(c.name, str(c.dtype)) for c in view.entity_columns] == [("customer_id", "Int64")]
    assert view.ttl == dt.timedelta(days=2) and view.online is True
    assert view.tags == {TAG_TABLE: "ml.customer_features", TAG_CONTRACT: str(CONTRACT),
                         TAG_DATASET: "customer_features"}
    source = view.batch_source
    assert (source.table, source.timestamp_field) == ("ml.customer_features", "feature_ts")
    entity = store.get_entity("customer_id")
    assert (entity.join_key, entity.value_type.name) == ("customer_id", "INT64")


def test_reapplying_unchanged_definitions_writes_nothing_and_a_change_updates_only_it(catalog, tmp_path):
    load(catalog, sample())
    segments = FeastFeatureTable(FeatureTable("ml.segments", ("customer_id",), "segment_ts", ("segment",)))
    apply_features(store_at(tmp_path, catalog), definitions_for(catalog, [contract_view(), segments]))
    registry = (tmp_path / "registry.db").read_bytes()
    again = apply_features(store_at(tmp_path, catalog), definitions_for(catalog, [contract_view(), segments]))
    assert not again.changed and set(again.unchanged) == {"customer_id", "customer_features", "segments"}
    assert (tmp_path / "registry.db").read_bytes() == registry
    longer = FeastFeatureTable(FeatureTable("ml.segments", ("customer_id",), "segment_ts", ("segment",),
                                            dt.timedelta(days=9)))
    changed = apply_features(store_at(tmp_path, catalog), definitions_for(catalog, [contract_view(), longer]))
    assert (changed.created, changed.updated) == ((), ("segments",))
    store = store_at(tmp_path, catalog)
    assert store.get_feature_view("segments").ttl == dt.timedelta(days=9)
    assert store.get_feature_view("customer_features").ttl == dt.timedelta(days=2)


def test_iceberg_types_map_to_feast_types(catalog):
    rows = pa.table({"user": pa.array(["u1"]), "ts": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)]),
                     "small": pa.array([1], pa.int32()), "ratio": pa.array([0.5], pa.float32()),
                     "flag": pa.array([True]), "blob": pa.array([b"x"]),
                     "price": pa.array([Decimal("1.25")], pa.decimal128(10, 2)),
                     "day": pa.array([dt.date(2024, 1, 1)]), "seen": pa.array([[1, 2]], pa.list_(pa.int64())),
                     "attrs": pa.array([{"a": "b"}], pa.map_(pa.string(), pa.string()))})
    iceberg = catalog.load()
    iceberg.create_namespace_if_not_exists("ml")
    schema = iceberg.create_table("ml.typed", rows.schema).schema()
    columns = ("small", "ratio", "flag", "blob", "price", "day", "seen")
    view = feast_definitions(FeatureTable("ml.typed", ("user",), "ts", columns), schema).view
    assert {f.name: str(f.dtype) for f in view.features} == {
        "small": "Int32", "ratio": "Float32", "flag": "Bool", "blob": "Bytes", "price": "Decimal",
        "day": "UnixTimestamp", "seen": "Array(Int64)"}
    assert view.name == "typed" and view.ttl == dt.timedelta(0)  # no TTL: Feast's "no limit"
    assert feast_definitions(FeatureTable("ml.typed", ("user",), "ts", ("small",)), schema).entities[0] \
        .value_type.name == "STRING"
    with pytest.raises(ConfigError, match=r"ml.typed.attrs: Iceberg type map<string, string> has no Feast"):
        feast_definitions(FeatureTable("ml.typed", ("user",), "ts", ("attrs",)), schema)
    with pytest.raises(ConfigError, match=r"ml.typed has no column\(s\) \['nope'\]"):
        feast_definitions(FeatureTable("ml.typed", ("user",), "ts", ("nope",)), schema)


def test_a_table_not_loaded_yet_is_typed_from_the_contract(catalog):
    definitions = definitions_for(catalog, [contract_view()])[0]
    assert {f.name: str(f.dtype) for f in definitions.view.features} == {
        "orders_30d": "Int64", "spend_30d": "Float64", "days_since_last_order": "Int64"}
    assert definitions.entities[0].value_type.name == "INT64"


def test_entity_key_types_must_agree_across_views(catalog, tmp_path):
    load(catalog, sample())
    iceberg = catalog.load()
    text_keys = pa.schema([("customer_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                           ("x", pa.int64())])
    iceberg.create_table("ml.text_keys", text_keys)
    clash = FeastFeatureTable(FeatureTable("ml.text_keys", ("customer_id",), "ts", ("x",)))
    with pytest.raises(ConfigError, match="customer_id: INT64 in one feature view, STRING in text_keys"):
        apply_features(store_at(tmp_path, catalog), definitions_for(catalog, [contract_view(), clash]))


def test_an_existing_feature_repo_works_the_same(catalog, tmp_path):
    load(catalog, sample())
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: shop
        provider: local
        registry: {tmp_path / 'repo-registry.db'}
        online_store: {{type: sqlite, path: {tmp_path / 'repo-online.db'}}}
        offline_store:
          type: dativo_provider.ml.feast_offline.DativoIcebergOfflineStore
          catalog_name: {catalog.name}
          catalog_properties: {{type: sql, uri: "{catalog.properties['uri']}",
                                warehouse: "{catalog.properties['warehouse']}"}}
        entity_key_serialization_version: 3
        """))
    store = feature_store(repo_path=str(repo))
    assert apply_features(store, definitions_for(catalog, [contract_view()])).created == (
        "customer_id", "customer_features")
    labels = catalog.load().load_table("ml.labels").scan().to_pandas().head(3)
    got = store.get_historical_features(entity_df=labels, features=["customer_features:spend_30d"]).to_arrow()
    assert got.num_rows == 3 and got.column_names == ["customer_id", "event_ts", "churned", "spend_30d"]
    full = store.get_historical_features(entity_df=labels, features=["customer_features:spend_30d"],
                                         full_feature_names=True).to_arrow()
    assert full.column("customer_features__spend_30d").to_pylist() == got.column("spend_30d").to_pylist()
    with pytest.raises(ConfigError, match="leave project, registry, online_store"):
        feature_store(repo_path=str(repo), project="other")


def test_online_store_configs_reach_feast(tmp_path):
    redis = store_at(tmp_path, online_store={"type": "redis", "connection_string": "127.0.0.1:6379"})
    assert (redis.config.online_store.type, redis.config.online_store.connection_string) == (
        "redis", "127.0.0.1:6379")
    postgres = store_at(tmp_path, online_store={"type": "postgres", "host": "127.0.0.1", "database": "test",
                                                "user": "postgres", "password": "", "sslmode": "disable"})
    online = postgres.config.online_store
    assert (online.host, online.db_schema) == ("127.0.0.1", "public")
    assert store_at(tmp_path).config.entity_key_serialization_version == 3
    with pytest.raises(ConfigError, match="say which store with 'type'"):
        store_at(tmp_path, online_store={"path": "x.db"})
