"""Iceberg catalog connections: an Airflow Connection as a pyiceberg catalog configuration.

Two connection types are read, each with its own field meaning:

**``iceberg``** (the official ``apache-airflow-providers-apache-iceberg`` type), read exactly as its
hook reads it: ``host`` is the catalog URI, ``login``/``password`` the OAuth client id and secret of
a REST catalog (sent as ``credential``), and the extras are pyiceberg catalog properties, passed
through, with ``type`` defaulting to ``rest``. So ``{"type": "sql", "uri": "sqlite:///...",
"warehouse": "file:///..."}`` configures a SQL catalog, and ``{"type": "glue", "glue.region": ...}``
a Glue one. The catalog is named after the connection id, as the official hook names it, so both
hooks see the same tables of a SQL catalog.

**``dativo_iceberg``** (this provider's own; ``catalog_type`` extra picks the kind, default ``sql``):

- **sql**: ``host`` is a database URI (``sqlite:////data/catalog.db``, ``postgresql+psycopg://...``),
  or a database host, from which ``postgresql+psycopg://login:password@host:port/schema`` is built.
- **rest**: ``host`` is the catalog URI; ``password`` a bearer token, or the ``credential`` extra an
  OAuth ``client_id:client_secret``; extras ``warehouse``, ``oauth2-server-uri``, ``scope``.
- **glue**: extras ``region`` and ``aws_conn_id`` (an ``aws`` connection: keys, region, endpoint).

  For every kind: ``warehouse`` (``file://`` or ``s3://``), ``s3_endpoint`` for MinIO and tests, the
  ``aws_conn_id`` credentials for S3, ``catalog_name``; any extra whose key holds a ``.`` or ``-`` (a
  pyiceberg property such as ``s3.force-virtual-addressing``) is passed to pyiceberg unchanged.

An ``iceberg`` connection written for this provider before its type was renamed (extras such as
``catalog_type``, ``aws_conn_id``, or a database URI as host without a ``type``) is still read with
the ``dativo_iceberg`` meaning for this release, with a warning naming the migration.

SQL catalogs are pyiceberg's ``SqlCatalog`` where SQLAlchemy 2 is installed (Airflow >= 3.1), our
``DbApiCatalog`` (same tables, ``sqlite3`` or psycopg) elsewhere, whichever type configured them.
When the default connection ``iceberg_default`` does not exist, the hook falls back to the embedded
catalog: SQLite and a local warehouse under ``$DATIVO_HOME`` (default ``$AIRFLOW_HOME/dativo``).
"""

from __future__ import annotations

import functools
import logging
import os
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dativo_provider.compat import AirflowNotFoundException, BaseHook, mask_secret
from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import ICEBERG_CONN_FIELDS, ICEBERG_UI_FIELD_BEHAVIOUR, INTEGRATION
from dativo_provider.hooks.connection_test import connection_secrets, connection_test
from dativo_provider.hooks.forms import field_behaviour, form_widgets
from dativo_provider.hooks.sources import extras_of, object_store_config, warn_renamed_type
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = logging.getLogger(__name__)

DEFAULT_CATALOG_NAME = "dativo"
#: This provider's own type, and the official Iceberg provider's.
CONN_TYPE = "dativo_iceberg"
OFFICIAL_CONN_TYPE = "iceberg"
#: Extras only this provider's old ``iceberg`` form wrote: none is a pyiceberg catalog property.
_OWN_EXTRAS = frozenset({"catalog_type", "catalog_name", "aws_conn_id", "s3_endpoint", "region"})


#: The catalog each connection id last resolved to in this process. OpenLineage events are built in a
#: process the listener forks from the task's, which must not ask Airflow for a connection (on Airflow 3
#: that request goes to the task's supervisor and never returns): lineage reads the catalog from here.
RESOLVED_CATALOGS: dict[str, CatalogConfig] = {}


