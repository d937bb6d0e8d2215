"""ML feature pipeline operators: feature transforms over Iceberg snapshots and training sets.

The hand-offs live in their own modules and are named here too, so one import finds every ML operator:
:class:`FeastMaterializeOperator` (Feast online stores), :class:`FeatureStoreExportOperator` (SageMaker
Feature Store), :class:`MlflowLogTrainingSetOperator` (MLflow run inputs). Each imports its client only
when it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import (
    CONTRACT_TEMPLATE_FIELDS,
    ContractGated,
    TableAliasOutlet,
    airflow_errors,
)
from dativo_provider.operators.lineage import OpenLineageFacets


class FeatureTransformOperator(OpenLineageFacets, ContractGated, TableAliasOutlet, BaseOperator):
    """Run DuckDB SQL over Iceberg tables read at a snapshot, tag or branch, and commit the result.

    Each input is read at the snapshot it names (or its tag's, branch's, or the current one), pinned at
    the start of the run, and exposed to the SQL under its key in ``inputs``. The result goes through
    the ingest commit path: write mode, schema policy and exactly-once state apply. Each commit stores
    the input snapshot ids in its snapshot summary; a run whose inputs and SQL are those of the last
    commit commits nothing (and emits no asset event). See ``docs/ml.md``.

    :param sql: DuckDB SQL, or a ``.sql`` file next to the DAG (templated either way).
    :param inputs: ``{"orders": "shop.orders", "customers": {"table": "shop.customers", "tag": "v1"}}``;
        an input dict may also give ``snapshot_id`` or ``branch``, ``columns`` and a pyiceberg ``filter``.
    :param table: the feature table, ``"namespace.table"``.
    :param write_options: :class:`~dativo_provider.ingest.options.WriteOptions` as a dict; the mode
        defaults to ``replace`` (``merge`` on keys also fits: every run recomputes from whole inputs).
    :param transform: applied to each result batch: more SQL over ``batch`` or Python functions.
    :param transform_name: keys the transform's state in the table and names it in errors; default the
        task id.
    :param duckdb_settings: DuckDB settings, e.g. ``{"memory_limit": "2GB", "threads": "4"}``.
    :param iceberg_conn_id: the ``iceberg`` connection (default: the embedded catalog).
    :param contract: the feature table's ODCS contract, enforced on every commit; with it
        ``contract_dataset``, ``quarantine_table``, ``quality_report_path``, ``restrictions_table`` and
        ``hash_key_conn_id``, as on ``IcebergIngestOperator`` (see
        :class:`~dativo_provider.operators.common.ContractGated`).
    """

    template_fields: Sequence[str] = ("sql", "inputs", "table", "write_options", "transform",
                                      *CONTRACT_TEMPLATE_FIELDS)
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "inputs": "json",
                                                           "write_options": "json"}
    ui_color = "#e3d7fb"

    def __init__(
        self,
        *,
        sql: str,
        inputs: Mapping[str, Any],
        table: str,
        write_options: Mapping[str, Any] | None = None,
        transform: Any = None,
        transform_name: str | None = None,
        duckdb_settings: Mapping[str, str] | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        contract: str | None = None,
        contract_dataset: str | None = None,
        quarantine_table: str | None = None,
        quality_report_path: str | None = None,
        restrictions_table: str | None = None,
        hash_key_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.inputs = inputs
        self.table = table
        self.write_options = write_options or {}
        self.transform = transform
        self.transform_name = transform_name or self.task_id
        self.duckdb_settings = duckdb_settings or {}
        self.iceberg_conn_id = iceberg_conn_id
        self.init_contract_gate(
            contract=contract, contract_dataset=contract_dataset, quarantine_table=quarantine_table,
            quality_report_path=quality_report_path, restrictions_table=restrictions_table,
            hash_key_conn_id=hash_key_conn_id,
        )
        self.transform_result: dict[str, Any] | None = None
        self.declare_table_alias()

    def execute(self, context: Context) -> dict[str, Any]:
        """Pin the inputs, run the SQL, commit the result (through the contract gate, if any); return
        the run summary."""
        from dativo_provider.ingest.options import WriteOptions
        from dativo_provider.ml.features import FeatureTransform, run_feature_transform

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            options = WriteOptions.from_mapping({"mode": "replace", **self.write_options})
            feature = FeatureTransform(self.transform_name, self.sql, self.inputs, self.transform,
                                       self.duckdb_settings)
            gate = self.contract_gate(catalog)
            with self.contract_audit(gate, context):
                result = run_feature_transform(feature, catalog, self.table, self.gated_options(gate, options),
                                               run_id=context.get("run_id"), audit=gate)
        self.log_contract_decision(result)
        self.log.info("Inputs read: %s", result.source_details.get("inputs"))
        event = None
        if result.committed:
            extra = result.event_extra()
            uri = self.emit_table_event(context, catalog, self.table, extra)
            event = {"uri": uri, "extra": extra} if uri else None
        self.transform_result = {**result.to_dict(), "asset_event": event}
        return self.transform_result


class TrainingSetOperator(OpenLineageFacets, BaseOperator):
    """Build a training set: labels joined as of event time with feature tables, its inputs pinned.

    One call of :func:`~dativo_provider.ml.training_set.build_training_set`: every input snapshot read
    is pinned (``dativo-training/<name>/<run id>``), each label row gets the newest feature values at
    or before its event time (null beyond a feature table's TTL), the rows go to ``output_table`` and
    a manifest (tables, snapshot ids, pins, row count, content hash) to ``manifest_path``. The task
    returns the summary; the manifest path is also pushed as the ``manifest_path`` XCom. Rebuild with
    ``dativo training-set reproduce MANIFEST``. See ``docs/ml.md``.

    :param name: the training set's name (templated).
    :param labels: ``{"table", "keys", "timestamp_column", "columns"?}`` (templated).
    :param features: a list of ``{"contract": path, "dataset"?, "table"?}`` (the contract's
        ``dativoFeatures``; a relative path is taken from the DAG file's folder) or ``{"table",
        "entities", "timestamp_column", "features", "ttl_days"?}`` (templated).
    :param manifest_path: where the manifest JSON goes (templated), e.g.
        ``"/data/training/{{ run_id }}.json"``.
    :param output_table: ``"namespace.table"`` the rows replace (templated); None only hashes them.
    :param iceberg_conn_id: the ``iceberg`` connection (default: the embedded catalog).
    """

    template_fields: Sequence[str] = ("name", "labels", "features", "manifest_path", "output_table")
    template_fields_renderers: ClassVar[dict[str, str]] = {"labels": "json", "features": "json"}
    ui_color = "#e3d7fb"

    def __init__(
        self,
        *,
        name: str,
        labels: Mapping[str, Any],
        features: Sequence[Mapping[str, Any]],
        manifest_path: str,
        output_table: str | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.labels = labels
        self.features = features
        self.manifest_path = manifest_path
        self.output_table = output_table
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Pin the inputs, join, write the rows and the manifest; push the manifest path."""
        from dativo_provider.ml.training_set import FeatureTable, LabelTable, build_training_set

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            features = [FeatureTable.from_mapping(self._with_contract_path(spec)) for spec in self.features]
            result = build_training_set(catalog, self.name, LabelTable.from_mapping(self.labels), features,
                                        manifest_path=self.manifest_path, output_table=self.output_table,
                                        run_id=str(context["run_id"]))
        summary = self.run_summary = result.to_dict()
        self.log.info("Training set %s: %d rows, %s; manifest %s", self.name, summary["row_count"],
                      summary["content_hash"], result.manifest_path)
        context["ti"].xcom_push(key="manifest_path", value=result.manifest_path)
        return summary

    def _with_contract_path(self, spec: Any) -> Any:
        """A feature spec naming a contract, its path resolved from the DAG file's folder."""
        from dativo_provider.operators.common import contract_path

        if isinstance(spec, Mapping) and "contract" in spec:
            return {**spec, "contract": contract_path(self, str(spec["contract"]))}
        return spec


from dativo_provider.operators.feast import FeastMaterializeOperator  # noqa: E402  (re-exported, see above)
from dativo_provider.operators.mlflow import MlflowLogTrainingSetOperator  # noqa: E402
from dativo_provider.operators.sagemaker import FeatureStoreExportOperator  # noqa: E402

__all__ = ["FeastMaterializeOperator", "FeatureStoreExportOperator", "FeatureTransformOperator",
           "MlflowLogTrainingSetOperator", "TrainingSetOperator"]
