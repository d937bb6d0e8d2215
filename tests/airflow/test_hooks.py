"""Connections become engine configuration: iceberg catalogs, databases, object stores."""

from __future__ import annotations

import logging

import pytest

from dativo_provider.compat import AirflowNotFoundException, BaseHook
from dativo_provider.connections import DatabaseConfig, ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook, catalog_config
from dativo_provider.hooks.sources import source_connection_config


def test_sql_catalog_from_uri_in_host(connect):
    connect("cat", conn_type="dativo_iceberg", host="sqlite:////data/catalog.db", extra={"warehouse": "file:///data/wh"})
    config = catalog_config(BaseHook.get_connection("cat"))
    assert config.name == "dativo"
    assert dict(config.properties) == {
        "type": "sql", "uri": "sqlite:////data/catalog.db", "warehouse": "file:///data/wh"
    }


def test_sql_catalog_built_from_fields_quotes_credentials_and_hides_them(connect):
    connect(
        "cat", conn_type="dativo_iceberg", host="db.internal", port=5433, login="ice", password="p@ss:w/rd",
        schema="catalog", extra={"catalog_name": "lake", "warehouse": "s3://bucket/wh"},
    )
    config = catalog_config(BaseHook.get_connection("cat"))
    assert config.name == "lake"
    assert config.properties["uri"] == "postgresql+psycopg://ice:p%40ss%3Aw%2Frd@db.internal:5433/catalog"
    assert "s3://bucket/wh" == config.properties["warehouse"]


def test_rest_catalog_with_token_credential_and_pyiceberg_properties(connect):
    connect(
        "rest", conn_type="dativo_iceberg", host="https://catalog.example/api", password="tok-123456",
        extra={
            "catalog_type": "rest", "warehouse": "analytics", "credential": "client:secret-abcdef",
            "scope": "PRINCIPAL_ROLE:ALL", "oauth2-server-uri": "https://auth.example/token",
            "header.X-Iceberg-Access-Delegation": "vended-credentials",
        },
    )
    config = IcebergHook("rest").get_catalog_config()
    assert dict(config.properties) == {
        "type": "rest", "uri": "https://catalog.example/api", "warehouse": "analytics",
        "token": "tok-123456", "credential": "client:secret-abcdef", "scope": "PRINCIPAL_ROLE:ALL",
        "oauth2-server-uri": "https://auth.example/token",
        "header.X-Iceberg-Access-Delegation": "vended-credentials",
    }
    assert "tok-123456" not in repr(config) and "secret-abcdef" not in repr(config)


def test_glue_catalog_takes_credentials_and_endpoint_from_an_aws_connection(connect):
    connect(
        "aws_lake", conn_type="aws", login="AKIATEST", password="aws-secret-xyz",
        extra={"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000", "aws_session_token": "sess-1"},
    )
    connect("glue", conn_type="dativo_iceberg", extra={
        "catalog_type": "glue", "aws_conn_id": "aws_lake", "warehouse": "s3://lake/wh",
        "s3_endpoint": "http://127.0.0.1:9000",
    })
    properties = dict(IcebergHook("glue").get_catalog_config().properties)
    assert properties == {
        "type": "glue", "warehouse": "s3://lake/wh",
        "glue.region": "eu-west-1", "glue.access-key-id": "AKIATEST", "glue.secret-access-key": "aws-secret-xyz",
        "glue.session-token": "sess-1", "glue.endpoint": "http://127.0.0.1:5000",
        "s3.endpoint": "http://127.0.0.1:9000", "s3.region": "eu-west-1", "s3.access-key-id": "AKIATEST",
        "s3.secret-access-key": "aws-secret-xyz", "s3.session-token": "sess-1",
    }


def test_aws_conn_id_must_name_an_aws_connection(connect):
    connect("not_aws", conn_type="postgres", host="x")
    connect("glue", conn_type="dativo_iceberg", extra={"catalog_type": "glue", "aws_conn_id": "not_aws"})
    with pytest.raises(ConfigError, match="'not_aws', which has type 'postgres'"):
        IcebergHook("glue").get_catalog_config()


def test_unknown_catalog_type_is_named(connect):
    connect("cat", conn_type="dativo_iceberg", host="x", extra={"catalog_type": "hive"})
    with pytest.raises(ConfigError, match="'catalog_type' is 'hive'"):
        IcebergHook("cat").get_catalog_config()


def test_missing_default_connection_falls_back_to_the_embedded_catalog(dativo_home, caplog):
    with caplog.at_level(logging.INFO, logger="dativo_provider.hooks.iceberg"):
        config = IcebergHook().get_catalog_config()
    assert config.properties["uri"] == f"sqlite:///{dativo_home / 'catalog.db'}"
    assert config.properties["warehouse"] == f"file://{dativo_home / 'warehouse'}"
    assert "embedded Iceberg catalog" in caplog.text


def test_the_embedded_catalog_works_on_every_supported_airflow(dativo_home):
    """pyiceberg's SqlCatalog with SQLAlchemy 2 (Airflow >= 3.1), DbApiCatalog with Airflow 2.11's 1.4."""
    import sqlalchemy

    catalog = IcebergHook().get_conn()
    expected = "SqlCatalog" if int(sqlalchemy.__version__.split(".")[0]) >= 2 else "DbApiCatalog"
    assert type(catalog).__name__ == expected
    catalog.create_namespace("lake")
    assert catalog.list_namespaces() == [("lake",)]


def test_a_missing_named_connection_is_an_error():
    with pytest.raises(AirflowNotFoundException):
        IcebergHook("no_such_catalog").get_catalog_config()


def test_postgres_connection_becomes_database_config(connect):
    connect("pg", conn_type="postgres", host="db", port=5432, login="u", password="pw-123456", schema="sales",
            extra={"sslmode": "require", "cursor": "dictcursor"})
    config = source_connection_config({"type": "postgres", "conn_id": "pg"})
    assert config == DatabaseConfig(
        host="db", port=5432, user="u", password="pw-123456", database="sales", options={"sslmode": "require"}
    )
    assert "pw-123456" not in repr(config)


def test_mysql_connection_flattens_the_official_ssl_extra(connect):
    connect("my", conn_type="mysql", host="db", login="root", schema="shop",
            extra={"charset": "utf8mb4", "ssl": {"ca": "/ca.pem", "cert": "/c.pem"}})
    config = source_connection_config({"type": "mysql", "conn_id": "my"})
    assert config.options == {"charset": "utf8mb4", "ssl_ca": "/ca.pem", "ssl_cert": "/c.pem"}


def test_aws_connection_becomes_object_store_config(connect):
    connect("s3", conn_type="aws", extra={
        "aws_access_key_id": "AKIA2", "aws_secret_access_key": "sec-abcdef", "region_name": "us-east-2",
        "service_config": {"s3": {"endpoint_url": "http://127.0.0.1:9000"}},
    })
    config = source_connection_config({"type": "files", "conn_id": "s3", "path": "s3://b/p"})
    assert config == ObjectStoreConfig(
        access_key_id="AKIA2", secret_access_key="sec-abcdef", region="us-east-2",
        endpoint_url="http://127.0.0.1:9000",
    )


def test_wrong_connection_type_names_the_conn_id(connect):
    connect("warehouse_db", conn_type="mysql", host="db")
    with pytest.raises(ConfigError, match="'warehouse_db' has type 'mysql', but a postgres source needs a postgres"):
        source_connection_config({"type": "postgres", "conn_id": "warehouse_db"})


def test_spec_without_conn_id_needs_no_connection():
    assert source_connection_config({"type": "files", "path": "/data"}) is None
