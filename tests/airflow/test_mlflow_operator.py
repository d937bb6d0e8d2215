"""MlflowLogTrainingSetOperator on a real local MLflow tracking store and the embedded Iceberg catalog: a new
run gets the training set as its input and ends FINISHED, an existing run is logged into and left open,
a bad manifest fails the task (naming the file) and the run it created is marked FAILED."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.airflow


class _TaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


@pytest.fixture
def manifest(iceberg_default, tmp_path):
    """A training set (3 labels, one feature table) in the embedded catalog, and its manifest."""
    import pyarrow as pa

    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ml.training_set import FeatureTable, LabelTable, build_training_set
    from tests.memory_source import TableSource

    catalog = IcebergHook().get_catalog_config()
    at = datetime(2024, 3, 1, tzinfo=UTC)
    features = pa.table({"customer_id": [1, 1], "feature_ts": [at, at + timedelta(days=1)],
                         "orders_30d": [3, 4]})
    labels = pa.table({"customer_id": [1, 1, 2], "label": [1, 0, 1],
                       "event_ts": [at + timedelta(hours=12), at + timedelta(days=2), at]})
    run_ingest(TableSource(features, identity="memory://features"), catalog, "ml.features")
    run_ingest(TableSource(labels, identity="memory://labels"), catalog, "ml.labels")
    return build_training_set(catalog, "churn", LabelTable("ml.labels", ("customer_id",), "event_ts"),
                              [FeatureTable("ml.features", ("customer_id",), "feature_ts", ("orders_30d",))],
                              manifest_path=str(tmp_path / "churn.json"), run_id="r1",
                              output_table="ml.churn_training").manifest


def _operator(tracking_uri: str, manifest_path: str, **kwargs):
    from dativo_provider.operators.mlflow import MlflowLogTrainingSetOperator

    return MlflowLogTrainingSetOperator(task_id="log_to_mlflow", manifest_path=manifest_path,
                                        tracking_uri=tracking_uri, **kwargs)


def test_a_new_run_gets_the_training_set_as_input(manifest, tracking_uri, tmp_path):
    from dativo_provider.ml.training_manifest import ContentHash

    ti = _TaskInstance()
    result = _operator(tracking_uri, str(tmp_path / "churn.json"), experiment_name="churn").execute(
        {"run_id": "manual__1", "ti": ti})
    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert ti.pushed == {"mlflow_run_id": run.info.run_id}
    assert run.info.status == "FINISHED" and run.data.tags["airflow.run_id"] == "manual__1"
    assert client.get_experiment(run.info.experiment_id).name == "churn"
    assert (result["row_count"], result["source"]["content_hash"]) == (3, manifest.content_hash)
    (logged,) = run.inputs.dataset_inputs
    rows = mlflow.data.get_source(logged).load()
    digest = ContentHash(manifest.columns)
    digest.add(rows)
    assert (digest.rows, digest.hexdigest) == (3, manifest.content_hash)


def test_an_existing_run_is_logged_into_and_left_open(manifest, tracking_uri, tmp_path):
    client = mlflow.MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("mine")).info.run_id
    _operator(tracking_uri, str(tmp_path / "churn.json"), run_id=run_id, context="validation").execute(
        {"run_id": "manual__2", "ti": _TaskInstance()})
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"
    (logged,) = run.inputs.dataset_inputs
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "validation"}


def test_a_bad_manifest_fails_the_task_and_the_run(iceberg_default, tracking_uri, tmp_path):
    from dativo_provider.compat import AirflowFailException

    missing = str(tmp_path / "nope.json")
    with pytest.raises(AirflowFailException, match=f"training-set manifest {missing}"):
        _operator(tracking_uri, missing, experiment_name="churn").execute(
            {"run_id": "r", "ti": _TaskInstance()})
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("churn").experiment_id])
    assert run.info.status == "FAILED"
