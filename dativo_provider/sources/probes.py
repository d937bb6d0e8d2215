"""Connection checks for the SaaS sources: one cheap, read-only call that proves the credentials work.

Each probe returns a one-line description of what answered, or raises the source's own
:class:`~dativo_provider.sources.http.ApiError` (secret-free, as every error of the HTTP client).
The endpoints are chosen to return no personal data and to need no more permission than any key
the source can use:

* Stripe ``GET /v1/balance``: the account's balance (every secret key; a restricted key needs
  Balance read).
* HubSpot ``GET /account-info/{version}/details``: the portal id and settings (the ``oauth`` scope,
  which every OAuth app and private app holds). An OAuth app's refresh token is exchanged first.
* Google: a token is minted (the service-account key signs the assertion, or the metadata server
  answers); with a Drive scope, ``GET /drive/v3/files?pageSize=1&fields=files(id)`` then proves the
  token is accepted.

Probes do not retry for long: a connection test should answer in seconds.
"""

from __future__ import annotations

from dativo_provider.connections import GoogleConfig, HubSpotConfig, StripeConfig
from dativo_provider.sources.http import BearerAuth, HttpClient, RetryPolicy

#: Two tries, short waits: a test that hangs tells the user less than a quick failure.
PROBE_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_total_wait=5.0)
_DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.readonly")


def probe_stripe(config: StripeConfig) -> str:
    """``GET /v1/balance`` with the connection's key (and connected account, API version)."""
    from dativo_provider.sources.stripe import StripeDialect

    headers = {"Stripe-Account": config.account, "Stripe-Version": config.api_version}
    client = HttpClient(
        "Stripe", config.base_url, BearerAuth(config.api_key), conn_id=config.conn_id,
        headers={k: v for k, v in headers.items() if v}, dialect=StripeDialect(), policy=PROBE_RETRY,
    )
    try:
        body = client.get("/v1/balance", what="the account balance").body
    finally:
        client.close()
    mode = "live" if body.get("livemode") else "test"
    account = f"connected account {config.account}" if config.account else "the key's account"
    return f"Stripe answered for {account} ({mode} mode)"


def probe_hubspot(config: HubSpotConfig) -> str:
    """``GET /account-info/{version}/details`` (after the OAuth refresh, for an OAuth app)."""
    from dativo_provider.sources.hubspot_api import HubSpotApi

    api = HubSpotApi(config, policy=PROBE_RETRY)
    try:
        body = api.account_details()
    finally:
        api.close()
    auth = "OAuth app" if config.uses_oauth else "private-app token"
    return f"HubSpot portal {body.get('portalId')} answered ({auth})"


def probe_google(config: GoogleConfig) -> str:
    """Mint an access token; with a Drive scope, list one file id to prove the token is accepted."""
    from dativo_provider.sources.google_auth import GoogleAuth, api_client

    auth = GoogleAuth(config, policy=PROBE_RETRY)
    try:
        auth.token()
        source = auth.key.client_email if auth.key else "the given access token" if config.access_token \
            else "the metadata server"
        if not set(config.scopes) & set(_DRIVE_SCOPES):
            return f"Google issued a token for {source} (no Drive scope: nothing listed)"
        client = api_client("Google Drive", config.drive_url, auth, policy=PROBE_RETRY)
        try:
            client.get("/drive/v3/files", {"pageSize": "1", "fields": "files(id)"}, what="one file id")
        finally:
            client.close()
    finally:
        auth.close()
    return f"Google Drive accepted the token of {source}"
