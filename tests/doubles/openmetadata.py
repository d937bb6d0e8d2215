"""A loopback OpenMetadata server (the endpoints the sync uses) that checks every request body with
OpenMetadata's own definitions, pinned to OpenMetadata 2.0.7 (see openmetadata_schemas/README.md).

What it enforces, as the real server does:

- ``Authorization: Bearer <jwt>``: none or a wrong token is 401 with OpenMetadata's error body
  ``{"code": 401, "message": ...}``;
- every JSON body against the vendored JSON Schema of its request type (``CreateTableRequest`` ...):
  a violation is 400 ``{"code": 400, "message": "[...]"}``; a PATCH must be an RFC 6902 array, and the
  patched table must still validate as a ``Table``;
- the column rules OpenMetadata checks in Java (``DatabaseUtil``: char/varchar/binary/varbinary need
  ``dataLength``, arrays ``arrayDataType``, structs ``children``, scale needs precision, unique names,
  one primary-key column, constraint and partition columns exist), with the server's messages;
  ``dataTypeDisplay`` is stored lower-cased, as the server does;
- references exist: the schema of a table, tags (the ``PII`` and ``Tier`` classifications are seeded,
  glossary terms are added by :meth:`add_glossary_term`), owners, domains, test definitions and their
  parameters (a subset of OpenMetadata's built-in ``json/data/tests/*.json``), test cases of results;
- a second create of the same name is 409; an unknown name or id 404; list endpoints page with
  ``limit`` (default 10, at most 1000) and an opaque ``after`` cursor;
- scripted 429/5xx through :meth:`ApiDouble.fail`;
- ``POST /api/v1/openlineage/lineage`` (and ``/batch``) records OpenLineage events behind the same auth,
  for the transport configuration; it does not resolve their datasets to tables as the server does.

It counts writes (POST/PUT/PATCH answered 2xx) and the most requests it had in flight at once.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema

from tests.doubles.server import ApiDouble, Request, Response, _handler_for

VERSION = "2.0.7"
SCHEMAS = Path(__file__).with_name("openmetadata_schemas") / VERSION
_LENGTH_TYPES = ("CHAR", "VARCHAR", "BINARY", "VARBINARY")
#: Built-in test definitions: name -> (entity type, parameter names, required parameter names), as in
#: openmetadata-service/src/main/resources/json/data/tests/<name>.json.
TEST_DEFINITIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "columnValuesToBeNotNull": ("COLUMN", (), ()),
    "columnValuesToBeUnique": ("COLUMN", (), ()),
    "columnValuesToMatchRegex": ("COLUMN", ("regex",), ("regex",)),
    "columnValuesToBeInSet": ("COLUMN", ("allowedValues", "matchEnum"), ("allowedValues",)),
    "columnValuesToBeBetween": ("COLUMN", ("minValue", "maxValue"), ()),
    "tableRowCountToBeBetween": ("TABLE", ("minValue", "maxValue", "threshold", "thresholdUnit"), ()),
}
SEEDED_TAGS = ("PII.Sensitive", "PII.NonSensitive", "PII.None", *(f"Tier.Tier{n}" for n in range(1, 6)))
#: The ``fields`` a table GET accepts (TableService.FIELDS); any other is 400. Unrequested ones are left out.
_TABLE_FIELDS = set(
    "tableConstraints,tablePartition,usageSummary,owners,customMetrics,columns,sampleData,tags,followers,joins,"
    "schemaDefinition,dataModel,extension,testSuite,domains,dataProducts,lifeCycle,sourceHash".split(",")
)


class BadRequest(Exception):
    """400 with the message the real server would send."""


class NotFound(Exception):
    pass


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


class OpenMetadataDouble(ApiDouble):
    """``with OpenMetadataDouble(token=JWT) as om: om.url``.

    :param latency: seconds each request spends "in the server" outside the state lock (to measure
        how many requests a client keeps in flight).
    """

    def __init__(self, token: str, *, latency: float = 0.0) -> None:
        super().__init__()
        self.token = token
        self.latency = latency
        self.validators = {
            name: _validator(name)
            for name in (
                "createDatabaseService",
                "createDatabase",
                "createDatabaseSchema",
                "createTable",
                "table",
                "createTestCase",
                "createTestCaseResult",
                "addLineage",
            )
        }
        self.entities: dict[str, dict[str, dict[str, Any]]] = {
            kind: {}
            for kind in (
                "databaseService",
                "database",
                "databaseSchema",
                "table",
                "team",
                "user",
                "domain",
                "tag",
                "glossaryTerm",
                "testCase",
                "pipeline",
            )
        }
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.edges: dict[tuple[str, str], dict[str, Any]] = {}
        self.openlineage_events: list[dict[str, Any]] = []
        self.writes: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._flight_lock = threading.Lock()
        for tag in SEEDED_TAGS:
            self._store("tag", {"name": tag.split(".")[1], "fullyQualifiedName": tag})

    # -- seeding ---------------------------------------------------------------------------------

    def add_team(self, name: str) -> dict[str, Any]:
        return self._store("team", {"name": name, "fullyQualifiedName": name, "teamType": "Group"})

    def add_user(self, name: str) -> dict[str, Any]:
        return self._store("user", {"name": name, "fullyQualifiedName": name, "email": f"{name}@example.org"})

    def add_domain(self, name: str) -> dict[str, Any]:
        return self._store("domain", {"name": name, "fullyQualifiedName": name, "domainType": "Aggregate"})

    def add_glossary_term(self, fqn: str) -> dict[str, Any]:
        return self._store("glossaryTerm", {"name": fqn.rsplit(".", 1)[1], "fullyQualifiedName": fqn})

    def _store(self, kind: str, entity: dict[str, Any]) -> dict[str, Any]:
        entity = {
            "id": str(uuid.uuid4()),
            **entity,
            "version": 0.1,
            "updatedAt": int(time.time() * 1000),
            "updatedBy": "ingestion-bot",
            "deleted": False,
        }
        entity["href"] = f"{self.url if self._server else ''}/api/v1/{kind}s/{entity['id']}"
        self.entities[kind][entity["fullyQualifiedName"]] = entity
        return entity

    # -- lifecycle: PUT and PATCH as well --------------------------------------------------------

    def start(self, port: int = 0) -> OpenMetadataDouble:
        base = _handler_for(self)

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="OpenMetadataDouble",
            daemon=True,
        )
        self._thread.start()
        return self

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        with self._flight_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            response = super().dispatch(request)
            if request.method in ("POST", "PUT", "PATCH") and response.status < 300:
                with self.lock:
                    self.writes.append(request)
            return response
        finally:
            with self._flight_lock:
                self.in_flight -= 1

    def route(self, request: Request) -> Response:
        if request.headers.get("authorization") is None:
            return _error(401, "Not Authorized! Token not present")
        if request.headers["authorization"] != f"Bearer {self.token}":
            return _error(401, "Not Authorized! Invalid token")
        if not request.path.startswith("/api/v1/"):
            return _error(404, "HTTP 404 Not Found")
        try:
            return self._route(request.method, request.path[len("/api/v1/") :].split("/"), request)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        except _Conflict:
            return _error(409, "Entity already exists")
        except _Unsupported:
            return _error(415, "HTTP 415 Unsupported Media Type")

    def _route(self, method: str, parts: list[str], request: Request) -> Response:
        head = parts[0]
        if parts == ["system", "version"]:
            return Response(200, {"version": VERSION, "revision": "pinned", "timestamp": 0})
        if head == "services" and parts[1:2] == ["databaseServices"]:
            return self._collection(method, "databaseService", parts[2:], request)
        if head in ("databases", "databaseSchemas", "tables"):
            return self._collection(method, head[:-1], parts[1:], request)
        if head in ("teams", "users", "domains", "pipelines") and method == "GET" and parts[1:2] == ["name"]:
            return Response(200, self._by_name(head[:-1], _name(parts[2:])))
        if head == "dataQuality" and parts[1:2] == ["testCases"]:
            return self._test_cases(method, parts[2:], request)
        if head == "lineage":
            return self._lineage(method, parts[1:], request)
        if parts[:2] == ["openlineage", "lineage"] and method == "POST":
            return self._openlineage(parts[2:], request)
        return _error(404, "HTTP 404 Not Found")

    # -- entities --------------------------------------------------------------------------------

    def _collection(self, method: str, kind: str, rest: list[str], request: Request) -> Response:
        if method == "POST" and not rest:
            schema = "create" + kind[0].upper() + kind[1:]
            create = getattr(self, f"_create_{kind}")
            return Response(
                201, self._public(create(self._valid(request.body, schema)), _fields(request, kind))
            )
        if method == "GET" and not rest:
            return self._list(kind, request)
        if method == "GET" and rest[0] == "name":
            return Response(200, self._public(self._by_name(kind, _name(rest[1:])), _fields(request, kind)))
        if method in ("GET", "PATCH") and len(rest) == 1:
            entity = self._by_id(kind, rest[0])
            if method == "PATCH":
                entity = self._patch(kind, entity, request)
            return Response(200, self._public(entity, _fields(request, kind)))
        return _error(405, "HTTP 405 Method Not Allowed")

    def _valid(self, body: Any, schema: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("Unable to process JSON")
        errors = sorted(self.validators[schema].iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            raise BadRequest("[" + ", ".join(_violation(e) for e in errors[:5]) + "]")
        return body

    def _by_name(self, kind: str, name: str) -> dict[str, Any]:
        found = self.entities[kind].get(name)
        if found is None:
            raise NotFound(f"{kind} instance for {name} not found")
        return found

    def _by_id(self, kind: str, entity_id: str) -> dict[str, Any]:
        for entity in self.entities[kind].values():
            if entity["id"] == entity_id:
                return entity
        raise NotFound(f"{kind} instance for {entity_id} not found")

    def _new(self, kind: str, fqn: str, entity: dict[str, Any]) -> dict[str, Any]:
        if fqn in self.entities[kind]:
            raise _Conflict()
        return self._store(kind, {**entity, "fullyQualifiedName": fqn})

    def _create_databaseService(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._new("databaseService", _quote(body["name"]), body)

    def _create_database(self, body: dict[str, Any]) -> dict[str, Any]:
        service = self._by_name("databaseService", body["service"])
        return self._new(
            "database",
            f"{service['fullyQualifiedName']}.{_quote(body['name'])}",
            {**body, "service": _ref("databaseService", service)},
        )

    def _create_databaseSchema(self, body: dict[str, Any]) -> dict[str, Any]:
        database = self._by_name("database", body["database"])
        return self._new(
            "databaseSchema",
            f"{database['fullyQualifiedName']}.{_quote(body['name'])}",
            {**body, "database": _ref("database", database), "service": database["service"]},
        )

    def _create_table(self, body: dict[str, Any]) -> dict[str, Any]:
        schema = self._by_name("databaseSchema", body["databaseSchema"])
        fqn = f"{schema['fullyQualifiedName']}.{_quote(body['name'])}"
        table = {
            **copy.deepcopy(body),
            "databaseSchema": _ref("databaseSchema", schema),
            "database": schema["database"],
            "service": schema["service"],
            "serviceType": "CustomDatabase",
            "owners": [self._owner(o) for o in body.get("owners") or []],
            "domains": [_ref("domain", self._by_name("domain", d)) for d in body.get("domains") or []],
        }
        self._check_table(table, fqn)
        if fqn in self.entities["table"]:
            raise _Conflict()
        # The server builds its Table from the request; the Table schema is checked after a PATCH.
        return self._new("table", fqn, table)

    def _owner(self, ref: dict[str, Any]) -> dict[str, Any]:
        kind = ref.get("type")
        if kind not in ("user", "team"):
            raise BadRequest(f"Invalid owner type {kind}")
        return _ref(kind, self._by_id(kind, ref["id"]))

    def _check_table(self, table: dict[str, Any], fqn: str) -> None:
        """OpenMetadata's Java-side checks of a table (DatabaseUtil), with its messages."""
        columns = table["columns"]
        _unique_names(columns)
        for column in columns:
            column["dataTypeDisplay"] = (column.get("dataTypeDisplay") or column["dataType"]).lower()
            if column["dataType"] in _LENGTH_TYPES and column.get("dataLength") is None:
                raise BadRequest(
                    "For column data types char, varchar, binary, varbinary dataLength must not be null"
                )
            if column["dataType"] == "ARRAY" and column.get("arrayDataType") is None:
                raise BadRequest("For column data type array, arrayDataType must not be null")
            if column["dataType"] == "STRUCT":
                if column.get("children") is None:
                    raise BadRequest("For column data type struct, children must not be null")
                _unique_names(column["children"])
            if column.get("scale") is not None and column.get("precision") is None:
                raise BadRequest(f"Scale is set but precision is not set for the column {column['name']}")
            if column.get("scale") is not None and column["scale"] > column["precision"]:
                raise BadRequest(f"Scale can't be greater than the precision for the column {column['name']}")
        names = [c["name"] for c in columns]
        keys = [c for c in columns if c.get("constraint") == "PRIMARY_KEY"]
        if len(keys) > 1:
            raise BadRequest("Multiple columns tagged with primary key constraints")
        for constraint in table.get("tableConstraints") or []:
            if constraint.get("constraintType") == "PRIMARY_KEY" and keys:
                raise BadRequest(
                    "A column already tagged as a primary key and table constraint also includes primary key"
                )
            if any(name not in names for name in constraint.get("columns") or []):
                raise BadRequest("Invalid column name found in table constraint")
        for part in (table.get("tablePartition") or {}).get("columns") or []:
            if part.get("columnName") not in names:
                raise BadRequest("Invalid column name found in table partition")
        self._expand_tags(table)
        _set_column_fqns(columns, fqn)

    def _expand_tags(self, entity: dict[str, Any]) -> None:
        entity["tags"] = [self._tag(t) for t in entity.get("tags") or []]
        for column in _walk(entity.get("columns") or []):
            column["tags"] = [self._tag(t) for t in column.get("tags") or []]

    def _tag(self, label: dict[str, Any]) -> dict[str, Any]:
        kind = "glossaryTerm" if label.get("source") == "Glossary" else "tag"
        found = self._by_name(kind, label["tagFQN"])
        return {
            **label,
            "name": found["name"],
            "displayName": found["name"],
            "description": "",
            "style": {},
            "href": found["href"],
        }

    def _patch(self, kind: str, entity: dict[str, Any], request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0] != "application/json-patch+json":
            raise _Unsupported()
        operations = request.body
        if not isinstance(operations, list) or not all(
            isinstance(o, dict) and "op" in o and "path" in o for o in operations
        ):
            raise BadRequest("Unable to process JSON: a JSON patch is an array of operations")
        try:
            patched = jsonpatch.apply_patch(_stored_view(entity), operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise BadRequest(f"Invalid JSON patch: {exc}") from None
        for frozen in ("id", "name", "fullyQualifiedName"):
            if patched.get(frozen) != entity.get(frozen):
                raise BadRequest(f"{frozen} cannot be changed by a PATCH")
        if kind == "table":
            patched["owners"] = [self._owner(o) for o in patched.get("owners") or []]
            patched["domains"] = [
                _ref("domain", self._by_id("domain", d["id"])) for d in patched.get("domains") or []
            ]
            self._check_table(patched, entity["fullyQualifiedName"])
            # "version" is a multipleOf 0.1 number: in floats 0.3 is not, so it is left out of the check.
            self._valid({k: v for k, v in patched.items() if k != "version"}, "table")
        patched["version"] = round(entity["version"] + 0.1, 1)
        patched["updatedAt"] = int(time.time() * 1000)
        entity.clear()
        entity.update(patched)
        return entity

    def _public(self, entity: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
        shown = copy.deepcopy(entity)
        if fields is not None:
            for field in _TABLE_FIELDS - fields:
                shown.pop(field, None)
        return shown

    def _list(self, kind: str, request: Request) -> Response:
        limit = int(request.param("limit", "10") or 10)
        if not 1 <= limit <= 1000:
            raise BadRequest(
                "[query param limit must be less than or equal to 1000]"
                if limit > 1000
                else "[query param limit must be greater than or equal to 1]"
            )
        rows = list(self.entities[kind].values())
        parent = request.param("databaseSchema") or request.param("database") or request.param("service")
        if parent:
            rows = [r for r in rows if r["fullyQualifiedName"].startswith(parent + ".")]
        rows.sort(key=lambda r: r["fullyQualifiedName"])
        after = request.param("after")
        start = 0
        if after:
            start = next(
                (i for i, r in enumerate(rows) if r["fullyQualifiedName"] > _decode(after)), len(rows)
            )
        page = rows[start : start + limit]
        paging: dict[str, Any] = {"total": len(rows)}
        if start + limit < len(rows):
            paging["after"] = _encode(page[-1]["fullyQualifiedName"])
        fields = _fields(request, kind)
        return Response(200, {"data": [self._public(r, fields) for r in page], "paging": paging})

    # -- quality ---------------------------------------------------------------------------------

    def _test_cases(self, method: str, rest: list[str], request: Request) -> Response:
        if rest[:1] == ["testCaseResults"]:
            fqn = _name(rest[1:])
            case = self._by_name("testCase", fqn)
            if method == "POST":
                body = self._valid(request.body, "createTestCaseResult")
                stored = {**body, "id": str(uuid.uuid4()), "testCaseFQN": fqn}
                self.results.setdefault(fqn, []).append(stored)
                case["testCaseResult"] = stored
                case["testCaseStatus"] = body["testCaseStatus"]
                return Response(200, stored)
            start, end = int(request.param("startTs", "0") or 0), int(request.param("endTs", str(2**62)) or 0)
            data = [r for r in self.results.get(fqn, []) if start <= r["timestamp"] <= end]
            data.sort(key=lambda r: r["timestamp"], reverse=True)
            return Response(200, {"data": data, "paging": {"total": len(data)}})
        if method == "POST" and not rest:
            return Response(201, self._create_test_case(self._valid(request.body, "createTestCase")))
        if method == "GET" and rest[:1] == ["name"]:
            return Response(200, self._by_name("testCase", _name(rest[1:])))
        if method == "PATCH" and len(rest) == 1:
            return Response(200, self._patch("testCase", self._by_id("testCase", rest[0]), request))
        return _error(405, "HTTP 405 Method Not Allowed")

    def _create_test_case(self, body: dict[str, Any]) -> dict[str, Any]:
        link = body["entityLink"][len("<#E::") : -1].split("::")
        if link[0] != "table":
            raise BadRequest(f"Unsupported entity link {body['entityLink']}")
        table = self._by_name("table", link[1])
        definition = TEST_DEFINITIONS.get(body["testDefinition"])
        if definition is None:
            raise NotFound(f"testDefinition instance for {body['testDefinition']} not found")
        entity_type, allowed, required = definition
        target = table["fullyQualifiedName"]
        if len(link) > 2:
            if link[2] != "columns" or link[3] not in {c["name"] for c in table["columns"]}:
                raise BadRequest(f"Invalid column name {link[3] if len(link) > 3 else ''}")
            target = f"{target}.{_quote(link[3])}"
        if (entity_type == "COLUMN") != (len(link) > 2):
            raise BadRequest(
                f"Test definition {body['testDefinition']} is for a {entity_type}, not "
                f"{'a column' if len(link) > 2 else 'a table'}"
            )
        given = {p.get("name") for p in body.get("parameterValues") or []}
        unknown, missing = given - set(allowed), set(required) - given
        if unknown or missing:
            raise BadRequest(
                f"Parameter Values {sorted(unknown)} are not defined in the test definition"
                if unknown
                else f"Required parameter {min(missing)} is not passed in parameterValues"
            )
        return self._new(
            "testCase",
            f"{target}.{_quote(body['name'])}",
            {
                **body,
                "testDefinition": {
                    "id": str(uuid.uuid4()),
                    "type": "testDefinition",
                    "name": body["testDefinition"],
                    "fullyQualifiedName": body["testDefinition"],
                },
            },
        )

    # -- lineage ---------------------------------------------------------------------------------

    def _lineage(self, method: str, rest: list[str], request: Request) -> Response:
        if method == "PUT" and not rest:
            edge = self._valid(request.body, "addLineage")["edge"]
            ends = [self._by_id(e["type"], e["id"]) for e in (edge["fromEntity"], edge["toEntity"])]
            for column_lineage in (edge.get("lineageDetails") or {}).get("columnsLineage") or []:
                for column, table in [(c, ends[0]) for c in column_lineage.get("fromColumns") or []] + [
                    (column_lineage.get("toColumn"), ends[1])
                ]:
                    if column not in {c.get("fullyQualifiedName") for c in table["columns"]}:
                        raise BadRequest(f"Invalid column name {column}")
            self.edges[(ends[0]["id"], ends[1]["id"])] = edge
            return Response(200, None)
        if method == "GET" and rest[:1] == ["getLineageEdge"] and len(rest) == 3:
            edge = self.edges.get((rest[1], rest[2]))
            if edge is None:
                raise NotFound(f"Lineage edge from {rest[1]} to {rest[2]} not found")
            return Response(200, edge)
        return _error(405, "HTTP 405 Method Not Allowed")

    def _openlineage(self, rest: list[str], request: Request) -> Response:
        """Records OpenLineage RunEvents (one, or a list at ``/batch``); only the transport is checked here:
        OpenMetadata's own resolution of datasets to tables is not reproduced."""
        events = request.body if rest == ["batch"] else [request.body]
        if not isinstance(events, list) or not all(
            isinstance(e, dict) and {"eventTime", "run", "job"} <= set(e) for e in events
        ):
            raise BadRequest("Unable to process JSON: not an OpenLineage RunEvent")
        self.openlineage_events.extend(events)
        return Response(200, {"status": "success", "message": f"{len(events)} event(s) received"})

    # -- what tests look at ----------------------------------------------------------------------

    def table(self, fqn: str) -> dict[str, Any]:
        return self.entities["table"][fqn]

    def writes_to(self, method: str, prefix: str = "/api/v1/") -> list[Request]:
        with self.lock:
            return [w for w in self.writes if w.method == method and w.path.startswith(prefix)]

    def payloads(self) -> str:
        """Every body, path and query string received (headers excluded: the token belongs there)."""
        with self.lock:
            return "\n".join(
                json.dumps([r.method, r.path, r.params, r.body], default=str) for r in self.requests
            )


class _Conflict(Exception):
    pass


class _Unsupported(Exception):
    pass


def _error(status: int, message: str) -> Response:
    return Response(status, {"code": status, "message": message})


def _violation(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "body"
    return f"{where} {error.message}"


def _quote(name: str) -> str:
    return f'"{name}"' if "." in name else name


def _name(parts: list[str]) -> str:
    import urllib.parse

    return urllib.parse.unquote("/".join(parts))


def _fields(request: Request, kind: str) -> set[str] | None:
    if kind != "table":
        return None
    asked = {f.strip() for f in (request.param("fields") or "").split(",") if f.strip()}
    unknown = asked - _TABLE_FIELDS
    if unknown:
        raise BadRequest(f"Invalid field name {min(unknown)}")
    return asked


def _ref(kind: str, entity: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entity["id"],
        "type": kind,
        "name": entity["name"],
        "fullyQualifiedName": entity["fullyQualifiedName"],
        "deleted": False,
    }


def _unique_names(columns: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for column in columns:
        if column["name"] in seen:
            raise BadRequest(f"Column name {column['name']} is repeated")
        seen.add(column["name"])


def _walk(columns: list[dict[str, Any]]) -> Any:
    for column in columns:
        yield column
        yield from _walk(column.get("children") or [])


def _set_column_fqns(columns: list[dict[str, Any]], parent: str) -> None:
    for column in columns:
        column["fullyQualifiedName"] = f"{parent}.{_quote(column['name'])}"
        _set_column_fqns(column.get("children") or [], column["fullyQualifiedName"])


def _stored_view(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity as a ``Table``/``TestCase`` document: what a JSON patch applies to."""
    return copy.deepcopy(entity)


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _decode(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value.encode()).decode()
    except ValueError:
        raise BadRequest("[query param after is not a valid cursor]") from None
