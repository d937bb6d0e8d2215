"""An OpenMetadata double with the team, user, domain and glossary terms the contracts name, and a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyiceberg import types as it
from pyiceberg.schema import Schema

from dativo_provider.lineage.openmetadata_client import OpenMetadataClient, OpenMetadataConfig
from tests.doubles.openmetadata import OpenMetadataDouble

#: A bot token shaped like OpenMetadata's (RS256 JWT); the payload scans look for it.
JWT = (
    "eyJraWQiOiJHYjM4OWEtOWY3Ni1nZGpzLWE5MmotMDI0MmJrOTQzNTYiLCJhbGciOiJSUzI1NiJ9."
    "eyJzdWIiOiJpbmdlc3Rpb24tYm90IiwiaXNCb3QiOnRydWV9.c2lnbmVkLWJ5LXRoZS1kYXRpdm8tdGVzdHM"
)


@pytest.fixture
def om() -> Iterator[OpenMetadataDouble]:
    with OpenMetadataDouble(token=JWT) as double:
        double.add_team("customer-data")
        double.add_team("growth")
        double.add_user("ada")
        double.add_domain("sales")
        double.add_glossary_term("Business.customer")
        double.add_glossary_term("Business.orders")
        yield double


@pytest.fixture
def client(om: OpenMetadataDouble) -> OpenMetadataClient:
    return OpenMetadataClient(
        OpenMetadataConfig(om.url, JWT, max_workers=4, backoff_seconds=0.01), sleep=lambda _: None
    )


def wide_schema(columns: int) -> Schema:
    """``id`` plus ``columns - 1`` columns cycling through every kind of Iceberg type we map."""
    kinds = [
        lambda n: it.StringType(),
        lambda n: it.DecimalType(18, 4),
        lambda n: it.TimestamptzType(),
        lambda n: it.BooleanType(),
        lambda n: it.FixedType(16),
        lambda n: it.DateType(),
        lambda n: it.ListType(1000 + n, it.StringType()),
        lambda n: it.DoubleType(),
        lambda n: it.StructType(
            it.NestedField(2000 + n, "city", it.StringType()),
            it.NestedField(3000 + n, "Zip", it.IntegerType()),
        ),
    ]
    fields = [it.NestedField(1, "id", it.LongType(), required=True)]
    fields += [it.NestedField(n, f"c{n:02d}", kinds[n % len(kinds)](n)) for n in range(2, columns + 1)]
    return Schema(*fields)
