"""The Stripe source against the loopback Stripe double: columns, paging, filters, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from dativo_provider.connections import StripeConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds
from dativo_provider.sources.http import ApiAuthError, ApiNotFoundError, ApiRequestError, ApiUnavailableError
from dativo_provider.sources.stripe import StripeSource, parse_spec
from dativo_provider.sources.stripe_objects import EVENT_TYPES
from tests.doubles.clock import FakeClock
from tests.doubles.stripe_api import (
    API_KEY,
    BASIL,
    T0,
    StripeDouble,
    charges,
    customer,
    invoice,
    product,
    subscription,
)

NOW = datetime.fromtimestamp(T0, UTC) + timedelta(days=30)


@pytest.fixture
def api():
    with StripeDouble(accounts=["acct_connected1"]) as double:
        double.add("charges", charges(250, step=60))
        double.add("customers", [customer(n, T0 + n) for n in range(50)])
        double.now = NOW
        yield double


def config(api, key: str = API_KEY, **fields) -> StripeConfig:
    return StripeConfig(api_key=key, base_url=api.url, conn_id="stripe_test", **fields)


def source(api, key: str = API_KEY, clock=None, **spec) -> StripeSource:
    """A source reading by ``created`` (these tests are about lists; events are in test_stripe_events.py)."""
    spec = {"type": "stripe", "object": "charges", **spec}
    if spec["object"] in EVENT_TYPES:
        spec.setdefault("incremental", "created")
    return StripeSource(parse_spec(spec), config(api, key), clock)


def read(src, state=None, bounds=ReadBounds()):
    with src.open(state, bounds) as stream:
        batches = list(stream)
        assert all(b.schema == stream.schema for b in batches)
        return pa.Table.from_batches(batches, schema=stream.schema), stream.state(), stream.report


def list_params(api) -> list[dict[str, list[str]]]:
    return [r.params for r in api.requests if r.path.startswith("/v1/") and r.path != "/v1/account"]


def test_charges_arrive_with_typed_columns_by_the_documented_rule(api):
    table, state, report = read(source(api))
    assert table.num_rows == 250 and len(set(table["id"].to_pylist())) == 250
    schema = table.schema
    assert schema.field("amount").type == pa.int64()
    assert schema.field("created").type == pa.timestamp("us", tz="UTC")
    assert schema.field("captured").type == pa.bool_()
    row = {r["id"]: r for r in table.to_pylist()}["ch_00000000000007"]
    original = api.get("charges", "ch_00000000000007")
    assert row["amount"] == original["amount"] == 1007
    assert row["created"] == datetime.fromtimestamp(original["created"], UTC)
    assert json.loads(row["metadata"]) == {"order": "o-7"}
    assert json.loads(row["payment_method_details"]) == original["payment_method_details"]
    assert row["customer"] == "cus_00000000000007" and row["receipt_email"] is None
    assert report.details["rows"] == 250 and report.details["pages"] == 3


def test_paging_follows_starting_after_with_the_largest_page(api):
    read(source(api))
    params = list_params(api)
    assert [p["limit"] for p in params] == [["100"]] * 3
    assert "starting_after" not in params[0]
    assert params[1]["starting_after"] == ["ch_00000000000150"] and params[2]["starting_after"] == ["ch_00000000000050"]


def test_incremental_runs_ask_for_created_after_the_watermark(api):
    _, state, _ = read(source(api))
    cutoff = NOW - timedelta(seconds=10)
    assert state == {"watermark": cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                     "cursor": "created", "api_version": "2025-02-24.acacia"}
    api.add("charges", charges(30, start=int(NOW.timestamp()) + 60, first=1000))
    api.now = NOW + timedelta(hours=2)
    api.clear_log()
    table, state2, _ = read(source(api), state)
    assert sorted(table["id"].to_pylist()) == [f"ch_{n:014d}" for n in range(1000, 1030)]
    assert list_params(api)[0]["created[gt]"] == [str(int(cutoff.timestamp()))]
    assert state2["watermark"] > state["watermark"]


def test_objects_newer_than_the_settle_cutoff_wait_for_the_next_run(api):
    now = int(NOW.timestamp())
    api.add("charges", [*charges(1, start=now - 5, first=900), *charges(1, start=now - 20, first=901)])
    table, state, _ = read(source(api))
    assert "ch_00000000000901" in table["id"].to_pylist() and "ch_00000000000900" not in table["id"].to_pylist()
    api.now = NOW + timedelta(minutes=1)
    again, _, _ = read(source(api), state)
    assert again["id"].to_pylist() == ["ch_00000000000900"]


def test_an_unchanged_source_keeps_its_state(api):
    _, state, _ = read(source(api))
    api.now = NOW + timedelta(days=1)
    table, same, _ = read(source(api), state)
    assert table.num_rows == 0 and same == state


def test_the_upper_bound_becomes_created_lte(api):
    upper = datetime.fromtimestamp(T0 + 99 * 60, UTC)
    table, state, _ = read(source(api), bounds=ReadBounds(upper=upper))
    assert table.num_rows == 100
    assert list_params(api)[0]["created[lte]"] == [str(T0 + 99 * 60)]
    assert state["watermark"] == "2024-01-01T01:39:00.000Z"


def test_start_and_lookback_set_the_lower_bound(api):
    table, _, _ = read(source(api, start="2024-01-01T02:00:00Z"))
    assert table.num_rows == 250 - 120 and list_params(api)[0]["created[gte]"] == [str(T0 + 7200)]
    src = source(api, lookback="1h")
    assert src.may_repeat_rows
    api.clear_log()
    read(src, {"watermark": "2024-01-01T03:00:00Z", "cursor": "created"})
    assert list_params(api)[0]["created[gt]"] == [str(T0 + 7200)]


def test_expand_turns_the_field_into_the_object_as_json(api):
    table, _, _ = read(source(api, expand=["customer"]))
    assert list_params(api)[0]["expand[]"] == ["data.customer"]
    row = {r["id"]: r for r in table.to_pylist()}["ch_00000000000007"]
    assert json.loads(row["customer"]) == customer(7, T0 + 7)


def test_a_connected_account_is_read_through_the_stripe_account_header(api):
    api.add("charges", charges(3, first=500), account="acct_connected1")
    src = StripeSource(parse_spec({"object": "charges"}), config(api, account="acct_connected1"))
    table, _, _ = read(src)
    assert sorted(table["id"].to_pylist()) == ["ch_00000000000500", "ch_00000000000501", "ch_00000000000502"]
    assert api.requests[-1].headers["stripe-account"] == "acct_connected1"
    assert src.identity == "stripe://acct_connected1/charges"
    other = StripeSource(parse_spec({"object": "charges", "account": "acct_gone"}), config(api))
    with pytest.raises(ApiAuthError, match="does not have access to account 'acct_gone'"):
        read(other)


def test_subscriptions_include_canceled_ones(api):
    api.add("subscriptions", [subscription(1, T0, "active"), subscription(2, T0 + 1, "canceled")])
    table, _, _ = read(source(api, object="subscriptions"))
    assert sorted(table["status"].to_pylist()) == ["active", "canceled"]
    assert list_params(api)[0]["status"] == ["all"]


def test_any_other_list_endpoint_is_read_with_generic_columns(api):
    api.add("products", [product(n, T0 + n) for n in range(5)])
    src = build_source({"type": "stripe", "object": "products"}, config(api))
    table, state, _ = read(src)
    assert table.column_names == ["id", "object", "created", "livemode", "metadata", "data"]
    assert json.loads(table.to_pylist()[0]["data"])["name"] == "Product 4"
    assert state is None and "created[gt]" not in list_params(api)[0]


def test_extra_fields_add_columns(api):
    table, _, _ = read(source(api, object="customers", extra_fields={"invoice_settings": "json", "nickname": "string"}))
    assert "nickname" in table.column_names and table.num_rows == 50


def test_a_bad_key_fails_naming_the_connection_never_the_key(api):
    wrong = "sk_test_51WrongKey000000000000000000abcd"
    with pytest.raises(ApiAuthError) as caught:
        read(source(api, key=wrong))
    assert "authentication failed for Stripe (check connection 'stripe_test'): HTTP 401" in str(caught.value)
    assert wrong not in str(caught.value) and "abcd" not in str(caught.value)


def test_rate_limits_and_server_errors_are_retried(api):
    clock = FakeClock()
    api.fail(429, {"error": {"type": "invalid_request_error", "message": "Too many requests", "code": "rate_limit"}},
             headers={"Retry-After": "2"}, match=lambda r: "starting_after" in r.params)
    api.fail(500, {"error": {"type": "api_error", "message": "Something went wrong"}}, times=2)
    table, _, _ = read(source(api, clock=clock))
    assert table.num_rows == 250 and len(set(table["id"].to_pylist())) == 250
    assert clock.sleeps[-1] == 2.0 and len(clock.sleeps) == 3


def test_retries_that_run_out_fail_the_read_as_transient(api):
    api.fail(500, {"error": {"type": "api_error", "message": "down"}}, times=None,
             match=lambda r: "starting_after" in r.params)
    src = source(api, clock=FakeClock(), retry={"max_attempts": 3})
    with src.open(None, ReadBounds()) as stream:
        with pytest.raises(ApiUnavailableError, match="after 3 attempt"):
            list(stream)
        assert stream.state() is None, "no state before every page was read"


def test_unknown_endpoints_and_parameters_are_named(api):
    with pytest.raises(ApiNotFoundError, match="Stripe: the widgets list not found"):
        read(source(api, object="widgets"))
    with pytest.raises(ApiRequestError, match="Received unknown parameter: colour"):
        read(source(api, params={"colour": "red"}))


def test_spec_errors_name_the_key(api):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['objekt'\]"):
        parse_spec({"type": "stripe", "objekt": "charges"})
    with pytest.raises(ConfigError, match="'params' may not set"):
        parse_spec({"object": "charges", "params": {"starting_after": "x"}})
    with pytest.raises(ConfigError, match="'page_size' must be an integer from 1 to 100"):
        parse_spec({"object": "charges", "page_size": 500})
    with pytest.raises(ConfigError, match="'object' must be a list endpoint"):
        parse_spec({"object": "../charges"})
    with pytest.raises(ConfigError, match="no secret key"):
        StripeSource(parse_spec({"object": "charges"}), StripeConfig(api_key=""))


def test_a_record_without_created_fails_an_incremental_read(api):
    api.add("products", [{**product(1, T0), "created": None}])
    with pytest.raises(SourceError, match="has no 'created'; read it with 'incremental': false"):
        read(source(api, object="products", incremental=True))


def test_the_config_repr_hides_the_key():
    assert API_KEY not in repr(StripeConfig(api_key=API_KEY, account="acct_1"))


def test_the_double_takes_basic_auth_and_answers_list_objects_as_stripe_does(api):
    import requests

    body = requests.get(f"{api.url}/v1/customers", auth=(API_KEY, ""), params={"limit": 2}, timeout=10).json()
    assert (body["object"], len(body["data"]), body["has_more"], body["url"]) == ("list", 2, True, "/v1/customers")
    assert body["data"][0]["id"] == "cus_00000000000049", "newest first"
    missing = requests.get(f"{api.url}/v1/customers", timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"


# --- the double is as strict as Stripe (issue 11, point 8) ----------------------------------------


def test_a_parameter_the_endpoint_does_not_list_is_refused_naming_it(api):
    with pytest.raises(ApiRequestError, match=r"HTTP 400: Received unknown parameter: status \(parameter_unknown\)"):
        read(source(api, params={"status": "succeeded"}))
    table, _, _ = read(source(api, params={"customer": "cus_00000000000007"}))
    assert table.num_rows == 250, "a listed filter passes (the double does not filter on it)"


def test_a_field_that_cannot_be_expanded_is_refused_as_stripe_does(api):
    with pytest.raises(ApiRequestError, match=r"This property cannot be expanded \(metadata\)"):
        read(source(api, expand=["metadata"]))


def test_the_double_refuses_both_cursors_and_unprefixed_list_expands(api):
    import requests

    def get(**params):
        return requests.get(f"{api.url}/v1/charges", auth=(API_KEY, ""), params=params, timeout=10)

    both = get(starting_after="ch_00000000000100", ending_before="ch_00000000000010")
    assert both.status_code == 400
    assert both.json()["error"] == {
        "type": "invalid_request_error",
        "message": "Received both starting_after and ending_before parameters. Please pass in only one."}
    bare = get(**{"expand[]": "customer"})
    assert bare.status_code == 400 and bare.json()["error"]["param"] == "expand[0]"
    assert "try expanding 'data.customer'" in bare.json()["error"]["message"]
    unknown = get(colour="red").json()["error"]
    assert (unknown["code"], unknown["param"]) == ("parameter_unknown", "colour")


def test_a_restricted_key_without_read_permission_fails_naming_object_and_permission(api):
    api.denied.add("charges")
    with pytest.raises(ApiAuthError) as caught:
        read(source(api))
    message = str(caught.value)
    assert message == ("Stripe: the key of connection 'stripe_test' may not read charges: it lacks the "
                       "'rak_charge_read' permission (give the restricted key Read access to it)")
    assert caught.value.status == 403 and API_KEY[-4:] not in message


def test_deleted_objects_in_a_list_are_kept_with_the_deleted_flag(api):
    api.add("customers", [{"id": "cus_deleted0000001", "object": "customer", "deleted": True, "created": None}])
    table, state, _ = read(source(api, object="customers"))
    rows = {r["id"]: r for r in table.to_pylist()}
    assert table.num_rows == 51 and rows["cus_deleted0000001"]["deleted"] is True
    assert rows["cus_00000000000003"]["deleted"] is None and rows["cus_00000000000003"]["email"]
    assert state["watermark"] == (NOW - timedelta(seconds=10)).isoformat(timespec="milliseconds")[:-6] + "Z"


# --- the API version (issue 11, point 2) --------------------------------------------------------


def versioned(api, version, **spec) -> StripeSource:
    return StripeSource(parse_spec({"type": "stripe", **spec}), config(api, api_version=version))


@pytest.fixture
def billing(api):
    api.add("subscriptions", [subscription(n, T0 + n) for n in range(3)])
    api.add("invoices", [invoice(n, T0 + n, subscription_n=n) for n in range(3)])
    return api


@pytest.mark.parametrize("version", ["2024-06-20", "2025-02-24.acacia", BASIL, "2025-09-30.clover"])
def test_each_version_fills_the_columns_it_has(billing, version):
    subs, sub_state, _ = read(versioned(billing, version, object="subscriptions"))
    row = {r["id"]: r for r in subs.to_pylist()}["sub_00000000000001"]
    assert row["current_period_start"] == datetime.fromtimestamp(T0 + 1, UTC)
    assert row["current_period_end"] == datetime.fromtimestamp(T0 + 1 + 30 * 86400, UTC)
    invoices, _, report = read(versioned(billing, version, object="invoices"))
    row = {r["id"]: r for r in invoices.to_pylist()}["in_00000000000002"]
    assert row["subscription"] == "sub_00000000000002" and row["amount_paid"] == 2000
    charges_table, _, _ = read(versioned(billing, version, object="charges"))
    basil = version >= "2025-03-31"
    assert ("paid" in invoices.column_names, "invoice" in charges_table.column_names) == (not basil, not basil)
    if not basil:
        assert set(invoices["paid"].to_pylist()) == {True}
    assert sub_state["api_version"] == report.details["api_version"] == version
    assert {r.headers.get("stripe-version") for r in billing.requests} == {version}, "sent on every call"
    assert ("columns_not_filled" in report.details) == basil


def test_an_account_on_basil_still_gets_the_shapes_of_the_version_sent(billing):
    """The account's own default never decides the shapes: without the pin these columns were null."""
    billing.default_version = BASIL
    table, _, _ = read(versioned(billing, None, object="subscriptions"))
    assert None not in table["current_period_start"].to_pylist()
    invoices, _, _ = read(versioned(billing, None, object="invoices"))
    assert None not in invoices["subscription"].to_pylist() and None not in invoices["paid"].to_pylist()


