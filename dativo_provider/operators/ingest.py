"""IcebergIngestOperator: one source into one Iceberg table, in one atomic commit per run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.hooks.sources import source_connection_config
from dativo_provider.operators.common import (
    CONTRACT_TEMPLATE_FIELDS,
    ContractGated,
    TableAliasOutlet,
    airflow_errors,
    native_bound,
    renamed_parameter,
)
from dativo_provider.operators.lineage import OpenLineageFacets


class IcebergIngestOperator(OpenLineageFacets, ContractGated, TableAliasOutlet, BaseOperator):
    """Stream a source into an Iceberg table and push the run summary to XCom.

    Incremental sources store their cursor in the commit that writes the rows, so rerunning the
    same data interval never writes a row twice. A run that commits a snapshot emits an asset event
    for the table (``iceberg://<catalog server>/.../<catalog>/<namespace>/<table>``, see
    :mod:`dativo_provider.assets`) through the task's alias ``dativo:<dag id>.<task id>``, with the
    snapshot id, mode and row counts as its extra; a run that commits nothing emits none.

    :param source: the source spec, e.g. ``{"type": "postgres", "conn_id": "pg", "table": "orders",
        "cursor": "updated_at"}``. It names connections by id only: secrets stay in Airflow.
    :param table: the target table, ``"namespace.table"``.
    :param write_options: :class:`~dativo_provider.ingest.options.WriteOptions` as a dict, e.g.
        ``{"mode": "merge", "merge_keys": ["id"]}``.
    :param iceberg_conn_id: the ``iceberg`` connection; without ``iceberg_default`` the embedded
        catalog under ``$AIRFLOW_HOME/dativo`` is used.
    :param upper_bound: inclusive upper bound for the cursor, e.g. ``"{{ data_interval_end }}"``;
        ISO timestamps are read as datetimes, an empty or ``"None"`` rendering as no bound.
    :param contract: an ODCS contract file to enforce on every run (write-audit-publish); with it
        ``contract_dataset``, ``quarantine_table``, ``quality_report_path``, ``restrictions_table`` and
        ``hash_key_conn_id`` (``restrictions_key_conn_id`` is its deprecated name), as described in
        :class:`~dativo_provider.operators.common.ContractGated`.
    :param transform: applied to each batch before it is written (and before the contract audit):
        DuckDB SQL over the relation ``batch``, a function taking and returning Arrow, a
        ``{"name": ..., "steps": [...]}`` dict or a list of steps (see ``docs/ml.md``). Rows it filters
        out are reported as ``rows_dropped``.

    A lookback window for late-arriving rows belongs to the source spec (``"lookback": "2h"``): the
    source then reports that it may repeat rows, and the engine insists on ``merge``.
    """

    template_fields: Sequence[str] = (
        "source",
        "table",
        "write_options",
        "upper_bound",
        *CONTRACT_TEMPLATE_FIELDS,
        "transform",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"source": "json", "write_options": "json"}
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        source: Mapping[str, Any],
        table: str,
        write_options: Mapping[str, Any] | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        upper_bound: Any = None,
        contract: str | None = None,
        contract_dataset: str | None = None,
        quarantine_table: str | None = None,
        quality_report_path: str | None = None,
        restrictions_table: str | None = None,
        hash_key_conn_id: str | None = None,
        restrictions_key_conn_id: str | None = None,
        transform: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.table = table
        self.write_options = write_options or {}
        self.iceberg_conn_id = iceberg_conn_id
        self.upper_bound = upper_bound
        self.init_contract_gate(
            contract=contract, contract_dataset=contract_dataset, quarantine_table=quarantine_table,
            quality_report_path=quality_report_path, restrictions_table=restrictions_table,
            hash_key_conn_id=renamed_parameter(type(self).__name__, "restrictions_key_conn_id",
                                               restrictions_key_conn_id, "hash_key_conn_id", hash_key_conn_id),
        )
        self.transform = transform
        self.ingest_result: dict[str, Any] | None = None
        self.declare_table_alias()

    def execute(self, context: Context) -> dict[str, Any]:
        """Build the catalog, source and options, run one ingest, return its summary."""
        from dativo_provider.ingest.engine import run_ingest
        from dativo_provider.ingest.options import WriteOptions
        from dativo_provider.sources import ReadBounds, build_source

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            source = build_source(self.source, source_connection_config(self.source))
            options = WriteOptions.from_mapping(self.write_options)
            bounds = ReadBounds(upper=native_bound(self.upper_bound))
            gate = self.contract_gate(catalog)
            with self.contract_audit(gate, context):
                result = run_ingest(
                    source, catalog, self.table, self.gated_options(gate, options), bounds=bounds,
                    run_id=context.get("run_id"), audit=gate, transform=self.transform,
                )
        self.log_contract_decision(result)
        self.ingest_result = {**result.to_dict(), "asset_event": self._asset_event(context, catalog, result)}
        return self.ingest_result

    def _asset_event(self, context: Context, catalog: Any, result: Any) -> dict[str, Any] | None:
        """The table's asset event (URI and extra) when the run committed a snapshot, else None."""
        if not result.committed:
            self.log.info("%s: nothing committed, so no asset event", self.table)
            return None
        extra = result.event_extra()
        uri = self.emit_table_event(context, catalog, self.table, extra)
        return {"uri": uri, "extra": extra} if uri else None
