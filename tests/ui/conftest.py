"""The demo's state, built once per session for the page's tests (see :mod:`tests.ui.demo_lake`)."""

from __future__ import annotations

import pytest

from tests.ui.demo_lake import DemoLake, build_demo_lake


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> DemoLake:
    return build_demo_lake(tmp_path_factory.mktemp("ui-demo"))
