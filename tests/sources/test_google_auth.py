"""Google OAuth without google-auth: the JWT-bearer grant, token caching and refresh, the metadata
server, and Google's error dialect, all against the loopback double."""

from __future__ import annotations

import jwt
import pytest

from dativo_provider.connections import GoogleConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.sources.google_auth import EXPIRY_MARGIN, JWT_BEARER_GRANT, GoogleAuth, api_client
from dativo_provider.sources.http import (
    ApiAuthError,
    ApiRequestError,
    ApiUnavailableError,
    DailyLimitError,
    RetryPolicy,
)
from tests.doubles.google_api import google_error, make_service_account_key, sheets_error
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    clock,
    google,
    google_config,
    key_marker,
    service_account_info,
)

FAST = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=2.0, max_total_wait=60.0, jitter=0.0)
LIST = "/drive/v3/files"


def _api(request) -> bool:
    return request.path == LIST


def _client(config, clock, policy=FAST):
    return api_client("Google Drive", config.drive_url, GoogleAuth(config, clock=clock, policy=policy),
                      policy=policy, clock=clock)


def _list(client):
    return client.get(LIST, {"q": "trashed = false", "fields": "files(id)"}, what="files").body


def test_service_account_key_is_exchanged_for_a_token_with_a_signed_assertion(google, google_config, clock,
                                                                               _key_pair):
    client = _client(google_config, clock)
    assert _list(client) == {"files": []}

    token_call, api_call = google.requests
    assert (token_call.method, token_call.path, token_call.body["grant_type"]) == ("POST", "/token", JWT_BEARER_GRANT)
    assertion = token_call.body["assertion"]
    claims = jwt.decode(assertion, _key_pair[1], algorithms=["RS256"], audience=f"{google.url}/token")
    assert claims["iss"] == CLIENT_EMAIL
    assert claims["scope"].split() == list(google_config.scopes)
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(assertion)["kid"] == _key_pair[0]["private_key_id"]
    assert api_call.headers["authorization"] == f"Bearer {google.issued[0]}"


def test_token_is_cached_until_shortly_before_it_expires(google, google_config, clock):
    client = _client(google_config, clock)
    _list(client)
    _list(client)
    assert len(google.requests_to("/token")) == 1

    # Only the monotonic clock moves: the double checks the assertion's iat against the real time.
    clock._monotonic += google.token_lifetime - EXPIRY_MARGIN + 1
    _list(client)
    assert len(google.requests_to("/token")) == 2
    assert google.requests[-1].headers["authorization"] == f"Bearer {google.issued[1]}"


def test_a_401_mints_a_new_token_once_and_the_request_succeeds(google, google_config, clock):
    client = _client(google_config, clock)
    _list(client)
    google.expire_tokens()

    assert _list(client) == {"files": []}
    assert [r.path for r in google.requests] == ["/token", LIST, LIST, "/token", LIST]
    assert not any(clock.sleeps)


def test_a_given_access_token_is_sent_as_is_and_a_401_fails_without_retrying(google, clock):
    token = google.issue_token({"https://www.googleapis.com/auth/drive.readonly"})
    config = GoogleConfig(access_token=token, drive_url=google.url, conn_id="gdrive_token")
    client = _client(config, clock)
    assert _list(client) == {"files": []}

    google.expire_tokens()
    with pytest.raises(ApiAuthError) as failure:
        _list(client)
    assert "gdrive_token" in str(failure.value) and "UNAUTHENTICATED" not in str(failure.value)
    assert "authError" in str(failure.value)
    assert token not in str(failure.value)
    assert len(google.requests_to(LIST)) == 2 and not google.requests_to("/token")


def test_a_key_the_token_endpoint_rejects_is_an_auth_error_without_the_key(google, google_config, clock):
    other, _ = make_service_account_key(f"{google.url}/token", CLIENT_EMAIL)  # not the registered key
    config = GoogleConfig(service_account_info=other, drive_url=google.url, conn_id="google_bad_key")

    with pytest.raises(ApiAuthError) as failure:
        _list(_client(config, clock))
    message = str(failure.value)
    assert "google_bad_key" in message and "invalid_grant" in message and "Invalid JWT Signature" in message
    assert key_marker(other) not in message
    assert google.requests_to("/token")[0].body["assertion"] not in message
    assert not google.requests_to(LIST), "no API call without a token"
    assert len(google.requests_to("/token")) == 1, "a refused grant is not retried"


def test_a_malformed_or_incomplete_key_fails_before_any_request(google, service_account_info):
    broken = {**service_account_info, "private_key": service_account_info["private_key"][:300]}
    with pytest.raises(ConfigError, match="not an unencrypted RSA key in PEM form") as failure:
        GoogleAuth(GoogleConfig(service_account_info=broken, conn_id="g"))
    assert key_marker(service_account_info)[:20] not in str(failure.value)

    with pytest.raises(ConfigError, match="has no client_email"):
        GoogleAuth(GoogleConfig(service_account_info={**service_account_info, "client_email": ""}))
    with pytest.raises(ConfigError, match="only 'service_account' keys"):
        GoogleAuth(GoogleConfig(service_account_info={"type": "authorized_user"}))
    with pytest.raises(ConfigError, match="no service-account key, access token or metadata server"):
        GoogleAuth(GoogleConfig(conn_id="empty"))
    assert google.requests == []


