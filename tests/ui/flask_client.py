"""Drive the Airflow 2.11 web app's Dativo view through Flask's test client; print what it answered.

Run as a script in a process of its own (Airflow reads its configuration once, from the environment
the test sets): ``python -m tests.ui.flask_client``. Prints one JSON object.
"""

from __future__ import annotations

import json
from typing import Any

from tests.ui.airflow_server import CATALOG_CONN_ID, PASSWORDS
from tests.ui.demo_lake import QUARANTINE_RUN

ACTION = {"catalog": CATALOG_CONN_ID, "quarantine_table": "examples.orders_quarantine", "action": "purge",
          "run_ids": [QUARANTINE_RUN]}
ROUTES = ("/dativo/api/tables", f"/dativo/api/tables/{CATALOG_CONN_ID}/examples.orders", "/dativo/api/quarantines",
          "/dativo/api/requests")


def _users(app: Any) -> None:
    security = app.appbuilder.sm
    for name, role in (("admin", "Admin"), ("viewer", "Viewer")):
        security.add_user(name, name, "ui-tests", f"{name}@example.com", security.find_role(role), PASSWORDS[name])


def _login(client: Any, user: str) -> None:
    client.post("/login/", data={"username": user, "password": PASSWORDS[user]}, follow_redirects=False)


def main() -> dict[str, Any]:
    from airflow.www.app import create_app

    app = create_app(testing=True)
    app.config["WTF_CSRF_ENABLED"] = False  # the login form; the page sends X-CSRFToken for its own posts
    _users(app)
    out: dict[str, Any] = {}
    with app.test_client() as anonymous:
        out["anonymous_page"] = anonymous.get("/dativo/").status_code
        out["anonymous_api"] = {route: anonymous.get(route).status_code for route in ROUTES}
        out["anonymous_action"] = anonymous.post("/dativo/api/quarantines/action", json=ACTION).status_code
    with app.test_client() as viewer:
        _login(viewer, "viewer")
        out["viewer_tables"] = viewer.get("/dativo/api/tables").status_code
        out["viewer_action"] = viewer.post("/dativo/api/quarantines/action", json=ACTION).status_code
    with app.test_client() as admin:
        _login(admin, "admin")
        page = admin.get("/dativo/")
        out["page"] = {"status": page.status_code, "csp": page.headers.get("Content-Security-Policy", ""),
                       "text": page.get_data(as_text=True)}
        out["api"] = {route: admin.get(route).get_json() for route in ROUTES}
        action = admin.post("/dativo/api/quarantines/action", json=ACTION)
        out["action"] = {"status": action.status_code, "body": action.get_json()}
        out["menu"] = "/dativo/" in admin.get("/home").get_data(as_text=True)
    return out


if __name__ == "__main__":
    print(json.dumps(main(), default=str))
