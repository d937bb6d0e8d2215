"""The shared SaaS HTTP client against a loopback server: retries, Retry-After, errors without secrets.

Every wait goes through a fake clock: the whole retry schedule runs without one real sleep.
"""

from __future__ import annotations

import logging
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dativo_provider.exceptions import SourceError, TransientError
from dativo_provider.sources.http import (
    ApiAuthError,
    ApiNotFoundError,
    ApiRequestError,
    ApiUnavailableError,
    BearerAuth,
    DailyLimitError,
    HttpClient,
    RetryPolicy,
    parse_http_date,
    retry_after_seconds,
)
from dativo_provider.sources.hubspot_api import HubSpotDialect
from dativo_provider.sources.stripe import StripeDialect
from tests.doubles.clock import FakeClock
from tests.doubles.server import ApiDouble, Fault, Request, Response

TOKEN = "tok-Secret-0123456789abcdef"
EXACT = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=4.0, max_total_wait=60.0, jitter=0.0)


class EchoApi(ApiDouble):
    """Answers ``{"n": <request number>}``; rejects a wrong token echoing it, as careless APIs do."""

    def route(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Response(401, {"message": f"token {request.headers.get('authorization')} is not valid"})
        if request.path == "/missing":
            return Response(404, {"message": "no such thing"})
        return Response(200, {"n": len(self.requests)})


@pytest.fixture
def api():
    with EchoApi() as double:
        yield double


@pytest.fixture
def clock():
    return FakeClock()


def client(api, clock, policy=EXACT, token=TOKEN, **kwargs) -> HttpClient:
    return HttpClient("Test", api.url, BearerAuth(token), conn_id="test_conn", policy=policy, clock=clock, **kwargs)


def test_a_plain_get_decodes_json_and_reports_the_server_clock(api, clock):
    api.now = datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC)
    page = client(api, clock).get("/things", {"limit": 3}, what="things")
    assert page.body == {"n": 1} and page.status == 200
    assert page.server_time == api.now
    assert api.requests[0].params == {"limit": ["3"]} and clock.sleeps == []


def test_429_waits_exactly_as_long_as_retry_after_says(api, clock):
    api.fail(429, {"message": "slow down"}, headers={"Retry-After": "7"}, times=2)
    assert client(api, clock).get("/x", what="x").body == {"n": 3}
    assert clock.sleeps == [7.0, 7.0]


def test_retry_after_as_an_http_date_is_measured_from_now(api, clock):
    at = clock.now() + timedelta(seconds=42)
    api.fail(503, headers={"Retry-After": format_datetime(at, usegmt=True)})
    client(api, clock).get("/x", what="x")
    assert clock.sleeps == [42.0]


def test_500_then_success_backs_off_exponentially(api, clock):
    api.fail(500, {"message": "boom"}, times=4)
    assert client(api, clock).get("/x", what="x").body == {"n": 5}
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped_and_jittered_within_bounds(api, clock):
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=8.0, max_total_wait=100.0, jitter=1.0)
    api.fail(502, times=6)
    client(api, clock, policy=policy, rng=random.Random(7)).get("/x", what="x")
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(clock.sleeps) == 6
    assert all(0.0 <= slept <= ceiling for slept, ceiling in zip(clock.sleeps, ceilings))
    assert len(set(clock.sleeps)) == 6, "full jitter spreads the waits"


def test_retries_run_out_after_max_attempts_as_a_transient_error(api, clock):
    api.fail(500, {"message": "still down"}, times=None)
    with pytest.raises(ApiUnavailableError) as caught:
        client(api, clock).get("/x", what="the x list")
    assert isinstance(caught.value, TransientError)
    assert (caught.value.status, caught.value.attempts) == (500, 6)
    assert "HTTP 500 (still down) after 6 attempt(s)" in str(caught.value) and "the x list" in str(caught.value)
    assert len(api.requests) == 6


def test_a_retry_after_beyond_the_wait_budget_gives_up_without_sleeping(api, clock):
    api.fail(429, headers={"Retry-After": "3600"})
    with pytest.raises(ApiUnavailableError, match="asked to wait 3600s more"):
        client(api, clock).get("/x", what="x")
    assert clock.sleeps == []


