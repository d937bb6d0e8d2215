"""The REST client against the double: auth, each error status, retries with Retry-After, paging."""

from __future__ import annotations

import pytest

from dativo_provider.exceptions import TransientError
from dativo_provider.lineage.openmetadata_client import (
    OpenMetadataClient,
    OpenMetadataConfig,
    OpenMetadataConflict,
    OpenMetadataError,
    OpenMetadataUnavailable,
)
from tests.doubles.openmetadata import OpenMetadataDouble
from tests.lineage.conftest import JWT


def _client(
    om: OpenMetadataDouble, token: str = JWT, waits: list[float] | None = None, **config
) -> OpenMetadataClient:
    settings = {"max_workers": 4, "backoff_seconds": 0.01, "conn_id": "om_test", **config}
    return OpenMetadataClient(
        OpenMetadataConfig(om.url, token, **settings),
        sleep=(waits.append if waits is not None else lambda _: None),
    )


def test_the_version_endpoint_answers_with_the_token(om: OpenMetadataDouble, client) -> None:
    assert client.version() == "2.0.7"
    assert om.requests[-1].headers["authorization"] == f"Bearer {JWT}"


@pytest.mark.parametrize("token", ["", "eyJ.wrong.token"])
def test_a_missing_or_wrong_token_is_401_naming_the_connection_not_the_token(
    om: OpenMetadataDouble, token
) -> None:
    with pytest.raises(OpenMetadataError) as refused:
        _client(om, token).version()
    assert refused.value.status == 401 and not refused.value.retryable
    assert "rejected the token (401)" in str(refused.value) and "connection om_test" in str(refused.value)
    assert JWT not in str(refused.value) and (not token or token not in str(refused.value))
    assert len(om.requests) == 1  # no retry of a 401


def test_403_404_and_409_say_what_happened(om: OpenMetadataDouble, client) -> None:
    om.fail(
        403,
        {"code": 403, "message": "Principal: CatalogPrincipal{name='bot'} operations [Create] not allowed"},
    )
    with pytest.raises(
        OpenMetadataError, match=r"denied POST /databases \(403\).*not allowed. Give the token's bot"
    ):
        client.post("/databases", {"name": "x", "service": "y"})
    assert client.find("/tables/name/a.b.c.d") is None
    with pytest.raises(OpenMetadataError, match=r"table instance for a.b.c.d not found"):
        client.get("/tables/name/a.b.c.d")
    client.post("/services/databaseServices", {"name": "lake", "serviceType": "CustomDatabase"})
    with pytest.raises(OpenMetadataConflict, match=r"\(409\): Entity already exists"):
        client.post("/services/databaseServices", {"name": "lake", "serviceType": "CustomDatabase"})


def test_429_waits_at_least_retry_after_then_succeeds(om: OpenMetadataDouble) -> None:
    waits: list[float] = []
    om.fail(429, {"code": 429, "message": "Too many requests"}, headers={"Retry-After": "3"}, times=2)
    assert _client(om, waits=waits).version() == "2.0.7"
    assert len(waits) == 2 and min(waits) >= 3
    assert len(om.requests) == 3


def test_5xx_is_retried_with_growing_backoff_then_transient(om: OpenMetadataDouble) -> None:
    waits: list[float] = []
    om.fail(503, {"code": 503, "message": "Service Unavailable"}, times=None)
    with pytest.raises(
        OpenMetadataUnavailable, match=r"answered 503 to GET /system/version after 3 retries"
    ) as out:
        _client(om, waits=waits, max_retries=3, backoff_seconds=1.0).version()
    assert isinstance(out.value, TransientError) and out.value.retryable
    assert len(om.requests) == 4
    assert waits[0] < 1.01 and 2 <= waits[2] <= 4.01  # 1 s, 2 s, 4 s, each with up to half jitter off


def test_a_server_that_is_down_is_transient(om: OpenMetadataDouble) -> None:
    url = om.url
    om.stop()
    client = OpenMetadataClient(
        OpenMetadataConfig(url, JWT, max_retries=1, timeout_seconds=2), sleep=lambda _: None
    )
    with pytest.raises(OpenMetadataUnavailable, match="did not answer GET /system/version"):
        client.version()


def test_paging_follows_after_cursors_to_the_end(om: OpenMetadataDouble, client) -> None:
    client.post("/services/databaseServices", {"name": "lake", "serviceType": "CustomDatabase"})
    client.post("/databases", {"name": "prod", "service": "lake"})
    names = [f"s{n}" for n in range(7)]
    for name in names:
        client.post("/databaseSchemas", {"name": name, "database": "lake.prod"})
    om.clear_log()
    assert [s["name"] for s in client.paged("/databaseSchemas", {"database": "lake.prod"}, limit=3)] == names
    assert [r.param("after") is not None for r in om.requests] == [False, True, True]
    with pytest.raises(OpenMetadataError, match=r"limit must be less than or equal to 1000"):
        list(client.paged("/databaseSchemas", limit=5000))


def test_bounded_pool_keeps_order_and_raises_the_first_error(client) -> None:
    assert client.map_bounded(lambda n: n * n, range(20)) == [n * n for n in range(20)]

    def fail_on_seven(n: int) -> int:
        if n == 7:
            raise ValueError("seven")
        return n

    with pytest.raises(ValueError, match="seven"):
        client.map_bounded(fail_on_seven, range(20))
