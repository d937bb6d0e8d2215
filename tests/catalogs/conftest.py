"""The catalogs every engine feature must work on: the embedded SQLite catalog, a Postgres SQL catalog
and a real Iceberg REST catalog with S3 storage (SeaweedFS, tests/rest_catalog.py).

A test takes ``lake`` and is run once per catalog. Each test gets its own namespace (the REST catalog
is shared by the whole session), so tables are named ``lake.table("people")``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog

CATALOG_KINDS = ("sqlite", "postgres", "rest")


@dataclass(frozen=True)
class Lake:
    """One catalog under test and the namespace this test owns in it."""

    kind: str
    config: CatalogConfig
    namespace: str
    #: A local directory the test may use for anything else (reports, keys, sources).
    workdir: Path

    def table(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def load(self) -> Any:
        return self.config.load()


@pytest.fixture(params=CATALOG_KINDS)
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    kind = request.param
    namespace = f"t_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        config = embedded_catalog(tmp_path / "embedded")
    elif kind == "postgres":
        pg = request.getfixturevalue("postgres_config")
        config = CatalogConfig(f"pg_{uuid.uuid4().hex[:8]}", {
            "type": "sql",
            "uri": f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
            "warehouse": f"file://{tmp_path}/warehouse",
        })
    else:
        rest = request.getfixturevalue("rest_lake")
        config = CatalogConfig(f"rest_{uuid.uuid4().hex[:8]}", rest.catalog_properties())
    yield Lake(kind, config, namespace, tmp_path)
