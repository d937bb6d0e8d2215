"""HubSpot ``number`` properties: exact in decimal(38, 18), refused when they cannot be (never rounded
or wrapped by Arrow's cast), or kept as exact text by option. Runs go through ``run_ingest`` into an
embedded Iceberg catalog, so "nothing written" is checked on the table itself."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyiceberg.exceptions import NoSuchTableError

from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources.hubspot import HubSpotSource, parse_spec
from tests.doubles.hubspot_api import T0_MS, TOKEN, HubSpotDouble, definition

MERGE = WriteOptions(mode="merge", merge_keys=("id",))
TWENTY_FIVE_DIGITS = "1234567890123456789012345"


@pytest.fixture
def api():
    with HubSpotDouble() as double:
        double.define("deals", [definition("dealname"), definition("amount", "number", "number"),
                                definition("hs_tcv", "number", "number")])
        double.now = datetime(2024, 2, 1, tzinfo=UTC)
        for n in range(1, 4):
            double.put("deals", n, {"dealname": f"Deal {n}", "amount": f"{n}.5", "hs_tcv": "7"},
                       created=T0_MS + n * 60_000)
        yield double


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def source(api, **spec) -> HubSpotSource:
    config = HubSpotConfig(access_token=TOKEN, base_url=api.url, conn_id="hubspot_test")
    properties = ["dealname", "amount", "hs_tcv"]
    return HubSpotSource(parse_spec({"object": "deals", "properties": properties, **spec}), config)


def table_rows(catalog) -> dict[str, dict]:
    return {r["id"]: r for r in catalog.load().load_table("raw.deals").scan().to_arrow().to_pylist()}


def test_25_integer_digits_are_refused_naming_the_property_and_nothing_is_created(api, catalog):
    api.update("deals", 2, T0_MS + 10 * 60_000, amount=TWENTY_FIVE_DIGITS)
    with pytest.raises(SourceError) as caught:
        run_ingest(source(api), catalog, "raw.deals", MERGE)
    message = str(caught.value)
    assert "HubSpot deals: property 'amount' of record 2" in message
    assert "cannot hold exactly" in message and '"numbers": "string"' in message
    with pytest.raises(NoSuchTableError):
        catalog.load().load_table("raw.deals")


def test_a_refused_number_leaves_an_existing_table_unchanged(api, catalog):
    assert run_ingest(source(api), catalog, "raw.deals", MERGE).rows_written == 3
    snapshots = len(catalog.load().load_table("raw.deals").snapshots())
    api.now = datetime(2024, 3, 1, tzinfo=UTC)
    api.update("deals", 3, T0_MS + 40 * 24 * 3_600_000, hs_tcv="1.12345678901234567891")  # 20 decimals
    with pytest.raises(SourceError, match="property 'hs_tcv' of record 3 is 1.12345678901234567891"):
        run_ingest(source(api), catalog, "raw.deals", MERGE)
    assert len(catalog.load().load_table("raw.deals").snapshots()) == snapshots
    assert table_rows(catalog)["3"]["hs_tcv"] == Decimal(7)


def test_the_numbers_option_keeps_every_number_as_exact_text(api, catalog):
    api.update("deals", 2, T0_MS + 10 * 60_000, amount=TWENTY_FIVE_DIGITS, hs_tcv="0.12345678901234567891")
    run_ingest(source(api, numbers="string"), catalog, "raw.deals", MERGE)
    rows = table_rows(catalog)
    assert rows["2"]["amount"] == TWENTY_FIVE_DIGITS and rows["2"]["hs_tcv"] == "0.12345678901234567891"
    assert rows["1"]["amount"] == "1.5"


def test_string_properties_keeps_one_number_as_text_and_the_others_decimal(api, catalog):
    api.update("deals", 2, T0_MS + 10 * 60_000, amount=TWENTY_FIVE_DIGITS)
    run_ingest(source(api, string_properties=["amount"]), catalog, "raw.deals", MERGE)
    rows = table_rows(catalog)
    assert rows["2"]["amount"] == TWENTY_FIVE_DIGITS and rows["2"]["hs_tcv"] == Decimal(7)


@pytest.mark.parametrize("text, expected", [
    ("99999999999999999999.999999999999999999", Decimal("99999999999999999999.999999999999999999")),
    ("-0.000000000000000001", Decimal("-0.000000000000000001")),
    ("2.50000000000000000000", Decimal("2.5")),  # 20 decimals, but trailing zeros: held exactly
    ("1e5", Decimal(100000)),
])
def test_numbers_at_the_limits_of_decimal_38_18_land_exactly(api, catalog, text, expected):
    api.update("deals", 1, T0_MS + 10 * 60_000, amount=text)
    run_ingest(source(api), catalog, "raw.deals", MERGE)
    assert table_rows(catalog)["1"]["amount"] == expected


@pytest.mark.parametrize("text", ["100000000000000000000", "1e20", "NaN", "Infinity", "1e-19"])
def test_numbers_just_past_the_limits_are_refused(api, catalog, text):
    api.update("deals", 1, T0_MS + 10 * 60_000, amount=text)
    with pytest.raises(SourceError, match="property 'amount' of record 1"):
        run_ingest(source(api), catalog, "raw.deals", MERGE)


def test_the_numbers_option_is_checked():
    with pytest.raises(ConfigError, match="'numbers' must be one of"):
        parse_spec({"object": "deals", "numbers": "float"})
