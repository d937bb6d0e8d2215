"""Generate the demo data bundled in ``dativo_provider/sample_data/`` (deterministic, < 1 MB).

A small shop: customers (CSV, with personal data for the data-subject-request demos), three months
of orders (one CSV per month, for incremental file loads), clickstream events (JSON Lines) and a
product catalogue (Parquet). The same seed always writes the same rows; the Parquet bytes also
depend on the pyarrow version (its writer stamps itself into the file).

Usage: ``python dev/make_sample_data.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import unicodedata
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20241128
CUSTOMERS = 1_000
PRODUCTS = 120
ORDERS_PER_MONTH = 700
EVENTS = 1_500
MONTHS = ((2024, 1), (2024, 2), (2024, 3))
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "dativo_provider" / "sample_data"

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Aiko", "Björn", "Camille", "Carlos", "Chen", "Chloé", "Daniel",
    "Dmitri", "Elena", "Emma", "Fatima", "Finn", "Grace", "Hana", "Hugo", "Ingrid", "Isabel", "James",
    "Jana", "Javier", "Jonas", "Kenji", "Lars", "Layla", "Lena", "Liam", "Lucía", "Marco", "Maria",
    "Mateo", "Mei", "Mia", "Noah", "Nora", "Olga", "Omar", "Priya", "Rafael", "Ravi", "Sara", "Sofia",
    "Søren", "Tomás", "Yara", "Yusuf", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Andersen", "Bauer", "Becker", "Brown", "Chen", "Costa da Silva", "Dubois", "Fischer", "García",
    "González", "Hansen", "Ito", "Jansen", "Kowalski", "Kumar", "Larsen", "Lee", "Martin", "Meyer",
    "Moreau", "Müller", "Nakamura", "Nguyen", "Novák", "O'Brien", "Patel", "Rossi", "Santos", "Schmidt",
    "Smith", "Suzuki", "Tanaka", "Taylor", "van Dijk", "Wagner", "Weber", "Williams", "Wójcik", "Yılmaz",
)  # fmt: skip
#: country -> currency its customers pay in
COUNTRIES = {
    "US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "ES": "EUR", "IT": "EUR",
    "SE": "SEK", "PL": "PLN", "BR": "BRL", "IN": "INR", "JP": "JPY", "CA": "CAD", "AU": "AUD",
}  # fmt: skip
CATEGORIES = {
    "coffee": ("Espresso Beans", "Filter Roast", "Decaf Blend", "Single Origin"),
    "equipment": ("Grinder", "Pour-Over Kit", "Milk Jug", "Scale", "Kettle"),
    "tea": ("Sencha", "Earl Grey", "Rooibos", "Chai"),
    "merch": ("Mug", "Tote Bag", "T-Shirt"),
}
ORDER_STATUS = (("paid", 60), ("shipped", 25), ("refunded", 5), ("cancelled", 4), ("placed", 6))
EVENT_TYPES = (("page_view", 60), ("add_to_cart", 15), ("checkout", 6), ("login", 12), ("logout", 7))
PAGES = ("/", "/shop", "/shop/coffee", "/shop/equipment", "/shop/tea", "/cart", "/account", "/help")
DEVICES = ("web", "ios", "android")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    """ISO-8601 with a ``Z``, the way most exporting systems write UTC."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def ascii_fold(text: str) -> str:
    """``søren.müller`` -> ``soren.muller``: names keep their letters, email addresses stay ASCII."""
    text = text.translate(str.maketrans({"ø": "o", "ł": "l", "ı": "i", "ß": "ss"}))
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def between(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    return start + dt.timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in weighted], weights=[weight for _, weight in weighted])[0]


