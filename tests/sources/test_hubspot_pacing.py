"""HubSpot's search rate (four requests per second per token): searches are paced client-side across
threads, and a 429 without ``Retry-After`` (how HubSpot answers its secondly limits) is retried with
backoff, then fails as transient. The double counts searches per token and answers 429 beyond the limit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError, TransientError
from dativo_provider.sources import hubspot_api
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.http import ApiUnavailableError, RetryPolicy
from dativo_provider.sources.hubspot import HubSpotSource, parse_spec
from dativo_provider.sources.hubspot_api import HubSpotApi, SearchPacer, search_pacer
from tests.doubles.clock import FakeClock
from tests.doubles.hubspot_api import T0_MS, TOKEN, HubSpotDouble, definition

SECONDLY = {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
            "policyName": "SECONDLY"}
SEARCH = {"filterGroups": [], "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
          "properties": ["dealname"], "limit": 10}


@pytest.fixture
def api():
    with HubSpotDouble(search_limit=4) as double:
        double.define("deals", [definition("dealname")])
        double.now = datetime(2024, 2, 1, tzinfo=UTC)
        for n in range(1, 4):
            double.put("deals", n, {"dealname": f"Deal {n}"}, created=T0_MS + n * 60_000)
        yield double


def config(api, token: str = TOKEN) -> HubSpotConfig:
    return HubSpotConfig(access_token=token, base_url=api.url, conn_id="hubspot_test")


def parallel_searches(make_api, threads: int, each: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def run() -> None:
        client = make_api()
        try:
            for _ in range(each):
                assert len(client.search_page("deals", SEARCH).body["results"]) == 3
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)
        finally:
            client.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def test_the_pacer_spaces_calls_a_quarter_second_apart():
    clock = FakeClock()
    pacer = SearchPacer(4.0, clock)
    waits = [pacer.wait() for _ in range(5)]
    assert waits == [0.0, 0.25, 0.25, 0.25, 0.25] and clock.sleeps == [0.25] * 4
    clock.advance(10)
    assert pacer.wait() == 0.0


def test_one_pacer_per_token_and_never_the_token_as_key(api):
    clock = FakeClock()
    first, second = HubSpotApi(config(api), clock=clock), HubSpotApi(config(api), clock=clock)
    other = HubSpotApi(config(api, "pat-na1-99999999-0000-0000-0000-000000000000"), clock=clock)
    assert first.pacer is second.pacer and other.pacer is not first.pacer
    assert search_pacer(config(api), 4.0, FakeClock()) is not first.pacer  # another clock, another pacer
    assert not any(TOKEN in repr(key) for key in hubspot_api._PACERS)


def test_parallel_searches_on_one_token_all_succeed_without_a_429(api):
    # No retries: a single 429 would fail a thread. 8 searches at 4/s take about 1.75 s.
    no_retry = RetryPolicy(max_attempts=1)
    errors = parallel_searches(lambda: HubSpotApi(config(api), no_retry), threads=4, each=2)
    assert errors == [] and api.rate_limited == 0
    assert len(api.requests_to("/crm/objects/2026-03/deals/search")) == 8


def test_without_pacing_the_double_answers_429_and_the_run_fails_transient(api):
    # The same burst unpaced (a rate the real API does not allow): the double refuses it as HubSpot does.
    clock = FakeClock()
    unpaced = RetryPolicy(max_attempts=2)
    errors = parallel_searches(lambda: HubSpotApi(config(api), unpaced, clock, search_rate=100), threads=4, each=2)
    assert errors and all(isinstance(e, ApiUnavailableError) for e in errors) and api.rate_limited >= 2
    message = str(errors[0])
    assert "HTTP 429 (You have reached your secondly limit. (RATE_LIMIT)) after 2 attempt(s)" in message
    assert "Rerun later; nothing was committed" in message


def test_a_429_without_retry_after_is_retried_with_backoff_and_succeeds(api):
    clock = FakeClock()
    api.fail(429, SECONDLY, times=2, match=lambda r: r.path.endswith("/search"))
    source = HubSpotSource(parse_spec({"object": "deals", "properties": ["dealname"]}), config(api), clock)
    with source.open(None, ReadBounds()) as stream:
        assert sum(batch.num_rows for batch in stream) == 3
    answered = [r for r in api.requests if r.path.endswith("/search")]
    assert len(answered) == 3
    # Exponential backoff with full jitter: the first wait at most 0.5 s, the second at most 1 s.
    assert len(clock.sleeps) == 2 and clock.sleeps[0] <= 0.5 and clock.sleeps[1] <= 1.0


def test_exhausted_retries_on_429_fail_transient_naming_the_limit(api):
    clock = FakeClock()
    api.fail(429, SECONDLY, times=None, match=lambda r: r.path.endswith("/search"))
    spec = parse_spec({"object": "deals", "retry": {"max_attempts": 4}})
    with pytest.raises(TransientError) as caught:
        with HubSpotSource(spec, config(api), clock).open(None, ReadBounds()) as stream:
            list(stream)
    message = str(caught.value)
    assert isinstance(caught.value, ApiUnavailableError) and caught.value.status == 429
    assert "a search of deals" in message and "secondly limit" in message and "after 4 attempt(s)" in message
    assert len(clock.sleeps) == 3 and all(0 <= s <= 4.0 for s in clock.sleeps)


def test_search_rate_is_checked():
    with pytest.raises(ConfigError, match="'search_rate' must be requests per second"):
        parse_spec({"object": "deals", "search_rate": 0})
    assert parse_spec({"object": "deals"}).search_rate == 4.0
