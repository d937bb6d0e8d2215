"""What the page shows and where it finds it: catalogs, folders and the DAGs its actions trigger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dativo_provider.iceberg.catalog import CatalogConfig

#: The audit trail's table, as the data-subject request operators default it.
DEFAULT_AUDIT_TABLE = "dativo.dsr_audit"
#: The DAG :func:`dativo_provider.plugins.quarantine_actions.quarantine_actions_dag` builds by default.
DEFAULT_ACTIONS_DAG_ID = "dativo_quarantine_actions"


@dataclass(frozen=True)
class UiSettings:
    """The page's sources, built by the Airflow layer from connections and ``[dativo_ui]`` options.

    :param catalogs: the catalogs shown, by the name the page gives them: the Airflow connection id
        the catalog comes from, which the actions DAG takes back as its ``iceberg_conn_id``.
    :param contracts_dir: ODCS contracts, for column classifications, rules and release actions.
    :param reports_dir: JSON reports per table (``<reports_dir>/<namespace.table>/*.json``): contract
        check reports and drift reports (:mod:`dativo_provider.ui.reports`).
    :param certificates_dir: data-subject request certificates (``<request_id>.json``).
    :param audit_table: the audit trail's Iceberg table, in each catalog that has it.
    :param actions_dag_id: the DAG that releases and purges quarantined rows when the page triggers it.
    :param certificate_keys: key id -> verifying key, to check certificate signatures (never served).
    :param audit_key: the audit trail's key, to check its hash chain (never served).
    """

    catalogs: Mapping[str, CatalogConfig]
    contracts_dir: Path | None = None
    reports_dir: Path | None = None
    certificates_dir: Path | None = None
    audit_table: str = DEFAULT_AUDIT_TABLE
    actions_dag_id: str = DEFAULT_ACTIONS_DAG_ID
    certificate_keys: Mapping[str, object] = field(default_factory=dict, repr=False)
    audit_key: bytes | None = field(default=None, repr=False)

    def catalog(self, name: str) -> CatalogConfig:
        """The catalog called ``name``; KeyError names the ones configured."""
        if name not in self.catalogs:
            raise KeyError(f"catalog {name!r} is not shown here; configured: {sorted(self.catalogs)}")
        return self.catalogs[name]
