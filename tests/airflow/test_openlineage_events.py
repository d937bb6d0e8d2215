"""OpenLineage events of every operator, as the OpenLineage provider's own listener sends them.

The example DAGs run once per module (``dag.test()``) with the listener's ``file`` transport
(``AIRFLOW__OPENLINEAGE__TRANSPORT`` in ``tests/airflow/conftest.py``); the events they append are read
back, validated against the OpenLineage JSON schemas (``tests/lineage/openlineage_spec``) and scanned
for the secrets and the data subject the runs used. Each DAG gets its own embedded catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow.conftest import AIRFLOW_HOME, connection_env
from tests.airflow.helpers import dagbag, return_values, run_dag
from tests.lineage.openlineage_schema import problems

pytestmark = pytest.mark.airflow
# Imported before the MLflow task runs: mlflow_source importing mlflow first makes mlflow load our
# dataset-source entry point from a half-imported module (a warning, an error under pytest).
pytest.importorskip("mlflow")

HASH_KEY = "Dsr-Hash-Key-ol-7c1d93e05b2a"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/dativoLineageTestKey"
SUBJECT_ID = 87
FEATURE_TYPES = {
    "customer_id": "Integral",
    "feature_ts": "String",
    "orders_30d": "Integral",
    "spend_30d": "Fractional",
    "days_since_last_order": "Integral",
}


class Captured:
    """The events the module's runs appended, the secrets they used and the subject they erased."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.secrets: list[str] = [HASH_KEY, AWS_SECRET]
        self.subject_email = ""
        self.returns: dict[str, Any] = {}

    def complete(self, job: str, which: int = -1) -> dict[str, Any]:
        """The job's last COMPLETE event (``which=0``: its first)."""
        found = [e for e in self.events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]
        assert found, (
            f"no COMPLETE event for {job}; jobs seen: {sorted({e['job']['name'] for e in self.events})}"
        )
        return found[which]


def _trigger(dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None) -> Any:
    dag = dagbag().get_dag(dag_id)
    if AIRFLOW_V_3_0_PLUS:
        return dag.test(logical_date=logical_date, run_conf=conf)
    import airflow.providers.fab.auth_manager.models  # noqa: F401 - see helpers.run_dag

    return dag.test(execution_date=logical_date, run_conf=conf)


def _purge(quarantine_table: str) -> None:
    """Run ``lineage_dags/lineage_purge.py`` (no example DAG purges), that folder as the DAG folder."""
    import airflow.settings

    folder = str(Path(__file__).parent / "lineage_dags")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATIVO_TEST_QUARANTINE", quarantine_table)
        env.setenv("AIRFLOW__CORE__DAGS_FOLDER", folder)
        env.setattr(airflow.settings, "DAGS_FOLDER", folder)  # Airflow 3 bundles read it
        if AIRFLOW_V_3_0_PLUS:
            from airflow.dag_processing.dagbag import DagBag
        else:
            from airflow.models import DagBag
        dag = DagBag(dag_folder=folder).get_dag("lineage_purge")
        run = dag.test(logical_date=None) if AIRFLOW_V_3_0_PLUS else dag.test()
        assert run.state == "success"


def _seed(tables: list[str]) -> None:
    import pyarrow as pa

    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.ingest.engine import run_ingest
    from tests.memory_source import TableSource

    for table in tables:
        for run in range(3):
            rows = pa.table({"id": pa.array(range(5 * (run + 1)), pa.int64())})
            run_ingest(
                TableSource(rows, identity=f"memory://{table}", cursor="id"),
                IcebergHook().get_catalog_config(),
                table,
            )


