"""A loopback double of HubSpot's date-versioned CRM API, following its documented wire contract.

References: HubSpot's 2026-03 API reference (developers.hubspot.com/docs/api-reference/2026-03/...)
for every path and body, its "Search the CRM" guide for the search limits, its error-handling page
and the SDKs' ``BatchResponse...WithErrors`` models for 207 answers, and the changelogs named below.

* **Versions:** every path carries a date-based version (``2026-03`` or ``2026-09``; another gets
  404). The numeric paths (``/oauth/v1``, ``/crm/v3``, ``/crm/v4``, ``/account-info/v3``) are past
  their end dates in this double (OAuth v1 2027-02-16, v4 2027-03-30, v3 September 2027): they
  answer 404 with HubSpot's error body, and ``legacy_requests`` lists them.
* **Auth:** ``Authorization: Bearer <private-app token>`` or an access token issued by
  ``POST /oauth/{v}/token`` (form ``grant_type=refresh_token``, ``client_id``, ``client_secret``,
  ``refresh_token``; answers ``{"token_type": "bearer", "access_token", "refresh_token",
  "expires_in": 1800}``). A bad token gets 401 ``{"status": "error", "message": "Authentication
  credentials not found. ...", "category": "INVALID_AUTHENTICATION", "correlationId": ...}``; an
  expired one ``EXPIRED_AUTHENTICATION``; a bad refresh token 400 ``BAD_REFRESH_TOKEN``.
* **Records:** ``{"id", "properties": {name: text or null}, "createdAt", "updatedAt" (ISO, ms),
  "archived"}`` (+ ``archivedAt``). Property values are strings, as HubSpot sends them.
* ``GET /crm/properties/{v}/{object}`` → ``{"results": [definition, ...]}``.
* ``GET /crm/objects/{v}/{object}``: ``limit`` 1..100 (more is a 400 ``VALIDATION_ERROR``), ``after``
  cursor, ``properties`` (comma separated), ``archived``; ``{"results", "paging": {"next": {"after",
  "link"}}}`` (no ``paging`` on the last page).
* ``POST /crm/objects/{v}/{object}/search``: ``filterGroups`` (EQ, NEQ, GT, GTE, LT, LTE), at most 5
  groups, 6 filters in a group and 18 in all, at most one sort, ``limit`` ≤ 200, offset ``after``;
  anything beyond is a 400 ``VALIDATION_ERROR``. ``{"total", "results", "paging"}``; paging to 10,000
  or beyond is a 400, as HubSpot documents. Archived records are never found.
* ``POST /crm/objects/{v}/{object}/batch/read`` (≤ 100 inputs): ids it does not have (or not in the
  ``archived`` state asked) make it answer **207** with ``{"status": "COMPLETE", "results",
  "numErrors", "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not
  get some <TYPE> objects, they may be deleted or not exist. Check that ids are valid.", "context":
  {"ids": [...]}}]}``.
* ``POST /crm/associations/{v}/{from}/{to}/batch/read`` (≤ 1,000 inputs): ``{"status": "COMPLETE",
  "results": [{"from": {"id"}, "to": [{"toObjectId", "associationTypes"}]}]}``, paged per id beyond
  ``association_page`` associations; ids without associations make it a 207 with one error each,
  ``OBJECT_NOT_FOUND`` / ``crm.associations.NO_ASSOCIATIONS_FOUND``.
* An unknown object type gets 400 "Unable to infer object type from: <name>".
* **Search rate** (opt-in, ``search_limit=4``): HubSpot allows four search requests per second per
  token and answers more with 429 ``{"status": "error", "message": "You have reached your secondly
  limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}`` and *no* ``Retry-After``. The double
  counts searches per token over the last ``search_window`` seconds of real time (0.8 s by default:
  0.2 s of slack for loopback scheduling). Off by default because tests on a fake clock do not wait.
* ``GET /account-info/{v}/details`` → ``{"portalId", "accountType", "timeZone", "companyCurrency",
  "additionalCurrencies", "utcOffset", "utcOffsetMilliseconds", "uiDomain", "dataHostingLocation"}``.
"""

from __future__ import annotations

import bisect
import collections
import functools
import re
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tests.doubles.server import ApiDouble, Request, Response

