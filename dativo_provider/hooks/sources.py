"""Turn a source spec's ``conn_id`` into the engine's connection config.

The connection types are the official providers' own: ``postgres``, ``mysql`` and ``aws``. Only the
connection's fields are read, so none of those providers needs to be installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

from dativo_provider.compat import BaseHook, mask_secret
from dativo_provider.connections import (
    DatabaseConfig,
    GoogleConfig,
    HubSpotConfig,
    ObjectStoreConfig,
    StripeConfig,
)
from dativo_provider.exceptions import ConfigError

#: source ``type`` -> connection types it accepts. Files read local paths without a connection;
#: markdown_kv takes an aws connection for an S3 path and a Google one for a gdrive:// path.
EXPECTED_CONN_TYPES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "mysql": ("mysql",),
    "files": ("aws",),
    "markdown_kv": ("aws", "google_cloud_platform", "dativo_google"),
    "stripe": ("stripe",),
    "hubspot": ("hubspot",),
    "google_drive": ("google_cloud_platform", "dativo_google"),
    "google_sheets": ("google_cloud_platform", "dativo_google"),
}

#: connection type -> "module:function" building its config; imported only when such a connection is used.
CONFIG_BUILDERS: dict[str, str] = {
    "stripe": "dativo_provider.hooks.stripe:stripe_config",
    "hubspot": "dativo_provider.hooks.hubspot:hubspot_config",
    "google_cloud_platform": "dativo_provider.hooks.google:google_config",
    "dativo_google": "dativo_provider.hooks.google:google_config",
}

#: Connection extras handed to the driver as options: libpq keywords and PyMySQL ``connect`` kwargs.
DRIVER_OPTIONS: dict[str, tuple[str, ...]] = {
    "postgres": (
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
    ),
    "mysql": ("charset", "connect_timeout", "unix_socket", "ssl_mode", "ssl_ca", "ssl_cert", "ssl_key"),
}

#: The official MySQL provider nests TLS files under ``ssl``; PyMySQL takes them as ``ssl_<name>``.
_MYSQL_SSL_KEYS = ("ca", "cert", "key")


def source_connection_config(
    spec: Mapping[str, Any],
) -> DatabaseConfig | ObjectStoreConfig | StripeConfig | HubSpotConfig | GoogleConfig | None:
    """The connection config for ``spec["conn_id"]``, or None when the spec names no connection.

    :param spec: a source spec; ``type`` picks the expected connection type.
    :raises ConfigError: the connection has a type this kind of source cannot use.
    """
    conn_id = spec.get("conn_id")
    if not conn_id:
        return None
    kind = spec.get("type")
    expected = EXPECTED_CONN_TYPES.get(str(kind))
    if expected is None:
        raise ConfigError(f"source 'type' {kind!r} does not take a connection (conn_id {conn_id!r})")
    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type not in expected:
        raise ConfigError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, but a {kind} source needs a "
            f"{' or '.join(expected)} connection"
        )
    if conn.conn_type == "aws":
        return object_store_config(conn)
    if conn.conn_type in CONFIG_BUILDERS:
        module, _, function = CONFIG_BUILDERS[conn.conn_type].partition(":")
        return getattr(importlib.import_module(module), function)(conn)
    return database_config(conn)


def database_config(conn: Any) -> DatabaseConfig:
    """A Postgres or MySQL Connection as a :class:`DatabaseConfig` (``schema`` is the database)."""
    return DatabaseConfig(
        host=conn.host or "localhost",
        port=conn.port,
        user=conn.login,
        password=conn.password,
        database=conn.schema,
        options=_driver_options(conn.conn_type, extras_of(conn)),
    )


def object_store_config(conn: Any) -> ObjectStoreConfig:
    """An ``aws`` Connection as an :class:`ObjectStoreConfig`.

    Keys come from login/password, else from the extras ``aws_access_key_id`` and
    ``aws_secret_access_key``; the endpoint from the extra ``endpoint_url`` (or the amazon
    provider's ``service_config.s3.endpoint_url``).
    """
    extras = extras_of(conn)
    config = ObjectStoreConfig(
        access_key_id=conn.login or extras.get("aws_access_key_id"),
        secret_access_key=conn.password or extras.get("aws_secret_access_key"),
        session_token=extras.get("aws_session_token"),
        region=extras.get("region_name") or extras.get("region"),
        endpoint_url=extras.get("endpoint_url") or _s3_service_endpoint(extras),
    )
    for secret in config.secrets:
        if secret:
            mask_secret(secret)
    return config


def extras_of(conn: Any) -> dict[str, Any]:
    """The connection's extras as a dict, accepting the ``extra__<type>__<name>`` form-field keys too."""
    raw = conn.extra_dejson or {}
    prefix = f"extra__{conn.conn_type}__"
    return {key.removeprefix(prefix): value for key, value in raw.items()}


def _driver_options(conn_type: str, extras: Mapping[str, Any]) -> dict[str, str]:
    allowed = DRIVER_OPTIONS.get(conn_type, ())
    options = {key: str(extras[key]) for key in allowed if extras.get(key) not in (None, "")}
    if conn_type == "mysql":
        options.update(_mysql_ssl_options(extras.get("ssl")))
    return options


def _mysql_ssl_options(ssl: Any) -> dict[str, str]:
    if isinstance(ssl, str) and ssl.strip():
        ssl = json.loads(ssl)
    if not isinstance(ssl, Mapping):
        return {}
    return {f"ssl_{key}": str(ssl[key]) for key in _MYSQL_SSL_KEYS if ssl.get(key)}


def _s3_service_endpoint(extras: Mapping[str, Any]) -> str | None:
    service_config = extras.get("service_config") or {}
    return (service_config.get("s3") or {}).get("endpoint_url")
