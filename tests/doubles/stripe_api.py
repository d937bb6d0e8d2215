"""A loopback double of Stripe's list API (``GET /v1/<object>``), following its wire contract.

* **Auth:** ``Authorization: Bearer sk_...`` or HTTP Basic with the key as user name. A wrong key
  gets 401 ``{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided:
  sk_test_****wxyz"}}`` (Stripe masks the key the same way).
* **Connected accounts:** ``Stripe-Account: acct_...`` selects that account's data; an unknown
  account gets 403 ``account_invalid``.
* **Lists:** newest first (``created`` descending, then id), ``limit`` 1..100 (default 10),
  ``starting_after`` / ``ending_before`` cursors, ``created[gt|gte|lt|lte]``, ``expand[]=data.<field>``
  (the field's id replaced by the object it names). Response ``{"object": "list", "data": [...],
  "has_more": bool, "url": "/v1/<object>"}``. Unknown endpoints get 404 "Unrecognized request URL".
  Subscriptions leave out canceled ones unless ``status=all`` (as Stripe does).
* **Strictness (400 ``invalid_request_error``, as Stripe answers):** a parameter the endpoint does
  not list (code ``parameter_unknown``, ``param`` the name); ``expand[]`` of a field that is not
  expandable on that object, or without the ``data.`` prefix lists need ("This property cannot be
  expanded (x)", ``param`` ``expand[n]``); ``starting_after`` with ``ending_before`` ("Received
  both ..."; Stripe sends no code for these two).
* **Restricted keys:** ``denied=[object]`` answers 403 ``invalid_request_error`` "does not have the
  required permissions ... Having the 'rak_<object>_read' permission would allow this request to
  continue." (Stripe's wording, no code).
* **API versions:** ``Stripe-Version`` (else the account's default, ``default_version``) selects
  the shapes. Objects are stored as before ``2025-03-31.basil``; on basil and later a subscription's
  ``current_period_start/end`` move into each of its items, an invoice loses ``paid``, ``charge``,
  ``payment_intent`` and ``subscription`` (now ``parent.subscription_details.subscription``), charges
  and payment intents lose ``invoice``. A version that is not one gets 400 "Invalid Stripe API version".
* **Account:** ``GET /v1/account`` answers ``{"id": "acct_...", "object": "account", ...}``: the
  key's own account (``account_id``), or the one ``Stripe-Account`` names.
* **Balance:** ``GET /v1/balance`` answers ``{"object": "balance", "available": [...], "pending":
  [...], "livemode"}`` (amounts per currency and source type, zero here).
* **Events** (``GET /v1/events``, API reference "List all events"): the double records an event
  whenever a test changes its data: ``add`` (``charge.succeeded``, ``customer.created``, ...),
  ``update`` (``<prefix>.updated``), ``refund`` (``charge.refunded``), ``delete``
  (``customer.deleted``, ``invoice.deleted``: the object leaves its list). ``data.object`` is the
  object as it was then, rendered in the account's default version of that moment (the event's
  ``api_version``), never the request's ``Stripe-Version``; updates carry ``previous_attributes``.
  Newest first (``created``, then the later event first), cursors and ``created`` filters as lists;
  ``type`` (one name, ``*`` a wildcard: ``charge.*``) or ``types[]`` (up to 20 exact names), not both;
  events older than 30 days (``RETENTION``) are gone, as on Stripe.
* **Retrieve** (``GET /v1/<object>/<id>``, ``expand[]=<field>`` without ``data.``): the object in the
  request's version; 404 ``resource_missing`` "No such charge: 'ch_x'" for an unknown id; a deleted
  customer answers ``{"id", "object", "deleted": true}``, a deleted invoice 404 (Stripe's behaviour).
* **Search** (``GET /v1/<object>/search``, Stripe's "Search query language" page): only for
  charges, customers, invoices, payment_intents, prices, products and subscriptions (others 404);
  ``query`` required, ``limit``, ``page`` (the ``next_page`` of the previous answer, anything else
  400), ``expand[]``; other parameters are unknown (no ``starting_after``). Clauses ``field:value``,
  ``field~"sub"`` (3 characters at least), ``> >= < <=`` on numbers and timestamps, ``-`` negation,
  ``metadata["key"]:"value"``, ``null``; string values quoted; ``AND`` or ``OR`` (not both in one
  query); at most 10 clauses; only each object's documented query fields. Answer ``{"object":
  "search_result", "data", "has_more", "next_page", "url"}`` (``total_count`` with
  ``expand[]=total_count``). The error wording for bad queries is ours (Stripe's is not published);
  the status, type and ``param`` are Stripe's.
* **Speed:** objects are serialised once; a page is the joined bytes of its objects.

Run it standalone (the benchmark does): ``python -m tests.doubles.stripe_api --charges 50000``
prints ``READY http://127.0.0.1:<port>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.server import ApiDouble, Request, Response

API_KEY = "sk_test_51DativoDoubleKey0000000000wxyz"
BASIL = "2025-03-31.basil"
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
_COMMON_PARAMS = {"limit", "starting_after", "ending_before", "expand[]", "created"}
#: Stripe keeps events this long ("List events, going back up to 30 days").
RETENTION = 30 * 86400
#: The event type prefix of each object (``customer.subscription.updated``) ...
_EVENT_PREFIX = {"charges": "charge", "customers": "customer", "invoices": "invoice",
                 "subscriptions": "customer.subscription", "payment_intents": "payment_intent", "products": "product"}
#: ... and the event its creation sends, where it is not ``<prefix>.created``.
_CREATION_EVENT = {"charges": "charge.succeeded"}
#: Objects whose deletion removes them (``<prefix>.deleted``); a canceled subscription stays.
_DELETABLE = {"customers", "invoices", "products"}
#: Retrieving a deleted one of these answers a stub ``{"id", "object", "deleted": true}``; others 404.
_STUB_WHEN_DELETED = {"customers", "products"}
#: Search query fields per object (Stripe's "Search query language", "Query fields for ..."):
#: name -> "string" | "number" (numbers and timestamps: comparators allowed) | "token" (exact only).
_SEARCH_FIELDS: dict[str, dict[str, str]] = {
    "charges": {"amount": "number", "billing_details.address.postal_code": "string", "created": "number",
                "currency": "token", "customer": "token", "disputed": "token", "metadata": "string",
                "payment_method_details.card.last4": "string", "payment_method_details.card.brand": "token",
                "payment_method_details.card.exp_month": "number", "payment_method_details.card.exp_year": "number",
                "payment_method_details.card.fingerprint": "token", "refunded": "token", "status": "token"},
    "customers": {"created": "number", "email": "string", "metadata": "string", "name": "string",
                  "phone": "string"},
    "invoices": {"created": "number", "currency": "token", "customer": "token", "last_finalization_error_code": "token",
                 "last_finalization_error_type": "token", "metadata": "string", "number": "string",
                 "receipt_number": "string", "status": "token", "subscription": "token", "total": "number"},
    "payment_intents": {"amount": "number", "created": "number", "currency": "token", "customer": "token",
                        "metadata": "string", "status": "token"},
    "prices": {"active": "token", "currency": "token", "lookup_key": "string", "metadata": "string",
               "product": "token", "type": "token"},
    "products": {"active": "token", "description": "string", "metadata": "string", "name": "string",
                 "shippable": "token", "url": "string"},
    "subscriptions": {"created": "number", "metadata": "string", "status": "token"},
}
_MAX_CLAUSES = 10
#: Each list endpoint's own filters (Stripe's API reference); anything else is "unknown parameter".
_LIST_PARAMS = {
    "charges": {"customer", "payment_intent", "transfer_group"},
    "customers": {"email", "test_clock"},
    "invoices": {"collection_method", "customer", "due_date", "status", "subscription", "test_clock"},
    "subscriptions": {"automatic_tax", "collection_method", "current_period_end", "current_period_start",
                      "customer", "price", "status", "test_clock"},
    "payment_intents": {"customer"},
    "balance_transactions": {"currency", "payout", "source", "type"},
    "events": {"delivery_success", "type", "types"},
    "products": {"active", "ids", "shippable", "url"},
}
#: Fields each object lets ``expand`` replace by the object they name; others "cannot be expanded".
_EXPANDABLE = {
    "charges": {"customer", "balance_transaction", "invoice", "payment_intent", "application", "application_fee",
                "on_behalf_of", "review", "source_transfer", "failure_balance_transaction", "transfer"},
    "customers": {"default_source", "test_clock"},
    "invoices": {"customer", "subscription", "charge", "payment_intent", "default_payment_method",
                 "default_source", "application", "on_behalf_of", "test_clock"},
    "subscriptions": {"customer", "latest_invoice", "default_payment_method", "default_source",
                      "pending_setup_intent", "schedule", "application", "on_behalf_of", "test_clock"},
    "payment_intents": {"customer", "invoice", "latest_charge", "payment_method", "application", "on_behalf_of",
                        "review"},
    "balance_transactions": {"source"},
    "products": {"default_price"},
}
#: Objects a restricted key reads only with this permission (``rak_<name>_read``).
_PERMISSIONS = {"charges": "charge", "customers": "customer", "invoices": "invoice", "subscriptions": "subscription",
                "payment_intents": "payment_intent", "balance_transactions": "balance", "events": "event",
                "products": "product"}
#: Expandable field -> the collection its id points into.
_EXPANDS = {"customer": "customers", "balance_transaction": "balance_transactions", "invoice": "invoices",
            "payment_intent": "payment_intents", "latest_charge": "charges", "subscription": "subscriptions"}
_ID_PREFIX = {"customers": "cus", "charges": "ch", "subscriptions": "sub", "payment_intents": "pi",
              "invoices": "in", "balance_transactions": "txn", "events": "evt", "products": "prod"}


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> Response:
    error = {"type": "invalid_request_error", "message": message, **extra}
    if code:
        error["code"] = code
    return Response(status, {"error": error}, {"Request-Id": "req_double"})


@dataclass
class _Collection:
    """One list endpoint's objects, kept sorted newest first, each serialised once."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    _order: list[str] = field(default_factory=list)
    _keys: list[int] = field(default_factory=list)
    _position: dict[str, int] = field(default_factory=dict)
    _bytes: dict[str, bytes] = field(default_factory=dict)
    _dirty: bool = True

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["id"]] = obj
        self._bytes.pop(obj["id"], None)
        self._dirty = True

    def remove(self, object_id: str) -> None:
        del self.objects[object_id]
        self._bytes.pop(object_id, None)
        self._dirty = True

    def sorted(self) -> tuple[list[str], list[int], dict[str, int]]:
        if self._dirty:
            self._order = sorted(self.objects, key=lambda i: (-(self.objects[i]["created"] or 0), _reverse(i)))
            self._keys = [-(self.objects[i]["created"] or 0) for i in self._order]
            self._position = {object_id: n for n, object_id in enumerate(self._order)}
            self._dirty = False
        return self._order, self._keys, self._position

    def serialised(self, object_id: str) -> bytes:
        data = self._bytes.get(object_id)
        if data is None:
            data = self._bytes[object_id] = json.dumps(self.objects[object_id]).encode()
        return data


