"""Asset URIs for Iceberg tables: a table is named by the catalog that holds it, never by a connection id.

::

    iceberg://<server>[/<place on the server>...]/<catalog>/<namespace>/<table>

- ``server``: where the catalog answers, ``host[:port]`` in lower case. REST: the catalog URI's host
  (ports 80 and 443 left out); SQL: the database server with its port (``5432``, ``3306`` written
  out), ``localhost`` for a SQLite file; Glue: ``glue.<region>.amazonaws.com``; Hive: the metastore;
  DynamoDB: ``dynamodb.<region>.amazonaws.com``; BigQuery: ``bigquery.googleapis.com``.
- ``place on the server``: the REST URI's path (``api/catalog`` for Polaris), the SQL database (or
  the SQLite file's path); nothing for the others.
- ``catalog``: REST: the warehouse (``-`` when the server has one catalog and none is configured);
  SQL: the catalog name inside the database; Glue: the catalog id (the AWS account); Hive: ``hive``;
  DynamoDB: its table; BigQuery: the project.
- ``namespace``: its levels joined by ``.``; ``table``: the table name.

Every segment is percent-quoted on its own (a ``.`` inside a namespace level is ``%2E``: a bare
``.`` there separates levels), so the last three segments always read back as catalog, namespace and
table. Two connections to one catalog
give one URI; two catalogs never share one. Credentials, OAuth settings, endpoints of proxies and the
connection id are not part of it. Glue and DynamoDB names are case-insensitive, so they are lower-cased.

Airflow calls :func:`sanitize_uri` for every ``iceberg://`` asset (registered under ``asset-uris`` in
:mod:`dativo_provider.get_provider_info`): a downstream DAG's ``Asset("iceberg://...")`` is normalised
the same way, and a malformed one fails with a message that says what is missing.

No airflow import at module level: the engine and the CLI use these functions too.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from dativo_provider.iceberg.catalog import CatalogConfig

SCHEME = "iceberg"

#: The catalog segment of a REST catalog that has no warehouse configured (its server's only catalog).
NO_WAREHOUSE = "-"

#: Ports a REST URI may leave out; never written in an asset URI.
_WEB_PORTS = {"http": 80, "https": 443}
#: Ports written out for SQL catalogs when the database URL leaves them out.
_DATABASE_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433,
                   "oracle": 1521}
_CASE_INSENSITIVE = ("glue", "dynamodb")
_OLD_FORM_HINT = (
    "iceberg://<connection id>/<namespace>/<table> is the old form (before assets were named by "
    "catalog); see docs/ingestion.md, section Assets"
)


def table_uri(catalog: CatalogConfig, table: str, *, catalog_id: str | None = None) -> str:
    """The asset URI of ``table`` ("namespace.table") in ``catalog``.

    :param catalog_id: Glue only: the catalog id (AWS account) when the catalog has no ``glue.id``;
        :func:`glue_catalog_id` finds it.
    :raises ConfigError: the catalog lacks what names it (a Glue region or catalog id).
    """
    properties = catalog.properties
    kind = properties["type"]
    namespace, _, name = table.rpartition(".")
    if not namespace:
        raise ConfigError(f"table {table!r} must be 'namespace.table'")
    server, place, catalog_segment = _CATALOG_PARTS[kind](catalog, catalog_id)
    levels = namespace.split(".")
    if kind in _CASE_INSENSITIVE:
        levels, name = [level.lower() for level in levels], name.lower()
    return f"{SCHEME}://{server}/{_path(place, catalog_segment, levels, name)}"


def uses_catalog_id(catalog: CatalogConfig) -> bool:
    """Does :func:`table_uri` need a ``catalog_id`` for this catalog (Glue without ``glue.id``)?"""
    return catalog.properties["type"] == "glue" and not catalog.properties.get("glue.id")


def glue_catalog_id(catalog: CatalogConfig, namespace: str) -> str:
    """The id of the Glue catalog (the AWS account) that holds ``namespace``, asked of Glue itself."""
    glue = catalog.load().glue  # type: ignore[attr-defined]
    return str(glue.get_database(Name=namespace)["Database"]["CatalogId"])


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Normalise an ``iceberg://`` asset URI for Airflow; reject one that cannot name a table.

    The server is lower-cased without user info and without port 80 or 443; each path segment is
    quoted the way :func:`table_uri` quotes it; query and fragment are dropped.

    :raises ValueError: no server, fewer than three path segments (catalog, namespace, table) or an
        empty one.
    """
    host = (uri.hostname or "").lower()
    if not host:
        raise ValueError(f"{uri.geturl()!r}: an iceberg asset URI names the catalog's server "
                         "(iceberg://<server>/<catalog>/<namespace>/<table>; localhost for a SQLite file)")
    if uri.port is not None and uri.port not in _WEB_PORTS.values():
        host += f":{uri.port}"
    segments = uri.path.split("/")[1:]
    if any(not segment for segment in segments):
        raise ValueError(f"{uri.geturl()!r}: an iceberg asset URI has no empty path segment "
                         "(iceberg://<server>/<catalog>/<namespace>/<table>)")
    if len(segments) < 3:
        raise ValueError(f"{uri.geturl()!r}: an iceberg asset URI ends in <catalog>/<namespace>/<table>; "
                         f"{_OLD_FORM_HINT}")
    *place, catalog = [urllib.parse.unquote(s) for s in segments[:-2]]
    levels = [urllib.parse.unquote(level) for level in segments[-2].split(".")]
    path = _path(place, catalog, levels, urllib.parse.unquote(segments[-1]))
    return uri._replace(scheme=SCHEME, netloc=host, path="/" + path, query="", fragment="")


