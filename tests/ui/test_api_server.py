"""The page inside a real Airflow 3 API server: authentication, the JSON API, and the page in Chromium.

One server per module (start-up is the slow part). The browser tests drive Debian's ``chromium``
through Playwright; set ``DATIVO_UI_SCREENSHOTS=<folder>`` to save a screenshot of each view there
(``docs/img`` holds the ones docs/ui.md shows).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.airflow_server import (
    CATALOG_CONN_ID,
    CATALOG_SECRET,
    PASSWORDS,
    ApiServer,
    prepare_home,
    server_env,
    start,
    stop,
)
from tests.ui.demo_lake import HASH_KEY, QUARANTINE_RUN, REQUEST_ID, SCRIPT_TABLE, SIGNING_SECRET, DemoLake
from tests.ui.thousand_tables import TABLES, thousand_tables

pytestmark = pytest.mark.timeout(900)  # Airflow 3 only: see conftest.py

BENCH_CONN_ID = "bench_lake"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
READ_ROUTES = ("/dativo/", "/dativo/api/tables", f"/dativo/api/tables/{CATALOG_CONN_ID}/examples.orders",
               "/dativo/api/quarantines", "/dativo/api/requests")
ACTION = {"catalog": CATALOG_CONN_ID, "quarantine_table": "examples.orders_quarantine", "action": "purge",
          "run_ids": [QUARANTINE_RUN]}


@pytest.fixture(scope="module")
def server(demo_lake: DemoLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("airflow-home")
    thousand_tables(home / "bench-lake")
    env = server_env(home, demo_lake, {BENCH_CONN_ID: home / "bench-lake"})
    prepare_home(home, env)
    process, started = start(home, env)
    try:
        # The first request builds the app and loads the catalog (slow on a busy machine): once, here.
        warm = httpx.get(f"{started.base}/dativo/api/tables", timeout=600,
                         headers={"Authorization": f"Bearer {started.token('admin')}"})
        assert warm.status_code == 200, f"{warm.status_code} {warm.text[:500]}\n{started.log.read_text()[-3000:]}"
        yield started
    finally:
        stop(process)


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token('admin')}"}


def test_every_route_refuses_unauthenticated_requests(server: ApiServer):
    for route in READ_ROUTES:
        assert httpx.get(server.base + route, timeout=60).status_code == 401, route
        forged = httpx.get(server.base + route, headers={"Authorization": "Bearer not-a-jwt"}, timeout=60)
        assert forged.status_code == 403, route
    assert httpx.post(f"{server.base}/dativo/api/quarantines/action", json=ACTION, timeout=60).status_code == 401


def test_a_viewer_reads_but_may_not_trigger_actions(server: ApiServer):
    viewer = {"Authorization": f"Bearer {server.token('viewer')}"}
    assert httpx.get(f"{server.base}/dativo/api/tables", headers=viewer, timeout=120).status_code == 200
    refused = httpx.post(f"{server.base}/dativo/api/quarantines/action", json=ACTION, headers=viewer, timeout=60)
    assert refused.status_code == 403


def test_the_plugin_registers_its_app_and_navigation_entry(server: ApiServer, admin: dict[str, str]):
    plugins = httpx.get(f"{server.base}/api/v2/plugins", headers=admin, timeout=60).json()["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "dativo_catalog"]
    assert [app["url_prefix"] for app in ours["fastapi_apps"]] == ["/dativo"]
    (view,) = ours["external_views"]
    assert view["url_route"] == "dativo" and view["href"] == "/dativo/" and view["destination"] == "nav"


def test_the_json_api_shows_the_demo_and_no_secret(server: ApiServer, admin: dict[str, str]):
    answers = {route: httpx.get(server.base + route, headers=admin, timeout=120) for route in READ_ROUTES[1:]}
    assert all(answer.status_code == 200 for answer in answers.values())
    tables = {row["table"] for row in answers["/dativo/api/tables"].json()["tables"]}
    assert {"examples.customers", "examples.orders", "examples.orders_quarantine", SCRIPT_TABLE} <= tables
    (held,) = answers["/dativo/api/quarantines"].json()["quarantines"]
    assert held["runs"][0]["run_id"] == QUARANTINE_RUN
    (request,) = answers["/dativo/api/requests"].json()["requests"]
    assert request["request_id"] == REQUEST_ID and request["certificate"]["valid"] is True
    served = "".join(answer.text for answer in answers.values())
    for secret in (CATALOG_SECRET, SIGNING_SECRET.decode(), HASH_KEY.decode(), *PASSWORDS.values()):
        assert secret not in served


def test_a_thousand_tables_list_over_http_in_under_a_second(server: ApiServer, admin: dict[str, str]):
    seconds = []
    for _ in range(3):
        answer = httpx.get(f"{server.base}/dativo/api/tables", headers=admin, timeout=120)
        seconds.append(answer.elapsed.total_seconds())
    rows = [row for row in answer.json()["tables"] if row["catalog"] == BENCH_CONN_ID]
    assert len(rows) == TABLES and answer.json()["errors"] == {}
    print(f"\nGET /dativo/api/tables ({len(answer.json()['tables'])} tables): {min(seconds) * 1000:.0f} ms")
    assert max(seconds) < 1.0


def test_the_action_api_answers_the_conf_for_the_actions_dag(server: ApiServer, admin: dict[str, str]):
    planned = httpx.post(f"{server.base}/dativo/api/quarantines/action", json=ACTION, headers=admin, timeout=60)
    assert planned.status_code == 200, planned.text
    assert planned.json()["dag_id"] == "dativo_quarantine_actions"
    assert planned.json()["conf"]["run_ids"] == [QUARANTINE_RUN]
    unknown = httpx.post(f"{server.base}/dativo/api/quarantines/action", headers=admin, timeout=60,
                         json={**ACTION, "run_ids": ["not-held"]})
    assert unknown.status_code == 400 and "not held" in unknown.text


# --- in the browser --------------------------------------------------------------------------------------


def _missing(what: str) -> None:
    """Skip, except in CI (``DATIVO_REQUIRE_SERVICES=1``), where a browser test that cannot run fails."""
    if os.environ.get("DATIVO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (DATIVO_REQUIRE_SERVICES=1)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:
        _missing("Playwright for Python (the test group's playwright) is not installed")
    if not Path(CHROMIUM).exists():
        _missing("Debian's chromium package is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: ApiServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": "_token", "value": server.token("admin"), "url": server.base}])
    opened = context.new_page()
    opened.dialogs = []  # every alert/confirm the page raised, so an injected alert() fails a test
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.accept()))
    yield opened
    context.close()


def _open(page: Any, server: ApiServer, view: str, ready: str) -> None:
    page.goto(f"{server.base}/dativo/{view}")
    page.get_by_text(ready).first.wait_for(timeout=120_000)


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("DATIVO_UI_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"ui_{name}.png"), full_page=True)


def test_the_page_lists_the_demo_tables_and_renders_a_script_name_as_text(page: Any, server: ApiServer):
    _open(page, server, "", "orders_quarantine")
    rows = page.locator("main tbody tr").all_inner_texts()
    names = {row.split("\t")[2] for row in rows}
    assert {"customers", "orders", "orders_quarantine", "<script>"} <= names
    assert page.evaluate("document.querySelectorAll('script').length") == 2  # ours only
    page.get_by_label("Filter tables").fill(f"{CATALOG_CONN_ID}.")
    assert page.locator("main tbody tr").count() == 6
    _screenshot(page, "tables")
    page.get_by_role("link", name="<script>").click()
    page.get_by_text(f"{CATALOG_CONN_ID} / {SCRIPT_TABLE}").wait_for(timeout=60_000)
    assert page.locator("main td", has_text="<b>col</b>").count() == 1  # the column name, as text
    assert page.locator("main b, main img").count() == 0 and page.dialogs == []


def test_the_table_view_shows_contract_results_quarantine_and_drift(page: Any, server: ApiServer):
    _open(page, server, f"#table/{CATALOG_CONN_ID}/examples.orders", "Contract results")
    text = page.locator("main").inner_text()
    for expected in ("urn:dativo:examples:orders", "currency_known", "amount_matches_quantity",
                     "examples.orders_quarantine", "customer_id", "confidential", "drift-20240402.json"):
        assert expected in text, expected
    _screenshot(page, "table")
    with page.expect_popup() as popup:
        page.get_by_role("link", name="plots").click()
    plots = popup.value
    plots.wait_for_load_state()
    assert "orders: March vs January" in plots.title() + plots.content()


def test_quarantines_view_triggers_a_purge_run_through_airflow(page: Any, server: ApiServer,
                                                              admin: dict[str, str]):
    _open(page, server, "#quarantines", QUARANTINE_RUN)
    assert "status_known" in page.locator("main").inner_text()
    _screenshot(page, "quarantines")
    page.get_by_role("button", name="Purge").click()
    page.get_by_text("Triggered dativo_quarantine_actions run").wait_for(timeout=60_000)
    assert page.dialogs and page.dialogs[0].startswith("Purge for good")
    runs = httpx.get(f"{server.base}/api/v2/dags/dativo_quarantine_actions/dagRuns", headers=admin,
                     timeout=60).json()["dag_runs"]
    assert [run["conf"] for run in runs] == [{
        "action": "purge", "catalog": CATALOG_CONN_ID, "table": "examples.orders",
        "quarantine_table": "examples.orders_quarantine", "contract": runs[0]["conf"]["contract"],
        "run_ids": [QUARANTINE_RUN]}]
    assert json.dumps(runs[0]["conf"]).count("orders.odcs.yaml") == 1


def test_requests_view_shows_the_erasure_and_its_verified_certificate(page: Any, server: ApiServer):
    _open(page, server, "#requests", REQUEST_ID)
    text = page.locator("main").inner_text()
    assert "erasure" in text and "completed" in text and "signature valid" in text and "erasure verified" in text
    assert "Audit trail in demo_lake: verified" in text
    _screenshot(page, "requests")


def test_the_page_opens_inside_the_airflow_ui(page: Any, server: ApiServer):
    page.goto(f"{server.base}/plugin/dativo")
    frame = page.frame_locator("iframe[src='/dativo/']")
    frame.get_by_text("orders_quarantine").first.wait_for(timeout=120_000)
    assert frame.get_by_role("link", name="Quarantines").count() == 1
    _screenshot(page, "in_airflow")
