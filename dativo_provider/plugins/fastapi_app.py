"""The page and its JSON API on Airflow 3: a FastAPI app the API server mounts under ``/dativo``.

Every route depends on Airflow's own authorization (``airflow.api_fastapi.core_api.security``), so
the auth manager in use decides, and a request without a valid session or token gets 401 (403 with
an invalid token or without the permission):

========================================  ===========================================================
route                                     permission
========================================  ===========================================================
``GET /dativo/``  (the page)              the ``WEBSITE`` view
``GET /dativo/api/tables[...]``           assets: GET (tables are the provider's assets)
``GET /dativo/api/quarantines``           assets: GET
``POST /dativo/api/quarantines/action``   DAG runs: POST on the actions DAG (Airflow checks it again
                                          when the page triggers the run through its REST API)
``GET /dativo/api/requests``              DAG audit logs: GET (the data-subject audit trail is one)
========================================  ===========================================================
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_asset,
    requires_access_dag,
    requires_access_view,
)

from dativo_provider.plugins import URL_PREFIX
from dativo_provider.plugins.request_runs import request_facts_from_runs
from dativo_provider.plugins.ui_config import service
from dativo_provider.ui.page import PAGE_HEADERS, PLOTS_HEADERS, render_page


class QuarantineAction(BaseModel):
    """A release or purge the page asks for."""

    catalog: str = Field(max_length=250)
    quarantine_table: str = Field(max_length=500)
    action: str = Field(pattern="^(release|purge)$")
    run_ids: list[str] = Field(min_length=1, max_length=100)


def _may_trigger_actions(request: Request, user: GetUserDep) -> None:
    requires_access_dag("POST", DagAccessEntity.RUN, service().settings.actions_dag_id)(request, user)


def create_app() -> FastAPI:
    """The app: the page at ``/``, the JSON API under ``/api``."""
    app = FastAPI(title="Dativo", description="Tables, quarantines and data-subject requests", docs_url=None,
                  redoc_url=None, openapi_url=None)
    read_tables = [Depends(requires_access_asset("GET"))]

    website = [Depends(requires_access_view(AccessView.WEBSITE))]

    @app.get("/", response_class=HTMLResponse, dependencies=website)
    def page(request: Request) -> HTMLResponse:
        mounted_at = str(request.scope.get("root_path") or "")  # <base>/dativo
        config = {"api": mounted_at + "/api/",
                  "trigger_url": mounted_at.removesuffix(URL_PREFIX) + "/api/v2/dags/{dag_id}/dagRuns",
                  "trigger_body": {"logical_date": None}}
        return HTMLResponse(render_page(config), headers=PAGE_HEADERS)

    @app.get("/api/tables", dependencies=read_tables)
    def tables() -> dict[str, Any]:
        return service().tables()

    @app.get("/api/tables/{catalog}/{table}", dependencies=read_tables)
    def table(catalog: str, table: str) -> dict[str, Any]:
        return _answer(lambda: service().table(catalog, table))

    @app.get("/api/tables/{catalog}/{table}/drift/{name}", dependencies=read_tables)
    def drift_plots(catalog: str, table: str, name: str) -> FileResponse:
        if catalog not in service().settings.catalogs:
            raise HTTPException(404, f"catalog {catalog!r} is not shown here")
        path = service().drift_plots(table, name)
        if path is None:
            raise HTTPException(404, f"no drift plots {name!r} for {table!r}")
        return FileResponse(path, media_type="text/html", headers=PLOTS_HEADERS)

    @app.get("/api/quarantines", dependencies=read_tables)
    def quarantines() -> dict[str, Any]:
        return service().quarantines()

    @app.post("/api/quarantines/action", dependencies=[Depends(_may_trigger_actions)])
    def quarantine_action(body: QuarantineAction) -> dict[str, Any]:
        conf = _answer(lambda: service().quarantine_action(body.catalog, body.quarantine_table, body.action,
                                                           body.run_ids))
        return {"dag_id": service().settings.actions_dag_id, "conf": conf}

    @app.get("/api/requests", dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.AUDIT_LOG))])
    def subject_requests() -> dict[str, Any]:
        return service().subject_requests(request_facts_from_runs())

    return app


def _answer(work: Any) -> Any:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return work()
    except (KeyError, NoSuchTableError) as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
