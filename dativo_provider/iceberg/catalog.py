"""Iceberg catalog configuration: a frozen, loggable description that loads a pyiceberg catalog."""

from __future__ import annotations

import functools
import logging
import os
import urllib.parse
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = logging.getLogger(__name__)

#: Property name fragments whose values are secrets (pyiceberg's own property names; ``adls.account-key``).
_SECRET_MARKERS = ("token", "credential", "secret", "password", "session", "account-key")

#: pyiceberg's catalog types, except ``in-memory``: a catalog that lives inside one process cannot be
#: shared by the tasks of a DAG. sql, rest and glue are tested here; the others are pyiceberg's own.
CATALOG_TYPES = ("sql", "rest", "glue", "hive", "dynamodb", "bigquery")


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
        """Build the pyiceberg catalog. Creates a local warehouse directory if there is one.

        A ``sql`` catalog is the class :func:`sql_catalog_class` picks for this environment.
        """
        from pyiceberg.catalog import load_catalog

        warehouse = self.properties.get("warehouse", "")
        if warehouse.startswith("file://"):
            Path(warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        if self.properties["type"] == "sql":
            catalog = _open_sql_catalog(self.name, self.properties)
        else:
            catalog = load_catalog(self.name, **dict(self.properties))
        _release_connections_when_collected(catalog)
        return catalog

    @property
    def lineage_namespace(self) -> str:
        """Where OpenLineage should say the tables live: the warehouse, else the catalog URI (no password)."""
        place = self.properties.get("warehouse") or self.properties.get("uri")
        return without_password(place) if place else f"iceberg://{self.name}"

    def public_properties(self) -> dict[str, str]:
        """The properties fit for a shared record (a manifest, a run input): see :func:`public_properties`."""
        return public_properties(self.properties)


def _open_sql_catalog(name: str, properties: Mapping[str, str]) -> Catalog:
    """The SQL catalog, once more if another process created its tables at the same moment.

    A new catalog database gets its tables from the first catalog opened on it; two tasks opening it
    together both find them missing and the slower CREATE TABLE fails ("already exists"). The
    second try finds them.
    """
    try:
        return sql_catalog_class()(name, **dict(properties))
    except Exception as exc:
        if "already exists" not in str(exc):
            raise
        return sql_catalog_class()(name, **dict(properties))


def _release_connections_when_collected(catalog: Catalog) -> None:
    """Close a SQLAlchemy-backed catalog's pooled connections when the catalog is garbage collected.

    Callers hold a catalog for one unit of work and drop it; without this its pooled database
    connections would be reclaimed by the collector unclosed (a ResourceWarning, and server sessions
    that linger until then). Closing explicitly with ``with catalog:`` still works.
    """
    engine = getattr(catalog, "engine", None)
    if engine is not None:
        weakref.finalize(catalog, engine.dispose)


@functools.cache
def sql_catalog_class() -> type[Catalog]:
    """pyiceberg's ``SqlCatalog`` where it can be imported (SQLAlchemy >= 2), else our ``DbApiCatalog``.

    Both use the same tables, so a catalog database stays readable when an upgrade switches class.
    The choice is logged once.
    """
    try:
        from pyiceberg.catalog.sql import SqlCatalog

        chosen: type[Catalog] = SqlCatalog
        reason = "SQLAlchemy 2 is installed"
    except ImportError as exc:  # Airflow < 3.1 pins SQLAlchemy < 2
        from dativo_provider.iceberg.dbapi_catalog import DbApiCatalog

        chosen, reason = DbApiCatalog, f"pyiceberg's SqlCatalog cannot be imported: {exc}"
    log.info("SQL Iceberg catalogs use %s.%s (%s)", chosen.__module__, chosen.__name__, reason)
    return chosen


def public_properties(properties: Mapping[str, Any]) -> dict[str, str]:
    """Catalog properties without secrets: secret-named ones dropped, the URI's password removed.

    A record shared with other people (a training-set manifest, an MLflow input) keeps what finds the
    catalog; its reader brings the credentials.
    """
    kept = {str(k): str(v) for k, v in properties.items() if v is not None and not _is_secret(str(k))}
    if "uri" in kept:
        kept["uri"] = without_password(kept["uri"])
    return kept


def without_password(uri: str) -> str:
    """``uri`` with the password of its user info (``user:password@host``) removed."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    user, _, host = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}@{host}"))


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
