"""HubSpot on its date-versioned API (issue 11, points 3 and 8): every call goes to a dated path, the
version is pinned per connection and committed with the watermark, the numeric paths past their end
dates are never called, and the double refuses what HubSpot refuses (page sizes, search filter and
sort limits, batch sizes) and answers partial batches with 207, which the source never takes for
complete ones."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import requests

from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import read_state
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.http import ApiError
from dativo_provider.sources.hubspot import HubSpotSource, parse_spec
from tests.doubles.hubspot_api import T0_MS, TOKEN, HubSpotDouble, definition

HOUR = 3_600_000
OAUTH = {"client_id": "app-1", "client_secret": "Client-Secret-5f1e", "refresh_token": "Refresh-Token-9a8b7c"}
DATED = re.compile(r"^/(?:oauth|account-info)/(?P<a>\d{4}-\d\d)/"
                   r"|^/crm/(?:objects|properties|associations)/(?P<b>\d{4}-\d\d)/")
MERGE = WriteOptions(mode="merge", merge_keys=("id",))


@pytest.fixture
def api():
    with HubSpotDouble(oauth=OAUTH, association_page=2) as double:
        double.define("deals", [definition("dealname"), definition("amount", "number", "number")])
        double.define("companies", [definition(f"custom_{n:04d}") for n in range(200)])
        for n in range(1, 31):
            double.put("deals", n, {"dealname": f"Deal {n}", "amount": f"{n}.5"}, created=T0_MS + n * HOUR)
        for n in range(1, 4):
            double.put("companies", n, {"custom_0199": f"c{n}"}, created=T0_MS + n * HOUR)
        double.link("deals", "companies", 1, [1, 2, 3])
        double.now = datetime(2024, 3, 1, tzinfo=UTC)
        yield double


def config(api, **fields) -> HubSpotConfig:
    return HubSpotConfig(**{"access_token": TOKEN, "base_url": api.url, "conn_id": "hubspot_test", **fields})


def source(api, cfg=None, **spec) -> HubSpotSource:
    return HubSpotSource(parse_spec({"type": "hubspot", "object": "deals", **spec}), cfg or config(api))


def read(src, state=None):
    with src.open(state, ReadBounds()) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema), stream.state(), stream.report


def versions_called(api) -> set[str]:
    """The date-based version of every request; a request to any other path fails the test."""
    found = set()
    for request in api.requests:
        match = DATED.match(request.path)
        assert match, f"not a date-versioned path: {request.method} {request.path}"
        found.add(match["a"] or match["b"])
    return found


# -- point 3: the date-versioned paths, the version pinned and recorded ----------------------------


def test_every_call_of_every_mode_goes_to_the_2026_03_paths_and_none_to_the_numeric_ones(api):
    oauth = config(api, access_token=None, **OAUTH)
    incremental, state, report = read(source(api, cfg=oauth, associations=["companies"]))
    full, _, _ = read(source(api, cfg=oauth, object="companies", incremental=False, archived=True))
    assert incremental.num_rows == 30 and full.num_rows == 3
    assert incremental.to_pylist()[0]["associations_companies"] == ["1", "2", "3"]
    assert api.legacy_requests == [] and versions_called(api) == {"2026-03"}
    called = {(r.method, re.sub(r"/(deals|companies)(/|$)", r"/{object}\2", r.path)) for r in api.requests}
    assert called == {
        ("POST", "/oauth/2026-03/token"), ("GET", "/account-info/2026-03/details"),
        ("GET", "/crm/properties/2026-03/{object}"), ("POST", "/crm/objects/2026-03/{object}/search"),
        ("GET", "/crm/objects/2026-03/{object}"), ("POST", "/crm/objects/2026-03/{object}/batch/read"),
        ("POST", "/crm/associations/2026-03/{object}/companies/batch/read"),
    }
    assert state["api_version"] == "2026-03" and report.details["api_version"] == "2026-03"


def test_the_numeric_paths_answer_as_after_their_end_dates(api):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in [("POST", "/oauth/v1/token"), ("GET", "/crm/v3/objects/deals"),
                         ("GET", "/crm/v3/properties/deals"), ("GET", "/account-info/v3/details"),
                         ("POST", "/crm/v4/associations/deals/companies/batch/read")]:
        answer = requests.request(method, api.url + path, headers=headers, json={}, timeout=5)
        body = answer.json()
        assert answer.status_code == 404 and body["status"] == "error" and "end of support" in body["message"]
    assert len(api.legacy_requests) == 5


def test_a_connection_pins_the_version_and_the_table_records_it(api, tmp_path):
    catalog = embedded_catalog(tmp_path / "lake")
    result = run_ingest(source(api, cfg=config(api, api_version="2026-09")), catalog, "raw.deals", MERGE)
    assert result.rows_written == 30 and versions_called(api) == {"2026-09"}
    committed = read_state(catalog.load().load_table("raw.deals"), result.source)
    assert committed is not None and committed.state["api_version"] == "2026-09"
    assert committed.state["watermark"] == "2024-02-29T23:59:00.000Z"


def test_a_version_hubspot_does_not_release_is_refused_naming_the_extra(api):
    with pytest.raises(ConfigError, match=r"hubspot connection 'hubspot_test': 'api_version' must be one of "
                                          r"HubSpot's date-based versions such as '2026-03' .* got 'v3'"):
        source(api, cfg=config(api, api_version="v3"))
    assert api.requests == []


# -- point 8: the double refuses what HubSpot refuses, with HubSpot's error body --------------------


def call(api, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, api.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5,
                            **kwargs)


def assert_validation_error(answer: requests.Response, words: str) -> None:
    body = answer.json()
    assert answer.status_code == 400, body
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert words in body["message"]


def search_body(groups: list[int], sorts: int = 1, limit: int = 200) -> dict:
    flt = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}
    return {"filterGroups": [{"filters": [flt] * n} for n in groups], "limit": limit,
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}] * sorts}


def test_a_list_page_over_100_is_refused(api):
    assert call(api, "GET", "/crm/objects/2026-03/deals", params={"limit": 100}).status_code == 200
    assert_validation_error(call(api, "GET", "/crm/objects/2026-03/deals", params={"limit": 101}),
                            "limit must be between 1 and 100")


@pytest.mark.parametrize(("groups", "sorts", "limit", "words"), [
    ([1] * 6, 1, 200, "Too many filter groups: 6; the maximum is 5"),
    ([7], 1, 200, "Too many filters in a filter group: 7; the maximum is 6"),
    ([5, 5, 5, 4], 1, 200, "Too many filters: 19; the maximum is 18"),
    ([2], 2, 200, "Too many sorts: 2"),
    ([2], 1, 201, "limit must be less than or equal to 200"),
])
def test_searches_beyond_hubspots_limits_are_refused(api, groups, sorts, limit, words):
    assert_validation_error(call(api, "POST", "/crm/objects/2026-03/deals/search",
                                 json=search_body(groups, sorts, limit)), words)


def test_searches_at_hubspots_limits_are_answered(api):
    for groups in ([1] * 5, [6], [6, 6, 6]):
        answer = call(api, "POST", "/crm/objects/2026-03/deals/search", json=search_body(groups))
        assert answer.status_code == 200 and answer.json()["total"] == 30


def test_batches_over_hubspots_sizes_are_refused(api):
    inputs = [{"id": str(n)} for n in range(101)]
    assert_validation_error(call(api, "POST", "/crm/objects/2026-03/deals/batch/read", json={"inputs": inputs}),
                            "exceeds the limit of 100")
    many = [{"id": str(n)} for n in range(1_001)]
    assert_validation_error(call(api, "POST", "/crm/associations/2026-03/deals/companies/batch/read",
                                 json={"inputs": many}), "exceeds the limit of 1000")


# -- point 8: 207 partial batch answers -------------------------------------------------------------


def test_a_record_archived_between_the_list_and_the_batch_read_is_reported_by_id(api):
    def archive_two_on_first_batch_read(request):
        if request.path.endswith("/batch/read") and not archived:
            archived.append(True)
            api.archive("companies", 2, at=T0_MS + 50 * HOUR)

    archived: list[bool] = []
    api.before.append(archive_two_on_first_batch_read)
    table, _, report = read(source(api, object="companies", incremental=False))
    assert sorted(table["id"].to_pylist()) == ["1", "3"] and table["custom_0199"].to_pylist() == ["c1", "c3"]
    assert report.details["not_found_ids"] == ["2"]
    answered = [r for r in api.requests if r.path.endswith("/batch/read")]
    assert len(answered) == 1


def test_a_batch_read_error_other_than_not_found_fails_naming_the_ids(api):
    partial = {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid",
         "context": {"ids": ["1", "3"]}}]}
    api.fail(207, partial, match=lambda r: r.path.endswith("/batch/read"))
    with pytest.raises(ApiError, match=r"HTTP 207 with errors for some inputs: VALIDATION_ERROR: Property values "
                                       r"were not valid \(ids \['1', '3'\]\)"):
        read(source(api, object="companies", incremental=False))


def test_records_without_associations_get_empty_lists_and_other_association_errors_fail(api):
    table, _, _ = read(source(api, associations=["companies"]))
    lists = {r["id"]: r["associations_companies"] for r in table.to_pylist()}
    assert lists["1"] == ["1", "2", "3"] and lists["2"] == [] and len(lists) == 30
    answers = [r for r in api.requests if "/crm/associations/" in r.path]
    assert answers and all(len(r.body["inputs"]) <= 1_000 for r in answers)

    partial = {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "RATE_LIMITS", "message": "Too many requests for this object",
         "context": {"fromObjectId": ["7"]}}]}
    api.fail(207, partial, match=lambda r: "/crm/associations/" in r.path)
    with pytest.raises(ApiError, match=r"RATE_LIMITS: Too many requests for this object \(ids \['7'\]\)"):
        read(source(api, associations=["companies"]))
