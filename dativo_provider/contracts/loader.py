"""Load and lint ODCS contract files.

Three passes, each reporting every problem it finds rather than the first: YAML syntax (read by
:mod:`dativo_provider.safe_yaml`, which refuses hostile files first; with duplicate keys, which plain
YAML loading would silently resolve to the last one), structure (the pydantic models
in :mod:`~.odcs`: unknown keys, types, enums), then meaning (:mod:`~.checks`). Every issue names the
file, the path inside the document and the line, found by composing the YAML node tree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path as FsPath
from typing import Any, cast

import yaml
from pydantic import ValidationError

from dativo_provider import safe_yaml
from dativo_provider.contracts import checks
from dativo_provider.contracts.checks import ExternalRef, Finding, Path, custom_values, format_path
from dativo_provider.contracts.extensions import (
    EXTERNAL,
    HANDWRITTEN_GX,
    HANDWRITTEN_SODA,
    MIN_ROWS_SLA,
    FeaturesValue,
    SchemaPolicyValue,
    ViolationHandlingValue,
)
from dativo_provider.contracts.model import (
    Column,
    Contract,
    Dataset,
    Engine,
    FeatureView,
    Freshness,
    Governance,
    QualityRule,
    Relationship,
    SchemaPolicy,
    Sla,
    ViolationHandling,
)
from dativo_provider.contracts.odcs import OdcsDocument, Quality, SchemaObject
from dativo_provider.contracts.odcs import Relationship as OdcsRelationship
from dativo_provider.exceptions import ConfigError

CONTRACT_SUFFIXES = (".yaml", ".yml")
_RANGE_OPERATORS = ("mustBeBetween", "mustNotBeBetween")
_LIMITS = safe_yaml.DEFAULT_LIMITS
_LIMITS_TEXT = (f"{_LIMITS.max_chars:,} characters, {_LIMITS.max_nodes:,} nodes, {_LIMITS.max_depth} levels "
                f"of nesting and {_LIMITS.max_aliases} aliases (*name) adding at most "
                f"{_LIMITS.max_alias_nodes:,} nodes")


@dataclass(frozen=True, order=True)
class LintIssue:
    """One problem in one contract file. ``str()`` gives ``file:line: path: message``."""

    file: str
    line: int
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {self.path}: {prefix}{self.message}"


class ContractError(ConfigError):
    """A contract file does not lint clean. ``issues`` holds every problem found."""

    def __init__(self, issues: list[LintIssue]) -> None:
        self.issues = issues
        listing = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"invalid data contract ({len(issues)} problem(s)); fix these and re-run "
                         f"`dativo contract lint`:\n{listing}")


# A plain (unquoted) YAML number as ODCS writes a bound; read from its text, so no digit is lost.
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass
class _FileResult:
    file: str
    lines: dict[Path, int] = field(default_factory=dict)
    issues: list[LintIssue] = field(default_factory=list)
    contract: Contract | None = None
    external: list[ExternalRef] = field(default_factory=list)
    external_marked: set[Path] = field(default_factory=set)  # relationships marked dativoExternal

    def line(self, path: Path) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def add(self, path: Path, message: str, severity: str = "error") -> None:
        self.issues.append(LintIssue(self.file, self.line(path), format_path(path), message, severity))

    @property
    def ok(self) -> bool:
        return not any(issue.severity == "error" for issue in self.issues)


def load_contract(path: str | FsPath) -> Contract:
    """Load one contract file.

    Relationship targets in other contracts are not checked here (see :func:`lint`).

    :raises ContractError: the file does not lint clean; ``.issues`` lists every problem.
    """
    result = _lint_file(FsPath(path))
    if not result.ok or result.contract is None:
        raise ContractError(sorted(result.issues))
    return result.contract


def lint(paths: Iterable[str | FsPath], external: Iterable[str] = ()) -> list[LintIssue]:
    """Every problem in the given contract files and directories (``*.yaml``/``*.yml``, recursively).

    Relationship targets are checked across all the files linted together: a target in a dataset no
    linted contract defines is an error, unless the relationship says the dataset is external
    (custom property ``dativoExternal: true``) or the dataset is named in ``external``.

    :param external: datasets defined outside the linted contracts (``dativo contract lint --external``).
    """
    results: list[_FileResult] = []
    issues: list[LintIssue] = []
    for item in paths:
        files, missing = _expand(FsPath(item))
        issues.extend(missing)
        results.extend(_lint_file(file) for file in files)
    _check_external(results, frozenset(external))
    for result in results:
        issues.extend(sorted(result.issues))
    return issues


def contract_files(path: FsPath) -> list[FsPath]:
    """The contract files under ``path`` (itself, if it is a file), sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in CONTRACT_SUFFIXES and p.is_file())
    return [path]


