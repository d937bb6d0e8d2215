"""The ``AirflowPlugin`` that adds the Dativo page to the Airflow UI.

On Airflow 3 a FastAPI app is mounted at ``/dativo`` and an external view puts the page in the
navigation (Browse menu), shown inside the Airflow UI. On Airflow 2.11 a Flask AppBuilder view adds a
"Dativo" menu. Airflow finds the plugin through the ``airflow.plugins`` entry point (always) and the
provider metadata's ``plugins`` key (when providers are discovered eagerly).

Importing this module stays light, because every Airflow component loads plugins: the FastAPI app is
built on its first request, inside the API server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from dativo_provider.plugins import URL_PREFIX
PAGE_NAME = "Dativo tables"


class _AppOnFirstRequest:
    """An ASGI app that builds :func:`~dativo_provider.plugins.fastapi_app.create_app` when first called,
    in a worker thread: its imports take a while, and the API server's event loop keeps serving."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    self._app = await asyncio.to_thread(_create_app)
        await self._app(scope, receive, send)


def _create_app() -> Any:
    from dativo_provider.plugins.fastapi_app import create_app

    return create_app()


def _base_path(path: str) -> str:
    """``path`` under the API server's ``[api] base_url`` path (the page's link in the navigation)."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="/") or "/"
    base_path = urlparse(base).path if base.startswith(("http://", "https://")) else base
    return base_path.rstrip("/") + path


def _flask_views() -> list[dict[str, Any]]:
    from dativo_provider.plugins.flask_view import DativoView

    return [{"name": "Tables, quarantines, requests", "category": "Dativo", "view": DativoView()}]


class DativoCatalogPlugin(AirflowPlugin):
    """Tables, contracts, quarantines, data-subject requests and drift, in the Airflow UI."""

    name = "dativo_catalog"
    if AIRFLOW_V_3_0_PLUS:
        fastapi_apps = [{"app": _AppOnFirstRequest(), "url_prefix": URL_PREFIX, "name": PAGE_NAME}]
        external_views = [{"name": PAGE_NAME, "href": _base_path(URL_PREFIX + "/"), "destination": "nav",
                           "category": "browse", "url_route": "dativo"}]
    else:
        appbuilder_views = _flask_views()
