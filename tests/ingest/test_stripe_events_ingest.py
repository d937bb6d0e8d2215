"""Stripe updates and deletions reach an Iceberg table: ``run_ingest`` with the events mode and a merge
on ``id`` into a real embedded catalog, against the Stripe double; the table is read back each time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dativo_provider.connections import StripeConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.state import read_state
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.stripe import StripeSource, parse_spec
from tests.doubles.stripe_api import API_KEY, T0, StripeDouble, charges, customer

MERGE = WriteOptions(mode="merge", merge_keys=("id",))
IDENTITY = "stripe://acct_1DativoPlatform0/"


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


@pytest.fixture
def stripe():
    with StripeDouble() as double:
        double.now = datetime.fromtimestamp(T0, UTC) + timedelta(days=2)
        double.add("charges", charges(250, step=300))
        double.add("customers", [customer(n, T0 + 60 * n) for n in range(40)])
        yield double


def source(api, **spec) -> StripeSource:
    config = StripeConfig(api_key=API_KEY, base_url=api.url, conn_id="stripe_test")
    return StripeSource(parse_spec({"object": "charges", "page_size": 100, **spec}), config)


def table_rows(catalog, table: str) -> list[dict]:
    return catalog.load().load_table(table).scan().to_arrow().to_pylist()


def hours_later(api, hours: float) -> None:
    api.now += timedelta(hours=hours)


def test_a_charge_refunded_after_it_was_loaded_is_updated_in_place(stripe, catalog):
    first = run_ingest(source(stripe), catalog, "raw.charges", MERGE)
    assert first.rows_written == 250 and first.source_details["read"] == "list"

    hours_later(stripe, 3)
    stripe.refund("ch_00000000000042", amount=700)
    stripe.refund("ch_00000000000007")
    stripe.add("charges", charges(3, start=int(stripe.now.timestamp()), first=1_000))
    hours_later(stripe, 1)
    second = run_ingest(source(stripe), catalog, "raw.charges", MERGE)
    assert second.source_details["read"] == "events" and second.rows_written == 5
    assert second.rows_deleted == 2, "the two refunded charges' old rows were replaced"

    rows = table_rows(catalog, "raw.charges")
    ids = [r["id"] for r in rows]
    assert len(ids) == 253 == len(set(ids)), "no duplicates"
    by_id = {r["id"]: r for r in rows}
    assert (by_id["ch_00000000000042"]["amount_refunded"], by_id["ch_00000000000042"]["refunded"]) == (700, False)
    assert (by_id["ch_00000000000007"]["amount_refunded"], by_id["ch_00000000000007"]["refunded"]) == (1007, True)
    assert by_id["ch_00000000000043"]["amount_refunded"] == 0
    state = read_state(catalog.load().load_table("raw.charges"), IDENTITY + "charges", "main").state
    assert state["cursor"] == "events" and state["watermark"] == second.watermark_after

    hours_later(stripe, 1)
    quiet = run_ingest(source(stripe), catalog, "raw.charges", MERGE)
    assert quiet.rows_written == 0 and quiet.watermark_after > second.watermark_after
    assert len(table_rows(catalog, "raw.charges")) == 253


def test_a_deleted_customer_is_marked_deleted_in_the_table(stripe, catalog):
    run_ingest(source(stripe, object="customers"), catalog, "raw.customers", MERGE)
    hours_later(stripe, 2)
    stripe.delete("customers", "cus_00000000000011")
    stripe.update("customers", "cus_00000000000012", email="moved@example.com")
    hours_later(stripe, 1)
    result = run_ingest(source(stripe, object="customers"), catalog, "raw.customers", MERGE)
    assert result.rows_written == 2
    rows = {r["id"]: r for r in table_rows(catalog, "raw.customers")}
    assert len(rows) == 40
    assert rows["cus_00000000000011"]["deleted"] is True and rows["cus_00000000000012"]["deleted"] is None
    assert rows["cus_00000000000012"]["email"] == "moved@example.com"


def test_a_gap_beyond_stripes_30_days_fails_commits_nothing_and_a_full_refresh_recovers(stripe, catalog):
    loaded = run_ingest(source(stripe, object="customers"), catalog, "raw.customers", MERGE)
    stripe.delete("customers", "cus_00000000000005")
    hours_later(stripe, 24 * 31)
    table = catalog.load().load_table("raw.customers")
    before = table.current_snapshot().snapshot_id
    with pytest.raises(SourceError, match="Stripe keeps events for 30 days only") as caught:
        run_ingest(source(stripe, object="customers"), catalog, "raw.customers", MERGE)
    assert f"changes up to {loaded.watermark_after}" in str(caught.value)
    assert catalog.load().load_table("raw.customers").current_snapshot().snapshot_id == before

    replace = WriteOptions(mode="replace")
    refreshed = run_ingest(source(stripe, object="customers", full_refresh=True), catalog, "raw.customers", replace)
    rows = {r["id"] for r in table_rows(catalog, "raw.customers")}
    assert refreshed.rows_written == 39 and len(rows) == 39 and "cus_00000000000005" not in rows
    hours_later(stripe, 1)
    after = run_ingest(source(stripe, object="customers"), catalog, "raw.customers", MERGE)
    assert after.source_details["read"] == "events" and after.rows_written == 0


def test_the_events_mode_refuses_an_append(stripe, catalog):
    with pytest.raises(ConfigError, match="use mode 'merge'"):
        run_ingest(source(stripe), catalog, "raw.charges")
