"""The page's JSON API, one method per view, shared by the Airflow 3 (FastAPI) and 2 (Flask) plugins.

A catalog that cannot be reached does not break the page: its error is shown in place of its
tables, with every secret of its configuration (and any ``user:password@`` in a URL) masked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from dativo_provider.ui.contract_index import ContractIndex
from dativo_provider.ui.quarantines import Quarantine, action_conf, quarantine
from dativo_provider.ui.reports import plot_file
from dativo_provider.ui.settings import UiSettings
from dativo_provider.ui.subject_requests import RequestFacts, audit_check, subject_requests
from dativo_provider.ui.table_detail import table_detail
from dativo_provider.ui.tables import TableListCache, redact_identity

if TYPE_CHECKING:
    from pathlib import Path

    from pyiceberg.catalog import Catalog

log = logging.getLogger(__name__)
T = TypeVar("T")


class CatalogUi:
    """The views over ``settings``; catalogs are loaded once and kept (they hold connection pools)."""

    def __init__(self, settings: UiSettings, cache: TableListCache | None = None) -> None:
        self.settings = settings
        self.cache = cache or TableListCache()
        self.contracts = ContractIndex(settings.contracts_dir)
        self._catalogs: dict[str, Catalog] = {}
        self._lock = threading.Lock()

    def catalog(self, label: str) -> Catalog:
        config = self.settings.catalog(label)
        with self._lock:
            if label not in self._catalogs:
                self._catalogs[label] = config.load()
            return self._catalogs[label]

    def tables(self) -> dict[str, Any]:
        """Every table of every catalog; ``errors`` names the catalogs that did not answer."""
        started = time.perf_counter()
        rows: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        for label in self.settings.catalogs:
            found = self._guarded(label, errors, lambda: self.cache.rows(label, self.catalog(label)))
            rows.extend(row.to_dict() for row in found or [])
        return {"tables": rows, "errors": errors, "seconds": round(time.perf_counter() - started, 4)}

    def table(self, label: str, identifier: str) -> dict[str, Any]:
        """One table's page (raises KeyError for an unknown catalog, NoSuchTableError for a table)."""
        return table_detail(label, self.catalog(label), identifier, contracts=self.contracts,
                            reports_dir=self.settings.reports_dir)

    def drift_plots(self, identifier: str, name: str) -> Path | None:
        """The HTML plots file of a drift report of ``identifier``, or None."""
        return plot_file(self.settings.reports_dir, identifier, name)

    def quarantines(self) -> dict[str, Any]:
        """Every quarantine table with rows per run and check, and the actions DAG's id."""
        held: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        for label in self.settings.catalogs:
            found = self._guarded(label, errors, lambda: self._quarantines_of(label))
            held.extend(q.to_dict() for q in found or [])
        return {"quarantines": held, "errors": errors, "actions_dag_id": self.settings.actions_dag_id}

    def quarantine_action(self, label: str, quarantine_table: str, action: str,
                          run_ids: list[str]) -> dict[str, Any]:
        """The actions DAG's conf for releasing or purging ``run_ids`` (checked against what is held)."""
        for held in self._quarantines_of(label):
            if held.quarantine_table == quarantine_table:
                return action_conf(action, held, run_ids)
        raise ValueError(f"{quarantine_table} is not a quarantine table of catalog {label!r}")

    def _quarantines_of(self, label: str) -> list[Quarantine]:
        catalog = self.catalog(label)
        guarded = [row for row in self.cache.rows(label, catalog) if row.quarantine_of]
        return [quarantine(label, catalog, row.identifier, str(row.quarantine_of),
                           self._contract_of(label, catalog, str(row.quarantine_of)))
                for row in guarded]

    def _contract_of(self, label: str, catalog: Catalog, table: str) -> Any:
        from dativo_provider.quality.wap import CONTRACT_PROPERTY

        if not catalog.table_exists(table):
            return None
        return self.contracts.get(catalog.load_table(table).metadata.properties.get(CONTRACT_PROPERTY))

    def subject_requests(self, facts: Mapping[str, RequestFacts] | None = None) -> dict[str, Any]:
        """Requests of every catalog's audit trail, with certificate and trail checks."""
        settings = self.settings
        requests: list[dict[str, Any]] = []
        trails: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for label in settings.catalogs:
            def read(label: str = label) -> list[Any]:
                catalog = self.catalog(label)
                trails[label] = audit_check(catalog, settings.audit_table, settings.audit_key)
                return subject_requests(label, catalog, settings.audit_table,
                                        certificates_dir=settings.certificates_dir,
                                        verifying_keys=settings.certificate_keys, facts=facts)
            requests.extend(row.to_dict() for row in self._guarded(label, errors, read) or [])
        return {"requests": requests, "audit_trails": trails, "errors": errors}

    def _guarded(self, label: str, errors: dict[str, str], work: Callable[[], T]) -> T | None:
        try:
            return work()
        except Exception as exc:  # one catalog's failure is shown, not raised: the others still answer
            log.warning("catalog %s: %s", label, type(exc).__name__)
            errors[label] = self.masked(label, f"{type(exc).__name__}: {exc}")
            return None

    def masked(self, label: str, text: str) -> str:
        """``text`` with the catalog's secrets and any URL credentials replaced by ``***``."""
        for secret in self.settings.catalogs[label].secrets:
            text = text.replace(secret, "***")
        return redact_identity(text)
