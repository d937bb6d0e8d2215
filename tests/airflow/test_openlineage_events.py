"""OpenLineage events of every operator, as the OpenLineage provider's own listener sends them.

The example DAGs run once per module (``dag.test()``) with the listener's ``file`` transport
(``AIRFLOW__OPENLINEAGE__TRANSPORT`` in ``tests/airflow/conftest.py``); the events they append are read
back, validated against the OpenLineage JSON schemas (``tests/lineage/openlineage_spec``) and scanned
for the secrets and the data subject the runs used. Each DAG gets its own embedded catalog.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
#: example_erasure_handoff's subject (account 87): its address and name, as the table holds them.
HANDOFF_SUBJECT = ("o'brien.zoe@example.org", "o'brien")
SPLIT_ROWS = 20_000  # example_split_ingest's seed
FEATURE_TYPES = {
    "customer_id": "Integral",
    "feature_ts": "String",
    "orders_30d": "Integral",
    "spend_30d": "Fractional",
    "days_since_last_order": "Integral",
}


class Captured:
    """The events the module's runs appended, the secrets they used and the subjects they erased."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.secrets: list[str] = [HASH_KEY, AWS_SECRET]
        #: What identifies the erased subjects (e-mail addresses, names), lower case; their id is SUBJECT_ID.
        self.subject_texts: list[str] = []
        self.returns: dict[str, Any] = {}
        #: DAGs not run, with the reason (a server the module may do without was not reachable).
        self.not_run: dict[str, str] = {}

    def complete(self, job: str, which: int = -1) -> dict[str, Any]:
        """The job's last COMPLETE event (``which=0``: its first)."""
        found = [e for e in self.events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]
        assert found, (
            f"no COMPLETE event for {job}; jobs seen: {sorted({e['job']['name'] for e in self.events})}"
        )
        return found[which]

    def completed(self, job: str) -> list[dict[str, Any]]:
        """Every COMPLETE event of the job (a mapped task's: one per map index)."""
        return [e for e in self.events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]

    def ran(self, dag_id: str) -> None:
        """Skip the test when ``dag_id`` did not run."""
        if dag_id in self.not_run:
            pytest.skip(f"{dag_id} did not run: {self.not_run[dag_id]}")


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


@contextmanager
def _split_source(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Postgres database of its own for example_split_ingest's source table, dropped afterwards: the
    table's name is the example's, and other modules (and this module on the other Airflow) fill it too.
    None when the server is not reachable."""
    try:
        config = request.getfixturevalue("postgres_config")
    except pytest.skip.Exception:
        yield None
        return
    import psycopg

    database = f"dativo_openlineage_{os.getpid()}"
    server = {"host": config.host, "port": config.port, "user": config.user, "password": config.password}
    with psycopg.connect(dbname=config.database, autocommit=True, **server) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
        try:
            yield dataclasses.replace(config, database=database)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


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
def captured(
    airflow_db: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Captured]:
    """Run every operator once through the example DAGs; the events they produced.

    Every run but the contract DAG's is at a logical date in 2030 or 2031, which no other module uses: on
    Airflow 3, replacing another module's run of a DAG that has two serialized versions (their paths
    follow DATIVO_HOME) trips a SQLAlchemy uselist warning inside Airflow (an error here, and it poisons
    the next module's session).
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
        result.subject_texts.append(warehouse.subject_email.lower())
        env.setenv(
            *connection_env(
                "dativo_dsr_signing", conn_type="generic", password=pem, extra={"key_id": "dsr-lineage"}
            )
        )
        env.setenv(*connection_env("dativo_dsr_hash_key", conn_type="generic", password=HASH_KEY))
        env.setenv("AIRFLOW_VAR_DATIVO_DSR_OUTPUT_DIR", str(root / "dsr-out"))
        env.setenv("AIRFLOW_VAR_DATIVO_DSR_REFS_POLICY", "repoint")
        env.setenv("AIRFLOW_VAR_DATIVO_DSR_SAFETY_WINDOW_MINUTES", "0")
        subject = {
            "subject_kind": "customer",
            "subject_ids": [str(SUBJECT_ID)],
            "emails": [warehouse.subject_email],
            "received_at": None,
            "deadline": None,
        }
        for kind in ("access", "restriction", "erasure"):
            run = _trigger("example_dsr", {**subject, "request_id": f"dsr-{kind}-ol", "kind": kind})
            assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}

        home("handoff")  # the keys and output folder of the DSR runs above
        result.subject_texts += HANDOFF_SUBJECT
        handoff = {**subject, "request_id": "dsr-handoff-ol", "kind": "erasure", "emails": []}
        run = _trigger("example_erasure_handoff", handoff, datetime(2031, 2, 3, 12, tzinfo=UTC))
        assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
        result.returns["handoff.plan"] = return_values(run, "plan")[0]

        home("split")
        with _split_source(request) as database:
            if database is None:
                result.not_run["example_split_ingest"] = "PostgreSQL is not reachable"
            else:
                env.setenv(
                    *connection_env(
                        "postgres_default",
                        conn_type="postgres",
                        host=database.host,
                        port=database.port,
                        login=database.user,
                        password=database.password,
                        schema=database.database,
                    )
                )
                run = run_dag("example_split_ingest", datetime(2031, 1, 6, 12, tzinfo=UTC))
                result.returns["split.commit"] = return_values(run, "split_events.commit")[0]
                result.returns["split.parts"] = return_values(run, "split_events.write_part")
                result.returns["split.plan"] = return_values(run, "split_events.plan")[0][0]["plan"]

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
    "ErasureHandoffPlanOperator": "example_erasure_handoff.plan",
    "ErasureHandoffVerifyOperator": "example_erasure_handoff.verify",
    "SplitIngestPlanOperator": "example_split_ingest.split_events.plan",
    "SplitIngestPartOperator": "example_split_ingest.split_events.write_part",
    "SplitIngestCommitOperator": "example_split_ingest.split_events.commit",
}


