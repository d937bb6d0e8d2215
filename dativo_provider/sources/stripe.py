"""Stripe source: one list endpoint (``/v1/<object>``) into Arrow batches, incrementally by ``created``
or, for objects that change, through the Events API.

Spec::

    {"type": "stripe", "conn_id": "stripe_default", "object": "charges",
     "expand": ["customer"], "incremental": "events", "start": "2024-01-01", "params": {"type": "charge"}}

**Objects.** ``customers``, ``charges``, ``invoices``, ``subscriptions`` (``status=all``: canceled
ones too), ``payment_intents``, ``balance_transactions`` and ``events`` have declared, typed columns
(:mod:`dativo_provider.sources.stripe_objects`). Any other list endpoint is read by its path
(``"refunds"``, ``"checkout/sessions"``) with the generic columns ``id, object, created, livemode,
metadata`` plus ``data``, the whole object as JSON.

**Column rule.** Scalars become typed columns (strings, int64, float64, bool); amounts stay int64 in
the currency's minor unit, as Stripe sends them; unix timestamps become timestamp[us, UTC]; nested
objects, lists and ``metadata`` become JSON text. An expandable field (``customer``) is its id as a
string; expanded through ``expand`` it becomes the object as JSON text. ``extra_fields``
(``{"field": "kind"}``) adds fields the declaration lacks.

**Incremental by created** (``"incremental": "created"``; the default of ``balance_transactions``
and ``events``; ``true`` for other endpoints whose list takes ``created`` filters). Stripe lists
newest first and pages with ``starting_after``. A run asks for ``created[gt]=<watermark>`` (minus
``lookback``) and, with an upper bound, ``created[lte]``. The run's cut-off is Stripe's own clock
(the first response's ``Date`` header) minus ``settle`` (default 10 s, for objects whose creation is
still completing), or the upper bound if earlier: objects newer than it are left for the next run.
The new watermark is that cut-off, stored only after every page was read; a failure mid-paging
commits nothing. ``created`` never changes, so later updates are not seen.

**Incremental by events** (``"incremental": "events"``, the default of the objects that change:
:data:`~dativo_provider.sources.stripe_objects.EVENT_TYPES`). The first run (or one with
``full_refresh``) lists by ``created`` as above. Later runs read ``GET /v1/events`` of that object's
event types after the watermark, up to the same cut-off, and write each changed object once, in its
latest state (events come newest first): new objects, updates, and deletions (``customer.deleted``,
``invoice.deleted``: the last state with ``deleted`` true). Rows repeat, so write with ``merge`` on
``id``. Stripe keeps events 30 days: a watermark older than that (less an hour for paging) fails the
run naming the gap; ``"full_refresh": true`` lists everything again once. A run with no event still
moves the watermark (a quiet month must not become a gap).

**Search** (``"query": "metadata['tier']:'gold'"``): ``GET /v1/<object>/search`` with Stripe's query
language, paged by ``next_page``, for the objects that have it. Every run reads all matches: Stripe's
search index lags writes, so no watermark is kept over it.

**API version.** Every call sends ``Stripe-Version``: the connection's ``api_version`` or
:data:`~dativo_provider.sources.stripe_objects.DEFAULT_API_VERSION`, never the account's own default
(it changes the shapes). From ``2025-03-31.basil`` on, fields that moved are read from where they
moved (a subscription's ``current_period_*`` from its first item, an invoice's ``subscription`` from
``parent``) and fields removed are left out (the run's details name them). The version is in the
committed state, so each snapshot summary records it.

Reads are GETs: idempotent, retried on 429/5xx with backoff, honouring ``Stripe-Should-Retry``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from dativo_provider.connections import StripeConfig
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.sources.base import CURSOR_KEY, WATERMARK_KEY, LineageDataset, ReadBounds, Source
from dativo_provider.sources.http import (
    ApiAuthError,
    ApiNotFoundError,
    BearerAuth,
    Clock,
    Dialect,
    HttpClient,
    RetryPolicy,
    json_or_none,
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
from dativo_provider.sources.stripe_objects import (
    DEFAULT_API_VERSION,
    DEFAULT_PARAMS,
    DELETED_EVENTS,
    EVENT_TYPES,
    KNOWN_OBJECTS,
    OBJECT_KIND,
    SEARCHABLE,
    declared_columns,
    record_adapter,
    same_shapes,
    schema_notes,
)

SPEC_KEYS = frozenset({
    "type", "conn_id", "object", "expand", "incremental", "lookback", "settle", "start", "params",
    "extra_fields", "account", "page_size", "batch_rows", "retry", "query", "full_refresh",
})
MAX_PAGE_SIZE = 100
DEFAULT_SETTLE = timedelta(seconds=10)
#: Stripe keeps events 30 days; a watermark must be younger by ``EVENTS_MARGIN`` so that the oldest
#: events needed are not dropped while the run pages towards them.
EVENTS_RETENTION = timedelta(days=30)
EVENTS_MARGIN = timedelta(hours=1)
#: The ``incremental`` modes: objects by ``created``, or changes through the Events API.
CREATED, EVENTS = "created", "events"
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
_OBJECT_NAME = re.compile(r"[a-z][a-z_]*(/[a-z][a-z_]*)*")
_RESERVED_PARAMS = ("limit", "starting_after", "ending_before", "created", "expand")
#: Stripe echoes a masked key (``sk_test_****1234``) in some errors: scrub every key-shaped word.
_KEY_PATTERN = re.compile(r"\b[sr]k_(?:live|test)_[0-9A-Za-z*]+")
#: The permission a restricted key lacks, as Stripe's 403 names it ("Having the 'rak_charge_read' permission ...").
_PERMISSION = re.compile(r"'(rak_[a-z_]+)' permission")


@dataclass(frozen=True)
class StripeSpec:
    """A validated Stripe source spec (see the module docstring)."""

    object: str
    expand: tuple[str, ...] = ()
    #: ``"created"``, ``"events"`` or None (every run reads everything).
    incremental: str | None = CREATED
    lookback: timedelta | None = None
    settle: timedelta = DEFAULT_SETTLE
    start: datetime | None = None
    params: tuple[tuple[str, str], ...] = ()
    extra_fields: tuple[tuple[str, str], ...] = ()
    account: str | None = None
    page_size: int = MAX_PAGE_SIZE
    batch_rows: int = DEFAULT_BATCH_ROWS
    retry: RetryPolicy = RetryPolicy()
    query: str | None = None
    full_refresh: bool = False


def parse_spec(spec: Mapping[str, Any]) -> StripeSpec:
    """Validate a spec; every error names the key."""
    check_keys(spec, SPEC_KEYS, "stripe")
    name = spec.get("object")
    if not isinstance(name, str) or not _OBJECT_NAME.fullmatch(name):
        raise ConfigError(f"stripe source: 'object' must be a list endpoint such as 'charges', got {name!r}")
    query = _query(spec.get("query"), name)
    full_refresh = spec.get("full_refresh", False)
    if not isinstance(full_refresh, bool):
        raise ConfigError(f"stripe source: 'full_refresh' must be true or false, got {full_refresh!r}")
    incremental = _incremental(spec, name, query)
    params = _params(spec.get("params"), name)
    ignored = [key for key in ("params", "start", "lookback") if query is not None and spec.get(key) is not None]
    if ignored:
        raise ConfigError(
            f"stripe source: {ignored} filter a list; with 'query' put every filter in the query "
            "(e.g. \"status:'succeeded' AND created>=1704067200\")"
        )
    if incremental == EVENTS and spec.get("params"):
        raise ConfigError(
            f"stripe source: 'params' {dict(spec['params'])!r} filter the {name} list, but the events that "
            "bring later changes cannot be filtered alike: use 'incremental': 'created', or a 'query'"
        )
    return StripeSpec(
        object=name,
        expand=_expand(spec.get("expand")),
        incremental=incremental,
        query=query,
        full_refresh=full_refresh,
        lookback=duration(spec.get("lookback"), "stripe source: 'lookback'"),
        settle=duration(spec.get("settle", DEFAULT_SETTLE), "stripe source: 'settle'") or timedelta(0),
        start=utc_moment(spec.get("start"), "stripe source: 'start'"),
        params=params,
        extra_fields=_pairs(spec.get("extra_fields"), "extra_fields"),
        account=spec.get("account"),
        page_size=positive_int(spec, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE, "stripe"),
        batch_rows=positive_int(spec, "batch_rows", DEFAULT_BATCH_ROWS, 1_000_000, "stripe"),
        retry=retry_policy(spec.get("retry"), "stripe"),
    )


def _incremental(spec: Mapping[str, Any], name: str, query: str | None) -> str | None:
    """The mode: ``events`` for objects that change, ``created`` for the other declared ones, none else."""
    natural = EVENTS if name in EVENT_TYPES else CREATED
    value = spec.get("incremental", None if query or name not in KNOWN_OBJECTS else natural)
    mode = {True: natural, False: None}.get(value, value) if isinstance(value, bool) else value
    if mode not in (CREATED, EVENTS, None):
        raise ConfigError(
            f"stripe source: 'incremental' must be true, false, 'created' or 'events', got {value!r}"
        )
    if mode == EVENTS and name not in EVENT_TYPES:
        raise ConfigError(
            f"stripe source: 'incremental': 'events' follows objects that change ({sorted(EVENT_TYPES)}); "
            f"{name!r} is read by 'created'"
        )
    if mode is not None and query is not None:
        raise ConfigError(
            "stripe source: 'query' reads the search API, which is not incremental: Stripe's search index "
            "lags behind writes (under a minute, longer in an outage), so a watermark over it would skip "
            "objects silently. Drop 'incremental' (every run reads all matches; write with mode 'replace' "
            "or 'merge'), or use 'params' list filters"
        )
    return mode


def _query(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"stripe source: 'query' must be a search query such as \"status:'succeeded'\", got {value!r}"
        )
    if name not in SEARCHABLE:
        raise ConfigError(
            f"stripe source: 'query' needs an object with a search API ({sorted(SEARCHABLE)}), not {name!r}"
        )
    return value.strip()


def _expand(value: Any) -> tuple[str, ...]:
    """Fields to expand, with or without the ``data.`` prefix list endpoints need."""
    return tuple(e.removeprefix("data.") for e in name_list(value, "expand", "stripe") or ())


def _pairs(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(v, (str, int, bool)) for v in value.values()):
        raise ConfigError(
            f"stripe source: {key!r} must be a mapping of names to scalar values, got {value!r}"
        )
    return tuple((str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items())


def _params(value: Any, name: str) -> tuple[tuple[str, str], ...]:
    params = dict(DEFAULT_PARAMS.get(name, {}))
    params.update(_pairs(value, "params"))
    reserved = [k for k in params if k.split("[")[0] in _RESERVED_PARAMS]
    if reserved:
        raise ConfigError(
            f"stripe source: 'params' may not set {reserved}; the source pages and filters itself"
        )
    return tuple(params.items())


def from_spec(spec: Mapping[str, Any], connection: StripeConfig) -> StripeSource:
    """Build a Stripe source from its spec and the connection's :class:`StripeConfig`."""
    return StripeSource(parse_spec(spec), connection)


