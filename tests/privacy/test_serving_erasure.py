"""An erasure reaches the serving copies of its feature tables: Feast online stores (SQLite and the Redis
server) and a SageMaker feature group (the loopback double, through a real boto3 client).

Two feature tables hold the subject (customer 7): ``ml.customer_features`` keyed by ``customer_id`` and
``ml.session_features`` keyed by ``session_id`` (the subject's sessions are found only through their
rows). After the erasure, the subject's entities read back as absent from every store, every other
entity reads back unchanged, and the certificate lists each target with its counts. A crash between the
Iceberg delete and the serving delete is finished by a rerun; a target that cannot be reached fails the
request, and no certificate is issued.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_provider.contracts.loader import load_contract
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.serving import record_serving_target
from dativo_provider.privacy import audit
from dativo_provider.privacy.certificate import SigningKey, verify_certificate
from dativo_provider.privacy.dsr import erase_subject
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.serving_erasure import ServingCopyRemainsError, ServingTargetUnreachableError
from dativo_provider.quality.wap import ContractGate, write_options_for
from tests.doubles.sagemaker_featurestore import FeatureStoreDouble
from tests.memory_source import TableSource

HASH_KEY = b"serving-erasure-hash-key-0123456789"
SIGNING = SigningKey.hmac(b"serving-erasure-signing-secret-01", "serving")
SUBJECT = 7
CUSTOMERS = range(1, 13)
AS_OF = datetime(2024, 4, 1, tzinfo=UTC)
GROUP = "customer-features"
CUSTOMER_TABLE = "ml.customer_features"
SESSION_TABLE = "ml.session_features"

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:dativo:tests:{name}
name: {name}
version: 1.0.0
status: active
team:
  name: ml-platform
schema:
  - name: {name}
    physicalName: ml.{name}
    physicalType: table
    properties:
{key}      - name: customer_id
        logicalType: integer
        required: true
        classification: internal
        customProperties:
          - property: dativoDataSubject
            value: customer
      - name: feature_ts
        logicalType: timestamp
        physicalType: timestamptz
        required: true
        classification: internal
      - name: orders_30d
        logicalType: integer
        classification: internal
      - name: spend_30d
        logicalType: number
        classification: confidential
"""
SESSION_KEY = """\
      - name: session_id
        logicalType: string
        required: true
        primaryKey: true
        classification: internal
"""


def session_id(customer: int, n: int) -> str:
    """Letters only: a session id must not look like any customer's id."""
    return "sess-" + "".join(chr(ord("a") + int(d)) for d in f"{customer:03d}{n}")


def _features(session: bool) -> pa.Table:
    rows = []
    for customer in CUSTOMERS:
        for n in (range(2) if session else range(1)):
            row = {"customer_id": customer, "feature_ts": AS_OF - timedelta(hours=n),
                   "orders_30d": customer * 10 + n, "spend_30d": customer * 1.5 + n}
            if session:
                row = {"session_id": session_id(customer, n), **row}
            rows.append(row)
    schema = pa.schema([*([("session_id", pa.string())] if session else []), ("customer_id", pa.int64()),
                        ("feature_ts", pa.timestamp("us", tz="UTC")), ("orders_30d", pa.int64()),
                        ("spend_30d", pa.float64())])
    return pa.Table.from_pylist(rows, schema)


def build_lake(catalog: CatalogConfig, folder: Path) -> list[Path]:
    """Both feature tables, loaded through their contracts (counts-only metrics for the subject's column);
    returns the contract files."""
    catalog.load().create_namespace_if_not_exists("ml")
    contracts = []
    for name, session in (("customer_features", False), ("session_features", True)):
        path = folder / f"{name}.odcs.yaml"
        path.write_text(CONTRACT.format(name=name, key=SESSION_KEY if session else ""))
        contract = load_contract(path)
        options = write_options_for(contract, None, WriteOptions(mode="append"))
        run_ingest(TableSource(_features(session), identity=f"memory://{name}"), catalog, f"ml.{name}", options,
                   run_id=f"{name}-1", audit=ContractGate(contract, catalog))
        contracts.append(path)
    return contracts


