"""The HubSpot endpoints the HubSpot source calls, over :class:`~dativo_provider.sources.http.HttpClient`.

Every path carries HubSpot's date-based API version (``{v}``, ``2026-03`` unless the connection pins
another): the numeric ones stop working (OAuth v1 on 2027-02-16, associations v4 on 2027-03-30, CRM
v3 in September 2027). Paths as in HubSpot's 2026-03 API reference:

* ``GET  /crm/properties/{v}/{object}``: every property of an object type (name, type, fieldType).
* ``GET  /crm/objects/{v}/{object}``: the list, paged with ``after`` (at most 100 per page),
  ``archived=true`` for the recycle bin.
* ``POST /crm/objects/{v}/{object}/search``: filters and one sort, 200 per page, offset ``after``,
  never more than 10,000 results per query (the source walks time windows). HubSpot allows four
  search requests per second per token (its "CRM Search API Rate Limit Increase" changelog) and
  answers a 429 *without* ``Retry-After`` beyond that: searches are paced client-side by a
  :class:`SearchPacer` shared by every thread using the same credentials in this process, and a 429
  is retried with the client's exponential backoff and jitter.
* ``POST /crm/objects/{v}/{object}/batch/read``: properties for up to 100 ids (when a long property
  list does not fit a list request's URL). Ids HubSpot no longer has come back as a 207 with
  ``OBJECT_NOT_FOUND`` errors naming them: :class:`BatchRead` keeps them so the source reports them.
* ``POST /crm/associations/{v}/{from}/{to}/batch/read``: associated ids, up to 1,000 ids per call;
  an id without associations is a 207 error ``crm.associations.NO_ASSOCIATIONS_FOUND`` (an empty
  list), any other error fails naming the ids.
* ``POST /oauth/{v}/token``: an access token from an OAuth refresh token (form body).
* ``GET  /account-info/{v}/details``: the portal (``portalId``) the credentials belong to.

Errors: HubSpot answers ``{"status": "error", "message", "category", "correlationId"}``. A 429 whose
``policyName`` is ``DAILY`` is the daily quota: :class:`DailyLimitError`, never retried.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests

from dativo_provider.connections import HubSpotConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.sources.http import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    Auth,
    BearerAuth,
    Clock,
    DailyLimitError,
    Dialect,
    HttpClient,
    Page,
    RetryPolicy,
    SystemClock,
    json_or_none,
    retry_after_seconds,
)

API = "HubSpot"
#: The date-based API version used unless the connection pins another (HubSpot releases one every
#: March and September and supports each for 18 months).
DEFAULT_API_VERSION = "2026-03"
_API_VERSION = re.compile(r"20\d\d-(?:03|09)")
LIST_PAGE = 100
SEARCH_PAGE = 200
#: The search API answers at most this many results per query (offset ``after`` stops there).
SEARCH_CAP = 10_000
BATCH_READ_SIZE = 100
ASSOCIATION_BATCH = 1_000
#: Refresh an OAuth access token this long before HubSpot says it expires.
TOKEN_MARGIN = timedelta(seconds=60)
#: HubSpot's published limit for the CRM search endpoints, per token.
SEARCH_RATE = 4.0
_TOKEN_PATTERN = re.compile(r"\b(?:pat|CJ|COj)[-A-Za-z0-9_]{20,}")


def api_version_of(config: HubSpotConfig) -> str:
    """The connection's pinned ``api_version`` extra, or :data:`DEFAULT_API_VERSION`."""
    version = config.api_version or DEFAULT_API_VERSION
    if not _API_VERSION.fullmatch(version):
        raise ConfigError(
            f"hubspot connection {config.conn_id!r}: 'api_version' must be one of HubSpot's date-based "
            f"versions such as {DEFAULT_API_VERSION!r} (YYYY-03 or YYYY-09), got {version!r}"
        )
    return version


