"""Semantic checks on a structurally valid ODCS document.

Structure (keys, types, enums) is the pydantic models' job; this module checks what a schema cannot:
references between parts of the contract, rule-specific fields, regexes, units and our extensions.
Each finding carries the path inside the document; the loader turns the path into a line number.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from dativo_provider.contracts import extensions, odcs

from dativo_provider.contracts.extensions import EXTENSIONS, MIN_ROWS_SLA, PREFIX
from dativo_provider.contracts.model import ENGINES
from dativo_provider.contracts.odcs import (
    CustomProperty,
    OdcsDocument,
    Quality,
    Relationship,
    SchemaObject,
    SlaProperty,
)

Path = tuple[str | int, ...]

OPERATORS = (
    "mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan",
    "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween",
)
# SLA properties from the ODCS examples that we keep as information only.
INFORMATIONAL_SLA = ("frequency", "generalAvailability", "endOfSupport", "endOfLife", "timeOfAvailability")
ENFORCED_SLA = ("latency", "retention", MIN_ROWS_SLA)
TIME_UNITS: dict[str, timedelta] = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), timedelta(seconds=1)),
    **dict.fromkeys(("min", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "week", "weeks"), timedelta(weeks=1)),
    **dict.fromkeys(("y", "yr", "year", "years"), timedelta(days=365)),
}
CALLABLE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: Library metrics ``dativoEngine: custom`` evaluates in Python (dativo_provider.quality.custom).
PYTHON_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")


@dataclass(frozen=True)
class Finding:
    path: Path
    message: str
    severity: str = "error"


@dataclass(frozen=True)
class ExternalRef:
    """A relationship target in another contract; :func:`lint` checks it across files."""

    path: Path
    dataset: str
    column: str


def duration(value: Any, unit: str | None) -> timedelta | None:
    """``value`` ``unit`` as a timedelta, or None when either is unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    step = TIME_UNITS.get(unit or "")
    return step * value if step else None


def custom_values(props: list[CustomProperty]) -> dict[str, Any]:
    """Our extensions' values by name (validated by :func:`check_document` before use)."""
    return {p.property: p.value for p in props if p.property.startswith(PREFIX)}


