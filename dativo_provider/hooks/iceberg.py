"""The ``iceberg`` connection type: an Airflow Connection as a pyiceberg catalog configuration.

Field mapping (``catalog_type`` extra picks the kind, default ``sql``):

- **sql**: ``host`` is a database URI (``sqlite:////data/catalog.db``, ``postgresql+psycopg://...``),
  or a database host, from which ``postgresql+psycopg://login:password@host:port/schema`` is built.
  pyiceberg's ``SqlCatalog`` serves it where SQLAlchemy 2 is installed (Airflow >= 3.1), our
  ``DbApiCatalog`` (same tables, ``sqlite3`` or psycopg) elsewhere.
- **rest**: ``host`` is the catalog URI; ``password`` a bearer token, or the ``credential`` extra an
  OAuth ``client_id:client_secret``; extras ``warehouse``, ``oauth2-server-uri``, ``scope``.
- **glue**: extras ``region`` and ``aws_conn_id`` (an ``aws`` connection: keys, region, endpoint).

For every kind: ``warehouse`` (``file://`` or ``s3://``), ``s3_endpoint`` for MinIO and tests, the
``aws_conn_id`` credentials for S3, ``catalog_name``; any extra whose key holds a ``.`` or ``-`` (a
pyiceberg property such as ``s3.force-virtual-addressing``) is passed to pyiceberg unchanged.

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
from dativo_provider.hooks.sources import extras_of, object_store_config
from dativo_provider.iceberg.catalog import CATALOG_TYPES, CatalogConfig, embedded_catalog

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = logging.getLogger(__name__)

DEFAULT_CATALOG_NAME = "dativo"


class IcebergHook(BaseHook):
    """Build the Iceberg catalog an ``iceberg`` connection describes.

    :param iceberg_conn_id: the connection; when it is the default and does not exist, the embedded
        catalog is used.
    """

    conn_name_attr = "iceberg_conn_id"
    default_conn_name = "iceberg_default"
    conn_type = "iceberg"
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
        return embedded_default() if conn is None else catalog_config(conn, self._aws_config(conn))

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
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in ICEBERG_CONN_FIELDS.items():
            secret = spec["schema"].get("format") == "password"
            field_class, widget = (PasswordField, BS3PasswordFieldWidget) if secret else (StringField, BS3TextFieldWidget)
            widgets[name] = field_class(lazy_gettext(spec["label"]), widget=widget(), description=spec["description"])
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return {
            "hidden_fields": ICEBERG_UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": ICEBERG_UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": ICEBERG_UI_FIELD_BEHAVIOUR["placeholders"],
        }


def catalog_config(conn: Any, aws: ObjectStoreConfig | None = None) -> CatalogConfig:
    """Map an ``iceberg`` Connection (and the AWS credentials it names) to a :class:`CatalogConfig`.

    :param conn: the Airflow Connection.
    :param aws: credentials and endpoint of the connection's ``aws_conn_id``, if it has one.
    :raises ConfigError: a field is missing or has a value the catalog kind does not accept.
    """
    extras = extras_of(conn)
    kind = extras.get("catalog_type") or "sql"
    if kind not in CATALOG_TYPES:
        raise ConfigError(
            f"connection {conn.conn_id!r}: extra 'catalog_type' is {kind!r}; expected one of {CATALOG_TYPES}"
        )
    kind_properties = {"sql": _sql_properties, "rest": _rest_properties, "glue": _glue_properties}[kind]
    properties = {
        "type": kind,
        "warehouse": extras.get("warehouse"),
        **kind_properties(conn, extras, aws),
        **_s3_properties(extras, aws),
        **_pyiceberg_passthrough(extras),
    }
    return CatalogConfig(
        name=extras.get("catalog_name") or DEFAULT_CATALOG_NAME,
        properties={key: str(value) for key, value in properties.items() if value not in (None, "")},
    )


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
        embedded_password = urllib.parse.urlsplit(host).password
        if embedded_password:
            mask_secret(urllib.parse.unquote(embedded_password))
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
    aws = aws or ObjectStoreConfig()
    return {
        "s3.endpoint": extras.get("s3_endpoint") or aws.endpoint_url,
        "s3.region": extras.get("region") or aws.region,
        "s3.access-key-id": aws.access_key_id,
        "s3.secret-access-key": aws.secret_access_key,
        "s3.session-token": aws.session_token,
    }


def _pyiceberg_passthrough(extras: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in extras.items() if ("." in key or "-" in key) and _is_scalar(value)}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
