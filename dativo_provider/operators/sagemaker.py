"""SageMaker Feature Store hand-off: export an Iceberg feature table's snapshot into a feature group
(issue 13). The engine is :mod:`dativo_provider.ml.sagemaker`; AWS access goes through the amazon
provider's ``AwsBaseHook`` (its ``aws`` connection: keys or role, region, ``endpoint_url``, retries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors
from dativo_provider.operators.lineage import OpenLineageFacets

FEATURESTORE_RUNTIME = "sagemaker-featurestore-runtime"


def featurestore_client(aws_conn_id: str | None, region_name: str | None = None) -> Any:
    """A boto3 ``sagemaker-featurestore-runtime`` client built by the amazon provider's ``AwsBaseHook``
    from the ``aws`` connection ``aws_conn_id`` (None: boto3's default credential chain).

    The connection's ``region_name`` extra applies unless ``region_name`` is given; its ``endpoint_url``
    (or ``service_config``) and ``config_kwargs`` (botocore retries, timeouts) are honoured. Erasure
    builds its client here from the ``aws_conn_id`` the serving ledger recorded.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from botocore.exceptions import NoRegionError

    from dativo_provider.exceptions import ConfigError

    try:
        return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=FEATURESTORE_RUNTIME,
                           region_name=region_name).get_conn()
    except NoRegionError:
        raise ConfigError(f"aws connection {aws_conn_id!r} has no region: set region_name on the task or the "
                          "connection's region_name extra") from None


class FeatureStoreExportOperator(OpenLineageFacets, BaseOperator):
    """Write a feature table's snapshot into a SageMaker Feature Store feature group.

    The newest row per entity (or, with ``history=True``, every row) becomes one record per row,
    written 25 at a time with ``BatchWriteRecord`` (``PutRecord`` on a boto3 without it); unprocessed
    and throttled entries are retried with backoff up to ``max_attempts`` times per batch. Before
    writing, the target is recorded on the feature table (``dativo.serving.sagemaker.<group>``: group,
    region, ``aws_conn_id``, identifier and event time features, entity columns; no credentials) so a
    data-subject erasure finds the group and deletes the subject's records there. Returns the export
    summary. See ``docs/sagemaker.md`` for the type mapping and failure semantics.

    :param feature_group_name: the feature group (name or ARN; templated). It must exist, with a feature
        for every column written and matching types.
    :param features: the feature table: ``{"contract": path, "dataset"?, "table"?}`` (its
        ``dativoFeatures``; a relative path is taken from the DAG file's folder) or ``{"table",
        "entities", "timestamp_column", "features"}`` (templated). One entity column.
    :param record_identifier_feature_name: the group's identifier feature; default the entity column.
    :param event_time_feature_name: the group's event time feature; default the timestamp column.
    :param snapshot_id: export this snapshot; or ``ref``, a tag or branch (templated); default main.
    :param history: write every row, not only the newest per entity (the offline store keeps history).
    :param target_stores: ``["OnlineStore"]`` or ``["OfflineStore"]``; default every store of the group.
    :param aws_conn_id: the amazon provider's ``aws`` connection.
    :param region_name: the group's region; default the connection's.
    :param max_attempts: attempts per batch of 25 records, the first included.
    :param concurrency: BatchWriteRecord calls in flight.
    :param iceberg_conn_id: the ``iceberg`` connection (default: the embedded catalog).
    """

    template_fields: Sequence[str] = ("feature_group_name", "features", "record_identifier_feature_name",
                                      "event_time_feature_name", "snapshot_id", "ref", "region_name")
    template_fields_renderers: ClassVar[dict[str, str]] = {"features": "json"}
    ui_color = "#e3d7fb"

    def __init__(
        self,
        *,
        feature_group_name: str,
        features: Mapping[str, Any],
        record_identifier_feature_name: str | None = None,
        event_time_feature_name: str | None = None,
        snapshot_id: int | str | None = None,
        ref: str | None = None,
        history: bool = False,
        target_stores: Sequence[str] | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        max_attempts: int = 8,
        concurrency: int = 4,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature_group_name = feature_group_name
        self.features = features
        self.record_identifier_feature_name = record_identifier_feature_name
        self.event_time_feature_name = event_time_feature_name
        self.snapshot_id = snapshot_id
        self.ref = ref
        self.history = history
        self.target_stores = list(target_stores or ())
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Record the target on the feature table, then export the snapshot; return the summary."""
        from dativo_provider.ml.sagemaker import FeatureGroupTarget, RetryPolicy, export_snapshot
        from dativo_provider.ml.serving import record_serving_target
        from dativo_provider.ml.training_set import FeatureTable

        with airflow_errors():
            table = FeatureTable.from_mapping(self._with_contract_path(self.features))
            client = featurestore_client(self.aws_conn_id, self.region_name)
            target = FeatureGroupTarget(
                self.feature_group_name, self.record_identifier_feature_name or table.entities[0],
                self.event_time_feature_name or table.timestamp_column, table.entities,
                self.region_name or client.meta.region_name, tuple(self.target_stores))
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            record_serving_target(catalog, table.table, "sagemaker", self.feature_group_name,
                                  {**target.to_dict(), "aws_conn_id": self.aws_conn_id})
            result = export_snapshot(
                client, catalog, table.table, target, timestamp_column=table.timestamp_column,
                features=table.features, snapshot_id=int(self.snapshot_id) if self.snapshot_id else None,
                ref=self.ref or None, history=self.history, retry=RetryPolicy(max_attempts=self.max_attempts),
                concurrency=self.concurrency)
        summary = self.run_summary = result.to_dict()
        self.resolved_region = target.region
        self.log.info("Exported %s@%s to feature group %s: %d records in %d requests (%d retried)",
                      table.table, summary["snapshot_id"], self.feature_group_name, result.records_written,
                      result.requests, result.retried_records)
        return summary

    def _with_contract_path(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        from dativo_provider.operators.common import contract_path

        if isinstance(spec, Mapping) and "contract" in spec:
            return {**spec, "contract": contract_path(self, str(spec["contract"]))}
        return spec