def test_token_endpoint_500_then_success_and_429_with_retry_after_are_retried(google, google_config, clock):
    google.fail(500, {"error": "internal_failure"}, match=lambda r: r.path == "/token")
    google.fail(429, {"error": "rate_limit_exceeded"}, headers={"Retry-After": "7"},
                match=lambda r: r.path == "/token")

    assert _list(_client(google_config, clock)) == {"files": []}
    assert len(google.requests_to("/token")) == 3
    assert clock.sleeps == [0.5, 7.0]


def test_subject_and_quota_project_are_sent(google, service_account_info, clock):
    config = GoogleConfig(service_account_info=service_account_info, drive_url=google.url,
                          subject="analyst@example.com", quota_project="billing-project")
    _list(_client(config, clock))
    assert google.subjects == ["analyst@example.com"]
    assert google.requests_to(LIST)[0].headers["x-goog-user-project"] == "billing-project"


def test_metadata_server_tokens_carry_the_flavor_header_and_scopes(google, clock):
    config = GoogleConfig(metadata_url=google.url, drive_url=google.url, conn_id="google_cloud_default")
    auth = GoogleAuth(config, clock=clock)
    _list(api_client("Google Drive", google.url, auth, clock=clock))
    (call,) = google.requests_to("/computeMetadata")
    assert call.headers["metadata-flavor"] == "Google"
    assert call.param("scopes").split(",") == list(config.scopes)
    assert auth.refreshable


@pytest.mark.parametrize("reason", ["userRateLimitExceeded", "rateLimitExceeded"])
def test_drive_rate_limits_sent_as_403_are_retried(google, google_config, clock, reason):
    google.fail(403, google_error(403, "User Rate Limit Exceeded", reason, "usageLimits").body, times=2, match=_api)
    assert _list(_client(google_config, clock)) == {"files": []}
    assert clock.sleeps == [0.5, 1.0]


def test_error_bodies_are_mapped_by_kind(google, google_config, clock):
    client = _client(google_config, clock)
    google.fail(403, google_error(403, "Request had insufficient authentication scopes.",
                                  "insufficientPermissions").body, match=_api)
    with pytest.raises(ApiAuthError, match=r"insufficient authentication scopes\. \(insufficientPermissions\)"):
        _list(client)
    google.fail(403, google_error(403, "Daily Limit Exceeded", "dailyLimitExceeded", "usageLimits").body, match=_api)
    with pytest.raises(DailyLimitError, match="daily request quota"):
        _list(client)
    google.fail(400, google_error(400, "Invalid Value", "invalid").body, match=_api)
    with pytest.raises(ApiRequestError, match=r"Invalid Value \(invalid\)"):
        _list(client)
    google.fail(503, google_error(503, "Backend Error", "backendError").body, times=None, match=_api)
    with pytest.raises(ApiUnavailableError, match="Backend Error"):
        _list(client)


def test_the_token_endpoint_grants_any_google_scope_and_each_api_checks_its_own(google, google_config, clock):
    # The real endpoint grants cloud-platform (the Airflow connection's default) and drive.file alike;
    # it is the API that refuses a token whose scopes do not cover it.
    config = GoogleConfig(service_account_info=google_config.service_account_info, drive_url=google.url,
                          scopes=("https://www.googleapis.com/auth/cloud-platform", "openid"))
    with pytest.raises(ApiAuthError, match=r"insufficient authentication scopes\. \(insufficientPermissions\)"):
        _list(_client(config, clock))
    assert len(google.issued) == 1, "the token endpoint granted cloud-platform; Drive refused it"
    wide = GoogleConfig(service_account_info=google_config.service_account_info, drive_url=google.url,
                        scopes=("https://www.googleapis.com/auth/drive.file", "https://www.googleapis.com/auth/drive"))
    assert _list(_client(wide, clock)) == {"files": []}
    bogus = GoogleConfig(service_account_info=google_config.service_account_info, drive_url=google.url,
                         scopes=("drive",))
    with pytest.raises(ApiAuthError, match="invalid_scope|Invalid OAuth scope"):
        _list(_client(bogus, clock))


def test_error_info_details_are_read_into_the_message(google, google_config, clock):
    client = _client(google_config, clock)
    disabled = sheets_error(403, "Google Sheets API has not been used in project 1234 before or it is disabled.",
                            "SERVICE_DISABLED", metadata={"service": "sheets.googleapis.com",
                                                          "consumer": "projects/1234"})
    google.fail(403, disabled.body, match=_api)
    with pytest.raises(ApiRequestError, match=r"sheets\.googleapis\.com is not enabled in projects/1234; enable "
                                              r"it .*\(SERVICE_DISABLED; consumer=projects/1234; "
                                              r"service=sheets\.googleapis\.com\)") as failure:
        _list(client)
    assert not isinstance(failure.value, ApiAuthError)
    scope = sheets_error(403, "Request had insufficient authentication scopes.", "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                         metadata={"service": "sheets.googleapis.com", "method": "GetValues"})
    google.fail(403, scope.body, match=_api)
    with pytest.raises(ApiAuthError, match=r"scopes\. \(ACCESS_TOKEN_SCOPE_INSUFFICIENT; method=GetValues; "
                                           r"service=sheets\.googleapis\.com\)"):
        _list(client)


def test_nothing_secret_is_logged_at_debug(google, google_config, clock, caplog, service_account_info):
    caplog.set_level("DEBUG")
    client = _client(google_config, clock)
    _list(client)
    google.expire_tokens()
    _list(client)
    assertions = [r.body["assertion"] for r in google.requests_to("/token")]
    for secret in [key_marker(service_account_info), *google.issued, *assertions]:
        assert secret not in caplog.text
    assert "new access token" in caplog.text
