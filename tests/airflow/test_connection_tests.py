"""``test_connection`` of the source and privacy hooks: one cheap real call against the loopback doubles,
``(True, what answered)`` or ``(False, why)``, and never a secret in the message."""

from __future__ import annotations

import json

import pytest

from dativo_provider.hooks.google import GoogleHook
from dativo_provider.hooks.hubspot import HubSpotHook
from dativo_provider.hooks.privacy import AirflowApiHook, DsrKeyHook
from dativo_provider.hooks.stripe import StripeHook
from tests.airflow.conftest import connection_env
from tests.doubles.google_api import GoogleDouble, make_service_account_key
from tests.doubles.hubspot_api import HubSpotDouble
from tests.doubles.stripe_api import StripeDouble

STRIPE_KEY = "sk_test_51ConnTestKey00000000000000abcd"
HUBSPOT_TOKEN = "pat-na1-c0nn7e57-dati-vo00-0000-000000secret"


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)

    def define(conn_id: str, **fields: object) -> str:
        monkeypatch.setenv(*connection_env(conn_id, **fields))
        return conn_id

    return define


def test_stripe_reads_the_balance_and_names_a_refused_key_without_it(connect):
    with StripeDouble(api_key=STRIPE_KEY, accounts=["acct_42"]) as api:
        connect("pay", conn_type="dativo_stripe", password=STRIPE_KEY, extra={"base_url": api.url})
        assert StripeHook("pay").test_connection() == (True, "Stripe answered for the key's account (test mode)")
        assert [r.path for r in api.requests] == ["/v1/balance"]
        connect("sub", conn_type="dativo_stripe", password=STRIPE_KEY,
                extra={"base_url": api.url, "account": "acct_42"})
        assert StripeHook("sub").test_connection() == (True, "Stripe answered for connected account acct_42 (test mode)")
        wrong = "sk_test_51WrongKey000000000000000000wxyz"
        connect("bad", conn_type="dativo_stripe", password=wrong, extra={"base_url": api.url})
        ok, message = StripeHook("bad").test_connection()
    assert not ok and message.startswith("ApiAuthError:") and "'bad'" in message
    assert wrong not in message and "wxyz" not in message


def test_stripe_connection_without_a_key_fails_the_test_with_the_fix():
    ok, message = StripeHook("absent_everywhere").test_connection()
    assert not ok and "absent_everywhere" in message


def test_hubspot_reads_the_account_details_with_a_token_or_oauth(connect):
    oauth = {"client_id": "app-1", "client_secret": "cs-424242", "refresh_token": "rt-171717"}
    with HubSpotDouble(token=HUBSPOT_TOKEN, oauth=oauth) as api:
        connect("crm", conn_type="dativo_hubspot", password=HUBSPOT_TOKEN, extra={"base_url": api.url})
        assert HubSpotHook("crm").test_connection() == (True, "HubSpot portal 62515 answered (private-app token)")
        connect("app", conn_type="dativo_hubspot", extra={"base_url": api.url, **oauth})
        assert HubSpotHook("app").test_connection() == (True, "HubSpot portal 62515 answered (OAuth app)")
        assert [r.path for r in api.requests] == ["/account-info/2026-03/details", "/oauth/2026-03/token",
                                                  "/account-info/2026-03/details"]
        connect("bad", conn_type="dativo_hubspot", extra={"base_url": api.url, **oauth, "refresh_token": "rt-wrong-999"})
        ok, message = HubSpotHook("bad").test_connection()
    assert not ok and message.startswith("ApiAuthError:") and "OAuth refresh was refused" in message
    assert "rt-wrong-999" not in message and "cs-424242" not in message