def test_every_operator_sends_events_that_the_openlineage_schemas_accept(captured):
    for operator, job in JOBS.items():
        if job.split(".")[0] in captured.not_run:
            continue
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
    assert len(captured.subject_texts) == 3  # the DSR subject's address, the hand-off subject's and name
    assert [found for found in captured.subject_texts if found in text.lower()] == []
    for secret in captured.secrets:
        assert secret not in text
    identifiers = [path for event in captured.events for path in _values_equal(event, SUBJECT_ID)]
    assert identifiers == []


def test_handoff_events_name_tables_and_counts_never_the_statement_or_the_subject(captured):
    planned = captured.returns["handoff.plan"]
    (table,) = planned["tables"]
    plan = captured.complete("example_erasure_handoff.plan")
    handed = _table(plan, "inputs", "examples.handoff_accounts")
    assert handed["facets"]["version"]["datasetVersion"] == table["base_snapshot_id"]
    assert plan["outputs"] == []  # the engine deletes; the verification reports what changed
    assert plan["run"]["facets"]["dativo"]["operation"] == "erasure_handoff_plan"
    assert plan["run"]["facets"]["dativo"]["counts"] == {
        "tables": 1,
        "rows": 2,  # account 87 and the anonymous row holding its address
        "branches": 1,
        "tables_history_only": 0,
    }

    verify = captured.complete("example_erasure_handoff.verify")
    dativo = verify["run"]["facets"]["dativo"]
    assert dativo["operation"] == "erasure_handoff_verify"
    counted = ("rows_deleted", "tables", "tables_handed_off", "verified")
    assert {k: dativo["counts"][k] for k in counted} == {
        "rows_deleted": 2,
        "tables": 1,
        "tables_handed_off": 1,
        "verified": 1,
    }
    erased = _table(verify, "outputs", "examples.handoff_accounts")
    assert erased["facets"]["version"]["datasetVersion"] != table["base_snapshot_id"]

    text = "\n".join(
        line
        for line in captured.lines
        if json.loads(line)["job"]["name"].startswith("example_erasure_handoff")
    )
    assert text.count('"eventType"') >= 8  # start and complete of seed, plan, stand-in and verify
    hidden = [table["statement_path"], table["statement_mac"], *HANDOFF_SUBJECT]
    assert [found for found in hidden if found.lower() in text.lower()] == []


def test_split_ingest_commit_writes_the_table_at_its_snapshot_and_the_parts_write_nothing(captured):
    captured.ran("example_split_ingest")
    committed = captured.returns["split.commit"]
    assert committed["committed"] and committed["rows_written"] == SPLIT_ROWS
    event = captured.complete("example_split_ingest.split_events.commit")
    (source,) = event["inputs"]
    assert source["namespace"].startswith("postgres://")
    assert source["name"] == f"dativo_openlineage_{os.getpid()}.public.dativo_example_events"
    output = _table(event, "outputs", "examples.pg_events_split")
    assert output["facets"]["version"]["datasetVersion"] == str(committed["snapshot_id"])
    assert output["outputFacets"]["outputStatistics"] == {
        **output["outputFacets"]["outputStatistics"],
        "rowCount": SPLIT_ROWS,
        "size": committed["bytes_written"],
    }
    columns = ["id", "customer", "amount", "shipped_on", "created_at"]
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == columns
    lineage = output["facets"]["columnLineage"]["fields"]
    assert {c: [(i["name"], i["field"]) for i in lineage[c]["inputFields"]] for c in columns} == {
        c: [(source["name"], c)] for c in columns
    }
    counts = event["run"]["facets"]["dativo"]["counts"]
    assert (counts["parts"], counts["rows_read"], counts["committed"]) == (4, SPLIT_ROWS, 1)

    parts = captured.completed("example_split_ingest.split_events.write_part")
    assert len(parts) == 4
    named = (source["namespace"], source["name"])
    read = [([(i["namespace"], i["name"]) for i in p["inputs"]], p["outputs"]) for p in parts]
    assert read == [([named], [])] * 4
    shares = sorted((p["run"]["facets"]["dativo"]["counts"] for p in parts), key=lambda c: c["part_index"])
    assert [c["part_index"] for c in shares] == [0, 1, 2, 3] and {c["parts"] for c in shares} == {4}
    assert sum(c["rows_written"] for c in shares) == SPLIT_ROWS
    planned = [part["key_range"] for part in captured.returns["split.plan"]["parts"]]
    assert [(c.get("key_lower"), c.get("key_upper")) for c in shares] == [
        (r["lower"], r["upper"]) for r in planned
    ]
    assert "key_lower" not in shares[0] and "key_upper" not in shares[-1]  # unbounded: null keys included

    plan = captured.complete("example_split_ingest.split_events.plan")
    assert ([(i["namespace"], i["name"]) for i in plan["inputs"]], plan["outputs"]) == ([named], [])
    (started,) = [
        e
        for e in captured.events
        if e["eventType"] == "START" and e["job"]["name"] == "example_split_ingest.split_events.plan"
    ]
    assert "version" not in _table(started, "outputs", "examples.pg_events_split")["facets"]


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
