"""Arrow ↔ Iceberg schemas: exact storage types, drift detection and the schema policy.

Storage mapping (Arrow type a source yields → Iceberg type stored; anything else is rejected with
an error naming the column):

=====================================  ==========================================================
Arrow                                  Iceberg
=====================================  ==========================================================
bool                                   boolean
int8, int16, int32, uint8, uint16      int (read back as int32)
int64, uint32                          long
uint64                                 rejected: map it to decimal(20, 0) in the source
float16, float32 / float64             float / double
decimal128(p, s), p ≤ 38               decimal(p, s)
string, large_string, string_view      string
binary, large_binary                   binary
fixed_size_binary(n)                   fixed(n)
uuid extension                         uuid
date32, date64                         date
time32, time64 (s, ms, us, ns)         time (µs; a value with sub-µs digits is rejected)
timestamp without zone                 timestamp (µs; a value with sub-µs digits is rejected)
timestamp with any zone                timestamptz (the instant is kept, stored in UTC)
list, large_list, fixed_size_list      list
struct / map                           struct / map
dictionary<values>                     the values' type
null (a column with no typed values)   string
=====================================  ==========================================================

Nullability: a non-nullable Arrow field (a source column declared NOT NULL, e.g. a primary key) is a
*required* Iceberg column, a nullable one an optional column; the write option
``required_columns: false`` makes every column optional (:func:`as_optional`). What each schema
policy does with each kind of drift is :data:`POLICY_OUTCOMES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dativo_provider.exceptions import SchemaDriftError, UnsupportedTypeError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.types import IcebergType


def storage_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow schema a source's schema is stored as (see the module table)."""
    import pyarrow as pa

    return pa.schema(
        [field.with_type(storage_type(field.type, field.name)) for field in schema],
        metadata=schema.metadata,
    )


