"""A spec's connection, through the source registry: unknown types, renamed types, wrong types."""

from __future__ import annotations

import logging

import pytest

from dativo_provider.connections import StripeConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.sources import source_connection_config
from dativo_provider.hooks.stripe import StripeHook
from tests.airflow.conftest import connection_env
from tests.sources.test_registry import VALID


def test_an_unknown_source_type_with_a_connection_lists_the_valid_types(monkeypatch):
    monkeypatch.setenv(*connection_env("pg", conn_type="postgres", host="db"))
    with pytest.raises(ConfigError) as failure:
        source_connection_config({"type": "postgress", "conn_id": "pg"})
    assert str(failure.value) == f"source 'type' is 'postgress'; expected one of {VALID}"
    assert "does not take a connection" not in str(failure.value)


@pytest.mark.parametrize(("old", "spec_type"), [("stripe", "stripe"), ("hubspot", "hubspot")])
def test_a_renamed_connection_type_still_works_for_a_release_with_a_warning(monkeypatch, caplog, old, spec_type):
    monkeypatch.setenv(*connection_env("saas", conn_type=old, password="pat-or-sk-123456"))
    with caplog.at_level(logging.WARNING, logger="dativo_provider.hooks.sources"):
        config = source_connection_config({"type": spec_type, "conn_id": "saas"})
    assert config is not None and config.conn_id == "saas"
    assert (f"DeprecationWarning: connection 'saas' has type '{old}', renamed to 'dativo_{old}'" in caplog.text
            and "docs/connections.md#renamed-connection-types" in caplog.text)


def test_a_renamed_type_is_only_accepted_where_its_new_name_is(monkeypatch):
    monkeypatch.setenv(*connection_env("saas", conn_type="stripe", password="sk_test_1"))
    with pytest.raises(ConfigError, match="'saas' has type 'stripe', but a hubspot source needs a dativo_hubspot"):
        source_connection_config({"type": "hubspot", "conn_id": "saas"})


def test_the_stripe_hook_reads_the_old_type_with_a_warning_and_refuses_others(monkeypatch, caplog):
    monkeypatch.setenv(*connection_env("stripe_default", conn_type="stripe", password="sk_test_abc"))
    with caplog.at_level(logging.WARNING, logger="dativo_provider.hooks.sources"):
        assert StripeHook().get_conn() == StripeConfig(api_key="sk_test_abc", conn_id="stripe_default")
    assert "renamed to 'dativo_stripe'" in caplog.text
    monkeypatch.setenv(*connection_env("stripe_default", conn_type="http", password="sk_test_abc"))
    with pytest.raises(ConfigError, match="'stripe_default' has type 'http'; it needs a dativo_stripe connection"):
        StripeHook().get_conn()
