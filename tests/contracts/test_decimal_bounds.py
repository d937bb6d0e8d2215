"""Rule bounds are exact decimals read from the YAML text; a quoted bound is a lint error, not a run-time one."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dativo_provider.contracts import ContractError, lint, load_contract

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:decimal-bounds
version: 1.0.0
status: active
team: {{name: finance}}
schema:
  - name: ledger
    properties:
      - name: amount
        logicalType: number
        physicalType: decimal(38,9)
        quality:
          - name: amount_range
            type: sql
            query: SELECT MIN(amount) FROM ledger
            {rule}
"""


def write(tmp_path: Path, rule: str) -> Path:
    path = tmp_path / "ledger.yaml"
    path.write_text(CONTRACT.format(rule=rule))
    return path


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("mustBeBetween: [0.000000001, 99999999999999999999999999999.999999999]",
         {"mustBeBetween": [Decimal("0.000000001"), Decimal("99999999999999999999999999999.999999999")]}),
        ("mustBeGreaterThan: 12345678901234567890.123456789",
         {"mustBeGreaterThan": Decimal("12345678901234567890.123456789")}),
        ("mustBeLessOrEqualTo: -0.100000000", {"mustBeLessOrEqualTo": Decimal("-0.100000000")}),
        ("mustNotBeBetween: [1e-9, 2.5E+3]", {"mustNotBeBetween": [Decimal("1e-9"), Decimal("2.5E+3")]}),
        ("mustBe: 0", {"mustBe": Decimal("0")}),
    ],
)
def test_bounds_keep_every_digit_as_decimals(tmp_path, rule, expected):
    (resolved,) = load_contract(write(tmp_path, rule)).rules
    assert resolved.threshold == expected
    # Equal *and* written with the same digits (Decimal equality alone ignores trailing zeros).
    assert repr(resolved.threshold) == repr(expected)


def test_a_float_would_have_lost_the_bound(tmp_path):
    (resolved,) = load_contract(write(tmp_path, "mustBeGreaterThan: 99999999999999999999999999999.999999999")).rules
    bound = resolved.threshold["mustBeGreaterThan"]
    assert bound == Decimal("99999999999999999999999999999.999999999")
    assert bound != Decimal(float("99999999999999999999999999999.999999999"))
    assert Decimal("99999999999999999999999999999.999999998") < bound


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ('mustBeGreaterThan: "0.5"', "schema[0].properties[0].quality[0].mustBeGreaterThan",
         "expected a number, got string '0.5': write it without quotes, e.g. 0.5"),
        ("mustBeBetween: [0, '100.000000001']", "schema[0].properties[0].quality[0].mustBeBetween[1]",
         "expected a number, got string '100.000000001'"),
        ("mustBe: .inf", "schema[0].properties[0].quality[0].mustBe", "expected a number, got float inf"),
        ("mustBe: zero", "schema[0].properties[0].quality[0].mustBe", "expected a number, got string 'zero'"),
        ("mustBeLessThan: true", "schema[0].properties[0].quality[0].mustBeLessThan",
         "expected a number, got boolean True"),
        ("mustBeBetween: [2.0, 1.0]", "schema[0].properties[0].quality[0].mustBeBetween",
         "expected two numbers, smallest first"),
    ],
)
def test_a_bound_that_is_not_a_plain_number_fails_lint_naming_file_line_and_field(tmp_path, rule, path, message):
    contract = write(tmp_path, rule)
    (issue,) = lint([contract])
    assert (issue.file, issue.line, issue.path) == (str(contract), 17, path)
    assert message in issue.message
    assert ("without quotes" in issue.message) == ("'" in rule or '"' in rule)  # the hint only for quoted numbers
    with pytest.raises(ContractError, match="expected"):
        load_contract(contract)