class IcebergHook(BaseHook):
    """Build the Iceberg catalog a ``dativo_iceberg`` or an official ``iceberg`` connection describes.

    :param iceberg_conn_id: the connection; when it is the default and does not exist, the embedded
        catalog is used.
    """

    conn_name_attr = "iceberg_conn_id"
    default_conn_name = "iceberg_default"
    conn_type = CONN_TYPE
    hook_name = INTEGRATION

    def __init__(self, iceberg_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iceberg_conn_id = iceberg_conn_id

    def get_conn(self) -> Catalog:
        """The loaded pyiceberg catalog."""
        return self.get_catalog_config().load()

    def get_catalog_config(self) -> CatalogConfig:
        """The engine's catalog configuration for this connection (secrets stay out of its ``repr``)."""
        conn = self._connection_or_none()
        if conn is None:
            config = embedded_default()
        else:
            config = catalog_config(conn, self._aws_config(conn) if reads_own_fields(conn) else None)
        RESOLVED_CATALOGS[self.iceberg_conn_id] = config
        return config

    def test_connection(self) -> tuple[bool, str]:
        """List the catalog's namespaces: proves the catalog answers and the credentials are accepted."""
        return connection_test(self._list_namespaces, self._secrets)

    def _list_namespaces(self) -> str:
        config = self.get_catalog_config()
        count = len(config.load().list_namespaces())
        return f"{config.properties['type']} catalog {config.name!r} answered: {count} namespace(s)"

    def _secrets(self) -> tuple[str, ...]:
        conn = self._connection_or_none()
        return connection_secrets(conn) if conn is not None else ()

    def _connection_or_none(self) -> Any:
        try:
            return self.get_connection(self.iceberg_conn_id)
        except AirflowNotFoundException:
            if self.iceberg_conn_id != self.default_conn_name:
                raise
            return None

    def _aws_config(self, conn: Any) -> ObjectStoreConfig | None:
        aws_conn_id = extras_of(conn).get("aws_conn_id")
        if not aws_conn_id:
            return None
        aws_conn = self.get_connection(aws_conn_id)
        if aws_conn.conn_type != "aws":
            raise ConfigError(
                f"connection {conn.conn_id!r}: extra 'aws_conn_id' names {aws_conn_id!r}, which has type "
                f"{aws_conn.conn_type!r}; it must be an aws connection"
            )
        return object_store_config(aws_conn)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.x (Airflow >= 3.2 reads ``conn-fields`` instead)."""
        return form_widgets(ICEBERG_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return field_behaviour(ICEBERG_UI_FIELD_BEHAVIOUR)


def catalog_config(conn: Any, aws: ObjectStoreConfig | None = None) -> CatalogConfig:
    """Map an Iceberg Connection (and the AWS credentials it names) to a :class:`CatalogConfig`.

    :param conn: a ``dativo_iceberg`` or ``iceberg`` Connection.
    :param aws: credentials and endpoint of a ``dativo_iceberg`` connection's ``aws_conn_id``.
    :raises ConfigError: another connection type, a missing field, or a value the catalog does not accept.
    """
    if not reads_own_fields(conn):
        return official_catalog_config(conn)
    if conn.conn_type == OFFICIAL_CONN_TYPE:
        warn_renamed_type(conn.conn_id, OFFICIAL_CONN_TYPE, CONN_TYPE)
    return own_catalog_config(conn, aws)


def reads_own_fields(conn: Any) -> bool:
    """True for ``dativo_iceberg``, and for an ``iceberg`` connection written for this provider's old type.

    :raises ConfigError: the connection is of neither Iceberg type.
    """
    if conn.conn_type == CONN_TYPE:
        return True
    if conn.conn_type != OFFICIAL_CONN_TYPE:
        raise ConfigError(
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}; an Iceberg catalog needs a "
            f"{CONN_TYPE} or {OFFICIAL_CONN_TYPE} connection"
        )
    extras = extras_of(conn)
    if any(extras.get(key) not in (None, "") for key in _OWN_EXTRAS):
        return True
    host = conn.host or ""
    # The old type defaulted to a SQL catalog with a database URI or host; the official one to REST.
    return "type" not in extras and bool(host) and not host.lower().startswith(("http://", "https://"))


def official_catalog_config(conn: Any) -> CatalogConfig:
    """An ``iceberg`` Connection read as the official provider's hook reads it (see the module docstring).

    :raises ConfigError: an extra that is not a text, number or boolean, or a sql/rest catalog without a URI.
    """
    properties = {key: _property_text(conn.conn_id, key, value) for key, value in extras_of(conn).items()}
    if conn.host:
        properties["uri"] = conn.host.rstrip("/")
    properties.setdefault("type", "rest")
    if properties["type"] == "rest" and conn.login and conn.password:
        properties["credential"] = f"{conn.login}:{conn.password}"
    elif properties["type"] == "rest" and (conn.login or conn.password):
        log.warning("connection %r: set both Client ID (login) and Client Secret (password) for OAuth2, or "
                    "neither", conn.conn_id)
    if properties["type"] in ("sql", "rest") and not properties.get("uri"):
        raise ConfigError(f"connection {conn.conn_id!r}: a {properties['type']} catalog needs its URI in 'host' "
                          "(or the extra 'uri')")
    if properties["type"] == "sql":
        _mask_uri_password(properties["uri"])
    config = CatalogConfig(name=conn.conn_id, properties=properties)
    for secret in config.secrets:
        mask_secret(secret)
    return config


def own_catalog_config(conn: Any, aws: ObjectStoreConfig | None = None) -> CatalogConfig:
    """A ``dativo_iceberg`` Connection (or an old-style ``iceberg`` one) as a :class:`CatalogConfig`."""
    extras = extras_of(conn)
    kind = extras.get("catalog_type") or "sql"
    if kind not in _OWN_KINDS:
        raise ConfigError(
            f"connection {conn.conn_id!r}: extra 'catalog_type' is {kind!r}; expected one of {tuple(_OWN_KINDS)}"
        )
    properties = {
        "type": kind,
        "warehouse": extras.get("warehouse"),
        **_OWN_KINDS[kind](conn, extras, aws),
        **_s3_properties(extras, aws),
        **_pyiceberg_passthrough(extras),
    }
    return CatalogConfig(
        name=extras.get("catalog_name") or DEFAULT_CATALOG_NAME,
        properties={key: str(value) for key, value in properties.items() if value not in (None, "")},
    )


def _property_text(conn_id: str, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"connection {conn_id!r}: extra {key!r} must be a text, number or boolean (a pyiceberg "
                      f"catalog property), not {type(value).__name__}")


def _mask_uri_password(uri: str) -> None:
    embedded_password = urllib.parse.urlsplit(uri).password
    if embedded_password:
        mask_secret(urllib.parse.unquote(embedded_password))


def embedded_default() -> CatalogConfig:
    """The zero-setup catalog: SQLite and a local warehouse under ``$DATIVO_HOME`` or ``$AIRFLOW_HOME/dativo``."""
    airflow_home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    home = os.environ.get("DATIVO_HOME") or os.path.join(airflow_home, "dativo")
    _announce_embedded(home)
    return embedded_catalog(home)


@functools.cache
def _announce_embedded(home: str) -> None:
    log.info(
        "No %r connection: using the embedded Iceberg catalog (SQLite, local warehouse) in %s",
        IcebergHook.default_conn_name,
        home,
    )


def _sql_properties(conn: Any, extras: Mapping[str, Any], aws: ObjectStoreConfig | None) -> dict[str, Any]:
    host = conn.host or ""
    if not host:
        raise ConfigError(f"connection {conn.conn_id!r}: a sql catalog needs 'host' (a database URI or a host)")
    if "://" in host:
        _mask_uri_password(host)
        return {"uri": host}
    return {"uri": _postgres_uri(conn)}


def _postgres_uri(conn: Any) -> str:
    quote = functools.partial(urllib.parse.quote, safe="")
    credentials = quote(conn.login or "")
    if conn.password:
        credentials += ":" + quote(conn.password)
    netloc = f"{credentials}@{conn.host}" if credentials else conn.host
    if conn.port:
        netloc += f":{conn.port}"
    return f"postgresql+psycopg://{netloc}/{quote(conn.schema or 'postgres')}"


def _rest_properties(conn: Any, extras: Mapping[str, Any], aws: ObjectStoreConfig | None) -> dict[str, Any]:
    if not conn.host:
        raise ConfigError(f"connection {conn.conn_id!r}: a rest catalog needs 'host' (the catalog URI)")
    credential = extras.get("credential")
    if credential:
        mask_secret(credential)
    return {"uri": conn.host, "token": conn.password, "credential": credential, "scope": extras.get("scope")}


def _glue_properties(conn: Any, extras: Mapping[str, Any], aws: ObjectStoreConfig | None) -> dict[str, Any]:
    aws = aws or ObjectStoreConfig()
    return {
        "glue.region": extras.get("region") or aws.region,
        "glue.access-key-id": aws.access_key_id,
        "glue.secret-access-key": aws.secret_access_key,
        "glue.session-token": aws.session_token,
        "glue.endpoint": aws.endpoint_url,
    }


def _s3_properties(extras: Mapping[str, Any], aws: ObjectStoreConfig | None) -> dict[str, Any]:
    from dataclasses import replace

    from dativo_provider.objectstore import catalog_s3_properties

    aws = aws or ObjectStoreConfig()
    return catalog_s3_properties(replace(aws, endpoint_url=extras.get("s3_endpoint") or aws.endpoint_url,
                                         region=extras.get("region") or aws.region))


def _pyiceberg_passthrough(extras: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in extras.items() if ("." in key or "-" in key) and _is_scalar(value)}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


_OWN_KINDS = {"sql": _sql_properties, "rest": _rest_properties, "glue": _glue_properties}