def _permission_error(exc: ApiAuthError, conn_id: str | None, what: str) -> ApiAuthError:
    """A 403 of a restricted key lacking a permission, naming what was read and the permission."""
    permission = _PERMISSION.search(str(exc)) if exc.status == 403 else None
    if permission is None:
        return exc
    return ApiAuthError(
        f"Stripe: the key of connection {conn_id!r} may not read {what}: it lacks the {permission[1]!r} "
        "permission (give the restricted key Read access to it)",
        api=exc.api, status=exc.status, method=exc.method, path=exc.path,
    )


class StripeDialect(Dialect):
    """Stripe's error body ``{"error": {"type", "message", "code"}}`` and ``Stripe-Should-Retry``."""

    scrub = (_KEY_PATTERN,)

    def should_retry(self, response: requests.Response) -> bool | None:
        hint = response.headers.get("Stripe-Should-Retry", "").strip().lower()
        return {"true": True, "false": False}.get(hint)

    def message(self, response: requests.Response) -> str:
        body = json_or_none(response)
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            return super().message(response)
        code = error.get("code") or error.get("type")
        return f"{error.get('message', '')} ({code})" if code else str(error.get("message", ""))


class StripeSource(Source):
    """One Stripe list endpoint.

    :param spec: the validated spec.
    :param config: the key and account; the spec's ``account`` overrides the connection's.
    :param clock: time source for retry waits (tests inject one that does not sleep).
    """

    def __init__(self, spec: StripeSpec, config: StripeConfig, clock: Clock | None = None) -> None:
        if not isinstance(config, StripeConfig):
            raise ConfigError(f"stripe source needs a StripeConfig connection, got {type(config).__name__}")
        if not config.api_key:
            raise ConfigError(f"stripe connection {config.conn_id!r} has no secret key (the password field)")
        if config.api_version is not None and not _API_VERSION.fullmatch(config.api_version):
            raise ConfigError(
                f"stripe connection {config.conn_id!r}: 'api_version' must look like '2025-03-31.basil', "
                f"got {config.api_version!r}"
            )
        #: Sent as ``Stripe-Version`` on every call: the shapes the columns are read from.
        self.api_version = config.api_version or DEFAULT_API_VERSION
        self.spec = spec
        self.config = config
        self.clock = clock
        self._account_id: str | None = None
        # Reads of the key's own account were ``stripe://default/<object>`` before the account id was
        # part of the identity: a table loaded then continues from that watermark.
        self.former_identities = () if self.account else (f"stripe://default/{spec.object}",)
        # Events bring back objects already written (changed), a search or a full refresh re-reads them.
        self.may_repeat_rows = (spec.incremental == EVENTS or spec.query is not None or spec.full_refresh
                                or (spec.incremental is not None and spec.lookback is not None))

    @property
    def account(self) -> str | None:
        return self.spec.account or self.config.account

    @property
    def identity(self) -> str:
        """``stripe://<account id>/<object>``: two keys writing one table keep separate watermarks."""
        return f"stripe://{self.account_id()}/{self.spec.object}"

    def account_id(self) -> str:
        """The connected account read, or the key's own account (``GET /v1/account``, asked once)."""
        if self.account:
            return self.account
        if self._account_id is None:
            try:
                body = self._client().get("/v1/account", (), what="the account").body
            except ApiAuthError as exc:
                raise _permission_error(exc, self.config.conn_id, "its account id (GET /v1/account)") from None
            account_id = body.get("id") if isinstance(body, Mapping) else None
            if not isinstance(account_id, str) or not account_id.startswith("acct_"):
                raise SourceError("Stripe GET /v1/account did not answer with an account id")
            self._account_id = account_id
        return self._account_id

    @property
    def lineage(self) -> LineageDataset:
        return LineageDataset(f"stripe://{self.account or 'default'}", self.spec.object)

    def columns(self) -> list[Column]:
        """The declared columns with extra fields added and expanded fields turned into JSON."""
        columns = declared_columns(self.spec.object, self.api_version)
        names = {c.name for c in columns}
        columns += [Column(name, kind) for name, kind in self.spec.extra_fields if name not in names]
        expanded = {path.split(".")[0] for path in self.spec.expand}
        columns = [Column(c.name, "json", c.path) if c.name in expanded else c for c in columns]
        columns += [Column(name, "json") for name in sorted(expanded - {c.name for c in columns})]
        return columns

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> StripeStream:
        if self.spec.full_refresh:
            state = None  # re-list everything; the run commits a fresh watermark
        window = self._window(state, bounds)
        follows_events = self.spec.incremental == EVENTS and window.previous is not None
        read = SEARCH if self.spec.query else EVENTS if follows_events else LIST
        client = self._client()
        details = {"identity": self.identity, "object": self.spec.object, "read": read,
                   "window": window.describe(), "api_version": self.api_version}
        notes = schema_notes(self.spec.object, self.api_version)
        if notes:
            details["columns_not_filled"] = notes
        return StripeStream(self, client, window, state, details, read)

    def _window(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> CreatedWindow:
        if not self.spec.incremental:
            return CreatedWindow(None, None, None, None)
        where = f"stripe {self.spec.object}"
        # Both modes keep Stripe's clock at the end of the last read: either continues from the other's.
        if state and state.get(CURSOR_KEY) in (CREATED, EVENTS):
            state = {**state, CURSOR_KEY: CREATED}
        previous = previous_watermark(state, CREATED, where)
        lookback = duration(bounds.lookback, "ReadBounds.lookback") if bounds.lookback is not None else None
        lookback = lookback or self.spec.lookback or timedelta(0)
        after = None if previous is None else int((previous - lookback).timestamp())
        since = None if previous is not None or self.spec.start is None else int(self.spec.start.timestamp())
        upper = utc_moment(bounds.upper, "the upper bound")
        return CreatedWindow(after, since, None if upper is None else int(upper.timestamp()), previous)

    def _client(self) -> HttpClient:
        headers = {"Stripe-Account": self.account, "Stripe-Version": self.api_version}
        return HttpClient(
            "Stripe", self.config.base_url, BearerAuth(self.config.api_key), conn_id=self.config.conn_id,
            headers={k: v for k, v in headers.items() if v}, dialect=StripeDialect(), policy=self.spec.retry,
            clock=self.clock,
        )


#: How a run reads: the list by ``created``, the events since the watermark, or the search API.
LIST, SEARCH = "list", "search"


@dataclass(frozen=True)
class CreatedWindow:
    """``created`` limits in unix seconds: ``gt`` (after the watermark), ``gte`` (the spec's start),
    ``lte`` (the upper bound); ``previous`` is the committed watermark."""

    gt: int | None
    gte: int | None
    lte: int | None
    previous: datetime | None

    def params(self) -> list[tuple[str, str]]:
        named = (("created[gt]", self.gt), ("created[gte]", self.gte), ("created[lte]", self.lte))
        return [(key, str(value)) for key, value in named if value is not None]

    def describe(self) -> dict[str, int]:
        return {key: int(value) for key, value in self.params()}


class StripeStream(RecordStream[HttpClient]):
    """One run's records: a list newest first cut off at the run's upper limit, the objects that
    events since the watermark changed (each once, in its latest state), or the search results."""

    def __init__(self, source: StripeSource, client: HttpClient, window: CreatedWindow,
                 state: Mapping[str, Any] | None, details: dict[str, Any], read: str = LIST) -> None:
        spec = source.spec
        super().__init__(client, source.columns(), f"Stripe {spec.object}", state, spec.batch_rows, details)
        self.spec = spec
        self.conn_id = source.config.conn_id
        self.api_version = source.api_version
        self._adapt = record_adapter(spec.object, source.api_version)
        self.window = window
        self.read = read
        self.incremental = spec.incremental is not None
        self._cutoff: int | None = None
        self._cutoff_known = False
        self._newest: int | None = None
        self._rows = 0

    def records(self) -> Iterator[Mapping[str, Any]]:
        if self.read == EVENTS:
            return self._changed_objects()
        if self.read == SEARCH:
            return self._search_results()
        return self._listed()

    # -- the list, by created -----------------------------------------------------------------------

    def _listed(self) -> Iterator[Mapping[str, Any]]:
        params = [("limit", str(self.spec.page_size)), *self.window.params(), *self.spec.params]
        params += [("expand[]", f"data.{e}") for e in self.spec.expand]
        for data in self._pages(f"/v1/{self.spec.object}", params, f"the {self.spec.object} list"):
            yield from self._within_cutoff(self._adapted(data))

    def _pages(self, path: str, params: list[tuple[str, str]], what: str) -> Iterator[list[Mapping[str, Any]]]:
        """Each page of a list, following ``starting_after``; the first fixes the run's cut-off."""
        starting_after: str | None = None
        while True:
            paging: list[tuple[str, str]] = [("starting_after", starting_after)] if starting_after else []
            page = self._get(path, params + paging, what)
            data = self._data(page.body, path)
            if not self._cutoff_known:
                self._cutoff, self._cutoff_known = self._cutoff_from(page.server_time), True
                self._first_page(page.server_time)
            yield data
            self.report.details["pages"] += 1
            if not page.body.get("has_more") or not data:
                return
            starting_after = data[-1]["id"]

    def _first_page(self, server_time: datetime | None) -> None:
        """Refuse an events read whose watermark is older than Stripe keeps events."""
        if self.read != EVENTS or self.window.gt is None:
            return
        now = server_time or datetime.now(UTC)  # no Date header (an odd proxy): this machine's clock
        oldest_kept = now - EVENTS_RETENTION + EVENTS_MARGIN
        needed = utc_moment(self.window.gt, "watermark")
        assert needed is not None
        if needed < oldest_kept:
            raise SourceError(
                f"Stripe {self.spec.object}: the table holds changes up to {iso(needed)}, but Stripe keeps "
                f"events for 30 days only (its clock says {iso(now)}), so the changes from {iso(needed)} to "
                f"{iso(now - EVENTS_RETENTION)} can no longer be read. Run once with \"full_refresh\": true in "
                f"the source spec (it lists every {self.spec.object} again; write mode 'replace' also drops "
                "objects deleted meanwhile), then remove it"
            )

    def _get(self, path: str, params: list[tuple[str, str]], what: str) -> Any:
        try:
            return self.client.get(path, params, what=what)
        except ApiAuthError as exc:
            raise _permission_error(exc, self.conn_id, what.removeprefix("the ").removesuffix(" list")) from None

    def _data(self, body: Any, path: str, kind: str = "list") -> list[Mapping[str, Any]]:
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, list) or body.get("object") != kind:
            raise SourceError(f"Stripe {path} did not answer with a {kind} object; is it a {kind} endpoint?")
        return body["data"]

    def _adapted(self, data: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return data if self._adapt is None else [self._adapt(record) for record in data]

    def _cutoff_from(self, server_time: datetime | None) -> int | None:
        """Newest ``created`` this run takes: Stripe's clock minus ``settle``, or the upper bound."""
        if not self.incremental:
            return None
        limits = [self.window.lte] if self.window.lte is not None else []
        if server_time is not None:
            limits.append(int((server_time - self.spec.settle).timestamp()))
        return min(limits) if limits else None

    def _within_cutoff(self, data: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for record in data:
            if record.get("deleted") is True:  # a deleted object: its id and the flag, no 'created'
                self._rows += 1
                yield record
                continue
            if self.incremental:
                created = record.get("created")
                if not isinstance(created, int):
                    raise SourceError(
                        f"Stripe {self.spec.object} record {record.get('id')!r} has no 'created'; read it "
                        "with 'incremental': false"
                    )
                if self._cutoff is not None and created > self._cutoff:
                    continue
                if self._newest is None or created > self._newest:
                    self._newest = created
            self._rows += 1
            yield record

    # -- the events since the watermark ---------------------------------------------------------------

    def _changed_objects(self) -> Iterator[Mapping[str, Any]]:
        """The latest state of each object an event since the watermark changed.

        Events come newest first, so an object's first event is its latest: later (older) ones are
        skipped. ``data.object`` is used as it is when it has the shapes of the pinned version and no
        field is to be expanded; otherwise (Stripe renders events in the account's version of their
        day, and never expands them) the object is retrieved in the pinned version.
        """
        kind = OBJECT_KIND[self.spec.object]
        params = [("limit", str(self.spec.page_size)), *self.window.params()]
        params += [("types[]", name) for name in EVENT_TYPES[self.spec.object]]
        seen: set[str] = set()
        events = retrieved = 0
        for data in self._pages("/v1/events", params, "the events list"):
            for event in data:
                created = event.get("created")
                if not isinstance(created, int) or (self._cutoff is not None and created > self._cutoff):
                    continue
                if self._newest is None or created > self._newest:
                    self._newest = created
                events += 1
                obj = (event.get("data") or {}).get("object")
                # Another kind of object (an event type shared by two), an id-less preview, or an older state.
                if not isinstance(obj, Mapping) or obj.get("object") != kind or not isinstance(obj.get("id"), str):
                    continue
                if obj["id"] in seen:
                    continue
                seen.add(obj["id"])
                version = str(event.get("api_version") or "")
                as_sent = same_shapes(version, self.api_version) and not self.spec.expand
                if event.get("type") in DELETED_EVENTS:
                    record = {**self._adapted([obj])[0], "deleted": True} if as_sent else self._gone(obj["id"])
                elif as_sent:
                    record = self._adapted([obj])[0]
                else:
                    record, retrieved = self._retrieve(obj["id"]), retrieved + 1
                self._rows += 1
                yield record
        self.report.details.update(events=events, objects_changed=len(seen), objects_retrieved=retrieved)

    def _retrieve(self, object_id: str) -> Mapping[str, Any]:
        """``GET /v1/<object>/<id>`` in the pinned version; an object gone since is a deleted row."""
        path = f"/v1/{self.spec.object}/{object_id}"
        try:
            expand = [("expand[]", e) for e in self.spec.expand]
            page = self.client.get(path, expand, what=f"{self.spec.object} {object_id}")
        except ApiNotFoundError:
            return self._gone(object_id)
        except ApiAuthError as exc:
            raise _permission_error(exc, self.conn_id, self.spec.object) from None
        body = page.body
        if not isinstance(body, Mapping) or body.get("id") != object_id:
            raise SourceError(f"Stripe GET {path} did not answer with that object")
        return body if body.get("deleted") is True else self._adapted([body])[0]

    def _gone(self, object_id: str) -> Mapping[str, Any]:
        return {"id": object_id, "object": OBJECT_KIND[self.spec.object], "deleted": True}

    # -- the search API --------------------------------------------------------------------------------

    def _search_results(self) -> Iterator[Mapping[str, Any]]:
        path = f"/v1/{self.spec.object}/search"
        params = [("query", self.spec.query or ""), ("limit", str(self.spec.page_size))]
        params += [("expand[]", f"data.{e}") for e in self.spec.expand]
        next_page: str | None = None
        while True:
            page = self._get(path, params + ([("page", next_page)] if next_page else []),
                             f"the {self.spec.object} search")
            data = self._adapted(self._data(page.body, path, "search_result"))
            self._rows += len(data)
            yield from data
            self.report.details["pages"] += 1
            next_page = page.body.get("next_page")
            if not page.body.get("has_more") or not next_page:
                return

    # -- the state -----------------------------------------------------------------------------------

    def new_state(self) -> dict[str, Any] | None:
        if not self.incremental:
            return None
        events_mode = self.spec.incremental == EVENTS
        # In events mode a quiet period still moves the watermark: else it would age past the 30 days.
        if self._rows == 0 and not events_mode:
            return self.previous
        reached = self._cutoff if self._cutoff is not None else self._newest
        if reached is None:
            return self.previous
        moment = utc_moment(reached, "watermark")
        assert moment is not None
        if self.window.previous is not None and moment < self.window.previous:
            moment = self.window.previous
        # The version rides in the state, so the snapshot summary records which shapes were read.
        return {WATERMARK_KEY: iso(moment), CURSOR_KEY: self.spec.incremental, "api_version": self.api_version}
