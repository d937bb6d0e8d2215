"""SageMaker Feature Store export and erasure against the loopback double, through a real boto3 client:
values read back (BatchGetRecord/GetRecord) equal the Iceberg snapshot's newest row per identifier, partial
failures are retried, exhausted or refused writes fail with counts only, deletes remove exactly the keys."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError, UnsupportedTypeError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.ml.sagemaker import (
    FeatureGroupTarget,
    FeatureStoreRejectedError,
    FeatureStoreWriteError,
    RetryPolicy,
    count_entities,
    delete_entities,
    event_time_text,
    export_snapshot,
    feature_value,
)
from tests.doubles.sagemaker_featurestore import FeatureStoreDouble

GROUP = "customer-features"
TABLE = "ml.customer_features"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = pa.schema([
    ("customer_id", pa.int64()), ("feature_ts", pa.timestamp("us", tz="UTC")), ("orders_30d", pa.int32()),
    ("spend_30d", pa.float64()), ("segment", pa.string()), ("active", pa.bool_()),
    ("balance", pa.decimal128(12, 2)), ("signup", pa.date32()),
])
TYPES = {"customer_id": "Integral", "feature_ts": "String", "orders_30d": "Integral",
         "spend_30d": "Fractional", "segment": "String", "active": "Integral", "balance": "Fractional",
         "signup": "String"}
TARGET = FeatureGroupTarget(GROUP, "customer_id", "feature_ts", ("customer_id",), region="eu-west-1")


def no_wait(delays: list[float] | None = None) -> RetryPolicy:
    return RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05,
                       sleep=(delays.append if delays is not None else lambda _: None))


@pytest.fixture
def double() -> Iterator[FeatureStoreDouble]:
    with FeatureStoreDouble() as api:
        api.create_feature_group(GROUP, "customer_id", "feature_ts", TYPES)
        yield api


@pytest.fixture
def client(double: FeatureStoreDouble):
    """A real boto3 client on the double; botocore's own retries off, so every fault reaches ours."""
    import boto3
    from botocore.config import Config

    return boto3.client("sagemaker-featurestore-runtime", endpoint_url=double.url, region_name="eu-west-1",
                        aws_access_key_id="AKIDDATIVOTEST", aws_secret_access_key="not-a-secret",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


@pytest.fixture
def catalog(tmp_path) -> CatalogConfig:
    config = embedded_catalog(tmp_path / "dativo")
    config.load().create_namespace("ml")
    return config


def write_table(catalog: CatalogConfig, rows: list[dict], schema: pa.Schema = SCHEMA) -> int:
    table = catalog.load().create_table(TABLE, schema=schema)
    table.append(pa.Table.from_pylist(rows, schema))
    return table.refresh().metadata.current_snapshot_id


def feature_rows(customers: int, seed: int = 3) -> list[dict]:
    """Two to three feature rows per customer at distinct times, in random order, some values null."""
    rng = random.Random(seed)
    rows = []
    for customer in range(1, customers + 1):
        for version in range(rng.choice((2, 3))):
            rows.append({
                "customer_id": customer,
                "feature_ts": T0 + timedelta(days=version, milliseconds=rng.randrange(10**6)),
                "orders_30d": rng.randrange(50) if rng.random() > 0.05 else None,
                "spend_30d": round(rng.uniform(-5, 5000), rng.choice((1, 2, 7))),
                "segment": rng.choice(("gold", "silver", "ünïcode ✓", None)), "active": rng.random() > 0.5,
                "balance": Decimal(rng.randrange(-10**6, 10**6)) / 100,
                "signup": date(2020, 1, 1) + timedelta(rng.randrange(1500)),
            })
    rng.shuffle(rows)
    return rows


def newest(rows: list[dict]) -> dict[int, dict]:
    """The expected online state, computed in plain Python: the newest row of each customer."""
    latest: dict[int, dict] = {}
    for row in rows:
        if row["customer_id"] not in latest or row["feature_ts"] > latest[row["customer_id"]]["feature_ts"]:
            latest[row["customer_id"]] = row
    return latest


def parsed(record: list[dict]) -> dict:
    """A record read back, its strings parsed by the feature group's types (what a model server does)."""
    kinds = {"Integral": int, "Fractional": float, "String": str}
    values = {v["FeatureName"]: kinds[TYPES[v["FeatureName"]]](v["ValueAsString"]) for v in record}
    values["feature_ts"] = datetime.fromisoformat(values["feature_ts"].replace("Z", "+00:00"))
    if "signup" in values:
        values["signup"] = date.fromisoformat(values["signup"])
    return values


def expected(row: dict) -> dict:
    values = {k: v for k, v in row.items() if v is not None}
    values["active"] = int(values["active"])
    values["balance"] = float(values["balance"])
    moment = values["feature_ts"]
    values["feature_ts"] = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return values


def read_back(client, identifiers: list[str]) -> dict[int, dict]:
    found = {}
    for start in range(0, len(identifiers), 100):
        response = client.batch_get_record(Identifiers=[
            {"FeatureGroupName": GROUP, "RecordIdentifiersValueAsString": identifiers[start:start + 100]}])
        assert response["Errors"] == [] and response["UnprocessedIdentifiers"] == []
        for item in response["Records"]:
            found[int(item["RecordIdentifierValueAsString"])] = parsed(item["Record"])
    return found


def test_10k_records_with_partial_failures_read_back_equal_the_snapshot(double, client, catalog):
    rows = feature_rows(10_000)
    snapshot_id = write_table(catalog, rows)
    double.partial_failure(range(3, 400, 7), unprocessed=4, errors=["ThrottlingException", "InternalFailure"])
    double.partial_failure([5, 6], unprocessed=25)
    double.throttle("BatchWriteRecord", [9, 10])
    delays: list[float] = []

    result = export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts",
                             retry=no_wait(delays))

    latest = newest(rows)
    assert (result.snapshot_id, result.rows_read, result.records_written) == (snapshot_id, 10_000, 10_000)
    # Which call a fault hits depends on the 4 threads' timing; every failed entry was retried once.
    assert result.retried_records == sum(double.injected.values()) > 300
    assert double.injected["ThrottlingException"] and double.injected["UnprocessedEntries"] > 50
    assert result.requests == double.calls["BatchWriteRecord"] == 400 + len(delays)
    assert len(delays) >= 55 and max(delays) <= 0.05
    assert read_back(client, [str(c) for c in latest]) == {c: expected(r) for c, r in latest.items()}
    assert len(double.offline(GROUP)) == 10_000  # only the newest rows were sent


