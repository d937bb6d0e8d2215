"""A loopback double of the SageMaker Feature Store runtime (``sagemaker-featurestore-runtime``), speaking
the REST-JSON wire protocol botocore uses, so a real boto3 client with ``endpoint_url=double.url`` talks
to it unchanged.

* **Routes** (read from botocore's service model, API 2020-07-01): ``PUT /FeatureGroup/{name}``
  (PutRecord), ``GET /FeatureGroup/{name}`` (GetRecord), ``DELETE /FeatureGroup/{name}`` (DeleteRecord),
  ``POST /BatchWriteRecord``, ``POST /BatchGetRecord``, ``POST /FeatureGroup/{name}/ListRecords``. Each
  request is parsed by the model's locations (uri, querystring, body) and validated against the input
  shape with botocore's own validator, plus the limits botocore leaves to the service (list maxima:
  1-25 BatchWriteRecord entries, 1-100 BatchGetRecord identifiers; name patterns).
* **Auth:** a SigV4 ``Authorization`` header signed for service ``sagemaker`` is required (403
  ``AccessForbidden`` otherwise); the signature itself is not verified.
* **Feature groups** are defined on the double (the control plane is another service):
  :meth:`FeatureStoreDouble.create_feature_group` with each feature's type, ``Integral``,
  ``Fractional`` or ``String``. Every value travels as a string and must parse as its feature's type; a
  record must hold its record identifier and event time, and only defined features, once each.
  EventTime is ISO-8601 ``yyyy-MM-ddTHH:mm:ssZ`` / ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (String) or Unix
  seconds (Fractional).
* **Stores:** a write reaches the offline store (an append-only list) and, only when its EventTime is
  later than the stored record's, the online store (PutRecord's documented rule). ``TargetStores``
  restricts both. Invalid entries of a BatchWriteRecord come back in ``Errors`` (``ValidationError``,
  ``ResourceNotFound``); the valid ones are written.
* **DeleteRecord:** ``SoftDelete`` (default) hides the record from GetRecord/BatchGetRecord and nulls
  its features (ListRecords can still include it); ``HardDelete`` removes it; both append a deleted
  marker (``is_deleted``) to the offline store. A delete whose EventTime is not later than the stored
  record's: HardDelete answers ``400 ValidationError`` and writes nothing, SoftDelete keeps the record
  and writes the marker (the documented rules). Deleting an absent record succeeds.
* **Faults:** :meth:`~FeatureStoreDouble.partial_failure` makes chosen BatchWriteRecord calls leave
  entries in ``UnprocessedEntries`` or fail them in ``Errors`` with a given code (those entries are not
  written); :meth:`~FeatureStoreDouble.throttle` answers chosen calls ``400 ThrottlingException``.
  Errors are ``x-amzn-ErrorType`` headers with a ``{"message"}`` body, as AWS sends them.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.server import ApiDouble, Request, Response

SERVICE = "sagemaker-featurestore-runtime"
FEATURE_TYPES = ("Integral", "Fractional", "String")
_ISO_EVENT_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z")
_INTEGRAL = re.compile(r"-?\d+")


class _Rejected(Exception):
    """An error answer: its code becomes ``x-amzn-ErrorType``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class FeatureGroup:
    name: str
    record_identifier: str
    event_time: str
    types: dict[str, str]
    #: identifier -> {"event_time": seconds, "record": [FeatureValue], "deleted": bool}
    online: dict[str, dict[str, Any]] = field(default_factory=dict)
    offline: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Partial:
    unprocessed: int
    errors: tuple[str, ...]