def _expand(path: FsPath) -> tuple[list[FsPath], list[LintIssue]]:
    if not path.exists():
        return [], [LintIssue(str(path), 0, "(file)", "no such file or directory")]
    files = contract_files(path)
    if not files:
        return [], [LintIssue(str(path), 0, "(file)", "no *.yaml or *.yml contract files found",
                              "warning")]
    return files, []


def _lint_file(file: FsPath) -> _FileResult:
    result = _FileResult(str(file))
    try:
        _lint_into(file, result)
    except Exception as exc:  # a lint bug must still come out as a readable line, never a traceback
        result.add((), f"internal error while linting ({type(exc).__name__}: {exc}); please report it")
    return result


def _lint_into(file: FsPath, result: _FileResult) -> None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.add((), f"cannot read the file: {exc}")
        return
    data = _parse(text, result)
    if data is None:
        return
    try:
        doc = OdcsDocument.model_validate(data)
    except ValidationError as exc:
        for path, message in checks.translate(exc.errors()):
            result.add(path, message)
        return
    findings, result.external = checks.check_document(doc)
    result.external_marked = set(_marked_external(doc))
    for finding in findings:
        result.add(finding.path, finding.message, finding.severity)
    _check_handwritten(file, doc, result)
    if result.ok:
        result.contract = _build(str(file), doc)


def _marked_external(doc: OdcsDocument) -> Iterator[Path]:
    """The paths of the relationships whose target dataset the contract declares external."""
    for i, obj in enumerate(doc.schema_):
        for j, prop in enumerate(obj.properties):
            for k, rel in enumerate(prop.relationships):
                if custom_values(rel.custom_properties).get(EXTERNAL) is True:
                    yield ("schema", i, "properties", j, "relationships", k)
        for k, rel in enumerate(obj.relationships):
            if custom_values(rel.custom_properties).get(EXTERNAL) is True:
                yield ("schema", i, "relationships", k)


def _check_handwritten(file: FsPath, doc: OdcsDocument, result: _FileResult) -> None:
    """Hand-written Soda contracts and GX suites must exist next to the contract."""
    for i, obj in enumerate(doc.schema_):
        for j, prop in enumerate(obj.custom_properties):
            if prop.property in (HANDWRITTEN_SODA, HANDWRITTEN_GX) and isinstance(prop.value, str):
                target = file.parent / prop.value
                if not target.is_file():
                    result.add(("schema", i, "customProperties", j, "value"),
                               f"{prop.property} file {prop.value!r} does not exist (looked for {target})")


# --- YAML --------------------------------------------------------------------------------------------


def _parse(text: str, result: _FileResult) -> dict[str, Any] | None:
    """The document as Python data, with ``result.lines`` filled; None (and an issue) if unusable.

    The YAML is read by :mod:`dativo_provider.safe_yaml`, which refuses alias bombs, deep nesting and
    huge files before anything walks the tree. Rule bounds are exact :class:`~decimal.Decimal`.
    """
    try:
        node, loader = safe_yaml.compose(text, safe_yaml.ContractYamlLoader)
    except yaml.YAMLError as exc:
        _yaml_issue(exc, result)
        return None
    try:
        if node is None:
            result.add((), "the file is empty: expected an ODCS data contract")
            return None
        bounds: dict[Path, Decimal] = {}
        _map_lines(node, (), result, bounds)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        _yaml_issue(exc, result)
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        result.add((), f"expected a mapping of ODCS keys at the top, got {type(data).__name__}")
        return None
    for path, bound in bounds.items():
        _replace(data, path, bound)
    return data


