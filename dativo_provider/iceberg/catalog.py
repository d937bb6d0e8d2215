"""Iceberg catalog configuration: a frozen, loggable description that loads a pyiceberg catalog."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

#: Property name fragments whose values are secrets (pyiceberg's own property names).
_SECRET_MARKERS = ("token", "credential", "secret", "password", "session")

CATALOG_TYPES = ("sql", "rest", "glue")


@dataclass(frozen=True)
class CatalogConfig:
    """A named pyiceberg catalog: its type and pyiceberg properties.

    :param name: the catalog name (also the namespace of lineage datasets).
    :param properties: pyiceberg catalog properties (``type``, ``uri``, ``warehouse``, ``s3.*`` ...).
    """

    name: str
    properties: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = self.properties.get("type")
        if kind not in CATALOG_TYPES:
            raise ConfigError(f"catalog {self.name!r}: 'type' is {kind!r}; expected one of {CATALOG_TYPES}")
        if kind in ("sql", "rest") and not self.properties.get("uri"):
            raise ConfigError(f"catalog {self.name!r}: a {kind} catalog needs 'uri'")

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.properties.items() if _is_secret(k) and v)

    def __repr__(self) -> str:
        shown = {k: ("***" if _is_secret(k) else v) for k, v in self.properties.items()}
        return f"CatalogConfig(name={self.name!r}, properties={shown!r})"

    def load(self) -> Catalog:
        """Build the pyiceberg catalog. Creates a local warehouse directory if there is one."""
        from pyiceberg.catalog import load_catalog

        warehouse = self.properties.get("warehouse", "")
        if warehouse.startswith("file://"):
            Path(warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        return load_catalog(self.name, **dict(self.properties))

    @property
    def lineage_namespace(self) -> str:
        """Where OpenLineage should say the tables live: the warehouse, else the catalog URI."""
        return self.properties.get("warehouse") or self.properties.get("uri") or f"iceberg://{self.name}"


def _is_secret(key: str) -> bool:
    return any(marker in key.lower() for marker in _SECRET_MARKERS)


def embedded_catalog(home: str | os.PathLike[str], name: str = "dativo") -> CatalogConfig:
    """The zero-setup default: a SQLite catalog and a warehouse directory under ``home``."""
    root = Path(home).absolute()
    root.mkdir(parents=True, exist_ok=True)
    return CatalogConfig(
        name=name,
        properties={
            "type": "sql",
            "uri": f"sqlite:///{root / 'catalog.db'}",
            "warehouse": f"file://{root / 'warehouse'}",
        },
    )
