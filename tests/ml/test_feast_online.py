"""The fast Feast materializer on real stores (SQLite file, the Redis and Postgres servers): its bytes equal
Feast's own serializers, its online values (and stored rows) equal ``feast materialize`` of the same data,
an incremental run touches only the changed entities, a rerun writes nothing, deleted entities leave."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ml.feast_encoding import encode_entity_keys, encode_timestamps, encode_values
from dativo_provider.ml.feast_online import count_entities, delete_entities, materialize_online
from dativo_provider.ml.serving import serving_targets
from tests.ml.feast_fixtures import (
    T0,
    VIEW,
    feast_store,
    online_values,
    postgres_online,
    redis_cleanup,
    redis_online,
    rows,
    sqlite_online,
    write_parquet,
)

TABLE = "ml.customer_stats"
ENTITIES = 120
REDIS_DB = 6  # projects are unique per test; this database number keeps them apart from other suites


# --- bytes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value_type", "arrow_type", "values"), [
    ("DOUBLE", pa.float64(), [1.5, None, float("nan"), 0.0, -2e300, 5e-324]),
    ("FLOAT", pa.float32(), [1.5, None, float("nan"), -0.0, 3.4e38]),
    ("INT64", pa.int64(), [1, None, -1, 0, 127, 128, 16383, 16384, 2**62, -2**63]),
    ("INT64", pa.int64(), [2**63 - 1, -2**63 + 1, 2**53 + 1]),  # without a null Feast sees exact integers
    ("INT32", pa.int32(), [-5, None, 2**31 - 1, -2**31, 0]),
    ("STRING", pa.string(), ["a", None, "", "é" * 200, "x" * 70000]),
    ("BOOL", pa.bool_(), [True, None, False]),
    ("BYTES", pa.binary(), [b"x", None, b"", bytes(range(256))]),
])
def test_values_equal_feast_serializer(value_type: str, arrow_type: pa.DataType, values: list[Any]) -> None:
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    array = pa.array(values, arrow_type)
    expected = [proto.SerializeToString() for proto in python_values_to_proto_values(
        array.to_numpy(zero_copy_only=False), ValueType[value_type])]
    assert encode_values(array, value_type).to_pylist() == expected
    assert encode_values(pa.chunked_array([array.slice(0, 2), array.slice(2)]), value_type).to_pylist() == expected


def test_entity_keys_equal_feast_serializer() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    columns = {"customer_id": pa.array([1, -2, 2**40]), "store": pa.array(["x", "", "ünï"]),
               "region": pa.array([b"eu", b"", b"us-west"]), "shard": pa.array([7, -1, 0], pa.int32())}
    types = {"customer_id": "INT64", "store": "STRING", "region": "BYTES", "shard": "INT32"}
    fields = {"customer_id": "int64_val", "store": "string_val", "region": "bytes_val", "shard": "int32_val"}
    expected = [serialize_entity_key(EntityKey(
        join_keys=list(columns), entity_values=[Value(**{fields[name]: columns[name][row].as_py()})
                                                for name in columns]), entity_key_serialization_version=3)
        for row in range(3)]
    assert encode_entity_keys(columns, types).to_pylist() == expected
    single = encode_entity_keys({"store": columns["store"]}, types).to_pylist()
    assert single == [serialize_entity_key(EntityKey(join_keys=["store"], entity_values=[Value(string_val=v)]), 3)
                      for v in ["x", "", "ünï"]]


def test_timestamps_equal_protobuf() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    nanos = np.array([0, 1, 10**9, 1_733_580_000_123_456_789, -1_500_000_000, 1_704_067_200_000_000_000])
    expected = []
    for value in nanos.tolist():
        stamp = Timestamp(seconds=value // 10**9, nanos=value % 10**9)
        expected.append(stamp.SerializeToString())
    assert encode_timestamps(nanos).to_pylist() == expected


# --- stores --------------------------------------------------------------------------------------


@pytest.fixture
def redis_ready() -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=3).ping()
    except redis.ConnectionError as exc:
        if os.environ.get("DATIVO_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis is not reachable: {exc} (DATIVO_REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis is not reachable: {exc}")


class Stores:
    """Two Feast stores of one kind over the same data: ``theirs`` for ``feast materialize``, ``ours``."""

    def __init__(self, kind: str, folder: Path, request: pytest.FixtureRequest) -> None:
        self.kind, self.folder = kind, folder
        self.parquet = folder / "features.parquet"
        self.projects = [f"t{uuid.uuid4().hex[:10]}", f"o{uuid.uuid4().hex[:10]}"]
        self.schemas: list[str] = []
        self.built: list[Any] = []
        if kind == "redis":
            request.getfixturevalue("redis_ready")
        if kind == "postgres":
            self.pg = request.getfixturevalue("pg")
            self.schemas = [f"feast_{project}" for project in self.projects]

    def online(self, index: int) -> Any:
        if self.kind == "sqlite":
            return sqlite_online(self.folder / f"online_{index}.db")
        if self.kind == "redis":
            return redis_online(REDIS_DB)
        return postgres_online(self.schemas[index])

    def build(self, data: pa.Table) -> tuple[Any, Any]:
        write_parquet(data, self.parquet)
        self.built = [feast_store(self.folder, self.online(index), self.parquet, project)
                      for index, project in enumerate(self.projects)]
        return self.built[0], self.built[1]

    def cleanup(self) -> None:
        for store in self.built:  # Feast's Postgres store keeps its connection open until collected
            connection = getattr(store._get_provider().online_store, "_conn", None)
            if connection is not None:
                connection.close()
        for project in self.projects:
            if self.kind == "redis":
                redis_cleanup(project, REDIS_DB)
        for schema in self.schemas:
            self.pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def dump(self, index: int) -> dict[Any, Any]:
        """Everything the view holds in store ``index``: entity key → its stored fields/rows."""
        project = self.projects[index]
        keys = encode_entity_keys({"customer_id": pa.array(range(ENTITIES * 2))}, {"customer_id": "INT64"})
        if self.kind == "redis":
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
            found = {key: client.hgetall(key + project.encode()) for key in keys.to_pylist()}
            client.close()
            return {key: value for key, value in found.items() if value}
        query = (f"SELECT entity_key, feature_name, value, value_text, event_ts, created_ts FROM {{}}{project}_{VIEW} "
                 "ORDER BY entity_key, feature_name")
        if self.kind == "sqlite":
            with sqlite3.connect(self.folder / f"online_{index}.db") as connection:
                found_rows = connection.execute(query.format("")).fetchall()
        else:
            found_rows = self.pg.execute(query.format(f'"{self.schemas[index]}".')).fetchall()
        out: dict[Any, Any] = {}
        for row in found_rows:
            out.setdefault(bytes(row[0]), []).append(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row[1:]))
        return out


@pytest.fixture(params=["sqlite", "redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    pair = Stores(request.param, tmp_path, request)
    yield pair
    pair.cleanup()


@pytest.fixture
def lake(tmp_path: Path) -> Any:
    catalog = embedded_catalog(tmp_path / "lake")
    catalog.load().create_namespace("ml")
    return catalog


def _create(catalog: Any, data: pa.Table) -> Any:
    table = catalog.load().create_table(TABLE, schema=data.schema)
    table.append(data)
    return table


def _feast_materialize(store: Any) -> None:
    store.materialize(T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=60))


def _current(catalog: Any) -> pa.Table:
    return catalog.load().load_table(TABLE).scan().to_arrow()


def test_full_run_equals_feast_materialize(stores: Stores, lake: Any) -> None:
    data = rows(ENTITIES, versions=3)
    _create(lake, data)
    theirs, ours = stores.build(data)
    _feast_materialize(theirs)
    result = materialize_online(lake, TABLE, ours, VIEW)

    assert (result.mode, result.rows_read, result.entities_written) == ("full", 3 * ENTITIES, ENTITIES)
    ids = list(range(ENTITIES + 5))  # five unknown ids: both give nulls
    assert online_values(ours, ids) == online_values(theirs, ids)
    assert stores.dump(1) == stores.dump(0)  # byte for byte, every field and row (value_text, event_ts)
    # the registry learnt the interval: Feast's own materialize-incremental would continue after it
    newest = max(data.column("feature_ts").to_pylist())
    assert ours.get_feature_view(VIEW).most_recent_end_time == newest

    again = materialize_online(lake, TABLE, ours, VIEW)
    assert (again.mode, again.rows_read, again.entities_written) == ("unchanged", 0, 0)


def test_append_writes_only_the_changed_entities(stores: Stores, lake: Any) -> None:
    data = rows(ENTITIES, versions=2)
    table = _create(lake, data)
    theirs, ours = stores.build(data)
    first = materialize_online(lake, TABLE, ours, VIEW)
    before = stores.dump(1)

    changed = rows(ENTITIES, versions=1, seed=9, day=30).slice(0, 7)  # newer rows for entities 0..6
    stale = rows(ENTITIES, versions=1, seed=10, day=-30).slice(10, 1)  # an older row for entity 10: no effect
    new = rows(5, versions=1, seed=11, start=ENTITIES, day=1)  # five new entities
    table.append(pa.concat_tables([changed, stale, new]))
    result = materialize_online(lake, TABLE, ours, VIEW)

    assert result.mode == "append" and result.previous_snapshot_id == first.snapshot_id
    assert (result.rows_read, result.entities_written) == (13, 12)
    after = stores.dump(1)
    touched = {key for key in after if before.get(key) != after[key]}
    expected = encode_entity_keys({"customer_id": pa.array([*range(7), *range(ENTITIES, ENTITIES + 5)])},
                                  {"customer_id": "INT64"}).to_pylist()
    assert touched == set(expected)

    write_parquet(_current(lake), stores.parquet)
    _feast_materialize(theirs)
    ids = list(range(ENTITIES + 5))
    assert online_values(ours, ids) == online_values(theirs, ids)
    assert materialize_online(lake, TABLE, ours, VIEW).entities_written == 0


def test_overwrite_and_delete_diff_the_snapshots(stores: Stores, lake: Any) -> None:
    from pyiceberg.expressions import EqualTo, In

    data = rows(ENTITIES, versions=2)
    table = _create(lake, data)
    theirs, ours = stores.build(data)
    materialize_online(lake, TABLE, ours, VIEW)

    table.delete(In("customer_id", [3, 4, 5]))  # three entities leave the table
    latest = _current(lake).filter(pa.compute.equal(pa.compute.field("customer_id"), 8))
    table.delete(EqualTo("customer_id", 8))  # entity 8 keeps only its older row: the store goes back to it
    older = latest.sort_by("feature_ts").slice(0, 1)
    table.append(older)
    result = materialize_online(lake, TABLE, ours, VIEW)

    assert (result.mode, result.entities_written, result.entities_deleted) == ("diff", 1, 3)
    got = online_values(ours, [3, 4, 5, 8])
    assert got["orders_30d"][:3] == [None, None, None] and got["spend_30d"][:3] == [None, None, None]
    write_parquet(_current(lake), stores.parquet)
    _feast_materialize(theirs)  # Feast keeps entities 3..5 (it never deletes) but agrees on every other
    ids = [i for i in range(ENTITIES) if i not in (3, 4, 5)]
    if stores.kind == "redis":  # Feast's Redis writer never moves an entity back in time: it keeps 8's newer row
        ids.remove(8)
    assert online_values(ours, ids) == online_values(theirs, ids)
    assert online_values(ours, [8])["spend_30d"] == older.column("spend_30d").to_pylist()


def test_crash_before_the_position_is_recorded_reruns_the_same_writes(stores: Stores, lake: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from dativo_provider.ml import feast_online

    data = rows(ENTITIES, versions=2)
    _create(lake, data)
    theirs, ours = stores.build(data)
    batches = []
    original = feast_online._Run._write

    def crash_after_first(self: Any, batch: pa.RecordBatch) -> None:
        if batches:
            raise RuntimeError("worker lost")
        batches.append(batch.num_rows)
        original(self, batch)

    monkeypatch.setattr(feast_online._Run, "_write", crash_after_first)
    with pytest.raises(RuntimeError, match="worker lost"):
        materialize_online(lake, TABLE, ours, VIEW, batch_rows=50)
    monkeypatch.undo()
    # SQLite stages every batch and upserts them in one transaction: nothing; the others: the first batch
    assert len(stores.dump(1)) == (0 if stores.kind == "sqlite" else 50)  # and no position: a full rerun
    result = materialize_online(lake, TABLE, ours, VIEW, batch_rows=50)
    assert (result.mode, result.entities_written) == ("full", ENTITIES)
    _feast_materialize(theirs)
    assert stores.dump(1) == stores.dump(0)


def test_ledger_target_deletes_and_counts_entities(stores: Stores, lake: Any) -> None:
    data = rows(ENTITIES, versions=1)
    _create(lake, data)
    _theirs, ours = stores.build(data)
    materialize_online(lake, TABLE, ours, VIEW)
    [target] = serving_targets(lake.load().load_table(TABLE))

    assert target["name"] == f"{stores.projects[1]}/{VIEW}@{stores.kind}"
    assert target["entity_columns"] == ["customer_id"] and target["join_key_types"] == {"customer_id": "INT64"}
    assert "password" not in str(target)
    assert count_entities(target, [(1,), (2,), (10_000,)]) == 2
    assert delete_entities(target, [(1,), (2,), (10_000,)]) == 2
    assert count_entities(target, [(1,), (2,)]) == 0
    got = online_values(ours, [1, 2, 3])
    assert got["orders_30d"][:2] == [None, None] and len(stores.dump(1)) == ENTITIES - 2


def test_unsupported_feature_type_names_the_column(tmp_path: Path, lake: Any) -> None:
    from dativo_provider.exceptions import ConfigError

    data = pa.table({"customer_id": pa.array([1, 2], pa.int64()),
                     "feature_ts": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
                     "tags": pa.array([["a"], ["b"]])})
    _create(lake, data)
    from feast import types as feast_types

    store = feast_store(tmp_path, sqlite_online(tmp_path / "o.db"), write_parquet(data, tmp_path / "d.parquet"),
                        features={"tags": (pa.list_(pa.string()), "String")})
    view = store.get_feature_view(VIEW)
    view.features[0].dtype = feast_types.Array(feast_types.String)
    store.apply([view])
    with pytest.raises(ConfigError, match="'tags'.*not supported"):
        materialize_online(lake, TABLE, store, VIEW)
