"""The ODCS v3 document as written: pydantic models that mirror the Open Data Contract Standard.

Field names follow the standard's camelCase keys (through an alias generator). Every model forbids
unknown keys and validates in strict mode, so ``required: "yes"`` or ``version: 1.0`` are errors, not
silently coerced values. Where our rules are narrower than the standard (``status``, ``severity``,
``classification``) the narrowing is documented in ``docs/contracts.md``.

These models describe the *document*; :mod:`dativo_provider.contracts.model` holds the resolved
contract the engine works with. The loader turns one into the other.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

LOGICAL_TYPES = ("string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean")
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted", "pii")
QUALITY_DIMENSIONS = (
    "accuracy", "completeness", "conformity", "consistency", "coverage", "timeliness", "uniqueness",
)
LIBRARY_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")


def _one_or_many(value: Any) -> Any:
    """ODCS lets a relationship end be one reference or a list (composite keys): keep a list."""
    return [value] if isinstance(value, str) else value


References = Annotated[list[str], BeforeValidator(_one_or_many)]


def _exact_number(value: Any) -> Any:
    """A rule bound must be a number written without quotes; the loader reads it as an exact Decimal.

    An int or float (a document built in code, not read from YAML) is converted through its text.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"expected a finite number, got {value}")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            hint = f": write it without quotes, e.g. {value.strip()}" if Decimal(value).is_finite() else ""
        except ArithmeticError:  # decimal.InvalidOperation: not a number at all
            hint = ""
        raise ValueError(f"expected a number, got string {value!r}{hint}")
    kind = "null" if value is None else "boolean" if isinstance(value, bool) else type(value).__name__
    raise ValueError(f"expected a number, got {kind} {value!r}")


#: A rule threshold value (``mustBe``, ``mustBeBetween`` items ...): an exact decimal, never a float.
Bound = Annotated[Decimal, BeforeValidator(_exact_number)]


