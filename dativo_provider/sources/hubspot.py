"""HubSpot source: one CRM object type (contacts, companies, deals, tickets, custom objects) into Arrow.

Spec::

    {"type": "hubspot", "conn_id": "hubspot_default", "object": "deals",
     "properties": ["dealname", "amount"], "associations": ["companies"], "archived": true,
     "lookback": "1h", "start": "2024-01-01"}

**Objects.** ``contacts``, ``companies``, ``deals``, ``tickets``, and custom objects by name
(``p_<name>``) or objectTypeId (``2-123456``). Every property by default (``GET
/crm/properties/{v}/{object}``), or the ``properties`` listed.

**API version.** Every path carries HubSpot's date-based version ``{v}``: the connection's
``api_version`` extra, or ``2026-03`` (see :mod:`~dativo_provider.sources.hubspot_api` for the
paths). It is part of the run details and of the committed state.

**Column rule.** Fixed columns ``id`` (string), ``created_at``, ``updated_at`` (timestamp[us, UTC]),
``archived`` (bool), ``archived_at``; then one column per property, typed by the property's
definition: ``number`` → decimal128(38, 18), ``datetime`` → timestamp[us, UTC], ``date`` → date32,
``bool`` (and ``booleancheckbox`` fields) → bool, everything else (text, enumerations, multi-selects
as HubSpot's ``;``-separated text, phone numbers) → string. ``string_properties`` keeps chosen
properties as text; ``"numbers": "string"`` keeps every ``number`` property as its exact text. A number
that decimal128(38, 18) cannot hold exactly (more than 20 integer digits or 18 decimals) fails the run
naming the object type, property and record id before anything is written: it is never rounded or
wrapped. A property whose name collides with a fixed column is called
``property_<name>``. Each association asked for becomes ``associations_<to>``: list<string> of ids.

**Incremental** (default): the search API, filtered on the last-modified property
(``lastmodifieddate`` for contacts, ``hs_lastmodifieddate`` otherwise) with ``GTE`` lower / ``LT``
upper time windows sorted ascending. The search API answers at most 10,000 results per query, so a
window with more is split in half until each fits; more than 10,000 records modified in the same
millisecond are read by ``hs_object_id`` keyset paging. A window is read whole (≤ 10,000 records)
and checked against the ``total`` HubSpot reported; if records moved while it was paged, it is
read again. The run's upper limit is HubSpot's own clock (``Date`` header) minus ``settle``
(default 1 minute, for the search index to catch up), or the upper bound if earlier; it becomes the
new watermark once everything was read, and the next run starts there. Updated records come back
with the same ``id``: write with ``merge`` on ``id`` (the engine insists).

**Identity.** ``hubspot://<portal id>/crm/<object>``: two tokens of different portals writing one
table keep separate watermarks. The portal comes from ``GET /account-info/{v}/details`` (once per
source). Tables loaded when the identity was ``hubspot://crm/<object>`` continue from that watermark
(``former_identities``) until the first commit under the new identity.

**Full reads** (``"incremental": false``): the list endpoint, paged with ``after``. A property list
too long for the URL is read by batch read; a listed record HubSpot no longer has when it is read
(deleted or archived in between) is named in the run details (``not_found_ids``), never dropped
silently.

**Archived records** (``"archived": true``): the recycle bin (``archived=true`` listing) is read as
well, with ``archived`` true; incrementally only those archived inside the run's window.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from decimal import Decimal, InvalidOperation, localcontext
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError, SourceError, TransientError
from dativo_provider.sources.base import CURSOR_KEY, WATERMARK_KEY, LineageDataset, ReadBounds, Source
from dativo_provider.sources.http import Clock, RetryPolicy
from dativo_provider.sources.hubspot_api import (
    SEARCH_CAP,
    SEARCH_PAGE,
    SEARCH_RATE,
    HubSpotApi,
    api_version_of,
)
from dativo_provider.sources.records import Column
from dativo_provider.sources.saas import (
    DEFAULT_BATCH_ROWS,
    RecordStream,
    check_keys,
    duration,
    iso,
    name_list,
    positive_int,
    previous_watermark,
    retry_policy,
    utc_moment,
)

SPEC_KEYS = frozenset({
    "type", "conn_id", "object", "properties", "associations", "incremental", "archived", "lookback",
    "settle", "start", "cursor_property", "string_properties", "numbers", "batch_rows", "retry",
    "search_rate",
})
NUMBER_MODES = ("decimal", "string")
#: decimal128(38, 18): 20 digits before the point, 18 after.
_DECIMAL_LIMIT = Decimal(10) ** 20
_DECIMAL_STEP = Decimal(1).scaleb(-18)
DEFAULT_SETTLE = timedelta(minutes=1)
FIXED = ("id", "created_at", "updated_at", "archived", "archived_at")
#: Longer property lists are fetched with batch reads (POST) rather than in the list request's URL.
MAX_URL_PROPERTIES_CHARS = 2_000
#: Times a window is read again when its records kept moving while it was paged.
MAX_REREADS = 3
_OBJECT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*|\d+-\d+")
_KINDS = {"number": "decimal", "datetime": "iso", "date": "date", "bool": "bool_text"}
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubSpotSpec:
    """A validated HubSpot source spec (see the module docstring)."""

    object: str
    properties: tuple[str, ...] | None = None
    associations: tuple[str, ...] = ()
    incremental: bool = True
    archived: bool = False
    lookback: timedelta | None = None
    settle: timedelta = DEFAULT_SETTLE
    start: datetime | None = None
    cursor_property: str | None = None
    string_properties: tuple[str, ...] = ()
    numbers: str = "decimal"
    batch_rows: int = DEFAULT_BATCH_ROWS
    retry: RetryPolicy = RetryPolicy()
    search_rate: float = SEARCH_RATE

    @property
    def cursor(self) -> str:
        """The last-modified property searched on."""
        default = "lastmodifieddate" if self.object == "contacts" else "hs_lastmodifieddate"
        return self.cursor_property or default


def parse_spec(spec: Mapping[str, Any]) -> HubSpotSpec:
    """Validate a spec; every error names the key."""
    check_keys(spec, SPEC_KEYS, "hubspot")
    name = spec.get("object")
    if not isinstance(name, str) or not _OBJECT_TYPE.fullmatch(name):
        raise ConfigError(
            "hubspot source: 'object' must be an object type such as 'contacts', 'p_orders' or "
            f"'2-123456', got {name!r}"
        )
    flags = {key: spec.get(key, default) for key, default in (("incremental", True), ("archived", False))}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"hubspot source: {key!r} must be true or false, got {value!r}")
    numbers = spec.get("numbers", "decimal")
    if numbers not in NUMBER_MODES:
        raise ConfigError(f"hubspot source: 'numbers' must be one of {list(NUMBER_MODES)}, got {numbers!r}")
    search_rate = spec.get("search_rate", SEARCH_RATE)
    is_number = isinstance(search_rate, (int, float)) and not isinstance(search_rate, bool)
    if not is_number or not 0 < search_rate <= 100:
        raise ConfigError(f"hubspot source: 'search_rate' must be requests per second in (0, 100], got "
                          f"{search_rate!r}")
    return HubSpotSpec(
        object=name,
        properties=name_list(spec.get("properties"), "properties", "hubspot"),
        associations=name_list(spec.get("associations"), "associations", "hubspot") or (),
        incremental=flags["incremental"],
        archived=flags["archived"],
        lookback=duration(spec.get("lookback"), "hubspot source: 'lookback'"),
        settle=duration(spec.get("settle", DEFAULT_SETTLE), "hubspot source: 'settle'") or timedelta(0),
        start=utc_moment(spec.get("start"), "hubspot source: 'start'"),
        cursor_property=spec.get("cursor_property"),
        string_properties=name_list(spec.get("string_properties"), "string_properties", "hubspot") or (),
        numbers=numbers,
        batch_rows=positive_int(spec, "batch_rows", DEFAULT_BATCH_ROWS, 1_000_000, "hubspot"),
        retry=retry_policy(spec.get("retry"), "hubspot"),
        search_rate=float(search_rate),
    )


def from_spec(spec: Mapping[str, Any], connection: HubSpotConfig) -> HubSpotSource:
    """Build a HubSpot source from its spec and the connection's :class:`HubSpotConfig`."""
    return HubSpotSource(parse_spec(spec), connection)


