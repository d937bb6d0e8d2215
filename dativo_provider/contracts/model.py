"""The resolved data contract: plain frozen dataclasses the engine works with.

The loader builds these from a linted ODCS document (:mod:`dativo_provider.contracts.odcs`): project
extensions are unpacked, defaults applied, references resolved. Nothing here imports a quality engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

Status = Literal["active", "deprecated", "sunset"]
Engine = Literal["soda", "great_expectations", "custom"]
Severity = Literal["error", "warning"]
Handling = Literal["block", "quarantine", "warn"]
Category = Literal["quality", "sla"]

ENGINES: tuple[str, ...] = ("soda", "great_expectations", "custom")
HANDLINGS: tuple[str, ...] = ("block", "quarantine", "warn")


@dataclass(frozen=True)
class Column:
    """One column of a dataset.

    :param data_subject: the kind of data subject this column identifies (e.g. ``customer``), or None.
    """

    name: str
    logical_type: str | None
    physical_type: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    classification: str | None = None
    data_subject: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class QualityRule:
    """One quality rule, with the engine that will run it.

    :param column: the column a property-level rule is on; None for a dataset-level rule.
    :param kind: the ODCS rule type: ``text`` (documentation only), ``library``, ``sql`` or ``custom``.
    :param threshold: the ODCS comparison operator and value, e.g. ``{"mustBe": Decimal("0")}``. Values
        from a contract are exact :class:`~decimal.Decimal` numbers read from the YAML text (``mustBeBetween``
        and ``mustNotBeBetween``: a list of two), never floats, so a decimal(38,9) bound keeps every digit.
    :param implementation: for ``custom`` rules, the Soda check, GX expectation or ``module:callable``.
    :param category: ``sla`` for the checks the contract's SLA implies (freshness, rows per run); their
        failures are handled as SLA violations.
    """

    name: str
    engine: Engine
    severity: Severity
    dataset: str
    column: str | None
    kind: str
    metric: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)
    query: str | None = None
    implementation: Any = None
    dimension: str | None = None
    description: str | None = None
    category: Category = "quality"


@dataclass(frozen=True)
class FeatureView:
    """ML feature metadata of a dataset, kept as data for the feature-store issue."""

    entities: tuple[str, ...]
    timestamp_column: str
    features: tuple[str, ...]
    ttl_days: int | None = None
    online: bool = False
    #: column -> {"kind", "stattest", "threshold"} (set ones only), see dativo_provider.ml.drift
    drift: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """One ODCS schema object: a table.

    :param name: the logical name other contracts reference (``customers`` in ``customers.customer_id``).
    :param physical_name: the table's name in the catalog, e.g. ``examples.customers``.
    :param soda_contract: a hand-written Soda 4 contract file run in addition to the compiled rules.
    :param gx_suite: a hand-written GX expectation suite (JSON) run in addition to the compiled rules.
    """

    name: str
    physical_name: str | None
    columns: tuple[Column, ...]
    features: FeatureView | None = None
    description: str | None = None
    soda_contract: str | None = None
    gx_suite: str | None = None

    def column(self, name: str) -> Column | None:
        """The column called ``name``, or None."""
        return next((c for c in self.columns if c.name == name), None)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    @property
    def subject_identifiers(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.data_subject)


@dataclass(frozen=True)
class Relationship:
    """A foreign key: ``from_dataset.from_columns`` references ``to_dataset.to_columns``.

    :param external: the contract marks ``to_dataset`` as defined outside our contracts
        (``dativoExternal: true``), so lint does not ask for a contract that defines it.
    """

    from_dataset: str
    from_columns: tuple[str, ...]
    to_dataset: str
    to_columns: tuple[str, ...]
    external: bool = False


@dataclass(frozen=True)
class Freshness:
    """The newest value of ``dataset.column`` (a timestamp) must be younger than ``max_age``."""

    dataset: str
    column: str
    max_age: timedelta


@dataclass(frozen=True)
class Sla:
    freshness: tuple[Freshness, ...] = ()
    min_rows_per_run: int | None = None


@dataclass(frozen=True)
class SchemaPolicy:
    """What schema changes are allowed. Both flags off is *strict*: any change is a schema violation."""

    allow_nullable_expansion: bool = False
    allow_type_widening: bool = False

    @property
    def strict(self) -> bool:
        return not (self.allow_nullable_expansion or self.allow_type_widening)


@dataclass(frozen=True)
class ViolationHandling:
    """What a run does on each kind of violation: ``block``, ``quarantine`` or ``warn``."""

    schema: Handling = "block"
    quality: Handling = "block"
    sla: Handling = "warn"


@dataclass(frozen=True)
class Governance:
    owner: str
    domain: str | None = None
    tags: tuple[str, ...] = ()
    retention_days: int | None = None


@dataclass(frozen=True)
class Contract:
    """A linted data contract.

    :param document: the ODCS document as written (an :class:`~.odcs.OdcsDocument`), for compilers
        that need a field this resolved view leaves out.
    """

    path: str
    id: str
    version: str
    name: str | None
    status: Status
    datasets: tuple[Dataset, ...]
    rules: tuple[QualityRule, ...]
    relationships: tuple[Relationship, ...]
    sla: Sla
    schema_policy: SchemaPolicy
    handling: ViolationHandling
    governance: Governance
    document: Any = field(repr=False, compare=False, default=None)

    def dataset(self, name: str) -> Dataset | None:
        """The dataset called ``name``, or None."""
        return next((d for d in self.datasets if d.name == name), None)
