"""MLflow hand-off: log a training set as the input of an MLflow run (issue 13)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors
from dativo_provider.operators.lineage import OpenLineageFacets


class MlflowLogTrainingSetOperator(OpenLineageFacets, BaseOperator):
    """Log the training set a ``TrainingSetOperator`` built as an input of an MLflow run.

    One call of :func:`~dativo_provider.ml.mlflow_source.log_training_set`: the run gets a dataset input
    whose source (type ``dativo_iceberg``) names the catalog (no secrets), the output table, its snapshot
    and pin, the manifest and its content hash, so ``mlflow.data.get_source(input).load()`` reads exactly
    those rows later; the manifest is stored as a run artifact too. The output snapshot is pinned on the
    output table. Without ``run_id`` a new run is created in ``experiment_name`` (tagged with the DAG
    and run ids) and ended; the task returns the run id and the dataset, and pushes ``mlflow_run_id``.
    See ``docs/mlflow.md``.

    :param manifest_path: the training-set manifest (templated), e.g.
        ``training_set.output["manifest_path"]``.
    :param experiment_name: the experiment of a new run (created if missing; templated).
    :param run_id: log into this existing MLflow run instead (templated).
    :param run_name: a new run's name (templated); default ``<dag id>.<task id>``.
    :param tracking_uri: the tracking server; default MLflow's own (``MLFLOW_TRACKING_URI``).
    :param context: the input's context tag, e.g. ``training``, ``validation`` (templated).
    :param tags: tags of the dataset input (templated).
    :param iceberg_conn_id: the ``iceberg`` connection used to pin the output snapshot.
    """

    template_fields: Sequence[str] = ("manifest_path", "experiment_name", "run_id", "run_name", "context",
                                      "tags")
    template_fields_renderers: ClassVar[dict[str, str]] = {"tags": "json"}
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        manifest_path: str,
        experiment_name: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        context: str = "training",
        tags: Mapping[str, str] | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest_path = manifest_path
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.run_name = run_name
        self.tracking_uri = tracking_uri
        self.context = context
        self.tags = tags or {}
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Create the run (unless given), log the training set into it, end the run we created."""
        from dativo_provider.ml.mlflow_source import log_training_set

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            run_id, created = self._run(context)
            try:
                dataset = log_training_set(self.manifest_path, self.context, catalog=catalog, run_id=run_id,
                                           tags=dict(self.tags), tracking_uri=self.tracking_uri)
            except BaseException:
                if created:
                    self._client().set_terminated(run_id, "FAILED")
                raise
            if created:
                self._client().set_terminated(run_id, "FINISHED")
        self.log.info("MLflow run %s: training set %s logged (%s, digest %s)", run_id, dataset.name,
                      dataset.source.uri, dataset.digest)
        context["ti"].xcom_push(key="mlflow_run_id", value=run_id)
        self.run_summary = {"mlflow_run_id": run_id, "name": dataset.name, "digest": dataset.digest,
                            "source_type": dataset.source._get_source_type(), "source": dataset.source.to_dict(),
                            "row_count": dataset.profile["num_rows"]}
        return self.run_summary

    def _run(self, context: Context) -> tuple[str, bool]:
        """The run to log into, and whether this task created it."""
        if self.run_id:
            return str(self.run_id), False
        client = self._client()
        name = self.experiment_name or "Default"
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        dag_id = context["dag"].dag_id if context.get("dag") else self.dag_id
        run = client.create_run(experiment_id, run_name=self.run_name or f"{dag_id}.{self.task_id}",
                                tags={"airflow.dag_id": str(dag_id), "airflow.task_id": self.task_id,
                                      "airflow.run_id": str(context.get("run_id"))})
        return str(run.info.run_id), True

    def _client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri)
