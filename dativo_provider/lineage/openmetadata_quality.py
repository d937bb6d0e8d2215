"""Contract rules as OpenMetadata test cases, and each contract run's results on them.

Each rule that has an equivalent among OpenMetadata's built-in test definitions becomes a test case
on its table or column (:func:`rule_test_case`):

============================================  ==============================================
contract rule                                 OpenMetadata test definition (parameters)
============================================  ==============================================
``nullValues``/``missingValues`` must be 0    ``columnValuesToBeNotNull``
``duplicateValues`` must be 0                 ``columnValuesToBeUnique``
``invalidValues`` + ``pattern``, must be 0    ``columnValuesToMatchRegex`` (``regex``)
``invalidValues`` + ``validValues``, 0        ``columnValuesToBeInSet`` (``allowedValues``)
``rowCount`` with bounds                      ``tableRowCountToBeBetween`` (``minValue``, ``maxValue``)
GX ``expect_column_values_to_be_between``     ``columnValuesToBeBetween`` (``minValue``, ``maxValue``)
GX not-null / unique / regex / row count      the same definitions as above
============================================  ==============================================

Rules with no built-in equivalent (SQL rules, Python callables, Soda checks written by hand, other
thresholds) are not registered: a test case there would show OpenMetadata's own checks with
different semantics. :class:`QualitySync` lists them as ``unmapped`` with the reason, and their results
are not posted. The test case only carries results: OpenMetadata's own profiler need not run it.

Results (:func:`post_results`) go to ``POST /api/v1/dataQuality/testCases/testCaseResults/{fqn}``
(the endpoint since OpenMetadata 1.6): ``Success`` for a passed check, ``Failed`` for a failed one,
``Aborted`` when the engine could not evaluate it. Only counts and the observed metric travel; never the
failing rows' keys or values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from dativo_provider.contracts.model import Contract, QualityRule
from dativo_provider.lineage.openmetadata_client import OpenMetadataClient, OpenMetadataConflict, quote_path
from dativo_provider.lineage.openmetadata_mapping import fqn, split_fqn

RESULTS = "/dataQuality/testCases/testCaseResults"
_STATUS = {"passed": "Success", "failed": "Failed", "error": "Aborted"}
_NULLS = ("nullValues", "missingValues")
_GX = {
    "expect_column_values_to_not_be_null": "columnValuesToBeNotNull",
    "expect_column_values_to_be_unique": "columnValuesToBeUnique",
    "expect_column_values_to_match_regex": "columnValuesToMatchRegex",
    "expect_column_values_to_be_between": "columnValuesToBeBetween",
    "expect_table_row_count_to_be_between": "tableRowCountToBeBetween",
}


@dataclass(frozen=True)
class TestCaseSpec:
    """One rule as a ``CreateTestCaseRequest`` (``request``), and the fully qualified name it gets."""

    __test__ = False  # not a pytest class
    fqn: str
    rule: str
    request: dict[str, Any]


@dataclass
class QualitySync:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    #: rule name -> why it has no test case.
    unmapped: dict[str, str] = field(default_factory=dict)
    posted: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_test_case(rule: QualityRule, table_fqn: str) -> TestCaseSpec | str:
    """The test case of ``rule`` on the table ``table_fqn``, or why there is none."""
    mapped = _definition(rule)
    if isinstance(mapped, str):
        return mapped
    definition, parameters = mapped
    link = f"<#E::table::{table_fqn}" + (f"::columns::{rule.column}>" if rule.column else ">")
    request: dict[str, Any] = {
        "name": rule.name,
        "testDefinition": definition,
        "entityLink": link,
        "parameterValues": [{"name": k, "value": v} for k, v in parameters.items()],
    }
    if rule.description:
        request["description"] = rule.description
    target = fqn(*split_fqn(table_fqn), rule.column) if rule.column else table_fqn
    return TestCaseSpec(f"{target}.{fqn(rule.name)}", rule.name, request)


def _definition(rule: QualityRule) -> tuple[str, dict[str, str]] | str:
    if rule.engine == "great_expectations" and isinstance(rule.implementation, Mapping):
        return _gx_definition(rule)
    if rule.kind != "library":
        return f"a {rule.kind} rule has no OpenMetadata built-in test definition"
    zero = _only_zero(rule.threshold)
    if rule.metric in _NULLS and zero and rule.column:
        return "columnValuesToBeNotNull", {}
    if rule.metric == "duplicateValues" and zero and rule.column:
        return "columnValuesToBeUnique", {}
    if rule.metric == "invalidValues" and zero and rule.column:
        if rule.arguments.get("pattern"):
            return "columnValuesToMatchRegex", {"regex": str(rule.arguments["pattern"])}
        if rule.arguments.get("validValues"):
            return "columnValuesToBeInSet", {
                "allowedValues": json.dumps([str(v) for v in rule.arguments["validValues"]])
            }
    if rule.metric == "rowCount" and not rule.column:
        bounds = _bounds(rule.threshold)
        if bounds:
            return "tableRowCountToBeBetween", bounds
    return f"metric {rule.metric} with threshold {_text(rule.threshold)} has no built-in equivalent"


def _gx_definition(rule: QualityRule) -> tuple[str, dict[str, str]] | str:
    kind = str(rule.implementation.get("type"))
    definition = _GX.get(kind)
    if definition is None:
        return f"GX expectation {kind} has no built-in equivalent"
    kwargs = rule.implementation.get("kwargs") or {}
    if definition == "columnValuesToMatchRegex":
        return definition, {"regex": str(kwargs.get("regex"))}
    if definition in ("columnValuesToBeBetween", "tableRowCountToBeBetween"):
        return definition, {
            name: str(kwargs[key])
            for name, key in (("minValue", "min_value"), ("maxValue", "max_value"))
            if kwargs.get(key) is not None
        }
    return definition, {}


def _only_zero(threshold: Mapping[str, Any]) -> bool:
    return list(threshold) == ["mustBe"] and Decimal(str(threshold["mustBe"])) == 0


def _bounds(threshold: Mapping[str, Any]) -> dict[str, str]:
    def whole(value: Any) -> int:
        return int(Decimal(str(value)))

    bounds: dict[str, int] = {}
    for op, value in threshold.items():
        if op == "mustBe":
            bounds = {"minValue": whole(value), "maxValue": whole(value)}
        elif op == "mustBeBetween":
            bounds = {"minValue": whole(value[0]), "maxValue": whole(value[1])}
        elif op in ("mustBeGreaterThan", "mustBeGreaterOrEqualTo"):
            bounds["minValue"] = whole(value) + (op == "mustBeGreaterThan")
        elif op in ("mustBeLessThan", "mustBeLessOrEqualTo"):
            bounds["maxValue"] = whole(value) - (op == "mustBeLessThan")
        else:
            return {}
    return {k: str(v) for k, v in bounds.items()}


def _text(threshold: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in threshold.items()) or "none"


def sync_test_cases(
    client: OpenMetadataClient,
    contract: Contract,
    dataset: str,
    table_fqn: str,
    result: QualitySync | None = None,
) -> QualitySync:
    """Create the test cases of ``dataset``'s rules on ``table_fqn``, update changed parameters."""
    result = result or QualitySync()
    for rule in (r for r in contract.rules if r.dataset == dataset):
        spec = rule_test_case(rule, table_fqn)
        if isinstance(spec, str):
            result.unmapped[rule.name] = spec
            continue
        _ensure_test_case(client, spec, result)
    return result