def test_the_default_version_is_sent_when_the_connection_pins_none(billing):
    _, state, report = read(versioned(billing, None, object="invoices"))
    assert {r.headers.get("stripe-version") for r in billing.requests} == {"2025-02-24.acacia"}
    assert report.details["api_version"] == "2025-02-24.acacia"


def test_a_malformed_version_is_a_config_error_naming_the_connection(api):
    with pytest.raises(ConfigError, match="stripe connection 'stripe_test': 'api_version' must look like"):
        versioned(api, "basil", object="charges")


# --- the account in the source identity ----------------------------------------------------------


def test_the_identity_names_the_account_read(api):
    src = source(api)
    assert src.identity == src.identity == "stripe://acct_1DativoPlatform0/charges"
    assert [r.path for r in api.requests] == ["/v1/account"], "asked once"
    assert src.former_identities == ("stripe://default/charges",)
    connected = StripeSource(parse_spec({"object": "charges", "account": "acct_connected1"}), config(api))
    assert connected.identity == "stripe://acct_connected1/charges" and connected.former_identities == ()
    assert len(api.requests) == 1


def test_a_key_that_may_not_read_its_account_fails_naming_the_permission(api):
    api.denied.add("account")
    with pytest.raises(ApiAuthError, match="may not read its account id .*'rak_account_read' permission"):
        read(source(api))