class HubSpotSource(Source):
    """One HubSpot CRM object type.

    :param spec: the validated spec.
    :param config: credentials and base URL.
    :param clock: time source for retry waits and token expiry (tests inject one that does not sleep).
    """

    def __init__(self, spec: HubSpotSpec, config: HubSpotConfig, clock: Clock | None = None) -> None:
        if not isinstance(config, HubSpotConfig):
            raise ConfigError(f"hubspot source needs a HubSpotConfig connection, got {type(config).__name__}")
        self.spec = spec
        self.config = config
        self.clock = clock
        self.api_version = api_version_of(config)
        # An updated record is read again with the same id: only a merge keeps one row per record.
        self.may_repeat_rows = spec.incremental
        self._portal_id: str | None = None
        self._idle_api: HubSpotApi | None = None
        # The identity before the portal was part of it: a table loaded then keeps its watermark.
        self.former_identities = (f"hubspot://crm/{spec.object}",)

    @property
    def identity(self) -> str:
        return f"hubspot://{self.portal_id()}/crm/{self.spec.object}"

    def portal_id(self) -> str:
        """The portal the credentials belong to (asked once; the client is kept for :meth:`open`, so
        an OAuth app exchanges its refresh token once per run)."""
        if self._portal_id is None:
            if self._idle_api is None:
                self._idle_api = self._new_api()
            self._portal_id = self._idle_api.portal_id()
        return self._portal_id

    def _new_api(self) -> HubSpotApi:
        return HubSpotApi(self.config, self.spec.retry, self.clock, self.spec.search_rate)

    @property
    def lineage(self) -> LineageDataset:
        host = urllib.parse.urlsplit(self.config.base_url).netloc
        return LineageDataset(f"hubspot://{host}", f"crm.{self.spec.object}")

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> HubSpotStream:
        api, self._idle_api = self._idle_api or self._new_api(), None
        try:
            if self._portal_id is None:
                self._portal_id = api.portal_id()
            page = api.properties_page(self.spec.object)
            properties = self._properties(page.body.get("results") or [])
            window = self._window(state, bounds, page.server_time)
        except BaseException:
            api.close()
            raise
        details = {"identity": self.identity, "object": self.spec.object, "properties": len(properties),
                   "mode": "search" if self.spec.incremental else "list", "api_version": self.api_version}
        if window is not None:
            details["window"] = {"gte": iso(window.lower), "lt": iso(window.upper)}
        return HubSpotStream(self, api, properties, window, state, details)

    def _properties(self, definitions: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The definitions of the properties to read, in name order, checked against the spec."""
        by_name = {d["name"]: d for d in definitions}
        wanted = sorted(by_name) if self.spec.properties is None else list(self.spec.properties)
        unknown = [n for n in [*wanted, *self.spec.string_properties] if n not in by_name]
        if unknown:
            raise ConfigError(f"hubspot {self.spec.object}: no properties {unknown}; it has {len(by_name)} "
                              f"properties, e.g. {sorted(by_name)[:10]}")
        return [by_name[name] for name in wanted]

    def _window(
        self, state: Mapping[str, Any] | None, bounds: ReadBounds, now: datetime | None
    ) -> Window | None:
        if not self.spec.incremental:
            return None
        where = f"hubspot {self.spec.object}"
        previous = previous_watermark(state, self.spec.cursor, where)
        lookback = duration(bounds.lookback, "ReadBounds.lookback") if bounds.lookback is not None else None
        lookback = lookback or self.spec.lookback or timedelta(0)
        first = self.spec.start or datetime(1970, 1, 1, tzinfo=UTC)
        lower = first if previous is None else previous - lookback
        limits = [m for m in (utc_moment(bounds.upper, "the upper bound"),
                              None if now is None else now - self.spec.settle) if m is not None]
        if not limits:
            raise SourceError(
                f"{where}: HubSpot sent no Date header and no upper bound was given; pass an upper bound "
                "(the operator's upper_bound) so the run knows where to stop"
            )
        return Window(lower, min(limits), previous)

    def columns(self, properties: Sequence[Mapping[str, Any]]) -> list[Column]:
        """The fixed columns, one per property, and one per association (see the module docstring)."""
        columns = [Column("id", "string"), Column("created_at", "iso", ("createdAt",)),
                   Column("updated_at", "iso", ("updatedAt",)), Column("archived", "bool"),
                   Column("archived_at", "iso", ("archivedAt",))]
        for definition in properties:
            name = definition["name"]
            column = f"property_{name}" if name in FIXED else name
            columns.append(Column(column, self._kind(definition), ("properties", name)))
        columns += [
            Column(f"associations_{to}", "id_list", ("associations", to)) for to in self.spec.associations
        ]
        return columns

    def _kind(self, definition: Mapping[str, Any]) -> str:
        if definition["name"] in self.spec.string_properties:
            return "string"
        if definition.get("type") == "number" and self.spec.numbers == "string":
            return "string"
        if definition.get("fieldType") == "booleancheckbox":
            return "bool_text"
        return _KINDS.get(str(definition.get("type")), "string")


@dataclass(frozen=True)
class Window:
    """This run's last-modified range: ``lower <= t < upper``; ``previous`` is the committed watermark."""

    lower: datetime
    upper: datetime
    previous: datetime | None

    def millis(self) -> tuple[int, int]:
        return _millis(self.lower), _millis(self.upper)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class HubSpotStream(RecordStream[HubSpotApi]):
    """Records of one object type: searched window by window, or listed; plus archived ones."""

    def __init__(self, source: HubSpotSource, api: HubSpotApi, properties: list[Mapping[str, Any]],
                 window: Window | None, state: Mapping[str, Any] | None, details: dict[str, Any]) -> None:
        spec = source.spec
        super().__init__(api, source.columns(properties), f"HubSpot {spec.object}", state, spec.batch_rows,
                         {**details, "windows": 0, "splits": 0, "rereads": 0, "same_millisecond_reads": 0,
                          "not_found_ids": []})
        self.api = api
        self.spec = spec
        self.names = [p["name"] for p in properties]
        self.decimal_names = [p["name"] for p in properties if source._kind(p) == "decimal"]
        self.window = window
        self._rows = 0

    def records(self) -> Iterator[Mapping[str, Any]]:
        archived_ids: set[str] = set()
        if self.spec.archived:
            for chunk in _chunks(self._archived(), 1_000):
                archived_ids.update(r["id"] for r in chunk)
                yield from self._counted(chunk)
        active = self._list(archived=False) if self.window is None else self._searched(self.window)
        for chunk in _chunks(active, 1_000):
            yield from self._counted([r for r in chunk if r["id"] not in archived_ids])

    def _counted(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._check_numbers(chunk)
        self._attach_associations(chunk)
        self._rows += len(chunk)
        return chunk

    def _check_numbers(self, chunk: list[dict[str, Any]]) -> None:
        """Refuse a number decimal128(38, 18) cannot hold exactly: Arrow's cast would round or wrap it."""
        for record in chunk:
            values = record.get("properties") or {}
            for name in self.decimal_names:
                text = values.get(name)
                if text is None or text == "" or _fits_decimal(text):
                    continue
                shown = text if len(text) <= 48 else f"{text[:45]}..."
                raise SourceError(
                    f"HubSpot {self.spec.object}: property {name!r} of record {record.get('id')} is {shown}, "
                    "which decimal(38, 18) cannot hold exactly (at most 20 digits before the point and 18 "
                    f"after); keep it as exact text with \"string_properties\": [{name!r}] or "
                    "\"numbers\": \"string\". Nothing was written"
                )

    def _attach_associations(self, chunk: list[dict[str, Any]]) -> None:
        if not chunk or not self.spec.associations:
            return
        ids = [r["id"] for r in chunk]
        found = {to: self.api.associations(self.spec.object, to, ids) for to in self.spec.associations}
        for record in chunk:
            record["associations"] = {to: found[to].get(record["id"], []) for to in self.spec.associations}

    # -- full reads ------------------------------------------------------------------------------

    def _list(self, archived: bool) -> Iterator[dict[str, Any]]:
        inline = len(",".join(self.names)) <= MAX_URL_PROPERTIES_CHARS
        after = None
        while True:
            page = self.api.list_page(self.spec.object, self.names if inline else (), after, archived)
            results = list(page.body.get("results") or [])
            self.report.details["pages"] += 1
            yield from results if inline else self._with_properties(results, archived)
            after = ((page.body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def _with_properties(self, results: list[dict[str, Any]], archived: bool) -> list[dict[str, Any]]:
        """The listed records re-read by id with every property (POST: no URL length limit).

        A record deleted or archived between the list and the batch read is answered as not found:
        its id goes to ``not_found_ids`` in the run details. Any other id missing from the answer
        fails the run, naming it.
        """
        read = self.api.batch_read(self.spec.object, [r["id"] for r in results], self.names, archived)
        full = {r["id"]: r for r in read.records}
        self.report.details["not_found_ids"].extend(read.not_found)
        unexplained = [r["id"] for r in results if r["id"] not in full and r["id"] not in read.not_found]
        if unexplained:
            raise SourceError(
                f"HubSpot {self.spec.object}: the batch read answered neither the records nor an error for "
                f"ids {unexplained[:20]}; nothing was written"
            )
        if read.not_found:
            _log.warning("HubSpot %s: records %s were listed but not found when read by id (deleted or "
                         "archived in between); they are not in this run",
                         self.spec.object, read.not_found[:20])
        return [full[r["id"]] for r in results if r["id"] in full]

    def _archived(self) -> Iterator[dict[str, Any]]:
        for record in self._list(archived=True):
            if self.window is None or _archived_inside(record, self.window):
                yield record

    # -- incremental reads -----------------------------------------------------------------------

    def _searched(self, window: Window) -> Iterator[dict[str, Any]]:
        """Every record modified inside ``window``, sub-window by sub-window in ascending time."""
        lower, upper = window.millis()
        pending = [(lower, upper, 0)]
        while pending:
            start, end, rereads = pending.pop()
            if start >= end:
                continue
            first = self._search(self._range(start, end), after=None)
            total = int(first.get("total", 0))
            if total > SEARCH_CAP and end - start > 1:
                start = max(start, self._earliest(first))  # nothing older exists: split what is left
                middle = (start + end + 1) // 2
                pending += [(middle, end, 0), (start, middle, 0)]
                self.report.details["splits"] += 1
            elif total > SEARCH_CAP:
                yield from self._same_millisecond(start)
            else:
                records = self._read_window(start, end, first)
                if records is None:
                    pending.append((start, end, self._reread(start, end, rereads)))
                    continue
                self.report.details["windows"] += 1
                yield from records

    def _earliest(self, page: Mapping[str, Any]) -> int:
        """The first result's last-modified time (results are sorted ascending), in epoch ms."""
        first = (page.get("results") or [{}])[0]
        moment = utc_moment((first.get("properties") or {}).get(self.spec.cursor), "last-modified")
        return 0 if moment is None else _millis(moment)

    def _read_window(self, start: int, end: int, first: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """All records of a window of at most 10,000, or None if its total changed while paging."""
        total, page = int(first.get("total", 0)), first
        records: list[dict[str, Any]] = []
        while True:
            if int(page.get("total", 0)) != total:
                return None
            records.extend(page.get("results") or [])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
            page = self._search(self._range(start, end), after=after)
        return records if len(records) == total else None

    def _reread(self, start: int, end: int, rereads: int) -> int:
        if rereads >= MAX_REREADS:
            raise TransientError(
                f"HubSpot {self.spec.object}: the records modified between {start} and {end} (epoch ms) kept "
                f"changing while they were paged ({rereads + 1} reads); rerun later, nothing was committed"
            )
        self.report.details["rereads"] += 1
        return rereads + 1

    def _same_millisecond(self, moment: int) -> Iterator[dict[str, Any]]:
        """More than 10,000 records share one last-modified millisecond: keyset paging by id."""
        self.report.details["same_millisecond_reads"] += 1
        last_id = 0
        while True:
            filters = [_filter(self.spec.cursor, "EQ", moment), _filter("hs_object_id", "GT", last_id)]
            page = self._search(filters, after=None, sort="hs_object_id")
            results = page.get("results") or []
            yield from results
            if len(results) < SEARCH_PAGE:
                return
            last_id = int(results[-1]["id"])

    def _range(self, start: int, end: int) -> list[dict[str, str]]:
        return [_filter(self.spec.cursor, "GTE", start), _filter(self.spec.cursor, "LT", end)]

    def _search(
        self, filters: list[dict[str, str]], after: str | None, sort: str | None = None
    ) -> Mapping[str, Any]:
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort or self.spec.cursor, "direction": "ASCENDING"}],
            "properties": self.names, "limit": SEARCH_PAGE,
        }
        if after is not None:
            body["after"] = after
        self.report.details["pages"] += 1
        return self.api.search_page(self.spec.object, body).body

    def new_state(self) -> dict[str, Any] | None:
        if self.window is None:
            return None
        if self._rows == 0:
            return self.previous
        reached = max(self.window.upper, self.window.previous or self.window.upper)
        return {WATERMARK_KEY: iso(reached), CURSOR_KEY: self.spec.cursor,
                "api_version": self.report.details["api_version"]}


def _fits_decimal(text: Any) -> bool:
    """True unless ``text`` is a number decimal128(38, 18) cannot hold exactly (text that is not a
    number at all is left to the column conversion, which names the column and record)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        return True
    if not value.is_finite() or value.copy_abs() >= _DECIMAL_LIMIT:
        return False
    with localcontext() as context:
        context.prec = 60  # below 10**20 with 18 decimals needs at most 38 digits: quantize is exact
        return value.quantize(_DECIMAL_STEP) == value


def _archived_inside(record: Mapping[str, Any], window: Window) -> bool:
    moment = utc_moment(record.get("archivedAt") or record.get("updatedAt"), "archivedAt")
    return moment is not None and window.lower <= moment < window.upper


def _filter(name: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _chunks(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
