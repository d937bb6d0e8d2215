"""The ``dativo_stripe`` connection type: a Stripe secret key as the engine's :class:`StripeConfig`.

Fields: ``password`` is the secret key (``sk_live_...``) or a restricted key (``rk_live_...``, read
permissions suffice). Extras: ``account`` (``acct_...``, read a connected account through the
``Stripe-Account`` header), ``api_version`` (pins ``Stripe-Version``), ``base_url`` (a proxy, or a
test double; default ``https://api.stripe.com``). The key is registered with Airflow's secret
masker as soon as it is read. Connections of the type's old name, ``stripe``, are read too (for
this release only, with a warning).
"""

from __future__ import annotations

from typing import Any

from dativo_provider.compat import BaseHook, mask_secret
from dativo_provider.connections import StripeConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import (
    STRIPE_CONN_FIELDS,
    STRIPE_INTEGRATION,
    STRIPE_UI_FIELD_BEHAVIOUR,
)
from dativo_provider.hooks.connection_test import connection_secrets, connection_test
from dativo_provider.hooks.forms import field_behaviour, form_widgets
from dativo_provider.hooks.sources import checked_type, extras_of
from dativo_provider.sources.registry import DATIVO_STRIPE

DEFAULT_BASE_URL = "https://api.stripe.com"


class StripeHook(BaseHook):
    """Read a ``dativo_stripe`` connection.

    :param stripe_conn_id: the connection id.
    """

    conn_name_attr = "stripe_conn_id"
    default_conn_name = "stripe_default"
    conn_type = DATIVO_STRIPE.name
    hook_name = STRIPE_INTEGRATION

    def __init__(self, stripe_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stripe_conn_id = stripe_conn_id

    def get_conn(self) -> StripeConfig:
        """The engine's Stripe configuration (the key stays out of its ``repr``)."""
        return stripe_config(checked_type(self.get_connection(self.stripe_conn_id), DATIVO_STRIPE))

    def test_connection(self) -> tuple[bool, str]:
        """Ask Stripe for the account balance (``GET /v1/balance``): no customer data is read."""
        from dativo_provider.sources.probes import probe_stripe

        return connection_test(lambda: probe_stripe(self.get_conn()),
                               lambda: connection_secrets(self.get_connection(self.stripe_conn_id)))

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.x (Airflow >= 3.2 reads ``conn-fields`` instead)."""
        return form_widgets(STRIPE_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return field_behaviour(STRIPE_UI_FIELD_BEHAVIOUR)


def stripe_config(conn: Any) -> StripeConfig:
    """Map a ``dativo_stripe`` Connection to a :class:`StripeConfig`.

    :raises ConfigError: the connection has no key.
    """
    if not conn.password:
        raise ConfigError(f"connection {conn.conn_id!r}: put the Stripe secret key in the password field")
    mask_secret(conn.password)
    extras = extras_of(conn)
    return StripeConfig(
        api_key=conn.password,
        account=extras.get("account") or None,
        base_url=extras.get("base_url") or DEFAULT_BASE_URL,
        api_version=extras.get("api_version") or None,
        conn_id=conn.conn_id,
    )
