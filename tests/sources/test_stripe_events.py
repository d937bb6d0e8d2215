"""Stripe updates and deletions through the Events API, and the search API, against the double
(which serves ``/v1/events`` and ``/v1/<object>/search`` as Stripe documents them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import requests

from dativo_provider.connections import StripeConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.http import ApiRequestError
from dativo_provider.sources.stripe import StripeSource, parse_spec
from tests.doubles.stripe_api import API_KEY, BASIL, T0, StripeDouble, charges, customer, subscription

NOW = datetime.fromtimestamp(T0, UTC) + timedelta(days=5)


@pytest.fixture
def api():
    with StripeDouble() as double:
        double.now = NOW
        double.add("charges", charges(30, step=600))
        double.add("customers", [customer(n, T0 + n) for n in range(5)])
        yield double


def source(api, version: str | None = None, **spec) -> StripeSource:
    config = StripeConfig(api_key=API_KEY, base_url=api.url, conn_id="stripe_test", api_version=version)
    return StripeSource(parse_spec({"type": "stripe", "object": "charges", **spec}), config)


def read(src, state=None, bounds=ReadBounds()):
    with src.open(state, bounds) as stream:
        table = pa.Table.from_batches(list(stream), schema=stream.schema)
        return table, stream.state(), stream.report


def later(api, **delta) -> None:
    api.now += timedelta(**delta)


def settled(api) -> None:
    """Let a minute pass: a run leaves the last seconds (``settle``) to the next one."""
    later(api, minutes=1)


def get(api, path: str, **params) -> requests.Response:
    return requests.get(f"{api.url}{path}", auth=(API_KEY, ""), params=params, timeout=10)


# --- the double's /v1/events is Stripe's -----------------------------------------------------------


def test_the_double_lists_events_newest_first_with_cursors_and_filters(api):
    api.refund("ch_00000000000003")
    api.delete("customers", "cus_00000000000002")
    first = get(api, "/v1/events", limit=2).json()
    assert first["object"] == "list" and first["url"] == "/v1/events" and first["has_more"] is True
    assert [e["type"] for e in first["data"]] == ["customer.deleted", "charge.refunded"], "newest first"
    deleted = first["data"][0]
    assert deleted["data"]["object"]["email"] == "customer2@example.com", "the last state rides along"
    assert deleted["api_version"] == api.default_version and deleted["created"] == int(NOW.timestamp())
    assert first["data"][1]["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}
    after = get(api, "/v1/events", limit=100, starting_after=first["data"][1]["id"]).json()["data"]
    assert len(after) == 35 and after[0]["data"]["object"]["id"] == "ch_00000000000029", "then the creations"
    assert [e["data"]["object"]["id"] for e in after[-2:]] == ["cus_00000000000000", "ch_00000000000000"], (
        "in one second the later event comes first")
    before = get(api, "/v1/events", ending_before=first["data"][1]["id"]).json()["data"]
    assert [e["type"] for e in before] == ["customer.deleted"]
    every = get(api, "/v1/events", limit=100).json()["data"]
    backwards = get(api, "/v1/events", limit=2, ending_before=every[10]["id"]).json()
    assert [e["id"] for e in backwards["data"]] == [every[8]["id"], every[9]["id"]] and backwards["has_more"], (
        "ending_before pages backwards: the objects just newer than the cursor")
    wildcard = get(api, "/v1/events", limit=100, type="charge.*").json()["data"]
    assert {e["type"] for e in wildcard} == {"charge.succeeded", "charge.refunded"} and len(wildcard) == 31
    exact = get(api, "/v1/events", **{"types[]": ["customer.deleted", "charge.refunded"]}).json()["data"]
    assert len(exact) == 2
    created = get(api, "/v1/events", limit=100, **{"created[gte]": str(T0 + 600 * 28)}).json()["data"]
    assert [e["data"]["object"]["id"] for e in created] == ["cus_00000000000002", "ch_00000000000003",
                                                             "ch_00000000000029", "ch_00000000000028"]


def test_the_double_refuses_what_stripe_refuses_for_events(api):
    both = get(api, "/v1/events", type="charge.*", **{"types[]": "charge.refunded"})
    assert both.status_code == 400 and both.json()["error"]["param"] == "types"
    many = get(api, "/v1/events", **{"types[]": [f"charge.x{n}" for n in range(21)]})
    assert many.status_code == 400
    unknown = get(api, "/v1/events", object="charge").json()["error"]
    assert (unknown["code"], unknown["param"]) == ("parameter_unknown", "object")


def test_events_older_than_30_days_are_gone_as_on_stripe(api):
    assert len(get(api, "/v1/events", limit=100).json()["data"]) == 35
    later(api, days=25, seconds=600 * 10)  # now T0 + 30 days + 100 min: the first 10 charges' events expired
    kept = get(api, "/v1/events", limit=100, type="charge.succeeded").json()["data"]
    assert len(kept) == 20 and min(e["created"] for e in kept) == T0 + 600 * 10


def test_the_double_retrieves_one_object_and_answers_deleted_ones_as_stripe(api):
    assert get(api, "/v1/charges/ch_00000000000004").json()["amount"] == 1004
    missing = get(api, "/v1/charges/ch_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    api.delete("customers", "cus_00000000000001")
    assert get(api, "/v1/customers/cus_00000000000001").json() == {
        "id": "cus_00000000000001", "object": "customer", "deleted": True}
    assert "cus_00000000000001" not in [c["id"] for c in get(api, "/v1/customers").json()["data"]]


# --- the source: events mode ---------------------------------------------------------------------


def test_a_charge_refunded_after_it_was_loaded_comes_back_in_its_new_state(api):
    first, state, report = read(source(api))
    assert first.num_rows == 30 and report.details["read"] == "list"
    assert state["cursor"] == "events" and state["watermark"] == "2024-01-05T23:59:50.000Z"
    later(api, hours=1)
    api.refund("ch_00000000000007", amount=300)
    api.update("customers", "cus_00000000000001", email="new@example.com")  # not a charge: not read
    settled(api)
    api.clear_log()
    changed, state2, report2 = read(source(api), state)
    assert changed["id"].to_pylist() == ["ch_00000000000007"]
    row = changed.to_pylist()[0]
    assert (row["amount_refunded"], row["refunded"], row["amount"]) == (300, False, 1007)
    assert report2.details["read"] == "events" and report2.details["objects_changed"] == 1
    events_call = api.requests_to("/v1/events")[0]
    assert events_call.param("created[gt]") == str(int((NOW - timedelta(seconds=10)).timestamp()))
    assert "charge.refunded" in events_call.params["types[]"] and not api.requests_to("/v1/charges")
    assert state2["watermark"] == "2024-01-06T01:00:50.000Z"


def test_each_changed_object_arrives_once_in_its_latest_state_and_new_ones_arrive_too(api):
    _, state, _ = read(source(api))
    later(api, minutes=5)
    api.refund("ch_00000000000001", amount=100)
    later(api, minutes=5)
    api.refund("ch_00000000000001", amount=200)
    api.add("charges", charges(2, start=int(api.now.timestamp()), first=500))
    later(api, minutes=5)
    changed, _, report = read(source(api, page_size=1), state)
    rows = {r["id"]: r for r in changed.to_pylist()}
    assert sorted(rows) == ["ch_00000000000001", "ch_00000000000500", "ch_00000000000501"]
    assert rows["ch_00000000000001"]["amount_refunded"] == 300
    assert report.details["events"] == 4 and report.details["pages"] == 4


def test_a_deleted_customer_is_marked_deleted_with_its_last_state(api):
    _, state, _ = read(source(api, object="customers"))
    later(api, hours=1)
    api.delete("customers", "cus_00000000000003")
    settled(api)
    changed, _, _ = read(source(api, object="customers"), state)
    (row,) = changed.to_pylist()
    assert (row["id"], row["deleted"], row["email"]) == ("cus_00000000000003", True, "customer3@example.com")


def test_a_watermark_older_than_stripes_30_days_of_events_fails_naming_the_gap(api):
    _, state, _ = read(source(api))
    later(api, days=31)
    with pytest.raises(SourceError) as caught:
        read(source(api), state)
    message = str(caught.value)
    assert "the table holds changes up to 2024-01-05T23:59:50.000Z" in message
    assert "changes from 2024-01-05T23:59:50.000Z to 2024-01-07T00:00:00.000Z can no longer be read" in message
    assert '"full_refresh": true' in message
    table, fresh, report = read(source(api, full_refresh=True), state)
    assert table.num_rows == 30 and report.details["read"] == "list" and fresh["watermark"] > state["watermark"]


def test_a_quiet_period_still_moves_the_watermark(api):
    _, state, _ = read(source(api))
    for _ in range(4):  # 4 × 10 days without a change: each run reads no event but keeps up
        later(api, days=10)
        table, state, _ = read(source(api), state)
        assert table.num_rows == 0
    assert state["watermark"] == (api.now - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_events_in_another_version_are_retrieved_in_the_pinned_one(api):
    api.add("subscriptions", [subscription(n, T0 + n) for n in range(3)])
    _, state, _ = read(source(api, object="subscriptions"))
    later(api, hours=1)
    api.default_version = BASIL  # the account was upgraded: its events now carry basil shapes
    api.update("subscriptions", "sub_00000000000001", cancel_at_period_end=True)
    settled(api)
    api.clear_log()
    changed, _, report = read(source(api, object="subscriptions"), state)
    (row,) = changed.to_pylist()
    assert row["cancel_at_period_end"] is True
    assert row["current_period_start"] == datetime.fromtimestamp(T0 + 1, UTC), "acacia shape, not basil's"
    assert [r.path for r in api.requests_to("/v1/subscriptions/")] == ["/v1/subscriptions/sub_00000000000001"]
    assert report.details["objects_retrieved"] == 1
    basil, _, _ = read(source(api, version=BASIL, object="subscriptions"), state)
    assert basil.to_pylist()[0]["current_period_start"] == datetime.fromtimestamp(T0 + 1, UTC)


def test_expanded_fields_are_retrieved_because_events_never_expand(api):
    _, state, _ = read(source(api, expand=["customer"]))
    later(api, hours=1)
    api.refund("ch_00000000000002")
    settled(api)
    changed, _, _ = read(source(api, expand=["customer"]), state)
    assert json.loads(changed.to_pylist()[0]["customer"])["email"] == "customer2@example.com"
    assert api.requests_to("/v1/charges/ch_00000000000002")[0].params == {"expand[]": ["customer"]}


def test_a_table_loaded_by_created_continues_by_events(api):
    _, state, _ = read(source(api, incremental="created"))
    assert state["cursor"] == "created"
    later(api, hours=1)
    api.refund("ch_00000000000005")
    settled(api)
    changed, state2, _ = read(source(api), state)
    assert changed["id"].to_pylist() == ["ch_00000000000005"] and state2["cursor"] == "events"


def test_events_mode_needs_a_merge_and_is_only_for_objects_that_change(api):
    assert source(api).may_repeat_rows and not source(api, incremental="created").may_repeat_rows
    assert parse_spec({"object": "balance_transactions"}).incremental == "created"
    assert parse_spec({"object": "charges", "incremental": True}).incremental == "events"
    with pytest.raises(ConfigError, match="'incremental': 'events' follows objects that change"):
        parse_spec({"object": "balance_transactions", "incremental": "events"})
    with pytest.raises(ConfigError, match="'incremental' must be true, false, 'created' or 'events'"):
        parse_spec({"object": "charges", "incremental": "updated"})
    with pytest.raises(ConfigError, match="events that bring later changes cannot be filtered alike"):
        parse_spec({"object": "charges", "params": {"customer": "cus_00000000000001"}})
    assert parse_spec({"object": "subscriptions"}).params == (("status", "all"),), "its own default is fine"


# --- search ----------------------------------------------------------------------------------------


def test_the_double_searches_as_stripe_documents(api):
    api.update("charges", "ch_00000000000004", metadata={"order": "o-4", "tier": "gold"})
    api.update("charges", "ch_00000000000009", metadata={"order": "o-9", "tier": "gold"})
    body = get(api, "/v1/charges/search", query="metadata['tier']:'gold'", limit=1).json()
    assert (body["object"], body["url"], body["has_more"]) == ("search_result", "/v1/charges/search", True)
    assert body["data"][0]["id"] == "ch_00000000000009"
    rest = get(api, "/v1/charges/search", query="metadata['tier']:'gold'", page=body["next_page"]).json()
    assert [c["id"] for c in rest["data"]] == ["ch_00000000000004"] and rest["next_page"] is None
    amounts = get(api, "/v1/charges/search", query="amount>=1025 AND -currency:'usd'",
                  **{"expand[]": "total_count"}).json()
    assert amounts["total_count"] == 5
    either = get(api, "/v1/customers/search", query="email~'tomer1@' OR name:'Customer 3'").json()["data"]
    assert sorted(c["id"] for c in either) == ["cus_00000000000001", "cus_00000000000003"]


@pytest.mark.parametrize(("path", "params", "status", "says"), [
    ("/v1/charges/search", {"query": "status:'succeeded' AND amount>5 OR refunded:true"}, 400, "cannot combine"),
    ("/v1/charges/search", {"query": "colour:'red'"}, 400, "unsupported search field"),
    ("/v1/charges/search", {"query": "status:succeeded"}, 400, "must be quoted"),
    ("/v1/customers/search", {"query": "email~'ab'"}, 400, "at least 3 characters"),
    ("/v1/customers/search", {"query": "email>'a'"}, 400, "numeric comparators"),
    ("/v1/charges/search", {"query": " ".join(f"amount>{n}" for n in range(11))}, 400, "at most 10 clauses"),
    ("/v1/charges/search", {"query": "amount>5", "starting_after": "ch_00000000000001"}, 400, "unknown parameter"),
    ("/v1/charges/search", {"query": "amount>5", "page": "page_forged"}, 400, "Invalid page"),
    ("/v1/charges/search", {}, 400, "Missing required param: query"),
    ("/v1/balance_transactions/search", {"query": "amount>5"}, 404, "Unrecognized request URL"),
    ("/v1/events/search", {"query": "type:'charge.refunded'"}, 404, "Unrecognized request URL"),
])
def test_the_double_refuses_searches_stripe_refuses(api, path, params, status, says):
    answer = get(api, path, **params)
    assert answer.status_code == status and says in answer.json()["error"]["message"]
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_a_query_reads_every_match_through_next_page(api):
    for n in (3, 11, 17):
        api.update("charges", f"ch_{n:014d}", metadata={"tier": "gold"})
    table, state, report = read(source(api, query="metadata['tier']:'gold' AND amount>1010", page_size=1))
    assert sorted(table["id"].to_pylist()) == ["ch_00000000000011", "ch_00000000000017"]
    assert state is None and report.details["read"] == "search" and report.details["pages"] == 2
    assert source(api, query="amount>1").may_repeat_rows, "read whole each run: merge or replace"


def test_query_spec_errors_name_the_reason(api):
    with pytest.raises(ConfigError, match="'query' needs an object with a search API"):
        parse_spec({"object": "balance_transactions", "query": "amount>1"})
    with pytest.raises(ConfigError, match="'query' reads the search API, which is not incremental"):
        parse_spec({"object": "charges", "query": "amount>1", "incremental": "created"})
    with pytest.raises(ConfigError, match=r"\['params', 'start'\] filter a list; with 'query' put every filter"):
        parse_spec({"object": "charges", "query": "amount>1", "params": {"customer": "c"}, "start": "2024-01-01"})
    with pytest.raises(ApiRequestError, match="unsupported search field"):
        read(source(api, query="colour:'red'"))
