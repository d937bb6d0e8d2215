"""The portal in the HubSpot source identity: two portals writing one table keep their own
watermarks, and a table loaded when the identity had no portal continues from its watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dativo_provider.connections import HubSpotConfig
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.hubspot import HubSpotSource, parse_spec
from tests.doubles.hubspot_api import T0_MS, TOKEN, HubSpotDouble, definition

MERGE = WriteOptions(mode="merge", merge_keys=("id",))
MINUTE_MS = 60_000
OTHER_TOKEN = "pat-eu1-99999999-0000-0000-0000-000000000001"


def portal(token: str, portal_id: int, deals: range) -> HubSpotDouble:
    double = HubSpotDouble(token=token)
    double.portal_id = portal_id
    double.define("deals", [definition("dealname")])
    double.now = datetime(2024, 2, 1, tzinfo=UTC)
    for n in deals:
        double.put("deals", n, {"dealname": f"Deal {n}"}, created=T0_MS + n * MINUTE_MS)
    return double


@pytest.fixture
def api():
    with portal(TOKEN, 62515, range(1, 41)) as double:
        yield double


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def source(api, token: str = TOKEN) -> HubSpotSource:
    config = HubSpotConfig(access_token=token, base_url=api.url, conn_id="hubspot_test")
    return HubSpotSource(parse_spec({"object": "deals", "properties": ["dealname"]}), config)


class _BeforeThePortal(HubSpotSource):
    """The identity HubSpot sources had before the portal was part of it."""

    @property
    def identity(self) -> str:
        return "hubspot://crm/deals"


def test_the_identity_names_the_portal_asked_once(api):
    src = source(api)
    assert src.identity == "hubspot://62515/crm/deals" == src.identity
    assert src.former_identities == ("hubspot://crm/deals",)
    assert len(api.requests_to("/account-info/2026-03/details")) == 1


def test_two_portals_writing_one_table_keep_their_own_watermarks(api, catalog):
    first = run_ingest(source(api), catalog, "raw.deals", MERGE)
    assert first.source == "hubspot://62515/crm/deals" and first.rows_written == 40
    # The second portal's deals were all modified before the first portal's watermark.
    with portal(OTHER_TOKEN, 7_700_001, range(1_001, 1_011)) as other:
        second = run_ingest(source(other, OTHER_TOKEN), catalog, "raw.deals", MERGE)
    assert second.source == "hubspot://7700001/crm/deals"
    assert second.watermark_before is None and second.rows_written == 10
    assert catalog.load().load_table("raw.deals").scan().to_arrow().num_rows == 50


def test_a_table_loaded_before_the_portal_continues_from_its_watermark(api, catalog):
    config = HubSpotConfig(access_token=TOKEN, base_url=api.url, conn_id="hubspot_test")
    loaded = run_ingest(_BeforeThePortal(parse_spec({"object": "deals", "properties": ["dealname"]}), config),
                        catalog, "raw.deals", MERGE)
    assert loaded.source == "hubspot://crm/deals" and loaded.rows_written == 40

    api.now += timedelta(hours=1)
    modified = int(api.now.timestamp() * 1000) - 30 * MINUTE_MS
    api.update("deals", 7, modified, dealname="Renamed")
    moved = run_ingest(source(api), catalog, "raw.deals", MERGE)
    assert moved.watermark_before == loaded.watermark_after and moved.rows_written == 1
    assert moved.source == "hubspot://62515/crm/deals"

    again = run_ingest(source(api), catalog, "raw.deals", MERGE)
    assert again.watermark_before == moved.watermark_after and again.rows_written == 0
    rows = catalog.load().load_table("raw.deals").scan().to_arrow().to_pylist()
    assert len(rows) == 40 and {r["id"]: r["dealname"] for r in rows}["7"] == "Renamed"
