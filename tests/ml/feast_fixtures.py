"""A feature table in Iceberg, the same rows as Parquet for Feast's own ``materialize``, and Feast stores
over SQLite, Redis or Postgres (used by the tests and by ``bench/feast_materialize.py``)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
VIEW = "customer_stats"
#: Feature name -> (Arrow type, Feast type name): every scalar type the materializer encodes.
FEATURES = {"orders_30d": (pa.int64(), "Int64"), "spend_30d": (pa.float64(), "Float64"),
            "score": (pa.float32(), "Float32"), "visits": (pa.int32(), "Int32"),
            "segment": (pa.string(), "String"), "vip": (pa.bool_(), "Bool")}


def schema(features: dict[str, tuple[pa.DataType, str]] = FEATURES) -> pa.Schema:
    return pa.schema([pa.field("customer_id", pa.int64(), nullable=False), ("feature_ts", TS),
                      *[(name, kind) for name, (kind, _) in features.items()]])


def rows(entities: int, versions: int = 2, seed: int = 1, start: int = 0,
         features: dict[str, tuple[pa.DataType, str]] = FEATURES, day: float = 0.0, wide: bool = True) -> pa.Table:
    """``versions`` rows per entity at distinct times (whole seconds), random values, some nulls.

    :param wide: floats spread over 1e-6..1e17 (every text form of a number); else 0..300 or so.
    """
    rng = np.random.default_rng(seed)
    n = entities * versions
    ids = np.tile(np.arange(start, start + entities, dtype=np.int64), versions)
    seconds = rng.permutation(n).astype(np.int64) + int(day * 86400)
    stamps = pa.array((T0.timestamp() + seconds) * 1_000_000, pa.int64()).cast(TS)
    columns: dict[str, Any] = {"customer_id": ids, "feature_ts": stamps}
    for index, (name, (kind, _)) in enumerate(features.items()):
        mask = rng.random(n) < 0.05
        if pa.types.is_floating(kind):
            scale = 10.0 ** rng.integers(-6, 17, n) if wide else 1.0
            values = pa.array(rng.normal(100, 50, n) * scale, mask=mask).cast(kind)
        elif pa.types.is_integer(kind):
            values = pa.array(rng.integers(-2**30, 2**30, n) >> rng.integers(0, 30, n), mask=mask).cast(kind)
        elif pa.types.is_boolean(kind):
            values = pa.array(rng.random(n) < 0.5, mask=mask)
        else:
            values = pa.array([f"seg-{value}-é" * (value % 3) for value in rng.integers(0, 50, n)], mask=mask)
        columns[name] = values if index else pa.array(values.to_pylist(), kind)
    return pa.table(columns, schema=schema(features))


def feast_store(folder: Path, online: Any, parquet: Path, project: str | None = None,
                features: dict[str, tuple[pa.DataType, str]] = FEATURES) -> Any:
    """A Feast store (registry in ``folder``) with one view over ``parquet``, applied."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
    from feast import types as feast_types

    project = project or f"p{uuid.uuid4().hex[:10]}"
    entity = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    view = FeatureView(name=VIEW, entities=[entity], ttl=dt.timedelta(days=3650), online=True,
                       schema=[Field(name="customer_id", dtype=feast_types.Int64),
                               *[Field(name=name, dtype=getattr(feast_types, kind))
                                 for name, (_, kind) in features.items()]],
                       source=FileSource(path=str(parquet), timestamp_field="feature_ts"))
    config = RepoConfig(project=project, provider="local", registry=str(folder / f"{project}.db"),
                        online_store=online, entity_key_serialization_version=3)
    store = FeatureStore(config=config)
    store.apply([entity, view])
    return store


def write_parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def sqlite_online(path: Path) -> Any:
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    return SqliteOnlineStoreConfig(path=str(path))


def redis_online(db: int = 0) -> Any:
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    return RedisOnlineStoreConfig(connection_string=f"127.0.0.1:6379,db={db}")


def postgres_online(schema_name: str) -> Any:
    from feast.infra.online_stores.postgres_online_store.postgres import PostgreSQLOnlineStoreConfig

    return PostgreSQLOnlineStoreConfig(host="127.0.0.1", port=5432, database="test", user="postgres",
                                       db_schema=schema_name, password="", sslmode="disable")


def redis_cleanup(project: str, db: int = 0) -> None:
    """Delete every key of ``project`` (Feast's keys end with the project name) and our position."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    keys = list(client.scan_iter(match=f"*{project}", count=10_000))
    keys += list(client.scan_iter(match=f"dativo:feast:position:{project}:*"))
    for start in range(0, len(keys), 10_000):
        client.delete(*keys[start:start + 10_000])
    client.close()


def online_values(store: Any, ids: list[int], features: dict[str, tuple[pa.DataType, str]] = FEATURES
                  ) -> dict[str, list[Any]]:
    """``get_online_features`` for ``ids``: column name -> values."""
    refs = [f"{VIEW}:{name}" for name in features]
    return store.get_online_features(features=refs, entity_rows=[{"customer_id": i} for i in ids]).to_dict()