def make_customers(rng: random.Random) -> list[dict]:
    customers = []
    for number in range(1, CUSTOMERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = ascii_fold(f"{first}.{last}".lower().replace(" ", "").replace("'", ""))
        customers.append(
            {
                "customer_id": number,
                "email": f"{local}{number}@example.{rng.choice(('com', 'org', 'net'))}",
                "first_name": first,
                "last_name": last,
                "country": rng.choice(list(COUNTRIES)),
                "signup_at": iso(between(rng, utc(2022, 1, 1), utc(2024, 1, 1))),
                "is_active": "true" if rng.random() > 0.08 else "false",
                "marketing_opt_in": "true" if rng.random() > 0.55 else "false",
                # Some customers never said: an empty field is null.
                "birth_year": rng.randint(1950, 2005) if rng.random() > 0.2 else "",
            }
        )
    return customers


def make_products(rng: random.Random) -> pa.Table:
    rows = []
    for number in range(1, PRODUCTS + 1):
        category = rng.choice(list(CATEGORIES))
        name = f"{rng.choice(CATEGORIES[category])} {rng.choice(('Classic', 'Pro', 'Mini', 'Deluxe', 'Eco'))}"
        rows.append(
            {
                "product_id": number,
                "sku": f"{category[:3].upper()}-{number:04d}",
                "name": name,
                "category": category,
                "price": Decimal(rng.randrange(299, 24_999)) / 100,
                "launched_on": dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(1_000)),
                "active": rng.random() > 0.1,
            }
        )
    schema = pa.schema(
        [
            ("product_id", pa.int64()),
            ("sku", pa.string()),
            ("name", pa.string()),
            ("category", pa.string()),
            ("price", pa.decimal128(10, 2)),
            ("launched_on", pa.date32()),
            ("active", pa.bool_()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def make_orders(
    rng: random.Random, customers: list[dict], products: pa.Table, year: int, month: int
) -> list[dict]:
    start = utc(year, month, 1)
    end = utc(year + month // 12, month % 12 + 1, 1)
    prices = products.column("price").to_pylist()
    orders = []
    for _ in range(ORDERS_PER_MONTH):
        customer = rng.choice(customers)
        product = rng.randrange(PRODUCTS)
        quantity = rng.choice((1, 1, 1, 2, 2, 3, 5))
        orders.append(
            {
                "ordered_at": between(rng, start, end),
                "customer_id": customer["customer_id"],
                "product_id": product + 1,
                "quantity": quantity,
                "amount": f"{prices[product] * quantity:.2f}",
                "currency": COUNTRIES[customer["country"]],
                "status": pick(rng, ORDER_STATUS),
            }
        )
    orders.sort(key=lambda order: order["ordered_at"])
    first_id = (year * 100 + month) * 10_000
    return [
        {"order_id": first_id + i, **order, "ordered_at": iso(order["ordered_at"])}
        for i, order in enumerate(orders, start=1)
    ]


def make_events(rng: random.Random, customers: list[dict]) -> list[dict]:
    events = []
    for _ in range(EVENTS):
        signed_in = rng.random() > 0.3
        moment = between(rng, utc(*MONTHS[0], 1), utc(2024, 4, 1)) + dt.timedelta(
            milliseconds=rng.randrange(1000)
        )
        events.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                # Anonymous visitors have no customer id.
                "customer_id": rng.choice(customers)["customer_id"] if signed_in else None,
                "event_type": pick(rng, EVENT_TYPES) if signed_in else "page_view",
                "occurred_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "page": rng.choice(PAGES),
                "device": rng.choice(DEVICES),
                "session_id": f"s-{rng.getrandbits(48):012x}",
            }
        )
    return sorted(events, key=lambda event: event["occurred_at"])


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(out: Path) -> None:
    rng = random.Random(SEED)
    out.mkdir(parents=True, exist_ok=True)
    customers = make_customers(rng)
    products = make_products(rng)
    write_csv(out / "customers.csv", customers)
    pq.write_table(products, out / "products.parquet", compression="zstd")
    for year, month in MONTHS:
        write_csv(out / f"orders_{year}-{month:02d}.csv", make_orders(rng, customers, products, year, month))
    write_jsonl(out / "events.jsonl", make_events(rng, customers))
    total = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default: the package)")
    main(parser.parse_args().out)
