"""Pytest fixtures for the Google tests: the double, a throwaway service-account key, a fake clock.

Test modules import the fixtures they use (``from tests.doubles.google_fixtures import google, ...``)
so the shared conftest files stay untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dativo_provider.connections import GoogleConfig
from tests.doubles.clock import FakeClock
from tests.doubles.google_api import GoogleDouble, make_service_account_key

CLIENT_EMAIL = "ingest@dativo-test.iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def _key_pair() -> tuple[dict[str, Any], Any]:
    # RSA generation takes a noticeable moment: once per session, re-addressed per double.
    return make_service_account_key("http://unset/token", CLIENT_EMAIL)


@pytest.fixture
def google(_key_pair) -> Iterator[GoogleDouble]:
    """A started double that knows the test service account."""
    with GoogleDouble() as double:
        double.register_account(CLIENT_EMAIL, _key_pair[1])
        yield double


@pytest.fixture
def service_account_info(google, _key_pair) -> dict[str, Any]:
    """The key file of the test service account, its ``token_uri`` pointing at the double."""
    return {**_key_pair[0], "token_uri": f"{google.url}/token"}


@pytest.fixture
def google_config(google, service_account_info) -> GoogleConfig:
    return GoogleConfig(service_account_info=service_account_info, drive_url=google.url, sheets_url=google.url,
                        conn_id="google_test")


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at the real time: the token endpoint checks the assertion's ``iat``/``exp``."""
    return FakeClock(datetime.now(UTC))


def key_marker(info: dict[str, Any]) -> str:
    """A distinctive run of the private key's base64 body, to search logs and errors for."""
    body = "".join(line for line in info["private_key"].splitlines() if "-----" not in line)
    return body[100:140]
