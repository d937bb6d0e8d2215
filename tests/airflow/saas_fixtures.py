"""Fixtures for the Stripe and HubSpot example DAGs: loopback doubles seeded with January 2024 data,
and ``stripe_default`` / ``hubspot_default`` connections (``AIRFLOW_CONN_*``) whose ``base_url``
extra points at them. Times avoid 00:00-12:00 on run days: a run's data interval ends at midnight
on Airflow 2 and at noon on Airflow 3, and every record must fall on the same side of both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.airflow.conftest import connection_env
from tests.doubles.hubspot_api import HubSpotDouble, definition
from tests.doubles.stripe_api import StripeDouble, charge, customer

STRIPE_KEY = "sk_test_51DativoAirflowKey000000000000k3y9"
HUBSPOT_TOKEN = "pat-na1-a1rf10w0-dati-vo00-0000-000000secret"
#: The doubles' clock: well after every run's data interval, so only the interval bounds a run.
DOUBLE_NOW = datetime(2024, 1, 10, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def stripe_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeDouble]:
    """Charges 1-3 on Jan 1, 4 on Jan 2 evening, 5 on Jan 3 evening; two customers on Jan 1."""
    with StripeDouble(api_key=STRIPE_KEY) as api:
        created = [at(1, 14), at(1, 15), at(1, 16), at(2, 18), at(3, 18)]
        api.add("charges", [charge(n, unix(moment), customer_n=n % 2) for n, moment in enumerate(created, 1)])
        api.add("customers", [customer(0, unix(at(1, 13))), customer(1, unix(at(1, 13, 30)))])
        api.now = DOUBLE_NOW
        monkeypatch.setenv(*connection_env("stripe_default", conn_type="dativo_stripe", password=STRIPE_KEY,
                                           extra={"base_url": api.url}))
        yield api


@pytest.fixture
def hubspot_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotDouble]:
    """Deals 1-3 modified on Jan 1 (deal 1 linked to two companies), two contacts on Jan 1."""
    with HubSpotDouble(token=HUBSPOT_TOKEN) as api:
        api.define("deals", [definition("dealname"), definition("amount", "number", "number"),
                             definition("dealstage", "enumeration", "select")])
        api.define("contacts", [definition("email"), definition("firstname"), definition("lastname")])
        api.define("companies", [definition("name")])
        for n in (1, 2, 3):
            api.put("deals", n, {"dealname": f"Deal {n}", "amount": f"{n}00.50", "dealstage": "appointmentscheduled"},
                    created=millis(at(1, 13 + n)))
        for n, name in ((1, "Ada"), (2, "Grace")):
            api.put("contacts", n, {"email": f"{name.lower()}@example.com", "firstname": name, "lastname": "X"},
                    created=millis(at(1, 20)))
        api.link("deals", "companies", 1, [101, 102])
        api.now = DOUBLE_NOW
        monkeypatch.setenv(*connection_env("hubspot_default", conn_type="dativo_hubspot", password=HUBSPOT_TOKEN,
                                           extra={"base_url": api.url}))
        yield api