@dataclass(frozen=True)
class HubSpotPaths:
    """The paths of one date-based API version (see the module docstring)."""

    version: str

    @property
    def token(self) -> str:
        return f"/oauth/{self.version}/token"

    @property
    def account(self) -> str:
        return f"/account-info/{self.version}/details"

    def properties(self, object_type: str) -> str:
        return f"/crm/properties/{self.version}/{object_type}"

    def objects(self, object_type: str, *rest: str) -> str:
        return "/".join((f"/crm/objects/{self.version}/{object_type}", *rest))

    def associations(self, from_type: str, to_type: str) -> str:
        return f"/crm/associations/{self.version}/{from_type}/{to_type}/batch/read"


@dataclass
class BatchRead:
    """Records read by id, and the ids HubSpot answered ``OBJECT_NOT_FOUND`` for (deleted or
    archived since they were listed)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


class HubSpotDialect(Dialect):
    """HubSpot's error bodies, its daily limit, and object types it cannot resolve."""

    scrub = (_TOKEN_PATTERN,)

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def message(self, response: requests.Response) -> str:
        body = json_or_none(response)
        if not isinstance(body, Mapping):
            return super().message(response)
        category = body.get("category") or body.get("errorType") or body.get("status")
        message = str(body.get("message", ""))
        return f"{message} ({category})" if category else message

    def special_error(self, response: requests.Response, api: str) -> ApiError | None:
        body = json_or_none(response)
        if not isinstance(body, Mapping):
            return None
        path = response.request.path_url.split("?")[0] if response.request is not None else ""
        method = response.request.method or "" if response.request is not None else ""
        fields: dict[str, Any] = {"api": api, "status": response.status_code, "method": method, "path": path}
        if response.status_code == 429 and str(body.get("policyName", "")).upper() == "DAILY":
            return self._daily_limit(response, fields)
        if str(body.get("message", "")).startswith("Unable to infer object type"):
            return ApiNotFoundError(
                f"HubSpot has no object type at {path}: {body['message']}. Use contacts, companies, deals, "
                "tickets, a custom object's name (p_<name>) or its objectTypeId (2-123456)", **fields
            )
        return None

    def _daily_limit(self, response: requests.Response, fields: dict[str, Any]) -> DailyLimitError:
        wait = retry_after_seconds(response.headers.get("Retry-After"), self.clock.now())
        resets_at = None if wait is None else self.clock.now() + timedelta(seconds=wait)
        when = (f"HubSpot says it resets at {resets_at.isoformat(timespec='seconds')}" if resets_at else
                "it resets at midnight in the HubSpot account's time zone")
        quota = response.headers.get("X-HubSpot-RateLimit-Daily")
        return DailyLimitError(
            f"HubSpot's daily API limit is used up{f' ({quota} requests)' if quota else ''}; {when}. "
            "Retrying "
            "before then fails the same way: the next run after the reset continues from the committed "
            "watermark (nothing of this run was committed)",
            resets_at=resets_at, **fields,
        )


class SearchPacer:
    """Spaces calls at least ``1 / rate`` seconds apart, whichever thread makes them.

    Each caller reserves the next free slot under a lock and sleeps outside it, so parallel threads
    queue up in order instead of bursting into 429s.
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._lock = threading.Lock()
        self._next_slot = float("-inf")

    def wait(self) -> float:
        """Sleep until this call's slot; returns the seconds slept."""
        with self._lock:
            now = self.clock.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        delay = slot - now
        if delay > 0:
            self.clock.sleep(delay)
        return delay


_PACERS: dict[tuple[Any, ...], SearchPacer] = {}
_PACERS_LOCK = threading.Lock()


def search_pacer(config: HubSpotConfig, rate: float, clock: Clock) -> SearchPacer:
    """The process-wide pacer for ``config``'s credentials (keyed by a digest, never the secret).

    Sources on the real clock share one pacer per token; an injected test clock gets its own, since
    its time cannot be compared with another clock's.
    """
    credential = config.refresh_token if config.uses_oauth else config.access_token
    digest = hashlib.sha256(f"{config.client_id}:{credential}".encode()).hexdigest()
    key = (config.base_url, digest, rate, None if type(clock) is SystemClock else id(clock))
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None or (key[3] is not None and pacer.clock is not clock):
            pacer = _PACERS[key] = SearchPacer(rate, clock)
        return pacer