def _yaml_issue(exc: yaml.YAMLError, result: _FileResult) -> None:
    if isinstance(exc, safe_yaml.YamlLimitError):
        mark = exc.problem_mark
        result.issues.append(LintIssue(result.file, mark.line + 1 if mark else 1, "(document)",
                                       f"refused: {exc.problem}; a contract must stay within "
                                       f"{_LIMITS_TEXT}"))
    elif isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        result.issues.append(LintIssue(result.file, mark.line + 1 if mark else 1, "(document)",
                                       f"invalid YAML: {exc.problem or exc.context}{where}"))
    else:
        result.add((), f"invalid YAML: {exc}")


def _map_lines(node: yaml.Node, path: Path, result: _FileResult, bounds: dict[Path, Decimal]) -> None:
    """Record the line of every key and list item under ``node``; report duplicate keys; collect bounds.

    The tree may share nodes through aliases; safe_yaml has bounded how much that expands.
    """
    result.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _map_lines(item, (*path, index), result, bounds)
    elif isinstance(node, yaml.MappingNode):
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            here = (*path, key)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                result.issues.append(LintIssue(result.file, line, format_path(here),
                                               f"duplicate key {key!r} (first at line {first_seen[key]})"))
                continue
            first_seen[key] = line
            result.lines[here] = line
            _map_lines(value_node, here, result, bounds)
    elif isinstance(node, yaml.ScalarNode) and not node.style and _is_bound(path) and _NUMBER.fullmatch(node.value):
        bounds[path] = Decimal(node.value)


def _is_bound(path: Path) -> bool:
    """Is ``path`` a rule's threshold value: ``...quality[k].mustBe`` or ``...quality[k].mustBeBetween[0]``?"""
    if len(path) >= 3 and path[-1] in checks.OPERATORS:
        return isinstance(path[-2], int) and path[-3] == "quality"
    if len(path) >= 4 and isinstance(path[-1], int) and path[-2] in _RANGE_OPERATORS:
        return isinstance(path[-3], int) and path[-4] == "quality"
    return False


def _replace(data: Any, path: Path, value: Decimal) -> None:
    """Put ``value`` at ``path`` in the constructed document (where the structure is as the path says)."""
    *parents, last = path
    for part in parents:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return
    if isinstance(data, dict):
        data[last] = value
    elif isinstance(data, list) and isinstance(last, int) and last < len(data):
        data[last] = value


def _check_external(results: list[_FileResult], external: frozenset[str]) -> None:
    """Check relationship targets against the datasets of every contract linted together."""
    columns: dict[str, set[str]] = {}
    for result in results:
        for dataset in result.contract.datasets if result.contract else ():
            columns.setdefault(dataset.name, set()).update(c.name for c in dataset.columns)
    for result in results:
        for ref in result.external:
            target = f"{ref.dataset}.{ref.column}"
            if ref.dataset not in columns:
                if ref.dataset in external or ref.path[:-2] in result.external_marked:
                    continue
                result.add(ref.path, f"relationship target {target!r}: no linted contract defines dataset "
                                     f"{ref.dataset!r}; lint it together with the contract that does, or "
                                     f"mark the relationship external (customProperties: property "
                                     f"{EXTERNAL}, value true) or pass --external {ref.dataset}")
            elif ref.column not in columns[ref.dataset]:
                result.add(ref.path, f"relationship target {target!r}: dataset {ref.dataset!r} has no "
                                     f"column {ref.column!r}")


# --- the resolved contract ---------------------------------------------------------------------------


def _build(file: str, doc: OdcsDocument) -> Contract:
    ext = custom_values(doc.custom_properties)
    policy = SchemaPolicyValue.model_validate(ext.get("dativoSchemaPolicy", {}))
    handling = ViolationHandlingValue.model_validate(ext.get("dativoViolationHandling", {}))
    return Contract(
        path=file,
        id=doc.id,
        version=doc.version,
        name=doc.name,
        status=doc.status,
        datasets=tuple(_dataset(obj, FsPath(file).parent) for obj in doc.schema_),
        rules=tuple(_rules(doc)),
        relationships=tuple(_relationships(doc)),
        sla=_sla(doc),
        schema_policy=SchemaPolicy(policy.allow_nullable_expansion, policy.allow_type_widening),
        handling=ViolationHandling(handling.schema_, handling.quality, handling.sla),
        governance=Governance(
            owner=doc.team.name if doc.team and doc.team.name else "",
            domain=doc.domain,
            tags=tuple(doc.tags),
            retention_days=_retention_days(doc),
        ),
        document=doc,
    )


