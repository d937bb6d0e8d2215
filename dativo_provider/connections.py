"""Typed, frozen connection settings the engine takes (the Airflow hooks build them from Connections).

Secrets are excluded from ``repr`` so a config can be logged safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatabaseConfig:
    """Where and how to reach a Postgres or MySQL server."""

    host: str
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    #: Driver options such as ``sslmode``; never secrets.
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.password,)


@dataclass(frozen=True)
class ObjectStoreConfig:
    """S3 (or an S3-compatible store such as MinIO) credentials and endpoint."""

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    #: Endpoint override for MinIO, moto or a VPC endpoint, e.g. ``http://127.0.0.1:9000``.
    endpoint_url: str | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.secret_access_key, self.session_token)


@dataclass(frozen=True)
class StripeConfig:
    """A Stripe secret (or restricted) key and, optionally, the connected account to read as."""

    api_key: str = field(repr=False)
    #: ``acct_...``: sent as the ``Stripe-Account`` header to read a connected account's data.
    account: str | None = None
    #: Override for proxies and tests; the client code is the same for the real API.
    base_url: str = "https://api.stripe.com"
    #: Pins the ``Stripe-Version`` header; None uses the account's default API version.
    api_version: str | None = None
    #: The Airflow connection the key came from, named in authentication errors.
    conn_id: str | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.api_key,)


@dataclass(frozen=True)
class HubSpotConfig:
    """A HubSpot private-app token, or an OAuth app's client id/secret and refresh token."""

    access_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    #: Override for proxies and tests; the client code is the same for the real API.
    base_url: str = "https://api.hubapi.com"
    #: The Airflow connection the credentials came from, named in authentication errors.
    conn_id: str | None = None
    #: HubSpot's date-based API version in every path (``2026-03``); None: the source's default.
    api_version: str | None = None

    @property
    def uses_oauth(self) -> bool:
        """True when the refresh-token flow is configured (it wins over a static token)."""
        return bool(self.refresh_token)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.access_token, self.client_secret, self.refresh_token)


#: Read-only scopes for the Drive and Sheets sources.
GOOGLE_READONLY_SCOPES = (
    "https://www.googleapis.com/auth/drive.readonly",
    "https://www.googleapis.com/auth/spreadsheets.readonly",
)


@dataclass(frozen=True)
class GoogleConfig:
    """Google credentials for the Drive and Sheets sources, in this order of precedence:

    1. ``service_account_info``: a service-account key (the parsed JSON key file); access tokens
       are minted from it with the OAuth2 JWT-bearer grant at the key's ``token_uri``;
    2. ``access_token``: an OAuth2 access token minted elsewhere (it is never refreshed);
    3. ``metadata_url``: the GCE/GKE metadata server (Application Default Credentials on Cloud
       Composer and GKE Workload Identity), e.g. ``http://metadata.google.internal``.
    """

    service_account_info: Mapping[str, Any] | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = GOOGLE_READONLY_SCOPES
    #: A Workspace user to act as (domain-wide delegation): the JWT's ``sub`` claim.
    subject: str | None = None
    #: Sent as ``x-goog-user-project``: the project billed for quota.
    quota_project: str | None = None
    metadata_url: str | None = None
    #: Overrides for proxies and tests; the client code is the same for the real APIs.
    drive_url: str = "https://www.googleapis.com"
    sheets_url: str = "https://sheets.googleapis.com"
    #: The Airflow connection the credentials came from, named in authentication errors.
    conn_id: str | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        key = (self.service_account_info or {}).get("private_key")
        return (key if isinstance(key, str) else None, self.access_token)