@pytest.fixture
def lake(tmp_path) -> tuple[CatalogConfig, list[Path]]:
    catalog = embedded_catalog(tmp_path / "lake")
    return catalog, build_lake(catalog, tmp_path)


# --- Feast ---------------------------------------------------------------------------------------

REDIS_DB = 5  # Feast keys end with the project name, unique per test; this database number keeps them apart


@pytest.fixture
def redis_db() -> Iterator[int]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("DATIVO_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis is not reachable: {exc} (DATIVO_REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis is not reachable: {exc}")
    yield REDIS_DB
    client.close()


def feast_store(folder: Path, online: Any, views: dict[str, str]) -> Any:
    """A Feast store whose registry holds ``views`` (view name → its Iceberg table), applied."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
    from feast import types as feast_types

    project = f"p{uuid.uuid4().hex[:10]}"
    objects: list[Any] = []
    for view, table in views.items():
        key, key_type, dtype = (("session_id", ValueType.STRING, feast_types.String) if table == SESSION_TABLE
                                else ("customer_id", ValueType.INT64, feast_types.Int64))
        entity = Entity(name=key.removesuffix("_id"), join_keys=[key], value_type=key_type)
        source = FileSource(path=str(folder / f"{view}.parquet"), timestamp_field="feature_ts")
        objects += [entity, FeatureView(name=view, entities=[entity], ttl=timedelta(days=3650), online=True, source=source,
                                        schema=[Field(name=key, dtype=dtype),
                                                Field(name="orders_30d", dtype=feast_types.Int64),
                                                Field(name="spend_30d", dtype=feast_types.Float64)])]
    store = FeatureStore(config=RepoConfig(project=project, provider="local", registry=str(folder / f"{project}.db"),
                                           online_store=online, entity_key_serialization_version=3))
    store.apply(objects)
    return store


def online_values(store: Any, view: str, key: str, ids: list[Any]) -> dict[Any, tuple[Any, Any]]:
    """``get_online_features`` per entity: (orders_30d, spend_30d)."""
    got = store.get_online_features(features=[f"{view}:orders_30d", f"{view}:spend_30d"],
                                    entity_rows=[{key: i} for i in ids]).to_dict()
    return {i: (o, s) for i, o, s in zip(got[key], got["orders_30d"], got["spend_30d"], strict=True)}


def redis_cleanup(project: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    keys = [*client.scan_iter(match=f"*{project}"), *client.scan_iter(match=f"dativo:feast:position:{project}:*")]
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def feast_stores(lake, tmp_path, redis_db) -> Iterator[dict[str, Any]]:
    """customer_stats in SQLite and Redis, session_stats in SQLite, materialized from Iceberg."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    from dativo_provider.ml.feast_online import materialize_online

    catalog, _contracts = lake
    sqlite = feast_store(tmp_path, SqliteOnlineStoreConfig(path=str(tmp_path / "online.db")),
                          {"customer_stats": CUSTOMER_TABLE, "session_stats": SESSION_TABLE})
    redis_store = feast_store(tmp_path, RedisOnlineStoreConfig(connection_string=f"127.0.0.1:6379,db={redis_db}"),
                               {"customer_stats": CUSTOMER_TABLE})
    try:
        materialize_online(catalog, CUSTOMER_TABLE, sqlite, "customer_stats")
        materialize_online(catalog, SESSION_TABLE, sqlite, "session_stats")
        materialize_online(catalog, CUSTOMER_TABLE, redis_store, "customer_stats", conn_id="redis_features")
        yield {"sqlite": sqlite, "redis": redis_store}
    finally:
        redis_cleanup(redis_store.project)


def _feast_contents(stores: dict[str, Any]) -> dict[str, dict[Any, tuple[Any, Any]]]:
    sessions = [session_id(c, n) for c in CUSTOMERS for n in range(2)]
    return {"sqlite customers": online_values(stores["sqlite"], "customer_stats", "customer_id", list(CUSTOMERS)),
            "redis customers": online_values(stores["redis"], "customer_stats", "customer_id", list(CUSTOMERS)),
            "sqlite sessions": online_values(stores["sqlite"], "session_stats", "session_id", sessions)}


def _is_subject(key: Any) -> bool:
    return key == SUBJECT or key in (session_id(SUBJECT, 0), session_id(SUBJECT, 1))