def test_values_keep_their_text_exactly(double, client, catalog):
    row = {"customer_id": 7, "feature_ts": datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
           "orders_30d": -3, "spend_30d": 0.1, "segment": "a\"b", "active": False,
           "balance": Decimal("12.50"), "signup": date(2024, 1, 31)}
    write_table(catalog, [row])
    export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", retry=no_wait())
    record = client.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="7")["Record"]
    assert {v["FeatureName"]: v["ValueAsString"] for v in record} == {
        "customer_id": "7", "feature_ts": "2024-02-29T23:59:59.999Z", "orders_30d": "-3", "spend_30d": "0.1",
        "segment": 'a"b', "active": "0", "balance": "12.50", "signup": "2024-01-31"}


def test_history_sends_every_row_and_the_online_store_keeps_the_newest(double, client, catalog):
    rows = feature_rows(300, seed=11)
    write_table(catalog, rows)
    result = export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", history=True,
                             retry=no_wait())
    latest = newest(rows)
    assert result.records_written == len(rows) == len(double.offline(GROUP)) > 600
    assert read_back(client, [str(c) for c in latest]) == {c: expected(r) for c, r in latest.items()}


def test_exhausted_retries_fail_with_the_count_not_the_identifiers(double, client, catalog):
    rows = [{**r, "customer_id": 900_000 + r["customer_id"]} for r in feature_rows(60, seed=5)]
    write_table(catalog, rows)
    double.partial_failure(range(1, 100), unprocessed=3)
    with pytest.raises(FeatureStoreWriteError) as failure:
        export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", retry=no_wait(),
                        concurrency=1)
    error = failure.value
    assert (error.failed, error.attempts, error.codes) == (3, 6, {"UnprocessedEntries": 3})
    assert "3 record(s) not written after 6 attempts (UnprocessedEntries: 3)" in str(error)
    assert "9000" not in str(error) and error.retryable


def test_refused_entries_fail_at_once_naming_the_codes(double, client, catalog):
    double.create_feature_group(GROUP, "customer_id", "feature_ts", {**TYPES, "segment": "Integral"})
    write_table(catalog, feature_rows(40, seed=2))
    with pytest.raises(FeatureStoreRejectedError, match=r"BatchWriteRecord refused \d+ record\(s\) "
                                                          r"\(ValidationError: \d+\)") as failure:
        export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", retry=no_wait())
    assert not failure.value.retryable and "gold" not in str(failure.value)


