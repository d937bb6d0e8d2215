"""The ``dativo_hubspot`` connection type: HubSpot credentials as the engine's :class:`HubSpotConfig`.

Fields: ``password`` is a private app's access token (``pat-...``). For an OAuth app instead, the
extras ``client_id``, ``client_secret`` and ``refresh_token``: access tokens are then obtained from
``POST /oauth/{version}/token`` at run time and refreshed when they expire (the refresh token wins
when both are set). Extra ``api_version``: HubSpot's date-based API version in every path (default
``2026-03``). Extra ``base_url``: a proxy, or a test double (default ``https://api.hubapi.com``).
Every secret is registered with Airflow's secret masker as soon as it is read. Connections of the
type's old name, ``hubspot``, are read too (for this release only, with a warning).
"""

from __future__ import annotations

from typing import Any

from dativo_provider.compat import BaseHook, mask_secret
from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import (
    HUBSPOT_CONN_FIELDS,
    HUBSPOT_INTEGRATION,
    HUBSPOT_UI_FIELD_BEHAVIOUR,
)
from dativo_provider.hooks.connection_test import connection_secrets, connection_test
from dativo_provider.hooks.forms import field_behaviour, form_widgets
from dativo_provider.hooks.sources import checked_type, extras_of
from dativo_provider.sources.registry import DATIVO_HUBSPOT

DEFAULT_BASE_URL = "https://api.hubapi.com"
_OAUTH_EXTRAS = ("client_id", "client_secret", "refresh_token")


class HubSpotHook(BaseHook):
    """Read a ``dativo_hubspot`` connection.

    :param hubspot_conn_id: the connection id.
    """

    conn_name_attr = "hubspot_conn_id"
    default_conn_name = "hubspot_default"
    conn_type = DATIVO_HUBSPOT.name
    hook_name = HUBSPOT_INTEGRATION

    def __init__(self, hubspot_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hubspot_conn_id = hubspot_conn_id

    def get_conn(self) -> HubSpotConfig:
        """The engine's HubSpot configuration (secrets stay out of its ``repr``)."""
        return hubspot_config(checked_type(self.get_connection(self.hubspot_conn_id), DATIVO_HUBSPOT))

    def test_connection(self) -> tuple[bool, str]:
        """Ask HubSpot for the account details (``GET /account-info/{version}/details``): no CRM record
        is read."""
        from dativo_provider.sources.probes import probe_hubspot

        return connection_test(lambda: probe_hubspot(self.get_conn()),
                               lambda: connection_secrets(self.get_connection(self.hubspot_conn_id)))

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.x (Airflow >= 3.2 reads ``conn-fields`` instead)."""
        return form_widgets(HUBSPOT_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return field_behaviour(HUBSPOT_UI_FIELD_BEHAVIOUR)


def hubspot_config(conn: Any) -> HubSpotConfig:
    """Map a ``dativo_hubspot`` Connection to a :class:`HubSpotConfig`.

    :raises ConfigError: neither a token nor the complete OAuth trio is set.
    """
    extras = extras_of(conn)
    oauth = {key: extras.get(key) or None for key in _OAUTH_EXTRAS}
    given = [key for key, value in oauth.items() if value]
    if given and len(given) < len(_OAUTH_EXTRAS):
        missing = sorted(set(_OAUTH_EXTRAS) - set(given))
        raise ConfigError(
            f"connection {conn.conn_id!r}: OAuth needs client_id, client_secret and refresh_token; "
            f"{missing} missing"
        )
    if not conn.password and not given:
        raise ConfigError(
            f"connection {conn.conn_id!r}: put a private-app token in the password field, or set the "
            "extras client_id, client_secret and refresh_token"
        )
    config = HubSpotConfig(
        access_token=conn.password or None, base_url=extras.get("base_url") or DEFAULT_BASE_URL,
        conn_id=conn.conn_id, api_version=extras.get("api_version") or None, **oauth,
    )
    for secret in config.secrets:
        if secret:
            mask_secret(secret)
    return config