# --- SageMaker -----------------------------------------------------------------------------------

SAGEMAKER_TYPES = {"customer_id": "Integral", "feature_ts": "String", "orders_30d": "Integral",
                   "spend_30d": "Fractional"}


@pytest.fixture
def sagemaker() -> Iterator[tuple[FeatureStoreDouble, Any]]:
    import boto3
    from botocore.config import Config

    with FeatureStoreDouble() as api:
        api.create_feature_group(GROUP, "customer_id", "feature_ts", SAGEMAKER_TYPES)
        client = boto3.client("sagemaker-featurestore-runtime", endpoint_url=api.url, region_name="eu-west-1",
                              aws_access_key_id="AKIDDATIVOTEST", aws_secret_access_key="not-a-secret",
                              config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
        yield api, client


def export_to_sagemaker(catalog: CatalogConfig, client: Any) -> dict[str, Any]:
    from dativo_provider.ml.sagemaker import FeatureGroupTarget, export_snapshot

    target = FeatureGroupTarget(GROUP, "customer_id", "feature_ts", ("customer_id",), region="eu-west-1")
    export_snapshot(client, catalog, CUSTOMER_TABLE, target, timestamp_column="feature_ts")
    entry = {**target.to_dict(), "aws_conn_id": "aws_features"}
    record_serving_target(catalog, CUSTOMER_TABLE, "sagemaker", GROUP, entry)
    return entry


def sagemaker_record(client: Any, customer: int) -> dict[str, str] | None:
    response = client.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString=str(customer))
    record = response.get("Record")
    return {v["FeatureName"]: v["ValueAsString"] for v in record} if record else None


# --- erasure -------------------------------------------------------------------------------------


def _erase(catalog: CatalogConfig, contracts: list[Path], resolver: Any, request_id: str = "dsr-serving-1"):
    trail = audit.AuditTrail(audit.IcebergAuditStore(catalog.load(), "dativo.dsr_audit"), HASH_KEY)
    request = SubjectRequest(request_id, "erasure", "customer", subject_ids=[str(SUBJECT)])
    return erase_subject(catalog, contracts, request, signing_key=SIGNING, hash_key=HASH_KEY, trail=trail,
                         safety_window=timedelta(0), serving_resolver=resolver)


def _serving(certificate: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["kind"], s["name"]): s for s in certificate["serving"]}


def test_unreachable_target_fails_then_a_rerun_finishes(lake, sagemaker):
    catalog, contracts = lake
    double, client = sagemaker
    export_to_sagemaker(catalog, client)
    import boto3
    from botocore.config import Config

    nowhere = boto3.client("sagemaker-featurestore-runtime", endpoint_url="http://127.0.0.1:9", region_name="eu-west-1",
                           aws_access_key_id="AKIDDATIVOTEST", aws_secret_access_key="not-a-secret",
                           config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    from dativo_provider.ml.sagemaker import RetryPolicy

    quick = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, sleep=lambda _: None)
    with pytest.raises(ServingTargetUnreachableError, match=rf"sagemaker '{GROUP}'") as raised:
        _erase(catalog, contracts, lambda target: {"client": nowhere, "retry": quick})
    assert "not-a-secret" not in str(raised.value)
    # The Iceberg rows went first; the copy stayed, and no certificate was issued.
    rows = catalog.load().load_table(CUSTOMER_TABLE).scan(row_filter=f"customer_id == {SUBJECT}").to_arrow()
    assert rows.num_rows == 0
    assert sagemaker_record(client, SUBJECT) is not None

    outcome = _erase(catalog, contracts, lambda target: {"client": client})
    assert sagemaker_record(client, SUBJECT) is None
    entry = _serving(outcome.certificate)[("sagemaker", GROUP)]
    assert (entry["entity_keys"], entry["entities_deleted"], entry["entities_remaining"]) == (1, 1, 0)