def _dataset(obj: SchemaObject, base: FsPath) -> Dataset:
    columns = tuple(
        Column(
            name=p.name,
            logical_type=p.logical_type,
            physical_type=p.physical_type,
            required=p.required,
            unique=p.unique,
            primary_key=p.primary_key,
            classification=p.classification,
            data_subject=custom_values(p.custom_properties).get("dativoDataSubject"),
            description=p.description,
        )
        for p in obj.properties
    )
    features = custom_values(obj.custom_properties).get("dativoFeatures")
    view = None
    if features is not None:
        value = FeaturesValue.model_validate(features)
        view = FeatureView(tuple(value.entities), value.timestamp_column, tuple(value.features),
                           value.ttl_days, value.online,
                           {c: v.model_dump(exclude_none=True) for c, v in value.drift.items()})
    ext = custom_values(obj.custom_properties)
    soda, gx = ext.get(HANDWRITTEN_SODA), ext.get(HANDWRITTEN_GX)
    return Dataset(obj.name, obj.physical_name, columns, view, obj.description,
                   soda_contract=str(base / soda) if soda else None,
                   gx_suite=str(base / gx) if gx else None)


def _rules(doc: OdcsDocument) -> Iterator[QualityRule]:
    for obj in doc.schema_:
        for prop in obj.properties:
            yield from (_rule(rule, obj.name, prop.name) for rule in prop.quality if rule.type != "text")
        yield from (_rule(rule, obj.name, None) for rule in obj.quality if rule.type != "text")


def _rule(rule: Quality, dataset: str, column: str | None) -> QualityRule:
    # check_document has already refused a missing or unknown engine.
    engine = cast(Engine, rule.engine if rule.type == "custom" else custom_values(rule.custom_properties).get(
        "dativoEngine", "soda"))
    threshold = {op: getattr(rule, checks.snake(op)) for op in checks.OPERATORS}
    return QualityRule(
        name=rule.name or "",
        engine=engine,
        severity=rule.severity,
        dataset=dataset,
        column=column,
        kind=rule.type,
        metric=rule.metric,
        arguments=dict(rule.arguments or {}),
        threshold={op: value for op, value in threshold.items() if value is not None},
        query=rule.query,
        implementation=rule.implementation,
        dimension=rule.dimension,
        description=rule.description,
    )


def _relationships(doc: OdcsDocument) -> Iterator[Relationship]:
    for obj in doc.schema_:
        for prop in obj.properties:
            for rel in prop.relationships:
                yield _relationship(obj.name, [prop.name], rel)
        for rel in obj.relationships:
            yield _relationship(obj.name, rel.from_ or [], rel)


def _relationship(dataset: str, sources: list[str], rel: OdcsRelationship) -> Relationship:
    to_dataset = rel.to[0].rpartition(".")[0]
    external = custom_values(rel.custom_properties).get(EXTERNAL) is True
    return Relationship(dataset, tuple(s.rpartition(".")[2] for s in sources), to_dataset,
                        tuple(t.rpartition(".")[2] for t in rel.to), external)


def _sla(doc: OdcsDocument) -> Sla:
    only = doc.schema_[0].name if len(doc.schema_) == 1 else ""
    freshness, min_rows = [], None
    for sla in doc.sla_properties:
        if sla.property == "latency":
            element = sla.element or doc.sla_default_element or ""
            dataset, _, column = element.rpartition(".")
            age = checks.duration(sla.value, sla.unit)
            freshness.append(Freshness(dataset or only, column, age))  # type: ignore[arg-type]
        elif sla.property == MIN_ROWS_SLA:
            min_rows = sla.value
    return Sla(tuple(freshness), min_rows)


def _retention_days(doc: OdcsDocument) -> int | None:
    for sla in doc.sla_properties:
        if sla.property == "retention":
            age = checks.duration(sla.value, sla.unit)
            return math.ceil(age.total_seconds() / 86400) if age else None
    return None


__all__ = ["ContractError", "LintIssue", "contract_files", "lint", "load_contract"]