def create_asset(*, server: str, catalog: str, namespace: str | Sequence[str], table: str,
                 place: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Any:
    """An Asset from its parts (Airflow's ``asset-uris`` factory), e.g. ``create_asset(server=
    "polaris.example.com", place=["api", "catalog"], catalog="lake", namespace="sales", table="orders")``.
    """
    from dativo_provider.compat import Asset

    levels = namespace.split(".") if isinstance(namespace, str) else list(namespace)
    return Asset(uri=f"{SCHEME}://{server.lower()}/{_path(place, catalog, levels, table)}", extra=extra)


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """An iceberg Asset as an OpenLineage dataset: namespace ``iceberg://<server>/<place>/<catalog>``,
    name ``<namespace>.<table>`` (the symlink shape Spark's Iceberg integration uses)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parsed = urllib.parse.urlsplit(asset.uri)
    *catalog_path, namespace, table = parsed.path.split("/")[1:]
    name = ".".join(urllib.parse.unquote(part) for part in [*namespace.split("."), table])
    return Dataset(namespace=f"{SCHEME}://{parsed.netloc}/{'/'.join(catalog_path)}", name=name)


def _path(place: Sequence[str], catalog: str, levels: Sequence[str], table: str) -> str:
    """The URI path (without its leading ``/``): every segment quoted, namespace levels joined by ``.``."""
    quote = functools.partial(urllib.parse.quote, safe="")
    namespace = ".".join(quote(level).replace(".", "%2E") for level in levels)
    return "/".join([*(quote(p) for p in place), quote(catalog), namespace, quote(table)])


def _web_server(uri: str) -> tuple[str, list[str]]:
    """``host[:port]`` without the scheme's default port, and the path segments of a catalog URI."""
    parsed = urllib.parse.urlsplit(uri)
    host = (parsed.hostname or "").lower()
    if parsed.port is not None and parsed.port != _WEB_PORTS.get(parsed.scheme.lower()):
        host += f":{parsed.port}"
    return host, [urllib.parse.unquote(s) for s in parsed.path.split("/") if s]


def _rest(catalog: CatalogConfig, catalog_id: str | None) -> tuple[str, list[str], str]:
    server, place = _web_server(catalog.properties["uri"])
    return server, place, catalog.properties.get("warehouse") or NO_WAREHOUSE


def _sql(catalog: CatalogConfig, catalog_id: str | None) -> tuple[str, list[str], str]:
    url = catalog.properties["uri"]
    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    if backend == "sqlite":
        file = url.split(":///", 1)[1] if ":///" in url else ""
        # "localhost", as in file://localhost/path: Python cannot write an empty server for iceberg://.
        return "localhost", [s for s in file.split("?", 1)[0].split("/") if s], catalog.name
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or _DATABASE_PORTS.get(backend)
    server = (parsed.hostname or "localhost").lower() + (f":{port}" if port else "")
    database = [urllib.parse.unquote(s) for s in parsed.path.split("/") if s]
    return server, database, catalog.name


def _glue(catalog: CatalogConfig, catalog_id: str | None) -> tuple[str, list[str], str]:
    region = _aws_region(catalog.properties, "glue.region")
    account = catalog.properties.get("glue.id") or catalog_id
    if not account:
        raise ConfigError(f"catalog {catalog.name!r}: naming a Glue table needs its catalog id ('glue.id')")
    return f"glue.{region}.amazonaws.com", [], account


def _hive(catalog: CatalogConfig, catalog_id: str | None) -> tuple[str, list[str], str]:
    server, place = _web_server(catalog.properties["uri"].split(",")[0])
    return server, place, "hive"


def _dynamodb(catalog: CatalogConfig, catalog_id: str | None) -> tuple[str, list[str], str]:
    region = _aws_region(catalog.properties, "dynamodb.region")
    return f"dynamodb.{region}.amazonaws.com", [], catalog.properties.get("table-name") or "iceberg"


def _bigquery(catalog: CatalogConfig, catalog_id: str | None) -> tuple[str, list[str], str]:
    return "bigquery.googleapis.com", [], catalog.properties["gcp.bigquery.project-id"]


def _aws_region(properties: Mapping[str, str], key: str) -> str:
    region = (properties.get(key) or properties.get("client.region") or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION"))
    if not region:
        raise ConfigError(f"naming an AWS catalog's table needs its region ({key!r} or 'client.region')")
    return region.lower()


_CATALOG_PARTS = {"rest": _rest, "sql": _sql, "glue": _glue, "hive": _hive, "dynamodb": _dynamodb,
                  "bigquery": _bigquery}