def _ensure_test_case(client: OpenMetadataClient, spec: TestCaseSpec, result: QualitySync) -> None:
    path = f"/dataQuality/testCases/name/{quote_path(spec.fqn)}"
    current = client.find(path, {"fields": "testDefinition"})
    if current is None:
        try:
            client.post("/dataQuality/testCases", spec.request)
            result.created.append(spec.fqn)
            return
        except OpenMetadataConflict:
            current = client.get(path, {"fields": "testDefinition"})
    want, have = spec.request["parameterValues"], current.get("parameterValues") or []
    if sorted((p["name"], p["value"]) for p in want) == sorted((p.get("name"), p.get("value")) for p in have):
        result.unchanged += 1
        return
    client.patch(
        f"/dataQuality/testCases/{current['id']}",
        [{"op": "replace" if have else "add", "path": "/parameterValues", "value": want}],
    )
    result.updated.append(spec.fqn)


def post_results(
    client: OpenMetadataClient,
    contract: Contract,
    report: Mapping[str, Any],
    table_fqn: str,
    *,
    timestamp_ms: int,
    result: QualitySync | None = None,
) -> QualitySync:
    """Post one contract run (``QualityReport.to_dict()``) as test case results at ``timestamp_ms``.

    The test cases are made sure of first (:func:`sync_test_cases`), so results never miss their case.
    """
    dataset = str(report["dataset"])
    result = sync_test_cases(client, contract, dataset, table_fqn, result)
    specs = {rule.name: rule_test_case(rule, table_fqn) for rule in contract.rules if rule.dataset == dataset}
    for check in report.get("checks", []):
        spec = specs.get(check["name"])
        if not isinstance(spec, TestCaseSpec):
            continue
        client.post(f"{RESULTS}/{quote_path(spec.fqn)}", _result_body(check, report, timestamp_ms))
        result.posted[spec.fqn] = _STATUS[check["outcome"]]
    return result


def _result_body(check: Mapping[str, Any], report: Mapping[str, Any], timestamp_ms: int) -> dict[str, Any]:
    observed = check.get("observed")
    body: dict[str, Any] = {
        "timestamp": timestamp_ms,
        "testCaseStatus": _STATUS[check["outcome"]],
        "result": _summary(check, report),
        "testResultValue": [
            {"name": check.get("metric") or "observed", "value": None if observed is None else str(observed)}
        ],
    }
    failing, rows = check.get("failing_rows"), report.get("rows_checked")
    if failing is not None and rows:
        body.update(
            failedRows=int(failing),
            passedRows=int(rows) - int(failing),
            failedRowsPercentage=round(100.0 * int(failing) / int(rows), 4),
            passedRowsPercentage=round(100.0 * (int(rows) - int(failing)) / int(rows), 4),
        )
    return body


def _summary(check: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    # Built from counts only: the engine's message may quote failing values, which can be personal data.
    parts = [f"{check['outcome']} ({check.get('engine')}, severity {check.get('severity')})"]
    if check.get("observed") is not None:
        parts.append(f"observed {check['observed']}")
    if check.get("threshold"):
        parts.append(f"expected {check['threshold']}")
    if check.get("failing_rows") is not None:
        parts.append(f"{check['failing_rows']} of {report.get('rows_checked')} rows failing")
    snapshot = report.get("snapshot_id")
    suffix = f"; contract {report.get('contract')} v{report.get('contract_version')}"
    return ", ".join(parts) + suffix + (f", snapshot {snapshot}" if snapshot is not None else "")
