"""An Iceberg table and its contract as OpenMetadata sees a table: ``CreateTableRequest`` fields.

Types: Iceberg's own types map onto OpenMetadata's ``dataType`` (``decimal(p,s)`` keeps precision and
scale, ``fixed[n]`` becomes ``BINARY`` of length ``n``, ``struct``/``list``/``map`` keep their nested
columns as ``children``). OpenMetadata refuses a ``CHAR``/``VARCHAR``/``BINARY``/``VARBINARY`` column
without ``dataLength``; a ``string`` column becomes ``VARCHAR(n)`` only when its contract says
``physicalType: varchar(n)`` (or ``char(n)``), else ``STRING``, which needs no length.

Governance from the contract: column ``classification`` becomes a tag of OpenMetadata's ``PII``
classification (:data:`PII_TAGS`; a column that identifies a data subject is at least
``PII.NonSensitive``), ``required``/``unique``/``primaryKey`` become constraints, the team becomes the
owner, ``domain`` the domain, contract tags glossary terms (when a glossary is named), the retention SLA
``retentionPeriod``. Tags we set carry ``labelType: Automated``, so the sync can tell them from tags
people added by hand in OpenMetadata, which it leaves alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyiceberg import types as it
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    TruncateTransform,
    YearTransform,
)

from dativo_provider.contracts.model import Column as ContractColumn
from dativo_provider.contracts.model import Contract, Dataset
from dativo_provider.exceptions import ConfigError

#: Contract classification -> the tag of OpenMetadata's built-in ``PII`` classification (None: no tag).
PII_TAGS: dict[str, str | None] = {
    "pii": "PII.Sensitive",
    "sensitive": "PII.Sensitive",
    "restricted": "PII.Sensitive",
    "special-category": "PII.Sensitive",
    "personal": "PII.NonSensitive",
    "quasi-identifier": "PII.NonSensitive",
    "confidential": None,
    "internal": None,
    "public": None,
}
#: The label our tags carry; hand-made tags (``Manual``) are never touched.
OUR_LABEL = "Automated"
_LENGTH_TYPES = {"char": "CHAR", "character": "CHAR", "varchar": "VARCHAR", "character varying": "VARCHAR"}
_PRIMITIVES: dict[type, str] = {
    it.BooleanType: "BOOLEAN",
    it.IntegerType: "INT",
    it.LongType: "BIGINT",
    it.FloatType: "FLOAT",
    it.DoubleType: "DOUBLE",
    it.DateType: "DATE",
    it.TimeType: "TIME",
    it.TimestampType: "TIMESTAMP",
    it.TimestampNanoType: "TIMESTAMP",
    it.TimestamptzType: "TIMESTAMPZ",
    it.TimestamptzNanoType: "TIMESTAMPZ",
    it.StringType: "STRING",
    it.UUIDType: "UUID",
    it.BinaryType: "BYTES",
}


@dataclass(frozen=True)
class GovernanceOptions:
    """How contract governance becomes OpenMetadata tags.

    :param tier: a ``Tier`` tag for every table, e.g. ``Tier.Tier2``; None for none.
    :param glossary: the glossary whose terms the contract's tags name (``Glossary.tag``); None: contract
        tags are not sent.
    :param pii_tags: overrides of :data:`PII_TAGS`.
    """

    tier: str | None = None
    glossary: str | None = None
    pii_tags: Mapping[str, str | None] = field(default_factory=dict)

    def pii_tag(self, column: ContractColumn) -> str | None:
        tags = {**PII_TAGS, **self.pii_tags}
        tag = tags.get((column.classification or "").lower())
        return tag or ("PII.NonSensitive" if column.data_subject else None)


@dataclass(frozen=True)
class TableSpec:
    """The table as OpenMetadata should have it.

    :param request: ``CreateTableRequest`` without ``owners`` and ``domains`` (they need server ids).
    :param owner: a team or user name; None leaves the owners alone.
    :param domain: a domain's fully qualified name; None leaves the domains alone.
    :param unmatched: contract columns the table does not have (renamed or dropped since): reported.
    """

    fqn: str
    request: dict[str, Any]
    owner: str | None = None
    domain: str | None = None
    unmatched: tuple[str, ...] = ()


def fqn(*parts: str) -> str:
    """OpenMetadata's fully qualified name: parts joined by dots, a part holding a dot in double quotes."""
    for part in parts:
        if '"' in part:
            raise ConfigError(f"OpenMetadata names cannot hold a double quote: {part!r}")
    return ".".join(f'"{part}"' if "." in part else part for part in parts)


