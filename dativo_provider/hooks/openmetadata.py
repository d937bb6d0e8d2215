"""The ``dativo_openmetadata`` connection type: an OpenMetadata server and a bot's JWT.

Fields: ``host`` is the server URL (``https://openmetadata.example.org``; a bare host name gets
``https://`` and ``port`` if set), ``password`` the JWT of an OpenMetadata bot (Settings → Bots).
Extras: ``max_workers`` (requests in flight at once, default 8), ``max_retries`` (of 429/5xx, default
5), ``timeout_seconds`` (default 30), ``verify_ssl`` (default true). The token is registered with
Airflow's secret masker as soon as it is read.

The type is ours (``dativo_openmetadata``): no official Airflow provider defines an OpenMetadata
connection, and OpenMetadata's own packages are not needed (``requests`` is all the client uses).
"""

from __future__ import annotations

from typing import Any

from dativo_provider.compat import BaseHook, mask_secret
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import (
    OPENMETADATA_CONN_FIELDS,
    OPENMETADATA_CONN_TYPE,
    OPENMETADATA_INTEGRATION,
    OPENMETADATA_UI_FIELD_BEHAVIOUR,
)
from dativo_provider.hooks.connection_test import connection_secrets, connection_test
from dativo_provider.hooks.forms import field_behaviour, form_widgets
from dativo_provider.hooks.sources import extras_of


class OpenMetadataHook(BaseHook):
    """Read a ``dativo_openmetadata`` connection.

    :param openmetadata_conn_id: the connection id.
    """

    conn_name_attr = "openmetadata_conn_id"
    default_conn_name = "openmetadata_default"
    conn_type = OPENMETADATA_CONN_TYPE
    hook_name = OPENMETADATA_INTEGRATION

    def __init__(self, openmetadata_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.openmetadata_conn_id = openmetadata_conn_id

    def get_conn(self) -> Any:
        """The engine's :class:`~dativo_provider.lineage.openmetadata_client.OpenMetadataConfig`."""
        return openmetadata_config(self.get_connection(self.openmetadata_conn_id))

    def get_client(self) -> Any:
        """An :class:`~dativo_provider.lineage.openmetadata_client.OpenMetadataClient` for this connection."""
        from dativo_provider.lineage.openmetadata_client import OpenMetadataClient

        return OpenMetadataClient(self.get_conn())

    def test_connection(self) -> tuple[bool, str]:
        """Ask the server for its version, then list one database service (which needs a valid token)."""

        def check() -> str:
            client = self.get_client()
            version = client.version()
            client.get("/services/databaseServices", {"limit": 1})
            return f"OpenMetadata {version} at {client.config.base_url} accepted the token"

        return connection_test(
            check, lambda: connection_secrets(self.get_connection(self.openmetadata_conn_id))
        )

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.x (Airflow >= 3.2 reads ``conn-fields`` instead)."""
        return form_widgets(OPENMETADATA_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return field_behaviour(OPENMETADATA_UI_FIELD_BEHAVIOUR)


def openmetadata_config(conn: Any) -> Any:
    """Map a ``dativo_openmetadata`` Connection to an ``OpenMetadataConfig``.

    :raises ConfigError: a wrong type, no server URL, no token, or an extra that is not a number.
    """
    from dativo_provider.lineage.openmetadata_client import OpenMetadataConfig

    if conn.conn_type != OPENMETADATA_CONN_TYPE:
        raise ConfigError(
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}; it needs a "
            f"{OPENMETADATA_CONN_TYPE} connection"
        )
    if not conn.host:
        raise ConfigError(f"connection {conn.conn_id!r}: put the OpenMetadata server URL in the host field")
    if not conn.password:
        raise ConfigError(f"connection {conn.conn_id!r}: put an OpenMetadata bot's JWT in the password field")
    mask_secret(conn.password)
    extras = extras_of(conn)
    url = conn.host if "://" in conn.host else f"https://{conn.host}{f':{conn.port}' if conn.port else ''}"
    return OpenMetadataConfig(
        server_url=url,
        token=conn.password,
        timeout_seconds=_number(conn, extras, "timeout_seconds", 30.0),
        max_workers=int(_number(conn, extras, "max_workers", 8)),
        max_retries=int(_number(conn, extras, "max_retries", 5)),
        verify_ssl=str(extras.get("verify_ssl", True)).lower() not in ("false", "0", "no"),
        conn_id=conn.conn_id,
    )


def _number(conn: Any, extras: dict[str, Any], name: str, default: float) -> float:
    value = extras.get(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"connection {conn.conn_id!r}: extra {name} is {value!r}; expected a number"
        ) from None
    if number <= 0 and name != "max_retries":
        raise ConfigError(f"connection {conn.conn_id!r}: extra {name} must be above 0, not {value!r}")
    return number
