"""The provider info's links: the docs folder, and for each integration a docs page that exists."""

from __future__ import annotations

from pathlib import Path

from dativo_provider.get_provider_info import get_provider_info

REPO_URL = "https://github.com/dativo-io/dativo-airflow-provider"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_provider_info_points_at_the_docs_of_each_integration():
    info = get_provider_info()
    assert info["documentation-url"] == f"{REPO_URL}/tree/main/docs"
    pages = [integration["external-doc-url"] for integration in info["integrations"]]
    assert len(pages) == len(info["integrations"]) >= 5
    for url in pages:
        assert url.startswith(f"{REPO_URL}/blob/main/docs/"), url
        assert (DOCS / url.removeprefix(f"{REPO_URL}/blob/main/docs/")).is_file(), url