class OdcsModel(BaseModel):
    """Base: camelCase keys, unknown keys rejected, no type coercion, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, strict=True
    )


class AuthoritativeDefinition(OdcsModel):
    id: str | None = None
    url: str
    type: str
    description: str | None = None


class CustomProperty(OdcsModel):
    """ODCS ``customProperties[]``: a key/value pair. Keys starting with ``dativo`` are ours."""

    id: str | None = None
    property: str
    value: Any
    description: str | None = None


class _Element(OdcsModel):
    """Fields the standard shares between many sections."""

    id: str | None = None
    description: str | None = None
    tags: list[str] = []
    custom_properties: list[CustomProperty] = []
    authoritative_definitions: list[AuthoritativeDefinition] = []


class Description(OdcsModel):
    usage: str | None = None
    purpose: str | None = None
    limitations: str | None = None
    authoritative_definitions: list[AuthoritativeDefinition] = []
    custom_properties: list[CustomProperty] = []


class TeamMember(_Element):
    username: str
    name: str | None = None
    role: str | None = None
    date_in: str | None = None
    date_out: str | None = None
    replaced_by_username: str | None = None


class Team(_Element):
    """The ODCS 3.1 team object (the 3.0 list form is obsolete in the standard and not accepted)."""

    name: str | None = None
    members: list[TeamMember] = []


class Role(OdcsModel):
    role: str
    description: str | None = None
    access: str | None = None
    first_level_approvers: str | None = None
    second_level_approvers: str | None = None
    custom_properties: list[CustomProperty] = []


class SupportChannel(OdcsModel):
    id: str | None = None
    channel: str
    url: str | None = None
    description: str | None = None
    tool: str | None = None
    scope: str | None = None
    invitation_url: str | None = None
    custom_properties: list[CustomProperty] = []


class Price(OdcsModel):
    price_amount: float | None = None
    price_currency: str | None = None
    price_unit: str | None = None


class Relationship(OdcsModel):
    """A foreign key: ``from`` (implicit at property level) references ``to`` (``object.property``)."""

    type: Literal["foreignKey"] = "foreignKey"
    from_: References | None = Field(default=None, alias="from")
    to: References
    custom_properties: list[CustomProperty] = []


class Quality(_Element):
    """One ODCS data-quality rule (``type`` text | library | sql | custom)."""

    name: str | None = None
    type: Literal["text", "library", "sql", "custom"] = "library"
    dimension: Literal[QUALITY_DIMENSIONS] | None = None  # type: ignore[valid-type]
    severity: Literal["error", "warning"] = "error"
    business_impact: str | None = None
    method: str | None = None
    schedule: str | None = None
    scheduler: str | None = None
    unit: str | None = None
    # library
    metric: Literal[LIBRARY_METRICS] | None = None  # type: ignore[valid-type]
    rule: str | None = None
    arguments: dict[str, Any] | None = None
    # comparison operators (library and sql): exact numbers, read from the YAML text by the loader
    must_be: Bound | None = None
    must_not_be: Bound | None = None
    must_be_greater_than: Bound | None = None
    must_be_greater_or_equal_to: Bound | None = None
    must_be_less_than: Bound | None = None
    must_be_less_or_equal_to: Bound | None = None
    must_be_between: list[Bound] | None = None
    must_not_be_between: list[Bound] | None = None
    # sql
    query: str | None = None
    # custom
    engine: str | None = None
    implementation: Any = None

    @field_validator("implementation")
    @classmethod
    def _string_or_mapping(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, (str, dict)):
            raise ValueError(f"expected a string or a mapping, got {type(value).__name__}")
        return value

    @field_validator("must_be_between", "must_not_be_between")
    @classmethod
    def _two_ascending(cls, value: list[Decimal] | None) -> list[Decimal] | None:
        if value is not None and (len(value) != 2 or value[0] >= value[1]):
            raise ValueError("expected two numbers, smallest first, e.g. [0, 100]")
        return value


class SchemaProperty(_Element):
    """A column (ODCS ``schema[].properties[]``). Nested ``object``/``array`` columns are not modelled yet."""

    name: str
    business_name: str | None = None
    logical_type: Literal[LOGICAL_TYPES] | None = None  # type: ignore[valid-type]
    logical_type_options: dict[str, Any] | None = None
    physical_type: str | None = None
    physical_name: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    primary_key_position: int = -1
    partitioned: bool = False
    partition_key_position: int = -1
    classification: Literal[CLASSIFICATIONS] | None = None  # type: ignore[valid-type]
    encrypted_name: str | None = None
    transform_source_objects: list[str] = []
    transform_logic: str | None = None
    transform_description: str | None = None
    examples: list[Any] = []
    critical_data_element: bool = False
    relationships: list[Relationship] = []
    quality: list[Quality] = []


class SchemaObject(_Element):
    """A dataset (ODCS ``schema[]``): a table with its columns, rules and relationships."""

    name: str
    business_name: str | None = None
    logical_type: Literal["object"] = "object"
    physical_name: str | None = None
    physical_type: str | None = None
    data_granularity_description: str | None = None
    properties: list[SchemaProperty] = []
    relationships: list[Relationship] = []
    quality: list[Quality] = []


class SlaProperty(OdcsModel):
    """ODCS ``slaProperties[]``; ``value`` is checked per ``property`` by the loader."""

    id: str | None = None
    property: str
    value: Any
    value_ext: Any = None
    unit: str | None = None
    element: str | None = None
    driver: str | None = None
    description: str | None = None
    scheduler: str | None = None
    schedule: str | None = None


class OdcsDocument(OdcsModel):
    """The whole contract file. ``servers`` is kept as data: where tables live is the connection's job."""

    version: str
    api_version: Literal["v3.1.0", "v3.0.2", "v3.0.1", "v3.0.0"]
    kind: Literal["DataContract"]
    id: str
    status: Literal["active", "deprecated", "sunset"]
    name: str | None = None
    tenant: str | None = None
    tags: list[str] = []
    servers: list[dict[str, Any]] = []
    data_product: str | None = None
    description: Description | None = None
    domain: str | None = None
    schema_: list[SchemaObject] = Field(default=[], alias="schema")
    support: list[SupportChannel] = []
    price: Price | None = None
    team: Team | None = None
    roles: list[Role] = []
    sla_default_element: str | None = None
    sla_properties: list[SlaProperty] = []
    authoritative_definitions: list[AuthoritativeDefinition] = []
    custom_properties: list[CustomProperty] = []
    contract_created_ts: str | None = None
