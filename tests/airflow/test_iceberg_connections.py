"""The official ``iceberg`` connection read with the official hook's field meaning, the old-style one
read with ours (and a warning), and the Iceberg hook's connection test."""

from __future__ import annotations

import logging

import pytest

from dativo_provider.compat import BaseHook
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook, catalog_config


def test_official_rest_connection_sends_login_and_password_as_the_oauth_credential(connect):
    connect("lake", conn_type="iceberg", host="https://catalog.example/api/", login="client", password="sec-4321",
            extra={"warehouse": "analytics", "scope": "PRINCIPAL_ROLE:ALL", "s3.region": "eu-west-1"})
    config = IcebergHook("lake").get_catalog_config()
    assert config.name == "lake"
    assert dict(config.properties) == {
        "type": "rest", "uri": "https://catalog.example/api", "credential": "client:sec-4321",
        "warehouse": "analytics", "scope": "PRINCIPAL_ROLE:ALL", "s3.region": "eu-west-1",
    }
    assert "sec-4321" not in repr(config)


def test_official_connection_configures_a_sql_catalog_through_its_extras(connect, tmp_path, caplog):
    connect("lake", conn_type="iceberg", extra={
        "type": "sql", "uri": f"sqlite:///{tmp_path}/c.db", "warehouse": f"file://{tmp_path}/wh", "init_catalog_tables": True})
    with caplog.at_level(logging.WARNING):
        config = IcebergHook("lake").get_catalog_config()
    assert dict(config.properties) == {"type": "sql", "uri": f"sqlite:///{tmp_path}/c.db",
                                       "warehouse": f"file://{tmp_path}/wh", "init_catalog_tables": "true"}
    assert "DeprecationWarning" not in caplog.text
    catalog = config.load()
    catalog.create_namespace("sales")
    assert catalog.list_namespaces() == [("sales",)]


def test_official_host_wins_over_the_uri_extra_and_glue_takes_pyiceberg_properties(connect):
    connect("a", conn_type="iceberg", host="https://host.example", extra={"uri": "https://extra.example"})
    assert IcebergHook("a").get_catalog_config().properties["uri"] == "https://host.example"
    connect("g", conn_type="iceberg", extra={"type": "glue", "glue.region": "eu-west-1", "warehouse": "s3://w"})
    assert dict(IcebergHook("g").get_catalog_config().properties) == {
        "type": "glue", "glue.region": "eu-west-1", "warehouse": "s3://w"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"extra": {"warehouse": "x"}}, "a rest catalog needs its URI in 'host'"),
    ({"extra": {"type": "sql"}}, "a sql catalog needs its URI in 'host'"),
    ({"host": "https://c", "extra": {"header": {"X": "1"}}}, "extra 'header' must be a text, number or boolean"),
    ({"host": "https://c", "extra": {"type": "in-memory"}}, "'type' is 'in-memory'"),
])
def test_official_connection_mistakes_are_named(connect, fields, message):
    connect("bad", conn_type="iceberg", **fields)
    with pytest.raises(ConfigError, match=message):
        IcebergHook("bad").get_catalog_config()


@pytest.mark.parametrize("fields", [
    {"host": "sqlite:////data/catalog.db", "extra": {"warehouse": "file:///data/wh"}},
    {"host": "db.internal", "login": "ice", "schema": "catalog"},
    {"extra": {"catalog_type": "glue", "region": "eu-west-1"}},
    {"host": "https://c", "extra": {"catalog_type": "rest", "credential": "a:b-secret"}},
])
def test_an_old_style_iceberg_connection_is_read_as_before_with_a_warning(connect, caplog, fields):
    connect("old", conn_type="iceberg", **fields)
    as_own_type = catalog_config(BaseHook.get_connection(connect("new", conn_type="dativo_iceberg", **fields)))
    with caplog.at_level(logging.WARNING, logger="dativo_provider.hooks.sources"):
        config = IcebergHook("old").get_catalog_config()
    assert dict(config.properties) == dict(as_own_type.properties) and config.name == "dativo"
    assert ("DeprecationWarning: connection 'old' has type 'iceberg', renamed to 'dativo_iceberg'" in caplog.text
            and "docs/connections.md#renamed-connection-types" in caplog.text)


def test_a_connection_of_another_type_is_refused(connect):
    connect("pg", conn_type="postgres", host="db")
    with pytest.raises(ConfigError, match="'pg' has type 'postgres'; an Iceberg catalog needs a dativo_iceberg or iceberg"):
        IcebergHook("pg").get_catalog_config()


def test_connection_test_lists_namespaces_of_either_type(connect, tmp_path):
    connect("own", conn_type="dativo_iceberg", host=f"sqlite:///{tmp_path}/own.db",
            extra={"warehouse": f"file://{tmp_path}/own"})
    IcebergHook("own").get_conn().create_namespace("one")
    assert IcebergHook("own").test_connection() == (True, "sql catalog 'dativo' answered: 1 namespace(s)")
    connect("official", conn_type="iceberg", extra={"type": "sql", "uri": f"sqlite:///{tmp_path}/o.db",
                                                    "warehouse": f"file://{tmp_path}/o"})
    assert IcebergHook("official").test_connection() == (True, "sql catalog 'official' answered: 0 namespace(s)")


def test_a_failing_connection_test_names_the_problem_without_secrets(connect):
    connect("rest", conn_type="iceberg", host="http://127.0.0.1:9/api", login="client", password="cs-secret-777")
    ok, message = IcebergHook("rest").test_connection()
    assert not ok and message.split(":")[0] in {"ConnectionError", "ValueError", "ServerError", "RESTError"}, message
    assert "cs-secret-777" not in message
    connect("pg", conn_type="dativo_iceberg", host="127.0.0.1", port=9, login="u", password="pg-secret-555")
    ok, message = IcebergHook("pg").test_connection()
    assert not ok and "pg-secret-555" not in message and "pg-secret-555".replace("-", "%2D") not in message
    connect("wrong", conn_type="postgres", host="db")
    assert IcebergHook("wrong").test_connection() == (
        False, "ConfigError: connection 'wrong' has type 'postgres'; an Iceberg catalog needs a dativo_iceberg or "
               "iceberg connection")
