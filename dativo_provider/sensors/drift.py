"""DriftSensor: wait for a new snapshot of an Iceberg table, then check it for feature drift."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from dativo_provider.compat import AirflowFailException, BaseSensorOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors
from dativo_provider.operators.drift_common import DRIFT_TEMPLATE_FIELDS, DriftCheckMixin
from dativo_provider.operators.lineage import OpenLineageFacets


class DriftSensor(OpenLineageFacets, BaseSensorOperator, DriftCheckMixin):
    """Wait until ``table``'s ``branch`` has a new snapshot, then check it against ``reference``.

    A snapshot is new when it is not ``after_snapshot_id`` (default: the reference's own snapshot, so
    the sensor waits while the table still is the reference) and was committed after
    ``committed_after`` (e.g. ``"{{ data_interval_end }}"``; default: any time). Each poke reads only
    table metadata. With ``deferrable=True`` the wait happens in the triggerer
    (:class:`~dativo_provider.triggers.drift.DriftSnapshotTrigger` polls every ``poke_interval``);
    otherwise use ``mode="reschedule"`` for long waits. The statistics always run in the worker, on
    the snapshot found, exactly as :class:`~dativo_provider.operators.drift.DriftCheckOperator`
    (same parameters, same ``on_drift`` and ``notifier``); the return value is the verdict.

    :param table: ``"namespace.table"`` to watch and check.
    :param reference: the reference sample (see ``DriftCheckOperator``), ``table`` by default.
    :param branch: the branch to watch (default ``main``).
    :param window: check only rows with ``start <= column < end`` of the new snapshot:
        ``{"column", "start", "end"}`` (templated).
    """

    template_fields: Sequence[str] = ("after_snapshot_id", "committed_after", "window", *DRIFT_TEMPLATE_FIELDS)
    template_fields_renderers: ClassVar[dict[str, str]] = {"reference": "json", "options": "json"}
    ui_color = "#fbe3d7"

    def __init__(
        self,
        *,
        table: str,
        reference: Any,
        branch: str = "main",
        after_snapshot_id: str | int | None = None,
        committed_after: str | datetime | None = None,
        window: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        contract: str | None = None,
        contract_dataset: str | None = None,
        on_drift: str = "fail",
        drift_branch: str | Sequence[str] | None = None,
        no_drift_branch: str | Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        report_path: str | None = None,
        json_path: str | None = None,
        notifier: Any = None,
        mlflow_run_id: str | None = None,
        deferrable: bool = False,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.branch = branch
        self.after_snapshot_id = after_snapshot_id
        self.committed_after = committed_after
        self.window = window
        self.deferrable = deferrable
        self.init_drift(table=table, reference=reference, columns=columns, contract=contract,
                        contract_dataset=contract_dataset, on_drift=on_drift, drift_branch=drift_branch,
                        no_drift_branch=no_drift_branch, report_path=report_path, json_path=json_path,
                        options=options, notifier=notifier, mlflow_run_id=mlflow_run_id,
                        iceberg_conn_id=iceberg_conn_id)
        self.found_snapshot_id: str | None = None

    def execute(self, context: Context) -> Any:
        """Wait (poke, reschedule or defer), then check the new snapshot."""
        if self.deferrable:
            if not self.poke(context):
                self.defer(trigger=self._trigger(), method_name="execute_complete",
                           timeout=timedelta(seconds=float(self.timeout)))
        else:
            super().execute(context)
        return self._check(context)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Back from the trigger with the new snapshot's id: check it."""
        if not event or event.get("status") != "success":
            raise AirflowFailException(f"waiting for a new snapshot of {self.table} failed: "
                                       f"{(event or {}).get('message', 'no event')}")
        self.found_snapshot_id = str(event["snapshot_id"])
        return self._check(context)

    def poke(self, context: Context) -> bool:
        """True once the branch head is a new snapshot (metadata only)."""
        from dativo_provider.ml.drift_iceberg import head_snapshot
        from dativo_provider.triggers.drift import is_new_snapshot

        with airflow_errors():
            head = head_snapshot(IcebergHook(self.iceberg_conn_id).get_catalog_config(), str(self.table),
                                 self.branch)
            after = self._after_snapshot_id()
        if head is None or not is_new_snapshot(head[0], head[1], after, self._committed_after_ms()):
            self.log.info("No new snapshot of %s on %s yet (head %s)", self.table, self.branch,
                          head[0] if head else None)
            return False
        self.found_snapshot_id = str(head[0])
        return True

    def _check(self, context: Context) -> dict[str, Any]:
        current: dict[str, Any] = {"table": self.table, "snapshot_id": self.found_snapshot_id}
        if self.window:
            current["window"] = dict(self.window)
        return self.run_drift_check(context, current)

    def _after_snapshot_id(self) -> str | None:
        if self.after_snapshot_id not in (None, "", "None"):
            return str(self.after_snapshot_id)
        from dativo_provider.ml.drift_iceberg import TableSample, pin

        catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config().load()
        sample = TableSample.parse(self.sample(self.reference, "reference"), "reference")
        if sample.table != self.table:
            return None
        return str(pin(catalog, sample, "reference").snapshot_id)

    def _committed_after_ms(self) -> int | None:
        value = self.committed_after
        if value in (None, "", "None"):
            return None
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            raise AirflowFailException(f"committed_after {value!r} needs a time zone (e.g. +00:00)")
        return int(moment.timestamp() * 1000)

    def _trigger(self) -> Any:
        from dativo_provider.triggers.drift import DriftSnapshotTrigger

        return DriftSnapshotTrigger(str(self.table), self.iceberg_conn_id, self.branch,
                                    after_snapshot_id=self._after_snapshot_id(),
                                    committed_after_ms=self._committed_after_ms(),
                                    poll_interval=float(self.poke_interval))