class _Checker:
    def __init__(self, doc: OdcsDocument) -> None:
        self.doc = doc
        self.findings: list[Finding] = []
        self.external: list[ExternalRef] = []
        self.columns = {o.name: {p.name: p for p in o.properties} for o in doc.schema_}

    def error(self, path: Path, message: str) -> None:
        self.findings.append(Finding(path, message))

    def run(self) -> None:
        doc = self.doc
        if not doc.schema_:
            self.error(("schema",), "the contract describes no dataset: add at least one schema object")
        if doc.team is None or not doc.team.name:
            self.error(("team",) if doc.team else (), "no owner: set team.name to the owning team")
        self.extensions(("customProperties",), doc.custom_properties, "contract")
        seen: dict[str, int] = {}
        for i, obj in enumerate(doc.schema_):
            if obj.name in seen:
                first = seen[obj.name]
                self.error(("schema", i, "name"), f"duplicate dataset {obj.name!r} (also schema[{first}])")
            seen.setdefault(obj.name, i)
            self.dataset(("schema", i), obj)
        self.rule_names()
        for i, sla in enumerate(doc.sla_properties):
            self.sla(("slaProperties", i), sla)

    # --- extensions -------------------------------------------------------------------------------

    def extensions(self, path: Path, props: list[CustomProperty], level: str) -> None:
        known = EXTENSIONS[level]
        seen: set[str] = set()
        for i, prop in enumerate(props):
            here = (*path, i)
            if prop.property in seen:
                self.error((*here, "property"), f"duplicate custom property {prop.property!r}")
            seen.add(prop.property)
            if not prop.property.startswith(PREFIX):
                continue  # another vendor's property: ODCS allows it, we keep it as data
            if prop.property not in known:
                names = ", ".join(sorted(known)) or "none"
                self.error((*here, "property"), f"unknown project extension {prop.property!r} at {level} "
                                                f"level (known here: {names})")
                continue
            try:
                known[prop.property].validate_python(prop.value)
            except ValidationError as exc:
                for sub, message in translate(exc.errors(), (*here, "value")):
                    self.error(sub, message)

    # --- datasets and columns ---------------------------------------------------------------------

    def dataset(self, path: Path, obj: SchemaObject) -> None:
        self.extensions((*path, "customProperties"), obj.custom_properties, "dataset")
        seen: dict[str, int] = {}
        for j, col in enumerate(obj.properties):
            here = (*path, "properties", j)
            if col.name in seen:
                first = seen[col.name]
                self.error((*here, "name"), f"duplicate column {col.name!r} (also properties[{first}])")
            seen.setdefault(col.name, j)
            if col.primary_key and not col.required:
                self.error((*here, "primaryKey"), f"primary key column {col.name!r} must be required: true")
            pattern = (col.logical_type_options or {}).get("pattern")
            if pattern is not None:
                self.regex((*here, "logicalTypeOptions", "pattern"), pattern)
            self.extensions((*here, "customProperties"), col.custom_properties, "column")
            for k, rel in enumerate(col.relationships):
                self.relationship((*here, "relationships", k), rel, obj.name, col.name)
            for k, rule in enumerate(col.quality):
                self.rule((*here, "quality", k), rule, obj.name, col.name)
        for k, rel in enumerate(obj.relationships):
            self.relationship((*path, "relationships", k), rel, obj.name, None)
        for k, rule in enumerate(obj.quality):
            self.rule((*path, "quality", k), rule, obj.name, None)
        features = custom_values(obj.custom_properties).get("dativoFeatures")
        if isinstance(features, dict):
            self.features(path, obj, features)

    def features(self, path: Path, obj: SchemaObject, value: dict[str, Any]) -> None:
        index = next(i for i, p in enumerate(obj.custom_properties) if p.property == "dativoFeatures")
        here = (*path, "customProperties", index, "value")
        refs: list[tuple[Path, Any]] = [(("timestampColumn",), value.get("timestampColumn"))]
        refs += [(("entities", i), c) for i, c in enumerate(value.get("entities") or [])]
        refs += [(("features", i), c) for i, c in enumerate(value.get("features") or [])]
        for key, col in refs:
            if isinstance(col, str) and col not in self.columns[obj.name]:
                self.error((*here, *key),
                           f"feature metadata names column {col!r}, which {obj.name!r} does not have")

    def regex(self, path: Path, pattern: Any) -> None:
        if not isinstance(pattern, str):
            self.error(path, f"expected a regular expression string, got {type(pattern).__name__}")
            return
        try:
            re.compile(pattern)
        except re.error as exc:
            self.error(path, f"regex {pattern!r} does not compile: {exc}")

    def portable_regex(self, path: Path, pattern: Any) -> None:
        """Warn about a pattern some store cannot match with Python's meaning (it is refused there)."""
        from dativo_provider.quality.regex import UnsupportedPattern, full_match_regex

        if not isinstance(pattern, str):
            return
        for dialect in ("duckdb", "postgres", "mysql"):
            try:
                full_match_regex(pattern, dialect)
            except UnsupportedPattern as exc:
                self.findings.append(Finding(path, f"{exc} (Soda and GX on databases refuse this rule)",
                                             "warning"))
                return

    # --- relationships ----------------------------------------------------------------------------

    def relationship(self, path: Path, rel: Relationship, dataset: str, column: str | None) -> None:
        self.extensions((*path, "customProperties"), rel.custom_properties, "relationship")
        if column is not None and rel.from_ is not None:
            self.error((*path, "from"), "'from' is implicit at property level: remove it")
            return
        if column is None and rel.from_ is None:
            self.error(path, "a dataset-level relationship needs 'from'")
            return
        sources = [column] if column is not None else rel.from_ or []
        if len(sources) != len(rel.to):
            self.error((*path, "to"), f"'from' has {len(sources)} column(s) but 'to' has {len(rel.to)}")
        for i, ref in enumerate(sources if column is None else []):
            target = self.reference(ref, dataset)
            if target and target[0] == dataset and target[1] not in self.columns[dataset]:
                self.error((*path, "from", i), f"relationship source {ref!r}: no such column in {dataset!r}")
            elif target and target[0] != dataset:
                self.error((*path, "from", i), f"relationship source {ref!r} must be a column of {dataset!r}")
        for i, ref in enumerate(rel.to):
            self.target((*path, "to", i), ref)

    def reference(self, ref: str, default: str | None) -> tuple[str, str] | None:
        """``object.property`` or (with one object in scope) ``property`` → (object, property)."""
        if "." in ref:
            obj, _, col = ref.rpartition(".")
            return obj, col
        return (default, ref) if default else None

    def target(self, path: Path, ref: str) -> None:
        if "." not in ref:
            self.error(path, f"relationship target {ref!r} must be 'dataset.column', e.g. 'customers.id'")
            return
        obj, col = self.reference(ref, None) or ("", "")
        if obj not in self.columns:
            self.external.append(ExternalRef(path, obj, col))
        elif col not in self.columns[obj]:
            self.error(path, f"relationship target {ref!r}: dataset {obj!r} has no column {col!r}")

    # --- quality rules ----------------------------------------------------------------------------

    def rule(self, path: Path, rule: Quality, dataset: str, column: str | None) -> None:
        self.extensions((*path, "customProperties"), rule.custom_properties, "rule")
        if rule.type != "text" and not rule.name:
            self.error(path, "quality rule has no name: add 'name'")
        engine = custom_values(rule.custom_properties).get("dativoEngine")
        if rule.type != "custom" and rule.engine is not None:
            self.error((*path, "engine"), "'engine' belongs to type: custom rules; choose the engine of a "
                                          f"{rule.type} rule with customProperties dativoEngine")
        if isinstance(engine, str) and engine not in ENGINES:
            index = next(i for i, p in enumerate(rule.custom_properties) if p.property == "dativoEngine")
            self.error((*path, "customProperties", index, "value"), _unknown_engine(engine))
        elif engine == "custom" and rule.type != "custom" and not (
                rule.type == "library" and rule.metric in PYTHON_METRICS):
            index = next(i for i, p in enumerate(rule.custom_properties) if p.property == "dativoEngine")
            what = f"a {rule.type} rule" if rule.type != "library" else f"metric {rule.metric!r}"
            self.error((*path, "customProperties", index, "value"),
                       f"engine custom evaluates {', '.join(PYTHON_METRICS)} in Python, not {what}; "
                       "use engine soda or great_expectations")
        getattr(self, f"rule_{rule.type}")(path, rule, dataset, column)

    def rule_text(self, path: Path, rule: Quality, dataset: str, column: str | None) -> None:
        if not rule.description:
            self.error(path, "a type: text rule needs a 'description'")

    def rule_library(self, path: Path, rule: Quality, dataset: str, column: str | None) -> None:
        if rule.rule is not None:
            self.error((*path, "rule"), "'rule' is deprecated in ODCS v3: use 'metric'")
            return
        if rule.metric is None:
            self.error(path, "a library rule needs 'metric' (one of nullValues, missingValues, "
                             "invalidValues, duplicateValues, rowCount)")
            return
        self.one_operator(path, rule)
        args = rule.arguments or {}
        if rule.metric == "invalidValues":
            if "pattern" in args:
                self.regex((*path, "arguments", "pattern"), args["pattern"])
                engine = custom_values(rule.custom_properties).get("dativoEngine", "soda")
                if engine != "custom":
                    self.portable_regex((*path, "arguments", "pattern"), args["pattern"])
            elif "validValues" not in args:
                self.error(path, "invalidValues needs arguments.validValues or arguments.pattern")
        if rule.metric in ("nullValues", "missingValues", "invalidValues") and column is None:
            self.error((*path, "metric"), f"{rule.metric} is a column metric: put the rule under a property")
        if rule.metric == "rowCount" and column is not None:
            self.error((*path, "metric"), "rowCount is a dataset metric: put it under the schema object")
        for i, name in enumerate(args.get("properties") or []):
            if name not in self.columns[dataset]:
                self.error((*path, "arguments", "properties", i),
                           f"rule {rule.name!r} is on column {name!r}, which {dataset!r} does not have")

    def rule_sql(self, path: Path, rule: Quality, dataset: str, column: str | None) -> None:
        if not rule.query:
            self.error(path, "a sql rule needs 'query'")
        self.one_operator(path, rule)

    def rule_custom(self, path: Path, rule: Quality, dataset: str, column: str | None) -> None:
        if rule.engine is None:
            self.error(path, "a custom rule needs 'engine' (soda, great_expectations or custom)")
        elif rule.engine not in ENGINES:
            self.error((*path, "engine"), _unknown_engine(rule.engine))
        if rule.implementation is None:
            self.error(path, "a custom rule needs 'implementation'")
        elif rule.engine == "custom" and not (isinstance(rule.implementation, str)
                                              and CALLABLE_REF.match(rule.implementation)):
            self.error((*path, "implementation"),
                       "engine custom needs implementation 'package.module:function', "
                       f"got {rule.implementation!r}")

    def one_operator(self, path: Path, rule: Quality) -> None:
        given = [op for op in OPERATORS if getattr(rule, snake(op)) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            operators = ", ".join(OPERATORS)
            self.error(path, f"rule {rule.name!r} needs exactly one of {operators} (found {found})")

    def rule_names(self) -> None:
        seen: dict[str, Path] = {}
        for path, rule in self.all_rules():
            if rule.name and rule.name in seen:
                first = format_path(seen[rule.name])
                self.error((*path, "name"), f"duplicate rule name {rule.name!r} (also {first})")
            seen.setdefault(rule.name or "", path)

    def all_rules(self) -> Iterator[tuple[Path, Quality]]:
        for i, obj in enumerate(self.doc.schema_):
            for j, col in enumerate(obj.properties):
                for k, rule in enumerate(col.quality):
                    yield ("schema", i, "properties", j, "quality", k), rule
            for k, rule in enumerate(obj.quality):
                yield ("schema", i, "quality", k), rule

    # --- SLA --------------------------------------------------------------------------------------

    def sla(self, path: Path, sla: SlaProperty) -> None:
        if sla.property in INFORMATIONAL_SLA:
            return
        if sla.property not in ENFORCED_SLA:
            known = ", ".join(ENFORCED_SLA + INFORMATIONAL_SLA)
            self.error((*path, "property"), f"unknown SLA property {sla.property!r} (known: {known})")
        elif sla.property == MIN_ROWS_SLA:
            if isinstance(sla.value, bool) or not isinstance(sla.value, int) or sla.value < 0:
                self.error((*path, "value"), f"{MIN_ROWS_SLA} needs a whole number >= 0, got {sla.value!r}")
        elif duration(sla.value, sla.unit) is None:
            self.error((*path, "value") if sla.unit in TIME_UNITS else (*path, "unit"),
                       f"{sla.property} needs a positive number and a time unit (d, h, min, s, w, y), "
                       f"got value {sla.value!r} unit {sla.unit!r}")
        elif sla.property == "latency":
            self.freshness_element(path, sla)

    def freshness_element(self, path: Path, sla: SlaProperty) -> None:
        element = sla.element or self.doc.sla_default_element
        only = self.doc.schema_[0].name if len(self.doc.schema_) == 1 else None
        ref = self.reference(element, only) if element else None
        if ref is None:
            self.error(path, "latency (freshness) needs 'element': the timestamp column, as dataset.column")
            return
        col = self.columns.get(ref[0], {}).get(ref[1])
        if col is None:
            self.error((*path, "element"), f"freshness column {element!r} does not exist in the contract")
        elif col.logical_type != "timestamp":
            self.error((*path, "element"), f"freshness needs a timestamp column; {element!r} is "
                                           f"logicalType {col.logical_type!r}")


_KINDS = {
    "string_type": "a string", "bool_type": "true or false", "int_type": "a whole number",
    "float_type": "a number", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def translate(errors: list[Any], prefix: Path = ()) -> list[tuple[Path, str]]:
    """pydantic error dicts → (path, message) in contract terms: "unknown key", "expected a list" …"""
    out = []
    for err in errors:
        path: Path = (*prefix, *err["loc"])
        kind, value = err["type"], err.get("input")
        if kind == "extra_forbidden":
            message = f"unknown key {path[-1]!r}{_did_you_mean(str(path[-1]))}"
        elif kind == "missing":
            message = f"required key {path[-1]!r} is missing"
        elif kind == "literal_error":
            message = f"{value!r} is not allowed; expected {err['ctx']['expected']}"
        elif kind in _KINDS:
            message = f"expected {_KINDS[kind]}, got {_describe(value)}"
            if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
                message += f" (quote it: '{value}')"
        elif kind == "value_error":
            message = str(err["ctx"]["error"])
        else:
            message = err["msg"]
        out.append((path, message))
    return out


def _did_you_mean(key: str) -> str:
    known = {
        info.alias or name
        for module in (odcs, extensions)
        for model in vars(module).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name, info in model.model_fields.items()
    }
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value: Any) -> str:
    """A YAML reader's name for ``value``: ``a mapping``, ``null``, ``boolean true``, ``number 1.0`` …"""
    if value is None or isinstance(value, (dict, list)):
        return {type(None): "null", dict: "a mapping", list: "a list"}[type(value)]
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    kind = {str: "string", int: "integer", float: "number"}.get(type(value), type(value).__name__)
    return f"{kind} {value!r}"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _unknown_engine(engine: str) -> str:
    hint = " (spelled great_expectations)" if engine.replace("-", "_") == "great_expectations" else ""
    return f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}{hint}"


def format_path(path: Path) -> str:
    """``("schema", 0, "properties", 3, "logicalType")`` → ``schema[0].properties[3].logicalType``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def check_document(doc: OdcsDocument) -> tuple[list[Finding], list[ExternalRef]]:
    """Every semantic finding in ``doc``, and the relationship targets that live in other contracts."""
    checker = _Checker(doc)
    checker.run()
    return checker.findings, checker.external
