"""Contract rules become OpenMetadata test cases; each contract run posts its results, status per rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dativo_provider.contracts.model import QualityRule
from dativo_provider.lineage.openmetadata_mapping import GovernanceOptions
from dativo_provider.lineage.openmetadata_quality import (
    RESULTS,
    post_results,
    rule_test_case,
    sync_test_cases,
)
from dativo_provider.lineage.openmetadata_sync import ServiceTarget, iceberg_specs, sync_tables
from dativo_provider.quality.runner import IcebergTarget, run_contract
from tests.doubles.openmetadata import OpenMetadataDouble
from tests.lineage.people import people_contract, people_table

TARGET = ServiceTarget(service="lake", database="prod")
PEOPLE = "lake.prod.crm.people"
DAY_1, DAY_2 = 1_704_067_200_000, 1_704_153_600_000  # 2024-01-01 and -02, 00:00 UTC, in ms


def _synced(om, client, tmp_path):
    catalog, identifier = people_table(tmp_path)
    contract = people_contract(tmp_path)
    sync_tables(
        client, iceberg_specs(catalog.load(), [identifier], TARGET, [contract], GovernanceOptions()), TARGET
    )
    return catalog, contract


def test_a_contract_run_posts_one_result_per_mapped_rule_with_its_status(
    om: OpenMetadataDouble, client, tmp_path
) -> None:
    catalog, contract = _synced(om, client, tmp_path)
    report = run_contract(contract, IcebergTarget(catalog, "crm.people")).to_dict()
    outcomes = {c["name"]: c["outcome"] for c in report["checks"]}
    assert outcomes["email_well_formed"] == "failed" and outcomes["country_known"] == "failed"

    synced = post_results(client, contract, report, PEOPLE, timestamp_ms=DAY_1)

    assert synced.unmapped == {
        "few_missing_countries": "metric nullValues with threshold mustBeLessThan 3 has "
        "no built-in equivalent"
    }
    statuses = {}
    for name in (
        "person_id.person_id_unique",
        "email.email_well_formed",
        "email.email_present",
        "country.country_known",
        "people_not_empty",
    ):
        answer = client.get(f"{RESULTS}/{PEOPLE}.{name}", {"startTs": DAY_1, "endTs": DAY_2})
        (result,) = answer["data"]
        statuses[name] = result["testCaseStatus"]
    assert statuses == {
        "person_id.person_id_unique": "Success",
        "email.email_well_formed": "Failed",
        "email.email_present": "Success",
        "country.country_known": "Failed",
        "people_not_empty": "Success",
    }
    email = client.get(f"{RESULTS}/{PEOPLE}.email.email_well_formed")["data"][0]
    assert (email["failedRows"], email["passedRows"]) == (1, 2)
    case = client.get(f"/dataQuality/testCases/name/{PEOPLE}.country.country_known")
    assert case["testDefinition"]["name"] == "columnValuesToBeInSet"
    assert case["parameterValues"] == [{"name": "allowedValues", "value": '["DE", "FR", "NL"]'}]
    assert case["entityLink"] == f"<#E::table::{PEOPLE}::columns::country>"


def test_every_run_adds_to_the_history_and_test_cases_are_not_rewritten(
    om: OpenMetadataDouble, client, tmp_path
) -> None:
    catalog, contract = _synced(om, client, tmp_path)
    report = run_contract(contract, IcebergTarget(catalog, "crm.people")).to_dict()
    first = post_results(client, contract, report, PEOPLE, timestamp_ms=DAY_1)
    writes = len(om.writes_to("POST", "/api/v1/dataQuality/testCases"))
    second = post_results(client, contract, report, PEOPLE, timestamp_ms=DAY_2)
    assert (len(first.created), len(second.created), second.unchanged) == (5, 0, 5)
    assert len(om.writes_to("POST", "/api/v1/dataQuality/testCases")) == writes + 5  # five results, no case
    history = client.get(f"{RESULTS}/{PEOPLE}.people_not_empty", {"startTs": 0, "endTs": DAY_2})["data"]
    assert [r["timestamp"] for r in history] == [DAY_2, DAY_1]


def test_a_changed_threshold_patches_the_test_case_once(om: OpenMetadataDouble, client, tmp_path) -> None:
    _, contract = _synced(om, client, tmp_path)
    sync_test_cases(client, contract, "people", PEOPLE)
    text = (tmp_path / "people-customer-data-pii-full_name.odcs.yaml").read_text()
    (tmp_path / "people-customer-data-pii-full_name.odcs.yaml").write_text(
        text.replace("[DE, FR, NL]", "[DE, FR]")
    )
    from dativo_provider.contracts.loader import load_contract

    changed = load_contract(tmp_path / "people-customer-data-pii-full_name.odcs.yaml")
    om.clear_log()
    result = sync_test_cases(client, changed, "people", PEOPLE)
    assert result.updated == [f"{PEOPLE}.country.country_known"]
    (patch,) = [r for r in om.requests if r.method != "GET"]
    assert patch.body == [
        {
            "op": "replace",
            "path": "/parameterValues",
            "value": [{"name": "allowedValues", "value": '["DE", "FR"]'}],
        }
    ]


def _rule(**fields) -> QualityRule:
    return QualityRule(
        **{
            "name": "r",
            "engine": "soda",
            "severity": "error",
            "dataset": "d",
            "column": "c",
            "kind": "library",
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("rule", "definition", "parameters"),
    [
        (
            _rule(metric="rowCount", column=None, threshold={"mustBeBetween": [Decimal(10), Decimal(20)]}),
            "tableRowCountToBeBetween",
            [("minValue", "10"), ("maxValue", "20")],
        ),
        (
            _rule(metric="rowCount", column=None, threshold={"mustBeGreaterThan": Decimal(0)}),
            "tableRowCountToBeBetween",
            [("minValue", "1")],
        ),
        (
            _rule(
                engine="great_expectations",
                kind="custom",
                implementation={
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "c", "min_value": 1900, "max_value": 2010},
                },
            ),
            "columnValuesToBeBetween",
            [("minValue", "1900"), ("maxValue", "2010")],
        ),
        (_rule(metric="missingValues", threshold={"mustBe": Decimal(0)}), "columnValuesToBeNotNull", []),
    ],
)
def test_rules_map_onto_builtin_test_definitions(rule, definition, parameters) -> None:
    spec = rule_test_case(rule, "s.d.n.t")
    assert spec.request["testDefinition"] == definition
    assert [(p["name"], p["value"]) for p in spec.request["parameterValues"]] == parameters


def test_rules_without_a_builtin_say_why() -> None:
    assert rule_test_case(_rule(kind="sql", query="SELECT 1"), "s.d.n.t") == (
        "a sql rule has no OpenMetadata built-in test definition"
    )
    assert rule_test_case(
        _rule(engine="custom", kind="custom", implementation="pkg.mod:check"), "s.d.n.t"
    ) == ("a custom rule has no OpenMetadata built-in test definition")
