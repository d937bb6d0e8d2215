"""Point-in-time window features as DuckDB SQL: each row's features as of that row's own timestamp.

``trailing_window_sql("orders", partition_by=["customer_id"], order_by="ordered_at", window="30 days",
features={"orders_30d": "count(*)", "amount_30d": "sum(amount)"})`` adds to every order the customer's
orders in the 30 days before it: at or after ``ordered_at - 30 days`` and strictly before
``ordered_at`` (rows at the very same instant are not "before", so a row never sees itself or its
peers). That is a window over the table's own rows with a ``RANGE`` frame on the time column, which
DuckDB evaluates in one sorted pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta

from dativo_provider.exceptions import ConfigError
from dativo_provider.quality.rows import quote_identifier

_INTERVAL = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)


def interval_sql(window: str | timedelta) -> str:
    """A SQL interval literal from ``"30 days"``, ``"12 hours"`` or a ``timedelta``."""
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            raise ConfigError(f"window {window} must be positive")
        return f"INTERVAL '{int(window.total_seconds() * 1_000_000)} microseconds'"
    match = _INTERVAL.match(str(window))
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"window {window!r} must be a positive count and unit, e.g. '30 days' or "
                          "'12 hours'")
    return f"INTERVAL '{match.group(1)} {match.group(2).lower()}s'"


def trailing_window_sql(
    relation: str,
    *,
    partition_by: Sequence[str],
    order_by: str,
    window: str | timedelta,
    features: Mapping[str, str],
    include_current: bool = False,
) -> str:
    """SQL selecting every row of ``relation`` plus ``features`` computed over the trailing window.

    :param relation: the table (or input name) to read.
    :param partition_by: the entity key columns, e.g. ``["customer_id"]``.
    :param order_by: the timestamp each row's features are computed as of.
    :param window: how far back the window reaches, e.g. ``"30 days"``.
    :param features: output column → aggregate expression, e.g. ``{"orders_30d": "count(*)"}``.
        Over an empty window ``count`` gives 0 and other aggregates NULL.
    :param include_current: also count the rows at the row's own timestamp (the row itself included);
        by default only strictly earlier rows count, so a label at that instant cannot leak into them.
    """
    if not features:
        raise ConfigError("trailing_window_sql needs at least one feature, e.g. {'orders_30d': 'count(*)'}")
    if not partition_by:
        raise ConfigError("trailing_window_sql needs partition_by: the entity key columns")
    partition = ", ".join(quote_identifier(c, "duckdb") for c in partition_by)
    columns = ",\n       ".join(f"{expression} OVER feature_window AS {quote_identifier(name, 'duckdb')}"
                                for name, expression in features.items())
    exclude = "" if include_current else " EXCLUDE GROUP"
    return (
        f"SELECT *,\n       {columns}\n"
        f"FROM {quote_identifier(relation, 'duckdb')}\n"
        f"WINDOW feature_window AS (PARTITION BY {partition} "
        f"ORDER BY {quote_identifier(order_by, 'duckdb')}\n"
        f"    RANGE BETWEEN {interval_sql(window)} PRECEDING AND CURRENT ROW{exclude})"
    )
