"""Google OAuth2 access tokens without the google-auth library, and the Google APIs' error dialect.

Three credential kinds, picked by :class:`~dativo_provider.connections.GoogleConfig`:

* **Service-account key.** An RS256-signed JWT (``iss`` = the key's ``client_email``, ``scope``,
  ``aud`` = the key's ``token_uri``, ``iat``/``exp`` one hour apart, ``sub`` for domain-wide
  delegation, header ``kid`` = ``private_key_id``) is exchanged at ``token_uri`` with the
  ``urn:ietf:params:oauth:grant-type:jwt-bearer`` grant, as Google's "OAuth 2.0 for server to server
  applications" guide describes. The token is cached until shortly before it expires, and minted
  again when an API answers 401.
* **An access token** minted elsewhere: sent as is, never refreshed (a 401 fails the run).
* **The metadata server** of GCE, GKE (Workload Identity) and Cloud Composer: the Application
  Default Credentials of a worker that runs on Google Cloud.

The private key, the signed assertion and the access token are never logged; every error message
passes through the HTTP client's redaction, which knows all three.

:func:`api_client` gives Drive and Sheets an :class:`~dativo_provider.sources.http.HttpClient` with
these credentials and :class:`GoogleDialect`, which reads Google's error bodies and retries Drive's
403 rate limits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from dativo_provider.connections import GoogleConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.optional import require
from dativo_provider.sources.http import (
    ApiAuthError,
    ApiError,
    ApiRequestError,
    Auth,
    Clock,
    DailyLimitError,
    Dialect,
    HttpClient,
    Page,
    RetryPolicy,
    SystemClock,
    json_or_none,
)

log = logging.getLogger(__name__)

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Google accepts assertions valid for at most one hour.
ASSERTION_LIFETIME = 3600
#: Mint a new token this many seconds before the old one expires, so no request carries a token that
#: expires in flight (google-auth uses a similar margin).
EXPIRY_MARGIN = 240
METADATA_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
#: Token-endpoint errors that say the credentials themselves are wrong: retrying cannot help.
_AUTH_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope",
                          "access_denied"})
_KEY_FIELDS = ("client_email", "private_key")
#: Drive's rate-limit reasons (sent with 403 as well as 429).
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: ErrorInfo metadata worth quoting in a message: which API, project and quota the error is about.
_SHOWN_METADATA = frozenset({"service", "consumer", "quota_metric", "quota_limit", "quota_limit_value", "method"})


@dataclass(frozen=True)
class ServiceAccountKey:
    """The fields of a service-account key file the JWT-bearer grant needs."""

    client_email: str
    private_key: str = field(repr=False)
    private_key_id: str | None = None
    token_uri: str = DEFAULT_TOKEN_URI


def service_account_key(info: Mapping[str, Any], conn_id: str | None) -> ServiceAccountKey:
    """Validate a parsed key file; errors name the connection and the field, never a value."""
    where = f"connection {conn_id!r}" if conn_id else "the Google credentials"
    if info.get("type", "service_account") != "service_account":
        raise ConfigError(
            f"{where}: the key file has type {info.get('type')!r}; only 'service_account' keys are "
            "supported (not OAuth client secrets or external-account configurations)"
        )
    missing = [name for name in _KEY_FIELDS if not isinstance(info.get(name), str) or not info.get(name)]
    if missing:
        raise ConfigError(f"{where}: the service-account key has no {' or '.join(missing)}")
    return ServiceAccountKey(
        client_email=info["client_email"],
        private_key=info["private_key"],
        private_key_id=info.get("private_key_id") or None,
        token_uri=info.get("token_uri") or DEFAULT_TOKEN_URI,
    )


class TokenDialect(Dialect):
    """The OAuth token endpoint's ``{"error", "error_description"}`` bodies.

    A refused grant is an authentication error even though Google answers 400: retrying a deleted
    key or an unauthorized delegation fails the same way.

    :param conn_id: the connection the key came from, named in the error.
    """

    def __init__(self, conn_id: str | None = None) -> None:
        self.where = f"connection {conn_id!r}" if conn_id else "the credentials"

    def special_error(self, response: requests.Response, api: str) -> ApiError | None:
        body = json_or_none(response)
        code = body.get("error") if isinstance(body, Mapping) else None
        if response.status_code not in (400, 401, 403) or not isinstance(code, str):
            return None
        if code not in _AUTH_ERRORS:
            return None
        return ApiAuthError(
            f"{api} refused the service-account key of {self.where} ({code}: {self.message(response)}). "
            "Check that the key is current and enabled, the worker's clock is right, and any delegated "
            "subject is authorized",
            api=api, status=response.status_code, method=response.request.method or "POST", path="",
        )


class _Secrets(Auth):
    """No headers; only the secrets of another auth, so the token client redacts them too."""

    def __init__(self, owner: Auth) -> None:
        self._owner = owner

    def secrets(self) -> tuple[str | None, ...]:
        return self._owner.secrets()


class GoogleAuth(Auth):
    """``Authorization: Bearer`` headers from a :class:`GoogleConfig`, minting tokens as needed.

    :param config: the credentials.
    :param clock: time for token expiry and the JWT's ``iat`` (tests pass a fake one).
    :param policy: retry limits for the token endpoint.
    """

    def __init__(self, config: GoogleConfig, *, clock: Clock | None = None,
                 policy: RetryPolicy | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.policy = policy
        info = config.service_account_info
        self.key = service_account_key(info, config.conn_id) if info else None
        self._signing_key = _load_private_key(self.key, config.conn_id) if self.key else None
        self._token: str | None = None if self.refreshable else config.access_token
        self._expires_at = 0.0
        self._assertion: str | None = None
        self._client: HttpClient | None = None
        self.tokens_minted = 0
        if not (self.key or config.access_token or config.metadata_url):
            where = f"connection {config.conn_id!r}" if config.conn_id else "the Google credentials"
            raise ConfigError(f"{where}: no service-account key, access token or metadata server to "
                              "authenticate with")

    @property
    def refreshable(self) -> bool:
        """True when new tokens can be minted (a key or the metadata server), False for a given token."""
        return self.key is not None or (not self.config.access_token and bool(self.config.metadata_url))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        """A current access token, minted when there is none or it is about to expire."""
        if self._token is None or (self.refreshable and self.clock.monotonic() >= self._expires_at):
            self._mint()
        assert self._token is not None
        return self._token

    def refresh(self) -> bool:
        """After a 401: forget the token so the retry mints one; False when it cannot be replaced."""
        if not self.refreshable:
            return False
        self._token = None
        return True

    def secrets(self) -> tuple[str | None, ...]:
        return (self.key.private_key if self.key else None, self._token, self._assertion,
                self.config.access_token)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def principal(self) -> str:
        """Who the API sees, for messages that say what to share with whom."""
        if self.key:
            acting = f" (acting as {self.config.subject})" if self.config.subject else ""
            return f"the service account {self.key.client_email}{acting}"
        if self.config.access_token:
            return "the account of the configured access token"
        return "this worker's service account (metadata server)"

    def __repr__(self) -> str:
        return f"GoogleAuth({self.key.client_email if self.key else 'token'})"

    # -- minting ---------------------------------------------------------------------------------

    def _mint(self) -> None:
        page = self._exchange_assertion() if self.key else self._ask_metadata_server()
        token, lifetime = _token_from(page.body, self.client().api)
        self._token = token
        self._expires_at = self.clock.monotonic() + max(lifetime - EXPIRY_MARGIN, lifetime / 2)
        self.tokens_minted += 1
        log.debug("%s: new access token, valid for %ss", self.client().api, lifetime)

    def _exchange_assertion(self) -> Page:
        self._assertion = self._sign_assertion()
        data = {"grant_type": JWT_BEARER_GRANT, "assertion": self._assertion}
        return self.client().post("", data=data, what="an access token for the service account")

    def _ask_metadata_server(self) -> Page:
        params = {"scopes": ",".join(self.config.scopes)}
        return self.client().get(METADATA_TOKEN_PATH, params, what="an access token from the metadata server")

    def _sign_assertion(self) -> str:
        jwt = require("jwt", "google")
        assert self.key is not None
        issued = int(self.clock.now().timestamp())
        claims = {"iss": self.key.client_email, "scope": " ".join(self.config.scopes),
                  "aud": self.key.token_uri, "iat": issued, "exp": issued + ASSERTION_LIFETIME}
        if self.config.subject:
            claims["sub"] = self.config.subject
        headers = {"kid": self.key.private_key_id} if self.key.private_key_id else None
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers=headers)

    def client(self) -> HttpClient:
        """The HTTP client of the token endpoint (or metadata server), made on first use."""
        if self._client is not None:
            return self._client
        common: dict[str, Any] = {"conn_id": self.config.conn_id, "policy": self.policy, "clock": self.clock}
        if self.key:
            self._client = HttpClient("Google OAuth", self.key.token_uri, _Secrets(self),
                                      dialect=TokenDialect(self.config.conn_id), **common)
        else:
            self._client = HttpClient("Google metadata server", str(self.config.metadata_url), _Secrets(self),
                                      headers={"Metadata-Flavor": "Google"}, **common)
        return self._client


class ExportLimitError(ApiRequestError):
    """Drive refuses to export a Google Docs file larger than its export limit (403
    ``exportSizeLimitExceeded``): not a permission problem, and retrying cannot help."""


class GoogleDialect(Dialect):
    """Google APIs' errors: ``{"error": {"code", "message", "status", "errors": [{"reason", ...}]}}``
    (Drive), or with ``details: [{"@type": ".../google.rpc.ErrorInfo", "reason", "domain", "metadata"}]``
    (Sheets and other gRPC-based APIs); the reasons of both are read.

    Drive reports per-user rate limits as 403 ``userRateLimitExceeded``/``rateLimitExceeded``: those
    are retried like a 429, not mistaken for missing permissions. ``dailyLimitExceeded`` is a
    :class:`DailyLimitError`: retrying before the quota resets fails the same way. A 403 that is not
    about the credentials (an export over the size limit, the API disabled in the project) is a
    request error that says so, not an authentication failure.
    """

    def should_retry(self, response: requests.Response) -> bool | None:
        if response.status_code == 403 and _reasons(response) & RATE_LIMIT_REASONS:
            return True
        return None

    def message(self, response: requests.Response) -> str:
        error = _error_object(response)
        if error is None:
            return super().message(response)
        reasons = sorted(_reasons(response))
        detail = ", ".join(reasons) if reasons else error.get("status")
        text = str(error.get("message", ""))
        context = "; ".join(f"{key}={value}" for key, value in sorted(_error_metadata(response).items())
                            if key in _SHOWN_METADATA)
        detail = f"{detail}; {context}" if detail and context else detail or context
        return f"{text} ({detail})" if detail else text

    def special_error(self, response: requests.Response, api: str) -> ApiError | None:
        reasons = _reasons(response)
        fields: dict[str, Any] = {"api": api, "status": response.status_code,
                                  "method": response.request.method or "GET", "path": ""}
        if response.status_code == 403 and "exportSizeLimitExceeded" in reasons:
            return ExportLimitError(f"{api}: the file is larger than Drive's 10 MB export limit "
                                    f"({self.message(response)})", **fields)
        if response.status_code == 403 and "SERVICE_DISABLED" in reasons:
            metadata = _error_metadata(response)
            service = metadata.get("service") or api
            project = metadata.get("consumer") or "the project of the credentials"
            return ApiRequestError(f"{api}: {service} is not enabled in {project}; enable it in the Google Cloud "
                                   f"console (APIs & Services) and rerun ({self.message(response)})", **fields)
        if response.status_code not in (403, 429) or "dailyLimitExceeded" not in reasons:
            return None
        return DailyLimitError(
            f"{api}: the project's daily request quota is used up ({self.message(response)}); rerun after it "
            "resets or raise the quota in the Google Cloud console",
            api=api, status=response.status_code, method=response.request.method or "GET", path="",
        )


def api_client(api: str, base_url: str, auth: GoogleAuth, *, policy: RetryPolicy | None = None,
               clock: Clock | None = None) -> HttpClient:
    """An HTTP client for one Google API with ``auth``'s credentials and the quota project header."""
    config = auth.config
    headers = {"x-goog-user-project": config.quota_project} if config.quota_project else None
    return HttpClient(api, base_url, auth, conn_id=config.conn_id, headers=headers, dialect=GoogleDialect(),
                      policy=policy, clock=clock)


