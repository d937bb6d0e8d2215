"""The HubSpot source against the loopback HubSpot double: properties, search windows, the 10,000
cap, archived records, associations, OAuth and errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError, TransientError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.http import ApiAuthError, ApiNotFoundError, DailyLimitError
from dativo_provider.sources.hubspot import HubSpotSource, parse_spec
from tests.doubles.clock import FakeClock
from tests.doubles.hubspot_api import T0_MS, TOKEN, HubSpotDouble, definition

NOW = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = 3_600_000
OAUTH = {"client_id": "app-1", "client_secret": "Client-Secret-5f1e", "refresh_token": "Refresh-Token-9a8b7c"}
DEAL_PROPERTIES = [
    definition("dealname"), definition("amount", "number", "number"), definition("closedate", "date", "date"),
    definition("hs_is_closed_won", "bool", "booleancheckbox"), definition("dealstage", "enumeration", "select"),
    definition("archived", "string", "text"),
]


@pytest.fixture
def api():
    with HubSpotDouble(oauth=OAUTH, association_page=2) as double:
        double.define("deals", DEAL_PROPERTIES)
        double.define("contacts", [definition("email"), definition("firstname")])
        double.define("companies", [definition("name")])
        double.define("2-777", [definition("sku")], alias="p_orders")
        for n in range(1, 301):
            double.put("deals", n, deal(n), created=T0_MS + n * HOUR)
        double.now = NOW
        yield double


def deal(n: int) -> dict[str, str | None]:
    return {"dealname": f"Deal {n}", "amount": f"{n}.25", "closedate": "2024-02-01T00:00:00.000Z",
            "hs_is_closed_won": "true" if n % 2 else "false", "dealstage": "closedwon", "archived": "no"}


def config(api, **fields) -> HubSpotConfig:
    values = {"access_token": TOKEN, "base_url": api.url, "conn_id": "hubspot_test", **fields}
    return HubSpotConfig(**values)


def source(api, clock=None, cfg=None, **spec) -> HubSpotSource:
    return HubSpotSource(parse_spec({"type": "hubspot", "object": "deals", **spec}), cfg or config(api), clock)


def read(src, state=None, bounds=ReadBounds()):
    with src.open(state, bounds) as stream:
        batches = list(stream)
        assert all(b.schema == stream.schema for b in batches)
        return pa.Table.from_batches(batches, schema=stream.schema), stream.state(), stream.report


def searches(api) -> list[dict]:
    return [r.body for r in api.requests if r.path.endswith("/search")]


def test_every_property_arrives_typed_by_its_definition(api):
    table, state, _ = read(source(api))
    assert table.num_rows == 300
    types = {f.name: f.type for f in table.schema}
    assert types["id"] == pa.string() and types["updated_at"] == pa.timestamp("us", tz="UTC")
    assert types["amount"] == pa.decimal128(38, 18) and types["closedate"] == pa.date32()
    assert types["hs_is_closed_won"] == pa.bool_() and types["dealstage"] == pa.string()
    assert "property_archived" in types and types["archived"] == pa.bool_()
    row = {r["id"]: r for r in table.to_pylist()}["7"]
    assert row["amount"] == Decimal("7.25") and row["closedate"] == date(2024, 2, 1)
    assert row["hs_is_closed_won"] is True and row["archived"] is False and row["property_archived"] == "no"
    assert row["created_at"] == datetime.fromtimestamp((T0_MS + 7 * HOUR) / 1000, UTC)
    assert state == {"watermark": "2024-02-29T23:59:00.000Z", "cursor": "hs_lastmodifieddate",
                     "api_version": "2026-03"}


def test_chosen_properties_only_and_unknown_ones_named(api):
    table, _, _ = read(source(api, properties=["dealname"]))
    assert table.column_names == ["id", "created_at", "updated_at", "archived", "archived_at", "dealname"]
    assert searches(api)[0]["properties"] == ["dealname"]
    with pytest.raises(ConfigError, match=r"no properties \['colour'\]"):
        read(source(api, properties=["dealname", "colour"]))


def test_search_windows_filter_sort_and_page_as_the_api_expects(api):
    read(source(api))
    bodies = searches(api)
    filters = bodies[0]["filterGroups"][0]["filters"]
    upper = int((NOW - timedelta(minutes=1)).timestamp() * 1000)
    assert filters == [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"},
                       {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(upper)}]
    assert bodies[0]["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert [b.get("after") for b in bodies] == [None, "200"] and bodies[0]["limit"] == 200


def test_the_next_run_starts_at_the_watermark_and_gets_updates_and_new_records(api):
    _, state, _ = read(source(api))
    api.now = NOW + timedelta(hours=1)
    api.update("deals", 5, int(NOW.timestamp() * 1000), dealstage="closedlost")
    api.put("deals", 999, deal(999), created=int(NOW.timestamp() * 1000) + 5)
    api.clear_log()
    table, state2, _ = read(source(api), state)
    assert sorted(table["id"].to_pylist()) == ["5", "999"]
    assert {r["id"]: r["dealstage"] for r in table.to_pylist()}["5"] == "closedlost"
    lower = searches(api)[0]["filterGroups"][0]["filters"][0]
    assert lower == {"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                     "value": str(int((NOW - timedelta(minutes=1)).timestamp() * 1000))}
    assert state2["watermark"] == "2024-03-01T00:59:00.000Z"


def test_contacts_search_on_lastmodifieddate(api):
    api.put("contacts", 1, {"email": "a@example.com", "firstname": "Ada"}, created=T0_MS)
    table, state, _ = read(source(api, object="contacts"))
    assert table["email"].to_pylist() == ["a@example.com"] and state["cursor"] == "lastmodifieddate"
    assert searches(api)[0]["sorts"][0]["propertyName"] == "lastmodifieddate"


def test_more_than_10000_in_one_window_are_split_until_each_fits(api):
    for n in range(1000, 13_000):
        api.put("deals", n, {"dealname": f"bulk {n}"}, created=T0_MS + 400 * HOUR + n)
    # A fake clock: the search pacing (4/s) would make the ~100 searches take half a minute.
    table, _, report = read(source(api, clock=FakeClock(), properties=["dealname"]))
    ids = table["id"].to_pylist()
    assert len(ids) == 12_300 and len(set(ids)) == 12_300
    assert report.details["splits"] >= 1
    assert all(int(b.get("after") or 0) < 10_000 for b in searches(api))


def test_more_than_10000_in_one_millisecond_are_read_by_id(api):
    for n in range(1000, 11_200):
        api.put("deals", n, {"dealname": f"import {n}"}, created=T0_MS + 500 * HOUR)
    table, _, report = read(source(api, clock=FakeClock(), properties=["dealname"]))
    assert table.num_rows == 10_500 and len(set(table["id"].to_pylist())) == 10_500
    assert report.details["same_millisecond_reads"] == 1
    keyset = [b for b in searches(api) if b["sorts"][0]["propertyName"] == "hs_object_id"]
    assert keyset[1]["filterGroups"][0]["filters"][1] == {"propertyName": "hs_object_id", "operator": "GT",
                                                          "value": "1199"}


def test_a_window_whose_records_move_while_paged_is_read_again(api):
    def touch_once(request):
        if request.path.endswith("/search") and (request.body or {}).get("after") == "200" and not touched:
            touched.append(True)
            api.update("deals", 3, int(NOW.timestamp() * 1000) + 1)  # leaves the window: later than its upper end

    touched: list[bool] = []
    api.before.append(touch_once)
    table, _, report = read(source(api))
    assert report.details["rereads"] == 1
    ids = table["id"].to_pylist()
    assert len(ids) == 299 and "3" not in ids and len(set(ids)) == 299


def test_full_reads_page_the_list_with_after(api):
    table, state, _ = read(source(api, incremental=False))
    assert table.num_rows == 300 and state is None
    lists = [r for r in api.requests if r.path == "/crm/objects/2026-03/deals"]
    assert [r.param("after") for r in lists] == [None, "101", "201"]
    assert lists[0].param("properties").split(",")[:2] == ["amount", "archived"]


def test_long_property_lists_are_read_by_batch_read(api):
    many = [definition(f"custom_{n:04d}") for n in range(200)]
    api.define("companies", many)
    api.put("companies", 1, {"custom_0199": "last"}, created=T0_MS)
    table, _, _ = read(source(api, object="companies", incremental=False))
    assert table["custom_0199"].to_pylist() == ["last"]
    assert any(r.path.endswith("/batch/read") for r in api.requests)
    assert all(r.param("properties") is None for r in api.requests if r.path == "/crm/objects/2026-03/companies")


def test_archived_records_come_with_archived_true(api):
    api.archive("deals", 10, at=int(NOW.timestamp() * 1000) - 2 * HOUR)
    table, _, _ = read(source(api, archived=True))
    rows = {r["id"]: r for r in table.to_pylist()}
    assert len(rows) == 300 and rows["10"]["archived"] is True and rows["10"]["archived_at"] is not None
    assert rows["11"]["archived"] is False
    full, _, _ = read(source(api, archived=True, incremental=False))
    assert full.num_rows == 300 and sum(full["archived"].to_pylist()) == 1


def test_associations_become_id_lists_paged_per_record(api):
    api.link("deals", "companies", 1, [501, 502, 503])
    api.link("deals", "companies", 2, [504])
    table, _, _ = read(source(api, associations=["companies"]))
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["1"]["associations_companies"] == ["501", "502", "503"]
    assert rows["2"]["associations_companies"] == ["504"] and rows["3"]["associations_companies"] == []
    assert table.schema.field("associations_companies").type == pa.list_(pa.string())


def test_custom_objects_by_name_or_object_type_id(api):
    api.put("2-777", 1, {"sku": "A-1"}, created=T0_MS)
    for name in ("p_orders", "2-777"):
        table, _, _ = read(source(api, object=name))
        assert table["sku"].to_pylist() == ["A-1"]
    with pytest.raises(ApiNotFoundError, match="HubSpot has no object type .*p_nothing"):
        read(source(api, object="p_nothing"))


def test_oauth_gets_a_token_and_refreshes_it_once_on_401(api):
    cfg = config(api, access_token=None, **OAUTH)
    table, _, _ = read(source(api, cfg=cfg, properties=["dealname"]))
    assert table.num_rows == 300
    tokens = [r for r in api.requests if r.path == "/oauth/2026-03/token"]
    assert len(tokens) == 1 and tokens[0].body["grant_type"] == "refresh_token"

    api.expire_tokens()
    src = source(api, cfg=cfg, properties=["dealname"])
    with src.open(None, ReadBounds()) as stream:
        api.expire_tokens()  # the token fetched for the properties call expires before the search
        assert sum(b.num_rows for b in stream) == 300
    assert len([r for r in api.requests if r.path == "/oauth/2026-03/token"]) == 3


def test_oauth_token_is_refreshed_before_it_expires(api):
    clock = FakeClock()
    src = source(api, cfg=config(api, access_token=None, **OAUTH), clock=clock, properties=["dealname"])
    with src.open(None, ReadBounds()) as stream:
        clock.advance(1800)
        list(stream)
    assert len([r for r in api.requests if r.path == "/oauth/2026-03/token"]) == 2


def test_a_bad_refresh_token_fails_without_any_secret(api):
    cfg = config(api, access_token=None, **{**OAUTH, "refresh_token": "Wrong-Refresh-1234"})
    with pytest.raises(ApiAuthError) as caught:
        read(source(api, cfg=cfg))
    message = str(caught.value)
    assert "authentication failed for HubSpot (check connection 'hubspot_test')" in message
    assert "BAD_REFRESH_TOKEN" in message
    assert not any(secret in message for secret in ("Wrong-Refresh-1234", OAUTH["client_secret"]))


def test_a_bad_token_fails_naming_the_connection(api):
    wrong = "pat-na1-11111111-2222-3333-4444-555555555555"
    with pytest.raises(ApiAuthError, match="INVALID_AUTHENTICATION") as caught:
        read(source(api, cfg=config(api, access_token=wrong)))
    assert wrong not in str(caught.value)


def test_429_with_retry_after_is_waited_out(api):
    clock = FakeClock()
    api.fail(429, {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                   "policyName": "SECONDLY"}, headers={"Retry-After": "1"}, times=2,
             match=lambda r: r.path.endswith("/search"))
    api.fail(500, {"status": "error", "message": "internal error"}, match=lambda r: r.path.endswith("/search"))
    table, _, _ = read(source(api, clock=clock))
    assert table.num_rows == 300 and clock.sleeps[:2] == [1.0, 1.0] and len(clock.sleeps) == 3


def test_the_daily_limit_is_surfaced_and_not_retried(api):
    clock = FakeClock()
    api.fail(429, {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                   "policyName": "DAILY"}, times=None, match=lambda r: r.path.endswith("/search"))
    with pytest.raises(DailyLimitError, match="daily API limit is used up"):
        read(source(api, clock=clock))
    assert clock.sleeps == [] and len(searches(api)) == 1


def test_windows_that_never_settle_give_up_as_transient(api):
    api.before.append(lambda r: r.path.endswith("/search") and (r.body or {}).get("after") and
                      api.put("deals", 10_000 + len(api.requests), deal(1), created=T0_MS + 2 * HOUR))
    with pytest.raises(TransientError, match="kept changing while they were paged"):
        read(source(api))


def test_an_upper_bound_limits_the_run(api):
    upper = datetime.fromtimestamp((T0_MS + 100 * HOUR) / 1000, UTC)
    table, state, _ = read(source(api), bounds=ReadBounds(upper=upper))
    assert table.num_rows == 99 and state["watermark"] == "2024-01-05T04:00:00.000Z"


def test_spec_and_connection_errors_name_the_key(api):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['propertys'\]"):
        parse_spec({"object": "deals", "propertys": ["a"]})
    with pytest.raises(ConfigError, match="'properties' must be a list of names"):
        parse_spec({"object": "deals", "properties": "a,b"})
    with pytest.raises(ConfigError, match="no private-app token"):
        read(source(api, cfg=HubSpotConfig(base_url=api.url, conn_id="empty")))
    assert build_source({"type": "hubspot", "object": "deals"}, config(api)).may_repeat_rows


def test_the_config_repr_hides_every_secret():
    text = repr(HubSpotConfig(access_token=TOKEN, client_id="app", client_secret="cs-1234567", refresh_token="rt-7654321"))
    assert TOKEN not in text and "cs-1234567" not in text and "rt-7654321" not in text
