"""Google connections become a GoogleConfig: the official ``google_cloud_platform`` type and our own
``dativo_google``, every way they carry a key, and the mistakes they can hold."""

from __future__ import annotations

import json

import pytest

from dativo_provider.compat import BaseHook
from dativo_provider.connections import GOOGLE_READONLY_SCOPES, GoogleConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import GOOGLE_CONN_FIELDS, get_provider_info
from dativo_provider.hooks.google import DEFAULT_METADATA_URL, GoogleHook, google_config
from dativo_provider.hooks.sources import source_connection_config
from tests.airflow.conftest import connection_env
from tests.doubles.google_api import make_service_account_key

KEY, _ = make_service_account_key("https://oauth2.googleapis.com/token")


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch):
    """Define a connection through ``AIRFLOW_CONN_<ID>``; no ambient Google credentials."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GCE_METADATA_HOST", raising=False)

    def define(conn_id: str, **fields: object) -> GoogleConfig:
        monkeypatch.setenv(*connection_env(conn_id, **fields))
        return google_config(BaseHook.get_connection(conn_id))

    return define


def test_dativo_google_takes_the_key_json_from_the_password(connect):
    config = connect("g", conn_type="dativo_google", password=json.dumps(KEY), extra={
        "subject": "analyst@example.com", "quota_project_id": "billing", "scope": "a, b",
        "drive_url": "http://127.0.0.1:1", "sheets_url": "http://127.0.0.1:2"})
    assert config.service_account_info == KEY and config.access_token is None
    assert (config.subject, config.quota_project, config.scopes) == ("analyst@example.com", "billing", ("a", "b"))
    assert (config.drive_url, config.sheets_url, config.conn_id) == ("http://127.0.0.1:1", "http://127.0.0.1:2", "g")
    assert KEY["private_key"] not in repr(config)


def test_dativo_google_takes_an_access_token_too(connect):
    config = connect("g", conn_type="dativo_google", password="ya29.a-token")
    assert (config.access_token, config.service_account_info, config.scopes) == (
        "ya29.a-token", None, GOOGLE_READONLY_SCOPES)


@pytest.mark.parametrize("extra", [
    {"keyfile_dict": json.dumps(KEY)},
    {"keyfile_dict": KEY},
    {"extra__google_cloud_platform__keyfile_dict": json.dumps(KEY)},
    {"keyfile_json": json.dumps(KEY)},
])
def test_official_connection_keyfile_dict(connect, extra):
    config = connect("google_cloud_default", conn_type="google_cloud_platform", extra=extra)
    assert config.service_account_info == KEY and config.metadata_url is None


def test_official_connection_key_path_and_scope(connect, tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(KEY))
    config = connect("gcp", conn_type="google_cloud_platform", extra={
        "key_path": str(path), "scope": "https://www.googleapis.com/auth/drive.readonly"})
    assert config.service_account_info == KEY
    assert config.scopes == ("https://www.googleapis.com/auth/drive.readonly",)


def test_official_connection_without_a_key_uses_application_default_credentials(connect, monkeypatch, tmp_path):
    assert connect("gcp", conn_type="google_cloud_platform").metadata_url == DEFAULT_METADATA_URL
    monkeypatch.setenv("GCE_METADATA_HOST", "169.254.169.254")
    assert connect("gcp", conn_type="google_cloud_platform").metadata_url == "http://169.254.169.254"
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(KEY))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    assert connect("gcp", conn_type="google_cloud_platform").service_account_info == KEY


@pytest.mark.parametrize(("extra", "message"), [
    ({"key_secret_name": "projects/p/secrets/k"}, "'key_secret_name' is not supported"),
    ({"impersonation_chain": "sa@p.iam.gserviceaccount.com"}, "'impersonation_chain' is not supported"),
    ({"credential_config_file": "/wif.json"}, "'credential_config_file' is not supported"),
    ({"key_path": "/nonexistent/key.json"}, "cannot read the key file"),
    ({"keyfile_dict": '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEv'}, "is not a service-account key"),
])
def test_official_connection_mistakes_are_named(connect, extra, message):
    with pytest.raises(ConfigError, match=message) as failure:
        connect("gcp", conn_type="google_cloud_platform", extra=extra)
    assert "MIIEv" not in str(failure.value)


def test_dativo_google_needs_a_password(connect):
    with pytest.raises(ConfigError, match="put the service-account key JSON"):
        connect("g", conn_type="dativo_google")


def test_source_specs_accept_both_connection_types(connect, monkeypatch):
    connect("g", conn_type="dativo_google", password="ya29.tok")
    connect("gcp", conn_type="google_cloud_platform", extra={"keyfile_dict": KEY})
    assert source_connection_config({"type": "google_sheets", "conn_id": "g"}).access_token == "ya29.tok"
    assert source_connection_config({"type": "google_drive", "conn_id": "gcp"}).service_account_info == KEY
    assert source_connection_config({"type": "markdown_kv", "conn_id": "gcp"}).service_account_info == KEY
    monkeypatch.setenv(*connection_env("pg", conn_type="postgres", host="db"))
    with pytest.raises(ConfigError, match="needs a google_cloud_platform or dativo_google connection"):
        source_connection_config({"type": "google_drive", "conn_id": "pg"})


def test_hook_and_provider_info(connect):
    connect("google_cloud_default", conn_type="dativo_google", password="ya29.tok")
    assert GoogleHook().get_conn().access_token == "ya29.tok"
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "dativo_google"]
    assert entry["hook-class-name"] == "dativo_provider.hooks.google.GoogleHook"
    assert entry["conn-fields"] is GOOGLE_CONN_FIELDS
    assert GoogleHook.get_ui_field_behaviour()["hidden_fields"] == ["host", "schema", "login", "port"]
