"""FeatureStoreExportOperator through the amazon provider's AWS connection (``AIRFLOW_CONN_*`` whose
``endpoint_url`` extra points at the Feature Store double), and the example DAG under ``dag.test()``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.compat import AirflowException, AirflowFailException
from tests.airflow.conftest import REPO, connection_env
from tests.airflow.helpers import read_table, return_values, run_dag
from tests.doubles.sagemaker_featurestore import FeatureStoreDouble

pytestmark = pytest.mark.airflow
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/dativoSageMakerTestKey"
CONTRACT = REPO / "contracts/customer_features.odcs.yaml"
FEATURE_TYPES = {"customer_id": "Integral", "feature_ts": "String", "orders_30d": "Integral",
                 "spend_30d": "Fractional", "days_since_last_order": "Integral"}


@pytest.fixture
def featurestore(monkeypatch: pytest.MonkeyPatch) -> Iterator[FeatureStoreDouble]:
    """The double with the example's group, ``aws_default`` pointing at it (botocore retries off)."""
    with FeatureStoreDouble() as api:
        api.create_feature_group("customer-features", "customer_id", "feature_ts", FEATURE_TYPES)
        extra = {"region_name": "eu-west-1", "endpoint_url": api.url,
                 "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}}}
        monkeypatch.setenv(*connection_env("aws_default", conn_type="aws", login="AKIDDATIVOTEST",
                                           password=SECRET_KEY, extra=extra))
        yield api


def client_of(api: FeatureStoreDouble):
    import boto3

    return boto3.client("sagemaker-featurestore-runtime", endpoint_url=api.url, region_name="eu-west-1",
                        aws_access_key_id="AKIDREADER", aws_secret_access_key="reader")


def online_values(api: FeatureStoreDouble, identifiers: list[str]) -> dict[int, dict[str, str]]:
    """What a model server reads: BatchGetRecord through boto3, 100 identifiers a call."""
    client, found = client_of(api), {}
    for start in range(0, len(identifiers), 100):
        asked = [{"FeatureGroupName": "customer-features",
                  "RecordIdentifiersValueAsString": identifiers[start:start + 100]}]
        response = client.batch_get_record(Identifiers=asked)
        for item in response["Records"]:
            found[int(item["RecordIdentifierValueAsString"])] = {v["FeatureName"]: v["ValueAsString"]
                                                                 for v in item["Record"]}
    return found


def _feature_table(rows: list[dict]) -> None:
    from dativo_provider.hooks.iceberg import IcebergHook

    schema = pa.schema([("customer_id", pa.int64()), ("feature_ts", pa.timestamp("us", tz="UTC")),
                        ("orders_30d", pa.int64()), ("spend_30d", pa.decimal128(12, 2)),
                        ("days_since_last_order", pa.int64())])
    catalog = IcebergHook().get_conn()
    catalog.create_namespace_if_not_exists("examples")
    table = catalog.create_table("examples.customer_features", schema=schema)
    table.append(pa.Table.from_pylist(rows, schema))


def _operator(**kwargs):
    from dativo_provider.operators.sagemaker import FeatureStoreExportOperator

    arguments = {"feature_group_name": "customer-features", "features": {"contract": str(CONTRACT)}, **kwargs}
    return FeatureStoreExportOperator(task_id="export", **arguments)


def test_exports_a_contracts_feature_table_and_records_the_target(iceberg_default, featurestore):
    rows = [{"customer_id": c, "feature_ts": datetime(2024, 1, d, 12, tzinfo=UTC), "orders_30d": c * d,
             "spend_30d": Decimal(c * d) / 4, "days_since_last_order": None if c == 2 else d}
            for c in (1, 2, 3) for d in (1, 5, 3)]
    _feature_table(rows)
    featurestore.partial_failure([1], unprocessed=2)

    summary = _operator().execute({})

    assert (summary["records_written"], summary["retried_records"], summary["requests"]) == (3, 2, 2)
    assert online_values(featurestore, ["1", "2", "3", "4"]) == {
        c: {"customer_id": str(c), "feature_ts": "2024-01-05T12:00:00.000Z", "orders_30d": str(5 * c),
            "spend_30d": f"{5 * c / 4:.2f}", **({} if c == 2 else {"days_since_last_order": "5"})}
        for c in (1, 2, 3)}
    ledger = json.loads(read_table_properties("examples.customer_features")
                        ["dativo.serving.sagemaker.customer-features"])
    assert ledger == {"kind": "sagemaker", "name": "customer-features", "aws_conn_id": "aws_default",
                      "feature_group_name": "customer-features", "region": "eu-west-1",
                      "record_identifier_feature_name": "customer_id",
                      "event_time_feature_name": "feature_ts",
                      "entity_columns": ["customer_id"], "target_stores": []}
    assert SECRET_KEY not in json.dumps(summary)


def read_table_properties(table: str) -> dict[str, str]:
    from dativo_provider.hooks.iceberg import IcebergHook

    return dict(IcebergHook().get_conn().load_table(table).properties)


def test_the_ledger_entry_drives_the_erasure_functions(iceberg_default, featurestore):
    from dativo_provider.ml.sagemaker import count_entities, delete_entities
    from dativo_provider.ml.serving import serving_targets
    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.operators.sagemaker import featurestore_client

    _feature_table([{"customer_id": c, "feature_ts": datetime(2024, 1, 1, tzinfo=UTC), "orders_30d": 1,
                     "spend_30d": Decimal("1.00"), "days_since_last_order": 0} for c in range(1, 6)])
    _operator().execute({})
    (target,) = serving_targets(IcebergHook().get_conn().load_table("examples.customer_features"))
    client = featurestore_client(target["aws_conn_id"], target["region"])
    assert delete_entities(target, [(2,), (4,)], client=client) == 2
    assert count_entities(target, [(c,) for c in range(1, 6)], client=client) == 3
    assert sorted(featurestore.online("customer-features")) == ["1", "3", "5"]


def test_throttling_beyond_the_attempts_fails_for_a_retry_and_refusals_fail_for_good(iceberg_default,
                                                                                      featurestore):
    _feature_table([{"customer_id": 1, "feature_ts": datetime(2024, 1, 1, tzinfo=UTC), "orders_30d": 1,
                     "spend_30d": Decimal("1.00"), "days_since_last_order": 0}])
    featurestore.throttle("BatchWriteRecord", [1, 2])
    exhausted = r"FeatureStoreWriteError \(will retry\): .*1 record\(s\) not written after 2 attempts " \
                r"\(ThrottlingException: 1\)"
    with pytest.raises(AirflowException, match=exhausted) as failure:
        _operator(max_attempts=2).execute({})
    assert not isinstance(failure.value, AirflowFailException)

    with pytest.raises(AirflowFailException, match=r"ResourceNotFound: 1"):
        _operator(feature_group_name="no-such-group").execute({})


def test_a_connection_without_region_fails_naming_the_fix(iceberg_default, featurestore, monkeypatch):
    monkeypatch.setenv(*connection_env("aws_noregion", conn_type="aws", login="AKID", password=SECRET_KEY))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    _feature_table([])
    with pytest.raises(AirflowFailException, match="aws connection 'aws_noregion' has no region"):
        _operator(aws_conn_id="aws_noregion").execute({})


def test_the_example_dag_exports_each_customers_newest_features(airflow_db, iceberg_default, featurestore):
    run = run_dag("example_sagemaker_export", datetime(2024, 4, 2, 12, tzinfo=UTC))
    (summary,) = return_values(run, "export_features")
    features = read_table("examples.sm_customer_features").to_pylist()
    newest: dict[int, dict] = {}
    for row in features:
        if row["customer_id"] not in newest or row["feature_ts"] > newest[row["customer_id"]]["feature_ts"]:
            newest[row["customer_id"]] = row
    assert summary["records_written"] == len(newest) > 100 and summary["rows_read"] == len(newest)
    read = online_values(featurestore, [str(c) for c in newest])
    assert {c: (int(v["orders_30d"]), float(v["spend_30d"]), v["feature_ts"]) for c, v in read.items()} == {
        c: (r["orders_30d"], float(r["spend_30d"]),
            r["feature_ts"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        for c, r in newest.items()}
