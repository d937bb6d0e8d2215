"""Stripe and HubSpot through ``run_ingest`` into a real embedded Iceberg catalog, against the doubles:
incremental runs over many pages arrive exactly once, a failure mid-paging commits nothing, the
next run recovers, and no secret reaches a log line or an error message."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from dativo_provider.connections import HubSpotConfig, StripeConfig
from dativo_provider.exceptions import DativoError, TransientError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources import build_source
from dativo_provider.sources.hubspot import HubSpotSource
from dativo_provider.sources.hubspot import parse_spec as hubspot_spec
from dativo_provider.sources.stripe import StripeSource
from dativo_provider.sources.stripe import parse_spec as stripe_spec
from tests.doubles.clock import FakeClock
from tests.doubles.hubspot_api import T0_MS, TOKEN, HubSpotDouble, definition
from tests.doubles.stripe_api import API_KEY, T0, StripeDouble, charges

MERGE = WriteOptions(mode="merge", merge_keys=("id",))
MINUTE_MS = 60_000


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def rows(catalog, table: str) -> list[dict]:
    return catalog.load().load_table(table).scan().to_arrow().to_pylist()


def snapshots(catalog, table: str) -> int:
    return len(catalog.load().load_table(table).snapshots())


# --- Stripe -------------------------------------------------------------------------------------


@pytest.fixture
def stripe():
    with StripeDouble() as double:
        double.now = datetime.fromtimestamp(T0, UTC) + timedelta(days=1)
        yield double


def stripe_source(api, key: str = API_KEY, clock=None, **spec) -> StripeSource:
    config = StripeConfig(api_key=key, base_url=api.url, conn_id="stripe_test")
    spec = {"object": "charges", "incremental": "created", "page_size": 50, "batch_rows": 300, **spec}
    return StripeSource(stripe_spec(spec), config, clock)  # by created: events are test_stripe_events_ingest.py


def advance(api: StripeDouble, hours: int) -> int:
    """Move the double's clock; returns the new time as unix seconds."""
    api.now += timedelta(hours=hours)
    return int(api.now.timestamp())


def test_stripe_incremental_runs_over_many_pages_write_each_charge_once(stripe, catalog):
    stripe.add("charges", charges(1_000, step=30))
    first = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    assert (first.rows_written, first.source_details["pages"]) == (1_000, 20)

    now = advance(stripe, 2)
    stripe.add("charges", charges(700, start=now - 3_600, step=5, first=5_000))
    second = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    assert second.rows_written == 700 and second.watermark_before == first.watermark_after

    rerun = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    assert rerun.rows_written == 0 and not rerun.committed
    ids = [r["id"] for r in rows(catalog, "raw.charges")]
    assert len(ids) == 1_700 == len(set(ids)) and snapshots(catalog, "raw.charges") == 2


def test_stripe_lookback_merges_updated_charges_in_place(stripe, catalog):
    now = int(stripe.now.timestamp())
    stripe.add("charges", charges(300, start=now - 3_000, step=5))
    run_ingest(stripe_source(stripe, lookback="2h"), catalog, "raw.charges", MERGE)
    stripe.update("charges", "ch_00000000000299", refunded=True, amount_refunded=500)
    now = advance(stripe, 1)
    stripe.add("charges", charges(10, start=now - 600, first=900))
    result = run_ingest(stripe_source(stripe, lookback="2h"), catalog, "raw.charges", MERGE)
    table = {r["id"]: r for r in rows(catalog, "raw.charges")}
    assert len(table) == 310 and result.rows_deleted > 0
    assert table["ch_00000000000299"]["refunded"] is True and table["ch_00000000000299"]["amount_refunded"] == 500


def test_two_stripe_accounts_writing_one_table_keep_their_own_watermarks(stripe, catalog):
    stripe.add("charges", charges(200, start=int(stripe.now.timestamp()) - 2_000, step=5))
    first = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    assert first.source == "stripe://acct_1DativoPlatform0/charges"
    other_key = "sk_test_51OtherAccountKey00000000000abcd"
    with StripeDouble(api_key=other_key, account_id="acct_1OtherPlatform00") as other:
        other.now = stripe.now
        other.add("charges", charges(50, step=60, first=7_000))  # long before the first account's watermark
        second = run_ingest(stripe_source(other, key=other_key), catalog, "raw.charges")
    assert second.source == "stripe://acct_1OtherPlatform00/charges"
    assert second.watermark_before is None and second.rows_written == 50
    assert len(rows(catalog, "raw.charges")) == 250


class _BeforeTheAccountId(StripeSource):
    """The identity Stripe sources had before the account id was part of it."""

    @property
    def identity(self) -> str:
        return f"stripe://default/{self.spec.object}"