def test_a_whole_batch_throttled_on_every_attempt_is_transient(double, client, catalog):
    write_table(catalog, feature_rows(10, seed=4))
    double.throttle("BatchWriteRecord", range(1, 10))
    with pytest.raises(FeatureStoreWriteError, match=r"10 record\(s\) not written after 6 attempts "
                                                     r"\(ThrottlingException: 10\)"):
        export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", retry=no_wait())


class PutRecordOnly:
    """A client of a boto3 too old for BatchWriteRecord: the real client, without that method."""

    def __init__(self, client) -> None:
        self.put_record = client.put_record


def test_put_record_when_the_client_has_no_batch_write(double, client, catalog):
    rows = feature_rows(30, seed=8)
    write_table(catalog, rows)
    double.throttle("PutRecord", [2, 3])
    result = export_snapshot(PutRecordOnly(client), catalog, TABLE, TARGET, timestamp_column="feature_ts",
                             retry=no_wait())
    latest = newest(rows)
    assert (result.api, result.records_written, result.retried_records) == ("put_record", 30, 2)
    assert read_back(client, [str(c) for c in latest]) == {c: expected(r) for c, r in latest.items()}


def test_delete_entities_removes_exactly_the_given_keys(double, client, catalog):
    rows = feature_rows(200, seed=9)
    future = {**rows[0], "customer_id": 201, "feature_ts": datetime.now(UTC) + timedelta(days=30)}
    write_table(catalog, [*rows, future])
    export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", retry=no_wait())
    before = double.online(GROUP)
    target = {**TARGET.to_dict(), "kind": "sagemaker", "aws_conn_id": "aws_default"}  # a ledger entry
    keys = [(5,), (77,), (201,), (999,)]

    assert count_entities(target, keys, client=client) == 3
    assert delete_entities(target, keys, client=client, retry=no_wait()) == 3

    assert count_entities(target, keys, client=client) == 0
    after = double.online(GROUP)
    assert set(before) - set(after) == {"5", "77", "201"}
    assert after == {k: v for k, v in before.items() if k not in ("5", "77", "201")}
    markers = [r for r in double.offline(GROUP) if r["is_deleted"]]
    assert sorted(int(m["customer_id"]) for m in markers) == [5, 77, 201]
    assert count_entities(target, [(c,) for c in range(1, 201)], client=client) == 198
    assert delete_entities(target, keys, client=client) == 0


def test_delete_retries_throttling(double, client, catalog):
    write_table(catalog, feature_rows(3, seed=1))
    export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts", retry=no_wait())
    double.throttle("DeleteRecord", [1])
    double.throttle("GetRecord", [2])
    assert delete_entities(TARGET.to_dict(), [(1,), (2,)], client=client, retry=no_wait()) == 2
    assert set(double.online(GROUP)) == {"3"}


def test_type_mapping():
    values = (42, True, False, 0.1, 1e300, float("nan"), Decimal("1.20"), "x", None)
    assert [feature_value(v) for v in values] == ["42", "1", "0", "0.1", "1e+300", None, "1.20", "x", None]
    assert event_time_text(datetime(2024, 1, 2, 3, 4, 5, 678_999)) == "2024-01-02T03:04:05.678Z"
    paris = timezone(timedelta(hours=1))
    assert event_time_text(datetime(2024, 1, 2, 4, 0, tzinfo=paris)) == "2024-01-02T03:00:00.000Z"
    assert feature_value(date(2024, 1, 2)) == "2024-01-02"


def test_unsupported_columns_and_bad_targets_fail_before_any_request(double, client, catalog):
    schema = pa.schema([("customer_id", pa.int64()), ("feature_ts", pa.timestamp("us", tz="UTC")),
                        ("blob", pa.binary())])
    write_table(catalog, [{"customer_id": 1, "feature_ts": T0, "blob": b"x"}], schema)
    with pytest.raises(UnsupportedTypeError, match=r"ml.customer_features.blob: binary"):
        export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="feature_ts")
    with pytest.raises(ConfigError, match="no column"):
        export_snapshot(client, catalog, TABLE, TARGET, timestamp_column="updated_at")
    with pytest.raises(ConfigError, match="one record identifier"):
        FeatureGroupTarget(GROUP, "id", "ts", ("a", "b"))
    assert double.calls == {}
