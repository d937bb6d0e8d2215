"""Register or update Iceberg tables in OpenMetadata: idempotent, incremental, concurrent.

Steps of :func:`sync_tables`:

1. make sure the database service, database and schemas exist (GET by name; POST what is missing;
   a 409 from a concurrent creator means it exists);
2. read the tables already in each schema (one paged list per schema, every page followed);
3. resolve owners (a team, else a user) and domains to their ids, once per name;
4. per table, on at most ``max_workers`` threads: POST a ``CreateTableRequest`` when the table is new,
   else compare the fields we manage with the server's and send the differences as ONE JSON patch
   (RFC 6902); nothing when there is none, so a re-sync with no change writes nothing.

Only what a contract or the Iceberg schema says is managed: a description the contract leaves out,
tags people added by hand (any ``labelType`` but ``Automated``) and other owners' edits stay untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from dativo_provider.contracts.model import Contract
from dativo_provider.exceptions import ConfigError
from dativo_provider.lineage.openmetadata_client import (
    OpenMetadataClient,
    OpenMetadataConflict,
    OpenMetadataNotFound,
    quote_path,
)
from dativo_provider.lineage.openmetadata_mapping import (
    OUR_LABEL,
    GovernanceOptions,
    TableSpec,
    fqn,
    table_spec,
)

#: Fields asked for when reading tables back (``retentionPeriod`` and ``description`` always come;
#: naming them would be a 400).
TABLE_FIELDS = "columns,tags,owners,domains,tableConstraints,tablePartition"
#: Table fields set from the Iceberg table and contract, compared and patched as a whole.
_TABLE_KEYS = (
    "description",
    "tableType",
    "tableConstraints",
    "tablePartition",
    "retentionPeriod",
    "locationPath",
)
#: Column fields compared one by one (``tags`` are handled apart, keeping hand-made ones).
_COLUMN_KEYS = (
    "name",
    "dataType",
    "dataLength",
    "precision",
    "scale",
    "arrayDataType",
    "dataTypeDisplay",
    "description",
    "constraint",
    "children",
)
#: Column fields whose absence from the contract/schema is a change (a description is never removed).
_REMOVABLE = frozenset(_COLUMN_KEYS) - {"name", "dataType", "description"}


@dataclass(frozen=True)
class ServiceTarget:
    """Where the tables go: ``service.database.<namespace>.<table>``.

    :param service_type: OpenMetadata has no Iceberg service type: ``CustomDatabase`` (created if
        missing), or an existing ``Glue``/``Hive``/``Trino``/``UnityCatalog`` service's type.
    """

    service: str = "dativo_iceberg"
    database: str = "dativo"
    service_type: str = "CustomDatabase"

    def schema_fqn(self, namespace: str) -> str:
        return fqn(self.service, self.database, namespace)


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    patched: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    #: POST/PUT/PATCH requests sent (hierarchy included).
    writes: int = 0
    #: table -> contract columns it does not have (their governance was not sent).
    unmatched: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tables": len(self.created) + len(self.patched) + self.unchanged}


def iceberg_specs(
    catalog: Any,
    tables: Iterable[str],
    target: ServiceTarget,
    contracts: Iterable[Contract] = (),
    options: GovernanceOptions | None = None,
) -> list[TableSpec]:
    """Describe Iceberg tables (``namespace.table`` in a pyiceberg ``catalog``) with their contracts.

    A table's contract is the one with a dataset whose ``physicalName`` is the table's identifier.
    """
    by_table = {d.physical_name: (c, d) for c in contracts for d in c.datasets if d.physical_name}
    specs = []
    for identifier in tables:
        table = catalog.load_table(identifier)
        *namespace, name = table.name()
        contract, dataset = by_table.get(identifier, (None, None))
        specs.append(
            table_spec(
                table.schema(),
                schema_fqn=target.schema_fqn(".".join(namespace)),
                name=name,
                partition_spec=table.spec(),
                location=table.location(),
                contract=contract,
                dataset=dataset,
                options=options,
            )
        )
    return specs


def sync_tables(client: OpenMetadataClient, specs: Iterable[TableSpec], target: ServiceTarget) -> SyncResult:
    """Bring every table of ``specs`` into OpenMetadata under ``target``; see the module docstring."""
    specs = list(specs)
    result = SyncResult()
    schemas = sorted({spec.request["databaseSchema"] for spec in specs})
    result.writes += ensure_hierarchy(client, target, schemas)
    existing = {
        table["fullyQualifiedName"]: table
        for schema in schemas
        for table in client.paged("/tables", {"databaseSchema": schema, "fields": TABLE_FIELDS})
    }
    refs = _References(client)
    for spec in specs:  # resolved here, once each: the worker threads then only read the cache
        refs.owner(spec.owner)
        refs.domain(spec.domain)
    outcomes = client.map_bounded(lambda spec: _sync_one(client, spec, existing.get(spec.fqn), refs), specs)
    for spec, (kind, operations) in zip(specs, outcomes, strict=True):
        if spec.unmatched:
            result.unmatched[spec.fqn] = list(spec.unmatched)
        if kind == "created":
            result.created.append(spec.fqn)
        elif kind == "patched":
            result.patched[spec.fqn] = operations
        else:
            result.unchanged += 1
        result.writes += kind != "unchanged"
    return result


def ensure_hierarchy(client: OpenMetadataClient, target: ServiceTarget, schema_fqns: Iterable[str]) -> int:
    """Create the service, database and schemas that do not exist; the number of POSTs sent."""
    writes = _ensure(
        client,
        "/services/databaseServices",
        target.service,
        {
            "name": target.service,
            "serviceType": target.service_type,
            "description": "Apache Iceberg tables registered by dativo-airflow-provider.",
        },
    )
    database = fqn(target.service, target.database)
    writes += _ensure(client, "/databases", database, {"name": target.database, "service": target.service})
    for schema in schema_fqns:
        name = schema[len(database) + 1 :].strip('"')
        writes += _ensure(client, "/databaseSchemas", schema, {"name": name, "database": database})
    return writes


def _ensure(client: OpenMetadataClient, collection: str, name: str, create: dict[str, Any]) -> int:
    if client.find(f"{collection}/name/{quote_path(name)}") is not None:
        return 0
    try:
        client.post(collection, create)
    except OpenMetadataConflict:  # created meanwhile by another task
        return 0
    return 1


def _sync_one(
    client: OpenMetadataClient, spec: TableSpec, current: dict[str, Any] | None, refs: _References
) -> tuple[str, int]:
    owner, domain = refs.owner(spec.owner), refs.domain(spec.domain)
    if current is None:
        request = {
            **spec.request,
            **({"owners": [owner]} if owner else {}),
            **({"domains": [spec.domain]} if spec.domain else {}),
        }
        try:
            client.post("/tables", request)
            return "created", 0
        except OpenMetadataConflict:  # listed before another writer created it: compare with its state
            current = client.get(f"/tables/name/{quote_path(spec.fqn)}", {"fields": TABLE_FIELDS})
    operations = table_patch(current, spec, owner, domain)
    if not operations:
        return "unchanged", 0
    client.patch(f"/tables/{current['id']}", operations)
    return "patched", len(operations)


def table_patch(
    current: dict[str, Any],
    spec: TableSpec,
    owner: dict[str, Any] | None = None,
    domain: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The JSON-patch operations that turn ``current`` (a Table as the server returned it) into ``spec``."""
    want = spec.request
    operations = [
        _set(current, key, want[key])
        for key in _TABLE_KEYS
        if want.get(key) is not None and current.get(key) != want[key]
    ]
    operations += _columns_patch(current.get("columns") or [], want["columns"])
    operations += _tags_patch("/tags", current.get("tags") or [], want.get("tags") or [])
    for key, ref in (("owners", owner), ("domains", domain)):
        if ref and [r.get("id") for r in current.get(key) or []] != [ref["id"]]:
            operations.append(_set(current, key, [{"id": ref["id"], "type": ref["type"]}]))
    return operations