class OAuthRefreshAuth(Auth):
    """Bearer tokens from HubSpot's refresh-token grant; refreshed before expiry and once on a 401.

    :param token_client: a client for the token endpoint (no auth of its own).
    :param config: the app's client id and secret and the refresh token.
    :param clock: decides when a token is about to expire.
    :param token_path: ``/oauth/{version}/token`` (every parameter in the form body).
    """

    def __init__(
        self, token_client: HttpClient, config: HubSpotConfig, clock: Clock, token_path: str
    ) -> None:
        self._client = token_client
        self._token_path = token_path
        self._config = config
        self._clock = clock
        self._refresh_token = config.refresh_token
        self._access_token: str | None = None
        self._expires_at = 0.0

    def headers(self) -> dict[str, str]:
        if self._access_token is None or self._clock.monotonic() >= self._expires_at:
            self.refresh()
        return {"Authorization": f"Bearer {self._access_token}"}

    def refresh(self) -> bool:
        form = {"grant_type": "refresh_token", "client_id": self._config.client_id or "",
                "client_secret": self._config.client_secret or "", "refresh_token": self._refresh_token or ""}
        try:
            body = self._client.post(self._token_path, data=form, what="an OAuth access token").body
        except ApiError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise ApiAuthError(
                    f"authentication failed for HubSpot (check connection {self._config.conn_id!r}): the "
                    f"OAuth refresh was refused: {exc}",
                    api=API, status=exc.status, method="POST", path=self._token_path,
                ) from None
            raise
        self._access_token = body["access_token"]
        self._refresh_token = body.get("refresh_token") or self._refresh_token
        lifetime = float(body.get("expires_in", 1800))
        self._expires_at = self._clock.monotonic() + max(0.0, lifetime - TOKEN_MARGIN.total_seconds())
        return True

    def secrets(self) -> tuple[str | None, ...]:
        return (*self._config.secrets, self._access_token, self._refresh_token)

    def __repr__(self) -> str:
        return "OAuthRefreshAuth(***)"


