"""FeastMaterializeOperator for real: the embedded catalog, the contract's view applied to a Feast registry,
SQLite by path and Redis/Postgres through Airflow connections; values read back through Feast; a rerun
writes nothing; the ledger names the connection id and no password."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_provider.operators.feast import FeastMaterializeOperator
from tests.ml.feast_fixtures import redis_cleanup

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "dativo_provider/sample_data/contracts/customer_features.odcs.yaml"
UTC = dt.timezone.utc
REDIS_DB = 6


def _contract_table() -> tuple[str, str, list[str], list[str], str]:
    """The contract's table, view name, entities, features and timestamp column."""
    from dativo_provider.ml.feast_registry import FeastFeatureTable

    spec = FeastFeatureTable.from_contract(str(CONTRACT))
    table = spec.feature_table
    return table.table, spec.name, list(table.entities), list(table.features), table.timestamp_column


def _write_features(entities: list[str], features: list[str], stamp: str) -> pa.Table:
    """Three customers, two rows each: the second (newer) row is the one served."""
    t0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
    rows = []
    for customer in (1, 2, 3):
        for version in (0, 1):
            row: dict[str, Any] = {entities[0]: customer, stamp: t0 + dt.timedelta(days=version)}
            for index, name in enumerate(features):
                row[name] = float(customer * 10 + version + index)
            rows.append(row)
    return pa.Table.from_pylist(rows)


def _create(table_name: str, entities: list[str], features: list[str], stamp: str) -> pa.Table:
    from dativo_provider.hooks.iceberg import IcebergHook

    catalog = IcebergHook("iceberg_default").get_catalog_config().load()
    data = _write_features(entities, features, stamp)
    schema = pa.schema([pa.field(entities[0], pa.int64(), nullable=False), (stamp, pa.timestamp("us", tz="UTC")),
                        *[(name, pa.float64()) for name in features]])
    data = data.cast(schema)
    catalog.create_namespace_if_not_exists(table_name.split(".")[0])
    catalog.create_table(table_name, schema=schema).append(data)
    return data


def _online(store: Any, view: str, entity: str, features: list[str]) -> dict[str, list[Any]]:
    return store.get_online_features(features=[f"{view}:{name}" for name in features],
                                     entity_rows=[{entity: i} for i in (1, 2, 3, 4)]).to_dict()


@pytest.fixture
def contract_table(iceberg_default: str) -> tuple[str, str, list[str], list[str], str]:
    table, view, entities, features, stamp = _contract_table()
    _create(table, entities, features, stamp)
    return table, view, entities, features, stamp


def _check(summary: dict[str, Any], store: Any, view: str, entities: list[str], features: list[str]) -> None:
    assert (summary["mode"], summary["rows_read"], summary["entities_written"]) == ("full", 6, 3)
    got = _online(store, view, entities[0], features)
    assert got[features[0]] == [11.0, 21.0, 31.0, None]  # customer * 10 + newest version (1) + index 0


def test_sqlite_path_from_the_contract(contract_table, tmp_path: Path) -> None:
    from dativo_provider.ml.feast_registry import feature_store

    table, view, entities, features, _ = contract_table
    kwargs = dict(table=table, contract=str(CONTRACT), project="shop", registry=str(tmp_path / "registry.db"),
                  online_store_path=str(tmp_path / "online.db"), duckdb_settings={"memory_limit": "512MB"})
    summary = FeastMaterializeOperator(task_id="materialize", **kwargs).execute({})
    store = feature_store(project="shop", registry=str(tmp_path / "registry.db"),
                          online_store=str(tmp_path / "online.db"))
    _check(summary, store, view, entities, features)
    assert summary["store"] == {"kind": "sqlite", "path": str(tmp_path / "online.db")}

    again = FeastMaterializeOperator(task_id="materialize", **kwargs).execute({})
    assert (again["mode"], again["entities_written"]) == ("unchanged", 0)


