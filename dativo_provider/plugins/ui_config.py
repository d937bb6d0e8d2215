"""The page's settings from Airflow: ``[dativo_ui]`` options (or ``AIRFLOW__DATIVO_UI__*`` variables)
and connections.

Options (each described in docs/ui.md, with its default): ``catalog_conn_ids`` (default
``iceberg_default``), ``contracts_folder``, ``reports_folder``, ``certificates_folder``, ``audit_table``,
``actions_dag_id``, ``signing_conn_id``, ``hash_key_conn_id``, ``request_dag_ids``,
``listing_ttl_seconds``.

Keys read here are used in the API server process only, to verify; none is ever sent to the browser.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from dativo_provider.ui.service import CatalogUi
from dativo_provider.ui.settings import DEFAULT_ACTIONS_DAG_ID, DEFAULT_AUDIT_TABLE, UiSettings
from dativo_provider.ui.tables import TableListCache

log = logging.getLogger(__name__)

SECTION = "dativo_ui"
_service: CatalogUi | None = None
_service_lock = threading.Lock()


def service() -> CatalogUi:
    """The page's views, built on first use: connections are read in the web server, not at import."""
    global _service
    with _service_lock:
        if _service is None:
            cache = TableListCache(listing_ttl=float(option("listing_ttl_seconds", "60")))
            _service = CatalogUi(ui_settings(), cache)
        return _service


def option(name: str, default: str = "") -> str:
    """``[dativo_ui] name`` from Airflow's configuration (``AIRFLOW__DATIVO_UI__NAME`` included)."""
    from airflow.configuration import conf

    value = conf.get(SECTION, name, fallback=None)
    return default if value is None or str(value).strip() == "" else str(value).strip()


def ui_settings() -> UiSettings:
    """Build the page's settings; a missing key connection only turns its check off (logged)."""
    from dativo_provider.hooks.iceberg import IcebergHook

    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    listed = option("catalog_conn_ids", IcebergHook.default_conn_name)
    conn_ids = [c.strip() for c in listed.split(",") if c.strip()]
    return UiSettings(
        catalogs={conn_id: IcebergHook(conn_id).get_catalog_config() for conn_id in conn_ids},
        contracts_dir=_folder(option("contracts_folder")),
        reports_dir=_folder(option("reports_folder", str(home / "dativo" / "reports"))),
        certificates_dir=_folder(option("certificates_folder", str(home / "dativo/dsr/certificates"))),
        audit_table=option("audit_table", DEFAULT_AUDIT_TABLE),
        actions_dag_id=option("actions_dag_id", DEFAULT_ACTIONS_DAG_ID),
        certificate_keys=_verifying_keys(option("signing_conn_id", "dativo_dsr_signing")),
        audit_key=_hash_key(option("hash_key_conn_id", "dativo_dsr_hash_key")),
    )


def _folder(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def _verifying_keys(conn_id: str) -> dict[str, Any]:
    from dativo_provider.hooks.privacy import DsrKeyHook

    try:
        key = DsrKeyHook(conn_id).signing_key()
    except Exception as exc:  # no key: certificates are shown as "not checked", with the reason
        log.info("certificates are not verified: connection %r gives no signing key (%s)", conn_id,
                 type(exc).__name__)
        return {}
    return {key.key_id: key.verifying_key()}


def _hash_key(conn_id: str) -> bytes | None:
    from dativo_provider.hooks.privacy import DsrKeyHook

    try:
        return DsrKeyHook(conn_id).hash_key()
    except Exception as exc:  # no key: the audit trail's chain is not checked
        log.info("the audit trail is not verified: connection %r gives no hash key (%s)", conn_id,
                 type(exc).__name__)
        return None
