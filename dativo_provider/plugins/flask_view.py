"""The page and its JSON API on Airflow 2.11: a Flask AppBuilder view under ``/dativo``.

The same routes and permissions as on Airflow 3 (:mod:`.fastapi_app`), checked with the auth
manager: the page sends a visitor who is not logged in to the login page, as Airflow's own views
do; the JSON API answers 401 (not logged in) or 403 (no permission).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, jsonify, request, send_file
from flask_appbuilder import BaseView, expose

from airflow.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.www.auth import has_access_view

from dativo_provider.plugins import URL_PREFIX
from dativo_provider.plugins.request_runs import request_facts_from_runs
from dativo_provider.plugins.ui_config import service
from dativo_provider.ui.page import PAGE_HEADERS, PLOTS_HEADERS, render_page


def _api(is_authorized: Callable[[Any], bool]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """401 without a login, 403 when ``is_authorized(auth_manager)`` is false, else the view."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            from airflow.www.extensions.init_auth_manager import get_auth_manager

            manager = get_auth_manager()
            if not manager.is_logged_in():
                return jsonify(detail="Not authenticated"), 401
            if not is_authorized(manager):
                return jsonify(detail="Forbidden"), 403
            return view(*args, **kwargs)

        return checked

    return decorator


def _read_tables(manager: Any) -> bool:
    return bool(manager.is_authorized_dataset(method="GET"))


def _trigger_actions(manager: Any) -> bool:
    details = DagDetails(id=service().settings.actions_dag_id)
    return bool(manager.is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN, details=details))


def _read_audit_logs(manager: Any) -> bool:
    return bool(manager.is_authorized_dag(method="GET", access_entity=DagAccessEntity.AUDIT_LOG))


class DativoView(BaseView):
    """Tables, quarantines and data-subject requests."""

    route_base = URL_PREFIX
    default_view = "page"

    @expose("/")
    @has_access_view(AccessView.WEBSITE)
    def page(self) -> Response:
        from flask_wtf.csrf import generate_csrf

        root = request.script_root
        config = {"api": f"{root}{URL_PREFIX}/api/", "trigger_url": f"{root}/api/v1/dags/{{dag_id}}/dagRuns",
                  "trigger_body": {}, "csrf_token": generate_csrf()}
        return Response(render_page(config), mimetype="text/html", headers=PAGE_HEADERS)

    @expose("/api/tables")
    @_api(_read_tables)
    def tables(self) -> Response:
        return jsonify(service().tables())

    @expose("/api/tables/<catalog>/<table>")
    @_api(_read_tables)
    def table(self, catalog: str, table: str) -> Any:
        return _answer(lambda: service().table(catalog, table))

    @expose("/api/tables/<catalog>/<table>/drift/<name>")
    @_api(_read_tables)
    def drift_plots(self, catalog: str, table: str, name: str) -> Any:
        path = service().drift_plots(table, name) if catalog in service().settings.catalogs else None
        if path is None:
            return jsonify(detail=f"no drift plots {name!r} for {table!r}"), 404
        response = send_file(path, mimetype="text/html")
        response.headers.update(PLOTS_HEADERS)
        return response

    @expose("/api/quarantines")
    @_api(_read_tables)
    def quarantines(self) -> Response:
        return jsonify(service().quarantines())

    @expose("/api/quarantines/action", methods=["POST"])
    @_api(_trigger_actions)
    def quarantine_action(self) -> Any:
        body = request.get_json(silent=True) or {}
        run_ids = body.get("run_ids")
        if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
            return jsonify(detail="run_ids must be a list of run ids"), 400
        return _answer(lambda: {
            "dag_id": service().settings.actions_dag_id,
            "conf": service().quarantine_action(str(body.get("catalog")), str(body.get("quarantine_table")),
                                                str(body.get("action")), run_ids),
        })

    @expose("/api/requests")
    @_api(_read_audit_logs)
    def subject_requests(self) -> Response:
        return jsonify(service().subject_requests(request_facts_from_runs()))


def _answer(work: Callable[[], Any]) -> Any:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return jsonify(work())
    except (KeyError, NoSuchTableError) as exc:
        return jsonify(detail=str(exc).strip("'\"")), 404
    except ValueError as exc:
        return jsonify(detail=str(exc)), 400