def _reverse(object_id: str) -> tuple[int, ...]:
    """Sort ids descending inside one second (the ``created`` tie-break)."""
    return tuple(-ord(c) for c in object_id)


class StripeDouble(ApiDouble):
    """Stripe's list endpoints for one secret key, a platform account and connected accounts."""

    def __init__(self, api_key: str = API_KEY, accounts: Iterable[str] = (),
                 denied: Iterable[str] = (), account_id: str = "acct_1DativoPlatform0") -> None:
        super().__init__()
        self.api_key = api_key
        #: The key's own (platform) account, as ``GET /v1/account`` names it.
        self.account_id = account_id
        self.accounts = set(accounts)
        #: Objects the key may not read (a restricted key without that permission): 403.
        self.denied = set(denied)
        #: The account's API version, used when a request sends no ``Stripe-Version``.
        self.default_version = "2024-06-20"
        self.data: dict[tuple[str | None, str], _Collection] = {}
        #: Ids of deleted objects per (account, resource): what a retrieve answers for them.
        self.deleted: dict[tuple[str | None, str], set[str]] = {}
        self._event_seq = 0

    # -- data ------------------------------------------------------------------------------------

    def add(self, resource: str, objects: Iterable[dict[str, Any]], account: str | None = None,
            events: bool = True) -> None:
        """Store objects; each new one sends its creation event (dated its ``created``) unless ``events`` is off."""
        with self.lock:
            collection = self.data.setdefault((account, resource), _Collection())
            for obj in objects:
                new = obj["id"] not in collection.objects
                collection.put(obj)
                if events and new and resource in _EVENT_PREFIX and not obj.get("deleted"):
                    kind = _CREATION_EVENT.get(resource, f"{_EVENT_PREFIX[resource]}.created")
                    self.emit(kind, resource, obj, account, created=obj.get("created"))

    def update(self, resource: str, object_id: str, account: str | None = None, **fields: Any) -> None:
        """Change fields of an object, sending ``<prefix>.updated`` with ``previous_attributes``."""
        self._change(resource, object_id, account, f"{_EVENT_PREFIX.get(resource, resource)}.updated", fields)

    def refund(self, charge_id: str, amount: int | None = None, account: str | None = None) -> None:
        """Refund a charge (whole by default), as ``POST /v1/refunds`` does: ``charge.refunded``."""
        with self.lock:
            current = self.data[(account, "charges")].objects[charge_id]
            refunded = current["amount_refunded"] + (current["amount"] - current["amount_refunded"]
                                                      if amount is None else amount)
            self._change("charges", charge_id, account, "charge.refunded",
                         {"amount_refunded": refunded, "refunded": refunded >= current["amount"]})

    def delete(self, resource: str, object_id: str, account: str | None = None) -> None:
        """Delete an object: it leaves its list and ``<prefix>.deleted`` carries its last state."""
        if resource not in _DELETABLE:
            raise ValueError(f"Stripe does not delete {resource}")
        with self.lock:
            collection = self.data[(account, resource)]
            last = collection.objects[object_id]
            collection.remove(object_id)
            self.deleted.setdefault((account, resource), set()).add(object_id)
            self.emit(f"{_EVENT_PREFIX[resource]}.deleted", resource, last, account)

    def _change(self, resource: str, object_id: str, account: str | None, kind: str,
                fields: dict[str, Any]) -> None:
        with self.lock:
            collection = self.data[(account, resource)]
            before = collection.objects[object_id]
            collection.put({**before, **fields})
            previous = {k: before.get(k) for k in fields if before.get(k) != fields[k]}
            if resource in _EVENT_PREFIX:
                self.emit(kind, resource, collection.objects[object_id], account, previous=previous)

    def emit(self, kind: str, resource: str, obj: dict[str, Any], account: str | None = None,
             created: int | None = None, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record an event as Stripe would: ``data.object`` rendered in the account's version of now."""
        with self.lock:
            self._event_seq += 1
            version = self.default_version
            shape = _BASIL_SHAPES.get(resource) if version[:10] >= BASIL[:10] else None
            data: dict[str, Any] = {"object": shape(obj) if shape else dict(obj)}
            if previous is not None:
                data["previous_attributes"] = previous
            event = {"id": f"evt_{self._event_seq:014d}", "object": "event", "api_version": version,
                     "created": self.clock() if created is None else created, "data": data,
                     "livemode": False, "pending_webhooks": 0,
                     "request": {"id": "req_double", "idempotency_key": None}, "type": kind}
            if account is not None:
                event["account"] = account
            self.data.setdefault((account, "events"), _Collection()).put(event)
            return event

    def clock(self) -> int:
        """The double's time as unix seconds (``now``, else the real time)."""
        return int(self.now.timestamp() if self.now is not None else time.time())

    def get(self, resource: str, object_id: str, account: str | None = None) -> dict[str, Any]:
        return self.data[(account, resource)].objects[object_id]

    # -- routing ---------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        account = request.headers.get("stripe-account")
        if account is not None and account not in self.accounts:
            return _error(403, f"The provided key '{_masked(self.api_key)}' does not have access to account "
                          f"'{account}' (or that account does not exist).", "account_invalid")
        version = request.headers.get("stripe-version")
        if version is not None and not _VERSION.fullmatch(version):
            return _error(400, f"Invalid Stripe API version: {version}", "api_version_invalid")
        if request.path == "/v1/balance" and request.method == "GET":
            return self._balance()
        resource = request.path.removeprefix("/v1/")
        if resource in self.denied:
            permission = f"rak_{_PERMISSIONS.get(resource, resource.rstrip('s'))}_read"
            return _error(403, f"The provided key '{_masked(self.api_key)}' does not have the required permissions "
                          f"for this endpoint on account '{account or self.account_id}'. Having the '{permission}' "
                          "permission would allow this request to continue.")
        if resource == "account" and request.method == "GET":
            body = {"id": account or self.account_id, "object": "account", "country": "DE",
                    "default_currency": "eur", "type": "standard" if account is None else "express"}
            return Response(200, body, {"Request-Id": "req_double"})
        head, _, tail = resource.rpartition("/")
        if request.method == "GET" and head in _SEARCH_FIELDS and tail == "search":
            return self._search(request, head, self.data.get((account, head)) or _Collection())
        if request.method == "GET" and head in _known(self.data) and tail not in ("", "search") and head != "events":
            return self._retrieve(request, head, tail, account)
        if request.method != "GET" or not request.path.startswith("/v1/") or resource not in _known(self.data):
            return _error(404, f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                          "https://stripe.com/docs or we can help at https://support.stripe.com/.")
        return self._list(request, resource, self.data.get((account, resource)) or _Collection())

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            key = header.removeprefix("Bearer ")
        elif header.startswith("Basic "):
            key = base64.b64decode(header.removeprefix("Basic ")).decode().split(":")[0]
        else:
            return _error(401, "You did not provide an API key. You need to provide your API key in the "
                          "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
        if key != self.api_key:
            return _error(401, f"Invalid API Key provided: {_masked(key)}")
        return None

    def _balance(self) -> Response:
        funds = [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
        body = {"object": "balance", "available": funds, "pending": funds,
                "livemode": self.api_key.startswith(("sk_live_", "rk_live_"))}
        return Response(200, body, {"Request-Id": "req_double"})

    def _list(self, request: Request, resource: str, collection: _Collection) -> Response:
        allowed = _COMMON_PARAMS | _LIST_PARAMS.get(resource, set())
        unknown = [k for k in request.params if k.split("[")[0] not in allowed and k != "expand[]"]
        if unknown:
            return _error(400, f"Received unknown parameter: {unknown[0]}", "parameter_unknown", param=unknown[0])
        if request.param("starting_after") is not None and request.param("ending_before") is not None:
            return _error(400, "Received both starting_after and ending_before parameters. Please pass in only one.")
        if resource == "events":
            refused = _event_filter_error(request)
            if refused is not None:
                return refused
        for n, path in enumerate(request.params.get("expand[]", [])):
            name = path.removeprefix("data.").split(".")[0]
            if not path.startswith("data."):
                return _error(400, f"This property cannot be expanded ({path}). You may want to try expanding "
                              f"'data.{path}' instead.", param=f"expand[{n}]")
            if name not in _EXPANDABLE.get(resource, set()):
                return _error(400, f"This property cannot be expanded ({name}).", param=f"expand[{n}]")
        try:
            limit = int(request.param("limit", "10"))
        except ValueError:
            return _error(400, "Invalid integer: limit", "parameter_invalid_integer", param="limit")
        if not 1 <= limit <= 100:
            return _error(400, "This value must be less than or equal to 100.", "parameter_invalid_integer")
        matching = self._matching(request, resource, collection, limit)
        if isinstance(matching, Response):
            return matching
        page, has_more = matching
        return self._page(request, resource, collection, page, has_more)

    def _matching(self, request: Request, resource: str, collection: _Collection,
                  limit: int) -> tuple[list[str], bool] | Response:
        """One page of ids and ``has_more``. With ``ending_before`` alone the page is the ``limit``
        objects just newer than the cursor (Stripe pages backwards), still listed newest first."""
        order, keys, position = collection.sorted()
        start, end = _created_range(request, keys)
        after, before = request.param("starting_after"), request.param("ending_before")
        for cursor in (after, before):
            if cursor is not None and cursor not in position:
                return _error(400, f"No such {resource.rstrip('s')}: '{cursor}'", "resource_missing")
        if after is not None:
            start = max(start, position[after] + 1)
        if before is not None:
            end = min(end, position[before])
        if resource == "events":  # older events are gone
            end = min(end, bisect.bisect_right(keys, -(self.clock() - RETENTION)))
        keep = self._filter(request, resource)
        backwards = before is not None and after is None
        picked: list[str] = []
        for n in (range(end - 1, start - 1, -1) if backwards else range(start, end)):
            if keep is None or keep(collection.objects[order[n]]):
                picked.append(order[n])
                if len(picked) > limit:  # lazily: a filter never walks the whole collection
                    break
        page = picked[:limit]
        return (page[::-1] if backwards else page), len(picked) > limit

    def _filter(self, request: Request, resource: str) -> Any:
        """The list filter the double applies itself (others are accepted and not applied), or None."""
        if resource == "events":
            return lambda event: _type_matches(request, event["type"])
        status = request.param("status")
        if resource == "subscriptions" and status != "all":
            return lambda sub: sub.get("status") == status or (status is None and sub.get("status") != "canceled")
        return None

    def _page(self, request: Request, resource: str, collection: _Collection, page: list[str],
              has_more: bool) -> Response:
        expand = [e.removeprefix("data.") for e in request.params.get("expand[]", [])]
        version = request.headers.get("stripe-version") or self.default_version
        basil = version[:10] >= BASIL[:10] and resource in _BASIL_SHAPES
        if expand or basil:
            shape = _BASIL_SHAPES[resource] if basil else (lambda obj: obj)
            items = [json.dumps(shape(self._expanded(collection.objects[i], expand, request))).encode()
                     for i in page]
        else:
            items = [collection.serialised(i) for i in page]
        raw = (b'{"object": "list", "data": [' + b", ".join(items) + b'], "has_more": '
               + (b"true" if has_more else b"false") + b', "url": "/v1/' + resource.encode() + b'"}')
        return Response(200, raw=raw, headers={"Request-Id": "req_double"})

    def _expanded(self, obj: dict[str, Any], expand: list[str], request: Request) -> dict[str, Any]:
        obj = dict(obj)
        account = request.headers.get("stripe-account")
        for name in expand:
            target = self.data.get((account, _EXPANDS.get(name, "")))
            if isinstance(obj.get(name), str) and target is not None and obj[name] in target.objects:
                obj[name] = target.objects[obj[name]]
        return obj

    def _shaped(self, request: Request, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        version = request.headers.get("stripe-version") or self.default_version
        shape = _BASIL_SHAPES.get(resource) if version[:10] >= BASIL[:10] else None
        return shape(obj) if shape else obj

    def _retrieve(self, request: Request, resource: str, object_id: str, account: str | None) -> Response:
        unknown = [k for k in request.params if k != "expand[]"]
        if unknown:
            return _error(400, f"Received unknown parameter: {unknown[0]}", "parameter_unknown", param=unknown[0])
        expand = request.params.get("expand[]", [])
        for n, name in enumerate(expand):
            if name.split(".")[0] not in _EXPANDABLE.get(resource, set()):
                return _error(400, f"This property cannot be expanded ({name}).", param=f"expand[{n}]")
        collection = self.data.get((account, resource)) or _Collection()
        obj = collection.objects.get(object_id)
        if obj is None:
            if resource in _STUB_WHEN_DELETED and object_id in self.deleted.get((account, resource), set()):
                stub = {"id": object_id, "object": _singular(resource), "deleted": True}
                return Response(200, stub, {"Request-Id": "req_double"})
            return _error(404, f"No such {_singular(resource)}: '{object_id}'", "resource_missing", param="id")
        body = self._shaped(request, resource, self._expanded(obj, expand, request))
        return Response(200, body, {"Request-Id": "req_double"})

    def _search(self, request: Request, resource: str, collection: _Collection) -> Response:
        unknown = [k for k in request.params if k not in ("query", "limit", "page", "expand[]")]
        if unknown:
            return _error(400, f"Received unknown parameter: {unknown[0]}", "parameter_unknown", param=unknown[0])
        query = request.param("query")
        if not query:
            return _error(400, "Missing required param: query.", "parameter_missing", param="query")
        try:
            limit = int(request.param("limit", "10"))
        except ValueError:
            return _error(400, "Invalid integer: limit", "parameter_invalid_integer", param="limit")
        if not 1 <= limit <= 100:
            return _error(400, "This value must be less than or equal to 100.", "parameter_invalid_integer",
                          param="limit")
        expand = request.params.get("expand[]", [])
        for n, path in enumerate(expand):
            name = path.removeprefix("data.").split(".")[0]
            if path != "total_count" and (not path.startswith("data.")
                                          or name not in _EXPANDABLE.get(resource, set())):
                return _error(400, f"This property cannot be expanded ({path}).", param=f"expand[{n}]")
        try:
            match = _parse_query(query, _SEARCH_FIELDS[resource], resource)
        except _QueryError as exc:
            return _error(400, str(exc), param="query")
        order, _, _ = collection.sorted()
        hits = [i for i in order if match(collection.objects[i])]
        page_token = request.param("page")
        start = 0
        if page_token is not None:
            decoded = _page_offset(page_token, query)
            if decoded is None:
                return _error(400, f"Invalid page: '{page_token}'. Pass the next_page value of the previous "
                              "search result.", param="page")
            start = decoded
        page = hits[start:start + limit]
        has_more = start + limit < len(hits)
        items = [self._shaped(request, resource, self._expanded(collection.objects[i],
                              [e.removeprefix("data.") for e in expand if e != "total_count"], request))
                 for i in page]
        body: dict[str, Any] = {"object": "search_result", "data": items, "has_more": has_more,
                                "next_page": _page_token(start + limit, query) if has_more else None,
                                "url": f"/v1/{resource}/search"}
        if "total_count" in expand:
            body["total_count"] = min(len(hits), 10_000)
        return Response(200, body, {"Request-Id": "req_double"})


def _basil_subscription(obj: dict[str, Any]) -> dict[str, Any]:
    period = {k: obj[k] for k in ("current_period_start", "current_period_end") if k in obj}
    items = obj.get("items") or {"object": "list", "data": []}
    items = {**items, "data": [{**item, **period} for item in items.get("data", [])]}
    return {**{k: v for k, v in obj.items() if k not in period}, "items": items}


def _basil_invoice(obj: dict[str, Any]) -> dict[str, Any]:
    shaped = {k: v for k, v in obj.items() if k not in ("paid", "charge", "payment_intent", "subscription")}
    subscription = obj.get("subscription")
    shaped["parent"] = None if subscription is None else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"metadata": {}, "subscription": subscription}}
    return shaped


def _without_invoice(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "invoice"}


#: How ``2025-03-31.basil`` and later versions shape the objects stored in the pre-basil shape.
_BASIL_SHAPES = {"subscriptions": _basil_subscription, "invoices": _basil_invoice,
                 "charges": _without_invoice, "payment_intents": _without_invoice}


def _singular(resource: str) -> str:
    return {"customers": "customer", "charges": "charge", "invoices": "invoice", "subscriptions": "subscription",
            "payment_intents": "payment_intent", "products": "product", "prices": "price"}.get(resource,
                                                                                             resource.rstrip("s"))


# --- events -------------------------------------------------------------------------------------


def _event_filter_error(request: Request) -> Response | None:
    """``type`` or ``types[]`` (up to 20), never both (API reference, "List all events")."""
    types = request.params.get("types[]", [])
    if types and request.param("type") is not None:
        return _error(400, "You may pass either type or types, but not both.", param="types")
    if len(types) > 20:
        return _error(400, "types may contain at most 20 values.", "parameter_invalid_array", param="types")
    if any("*" in t for t in types):
        return _error(400, "types takes exact event names; use type for a wildcard.", param="types")
    return None


def _type_matches(request: Request, kind: str) -> bool:
    types = request.params.get("types[]")
    if types:
        return kind in types
    wanted = request.param("type")
    if wanted is None:
        return True
    if wanted.endswith("*"):
        return kind.startswith(wanted[:-1])
    return kind == wanted


# --- search -------------------------------------------------------------------------------------


class _QueryError(ValueError):
    pass


_CLAUSE = re.compile(
    r"""(?P<neg>-)?(?P<field>metadata\[(?P<q>["'])(?P<key>[^"']+)(?P=q)\]|[a-z_][a-z0-9_.]*)"""
    r"""(?P<op>:|~|>=|<=|>|<)(?P<value>"[^"]*"|'[^']*'|[^\s"']+)"""
)
_CONNECTIVE = re.compile(r"\s+(AND|OR)\s+|\s+", re.IGNORECASE)


def _parse_query(query: str, fields: dict[str, str], resource: str) -> Any:
    """A predicate for Stripe's search query language, refusing what Stripe refuses."""
    clauses, connectives, position = [], set(), 0
    query = query.strip()
    while position < len(query):
        found = _CLAUSE.match(query, position)
        if found is None:
            raise _QueryError(f"Invalid search query at position {position}: {query[position:position + 20]!r}")
        clauses.append(found)
        position = found.end()
        gap = _CONNECTIVE.match(query, position)
        if gap is not None:
            connectives.add((gap.group(1) or "AND").upper())
            position = gap.end()
    if len(connectives) > 1:
        raise _QueryError("Search queries cannot combine AND and OR.")
    if len(clauses) > _MAX_CLAUSES:
        raise _QueryError(f"Search queries can have at most {_MAX_CLAUSES} clauses.")
    tests = [_clause_test(c, fields, resource) for c in clauses]
    if connectives == {"OR"}:
        return lambda obj: any(test(obj) for test in tests)
    return lambda obj: all(test(obj) for test in tests)


def _clause_test(clause: re.Match[str], fields: dict[str, str], resource: str) -> Any:
    field_name, op, raw = clause["field"], clause["op"], clause["value"]
    base = "metadata" if clause["key"] is not None else field_name
    kind = fields.get(base)
    if kind is None or (base == "metadata" and clause["key"] is None):
        raise _QueryError(f"Field '{field_name}' is an unsupported search field for resource '{resource}'. "
                          f"See https://stripe.com/docs/search#query-fields-for-{resource.replace('_', '-')}.")
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
    text = raw[1:-1] if quoted else raw
    is_null = raw == "null"
    number: float | None = None
    if kind == "number" and not is_null:
        try:
            number = float(text)
        except ValueError:
            raise _QueryError(f"Field '{field_name}' takes a number, got {raw}.") from None
    elif not quoted and not is_null and not (kind == "token" and raw in ("true", "false")):
        raise _QueryError(f"The value of '{field_name}' must be quoted: {field_name}{op}\"{raw}\".")
    if op == "~" and (kind != "string" or len(text) < 3):
        raise _QueryError(f"Substring matching (~) needs a string field and at least 3 characters: {field_name}~{raw}.")
    if op in (">", ">=", "<", "<=") and number is None:
        raise _QueryError(f"Field '{field_name}' does not support numeric comparators ({op}).")

    def actual(obj: dict[str, Any]) -> Any:
        if clause["key"] is not None:
            return (obj.get("metadata") or {}).get(clause["key"])
        current: Any = obj
        for part in field_name.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        return current

    def test(obj: dict[str, Any]) -> bool:
        have = actual(obj)
        if is_null:
            hit = have is None
        elif number is not None:
            hit = isinstance(have, (int, float)) and not isinstance(have, bool) and {
                ":": have == number, ">": have > number, ">=": have >= number, "<": have < number,
                "<=": have <= number}[op]
        elif op == "~":
            hit = isinstance(have, str) and text.lower() in have.lower()
        else:
            hit = have is not None and str(have).lower() == text.lower()
        return not hit if clause["neg"] else hit

    return test


def _page_token(offset: int, query: str) -> str:
    raw = json.dumps([offset, query]).encode()
    return "page_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_offset(token: str, query: str) -> int | None:
    """The offset a ``next_page`` token holds, or None when it is not one of ours for this query."""
    if not token.startswith("page_"):
        return None
    body = token.removeprefix("page_")
    try:
        offset, for_query = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    return offset if for_query == query and isinstance(offset, int) else None


def _known(data: dict[tuple[str | None, str], _Collection]) -> set[str]:
    return {resource for _, resource in data} | set(_ID_PREFIX)


def _created_range(request: Request, keys: list[int]) -> tuple[int, int]:
    """Index range of objects (sorted by -created ascending) inside the ``created[...]`` filters."""
    start, end = 0, len(keys)
    bounds = {op: request.param(f"created[{op}]") for op in ("gt", "gte", "lt", "lte")}
    if bounds["lte"] is not None:
        start = max(start, bisect.bisect_left(keys, -int(bounds["lte"])))
    if bounds["lt"] is not None:
        start = max(start, bisect.bisect_right(keys, -int(bounds["lt"])))
    if bounds["gt"] is not None:
        end = min(end, bisect.bisect_left(keys, -int(bounds["gt"])))
    if bounds["gte"] is not None:
        end = min(end, bisect.bisect_right(keys, -int(bounds["gte"])))
    if request.param("created") is not None:
        exact = -int(request.param("created"))
        start, end = max(start, bisect.bisect_left(keys, exact)), min(end, bisect.bisect_right(keys, exact))
    return start, end


def _masked(key: str) -> str:
    prefix = key[: key.find("_", 3) + 1] if key.count("_") >= 2 else ""
    return f"{prefix}****{key[-4:]}"


# --- realistic objects --------------------------------------------------------------------------


def object_id(resource: str, n: int) -> str:
    return f"{_ID_PREFIX.get(resource, 'obj')}_{n:014d}"


def customer(n: int, created: int, **fields: Any) -> dict[str, Any]:
    """A customer shaped as Stripe documents it."""
    return {
        "id": object_id("customers", n), "object": "customer", "address": None, "balance": 0, "created": created,
        "currency": "usd", "default_source": None, "delinquent": False, "description": None, "discount": None,
        "email": f"customer{n}@example.com", "invoice_prefix": f"INV{n:05d}",
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": {"n": str(n)}, "name": f"Customer {n}", "next_invoice_sequence": 1,
        "phone": None, "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        **fields,
    }


def charge(n: int, created: int, customer_n: int | None = None, **fields: Any) -> dict[str, Any]:
    """A card charge shaped as Stripe documents it (amounts in cents)."""
    return {
        "id": object_id("charges", n), "object": "charge", "amount": 1000 + n % 9000, "amount_captured": 1000 + n % 9000,
        "amount_refunded": 0, "application": None, "application_fee": None, "application_fee_amount": None,
        "balance_transaction": object_id("balance_transactions", n),
        "billing_details": {"address": {"city": None, "country": "DE", "line1": None, "line2": None,
                                        "postal_code": "10115", "state": None},
                            "email": None, "name": f"Jenny {n}", "phone": None},
        "calculated_statement_descriptor": "DATIVO", "captured": True, "created": created, "currency": "eur",
        "customer": None if customer_n is None else object_id("customers", customer_n), "description": None,
        "disputed": False, "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
        "fraud_details": {}, "invoice": None, "livemode": False, "metadata": {"order": f"o-{n}"},
        "on_behalf_of": None,
        "outcome": {"network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                    "risk_score": n % 100, "seller_message": "Payment complete.", "type": "authorized"},
        "paid": True, "payment_intent": object_id("payment_intents", n), "payment_method": f"pm_{n:014d}",
        "payment_method_details": {"card": {"brand": "visa", "country": "US", "exp_month": 8, "exp_year": 2030,
                                            "funding": "credit", "last4": "4242", "network": "visa"},
                                   "type": "card"},
        "receipt_email": None, "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/acct_double/{object_id('charges', n)}",
        "refunded": False, "review": None, "shipping": None, "source_transfer": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "status": "succeeded", "transfer_data": None, "transfer_group": None,
        **fields,
    }


def subscription(n: int, created: int, status: str = "active", **fields: Any) -> dict[str, Any]:
    return {
        "id": object_id("subscriptions", n), "object": "subscription", "application": None,
        "billing_cycle_anchor": created, "cancel_at": None, "cancel_at_period_end": False,
        "canceled_at": created + 86400 if status == "canceled" else None, "collection_method": "charge_automatically",
        "created": created, "currency": "usd", "current_period_end": created + 30 * 86400,
        "current_period_start": created, "customer": object_id("customers", n), "days_until_due": None,
        "items": {"object": "list", "data": [{"id": f"si_{n}", "object": "subscription_item", "quantity": 1}],
                  "has_more": False, "url": f"/v1/subscription_items?subscription=sub_{n}"},
        "latest_invoice": object_id("invoices", n), "livemode": False, "metadata": {}, "start_date": created,
        "status": status, "trial_end": None, "trial_start": None, **fields,
    }


def invoice(n: int, created: int, subscription_n: int | None = None, paid: bool = True,
            **fields: Any) -> dict[str, Any]:
    """An invoice in the pre-basil shape (``paid``, ``subscription`` at the top)."""
    return {
        "id": object_id("invoices", n), "object": "invoice", "account_country": "DE", "account_name": "Dativo",
        "amount_due": 2000, "amount_paid": 2000 if paid else 0, "amount_remaining": 0 if paid else 2000,
        "attempt_count": 1, "attempted": True, "billing_reason": "subscription_cycle",
        "charge": object_id("charges", n) if paid else None, "collection_method": "charge_automatically",
        "created": created, "currency": "usd", "customer": object_id("customers", n), "livemode": False,
        "metadata": {}, "number": f"INV-{n:05d}", "paid": paid,
        "payment_intent": object_id("payment_intents", n) if paid else None,
        "period_end": created, "period_start": created - 30 * 86400, "status": "paid" if paid else "open",
        "subscription": None if subscription_n is None else object_id("subscriptions", subscription_n),
        "subtotal": 2000, "total": 2000, **fields,
    }


def product(n: int, created: int) -> dict[str, Any]:
    """An object of an endpoint the source does not declare (read with the generic columns)."""
    return {"id": object_id("products", n), "object": "product", "active": True, "created": created,
            "description": None, "livemode": False, "metadata": {"sku": f"S{n}"}, "name": f"Product {n}",
            "updated": created}


def charges(count: int, start: int = T0, step: int = 1, first: int = 0) -> list[dict[str, Any]]:
    """``count`` charges created ``step`` seconds apart from ``start``."""
    return [charge(first + i, start + i * step, customer_n=(first + i) % 50) for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=50_000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--refunded", type=int, default=0, help="refund the first N charges now (charge.refunded)")
    args = parser.parse_args(argv)
    double = StripeDouble()
    double.add("charges", charges(args.charges), events=False)
    for n in range(args.refunded):
        double.refund(object_id("charges", n))
    for resource in ("charges", "events"):  # serialise up front: serving stays cheap
        collection = double.data.get((None, resource))
        if collection is not None:
            collection.sorted()
            for object_id_ in collection.objects:
                collection.serialised(object_id_)
    double.start(args.port)
    print(f"READY {double.url}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin or kills us
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