TOKEN = "pat-na1-00000000-dati-vo00-doub-le0000000001"
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_DEFAULT_PROPERTIES = {
    "contacts": ["firstname", "lastname", "email"],
    "companies": ["name", "domain"],
    "deals": ["dealname", "amount", "closedate", "pipeline", "dealstage"],
    "tickets": ["subject", "content", "hs_pipeline", "hs_pipeline_stage"],
}
_ASSOCIATION_TYPE = {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}
#: The date-based versions the double serves.
VERSIONS = ("2026-03", "2026-09")
_LEGACY = re.compile(r"/(?:oauth/v1|crm/v[34]|account-info/v3)(?:/|$)")
#: HubSpot's documented search limits ("Search the CRM", Limitations).
MAX_FILTER_GROUPS, MAX_GROUP_FILTERS, MAX_FILTERS, MAX_SORTS = 5, 6, 18, 1


def iso_ms(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cursor_of(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def created_of(object_type: str) -> str:
    return "createdate" if object_type in ("contacts", "companies", "deals") else "hs_createdate"


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    return Response(status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                             "category": category, **extra})


def definition(name: str, kind: str = "string", field_type: str = "text") -> dict[str, Any]:
    """A property definition shaped as ``GET /crm/v3/properties/{object}`` returns it."""
    return {"name": name, "label": name.replace("_", " ").title(), "type": kind, "fieldType": field_type,
            "description": "", "groupName": "info", "options": [], "displayOrder": -1, "calculated": False,
            "externalOptions": False, "hasUniqueValue": name == "hs_object_id", "hidden": False,
            "hubspotDefined": not name.startswith("custom_"),
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": True, "readOnlyValue": False},
            "formField": True}


class HubSpotDouble(ApiDouble):
    """CRM objects of one portal, reachable with a private-app token or OAuth."""

    def __init__(self, token: str = TOKEN, oauth: dict[str, str] | None = None, association_page: int = 500,
                 search_limit: int | None = None, search_window: float = 0.8) -> None:
        super().__init__()
        self.search_limit = search_limit
        self.search_window = search_window
        self._recent_searches: dict[str, collections.deque[float]] = {}
        #: Searches answered 429 because of the search rate.
        self.rate_limited = 0
        self.token = token
        self.oauth = oauth or {}
        self.issued: set[str] = set()
        self.expired: set[str] = set()
        self.association_page = association_page
        self.definitions: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.links: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.aliases: dict[str, str] = {}
        self.portal_id = 62515
        #: Requests to the numeric (past end-of-support) paths, answered 404.
        self.legacy_requests: list[Request] = []
        self._index: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}

    # -- data ------------------------------------------------------------------------------------

    def define(self, object_type: str, definitions: Iterable[dict[str, Any]], alias: str | None = None) -> None:
        """Declare an object type's properties (the id/created/modified ones are added)."""
        base = [definition("hs_object_id", "number", "number"), definition(created_of(object_type), "datetime", "date"),
                definition(cursor_of(object_type), "datetime", "date")]
        with self.lock:
            self.definitions[object_type] = base + list(definitions)
            self.records.setdefault(object_type, {})
            if alias:
                self.aliases[alias] = object_type

    def put(self, object_type: str, record_id: int, properties: dict[str, str | None], created: int,
            modified: int | None = None) -> None:
        """Create or replace a record; ``created``/``modified`` are epoch milliseconds."""
        modified = created if modified is None else modified
        props = {**properties, "hs_object_id": str(record_id), created_of(object_type): iso_ms(created),
                 cursor_of(object_type): iso_ms(modified)}
        with self.lock:
            self._index.pop(object_type, None)
            self.records[object_type][str(record_id)] = {
                "id": str(record_id), "properties": props, "createdAt": iso_ms(created),
                "updatedAt": iso_ms(modified), "archived": False, "_modified": modified,
            }

    def update(self, object_type: str, record_id: int, modified: int, **properties: str | None) -> None:
        with self.lock:
            record = self.records[object_type][str(record_id)]
            record["properties"].update(properties, **{cursor_of(object_type): iso_ms(modified)})
            record.update(updatedAt=iso_ms(modified), _modified=modified)
            self._index.pop(object_type, None)

    def archive(self, object_type: str, record_id: int, at: int) -> None:
        with self.lock:
            record = self.records[object_type][str(record_id)]
            record.update(archived=True, archivedAt=iso_ms(at), updatedAt=iso_ms(at))
            self._index.pop(object_type, None)

    def link(self, from_type: str, to_type: str, from_id: int, to_ids: Iterable[int]) -> None:
        with self.lock:
            self.links.setdefault((from_type, to_type), {})[str(from_id)] = [str(i) for i in to_ids]

    def expire_tokens(self) -> None:
        """Every OAuth access token issued so far now gets 401 EXPIRED_AUTHENTICATION."""
        with self.lock:
            self.expired |= self.issued

    # -- routing ---------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        if _LEGACY.match(request.path):
            self.legacy_requests.append(request)
            return _error(404, f"{request.path} is no longer available: HubSpot's numeric API versions have "
                          "reached their end of support; use a date-based version such as /crm/objects/2026-03/",
                          "OBJECT_NOT_FOUND")
        parts = request.path.strip("/").split("/")
        # /crm/{api}/{version}/{name}/... and /{api}/{version}/...
        version = parts[2] if parts[0] == "crm" and len(parts) > 3 else parts[1] if len(parts) > 1 else None
        if version not in VERSIONS:
            return _error(404, f"Unknown path {request.path}", "OBJECT_NOT_FOUND")
        if parts[0] == "oauth" and parts[2:] == ["token"] and request.method == "POST":
            return self._token(request.body or {})
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if parts[0] == "account-info" and parts[2:] == ["details"] and request.method == "GET":
            return Response(200, {"portalId": self.portal_id, "accountType": "STANDARD", "timeZone": "US/Eastern",
                                  "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                                  "utcOffsetMilliseconds": -18_000_000, "uiDomain": "app.hubspot.com",
                                  "dataHostingLocation": "na1"})
        if parts[0] == "crm":
            return self._crm(request, parts[1], parts[3], parts[4:])
        return _error(404, f"Unknown path {request.path}", "OBJECT_NOT_FOUND")

    def _crm(self, request: Request, api: str, name: str, rest: list[str]) -> Response:
        """``/crm/{api}/{version}/{name}/...`` with ``api`` properties, objects or associations."""
        if api == "associations" and len(rest) == 3 and rest[1:] == ["batch", "read"] and request.method == "POST":
            return self._associations(name, rest[0], request.body or {})
        object_type = self.aliases.get(name, name)
        if api not in ("properties", "objects"):
            return _error(404, f"Unknown path {request.path}", "OBJECT_NOT_FOUND")
        if object_type not in self.definitions:
            return _error(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
        if api == "properties" and rest == [] and request.method == "GET":
            return Response(200, {"results": self.definitions[object_type]})
        if api == "objects" and rest == [] and request.method == "GET":
            return self._list(request, object_type)
        if api == "objects" and rest == ["search"] and request.method == "POST":
            return self._rate_limited(request) or self._search(request.body or {}, object_type)
        if api == "objects" and rest == ["batch", "read"] and request.method == "POST":
            return self._batch_read(request, object_type)
        return _error(404, f"Unknown path {request.path}", "OBJECT_NOT_FOUND")

    def _rate_limited(self, request: Request) -> Response | None:
        if self.search_limit is None:
            return None
        now = time.monotonic()
        recent = self._recent_searches.setdefault(request.headers.get("authorization", ""), collections.deque())
        while recent and recent[0] <= now - self.search_window:
            recent.popleft()
        if len(recent) >= self.search_limit:
            self.rate_limited += 1
            return Response(429, {"status": "error", "message": "You have reached your secondly limit.",
                                  "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                                  "policyName": "SECONDLY"})
        recent.append(now)
        return None

    def _authenticate(self, request: Request) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token in self.expired:
            return _error(401, "The OAuth token used to make this call expired 0 second(s) ago.",
                          "EXPIRED_AUTHENTICATION")
        if token != self.token and token not in self.issued:
            return _error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                          "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                          "oauth-overview", "INVALID_AUTHENTICATION")
        return None

    def _token(self, form: dict[str, str]) -> Response:
        # The date-versioned OAuth API answers HubSpot's standard error body (the v1 one put the
        # code in "status"); the category names what was wrong.
        expected = self.oauth
        if form.get("grant_type") != "refresh_token" or not expected:
            return _error(400, "unsupported grant type", "BAD_GRANT_TYPE")
        if form.get("client_id") != expected["client_id"] or form.get("client_secret") != expected["client_secret"]:
            return _error(400, "missing or invalid client credentials", "BAD_CLIENT_ID")
        if form.get("refresh_token") != expected["refresh_token"]:
            return _error(400, "missing or unknown refresh token", "BAD_REFRESH_TOKEN")
        access = f"COj{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.issued.add(access)
        return Response(200, {"token_type": "bearer", "refresh_token": expected["refresh_token"],
                              "access_token": access, "expires_in": 1800})

    # -- reads -----------------------------------------------------------------------------------

    def _shaped(self, object_type: str, record: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        names = wanted if wanted else _DEFAULT_PROPERTIES.get(object_type, [])
        names = [*names, "hs_object_id", created_of(object_type), cursor_of(object_type)]
        props = {n: record["properties"].get(n) for n in dict.fromkeys(names)}
        shaped = {"id": record["id"], "properties": props, "createdAt": record["createdAt"],
                  "updatedAt": record["updatedAt"], "archived": record["archived"]}
        if record["archived"]:
            shaped["archivedAt"] = record["archivedAt"]
        return shaped

    def _indexes(self, object_type: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids in order, and (last modified ms, id) in order: rebuilt after a change."""
        if object_type not in self._index:
            records = self.records[object_type].values()
            self._index[object_type] = (sorted(int(r["id"]) for r in records),
                                        sorted((r["_modified"], int(r["id"])) for r in records))
        return self._index[object_type]

    def _list(self, request: Request, object_type: str) -> Response:
        limit = int(request.param("limit", "10") or 10)
        if not 1 <= limit <= 100:
            return _error(400, f"limit must be between 1 and 100, got {limit}", "VALIDATION_ERROR")
        archived = request.param("archived", "false") == "true"
        wanted = [p for p in (request.param("properties") or "").split(",") if p] or None
        ids = self._indexes(object_type)[0]
        records, page = self.records[object_type], []
        for record_id in ids[bisect.bisect_left(ids, int(request.param("after") or 0)):]:
            if records[str(record_id)]["archived"] == archived:
                page.append(records[str(record_id)])
                if len(page) > limit:
                    break
        body: dict[str, Any] = {"results": [self._shaped(object_type, r, wanted) for r in page[:limit]]}
        if len(page) > limit:
            next_after = page[limit]["id"]
            body["paging"] = {"next": {"after": next_after,
                                       "link": f"https://api.hubapi.com{request.path}?after={next_after}"}}
        return Response(200, body)

    def _search(self, body: dict[str, Any], object_type: str) -> Response:
        limit, offset = int(body.get("limit", 10)), int(body.get("after") or 0)
        if limit > 200:
            return _error(400, "limit must be less than or equal to 200", "VALIDATION_ERROR")
        refused = _search_limits(body)
        if refused is not None:
            return _error(400, refused, "VALIDATION_ERROR")
        if offset >= 10_000:
            return _error(400, "There was a problem with the request.", "VALIDATION_ERROR",
                          errors=[{"message": "after must be less than 10000"}])
        rows, exact = self._candidates(object_type, body.get("filterGroups") or [])
        rows = [r for r in rows if not r["archived"] and (exact or _matches(r, body.get("filterGroups") or []))]
        for sort in reversed(body.get("sorts") or []):
            rows.sort(key=lambda r: _comparable(_value(r, sort["propertyName"])),
                      reverse=sort.get("direction") == "DESCENDING")
        page = rows[offset: offset + limit]
        out: dict[str, Any] = {"total": len(rows),
                               "results": [self._shaped(object_type, r, body.get("properties")) for r in page]}
        if offset + limit < len(rows):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, out)

    def _candidates(self, object_type: str, groups: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """Records that may match, narrowed through the last-modified index when there is one group;
        True when the narrowing applied every filter (the source's window and keyset searches)."""
        records = self.records[object_type]
        if len(groups) != 1:
            return list(records.values()), False
        low, high, handled = (-(2**63), -1), (2**63, -1), 0
        for flt in groups[0].get("filters", []):
            value, operator = int(_comparable(flt["value"])[1]), flt["operator"]
            if flt["propertyName"] == cursor_of(object_type) and operator in ("EQ", "GTE", "LT"):
                low = max(low, (value, -1)) if operator in ("EQ", "GTE") else low
                high = min(high, (value + 1 if operator == "EQ" else value, -1)) if operator in ("EQ", "LT") else high
                handled += 1
        equal = [f for f in groups[0]["filters"] if f["operator"] == "EQ" and f["propertyName"] == cursor_of(object_type)]
        for flt in groups[0]["filters"]:
            if equal and flt["propertyName"] == "hs_object_id" and flt["operator"] == "GT":
                low, handled = max(low, (low[0], int(flt["value"]) + 1)), handled + 1
        by_modified = self._indexes(object_type)[1]
        start, end = bisect.bisect_left(by_modified, low), bisect.bisect_left(by_modified, high)
        rows = [records[str(record_id)] for _, record_id in by_modified[start:end]]
        return rows, handled == len(groups[0]["filters"])

    def _batch_read(self, request: Request, object_type: str) -> Response:
        body = request.body or {}
        inputs = body.get("inputs", [])
        if len(inputs) > 100:
            return _error(400, f"Batch input size {len(inputs)} exceeds the limit of 100", "VALIDATION_ERROR")
        archived = request.param("archived", "false") == "true"
        records = self.records[object_type]
        found = [records[i["id"]] for i in inputs if i["id"] in records and records[i["id"]]["archived"] == archived]
        missing = [i["id"] for i in inputs if i["id"] not in {r["id"] for r in found}]
        now = iso_ms(T0_MS)
        answer: dict[str, Any] = {"status": "COMPLETE", "startedAt": now, "completedAt": now,
                                  "results": [self._shaped(object_type, r, body.get("properties")) for r in found]}
        if not missing:
            return Response(200, answer)
        label = object_type.upper().rstrip("S")
        answer.update(numErrors=1, errors=[{
            "status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": missing},
            "message": f"Could not get some {label} objects, they may be deleted or not exist. "
                       "Check that ids are valid.",
        }])
        return Response(207, answer)

    def _associations(self, from_type: str, to_type: str, body: dict[str, Any]) -> Response:
        inputs = body.get("inputs", [])
        if len(inputs) > 1_000:
            return _error(400, f"Batch input size {len(inputs)} exceeds the limit of 1000", "VALIDATION_ERROR")
        links = self.links.get((self.aliases.get(from_type, from_type), to_type), {})
        results, errors = [], []
        for item in inputs:
            to_ids = links.get(str(item["id"]), [])
            start = int(item.get("after") or 0)
            chunk = to_ids[start:start + self.association_page]
            if not chunk:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                               "message": f"No {to_type} is associated with {from_type} {item['id']}.",
                               "context": {"fromObjectId": [str(item["id"])], "fromObjectType": [from_type],
                                           "toObjectType": [to_type]}})
                continue
            result: dict[str, Any] = {"from": {"id": str(item["id"])},
                                      "to": [{"toObjectId": int(i), "associationTypes": [_ASSOCIATION_TYPE]}
                                             for i in chunk]}
            if start + self.association_page < len(to_ids):
                result["paging"] = {"next": {"after": str(start + self.association_page), "link": None}}
            results.append(result)
        now = iso_ms(T0_MS)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            answer.update(numErrors=len(errors), errors=errors)
        return Response(207 if errors else 200, answer)


def _search_limits(body: dict[str, Any]) -> str | None:
    """What HubSpot's search refuses beyond its documented limits, or None."""
    groups = body.get("filterGroups") or []
    counts = [len(g.get("filters") or []) for g in groups]
    if len(groups) > MAX_FILTER_GROUPS:
        return f"Too many filter groups: {len(groups)}; the maximum is {MAX_FILTER_GROUPS}"
    if any(c > MAX_GROUP_FILTERS for c in counts):
        return f"Too many filters in a filter group: {max(counts)}; the maximum is {MAX_GROUP_FILTERS}"
    if sum(counts) > MAX_FILTERS:
        return f"Too many filters: {sum(counts)}; the maximum is {MAX_FILTERS} across all filter groups"
    if len(body.get("sorts") or []) > MAX_SORTS:
        return f"Too many sorts: {len(body['sorts'])}; only {MAX_SORTS} sort is supported"
    return None


def _value(record: dict[str, Any], name: str) -> Any:
    if name == "hs_object_id":
        return int(record["id"])
    if name in ("hs_lastmodifieddate", "lastmodifieddate"):
        return record["_modified"]  # kept as epoch ms: searches stay fast over many records
    return record["properties"].get(name)


def _comparable(value: Any) -> Any:
    """Dates compare as epoch ms, numbers as numbers, other text as text (None first)."""
    if value is None:
        return (0, 0)
    if isinstance(value, int):
        return (1, value)
    return _text_key(str(value))


@functools.lru_cache(maxsize=200_000)
def _text_key(text: str) -> tuple[int, Any]:
    if text.lstrip("-").replace(".", "", 1).isdigit():
        return (1, float(text))
    try:
        return (1, datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return (2, text)


def _matches(record: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
    if not groups:
        return True
    return any(all(_test(record, f) for f in group.get("filters", [])) for group in groups)


def _test(record: dict[str, Any], flt: dict[str, Any]) -> bool:
    value, wanted = _comparable(_value(record, flt["propertyName"])), _comparable(flt.get("value"))
    operator = flt["operator"]
    if value == (0, 0):
        return operator == "NEQ"
    return {"EQ": value == wanted, "NEQ": value != wanted, "GT": value > wanted, "GTE": value >= wanted,
            "LT": value < wanted, "LTE": value <= wanted}[operator]
