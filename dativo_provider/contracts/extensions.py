"""The project's ODCS extensions: ``customProperties`` entries whose ``property`` starts with ``dativo``.

ODCS has no slot for a data-subject identifier, a schema-evolution policy, violation handling, ML
feature metadata, the engine that runs a library rule, a per-run row minimum or a relationship to a
table no contract of ours defines. The standard's answer for such needs is ``customProperties`` (a
list of ``property``/``value`` pairs available on most objects), so a contract with our extensions
stays a valid ODCS document. Within the ``dativo`` prefix
we are strict: an unknown name, or a known name at the wrong level, is a lint error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

PREFIX = "dativo"
MIN_ROWS_SLA = "dativoMinRowsPerRun"
HANDWRITTEN_SODA = "dativoSodaContract"
HANDWRITTEN_GX = "dativoGxSuite"
EXTERNAL = "dativoExternal"

HandlingValue = Literal["block", "quarantine", "warn"]


class _Ext(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, strict=True
    )


class SchemaPolicyValue(_Ext):
    """``dativoSchemaPolicy``: both false (the default) is strict."""

    allow_nullable_expansion: bool = False
    allow_type_widening: bool = False


class ViolationHandlingValue(_Ext):
    """``dativoViolationHandling``: per kind of violation, block | quarantine | warn."""

    schema_: HandlingValue = Field(default="block", alias="schema")
    quality: HandlingValue = "block"
    sla: HandlingValue = "warn"


class DriftColumnValue(_Ext):
    """One column's drift settings in ``dativoFeatures.drift`` (unset: Evidently's defaults)."""

    kind: Literal["numeric", "categorical"] | None = None
    stattest: Literal["ks", "chisquare", "z", "wasserstein", "psi", "jensenshannon"] | None = None
    threshold: float | None = Field(default=None, ge=0)


class FeaturesValue(_Ext):
    """``dativoFeatures``: ML feature metadata of a dataset (kept as data for the feature-store issue);
    ``drift`` maps a column to its drift settings (``dativo_provider.ml.drift``)."""

    entities: list[str] = Field(min_length=1)
    timestamp_column: str
    features: list[str] = Field(min_length=1)
    ttl_days: int | None = Field(default=None, gt=0)
    online: bool = False
    drift: dict[str, DriftColumnValue] = Field(default_factory=dict)


# level -> property name -> validator of its value
EXTENSIONS: dict[str, dict[str, TypeAdapter[Any]]] = {
    "contract": {
        "dativoSchemaPolicy": TypeAdapter(SchemaPolicyValue),
        "dativoViolationHandling": TypeAdapter(ViolationHandlingValue),
    },
    "dataset": {
        "dativoFeatures": TypeAdapter(FeaturesValue),
        # Hand-written engine files, relative to the contract file; run next to the compiled rules.
        HANDWRITTEN_SODA: TypeAdapter(str, config=ConfigDict(strict=True)),
        HANDWRITTEN_GX: TypeAdapter(str, config=ConfigDict(strict=True)),
    },
    "column": {"dativoDataSubject": TypeAdapter(str, config=ConfigDict(strict=True))},
    "rule": {"dativoEngine": TypeAdapter(str, config=ConfigDict(strict=True))},
    # The target dataset is defined outside the contracts linted together (another team's table, a
    # source system): lint does not require a contract for it.
    "relationship": {EXTERNAL: TypeAdapter(bool, config=ConfigDict(strict=True))},
}