def _set(current: dict[str, Any], key: str, value: Any, prefix: str = "") -> dict[str, Any]:
    # "add" on an existing member replaces it (RFC 6902 4.1); "replace" says so in the server's history.
    return {
        "op": "replace" if current.get(key) is not None else "add",
        "path": f"{prefix}/{key}",
        "value": value,
    }


def _columns_patch(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(current) != len(wanted):
        merged = [{**want, **_kept_tags(cur, want)} for want, cur in _pair_by_name(wanted, current)]
        return [{"op": "replace", "path": "/columns", "value": merged}]
    operations = []
    for index, (cur, want) in enumerate(zip(current, wanted, strict=True)):
        prefix = f"/columns/{index}"
        for key in _COLUMN_KEYS:
            have, need = _view(cur.get(key)), _view(want.get(key))
            if need is None and (have is None or key not in _REMOVABLE):
                continue
            if have != need:
                operations.append(
                    {"op": "remove", "path": f"{prefix}/{key}"}
                    if need is None
                    else _set(cur, key, want[key], prefix)
                )
        operations += _tags_patch(f"{prefix}/tags", cur.get("tags") or [], want.get("tags") or [])
    return operations


def _pair_by_name(wanted: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    by_name = {c["name"]: c for c in current}
    return [(want, by_name.get(want["name"], {})) for want in wanted]


def _kept_tags(current: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    tags = [t for t in current.get("tags") or [] if t.get("labelType") != OUR_LABEL] + (
        want.get("tags") or []
    )
    return {"tags": [_label(t) for t in tags]} if tags else {}


def _tags_patch(
    path: str, current: list[dict[str, Any]], wanted: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    ours = [_label(t) for t in current if t.get("labelType") == OUR_LABEL]
    if sorted(map(_key, ours)) == sorted(map(_key, wanted)):
        return []
    others = [_label(t) for t in current if t.get("labelType") != OUR_LABEL]
    return [{"op": "replace" if current else "add", "path": path, "value": others + wanted}]


def _label(tag: dict[str, Any]) -> dict[str, Any]:
    return {k: tag[k] for k in ("tagFQN", "source", "labelType", "state") if k in tag}


def _key(tag: dict[str, Any]) -> tuple[str, str]:
    return str(tag.get("tagFQN")), str(tag.get("source"))


def _view(value: Any) -> Any:
    """A column field as compared: nested children keep only the fields we set."""
    if isinstance(value, list):
        return [_view(item) for item in value] or None
    if isinstance(value, dict):
        return {k: _view(value.get(k)) for k in _COLUMN_KEYS if value.get(k) is not None}
    return value


class _References:
    """Owner and domain names resolved to entity references, each looked up once."""

    def __init__(self, client: OpenMetadataClient) -> None:
        self.client = client
        self.cache: dict[tuple[str, str], dict[str, Any]] = {}

    def owner(self, name: str | None) -> dict[str, Any] | None:
        if not name:
            return None
        key = ("owner", name)
        if key not in self.cache:
            found = self.client.find(f"/teams/name/{quote_path(name)}") or self.client.find(
                f"/users/name/{quote_path(name)}"
            )
            if found is None:
                raise ConfigError(
                    f"owner {name!r} (the contract's team) is neither a team nor a user in OpenMetadata"
                )
            self.cache[key] = {"id": found["id"], "type": "team" if "teamType" in found else "user"}
        return self.cache[key]

    def domain(self, name: str | None) -> dict[str, Any] | None:
        if not name:
            return None
        key = ("domain", name)
        if key not in self.cache:
            try:
                found = self.client.get(f"/domains/name/{quote_path(name)}")
            except OpenMetadataNotFound:
                raise ConfigError(
                    f"domain {name!r} (the contract's domain) does not exist in OpenMetadata"
                ) from None
            self.cache[key] = {"id": found["id"], "type": "domain"}
        return self.cache[key]