def tag_label(tag_fqn: str, source: str = "Classification") -> dict[str, Any]:
    return {"tagFQN": tag_fqn, "source": source, "labelType": OUR_LABEL, "state": "Confirmed"}


def table_spec(
    schema: Schema,
    *,
    schema_fqn: str,
    name: str,
    partition_spec: PartitionSpec | None = None,
    location: str | None = None,
    contract: Contract | None = None,
    dataset: Dataset | None = None,
    options: GovernanceOptions | None = None,
) -> TableSpec:
    """Describe one Iceberg table for OpenMetadata.

    :param schema_fqn: the OpenMetadata database schema it goes in (``service.database.schema``).
    :param dataset: the contract's dataset for this table (descriptions, constraints, classification).
    :raises ConfigError: a contract column's ``physicalType`` has a bad length.
    """
    options = options or GovernanceOptions()
    described = {c.name: c for c in dataset.columns} if dataset else {}
    unmatched = tuple(sorted(set(described) - {f.name for f in schema.fields}))
    keys = dataset.primary_key if dataset else ()
    columns = [_column(f, described.get(f.name), options, single_key=len(keys) == 1) for f in schema.fields]
    request: dict[str, Any] = {
        "name": name,
        "databaseSchema": schema_fqn,
        "tableType": "Iceberg",
        "columns": columns,
    }
    if dataset and dataset.description:
        request["description"] = dataset.description
    if len(keys) > 1:
        request["tableConstraints"] = [{"constraintType": "PRIMARY_KEY", "columns": list(keys)}]
    partition = _partition(schema, partition_spec)
    if partition:
        request["tablePartition"] = {"columns": partition}
    if location:
        request["locationPath"] = location
    tags = _table_tags(contract, options)
    if tags:
        request["tags"] = tags
    if contract and contract.governance.retention_days:
        request["retentionPeriod"] = f"P{contract.governance.retention_days}D"
    governance = contract.governance if contract else None
    return TableSpec(
        fqn(*split_fqn(schema_fqn), name),
        request,
        owner=(governance.owner or None) if governance else None,
        domain=governance.domain if governance else None,
        unmatched=unmatched,
    )


def split_fqn(value: str) -> list[str]:
    """The parts of a fully qualified name (quotes removed)."""
    return [part.strip('"') for part in re.findall(r'"[^"]*"|[^.]+', value)]


def _table_tags(contract: Contract | None, options: GovernanceOptions) -> list[dict[str, Any]]:
    tags = [tag_label(options.tier)] if options.tier else []
    if contract and options.glossary:
        tags += [tag_label(fqn(options.glossary, tag), "Glossary") for tag in contract.governance.tags]
    return tags


def _column(
    nested: it.NestedField, described: ContractColumn | None, options: GovernanceOptions, *, single_key: bool
) -> dict[str, Any]:
    column = {"name": nested.name, **_type(nested.field_type, described)}
    description = (described.description if described else None) or nested.doc
    if description:
        column["description"] = description
    constraint = _constraint(nested, described, single_key)
    if constraint:
        column["constraint"] = constraint
    tag = options.pii_tag(described) if described else None
    if tag:
        column["tags"] = [tag_label(tag)]
    return column


def _constraint(nested: it.NestedField, described: ContractColumn | None, single_key: bool) -> str | None:
    if described and described.primary_key and single_key:
        return "PRIMARY_KEY"
    if described and described.unique:
        return "UNIQUE"
    if nested.required or (described and described.required):
        return "NOT_NULL"
    return None