class FeatureStoreDouble(ApiDouble):
    """The double. ``create_feature_group`` first; ``online(name)``/``offline(name)`` to look inside."""

    def __init__(self) -> None:
        super().__init__()
        import botocore.session

        self.model = botocore.session.get_session().get_service_model(SERVICE)
        self.groups: dict[str, FeatureGroup] = {}
        self.calls: dict[str, int] = {}
        #: Entries the faults failed, by code (``UnprocessedEntries`` for those left unprocessed).
        self.injected: Counter[str] = Counter()
        self._partials: dict[int, _Partial] = {}
        self._throttled: dict[str, set[int]] = {}
        self._routes = [(op.http["method"], _uri_pattern(op.http["requestUri"]), op)
                        for op in (self.model.operation_model(n) for n in self.model.operation_names)]

    # -- control plane and inspection ------------------------------------------------------------

    def create_feature_group(self, name: str, record_identifier: str, event_time: str,
                             types: dict[str, str]) -> FeatureGroup:
        """Define a group: ``types`` maps every feature (identifier and event time included) to its type."""
        bad = {k: v for k, v in types.items() if v not in FEATURE_TYPES}
        assert not bad and record_identifier in types and event_time in types, bad
        assert types[event_time] in ("String", "Fractional") and types[record_identifier] != "Fractional"
        group = FeatureGroup(name, record_identifier, event_time, dict(types))
        with self.lock:
            self.groups[name] = group
        return group

    def online(self, name: str) -> dict[str, dict[str, str]]:
        """The online store of a group: identifier -> {feature: value}, soft-deleted records left out."""
        with self.lock:
            return {key: {v["FeatureName"]: v.get("ValueAsString") for v in stored["record"]}
                    for key, stored in self.groups[name].online.items() if not stored["deleted"]}

    def offline(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.groups[name].offline)

    # -- faults ----------------------------------------------------------------------------------

    def partial_failure(self, calls: Iterable[int], *, unprocessed: int = 0,
                        errors: Sequence[str] = ()) -> None:
        """On these BatchWriteRecord calls (1-based, counted over the double's life) leave the last
        ``unprocessed`` entries unprocessed and fail the first ``len(errors)`` with those codes."""
        with self.lock:
            for call in calls:
                self._partials[call] = _Partial(unprocessed, tuple(errors))

    def throttle(self, operation: str, calls: Iterable[int]) -> None:
        """Answer these calls of ``operation`` (1-based) with ``400 ThrottlingException``."""
        with self.lock:
            self._throttled.setdefault(operation, set()).update(calls)

    # -- dispatch --------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        try:
            operation, labels = self._operation_of(request)
            self.calls[operation.name] = number = self.calls.get(operation.name, 0) + 1
            _require_signature(request)
            if number in self._throttled.get(operation.name, ()):
                self.injected["ThrottlingException"] += len((request.body or {}).get("Entries", [None]))
                raise _Rejected("ThrottlingException", "Rate exceeded")
            params = self._params(operation, request, labels)
            return Response(200, getattr(self, "_" + operation.name)(params, number))
        except _Rejected as exc:
            return Response(exc.status, {"message": exc.message}, headers={"x-amzn-ErrorType": exc.code})

    def _operation_of(self, request: Request) -> tuple[Any, dict[str, str]]:
        for method, pattern, operation in self._routes:
            found = pattern.fullmatch(request.path)
            if method == request.method and found:
                return operation, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        raise _Rejected("UnknownOperationException", f"{request.method} {request.path}", 404)

    def _params(self, operation: Any, request: Request, labels: dict[str, str]) -> dict[str, Any]:
        """The request's parameters by the input shape's locations, validated as the service would."""
        from botocore.validate import ParamValidator

        shape = operation.input_shape
        body = request.body if isinstance(request.body, dict) else {}
        params: dict[str, Any] = {}
        query_names = set()
        for name, member in shape.members.items():
            location, wire = member.serialization.get("location"), member.serialization.get("name", name)
            if location == "uri":
                params[name] = labels[wire]
            elif location == "querystring":
                query_names.add(wire)
                if wire in request.params:
                    values = request.params[wire]
                    params[name] = values if member.type_name == "list" else values[-1]
            elif name in body:
                params[name] = body[name]
        unknown = (set(body) - set(shape.members)) | (set(request.params) - query_names)
        if unknown:
            raise _Rejected("ValidationError", f"unknown parameters {sorted(unknown)}")
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise _Rejected("ValidationError", report.generate_report())
        _check_limits(params, shape, operation.name)
        return params

    # -- operations ------------------------------------------------------------------------------

    def _PutRecord(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"])
        self._write(group, params["Record"], params.get("TargetStores"))
        return {}

    def _BatchWriteRecord(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        entries = params["Entries"]
        partial = self._partials.pop(number, _Partial(0, ()))
        failed_codes = list(partial.errors)[: len(entries)]
        unprocessed_from = len(entries) - min(partial.unprocessed, len(entries) - len(failed_codes))
        errors: list[dict[str, Any]] = []
        self.injected.update(failed_codes)
        self.injected["UnprocessedEntries"] += len(entries) - unprocessed_from
        for index, entry in enumerate(entries[:unprocessed_from]):
            if index < len(failed_codes):
                errors.append({"Entry": entry, "ErrorCode": failed_codes[index], "ErrorMessage": "injected"})
                continue
            try:
                group = self._group(entry["FeatureGroupName"])
                self._write(group, entry["Record"], entry.get("TargetStores"))
            except _Rejected as exc:
                errors.append({"Entry": entry, "ErrorCode": exc.code, "ErrorMessage": exc.message})
        return {"Errors": errors, "UnprocessedEntries": entries[unprocessed_from:]}

    def _GetRecord(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"])
        record = self._read(group, params["RecordIdentifierValueAsString"], params.get("FeatureNames"))
        return {"Record": record} if record else {}

    def _BatchGetRecord(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        records, errors = [], []
        for identifier in params["Identifiers"]:
            name = identifier["FeatureGroupName"]
            for key in identifier["RecordIdentifiersValueAsString"]:
                if name not in self.groups:
                    errors.append({"FeatureGroupName": name, "RecordIdentifierValueAsString": key,
                                   "ErrorCode": "ResourceNotFound", "ErrorMessage": f"{name} not found"})
                    continue
                record = self._read(self.groups[name], key, identifier.get("FeatureNames"))
                if record:
                    records.append({"FeatureGroupName": name, "RecordIdentifierValueAsString": key,
                                    "Record": record})
        return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": []}

    def _DeleteRecord(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"])
        key, mode = params["RecordIdentifierValueAsString"], params.get("DeletionMode", "SoftDelete")
        when = _event_seconds(params["EventTime"], "String" if "T" in params["EventTime"] else "Fractional")
        stores = params.get("TargetStores") or ["OnlineStore", "OfflineStore"]
        stored = group.online.get(key)
        later = stored is None or when > stored["event_time"]
        if mode == "HardDelete" and not later:
            raise _Rejected("ValidationError", "EventTime: the delete must be later than the stored record's")
        if "OnlineStore" in stores and stored is not None and later:
            if mode == "HardDelete":
                del group.online[key]
            else:
                kept = [v for v in stored["record"] if v["FeatureName"] == group.record_identifier]
                stored.update(deleted=True, event_time=when, record=kept)
        if "OfflineStore" in stores:
            group.offline.append({group.record_identifier: key, group.event_time: params["EventTime"],
                                  "is_deleted": True})
        return {}

    def _ListRecords(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"])
        keys = sorted(k for k, v in group.online.items()
                      if not v["deleted"] or params.get("IncludeSoftDeletedRecords"))
        start, size = int(params.get("NextToken") or 0), params.get("MaxResults", 100)
        page = {"RecordIdentifiers": keys[start:start + size]}
        return {**page, "NextToken": str(start + size)} if start + size < len(keys) else page

    def _UpdateRecord(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        raise _Rejected("ValidationError", "UpdateRecord (Standard_V2/InMemory stores) is not modelled here")

    # -- stores ----------------------------------------------------------------------------------

    def _group(self, name: str) -> FeatureGroup:
        if name not in self.groups:
            raise _Rejected("ResourceNotFound", f"FeatureGroup {name} does not exist", 404)
        return self.groups[name]

    def _write(self, group: FeatureGroup, record: list[dict[str, Any]], stores: list[str] | None) -> None:
        values = _validated(group, record)
        when = _event_seconds(values[group.event_time], group.types[group.event_time])
        key = values[group.record_identifier]
        stores = stores or ["OnlineStore", "OfflineStore"]
        stored = group.online.get(key)
        if "OnlineStore" in stores and (stored is None or when > stored["event_time"]):
            group.online[key] = {"event_time": when, "record": record, "deleted": False}
        if "OfflineStore" in stores:
            group.offline.append({**values, "is_deleted": False})

    def _read(self, group: FeatureGroup, key: str, names: list[str] | None) -> list[dict[str, Any]]:
        stored = group.online.get(key)
        if stored is None or stored["deleted"]:
            return []
        return [v for v in stored["record"] if names is None or v["FeatureName"] in names]


def _uri_pattern(template: str) -> re.Pattern[str]:
    path = template.split("?")[0]
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


def _require_signature(request: Request) -> None:
    auth = request.headers.get("authorization", "")
    if not re.match(r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[\w-]+/sagemaker/aws4_request", auth):
        raise _Rejected("AccessForbidden", "missing or malformed SigV4 signature for service sagemaker", 403)


def _check_limits(params: Any, shape: Any, where: str) -> None:
    """The maxima and patterns botocore leaves unchecked: the service enforces them."""
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if isinstance(params, dict) and name in params:
                _check_limits(params[name], member, f"{where}.{name}")
    elif shape.type_name == "list":
        limit = shape.metadata.get("max")
        if limit is not None and len(params) > limit:
            raise _Rejected("ValidationError", f"{where}: {len(params)} items, at most {limit} allowed")
        for index, item in enumerate(params):
            _check_limits(item, shape.member, f"{where}[{index}]")
    elif shape.type_name == "string":
        pattern, limit = shape.metadata.get("pattern"), shape.metadata.get("max")
        if limit is not None and len(params) > limit:
            raise _Rejected("ValidationError", f"{where}: longer than {limit} characters")
        if pattern and pattern != ".*" and not re.fullmatch(pattern.lstrip("^"), params):
            raise _Rejected("ValidationError", f"{where}: does not match {pattern}")


def _validated(group: FeatureGroup, record: list[dict[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for value in record:
        name = value["FeatureName"]
        if name not in group.types:
            raise _Rejected("ValidationError", f"feature {name} is not defined in {group.name}")
        if name in values:
            raise _Rejected("ValidationError", f"feature {name} appears twice in the record")
        if "ValueAsStringList" in value or "ValueAsString" not in value:
            raise _Rejected("ValidationError", f"feature {name}: a scalar feature needs ValueAsString")
        text = value["ValueAsString"]
        if not _parses(text, group.types[name]):
            raise _Rejected("ValidationError", f"feature {name}: value is not {group.types[name]}")
        values[name] = text
    for required in (group.record_identifier, group.event_time):
        if required not in values:
            raise _Rejected("ValidationError", f"record lacks {required}")
    return values


def _parses(text: str, kind: str) -> bool:
    if kind == "Integral":
        return bool(_INTEGRAL.fullmatch(text)) and -(2**63) <= int(text) < 2**63
    if kind == "Fractional":
        try:
            float(text)
        except ValueError:
            return False
        return text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")
    return True


def _event_seconds(text: str, kind: str) -> float:
    if kind == "Fractional":
        return float(text)
    if not _ISO_EVENT_TIME.fullmatch(text):
        raise _Rejected("ValidationError",
                        "EventTime must be yyyy-MM-ddTHH:mm:ssZ or yyyy-MM-ddTHH:mm:ss.SSSZ")
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
