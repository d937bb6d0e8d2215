"""Typed, frozen connection settings the engine takes (the Airflow hooks build them from Connections).

Secrets are excluded from ``repr`` so a config can be logged safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
