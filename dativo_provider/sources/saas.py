"""What the SaaS API sources share: spec checks, time bounds, and a stream of JSON records in batches.

A SaaS stream reads records page by page, converts them to Arrow in batches of ``batch_rows``
(:mod:`dativo_provider.sources.records`), and reports its new state only once every page was read:
a failure in the middle of paging raises, the engine commits nothing, and the next run starts from
the state the last successful run committed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

import pyarrow as pa

from dativo_provider.exceptions import ConfigError
from dativo_provider.sources.base import WATERMARK_KEY, SourceReport, SourceStream, committed_watermark
from dativo_provider.sources.http import RetryPolicy
from dativo_provider.sources.records import Column, arrow_schema, to_batch
from dativo_provider.sources.sql_common import parse_lookback, to_datetime

DEFAULT_BATCH_ROWS = 5_000
RETRY_KEYS = frozenset({"max_attempts", "base_delay", "max_delay", "max_total_wait", "jitter"})

# --- spec values --------------------------------------------------------------------------------


def check_keys(spec: Mapping[str, Any], allowed: frozenset[str], kind: str) -> None:
    """Refuse keys the source does not know, naming them and the allowed ones."""
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{kind} source: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def duration(value: Any, where: str) -> timedelta | None:
    """``"2h"``, ``"90s"``, ``"1h30m"``, a timedelta, or a number of seconds; None stays None."""
    parsed = parse_lookback(value, where)
    if isinstance(parsed, Decimal):
        return timedelta(seconds=float(parsed))
    return parsed


def utc_moment(value: Any, where: str) -> datetime | None:
    """A datetime, date, ISO-8601 text or unix seconds as an aware UTC datetime (naive = UTC)."""
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        moment = to_datetime(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where} {value!r} is not a time: {exc}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """The canonical text of a watermark: ISO-8601 in UTC with milliseconds, e.g. ``...T12:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def positive_int(spec: Mapping[str, Any], key: str, default: int, maximum: int, kind: str) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{kind} source: {key!r} must be an integer from 1 to {maximum}, got {value!r}")
    return value


def retry_policy(value: Any, kind: str) -> RetryPolicy:
    """``{"max_attempts": 5, "max_total_wait": 120, ...}`` as a :class:`RetryPolicy`."""
    if value is None:
        return RetryPolicy()
    if not isinstance(value, Mapping) or set(value) - RETRY_KEYS:
        raise ConfigError(f"{kind} source: 'retry' must be a mapping with keys from {sorted(RETRY_KEYS)}")
    return RetryPolicy(**value)


def name_list(value: Any, key: str, kind: str) -> tuple[str, ...] | None:
    """A list of names (or None); a single string is refused to catch ``"a,b"`` typos."""
    if value is None:
        return None
    names = isinstance(value, Sequence) and not isinstance(value, str)
    if not names or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{kind} source: {key!r} must be a list of names, got {value!r}")
    return tuple(value)


# --- the stream ---------------------------------------------------------------------------------


class ApiClient(Protocol):
    """What a stream needs of its API client: a request count and a way to close it."""

    @property
    def requests_sent(self) -> int: ...

    def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=ApiClient)


class RecordStream(SourceStream, Generic[ClientT]):
    """Batches of converted records; the new state only after the last page.

    :param client: the open HTTP client (closed with the stream).
    :param columns: the declared columns.
    :param where: what is read, for error messages (``"Stripe charges"``).
    :param previous: the committed state, returned unchanged when nothing new was read.
    :param batch_rows: records per Arrow batch.
    :param details: facts for the run summary.
    """

    def __init__(
        self, client: ClientT, columns: Sequence[Column], where: str, previous: Mapping[str, Any] | None,
        batch_rows: int, details: dict[str, Any],
    ) -> None:
        self.client = client
        self.columns = list(columns)
        self.where = where
        self.previous = dict(previous) if previous else None
        self.batch_rows = batch_rows
        self.report = SourceReport(details={**details, "rows": 0, "pages": 0})
        self._schema = arrow_schema(self.columns)
        self._exhausted = False

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    @abstractmethod
    def records(self) -> Iterator[Mapping[str, Any]]:
        """Every record to write, in order, each once."""

    @abstractmethod
    def new_state(self) -> dict[str, Any] | None:
        """The state after every record was read (called only then)."""

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        buffer: list[Mapping[str, Any]] = []
        for record in self.records():
            buffer.append(record)
            if len(buffer) >= self.batch_rows:
                yield self._batch(buffer)
                buffer = []
        if buffer:
            yield self._batch(buffer)
        self.report.details["requests"] = self.client.requests_sent
        self._exhausted = True

    def _batch(self, records: list[Mapping[str, Any]]) -> pa.RecordBatch:
        self.report.details["rows"] += len(records)
        return to_batch(records, self.columns, self._schema, self.where)

    def state(self) -> dict[str, Any] | None:
        return self.new_state() if self._exhausted else self.previous

    def close(self) -> None:
        self.client.close()


def previous_watermark(state: Mapping[str, Any] | None, cursor: str, where: str) -> datetime | None:
    """The committed watermark as a UTC datetime (see ``base.committed_watermark``)."""
    watermark = committed_watermark(state, cursor, where)
    return None if watermark is None else utc_moment(watermark, f"{where}: stored watermark")