@pytest.fixture(scope="module")
def captured(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    """Run every operator once through the example DAGs; the events they produced.

    Every run but the contract DAG's is at a logical date in 2030, which no other module uses: on Airflow 3, replacing another
    module's run of a DAG that has two serialized versions (their paths follow DATIVO_HOME) trips a
    SQLAlchemy uselist warning inside Airflow (an error here, and it poisons the next module's session).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    log = AIRFLOW_HOME / "openlineage.jsonl"
    offset = log.stat().st_size if log.exists() else 0
    root = tmp_path_factory.mktemp("openlineage")
    result = Captured()
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    result.secrets.append(pem.splitlines()[1])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("VERTEX_EXPORT_URI", raising=False)

        def home(name: str) -> None:
            env.setenv("DATIVO_HOME", str(root / name))

        home("contracts")
        day = datetime(2024, 4, 1, 12, tzinfo=UTC)  # its freshness rule dates the sample orders to 2024
        _trigger("example_contract_quarantine", {}, day)
        fixed = root / "orders_fixed.odcs.yaml"
        text = (Path(__file__).parents[2] / "contracts" / "orders.odcs.yaml").read_text()
        fixed.write_text(
            text.replace("SEK, USD]", "SEK, USD, XYZ, ABC]").replace(
                "cancelled]", "cancelled, lost, unknown]"
            )
        )
        _trigger("example_contract_quarantine", {"release": True, "release_contract": str(fixed)}, day)

        home("ml")
        run = run_dag("example_ml_pipeline", datetime(2030, 4, 2, 12, tzinfo=UTC))
        result.returns["ml.transform"] = return_values(run, "customer_features")[0]
        home("vertex")
        run_dag("example_vertex_feature_export", datetime(2030, 4, 2, 12, tzinfo=UTC))

        home("drift")
        _trigger("example_drift", {}, datetime(2030, 1, 5, 12, tzinfo=UTC))

        home("maintenance")
        _seed(["examples.orders", "examples.events"])
        run_dag("example_iceberg_maintenance", datetime(2030, 1, 2, tzinfo=UTC))

        home("sagemaker")
        from tests.doubles.sagemaker_featurestore import FeatureStoreDouble

        with FeatureStoreDouble() as api:
            api.create_feature_group("customer-features", "customer_id", "feature_ts", FEATURE_TYPES)
            extra = {
                "region_name": "eu-west-1",
                "endpoint_url": api.url,
                "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}},
            }
            env.setenv(
                *connection_env(
                    "aws_default",
                    conn_type="aws",
                    login="AKIDDATIVOLINEAGE",
                    password=AWS_SECRET,
                    extra=extra,
                )
            )
            run_dag("example_sagemaker_export", datetime(2030, 4, 2, 12, tzinfo=UTC))

        home("dsr")
        from dativo_provider.hooks.iceberg import IcebergHook
        from tests.privacy.warehouse import build_warehouse

        warehouse = build_warehouse(IcebergHook().get_catalog_config(), customers=120, seed=3)
        assert warehouse.subject_id == SUBJECT_ID
        result.subject_email = warehouse.subject_email
        env.setenv(
            *connection_env(
                "dativo_dsr_signing", conn_type="generic", password=pem, extra={"key_id": "dsr-lineage"}
            )
        )
        env.setenv(*connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY))
        env.setenv("AIRFLOW_VAR_DATIVO_DSR_OUTPUT_DIR", str(root / "dsr-out"))
        env.setenv("AIRFLOW_VAR_DATIVO_DSR_REFS_POLICY", "repoint")
        env.setenv("AIRFLOW_VAR_DATIVO_DSR_SAFETY_WINDOW_MINUTES", "0")
        request = {
            "subject_kind": "customer",
            "subject_ids": [str(SUBJECT_ID)],
            "emails": [warehouse.subject_email],
            "received_at": None,
            "deadline": None,
        }
        for kind in ("access", "restriction", "erasure"):
            run = _trigger("example_dsr", {**request, "request_id": f"dsr-{kind}-ol", "kind": kind})
            assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}

        home("contracts")
        _purge("examples.contract_orders_quarantine")

    with log.open() as appended:
        appended.seek(offset)
        result.lines = [line for line in appended.read().splitlines() if line.strip()]
    result.events = [json.loads(line) for line in result.lines]
    yield result


# Every operator of the provider, by the job that runs it (dag_id.task_id).
JOBS = {
    "IcebergIngestOperator": "example_contract_quarantine.ingest_orders",
    "ContractCheckOperator": "example_contract_quarantine.check_orders",
    "QuarantineReleaseOperator": "example_contract_quarantine.release_orders",
    "QuarantinePurgeOperator": "lineage_purge.purge",
    "FeatureTransformOperator": "example_ml_pipeline.customer_features",
    "TrainingSetOperator": "example_ml_pipeline.training_set",
    "MlflowLogTrainingSetOperator": "example_ml_pipeline.log_to_mlflow",
    "FeastMaterializeOperator": "example_ml_pipeline.materialize_online",
    "SnapshotExportOperator": "example_vertex_feature_export.export_features",
    "IcebergMaintenanceOperator": "example_iceberg_maintenance.maintain",
    "DriftCheckOperator": "example_drift.drift",
    "FeatureStoreExportOperator": "example_sagemaker_export.export_features",
    "DsrDiscoverOperator": "example_dsr.discover",
    "DsrExportOperator": "example_dsr.export",
    "DsrEraseOperator": "example_dsr.erase",
    "DsrRestrictOperator": "example_dsr.restrict",
}


def test_every_operator_sends_events_that_the_openlineage_schemas_accept(captured):
    for operator, job in JOBS.items():
        event = captured.complete(job)
        assert event["inputs"] or event["outputs"] or event["run"]["facets"].get("dativo"), operator
    invalid = {f"{e['job']['name']} {e['eventType']}": problems(e) for e in captured.events}
    assert {event: found for event, found in invalid.items() if found} == {}
    assert len(captured.events) >= 2 * len(JOBS)


def _table(event: dict[str, Any], side: str, table: str) -> dict[str, Any]:
    named = {
        d["facets"]["symlinks"]["identifiers"][0]["name"]: d for d in event[side] if "symlinks" in d["facets"]
    }
    assert table in named, f"{table} not among {sorted(named)}"
    return named[table]


def test_iceberg_tables_are_named_by_location_symlink_catalog_and_snapshot(captured):
    event = captured.complete("example_ml_pipeline.customer_features")
    output = _table(event, "outputs", "examples.mlp_customer_features")
    assert output["namespace"] == "file" and output["name"].endswith(
        "/warehouse/examples/mlp_customer_features"
    )
    (symlink,) = output["facets"]["symlinks"]["identifiers"]
    assert symlink["type"] == "TABLE" and symlink["namespace"].startswith("sqlite:///")
    catalog = output["facets"]["catalog"]
    assert (catalog["framework"], catalog["type"], catalog["name"]) == ("iceberg", "jdbc", "dativo")
    assert catalog["warehouseUri"].startswith("file://") and catalog["metadataUri"] == symlink["namespace"]
    assert output["facets"]["version"]["datasetVersion"] == str(
        captured.returns["ml.transform"]["snapshot_id"]
    )
    assert [f["name"] for f in output["facets"]["schema"]["fields"]][:2] == ["customer_id", "feature_ts"]


def test_transform_column_lineage_comes_from_its_sql(captured):
    event = captured.complete("example_ml_pipeline.customer_features")
    orders = _table(event, "inputs", "examples.mlp_orders")
    fields = _table(event, "outputs", "examples.mlp_customer_features")["facets"]["columnLineage"]["fields"]
    spend = {
        (f["name"], f["field"], f["transformations"][0]["subtype"])
        for f in fields["spend_30d"]["inputFields"]
    }
    assert (orders["name"], "amount", "AGGREGATION") in spend
    assert {f["name"] for f in fields["customer_id"]["inputFields"]} == {orders["name"]}


def test_ingest_links_each_source_column_to_its_target_column(captured):
    event = captured.complete("example_contract_quarantine.ingest_orders", 0)  # the run that held rows back
    (source,) = event["inputs"]
    output = _table(event, "outputs", "examples.contract_orders")
    lineage = output["facets"]["columnLineage"]["fields"]
    assert lineage["order_id"]["inputFields"] == [
        {
            "namespace": source["namespace"],
            "name": source["name"],
            "field": "order_id",
            "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}],
        }
    ]
    assert output["facets"]["ownership"]["owners"] and output["facets"]["documentation"]["description"]
    _table(event, "outputs", "examples.contract_orders_quarantine")


def test_contract_checks_report_assertions_and_metrics(captured):
    checked = _table(
        captured.complete("example_contract_quarantine.check_orders"), "inputs", "examples.contract_orders"
    )
    assertions = checked["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    assert checked["inputFacets"]["dataQualityMetrics"]["rowCount"] == 2106
    released = captured.complete("example_contract_quarantine.release_orders")
    assert released["run"]["facets"]["dativo"]["counts"] == {
        "rows_considered": 4,
        "rows_published": 3,
        "rows_requarantined": 1,
    }


def test_drift_checks_report_a_verdict_per_column_on_the_current_snapshot(captured):
    event = captured.complete("example_drift.drift")
    reference, current = event["inputs"]
    assert reference["facets"]["version"]["datasetVersion"] != current["facets"]["version"]["datasetVersion"]
    assertions = current["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert len(assertions) == event["run"]["facets"]["dativo"]["counts"]["columns"] == 4
    assert current["inputFacets"]["dataQualityMetrics"]["rowCount"] == 2100


def test_dsr_events_carry_counts_and_never_the_subject_or_a_secret(captured):
    erase = captured.complete("example_dsr.erase")
    counts = erase["run"]["facets"]["dativo"]["counts"]
    assert counts["rows_deleted"] > 0 and counts["verified"] == 1
    assert {d["facets"]["symlinks"]["identifiers"][0]["name"] for d in erase["outputs"]} >= {
        "examples.customers"
    }

    text = "\n".join(captured.lines)
    assert captured.subject_email and captured.subject_email.lower() not in text.lower()
    for secret in captured.secrets:
        assert secret not in text
    identifiers = [path for event in captured.events for path in _values_equal(event, SUBJECT_ID)]
    assert identifiers == []


def _values_equal(value: Any, subject: int, path: str = "") -> Iterator[str]:
    """Where a JSON value is the subject's id itself (a number or a text): the id is too short to grep."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("counts",):
                yield from _values_equal(item, subject, f"{path}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _values_equal(item, subject, f"{path}[{position}]")
    elif not isinstance(value, bool) and (value == subject or value == str(subject)):
        yield path
