"""Loader and lint: the example contracts load; every malformed contract fails with a precise message.

The expectations below are written by hand from reading each file in ``malformed/``: the line and the
message fragment a user should see. They are not captured from the linter's output.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from dativo_provider.contracts import ContractError, lint, load_contract

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "contracts"
MALFORMED = Path(__file__).parent / "malformed"

# file -> (line, path inside the document, message fragment)
EXPECTED: dict[str, tuple[int, str, str]] = {
    "bad_yaml_syntax.yaml": (5, "(document)", "invalid YAML: mapping values are not allowed here"),
    "tab_indent.yaml": (7, "(document)", "invalid YAML: found character '\\t' that cannot start any token"),
    "empty.yaml": (1, "(document)", "the file is empty"),
    "top_level_list.yaml": (1, "(document)", "expected a mapping of ODCS keys at the top, got list"),
    "unknown_top_level_key.yaml": (6, "owner", "unknown key 'owner'"),
    "unknown_column_key.yaml": (14, "schema[0].properties[0].nullable", "unknown key 'nullable'"),
    "misspelled_logical_type_key.yaml": (14, "schema[0].properties[1].logicaltype",
                                         "unknown key 'logicaltype' (did you mean 'logicalType'?)"),
    "required_as_string.yaml": (13, "schema[0].properties[0].required",
                                "expected true or false, got string 'yes'"),
    "version_as_number.yaml": (4, "version", "expected a string, got number 1.0 (quote it: '1.0')"),
    "missing_id.yaml": (1, "id", "required key 'id' is missing"),
    "bad_status.yaml": (5, "status", "'retired' is not allowed; expected 'active', 'deprecated' or 'sunset'"),
    "bad_severity.yaml": (17, "schema[0].properties[0].quality[0].severity",
                          "'critical' is not allowed; expected 'error' or 'warning'"),
    "unknown_engine.yaml": (16, "schema[0].quality[0].engine",
                            "unknown engine 'dbt'; use one of soda, great_expectations, custom"),
    "hyphenated_engine.yaml": (16, "schema[0].quality[0].engine", "(spelled great_expectations)"),
    "handwritten_soda_missing.yaml": (12, "schema[0].customProperties[0].value", "file 'soda/t.yaml' does not exist"),
    "rule_on_missing_column.yaml": (17, "schema[0].quality[0].arguments.properties[1]",
                                    "rule 'order_unique' is on column 'order_id', which 't' does not have"),
    "bad_regex_in_type_options.yaml": (14, "schema[0].properties[0].logicalTypeOptions.pattern",
                                       "regex '^[A-Z{2}$' does not compile"),
    "bad_regex_in_rule.yaml": (17, "schema[0].properties[0].quality[0].arguments.pattern",
                               "regex '(SKU-\\\\d+' does not compile"),
    "duplicate_column.yaml": (15, "schema[0].properties[2].name",
                              "duplicate column 'id' (also properties[0])"),
    "primary_key_not_required.yaml": (13, "schema[0].properties[0].primaryKey",
                                      "primary key column 'id' must be required: true"),
    "freshness_on_integer.yaml": (12, "slaProperties[0].element",
                                  "freshness needs a timestamp column; 't.id' is logicalType 'integer'"),
    "freshness_missing_column.yaml": (12, "slaProperties[0].element",
                                      "freshness column 't.updated_at' does not exist"),
    "bad_violation_handling.yaml": (12, "customProperties[0].value.quality",
                                    "'drop' is not allowed; expected 'block', 'quarantine' or 'warn'"),
    "unknown_extension.yaml": (14, "schema[0].properties[0].customProperties[0].property",
                               "unknown project extension 'dativoSubjectId' at column level"),
    "duplicate_key.yaml": (6, "status", "duplicate key 'status' (first at line 5)"),
    "properties_not_a_list.yaml": (10, "schema[0].properties", "expected a list, got a mapping"),
    "rule_without_operator.yaml": (14, "schema[0].properties[0].quality[0]",
                                   "rule 'id_present' needs exactly one of mustBe"),
    "bad_classification.yaml": (13, "schema[0].properties[0].classification", "'secret' is not allowed"),
    "relationship_to_missing_column.yaml": (
        18, "schema[1].properties[0].relationships[0].to[0]",
        "relationship target 'parents.parent_id': dataset 'parents' has no column 'parent_id'"),
    "no_owner.yaml": (1, "(document)", "no owner: set team.name"),
    "negative_min_rows.yaml": (10, "slaProperties[0].value",
                               "dativoMinRowsPerRun needs a whole number >= 0, got -5"),
    "custom_callable_not_a_reference.yaml": (17, "schema[0].quality[0].implementation",
                                             "engine custom needs implementation 'package.module:function'"),
    "column_without_name.yaml": (13, "schema[0].properties[1].name", "required key 'name' is missing"),
    "feature_on_missing_column.yaml": (15, "schema[0].customProperties[0].value.features[0]",
                                       "feature metadata names column 'spend', which 't' does not have"),
    "unknown_sla_property.yaml": (9, "slaProperties[0].property", "unknown SLA property 'freshnes'"),
}


def test_every_malformed_file_has_an_expectation() -> None:
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_contract_fails_with_a_precise_message(name: str) -> None:
    line, path, fragment = EXPECTED[name]
    issues = lint([MALFORMED / name])
    errors = [i for i in issues if i.severity == "error"]
    assert errors, f"{name} linted clean"
    matching = [i for i in errors if fragment in i.message]
    assert matching, f"{name}: no error contains {fragment!r}; got {[str(i) for i in errors]}"
    assert (matching[0].line, matching[0].path) == (line, path), str(matching[0])
    assert matching[0].file == str(MALFORMED / name)
    assert "Traceback" not in str(matching[0]) and "internal error" not in str(matching[0])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_contract_raises_contract_error(name: str) -> None:
    with pytest.raises(ContractError) as info:
        load_contract(MALFORMED / name)
    assert info.value.issues
    assert EXPECTED[name][2] in str(info.value)


def test_every_problem_in_a_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    text = (MALFORMED / "unknown_column_key.yaml").read_text().replace("status: active", "status: gone")
    (tmp_path / "two.yaml").write_text(text)
    messages = [i.message for i in lint([tmp_path / "two.yaml"])]
    assert any("unknown key 'nullable'" in m for m in messages)
    assert any("'gone' is not allowed" in m for m in messages)


def test_the_example_contracts_lint_clean() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 3
    assert lint([EXAMPLES]) == []


def test_customers_contract_resolves_pii_and_the_subject_identifier() -> None:
    contract = load_contract(EXAMPLES / "customers.odcs.yaml")
    customers = contract.dataset("customers")
    assert contract.status == "active" and contract.governance.owner == "customer-data"
    assert customers.physical_name == "examples.customers"
    assert customers.primary_key == ("customer_id",)
    assert [c.name for c in customers.subject_identifiers] == ["customer_id"]
    assert {c.name for c in customers.columns if c.classification == "pii"} == {
        "email", "first_name", "last_name", "birth_year"}
    assert contract.governance.retention_days == 7 * 365
    assert contract.schema_policy.allow_nullable_expansion and not contract.schema_policy.strict
    assert contract.handling.quality == "quarantine"
    engines = {r.name: r.engine for r in contract.rules}
    assert engines["birth_year_plausible"] == "great_expectations"
    assert engines["customer_id_unique"] == "soda"


def test_orders_contract_resolves_sla_rules_and_the_relationship() -> None:
    contract = load_contract(EXAMPLES / "orders.odcs.yaml")
    assert contract.sla.freshness[0].column == "ordered_at"
    assert contract.sla.freshness[0].max_age == timedelta(days=1)
    assert contract.sla.min_rows_per_run == 1
    (rel,) = contract.relationships
    assert (rel.from_dataset, rel.from_columns, rel.to_dataset, rel.to_columns) == (
        "orders", ("customer_id",), "customers", ("customer_id",))
    rules = {r.name: r for r in contract.rules}
    assert rules["currency_known"].engine == "great_expectations"
    assert rules["currency_known"].threshold == {"mustBe": 0}
    assert rules["amount_matches_quantity"].engine == "custom"
    assert rules["amount_matches_quantity"].severity == "warning"
    assert rules["order_id_unique"].column is None


def test_feature_table_keeps_its_feature_metadata() -> None:
    features = load_contract(EXAMPLES / "customer_features.odcs.yaml").datasets[0].features
    assert features is not None
    assert features.entities == ("customer_id",) and features.timestamp_column == "feature_ts"
    assert features.online and features.ttl_days == 2


def test_relationship_to_a_dataset_no_linted_contract_defines_is_an_error() -> None:
    text = (EXAMPLES / "orders.odcs.yaml").read_text()
    issues = lint([EXAMPLES / "orders.odcs.yaml"])
    assert [(i.severity, i.line, i.path) for i in issues] == [
        ("error", text.splitlines().index("          - to: customers.customer_id") + 1,
         "schema[0].properties[2].relationships[0].to[0]")]
    assert "no linted contract defines dataset 'customers'" in issues[0].message
    assert "dativoExternal" in issues[0].message and "--external customers" in issues[0].message
    with pytest.raises(ContractError):
        raise ContractError(issues)  # the CLI exits 1 on it, see test_cli


def test_a_relationship_marked_external_or_a_dataset_named_external_lints_clean(tmp_path: Path) -> None:
    assert lint([EXAMPLES / "orders.odcs.yaml"], external=["customers"]) == []
    text = (EXAMPLES / "orders.odcs.yaml").read_text().replace(
        "          - to: customers.customer_id\n",
        "          - to: customers.customer_id\n"
        "            customProperties:\n"
        "              - property: dativoExternal\n"
        "                value: true\n")
    (tmp_path / "orders.yaml").write_text(text)
    assert lint([tmp_path / "orders.yaml"]) == []
    (rel,) = load_contract(tmp_path / "orders.yaml").relationships
    assert rel.external and rel.to_dataset == "customers"
    # Marked external but linted with the contract that defines it: its columns are still checked.
    (tmp_path / "orders.yaml").write_text(text.replace("customers.customer_id", "customers.id"))
    (issue,) = lint([tmp_path / "orders.yaml", EXAMPLES / "customers.odcs.yaml"])
    assert "dataset 'customers' has no column 'id'" in issue.message
    # The marker's value is checked like every extension.
    (tmp_path / "orders.yaml").write_text(text.replace("value: true\n", "value: 'yes'\n", 1))
    (issue,) = [i for i in lint([tmp_path / "orders.yaml"]) if "customProperties" in i.path]
    assert issue.path == "schema[0].properties[2].relationships[0].customProperties[0].value"
    assert issue.message == "expected true or false, got string 'yes'"


def test_every_bundled_contract_set_lints_clean_together() -> None:
    assert lint([ROOT / "dativo_provider" / "sample_data" / "contracts"]) == []
    assert lint([EXAMPLES]) == []


def test_relationship_to_a_missing_column_in_another_contract_is_an_error(tmp_path: Path) -> None:
    text = (EXAMPLES / "orders.odcs.yaml").read_text().replace("customers.customer_id", "customers.id")
    (tmp_path / "orders.yaml").write_text(text)
    line = text.splitlines().index("          - to: customers.id") + 1
    issues = lint([tmp_path / "orders.yaml", EXAMPLES / "customers.odcs.yaml"])
    assert [(i.severity, i.line) for i in issues] == [("error", line)]
    assert "dataset 'customers' has no column 'id'" in issues[0].message


def test_a_missing_path_is_reported_not_raised(tmp_path: Path) -> None:
    (issue,) = lint([tmp_path / "nope"])
    assert "no such file or directory" in issue.message


def test_contracts_package_imports_no_airflow_and_no_engine() -> None:
    for module in ("contracts/checks", "contracts/extensions", "contracts/loader", "contracts/model",
                   "contracts/odcs", "cli"):
        source = (ROOT / "dativo_provider" / f"{module}.py").read_text()
        imported = {
            (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert not imported & {"airflow", "soda", "great_expectations", "pyarrow", "pandas"}, module
