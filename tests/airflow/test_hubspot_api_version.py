"""The ``dativo_hubspot`` connection's ``api_version`` extra pins HubSpot's date-based API version."""

from __future__ import annotations

from dativo_provider.connections import HubSpotConfig
from dativo_provider.get_provider_info import HUBSPOT_CONN_FIELDS
from dativo_provider.hooks.hubspot import HubSpotHook
from tests.doubles.hubspot_api import TOKEN, HubSpotDouble


def test_the_api_version_extra_reaches_the_config_and_the_connection_test(connect):
    with HubSpotDouble() as api:
        connect("crm", conn_type="dativo_hubspot", password=TOKEN,
                extra={"base_url": api.url, "api_version": "2026-09"})
        assert HubSpotHook("crm").get_conn() == HubSpotConfig(access_token=TOKEN, base_url=api.url, conn_id="crm",
                                                              api_version="2026-09")
        assert HubSpotHook("crm").test_connection() == (True, "HubSpot portal 62515 answered (private-app token)")
        assert [r.path for r in api.requests] == ["/account-info/2026-09/details"]
    assert HUBSPOT_CONN_FIELDS["api_version"]["label"] == "API version"
