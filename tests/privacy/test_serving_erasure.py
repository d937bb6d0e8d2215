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

import textwrap
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
from dativo_provider.privacy.serving_erasure import ServingTargetUnreachableError
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


def _session_id(customer: int, n: int) -> str:
    """Letters only: a session id must not look like any customer's id."""
    return "sess-" + "".join(chr(ord("a") + int(d)) for d in f"{customer:03d}{n}")


def _features(session: bool) -> pa.Table:
    rows = []
    for customer in CUSTOMERS:
        for n in (range(2) if session else range(1)):
            row = {"customer_id": customer, "feature_ts": AS_OF - timedelta(hours=n),
                   "orders_30d": customer * 10 + n, "spend_30d": customer * 1.5 + n}
            if session:
                row = {"session_id": _session_id(customer, n), **row}
            rows.append(row)
    schema = pa.schema([*([("session_id", pa.string())] if session else []), ("customer_id", pa.int64()),
                        ("feature_ts", pa.timestamp("us", tz="UTC")), ("orders_30d", pa.int64()),
                        ("spend_30d", pa.float64())])
    return pa.Table.from_pylist(rows, schema)


@pytest.fixture
def lake(tmp_path) -> tuple[CatalogConfig, list[Path]]:
    catalog = embedded_catalog(tmp_path / "lake")
    catalog.load().create_namespace("ml")
    contracts = []
    for name, session in (("customer_features", False), ("session_features", True)):
        path = tmp_path / f"{name}.odcs.yaml"
        path.write_text(CONTRACT.format(name=name, key=SESSION_KEY if session else ""))
        contract = load_contract(path)
        options = write_options_for(contract, None, WriteOptions(mode="append"))
        run_ingest(TableSource(_features(session), identity=f"memory://{name}"), catalog, f"ml.{name}", options,
                   run_id=f"{name}-1", audit=ContractGate(contract, catalog))
        contracts.append(path)
    return catalog, contracts


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


def _export_to_sagemaker(catalog: CatalogConfig, client: Any) -> dict[str, Any]:
    from dativo_provider.ml.sagemaker import FeatureGroupTarget, export_snapshot

    target = FeatureGroupTarget(GROUP, "customer_id", "feature_ts", ("customer_id",), region="eu-west-1")
    export_snapshot(client, catalog, CUSTOMER_TABLE, target, timestamp_column="feature_ts")
    entry = {**target.to_dict(), "aws_conn_id": "aws_features"}
    record_serving_target(catalog, CUSTOMER_TABLE, "sagemaker", GROUP, entry)
    return entry


def _sagemaker_record(client: Any, customer: int) -> dict[str, str] | None:
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


def test_sagemaker_copy_is_erased_and_listed(lake, sagemaker):
    catalog, contracts = lake
    double, client = sagemaker
    _export_to_sagemaker(catalog, client)
    others = {c: _sagemaker_record(client, c) for c in CUSTOMERS if c != SUBJECT}
    assert _sagemaker_record(client, SUBJECT) is not None

    outcome = _erase(catalog, contracts, lambda target: {"client": client})

    assert _sagemaker_record(client, SUBJECT) is None
    assert {c: _sagemaker_record(client, c) for c in CUSTOMERS if c != SUBJECT} == others
    entry = _serving(outcome.certificate)[("sagemaker", GROUP)]
    assert entry["table"] == CUSTOMER_TABLE
    assert (entry["entity_keys"], entry["entities_deleted"], entry["entities_remaining"]) == (1, 1, 0)
    assert entry["store"]["feature_group_name"] == GROUP and entry["store"]["aws_conn_id"] == "aws_features"
    assert outcome.certificate["verification"]["serving"] == {"targets": 1, "entities_remaining": 0}
    assert verify_certificate(outcome.certificate, SIGNING.verifying_key()).valid


def test_unreachable_target_fails_then_a_rerun_finishes(lake, sagemaker):
    catalog, contracts = lake
    double, client = sagemaker
    _export_to_sagemaker(catalog, client)
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
    assert _sagemaker_record(client, SUBJECT) is not None

    outcome = _erase(catalog, contracts, lambda target: {"client": client})
    assert _sagemaker_record(client, SUBJECT) is None
    entry = _serving(outcome.certificate)[("sagemaker", GROUP)]
    assert (entry["entity_keys"], entry["entities_deleted"], entry["entities_remaining"]) == (1, 1, 0)
