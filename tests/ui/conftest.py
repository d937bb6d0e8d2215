"""The demo's state, built once per session for the page's tests (see :mod:`tests.ui.demo_lake`).

Each Airflow major version has its own page: the FastAPI app under the Airflow 3 API server, the Flask
AppBuilder view under Airflow 2. The other version's module is not collected (rather than skipped: a
skip would read as a test that could not run).
"""

from __future__ import annotations

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.ui.demo_lake import DemoLake, build_demo_lake

collect_ignore = ["test_flask_view.py"] if AIRFLOW_V_3_0_PLUS else ["test_api_server.py"]


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> DemoLake:
    return build_demo_lake(tmp_path_factory.mktemp("ui-demo"))