def _type(kind: it.IcebergType, described: ContractColumn | None = None) -> dict[str, Any]:
    """``dataType`` and its details (length, precision, children) of one Iceberg type."""
    if isinstance(kind, it.DecimalType):
        return {
            "dataType": "DECIMAL",
            "precision": kind.precision,
            "scale": kind.scale,
            "dataTypeDisplay": f"decimal({kind.precision},{kind.scale})",
        }
    if isinstance(kind, it.FixedType):
        return {"dataType": "BINARY", "dataLength": len(kind), "dataTypeDisplay": f"fixed[{len(kind)}]"}
    if isinstance(kind, it.StringType) and described and described.physical_type:
        sized = _sized(described)
        if sized:
            return sized
    if isinstance(kind, it.StructType):
        children = [_column(f, None, GovernanceOptions(), single_key=False) for f in kind.fields]
        return {"dataType": "STRUCT", "dataTypeDisplay": _display(kind), "children": children}
    if isinstance(kind, it.ListType):
        element = _type(kind.element_type)
        result = {
            "dataType": "ARRAY",
            "arrayDataType": element["dataType"],
            "dataTypeDisplay": _display(kind),
        }
        if "children" in element:
            result["children"] = element["children"]
        return result
    if isinstance(kind, it.MapType):
        return {"dataType": "MAP", "dataTypeDisplay": _display(kind)}
    for primitive, name in _PRIMITIVES.items():
        if isinstance(kind, primitive):
            return {"dataType": name, "dataTypeDisplay": str(kind).lower()}
    return {"dataType": "UNKNOWN", "dataTypeDisplay": str(kind).lower()}


def _sized(described: ContractColumn) -> dict[str, Any] | None:
    match = re.fullmatch(r"\s*([a-z ]+?)\s*\(\s*(\d+)\s*\)\s*", (described.physical_type or "").lower())
    if not match or match.group(1) not in _LENGTH_TYPES:
        return None
    length = int(match.group(2))
    if length < 1:
        raise ConfigError(
            f"column {described.name}: physicalType {described.physical_type!r} needs a length >= 1"
        )
    data_type = _LENGTH_TYPES[match.group(1)]
    return {"dataType": data_type, "dataLength": length, "dataTypeDisplay": f"{data_type.lower()}({length})"}


def _display(kind: it.IcebergType) -> str:
    # The server stores dataTypeDisplay lower-cased; so do we, or every re-sync would see a change.
    return _spelled(kind).lower()


def _spelled(kind: it.IcebergType) -> str:
    if isinstance(kind, it.StructType):
        return "struct<" + ",".join(f"{f.name}:{_spelled(f.field_type)}" for f in kind.fields) + ">"
    if isinstance(kind, it.ListType):
        return f"array<{_spelled(kind.element_type)}>"
    if isinstance(kind, it.MapType):
        return f"map<{_spelled(kind.key_type)},{_spelled(kind.value_type)}>"
    return str(kind)


def _partition(schema: Schema, spec: PartitionSpec | None) -> list[dict[str, Any]]:
    if spec is None:
        return []
    columns = []
    for part in spec.fields:
        source = schema.find_field(part.source_id).name
        transform = part.transform
        if isinstance(transform, (YearTransform, MonthTransform, DayTransform, HourTransform)):
            interval_type, interval = "TIME-UNIT", type(transform).__name__.removesuffix("Transform").upper()
        elif isinstance(transform, IdentityTransform):
            interval_type, interval = "COLUMN-VALUE", None
        elif isinstance(transform, (BucketTransform, TruncateTransform)):
            interval_type, interval = "INTEGER-RANGE", str(transform)
        else:
            interval_type, interval = "OTHER", str(transform)
        detail = {"columnName": source, "intervalType": interval_type}
        if interval:
            detail["interval"] = interval
        columns.append(detail)
    return columns