def test_connection_errors_are_retried_then_reported(clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = HttpClient("Test", f"http://127.0.0.1:{port}", BearerAuth(TOKEN), policy=EXACT, clock=clock)
    with pytest.raises(ApiUnavailableError, match="no response .*ConnectionError.* after 6 attempt"):
        dead.get("/x", what="x")
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_a_body_that_is_not_json_is_retried(api, clock):
    api.faults.append(Fault(Response(200, raw=b'{"truncated": '), times=1))
    assert client(api, clock).get("/x", what="x").body == {"n": 2}


def test_401_names_the_api_and_connection_but_never_the_token(api, clock):
    wrong = "tok-Wrong-fedcba9876543210"
    with pytest.raises(ApiAuthError) as caught:
        client(api, clock, token=wrong).get("/x", what="x")
    message = str(caught.value)
    assert message.startswith("authentication failed for Test (check connection 'test_conn'): HTTP 401")
    assert wrong not in message and "***" in message
    assert isinstance(caught.value, SourceError) and len(api.requests) == 1


def test_404_names_what_was_asked_for(api, clock):
    with pytest.raises(ApiNotFoundError, match=r"Test: the widget list not found \(GET /missing, HTTP 404\): no such"):
        client(api, clock).get("/missing", what="the widget list")


def test_stripe_should_retry_overrules_the_status(api, clock):
    api.fail(409, {"error": {"type": "api_error", "message": "lock", "code": "lock_timeout"}},
             headers={"Stripe-Should-Retry": "true"})
    assert client(api, clock, dialect=StripeDialect()).get("/x", what="x").body == {"n": 2}
    api.fail(500, {"error": {"type": "api_error", "message": "do not"}}, headers={"Stripe-Should-Retry": "false"})
    with pytest.raises(ApiRequestError, match=r"HTTP 500: do not \(api_error\)"):
        client(api, clock, dialect=StripeDialect()).get("/x", what="x")


def test_stripe_masked_keys_are_scrubbed_from_messages(api, clock):
    api.fail(400, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****wxyz"}})
    with pytest.raises(ApiRequestError) as caught:
        client(api, clock, dialect=StripeDialect()).get("/x", what="x")
    assert "sk_test" not in str(caught.value) and "Invalid API Key provided: ***" in str(caught.value)


def test_hubspot_daily_limit_is_a_distinct_error_that_is_not_retried(api, clock):
    body = {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
            "correlationId": "c0", "policyName": "DAILY"}
    api.fail(429, body, headers={"Retry-After": "3600", "X-HubSpot-RateLimit-Daily": "250000"})
    with pytest.raises(DailyLimitError) as caught:
        client(api, clock, dialect=HubSpotDialect(clock)).get("/crm/v3/objects/deals", what="deals")
    error = caught.value
    assert error.resets_at == clock.now() + timedelta(hours=1)
    assert "daily API limit is used up (250000 requests)" in str(error)
    assert "resets at 2024-06-01T01:00:00+00:00" in str(error)
    assert clock.sleeps == [] and len(api.requests) == 1


def test_hubspot_daily_limit_without_retry_after_says_when_it_resets(api, clock):
    api.fail(429, {"status": "error", "message": "You have reached your daily limit.", "policyName": "DAILY"})
    with pytest.raises(DailyLimitError, match="resets at midnight in the HubSpot account's time zone"):
        client(api, clock, dialect=HubSpotDialect(clock)).get("/x", what="x")


def test_hubspot_secondly_limit_is_retried(api, clock):
    api.fail(429, {"status": "error", "message": "You have reached your secondly limit.", "policyName": "SECONDLY"},
             headers={"Retry-After": "1"})
    assert client(api, clock, dialect=HubSpotDialect(clock)).get("/x", what="x").body == {"n": 2}
    assert clock.sleeps == [1.0]


def test_debug_logging_shows_requests_but_no_token(api, clock, caplog):
    api.fail(500)
    with caplog.at_level(logging.DEBUG):
        client(api, clock).get("/x", {"limit": 5}, what="x")
    assert "Test GET /x ?limit=5 -> 500" in caplog.text and "retrying in 0.50s (attempt 2 of 6)" in caplog.text
    assert TOKEN not in caplog.text


def test_retry_after_parsing():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("2.5", now) == 2.5
    assert retry_after_seconds("Mon, 01 Jan 2024 00:00:10 GMT", now) == 10.0
    assert retry_after_seconds("Sun, 31 Dec 2023 23:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None
    assert parse_http_date("Mon, 01 Jan 2024 00:00:10 GMT") == datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)