class HubSpotApi:
    """The calls the source makes, each returning decoded JSON.

    :param config: credentials, base URL and the pinned API version.
    :param policy: retry limits.
    :param clock: time source (tests inject one that does not sleep).
    :param search_rate: search requests per second allowed for these credentials.
    """

    def __init__(
        self, config: HubSpotConfig, policy: RetryPolicy | None = None, clock: Clock | None = None,
        search_rate: float = SEARCH_RATE,
    ) -> None:
        if not (config.access_token or config.uses_oauth):
            raise ConfigError(
                f"hubspot connection {config.conn_id!r} has no private-app token (password) and no OAuth "
                "refresh token (extras client_id, client_secret, refresh_token)"
            )
        self.paths = HubSpotPaths(api_version_of(config))
        clock = clock or SystemClock()
        dialect = HubSpotDialect(clock)

        def client(auth: Auth | None) -> HttpClient:
            return HttpClient(API, config.base_url, auth, conn_id=config.conn_id, dialect=dialect,
                              policy=policy, clock=clock)

        auth: Auth = BearerAuth(config.access_token or "")
        if config.uses_oauth:
            auth = OAuthRefreshAuth(client(None), config, clock, self.paths.token)
        self.client = client(auth)
        self.pacer = search_pacer(config, search_rate, clock)

    def close(self) -> None:
        self.client.close()

    @property
    def api_version(self) -> str:
        return self.paths.version

    def account_details(self) -> Mapping[str, Any]:
        """``GET /account-info/{v}/details``: the portal id and its settings."""
        body = self.client.get(self.paths.account, what="the account details").body
        return body if isinstance(body, Mapping) else {}

    def portal_id(self) -> str:
        """The id of the HubSpot account (portal) these credentials read."""
        portal = self.account_details().get("portalId")
        if isinstance(portal, bool) or not isinstance(portal, (int, str)) or not str(portal).isdigit():
            raise ApiError(f"HubSpot GET {self.paths.account} answered without a portalId ({portal!r})",
                           api=API, status=200, method="GET", path=self.paths.account)
        return str(portal)

    def properties_page(self, object_type: str) -> Page:
        """Every property definition of ``object_type`` (``body["results"]``), and HubSpot's clock."""
        return self.client.get(self.paths.properties(object_type), what=f"the properties of {object_type!r}")

    def list_page(
        self, object_type: str, properties: Sequence[str], after: str | None, archived: bool
    ) -> Page:
        params = [("limit", str(LIST_PAGE)), ("archived", str(archived).lower())]
        if properties:
            params.append(("properties", ",".join(properties)))
        if after:
            params.append(("after", after))
        return self.client.get(self.paths.objects(object_type), params, what=f"the {object_type} list")

    def search_page(self, object_type: str, body: Mapping[str, Any]) -> Page:
        self.pacer.wait()
        return self.client.post(self.paths.objects(object_type, "search"), json=dict(body),
                                what=f"a search of {object_type}")

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str],
                   archived: bool) -> BatchRead:
        """Records by id with ``properties`` (ids in chunks of 100), and the ids HubSpot no longer has.

        :raises ApiError: a 207 with any error other than ``OBJECT_NOT_FOUND``, naming its ids.
        """
        read = BatchRead()
        path = self.paths.objects(object_type, "batch", "read")
        for start in range(0, len(ids), BATCH_READ_SIZE):
            chunk = ids[start:start + BATCH_READ_SIZE]
            body = {"properties": list(properties), "inputs": [{"id": i} for i in chunk]}
            page = self.client.request("POST", path, json=body, params={"archived": str(archived).lower()},
                                       what=f"a batch read of {object_type}")
            read.records.extend(page.body.get("results") or [])
            for error in _partial_errors(page, path, f"a batch read of {object_type}", {"OBJECT_NOT_FOUND"}):
                read.not_found.extend(_error_ids(error, "ids"))
        return read

    def associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """``{from id: [associated to ids]}`` for every id (empty list when none)."""
        found: dict[str, list[str]] = {i: [] for i in ids}
        for start in range(0, len(ids), ASSOCIATION_BATCH):
            chunk = ids[start:start + ASSOCIATION_BATCH]
            for from_id, to_ids in self._association_pages(from_type, to_type, chunk):
                found.setdefault(from_id, []).extend(to_ids)
        return found

    def _association_pages(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> Iterator[tuple[str, list[str]]]:
        inputs: list[dict[str, str]] = [{"id": i} for i in ids]
        path = self.paths.associations(from_type, to_type)
        what = f"{from_type} → {to_type} associations"
        while inputs:
            page = self.client.post(path, json={"inputs": inputs}, what=what)
            # An id with no associations is a 207 error, not an empty result: it is an empty list.
            _partial_errors(page, path, what, {NO_ASSOCIATIONS})
            inputs = []
            for result in page.body.get("results") or []:
                from_id = str(result["from"]["id"])
                yield from_id, [str(to["toObjectId"]) for to in result.get("to") or []]
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    inputs.append({"id": from_id, "after": after})

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent



#: The 207 error of an associations batch read for an id that has none.
NO_ASSOCIATIONS = "crm.associations.NO_ASSOCIATIONS_FOUND"


def _partial_errors(page: Page, path: str, what: str, expected: set[str]) -> list[Mapping[str, Any]]:
    """The per-input errors of a batch answer (HTTP 207) whose category or subCategory is ``expected``.

    :raises ApiError: any other error, naming its category, message and input ids: a partial answer
        is never taken for a complete one.
    """
    errors = [e for e in page.body.get("errors") or [] if isinstance(e, Mapping)]
    unexpected = [e for e in errors if not {str(e.get("category")), str(e.get("subCategory"))} & expected]
    if unexpected:
        described = "; ".join(
            f"{e.get('category')}: {e.get('message')} (ids {_error_ids(e, 'ids', 'fromObjectId')})"
            for e in unexpected
        )
        raise ApiError(f"HubSpot POST {path} ({what}) answered HTTP {page.status} with errors for some "
                       f"inputs: {described}; nothing of this run was committed",
                       api=API, status=page.status, method="POST", path=path)
    return errors


def _error_ids(error: Mapping[str, Any], *keys: str) -> list[str]:
    context = error.get("context") or {}
    return [str(i) for key in keys for i in (context.get(key) or [])]
