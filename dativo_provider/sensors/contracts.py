"""ContractSlaSensor: wait until an Iceberg table meets its contract's freshness and volume SLA."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from dativo_provider.compat import AirflowFailException, AirflowSensorTimeout, BaseSensorOperator, Context
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors, contract_path, renamed_parameter


class ContractSlaSensor(BaseSensorOperator):
    """Succeed once the table's main snapshot meets the contract's SLA checks.

    Each poke runs only the SLA checks the contract implies (``slaProperties``): freshness (the newest
    value of a timestamp column is at most ``latency`` old, measured against the worker's clock) and
    volume (the contract's minimum rows per run, ``dativoMinRowsPerRun``). Volume is checked on the
    whole table at its main snapshot, not on the rows the newest snapshot added.

    :param contract: the ODCS contract file (a relative path: next to the DAG file, then the cwd).
    :param table: the Iceberg table, ``"namespace.table"``; a table that does not exist yet is not
        fresh yet.
    :param contract_dataset: the contract dataset, when the contract describes several (``dataset`` is
        its deprecated name).
    :raises AirflowFailException: at execute, when the contract has no SLA checks for the dataset.

    ``mode``, ``poke_interval``, ``timeout``, ``soft_fail`` are BaseSensorOperator's. On timeout the
    error names the stale column and its age.
    """

    template_fields: Sequence[str] = ("contract", "table", "contract_dataset")
    ui_color = "#e8f5d0"

    def __init__(
        self,
        *,
        contract: str,
        table: str,
        contract_dataset: str | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        dataset: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.contract = contract
        self.table = table
        self.contract_dataset = renamed_parameter(type(self).__name__, "dataset", dataset, "contract_dataset",
                                                  contract_dataset)
        self.iceberg_conn_id = iceberg_conn_id
        self.unmet: str = ""
        self._contract: Any = None
        self._rules: list[Any] = []

    def execute(self, context: Context) -> Any:
        """Load the contract's SLA checks once, then poke as the sensor mode says."""
        self._contract, self._rules = self._sla_checks()
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(f"{exc} {self.table}: {self.unmet}".strip()) from exc

    def poke(self, context: Context) -> bool:
        """Run the SLA checks on the table's main snapshot; True when all pass."""
        from pyiceberg.exceptions import NoSuchTableError

        from dativo_provider.quality.runner import IcebergTarget, run_contract

        if self._contract is None:  # poked without execute (e.g. a test)
            self._contract, self._rules = self._sla_checks()
        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            try:
                report = run_contract(
                    self._contract,
                    IcebergTarget(catalog, self.table),
                    dataset=self.contract_dataset,
                    rules=self._rules,
                )
            except NoSuchTableError:
                self.unmet = "the table does not exist yet"
                self.log.info("SLA of %s not met: %s", self.table, self.unmet)
                return False
        failed = report.failures()
        if not failed:
            self.log.info("SLA met:\n%s", report.summary())
            return True
        self.unmet = "; ".join(self._explain(check) for check in failed)
        self.log.info("SLA of %s not met: %s", self.table, self.unmet)
        return False

    def _sla_checks(self) -> tuple[Any, list[Any]]:
        from dativo_provider.contracts.loader import load_contract
        from dativo_provider.quality.plan import checks_for, dataset_of

        with airflow_errors():
            contract = load_contract(contract_path(self, self.contract))
            dataset = dataset_of(contract, self.contract_dataset)
        rules = [rule for rule in checks_for(contract, dataset) if rule.category == "sla"]
        if not rules:
            raise AirflowFailException(
                f"contract {contract.id} has no SLA checks for dataset {dataset.name!r}: add a freshness "
                "(slaProperties latency on a timestamp column) or dativoMinRowsPerRun to it, or use "
                "ContractCheckOperator"
            )
        return contract, rules

    def _explain(self, check: Any) -> str:
        """One readable reason, e.g. ``ordered_at is stale: newest value is 2 days, 3:00:00 old ...``."""
        rule = next((r for r in self._rules if r.name == check.name), None)
        if check.outcome == "passed" or rule is None:
            return check.line()
        if check.metric == "freshness" and isinstance(check.observed, (int, float)):
            age = timedelta(seconds=round(check.observed))
            allowed = timedelta(seconds=rule.arguments.get("maxAgeSeconds", 0))
            return f"{check.column} is stale: its newest value is {age} old, the contract allows {allowed}"
        if check.metric == "rowCount" and check.observed is not None:
            expected = (rule.threshold or {}).get("mustBeGreaterOrEqualTo", check.threshold)
            return f"the table has {check.observed} rows; the contract expects at least {expected}"
        return f"{check.name}: {check.message or check.outcome}"