def test_a_table_loaded_before_the_account_id_continues_from_its_watermark(stripe, catalog):
    stripe.add("charges", charges(300, step=30))
    old = _BeforeTheAccountId(stripe_spec({"object": "charges", "incremental": "created"}),
                              StripeConfig(api_key=API_KEY, base_url=stripe.url, conn_id="stripe_test"))
    loaded = run_ingest(old, catalog, "raw.charges")
    now = advance(stripe, 2)
    stripe.add("charges", charges(40, start=now - 3_000, step=10, first=9_000))
    stripe.clear_log()
    moved = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    assert moved.watermark_before == loaded.watermark_after and moved.rows_written == 40
    assert moved.source == "stripe://acct_1DativoPlatform0/charges"
    again = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    assert again.watermark_before == moved.watermark_after and again.rows_written == 0
    ids = [r["id"] for r in rows(catalog, "raw.charges")]
    assert len(ids) == 340 == len(set(ids))


def test_stripe_failure_mid_paging_commits_nothing_and_the_next_run_recovers(stripe, catalog):
    stripe.add("charges", charges(400, step=30))
    run_ingest(stripe_source(stripe), catalog, "raw.charges")
    now = advance(stripe, 3)
    stripe.add("charges", charges(600, start=now - 7_000, step=10, first=10_000))
    before = catalog.load().load_table("raw.charges").current_snapshot().snapshot_id
    stripe.fail(503, {"error": {"type": "api_error", "message": "unavailable"}}, times=None,
                match=lambda r: r.param("starting_after") == "ch_00000000010400")
    with pytest.raises(TransientError, match="HTTP 503"):
        run_ingest(stripe_source(stripe, clock=FakeClock(), retry={"max_attempts": 3}), catalog, "raw.charges")
    assert catalog.load().load_table("raw.charges").current_snapshot().snapshot_id == before
    assert len(rows(catalog, "raw.charges")) == 400

    stripe.clear_faults()
    recovered = run_ingest(stripe_source(stripe), catalog, "raw.charges")
    ids = [r["id"] for r in rows(catalog, "raw.charges")]
    assert recovered.rows_written == 600 and len(ids) == 1_000 == len(set(ids))


# --- HubSpot ------------------------------------------------------------------------------------


@pytest.fixture
def hubspot():
    with HubSpotDouble() as double:
        double.define("deals", [definition("dealname"), definition("amount", "number", "number")])
        double.now = datetime(2024, 2, 1, tzinfo=UTC)
        yield double


def hubspot_source(api, token: str = TOKEN, clock=None, **spec) -> HubSpotSource:
    config = HubSpotConfig(access_token=token, base_url=api.url, conn_id="hubspot_test")
    return HubSpotSource(hubspot_spec({"object": "deals", "batch_rows": 2_000, **spec}), config, clock)


def hubspot_now_ms(api: HubSpotDouble) -> int:
    return int(api.now.timestamp() * 1000)


def test_hubspot_updates_and_new_records_arrive_once_merged_on_id(hubspot, catalog):
    for n in range(1, 2_001):
        hubspot.put("deals", n, {"dealname": f"Deal {n}", "amount": "10"}, created=T0_MS + n * MINUTE_MS)
    first = run_ingest(hubspot_source(hubspot), catalog, "raw.deals", MERGE)
    assert first.rows_written == 2_000

    hubspot.now += timedelta(hours=1)
    modified = hubspot_now_ms(hubspot) - 30 * MINUTE_MS
    for n in range(1, 2_001, 10):
        hubspot.update("deals", n, modified, amount="99")
    for n in range(3_000, 3_050):
        hubspot.put("deals", n, {"dealname": f"New {n}", "amount": "1"}, created=modified)
    second = run_ingest(hubspot_source(hubspot), catalog, "raw.deals", MERGE)
    assert second.rows_written == 250 and second.rows_deleted == 200

    assert run_ingest(hubspot_source(hubspot), catalog, "raw.deals", MERGE).rows_written == 0
    table = {r["id"]: r for r in rows(catalog, "raw.deals")}
    assert len(table) == 2_050
    assert sum(1 for r in table.values() if r["amount"] == 99) == 200


def test_hubspot_more_than_10000_modified_in_one_window_land_once(hubspot, catalog):
    for n in range(1, 10_601):
        hubspot.put("deals", n, {"dealname": f"Deal {n}", "amount": "1"}, created=T0_MS + (n % 7) * MINUTE_MS)
    for n in range(20_000, 20_400):
        hubspot.put("deals", n, {"dealname": f"Later {n}", "amount": "2"}, created=T0_MS + 10 * 24 * 60 * MINUTE_MS)
    # A fake clock: the search pacing (4/s) would make its ~100 searches take half a minute.
    result = run_ingest(hubspot_source(hubspot, clock=FakeClock(), properties=["dealname"]), catalog, "raw.deals",
                        MERGE)
    ids = [r["id"] for r in rows(catalog, "raw.deals")]
    assert result.rows_written == 11_000 and len(ids) == 11_000 == len(set(ids))
    assert result.source_details["splits"] >= 1