def test_google_mints_a_token_and_lists_one_file_id(connect):
    with GoogleDouble() as api:
        key, public = make_service_account_key(api.url + "/token")
        api.register_account(key["client_email"], public)
        extra = {"drive_url": api.url, "sheets_url": api.url}
        connect("g", conn_type="dativo_google", password=json.dumps(key), extra=extra)
        assert GoogleHook("g").test_connection() == (
            True, "Google Drive accepted the token of ingest@dativo-test.iam.gserviceaccount.com")
        assert [r.path for r in api.requests] == ["/token", "/drive/v3/files"]
        assert api.requests[-1].params == {"pageSize": ["1"], "fields": ["files(id)"]}
        connect("sheets", conn_type="google_cloud_platform", extra={
            "keyfile_dict": key, "scope": "https://www.googleapis.com/auth/spreadsheets.readonly", **extra})
        assert GoogleHook("sheets").test_connection() == (
            True, "Google issued a token for ingest@dativo-test.iam.gserviceaccount.com (no Drive scope: nothing listed)")
        stranger, _ = make_service_account_key(api.url + "/token", "stranger@x.iam.gserviceaccount.com")
        connect("bad", conn_type="dativo_google", password=json.dumps(stranger), extra=extra)
        ok, message = GoogleHook("bad").test_connection()
        connect("tok", conn_type="dativo_google", password="ya29.expired-token-31337", extra=extra)
        token_ok, token_message = GoogleHook("tok").test_connection()
    assert not ok and "account not found" in message
    assert stranger["private_key"] not in message and "MII" not in message
    assert not token_ok and token_message.startswith("ApiAuthError:") and "ya29.expired-token-31337" not in token_message


PEM = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""


def test_dsr_key_connections_validate_their_key_material(connect):
    connect("sign", conn_type="dativo_dsr_key", password=PEM, extra={"key_id": "dsr-2026"})
    assert DsrKeyHook("sign").test_connection() == (True, "ed25519 signing key 'dsr-2026' signs")
    connect("mac", conn_type="dativo_dsr_key", password="m" * 32, extra={"algorithm": "hmac-sha256"})
    assert DsrKeyHook("mac").test_connection() == (True, "hmac-sha256 signing key 'mac' signs")
    connect("hash", conn_type="generic", password="h" * 20)
    assert DsrKeyHook("hash").test_connection() == (
        True, "a 20-byte hash key (or, with extra algorithm hmac-sha256, an HMAC signing key)")
    connect("short", conn_type="dativo_dsr_key", password="tiny-key")
    assert DsrKeyHook("short").test_connection() == (
        False, "ConfigError: connection 'short': the hash key is 8 bytes; use at least 16 (32 random bytes recommended)")
    broken = PEM.replace("MC4CAQAw", "MC4CAQBB")
    connect("broken", conn_type="dativo_dsr_key", password=broken)
    ok, message = DsrKeyHook("broken").test_connection()
    assert not ok and "not an unencrypted PEM or raw Ed25519 key" in message and "MC4CAQBB" not in message
    connect("empty", conn_type="dativo_dsr_key")
    assert DsrKeyHook("empty").test_connection()[1].endswith("the key belongs in its password field, which is empty")


def test_airflow_api_hook_lists_one_dag(connect):
    from tests.doubles.server import ApiDouble, Request, Response

    class AirflowApi(ApiDouble):
        def route(self, request: Request) -> Response:
            if request.headers.get("authorization") != "Bearer api-token-2468":
                return Response(401, {"detail": "Not authenticated"})
            return Response(200, {"dags": [{"dag_id": "a"}], "total_entries": 3})

    with AirflowApi() as api:
        url = api.url
        connect("api", conn_type="http", host=url, password="api-token-2468")
        ok, message = AirflowApiHook("api").test_connection()
        connect("nope", conn_type="http", host=api.url, password="wrong-token-1357")
        refused = AirflowApiHook("nope").test_connection()
    assert ok and message.startswith(f"Airflow API {url}/api/v") and message.endswith(": 3 DAG(s) visible")
    assert not refused[0] and "HTTP 401" in refused[1] and "wrong-token-1357" not in refused[1]
