"""example_ml_pipeline and example_vertex_feature_export end to end with ``dag.test()``: the pipeline serves
its features through Feast and its MLflow run input loads back as the training set's rows (content hash);
the Vertex export holds exactly the tagged snapshot's rows; without the Google provider the DAG ends at our
export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest

from tests.airflow.helpers import dagbag, read_table, return_values, run_dag

pytestmark = pytest.mark.airflow


def test_ml_pipeline_logs_a_training_set_that_loads_back_from_mlflow(airflow_db, iceberg_default, dativo_home,
                                                                    monkeypatch):
    from dativo_provider.ml.training_manifest import ContentHash

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = run_dag("example_ml_pipeline", datetime(2024, 4, 2, 12, tzinfo=UTC))
    (summary,) = return_values(run, "training_set")
    manifest = json.loads(Path(summary["manifest_path"]).read_text())
    written = len(read_table("examples.mlp_ticket_training"))
    assert summary["row_count"] == manifest["row_count"] == written > 0
    features = read_table("examples.mlp_customer_features").to_pylist()
    expected = {"customer_id", "feature_ts", "orders_30d", "spend_30d", "days_since_last_order"}
    assert expected <= set(features[0])
    training = read_table("examples.mlp_ticket_training").to_pylist()
    assert sum(row["orders_30d"] is not None for row in training) > 0  # some tickets had fresh features

    # Feast serves each customer's newest feature row, as the feature table holds it.
    from dativo_provider.ml.feast_registry import feature_store

    newest: dict[int, dict] = {}
    for row in features:
        if row["customer_id"] not in newest or row["feature_ts"] > newest[row["customer_id"]]["feature_ts"]:
            newest[row["customer_id"]] = row
    (online,) = return_values(run, "materialize_online")
    assert online["entities_written"] == len(newest)
    store = feature_store(project="shop", registry=str(dativo_home / "feast/pipeline_registry.db"),
                          online_store=str(dativo_home / "feast/pipeline_online.db"))
    ids = sorted(newest)
    served = store.get_online_features(features=["customer_features:orders_30d", "customer_features:spend_30d"],
                                       entity_rows=[{"customer_id": i} for i in ids]).to_dict()
    assert served["orders_30d"] == [newest[i]["orders_30d"] for i in ids]
    assert served["spend_30d"] == [newest[i]["spend_30d"] for i in ids]

    (logged,) = return_values(run, "log_to_mlflow")
    client = mlflow.MlflowClient((dativo_home / "mlruns").absolute().as_uri())
    mlflow_run = client.get_run(logged["mlflow_run_id"])
    assert mlflow_run.info.status == "FINISHED"
    (dataset_input,) = mlflow_run.inputs.dataset_inputs
    rows = mlflow.data.get_source(dataset_input).load()
    digest = ContentHash(manifest["columns"])
    digest.add(rows)
    assert (digest.rows, digest.hexdigest) == (manifest["row_count"], manifest["content_hash"])


def test_vertex_export_writes_the_tagged_snapshot_and_needs_no_google_provider(airflow_db, iceberg_default,
                                                                               dativo_home, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.delenv("VERTEX_EXPORT_URI", raising=False)
    task_ids = set(dagbag().get_dag("example_vertex_feature_export").task_ids)
    try:
        import airflow.providers.google  # noqa: F401
    except ImportError:
        assert task_ids == {"ingest_orders", "customer_features", "export_features"}
    run = run_dag("example_vertex_feature_export", datetime(2024, 4, 2, 12, tzinfo=UTC))
    (export,) = return_values(run, "export_features")
    from dativo_provider.hooks.iceberg import IcebergHook

    table = IcebergHook().get_conn().load_table("examples.vertex_customer_features")
    tag = table.metadata.refs[export["ref"]]
    assert export["ref"] == "vertex-20240401" or export["ref"].startswith("vertex-")
    assert str(tag.snapshot_id) == export["snapshot_id"]
    assert all(Path(f).is_relative_to(dativo_home / "exports" / "vertex") for f in export["files"])
    exported = pa.concat_tables([pq.read_table(f) for f in export["files"]])
    tagged = table.scan(snapshot_id=tag.snapshot_id).to_arrow()
    assert export["rows"] == exported.num_rows == tagged.num_rows > 0
    key = "customer_id"
    def by_key(t):
        return sorted(t.to_pylist(), key=lambda r: r[key])

    assert by_key(exported) == by_key(tagged)