def test_every_serving_copy_is_erased_and_listed_with_counts(lake, feast_stores, sagemaker):
    catalog, contracts = lake
    double, client = sagemaker
    export_to_sagemaker(catalog, client)
    before = _feast_contents(feast_stores)
    assert all(values[key] != (None, None) for values in before.values() for key in values)
    others_sagemaker = {c: sagemaker_record(client, c) for c in CUSTOMERS if c != SUBJECT}

    outcome = _erase(catalog, contracts, lambda target: {"client": client} if target["kind"] == "sagemaker" else {})

    after = _feast_contents(feast_stores)
    for store, values in after.items():
        assert {k: v for k, v in values.items() if _is_subject(k)} == {k: (None, None) for k in values
                                                                         if _is_subject(k)}, store
        assert {k: v for k, v in values.items() if not _is_subject(k)} == {
            k: v for k, v in before[store].items() if not _is_subject(k)}, store
    assert sagemaker_record(client, SUBJECT) is None
    assert {c: sagemaker_record(client, c) for c in CUSTOMERS if c != SUBJECT} == others_sagemaker

    listed = {(s["table"], s["kind"], s["store"].get("store", {}).get("kind")):
              (s["entity_keys"], s["entities_deleted"], s["entities_remaining"]) for s in outcome.certificate["serving"]}
    assert listed == {(CUSTOMER_TABLE, "feast", "sqlite"): (1, 1, 0), (CUSTOMER_TABLE, "feast", "redis"): (1, 1, 0),
                      (SESSION_TABLE, "feast", "sqlite"): (2, 2, 0), (CUSTOMER_TABLE, "sagemaker", None): (1, 1, 0)}
    redis_entry = _serving(outcome.certificate)[("feast", f"{feast_stores['redis'].project}/customer_stats@redis")]
    assert redis_entry["store"]["store"] == {"kind": "redis", "host": "127.0.0.1", "port": 6379, "db": REDIS_DB,
                                             "conn_id": "redis_features"}
    assert outcome.certificate["verification"]["serving"] == {"targets": 4, "entities_remaining": 0}
    assert outcome.certificate["verification"]["passed"] is True
    assert verify_certificate(outcome.certificate, SIGNING.verifying_key()).valid
    tampered = json.loads(json.dumps(outcome.certificate))
    tampered["serving"][0]["entities_remaining"] = 1
    assert not verify_certificate(tampered, SIGNING.verifying_key()).valid


class _Crash(BaseException):
    """The worker dies: nothing the engine catches."""


def test_a_crash_between_iceberg_delete_and_serving_delete_is_finished_by_the_rerun(lake, feast_stores):
    catalog, contracts = lake

    def crash(target):
        raise _Crash()

    with pytest.raises(_Crash):
        _erase(catalog, contracts, crash)
    # The Iceberg heads no longer hold the subject's rows: the rerun finds the session keys in history.
    for table in (CUSTOMER_TABLE, SESSION_TABLE):
        assert catalog.load().load_table(table).scan(row_filter=f"customer_id == {SUBJECT}").to_arrow().num_rows == 0
    assert online_values(feast_stores["sqlite"], "session_stats", "session_id", [session_id(SUBJECT, 0)]) != {
        session_id(SUBJECT, 0): (None, None)}

    outcome = _erase(catalog, contracts, None)

    after = _feast_contents(feast_stores)
    assert all(v == (None, None) for values in after.values() for k, v in values.items() if _is_subject(k))
    sessions = [s for s in outcome.certificate["serving"] if s["table"] == SESSION_TABLE]
    assert [(s["entity_keys"], s["entities_deleted"], s["entities_remaining"]) for s in sessions] == [(2, 2, 0)]
    assert outcome.certificate["verification"]["passed"] is True


def test_a_store_that_keeps_the_copy_fails_the_request_without_certificate(lake, feast_stores, monkeypatch):
    import dativo_provider.ml.feast_online as feast_online

    catalog, contracts = lake
    monkeypatch.setattr(feast_online, "delete_entities", lambda target, keys, **options: 0)
    with pytest.raises(ServingCopyRemainsError, match="still holds 1 of the subject's 1 entity keys"):
        _erase(catalog, contracts, None, request_id="dsr-serving-kept")
    events = [s.event["event"] for s in audit.IcebergAuditStore(catalog.load(), "dativo.dsr_audit").read()
              if s.event and s.event.get("request_id") == "dsr-serving-kept"]
    assert events[-1] == "failed" and "completed" not in events and "verified" not in events
