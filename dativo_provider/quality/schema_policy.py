"""Schema policy: compare the incoming data's Arrow schema with the contract before anything is written.

Each difference is one :class:`~.result.CheckResult` (engine ``dativo``, category ``schema``,
severity ``error``, metric ``schema``, named ``schema:<column>:<kind>``): outcome ``failed`` for a
violation, ``passed`` for a difference the policy allows (the message says which flag allowed it, so
the report shows it). A column that matches produces no result. Deciding block, quarantine or warn is
the caller's business; this module only computes the findings. It needs pyarrow and nothing else.

The contract is the promise to consumers. What each difference is, and when it is allowed:

================  ==================================================  =============================
kind              the data ...                                        allowed by
================  ==================================================  =============================
``added``         brings a column the contract does not list          ``allowNullableExpansion``,
                                                                      if the Arrow field is nullable
``dropped``       lacks a column the contract lists                   never
``widened``       has a wider type of the same family (contract       ``allowTypeWidening``
                  ``int``, data int64)
``narrowed``      has a narrower type of the same family (contract    ``allowTypeWidening`` (the
                  ``bigint``, data int32): the writer casts it up      table keeps the contract's
                  safely, but it signals an upstream change            type)
``incompatible``  has a type of another family (contract integer,     never
                  data string)
``nullability``   declares non-nullable a column the contract does    any relaxed policy (either
                  not mark ``required`` (nullable → required)          flag set)
================  ==================================================  =============================

Both flags off is *strict*: every difference is a violation. A contract column that is ``required``
arriving as a nullable Arrow field is *not* a finding: most sources (files, SaaS APIs, any query) cannot
declare non-null, and the ``<column>__required`` quality check counts the actual nulls. Postgres and
MySQL *table* reads do declare it: a NOT NULL (or primary-key) column arrives non-nullable, so one the
contract does not mark ``required`` is a ``nullability`` finding, unless the ingest's write option
``required_columns: false`` makes every incoming column nullable.

Type families and widths. Integers widen by range (int8 → int16 → int32 → int64; an unsigned type
whose range neither holds nor fits in the contract's, such as uint64 against int64, is incompatible);
floats by width (float32 → float64); decimals by precision at the *same* scale (``decimal(10,2)`` →
``decimal(18,2)``; another scale is incompatible). Integer → float, float → decimal and every other
cross-family change are incompatible. Timestamps never widen: a different zone-ness, or a unit other
than a declared precision, is incompatible. ``string`` and ``large_string`` (and ``string_view``) are
the same type, as are the binary variants, ``date32`` and ``date64``. A dictionary-encoded column is
compared by its value type; a column of Arrow type ``null`` (no value seen) matches any type.

How a contract column's type is resolved (:func:`expected_arrow_type`): ``physicalType`` wins when it
is one of the names below (case-insensitive, parameters allowed); otherwise ``logicalType`` decides.

============================================================  ===========================================
physicalType                                                  Arrow
============================================================  ===========================================
bigint, int8, long, int64                                     int64
int, integer, int4, int32                                     int32
smallint, int2, int16                                         int16
tinyint                                                       int8
double, float8, double precision, float64                     float64
real, float4, float, float32                                  float32
decimal(p,s), numeric(p,s) (``(p)`` means scale 0)            decimal128(p,s); no parameters: any decimal
text, string, varchar(n), char(n), character varying(n)...    string (any length)
json, jsonb                                                   string, or the ``arrow.json`` extension
uuid                                                          string, fixed_size_binary(16) or ``arrow.uuid``
bytea, binary, varbinary, blob                                binary
boolean, bool                                                 bool
date                                                          date32 (date64 accepted)
timestamp, timestamp without time zone, datetime              timestamp without a zone
timestamptz, timestamp with time zone                         timestamp with any zone
============================================================  ===========================================

A timestamp with a precision (``timestamp(3)``) wants that unit: 0 → s, 1–3 → ms, 4–6 → us, 7–9 → ns;
without one any unit is accepted. With ``logicalType`` only, a family is accepted whatever its width,
so no widened/narrowed finding is possible: ``integer`` any integer; ``number`` any integer, float or
decimal; ``string`` string; ``boolean`` bool; ``date`` date32/date64; ``timestamp`` any timestamp;
``array`` any list; ``object`` struct, map or string (JSON text). Any other type (``time``, none at
all) gives no type finding for the column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.types as pat

from dativo_provider.contracts.model import Column, Dataset, SchemaPolicy
from dativo_provider.quality.result import CheckResult

Kind = Literal["added", "dropped", "narrowed", "widened", "incompatible", "nullability"]
Comparison = Literal["same", "wider", "narrower", "incompatible"]

WIDENING = "allowTypeWidening"
EXPANSION = "allowNullableExpansion"


@dataclass(frozen=True)
class ArrowTypeSpec:
    """The Arrow types a contract column accepts.

    :param label: the contract's type as messages name it, e.g. ``bigint (int64)``, ``logicalType integer``.
    :param accepts: whether an Arrow type is of the column's family (the same type up to width).
    :param exact: the width the contract promises (an integer, float or decimal type), against which a
        type of the same family is widened or narrowed; None when every member of the family is the same.
    """

    label: str
    accepts: Callable[[pa.DataType], bool]
    exact: pa.DataType | None = None


# --- resolving the contract's type ----------------------------------------------------------------


def _is_string(t: pa.DataType) -> bool:
    return pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return pat.is_binary(t) or pat.is_large_binary(t) or pat.is_binary_view(t)


def _is_extension(t: pa.DataType, name: str) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == name


def _is_uuid(t: pa.DataType) -> bool:
    return _is_string(t) or t == pa.binary(16) or _is_extension(t, "arrow.uuid")


def _is_list(t: pa.DataType) -> bool:
    return pat.is_list(t) or pat.is_large_list(t) or pat.is_fixed_size_list(t) or pat.is_list_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t)


_INTEGERS = {
    **dict.fromkeys(("bigint", "int8", "long", "int64"), pa.int64()),
    **dict.fromkeys(("int", "integer", "int4", "int32"), pa.int32()),
    **dict.fromkeys(("smallint", "int2", "int16"), pa.int16()),
    "tinyint": pa.int8(),
}
_FLOATS = {
    **dict.fromkeys(("double", "float8", "double precision", "float64"), pa.float64()),
    **dict.fromkeys(("real", "float4", "float", "float32"), pa.float32()),
}
#: Physical types whose family alone decides (no width), by name.
_FAMILIES: dict[str, Callable[[pa.DataType], bool]] = {
    **dict.fromkeys(("text", "string", "varchar", "char", "character", "character varying", "nvarchar",
                     "nchar", "bpchar"), _is_string),
    **dict.fromkeys(("json", "jsonb"), lambda t: _is_string(t) or _is_extension(t, "arrow.json")),
    "uuid": _is_uuid,
    **dict.fromkeys(("bytea", "binary", "varbinary", "blob"), _is_binary),
    **dict.fromkeys(("boolean", "bool"), pat.is_boolean),
    "date": pat.is_date,
}
_LOGICAL: dict[str, Callable[[pa.DataType], bool]] = {
    "integer": pat.is_integer,
    "number": _is_number,
    "string": _is_string,
    "boolean": pat.is_boolean,
    "date": pat.is_date,
    "timestamp": pat.is_timestamp,
    "array": _is_list,
    "object": lambda t: pat.is_struct(t) or pat.is_map(t) or _is_string(t),
}
_TIMESTAMPS = {"timestamp": False, "timestamp without time zone": False, "datetime": False,
               "timestamptz": True, "timestamp with time zone": True}
_PARAMS = re.compile(r"\(([^)]*)\)")


def expected_arrow_type(column: Column) -> ArrowTypeSpec | None:
    """The Arrow types ``column`` accepts, or None when the contract gives no type this module knows."""
    physical = _physical_spec(column.physical_type) if column.physical_type else None
    if physical is not None:
        return physical
    accepts = _LOGICAL.get((column.logical_type or "").lower())
    return ArrowTypeSpec(f"logicalType {column.logical_type}", accepts) if accepts else None


def _physical_spec(written: str) -> ArrowTypeSpec | None:
    text = " ".join(written.lower().split())
    found = _PARAMS.search(text)
    params = [p.strip() for p in found.group(1).split(",")] if found else []
    base = " ".join(_PARAMS.sub(" ", text).split())
    if base in _INTEGERS:
        return ArrowTypeSpec(f"{written} ({_INTEGERS[base]})", pat.is_integer, _INTEGERS[base])
    if base in _FLOATS:
        return ArrowTypeSpec(f"{written} ({_FLOATS[base]})", pat.is_floating, _FLOATS[base])
    if base in ("decimal", "numeric"):
        return _decimal_spec(written, params)
    if base in _TIMESTAMPS:
        return _timestamp_spec(written, _TIMESTAMPS[base], params)
    accepts = _FAMILIES.get(base)
    return ArrowTypeSpec(written, accepts) if accepts else None


def _decimal_spec(written: str, params: list[str]) -> ArrowTypeSpec | None:
    if not params:
        return ArrowTypeSpec(written, pat.is_decimal)
    if not all(p.isdigit() for p in params) or len(params) > 2:
        return None
    precision, scale = int(params[0]), int(params[1]) if len(params) == 2 else 0
    if not 1 <= precision <= 76 or scale > precision:
        return None
    exact = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    return ArrowTypeSpec(written, pat.is_decimal, exact)


def _timestamp_spec(written: str, zoned: bool, params: list[str]) -> ArrowTypeSpec | None:
    unit = None
    if params:
        if len(params) != 1 or not params[0].isdigit() or int(params[0]) > 9:
            return None
        unit = ("s", "ms", "ms", "ms", "us", "us", "us", "ns", "ns", "ns")[int(params[0])]

    def accepts(t: pa.DataType) -> bool:
        return pat.is_timestamp(t) and (t.tz is not None) == zoned and unit in (None, t.unit)

    zone = "with" if zoned else "without"
    return ArrowTypeSpec(f"{written} (timestamp{f'[{unit}]' if unit else ''} {zone} a zone)", accepts)


# --- comparing ----------------------------------------------------------------------------------


def _compare(spec: ArrowTypeSpec, data: pa.DataType) -> Comparison:
    """How the data's type stands against the contract's: the same, wider, narrower or incompatible."""
    data = _plain(data)
    if pat.is_null(data):
        return "same"
    if not spec.accepts(data):
        return "incompatible"
    if spec.exact is None:
        return "same"
    if pat.is_integer(data):
        return _by_range(_int_range(spec.exact), _int_range(data))
    if pat.is_floating(data):
        return _by_range((0, spec.exact.bit_width), (0, data.bit_width))
    if data.scale != spec.exact.scale:
        return "incompatible"
    return _by_range((0, spec.exact.precision), (0, data.precision))


def _plain(t: pa.DataType) -> pa.DataType:
    return _plain(t.value_type) if pat.is_dictionary(t) else t


def _int_range(t: pa.DataType) -> tuple[int, int]:
    bits = t.bit_width
    return (0, 2**bits - 1) if pat.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _by_range(contract: tuple[int, int], data: tuple[int, int]) -> Comparison:
    if data == contract:
        return "same"
    if data[0] <= contract[0] and data[1] >= contract[1]:
        return "wider"
    if data[0] >= contract[0] and data[1] <= contract[1]:
        return "narrower"
    return "incompatible"


def _arrow_label(t: pa.DataType) -> str:
    """An Arrow type as messages name it: ``decimal(10,2)`` rather than ``decimal128(10, 2)``."""
    t = _plain(t)
    return f"decimal({t.precision},{t.scale})" if pat.is_decimal(t) else str(t)


# --- findings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    dataset: Dataset
    policy: SchemaPolicy

    @property
    def where(self) -> str:
        return self.dataset.physical_name or self.dataset.name

    def result(self, column: str, kind: Kind, allowed: bool, message: str, *,
               observed: str | None = None, expected: str | None = None) -> CheckResult:
        return CheckResult(
            name=f"schema:{column}:{kind}", engine="dativo", category="schema", severity="error",
            outcome="passed" if allowed else "failed", dataset=self.dataset.name, column=column,
            metric="schema", observed=observed, threshold=expected,
            message=f"{self.where}.{column}: {message}",
        )


def schema_findings(dataset: Dataset, schema: pa.Schema, policy: SchemaPolicy) -> list[CheckResult]:
    """Every difference between ``dataset``'s columns and ``schema``, judged by ``policy``.

    Results come in the contract's column order, then the added columns in the data's order. A column
    the data brings twice is compared by its first occurrence.

    :param dataset: the contract's dataset the data is for.
    :param schema: the incoming data's Arrow schema.
    :param policy: the contract's schema policy.
    :return: one result per difference (passed when the policy allows it); empty when the data matches.
    """
    context = _Context(dataset, policy)
    fields: dict[str, pa.Field] = {}
    for f in schema:
        fields.setdefault(f.name, f)
    results: list[CheckResult] = []
    for column in dataset.columns:
        found = fields.get(column.name)
        if found is None:
            results.append(_dropped(context, column, fields))
        else:
            results.extend(_column_findings(context, column, found))
    contract_names = {c.name for c in dataset.columns}
    results.extend(_added(context, f) for f in fields.values() if f.name not in contract_names)
    return results


def _column_findings(context: _Context, column: Column, found: pa.Field) -> list[CheckResult]:
    results = []
    spec = expected_arrow_type(column)
    if spec is not None:
        change = _type_change(context, column.name, spec, found.type)
        if change is not None:
            results.append(change)
    if not column.required and not found.nullable:
        results.append(_nullability(context, column, spec, found))
    return results


def _type_change(
    context: _Context, column: str, spec: ArrowTypeSpec, data: pa.DataType
) -> CheckResult | None:
    comparison = _compare(spec, data)
    if comparison == "same":
        return None
    label = _arrow_label(data)
    what = f"the data brings {label} where the contract promises {spec.label}"
    widening = context.policy.allow_type_widening
    kind: Kind
    if comparison == "incompatible":
        kind, allowed, verdict = "incompatible", False, "never allowed: fix the source or change the contract"
    elif comparison == "wider":
        kind, allowed = "widened", widening
        verdict = (f"allowed by {WIDENING}" if widening
                   else f"not allowed: widen the contract's type, or set {WIDENING}")
    else:
        kind, allowed = "narrowed", widening
        verdict = (f"allowed by {WIDENING}; the table keeps the contract's type" if widening
                   else f"not allowed: the source changed; narrow the contract's type, or set {WIDENING}")
    return context.result(column, kind, allowed, f"{what} ({kind} type; {verdict})",
                          observed=label, expected=spec.label)


def _nullability(
    context: _Context, column: Column, spec: ArrowTypeSpec | None, found: pa.Field
) -> CheckResult:
    contract_type = spec.label if spec else "an unchecked type"
    label = _arrow_label(found.type)
    what = (f"the data brings {label} declared not nullable where the contract promises a nullable "
            f"(not required) {contract_type}")
    flags = [name for name, on in ((EXPANSION, context.policy.allow_nullable_expansion),
                                   (WIDENING, context.policy.allow_type_widening)) if on]
    verdict = (f"allowed by the relaxed schema policy ({', '.join(flags)})" if flags
               else "not allowed under a strict schema policy: mark the column required in the contract, "
                    f"or set {EXPANSION} or {WIDENING}")
    return context.result(column.name, "nullability", bool(flags), f"{what} (nullable → required; {verdict})",
                          observed=f"{label} not null", expected=f"{contract_type} nullable")


def _dropped(context: _Context, column: Column, fields: dict[str, pa.Field]) -> CheckResult:
    spec = expected_arrow_type(column)
    contract_type = spec.label if spec else "an unchecked type"
    required = "required" if column.required else "not required"
    hint = next((f"; the data has {name!r}, which differs only in case" for name in fields
                 if name.lower() == column.name.lower()), "")
    message = (f"the contract promises a {required} column of {contract_type} that the data does not "
               f"bring (dropped column; never allowed{hint})")
    return context.result(column.name, "dropped", False, message, expected=contract_type)


def _added(context: _Context, found: pa.Field) -> CheckResult:
    label = _arrow_label(found.type)
    nullable = "nullable" if found.nullable else "not nullable"
    what = f"the data brings a column of {label} ({nullable}) that the contract does not list"
    expansion = context.policy.allow_nullable_expansion
    if expansion and found.nullable:
        allowed, verdict = True, f"allowed by {EXPANSION}"
    elif expansion:
        allowed, verdict = False, (f"not allowed: {EXPANSION} accepts only nullable new columns; "
                                   "add the column to the contract")
    else:
        allowed, verdict = False, (f"not allowed: add the column to the contract, or set {EXPANSION} "
                                   "to accept new nullable columns")
    return context.result(found.name, "added", allowed, f"{what} (added column; {verdict})", observed=label)