def _error_object(response: requests.Response) -> Mapping[str, Any] | None:
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else None


def _reasons(response: requests.Response) -> set[str]:
    """The ``reason`` of each entry of ``errors`` (Drive) and of each ``ErrorInfo`` in ``details`` (Sheets)."""
    error = _error_object(response) or {}
    items = [item for key in ("errors", "details") if isinstance(error.get(key), list) for item in error[key]]
    return {str(item["reason"]) for item in items if isinstance(item, Mapping) and item.get("reason")}


def _error_metadata(response: requests.Response) -> dict[str, str]:
    """The ``metadata`` of the ``ErrorInfo`` entries of ``details`` (service, quota metric, ...)."""
    details = (_error_object(response) or {}).get("details")
    found: dict[str, str] = {}
    for item in details if isinstance(details, list) else []:
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            metadata = item.get("metadata")
            found.update({str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {})
    return found


def _load_private_key(key: ServiceAccountKey, conn_id: str | None) -> Any:
    """The PEM key as a cryptography RSA key: a bad key fails before any request is sent."""
    serialization = require("cryptography.hazmat.primitives.serialization", "google")
    rsa = require("cryptography.hazmat.primitives.asymmetric.rsa", "google")
    try:
        loaded = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    except (ValueError, TypeError):
        # The library's message is left out on purpose: it must never risk quoting key material.
        loaded = None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        where = f"connection {conn_id!r}" if conn_id else "the Google credentials"
        raise ConfigError(f"{where}: the service-account private_key is not an unencrypted RSA key in "
                          "PEM form")
    return loaded


def _token_from(body: Any, api: str) -> tuple[str, float]:
    """``access_token`` and ``expires_in`` from a token response."""
    token = body.get("access_token") if isinstance(body, Mapping) else None
    lifetime = body.get("expires_in", ASSERTION_LIFETIME) if isinstance(body, Mapping) else None
    if not isinstance(token, str) or not token or not isinstance(lifetime, (int, float)) or lifetime <= 0:
        raise SourceError(f"{api} answered without an access_token and a positive expires_in")
    return token, float(lifetime)


__all__ = [
    "ExportLimitError", "GoogleAuth", "GoogleDialect", "ServiceAccountKey", "TokenDialect", "api_client",
    "service_account_key",
]