def test_hubspot_failure_mid_paging_commits_nothing_and_the_next_run_recovers(hubspot, catalog):
    for n in range(1, 1_001):
        hubspot.put("deals", n, {"dealname": f"Deal {n}", "amount": "3"}, created=T0_MS + n * MINUTE_MS)
    hubspot.fail(502, {"status": "error", "message": "Bad gateway"}, times=None,
                 match=lambda r: (r.body or {}).get("after") == "600")
    with pytest.raises(TransientError, match="HTTP 502"):
        run_ingest(hubspot_source(hubspot, clock=FakeClock(), retry={"max_attempts": 2}), catalog, "raw.deals", MERGE)
    assert not catalog.load().table_exists("raw.deals") or rows(catalog, "raw.deals") == []

    hubspot.clear_faults()
    result = run_ingest(hubspot_source(hubspot), catalog, "raw.deals", MERGE)
    ids = [r["id"] for r in rows(catalog, "raw.deals")]
    assert result.rows_written == 1_000 and len(set(ids)) == 1_000


# --- secrets ------------------------------------------------------------------------------------


def _run_and_capture(caplog, source, catalog, table, options=None) -> str:
    """The DEBUG log of one run plus the text of the error it raised (if any)."""
    with caplog.at_level(logging.DEBUG):
        try:
            run_ingest(source, catalog, table, options)
            error = ""
        except DativoError as exc:
            error = f"{exc!r} {exc}"
    return caplog.text + error


def test_the_stripe_key_never_reaches_logs_or_errors(stripe, catalog, caplog):
    stripe.add("charges", charges(120))
    wrong = "sk_live_51DativoWrongKey00000000000009999"
    failing = _run_and_capture(caplog, stripe_source(stripe, key=wrong), catalog, "raw.charges")
    assert "authentication failed for Stripe (check connection 'stripe_test')" in failing
    caplog.clear()
    passing = _run_and_capture(caplog, stripe_source(stripe), catalog, "raw.charges")
    assert "Stripe GET /v1/charges" in passing and len(rows(catalog, "raw.charges")) == 120
    for text in (failing, passing):
        assert API_KEY not in text and wrong not in text and "9999" not in text


def test_hubspot_tokens_never_reach_logs_or_errors(hubspot, catalog, caplog):
    hubspot.put("deals", 1, {"dealname": "Only", "amount": "5"}, created=T0_MS)
    wrong = "pat-na1-deadbeef-0000-0000-0000-000000000000"
    failing = _run_and_capture(caplog, hubspot_source(hubspot, token=wrong), catalog, "raw.deals", MERGE)
    assert "authentication failed for HubSpot (check connection 'hubspot_test')" in failing
    caplog.clear()
    passing = _run_and_capture(caplog, hubspot_source(hubspot), catalog, "raw.deals", MERGE)
    assert "HubSpot POST /crm/objects/2026-03/deals/search" in passing and len(rows(catalog, "raw.deals")) == 1
    for text in (failing, passing):
        assert TOKEN not in text and wrong not in text


def test_hubspot_oauth_secrets_never_reach_logs_or_errors(catalog, caplog):
    oauth = {"client_id": "app-7", "client_secret": "Client-Secret-Zz9", "refresh_token": "Refresh-Token-Yy8"}
    with HubSpotDouble(oauth=oauth) as api:
        api.define("deals", [definition("dealname")])
        api.put("deals", 1, {"dealname": "Only"}, created=T0_MS)
        api.now = datetime(2024, 2, 1, tzinfo=UTC)
        config = HubSpotConfig(base_url=api.url, conn_id="hubspot_oauth", **oauth)
        source = build_source({"type": "hubspot", "object": "deals"}, config)
        passing = _run_and_capture(caplog, source, catalog, "raw.deals", MERGE)
        bad = HubSpotConfig(base_url=api.url, conn_id="hubspot_oauth", **{**oauth, "refresh_token": "Stale-Token-Xx7"})
        failing = _run_and_capture(caplog, build_source({"type": "hubspot", "object": "deals"}, bad), catalog,
                                   "raw.deals", MERGE)
        issued = set(api.issued)
    assert "BAD_REFRESH_TOKEN" in failing and len(rows(catalog, "raw.deals")) == 1
    for secret in [*oauth.values(), "Stale-Token-Xx7", *issued]:
        if secret != "app-7":
            assert secret not in passing + failing