def as_optional(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every column nullable, so the table's columns are created (and kept) optional."""
    import pyarrow as pa

    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


def storage_type(arrow_type: pa.DataType, column: str) -> pa.DataType:
    """Map one Arrow type to the Arrow type Iceberg stores it as; raise naming ``column`` if none."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_dictionary(arrow_type):
        return storage_type(arrow_type.value_type, column)
    if t.is_null(arrow_type):
        return pa.string()
    if t.is_int8(arrow_type) or t.is_int16(arrow_type) or t.is_uint8(arrow_type) or t.is_uint16(arrow_type):
        return pa.int32()
    if t.is_uint32(arrow_type):
        return pa.int64()
    if t.is_uint64(arrow_type):
        raise UnsupportedTypeError(
            f"column {column!r} is uint64, which Iceberg cannot store exactly; cast it to decimal(20, 0)"
        )
    if t.is_float16(arrow_type):
        return pa.float32()
    if t.is_decimal(arrow_type):
        if arrow_type.precision > 38:
            raise UnsupportedTypeError(
                f"column {column!r} is {arrow_type}; Iceberg decimals hold at most 38 digits"
            )
        return pa.decimal128(arrow_type.precision, arrow_type.scale)
    if t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return pa.string()
    if t.is_large_binary(arrow_type) or t.is_binary_view(arrow_type):
        return pa.binary()
    if t.is_date64(arrow_type):
        return pa.date32()
    if t.is_time(arrow_type):
        return pa.time64("us")
    if t.is_timestamp(arrow_type):
        return pa.timestamp("us", tz=None if arrow_type.tz is None else "UTC")
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return pa.list_(_child(arrow_type.value_field, column).with_name("element"))
    if t.is_struct(arrow_type):
        return pa.struct([_child(arrow_type.field(i), column) for i in range(arrow_type.num_fields)])
    if t.is_map(arrow_type):
        return pa.map_(
            storage_type(arrow_type.key_type, f"{column}.key"), storage_type(arrow_type.item_type, f"{column}.value")
        )
    if t.is_duration(arrow_type) or t.is_interval(arrow_type):
        raise UnsupportedTypeError(
            f"column {column!r} is {arrow_type}; Iceberg has no interval type: cast it to a number of "
            "seconds or to text in the source"
        )
    if _is_plain_supported(arrow_type):
        return arrow_type
    raise UnsupportedTypeError(f"column {column!r} has type {arrow_type}, which Iceberg cannot store")


def _child(child: pa.Field, column: str) -> pa.Field:
    return child.with_type(storage_type(child.type, f"{column}.{child.name}"))


def _is_plain_supported(arrow_type: pa.DataType) -> bool:
    import pyarrow as pa
    import pyarrow.types as t

    return (
        t.is_boolean(arrow_type)
        or arrow_type in (pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.string(), pa.binary(), pa.date32())
        or t.is_fixed_size_binary(arrow_type)
        or isinstance(arrow_type, pa.UuidType)
    )


#: What each policy does with each kind of change: ``fail`` (nothing is written), ``evolve`` (the
#: table's schema changes, then the rows are written) or ``keep`` (the rows are written into the table
#: as it is, every value kept, and the change is reported in ``warnings``). A ``missing`` column that
#: is required in the table fails under every policy: the table cannot hold its absence.
POLICY_OUTCOMES: dict[str, dict[str, str]] = {
    "strict": dict.fromkeys(
        ("added", "missing", "widened", "narrowed", "tightened", "relaxed", "incompatible"), "fail"
    ),
    "evolve": {"added": "evolve", "missing": "keep", "widened": "evolve", "narrowed": "keep",
               "tightened": "keep", "relaxed": "evolve", "incompatible": "fail"},
    "warn": {"added": "fail", "missing": "keep", "widened": "fail", "narrowed": "keep",
             "tightened": "keep", "relaxed": "fail", "incompatible": "fail"},
}

#: Why a policy refuses a change, shown after the change in the error.
_REFUSALS = {
    ("warn", "added"): "policy warn never changes the table and never drops a value: use policy evolve to "
                       "add the column, or leave it out of the source's columns",
    ("warn", "widened"): "policy warn cannot widen the table's type, and the values may not fit",
    ("warn", "relaxed"): "policy warn cannot make the column optional, and a null could not be stored",
}


@dataclass(frozen=True)
class ColumnChange:
    """One difference between the table and the incoming data.

    ``kind`` is ``added``, ``missing``, ``widened`` (the source type is wider), ``narrowed`` (the
    source type is narrower: its values fit the table), ``tightened`` (NOT NULL in the source, optional
    in the table), ``relaxed`` (nullable in the source, required in the table) or ``incompatible``.
    """

    column: str
    kind: str
    table_type: str | None = None
    source_type: str | None = None

    def describe(self) -> str:
        match self.kind:
            case "added":
                return f"+ {self.column} {self.source_type} (new in source)"
            case "missing":
                return f"- {self.column} {self.table_type} (absent from source)"
            case "widened":
                return f"~ {self.column} {self.table_type} -> {self.source_type} (wider in source)"
            case "narrowed":
                return (f"~ {self.column} {self.table_type} <- {self.source_type} (narrower in source; "
                        f"the values fit {self.table_type})")
            case "tightened":
                return f"~ {self.column} {self.table_type} (NOT NULL in source, optional in the table)"
            case "relaxed":
                return f"~ {self.column} {self.table_type} (nullable in source, required in the table)"
            case _:
                return f"! {self.column} {self.table_type} <- {self.source_type} (cannot be stored)"


@dataclass
class SchemaPlan:
    """What to do about the incoming schema before writing.

    :param changes: every difference between the table and the incoming schema.
    :param evolved: the changes the table's schema takes (``evolve`` policy) before the write.
    :param warnings: the drift, as a readable diff, when there is any.
    """

    changes: list[ColumnChange] = field(default_factory=list)
    evolved: list[ColumnChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def evolve(self) -> bool:
        """Whether the table's schema changes before the write."""
        return bool(self.evolved)


def compare(table_schema: Schema, incoming: pa.Schema) -> list[ColumnChange]:
    """List the differences between the table's columns and the incoming (storage) schema."""
    from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids

    incoming_iceberg = _pyarrow_to_schema_without_ids(incoming)
    table_fields = {f.name: f for f in table_schema.fields}
    changes: list[ColumnChange] = []
    for incoming_field in incoming_iceberg.fields:
        existing = table_fields.get(incoming_field.name)
        if existing is None:
            changes.append(ColumnChange(incoming_field.name, "added", source_type=str(incoming_field.field_type)))
            continue
        kind = _type_relation(existing.field_type, incoming_field.field_type, incoming.field(incoming_field.name).type)
        if kind != "same":
            changes.append(
                ColumnChange(existing.name, kind, str(existing.field_type), str(incoming_field.field_type))
            )
        if kind != "incompatible" and existing.required != incoming_field.required:
            nullability = "relaxed" if existing.required else "tightened"
            changes.append(ColumnChange(existing.name, nullability, str(existing.field_type),
                                        str(incoming_field.field_type)))
    incoming_names = {f.name for f in incoming_iceberg.fields}
    for name, existing in table_fields.items():
        if name not in incoming_names:
            changes.append(ColumnChange(name, "missing", table_type=str(existing.field_type)))
    return changes


def _type_relation(table_type: IcebergType, source_type: IcebergType, source_arrow: pa.DataType) -> str:
    """``same``; ``narrowed`` if source values fit a wider table type; ``widened`` if the table type can
    be promoted to the source's; else ``incompatible``."""
    from pyiceberg.types import DecimalType, DoubleType, FloatType, IntegerType, LongType

    if table_type == source_type:
        return "same"
    fits = {(LongType, IntegerType), (DoubleType, FloatType)}
    if (type(table_type), type(source_type)) in fits:
        return "narrowed"
    if isinstance(table_type, DecimalType) and isinstance(source_type, DecimalType):
        if table_type.scale == source_type.scale:
            return "narrowed" if source_type.precision < table_type.precision else "widened"
    if (type(table_type), type(source_type)) in {(IntegerType, LongType), (FloatType, DoubleType)}:
        return "widened"
    if not table_type.is_primitive and type(table_type) is type(source_type):
        if _arrow_of(table_type) == source_arrow:
            return "same"
        # Nested columns are reconciled field by field by pyiceberg's union_by_name.
        return "widened"
    return "incompatible"


def _arrow_of(iceberg_type: IcebergType) -> pa.DataType:
    """The Arrow type of an Iceberg type, without field ids, for comparing nested types."""
    from pyiceberg.io.pyarrow import _pyarrow_schema_ensure_small_types, schema_to_pyarrow
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    schema = Schema(NestedField(1, "c", iceberg_type, required=False))
    return _pyarrow_schema_ensure_small_types(schema_to_pyarrow(schema, include_field_ids=False)).field("c").type


def plan_schema(table: Table, incoming: pa.Schema, policy: str) -> SchemaPlan:
    """Decide, under ``policy``, how the incoming schema is written into ``table`` (see
    :data:`POLICY_OUTCOMES`). No policy drops a value: a change the table cannot take fails.

    :raises SchemaDriftError: with a readable diff when the policy refuses a change.
    """
    changes = compare(table.schema(), incoming)
    plan = SchemaPlan(changes=changes)
    if not changes:
        return plan
    judged = [(change, *_outcome(policy, change, table)) for change in changes]
    if any(outcome == "fail" for _, outcome, _ in judged):
        # The refused changes first, each with its reason; then the rest of the diff.
        judged.sort(key=lambda item: item[1] != "fail")
        lines = [change.describe() + (f": {reason}" if outcome == "fail" and reason else "")
                 for change, outcome, reason in judged]
        raise SchemaDriftError(
            f"schema drift on {_name(table)} (policy {policy}) refused, nothing was written:\n  "
            + "\n  ".join(lines)
        )
    plan.evolved = [change for change, outcome, _ in judged if outcome == "evolve"]
    diff = "\n  ".join(c.describe() for c in changes)
    plan.warnings.append(f"schema drift on {_name(table)} (policy {policy}):\n  {diff}")
    return plan


def _outcome(policy: str, change: ColumnChange, table: Table) -> tuple[str, str]:
    """What ``policy`` does with ``change``, and why when it refuses."""
    if change.kind == "missing" and table.schema().find_field(change.column).required:
        return "fail", "required in the table, so the rows cannot be written without it"
    return POLICY_OUTCOMES[policy][change.kind], _REFUSALS.get((policy, change.kind), "")


def apply_evolution(table: Table, incoming: pa.Schema) -> Table:
    """Add the incoming columns (optional: the table's rows have no value for them), widen types and make
    columns the source now lets be null optional, in one schema commit; return the refreshed table.

    Iceberg cannot make an optional column required or narrow a type, so those stay as they are.
    """
    import pyarrow as pa

    existing = {f.name for f in table.schema().fields}
    evolvable = pa.schema([f if f.name in existing else f.with_nullable(True) for f in incoming])
    with table.update_schema() as update:
        update.union_by_name(evolvable)
    return table.refresh()


def _name(table: Table) -> str:
    return ".".join(table.name())