def test_redis_connection_recorded_by_id(contract_table, tmp_path: Path, connect) -> None:
    import redis

    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.ml.feast_registry import feature_store
    from dativo_provider.ml.serving import serving_targets

    try:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=3).ping()
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable: {exc}")
    table, view, entities, features, _ = contract_table
    project = f"op{uuid.uuid4().hex[:10]}"
    connect("feast_redis", conn_type="redis", host="127.0.0.1", port=6379, extra={"db": REDIS_DB})
    try:
        summary = FeastMaterializeOperator(
            task_id="materialize", table=table, contract=str(CONTRACT), project=project,
            registry=str(tmp_path / "registry.db"), online_store_conn_id="feast_redis").execute({})
        store = feature_store(project=project, registry=str(tmp_path / "registry.db"),
                              online_store={"type": "redis", "connection_string": f"127.0.0.1:6379,db={REDIS_DB}"})
        _check(summary, store, view, entities, features)
    finally:
        redis_cleanup(project, REDIS_DB)
    assert summary["store"] == {"kind": "redis", "host": "127.0.0.1", "port": 6379, "db": REDIS_DB,
                                "conn_id": "feast_redis"}
    targets = serving_targets(IcebergHook("iceberg_default").get_catalog_config().load().load_table(table))
    assert [t["name"] for t in targets] == [f"{project}/{view}@redis"]
    assert targets[0]["store"]["conn_id"] == "feast_redis" and "password" not in str(targets)


@pytest.mark.postgres
def test_postgres_connection(contract_table, tmp_path: Path, connect, pg, postgres_config) -> None:
    from dativo_provider.ml.feast_registry import feature_store

    table, view, entities, features, _ = contract_table
    schema = f"feast_{uuid.uuid4().hex[:10]}"
    connect("feast_pg", conn_type="postgres", host=postgres_config.host, port=postgres_config.port,
            login=postgres_config.user, password=postgres_config.password, schema=postgres_config.database,
            extra={"db_schema": schema, "sslmode": "disable"})
    store = None
    try:
        summary = FeastMaterializeOperator(
            task_id="materialize", table=table, feature_view=None, contract=str(CONTRACT), project="shop",
            registry=str(tmp_path / "registry.db"), online_store_conn_id="feast_pg").execute({})
        store = feature_store(project="shop", registry=str(tmp_path / "registry.db"), online_store={
            "type": "postgres", "host": postgres_config.host, "port": postgres_config.port,
            "database": postgres_config.database, "user": postgres_config.user,
            "password": postgres_config.password or "", "db_schema": schema, "sslmode": "disable"})
        _check(summary, store, view, entities, features)
        assert summary["store"]["schema"] == schema and summary["store"]["conn_id"] == "feast_pg"
    finally:
        if store is not None:
            connection = getattr(store._get_provider().online_store, "_conn", None)
            if connection is not None:
                connection.close()
        pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="exactly one of online_store_path, online_store_conn_id"):
        FeastMaterializeOperator(task_id="m", table="t.t", feature_view="v", project="p", registry="r")
    with pytest.raises(ValueError, match="feature_view or contract"):
        FeastMaterializeOperator(task_id="m", table="t.t", project="p", registry="r", online_store_path="x.db")


def test_example_dag_serves_each_customers_newest_features(airflow_db, iceberg_default, dativo_home) -> None:
    from datetime import datetime

    from dativo_provider.ml.feast_registry import feature_store
    from tests.airflow.helpers import read_table, return_values, run_dag

    run = run_dag("example_feast_materialize", datetime(2024, 4, 2, 12, tzinfo=UTC))
    (summary,) = return_values(run, "materialize_online")
    features = read_table("examples.feast_customer_features").to_pylist()
    newest: dict[int, dict[str, Any]] = {}
    for row in features:
        if row["customer_id"] not in newest or row["feature_ts"] > newest[row["customer_id"]]["feature_ts"]:
            newest[row["customer_id"]] = row
    assert (summary["mode"], summary["rows_read"], summary["entities_written"]) == ("full", len(features), len(newest))
    store = feature_store(project="shop", registry=str(dativo_home / "feast/registry.db"),
                          online_store=str(dativo_home / "feast/online.db"))
    ids = sorted(newest)
    got = store.get_online_features(features=["customer_features:orders_30d", "customer_features:spend_30d"],
                                    entity_rows=[{"customer_id": i} for i in ids]).to_dict()
    assert got["orders_30d"] == [newest[i]["orders_30d"] for i in ids]
    assert got["spend_30d"] == [newest[i]["spend_30d"] for i in ids]

    (rerun,) = return_values(run_dag("example_feast_materialize", datetime(2024, 4, 3, 12, tzinfo=UTC)),
                             "materialize_online")
    assert (rerun["mode"], rerun["entities_written"]) == ("unchanged", 0)
