"""Turn a source spec's ``conn_id`` into the engine's connection config.

Which connection types a source accepts, and which function reads each, is in
:mod:`dativo_provider.sources.registry`. The ``postgres``, ``mysql``, ``aws`` and
``google_cloud_platform`` types are the official providers' own: only the connection's fields are
read, so none of those providers needs to be installed.
"""

from __future__ import annotations

import importlib
import json
import logging
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
from dativo_provider.sources.registry import ConnectionType, legacy_names, source_type

log = logging.getLogger(__name__)

#: Where docs/connections.md explains how to change a connection's type.
MIGRATION_DOC = "docs/connections.md#renamed-connection-types"

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
    :raises ConfigError: an unknown source type (the valid ones listed), a source that takes no
        connection, or a connection of a type this kind of source cannot use.
    """
    conn_id = spec.get("conn_id")
    entry = source_type(spec.get("type"))
    if not conn_id:
        return None
    if not entry.connections:
        raise ConfigError(f"a {entry.name} source takes no connection; remove conn_id {conn_id!r}")
    conn = BaseHook.get_connection(conn_id)
    accepted = {c.name: c for c in entry.connections}
    kind = accepted.get(conn.conn_type) or _renamed(conn, accepted)
    if kind is None:
        raise ConfigError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, but a {entry.name} source needs a "
            f"{' or '.join(accepted)} connection"
        )
    module, _, function = kind.config_builder.partition(":")
    return getattr(importlib.import_module(module), function)(conn)


def _renamed(conn: Any, accepted: Mapping[str, ConnectionType]) -> ConnectionType | None:
    """The accepted type a connection's old type name was renamed to (read with a warning), if any."""
    kind = legacy_names().get(conn.conn_type)
    if kind is None or kind.name not in accepted:
        return None
    warn_renamed_type(conn.conn_id, conn.conn_type, kind.name)
    return kind


def checked_type(conn: Any, kind: ConnectionType, *others: str) -> Any:
    """``conn``, once its type is ``kind`` (or ``kind``'s old name, with a warning) or one of ``others``.

    :raises ConfigError: naming the connection, its type and the type it needs.
    """
    if conn.conn_type == kind.name or conn.conn_type in others:
        return conn
    if kind.legacy_name and conn.conn_type == kind.legacy_name:
        warn_renamed_type(conn.conn_id, conn.conn_type, kind.name)
        return conn
    raise ConfigError(
        f"connection {conn.conn_id!r} has type {conn.conn_type!r}; it needs a "
        f"{' or '.join((kind.name, *others))} connection"
    )


def warn_renamed_type(conn_id: str, old: str, new: str) -> None:
    """Log that a connection still has a renamed type: it works for this release only."""
    log.warning(
        "DeprecationWarning: connection %r has type %r, renamed to %r; this release still reads it, the "
        "next one will not. Change the connection's type to %r (see %s).",
        conn_id, old, new, new, MIGRATION_DOC,
    )


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
