"""DsrEraseOperator reaches the serving copies through Airflow connections, on Airflow 2.11 and 3.x: a
Feast Redis store recorded with its connection id and a SageMaker feature group (the loopback double)
recorded with its ``aws`` connection id. The subject's entities are gone from both, the certificate
lists them, and no connection secret reaches the result or the certificate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dativo_provider.exceptions import ConfigError
from tests.airflow.conftest import connection_env
from tests.doubles.sagemaker_featurestore import FeatureStoreDouble
from tests.privacy.test_serving_erasure import (  # noqa: F401 - redis_db is a fixture
    CUSTOMER_TABLE,
    CUSTOMERS,
    GROUP,
    SAGEMAKER_TYPES,
    SUBJECT,
    build_lake,
    export_to_sagemaker,
    feast_store,
    online_values,
    redis_cleanup,
    redis_db,
    sagemaker_record,
)

pytestmark = pytest.mark.airflow

AWS_SECRET = "aws-Secret-7f3e9b1c0d"  # must appear nowhere
REDIS_PASSWORD = "redis-Pass-4c1d9e"
HASH_KEY = "Serving-Hash-Key-9d2c7a41e0b3"


@pytest.fixture
def dsr_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(*connection_env("dativo_dsr_signing", conn_type="generic",
                                       password="serving-signing-secret-0123456789",
                                       extra={"key_id": "serving", "algorithm": "hmac-sha256"}))
    monkeypatch.setenv(*connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY))


def test_erase_operator_reaches_redis_and_sagemaker_through_connections(dativo_home, dsr_keys, connect, redis_db,
                                                                          tmp_path):
    import boto3
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.ml.feast_online import materialize_online
    from dativo_provider.operators.privacy import DsrEraseOperator

    catalog = IcebergHook().get_catalog_config()
    contracts = build_lake(catalog, tmp_path)
    redis = feast_store(tmp_path, RedisOnlineStoreConfig(connection_string=f"127.0.0.1:6379,db={redis_db}"),
                        {"customer_stats": CUSTOMER_TABLE})
    with FeatureStoreDouble() as api:
        api.create_feature_group(GROUP, "customer_id", "feature_ts", SAGEMAKER_TYPES)
        connect("aws_features", conn_type="aws", login="AKIDDATIVOTEST", password=AWS_SECRET,
                extra={"endpoint_url": api.url, "region_name": "eu-west-1"})
        connect("redis_features", conn_type="redis", host="127.0.0.1", port=6379)
        client = boto3.client("sagemaker-featurestore-runtime", endpoint_url=api.url, region_name="eu-west-1",
                              aws_access_key_id="AKIDDATIVOTEST", aws_secret_access_key=AWS_SECRET)
        try:
            materialize_online(catalog, CUSTOMER_TABLE, redis, "customer_stats", conn_id="redis_features")
            export_to_sagemaker(catalog, client)
            before = online_values(redis, "customer_stats", "customer_id", list(CUSTOMERS))
            task = DsrEraseOperator(
                task_id="erase", contracts=[str(p) for p in contracts], audit_path=str(tmp_path / "audit"),
                certificate_path=str(tmp_path / "certificate.json"), safety_window_minutes=0,
                request={"request_id": "dsr-serving-af", "kind": "erasure", "subject_kind": "customer",
                         "subject_ids": [str(SUBJECT)]})
            summary = task.execute({})
            after = online_values(redis, "customer_stats", "customer_id", list(CUSTOMERS))
            assert sagemaker_record(client, SUBJECT) is None
            assert sagemaker_record(client, SUBJECT + 1) is not None
        finally:
            redis_cleanup(redis.project)
    assert after[SUBJECT] == (None, None)
    assert {k: v for k, v in after.items() if k != SUBJECT} == {k: v for k, v in before.items() if k != SUBJECT}
    certificate = Path(summary["certificate_path"]).read_text()
    listed = {(s["kind"], s["entities_deleted"], s["entities_remaining"]) for s in json.loads(certificate)["serving"]}
    assert listed == {("feast", 1, 0), ("sagemaker", 1, 0)}
    assert summary["verified"] is True and len(summary["serving"]) == 2
    assert AWS_SECRET not in certificate and AWS_SECRET not in json.dumps(summary)


def test_serving_options_resolve_connections_by_the_ids_the_ledger_recorded(connect):
    from dativo_provider.operators.privacy import serving_options

    connect("redis_protected", conn_type="redis", host="127.0.0.1", port=6379, password=REDIS_PASSWORD)
    redis_target = {"kind": "feast", "name": "p/v@redis", "store": {"kind": "redis", "conn_id": "redis_protected"}}
    assert serving_options(redis_target) == {"password": REDIS_PASSWORD}
    assert serving_options({"kind": "feast", "name": "p/v@sqlite", "store": {"kind": "sqlite", "path": "x.db"}}) == {}
    with pytest.raises(ConfigError, match=r"feast 'p/v@redis': its connection 'redis_gone' is not defined") as raised:
        serving_options({**redis_target, "store": {"kind": "redis", "conn_id": "redis_gone"}})
    assert REDIS_PASSWORD not in str(raised.value)
