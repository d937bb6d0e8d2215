"""Stripe and HubSpot connections become engine configuration; their forms are registered."""

from __future__ import annotations

import pytest

from dativo_provider.connections import HubSpotConfig, StripeConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import HUBSPOT_CONN_FIELDS, STRIPE_CONN_FIELDS
from dativo_provider.hooks.hubspot import HubSpotHook
from dativo_provider.hooks.sources import source_connection_config
from dativo_provider.hooks.stripe import StripeHook


def test_stripe_connection_becomes_stripe_config(connect):
    connect("stripe_default", conn_type="dativo_stripe", password="rk_live_secret123456",
            extra={"account": "acct_9", "api_version": "2024-06-20"})
    config = StripeHook().get_conn()
    assert config == StripeConfig(api_key="rk_live_secret123456", account="acct_9", api_version="2024-06-20",
                                  conn_id="stripe_default")
    assert "rk_live_secret123456" not in repr(config)
    spec = {"type": "stripe", "conn_id": "stripe_default", "object": "charges"}
    assert source_connection_config(spec) == config


def test_stripe_connection_without_a_key_says_where_to_put_it(connect):
    connect("stripe_empty", conn_type="dativo_stripe", extra={"base_url": "http://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="'stripe_empty': put the Stripe secret key in the password field"):
        StripeHook("stripe_empty").get_conn()


def test_hubspot_private_app_token(connect):
    connect("hs", conn_type="dativo_hubspot", password="pat-na1-token-123456", extra={"base_url": "http://127.0.0.1:9"})
    config = source_connection_config({"type": "hubspot", "conn_id": "hs", "object": "deals"})
    assert config == HubSpotConfig(access_token="pat-na1-token-123456", base_url="http://127.0.0.1:9", conn_id="hs")
    assert not config.uses_oauth and "pat-na1-token-123456" not in repr(config)


def test_hubspot_oauth_extras_also_in_form_field_spelling(connect):
    connect("hs", conn_type="dativo_hubspot", extra={"extra__dativo_hubspot__client_id": "app", "client_secret": "cs-98765",
                                              "refresh_token": "rt-45678"})
    config = HubSpotHook("hs").get_conn()
    assert config.uses_oauth and (config.client_id, config.client_secret, config.refresh_token) == (
        "app", "cs-98765", "rt-45678")
    assert "cs-98765" not in repr(config) and "rt-45678" not in repr(config)


def test_hubspot_incomplete_oauth_names_what_is_missing(connect):
    connect("hs", conn_type="dativo_hubspot", extra={"client_id": "app"})
    with pytest.raises(ConfigError, match=r"\['client_secret', 'refresh_token'\] missing"):
        HubSpotHook("hs").get_conn()
    connect("hs2", conn_type="dativo_hubspot")
    with pytest.raises(ConfigError, match="private-app token in the password field"):
        HubSpotHook("hs2").get_conn()


def test_a_stripe_spec_refuses_another_connection_type(connect):
    connect("pg", conn_type="postgres", host="db")
    with pytest.raises(ConfigError, match="'pg' has type 'postgres', but a stripe source needs a dativo_stripe connection"):
        source_connection_config({"type": "stripe", "conn_id": "pg", "object": "charges"})


def test_providers_manager_knows_the_stripe_and_hubspot_forms():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    for conn_type, fields in (("dativo_stripe", STRIPE_CONN_FIELDS), ("dativo_hubspot", HUBSPOT_CONN_FIELDS)):
        for field in fields:
            assert f"extra__{conn_type}__{field}" in manager.connection_form_widgets
        assert "host" in manager.field_behaviours[conn_type]["hidden_fields"]
    assert manager.field_behaviours["dativo_stripe"]["relabeling"]["password"] == "Secret key"
    assert HUBSPOT_CONN_FIELDS["client_secret"]["schema"]["format"] == "password"
