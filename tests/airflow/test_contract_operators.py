"""Contracts in Airflow: ingest with write-audit-publish, the check operator, release/purge, the SLA sensor,
and the example DAG end to end. Real runs on an embedded catalog (and Postgres/MySQL in place); the
assertions read the tables back."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, AirflowFailException, AirflowSensorTimeout
from dativo_provider.exceptions import ConfigError
from dativo_provider.operators.contracts import (
    ContractCheckOperator,
    QuarantinePurgeOperator,
    QuarantineReleaseOperator,
)
from dativo_provider.operators.common import native_list, resolve_contract_path
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.sensors.contracts import ContractSlaSensor
from tests.airflow.helpers import dagbag, openlineage_complete, read_table, return_values

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:people
version: 1.0.0
status: active
team: {{name: data}}
{sla}customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: {quality}, sla: {sla_handling}}}
schema:
  - name: people
    physicalName: tests.people
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        required: true
        primaryKey: true
      - name: email
        logicalType: string
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '[a-z0-9.]+@[a-z]+\\.[a-z]+'}}
            mustBe: 0
      - name: seen_at
        logicalType: timestamp
        physicalType: timestamptz
"""

SLA = """\
slaProperties:
  - property: latency
    value: 1
    unit: d
    element: people.seen_at
  - property: dativoMinRowsPerRun
    value: 2
"""

COLUMNS = {"id": "int64", "email": "string", "seen_at": "timestamptz"}


def _contract(
    folder: Path, *, quality: str = "quarantine", sla: bool = True, name: str = "people.odcs.yaml",
    sla_handling: str = "warn",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(CONTRACT.format(quality=quality, sla=SLA if sla else "", sla_handling=sla_handling))
    return path


def _people(folder: Path, rows: list[tuple[int, str, dt.datetime]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["id,email,seen_at", *(f"{i},{email},{at.isoformat()}" for i, email, at in rows)]
    (folder / "people.csv").write_text("\n".join(lines) + "\n")
    return folder


GOOD_AND_BAD = [
    (1, "ada@example.com", NOW),
    (2, "not-an-email", NOW),
    (3, "grace@example.org", NOW),
    (4, "LINUS AT EXAMPLE", NOW),
]


def _ingest(drop: Path, contract: Path | str, **kwargs: Any) -> IcebergIngestOperator:
    return IcebergIngestOperator(
        task_id="ingest_people",
        source={"type": "files", "path": str(drop), "glob": "*.csv", "columns": COLUMNS},
        table="tests.people",
        contract=str(contract),
        **kwargs,
    )


class FakeTI:
    """Collects the XComs a task pushes besides its return value."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


# --- contract paths -----------------------------------------------------------------------------------


def test_relative_contract_paths_resolve_next_to_the_dag_file_then_in_the_cwd(tmp_path, monkeypatch):
    dag_folder, cwd = tmp_path / "dags", tmp_path / "cwd"
    dag_file = dag_folder / "my_dag.py"
    in_both = "contracts/both.yaml"
    for folder in (dag_folder, cwd):
        _contract(folder / "contracts", name="both.yaml")
    _contract(cwd / "contracts", name="only_cwd.yaml")
    monkeypatch.chdir(cwd)

    assert resolve_contract_path(in_both, str(dag_file)) == str(dag_folder / in_both)
    assert resolve_contract_path("contracts/only_cwd.yaml", str(dag_file)) == str(
        cwd / "contracts/only_cwd.yaml"
    )
    assert resolve_contract_path(in_both, None) == str(cwd / in_both)
    assert resolve_contract_path("/abs/contract.yaml", str(dag_file)) == "/abs/contract.yaml"
    with pytest.raises(ConfigError) as missing:
        resolve_contract_path("contracts/nowhere.yaml", str(dag_file))
    assert str(dag_folder / "contracts/nowhere.yaml") in str(missing.value)
    assert str(cwd / "contracts/nowhere.yaml") in str(missing.value)


def test_a_task_resolves_its_contract_against_its_dags_file(iceberg_default, tmp_path, monkeypatch):
    try:
        from airflow.sdk import DAG
    except ImportError:
        from airflow import DAG

    _contract(tmp_path / "dags" / "contracts")
    drop = _people(tmp_path / "drop", GOOD_AND_BAD[:1])
    monkeypatch.chdir(tmp_path)  # no contracts/ here: only the DAG's folder has it
    with DAG("contract_paths", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        operator = _ingest(drop, "contracts/people.odcs.yaml")
    dag.fileloc = str(tmp_path / "dags" / "contract_paths.py")
    assert operator.execute({"run_id": "manual__1"})["rows_published"] == 1


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        (None, None),
        ("", None),
        ("None", None),
        ("[]", None),
        (["a", "b"], ["a", "b"]),
        ('["a", "b"]', ["a", "b"]),
        ("['a', 'b']", ["a", "b"]),
        ("a, b", ["a", "b"]),
    ],
)
def test_rendered_run_id_lists(rendered, expected):
    assert native_list(rendered) == expected


# --- ingest with a contract ---------------------------------------------------------------------------


def test_ingest_quarantines_bad_rows_and_reports_them(iceberg_default, tmp_path, caplog, capsys):
    drop = _people(tmp_path / "drop", GOOD_AND_BAD)
    report_file = tmp_path / "report.json"
    operator = _ingest(drop, _contract(tmp_path), quality_report_path=str(report_file))
    caplog.set_level("INFO")
    summary = operator.execute({"run_id": "manual__1"})

    assert (summary["rows_read"], summary["rows_published"], summary["rows_quarantined"]) == (4, 2, 2)
    assert (
        summary["rows_read"]
        == summary["rows_published"] + summary["rows_quarantined"] + summary["rows_rejected"]
    )
    assert summary["quality"]["decision"] == "quarantine"
    assert json.loads(report_file.read_text())["decision"] == "quarantine"
    assert sorted(read_table("tests.people").column("id").to_pylist()) == [1, 3]
    held = read_table("tests.people_quarantine").to_pylist()
    assert sorted(row["id"] for row in held) == [2, 4]
    assert all(row["_dativo_failed_checks"] == ["email_well_formed"] for row in held)
    logged = caplog.text + capsys.readouterr().out  # Airflow 3 logs through structlog to stdout
    assert "FAILED  email_well_formed" in logged and "Contract decision: quarantine" in logged


def test_ingest_lineage_carries_one_assertion_per_check(iceberg_default, tmp_path):
    operator = _ingest(_people(tmp_path / "drop", GOOD_AND_BAD), _contract(tmp_path))
    summary = operator.execute({"run_id": "manual__1"})
    output, quarantine = operator.get_openlineage_facets_on_complete(task_instance=None).outputs  # + held rows
    assert quarantine.facets["symlinks"].identifiers[0].name == "tests.people_quarantine"
    assertions = output.facets["dataQualityAssertions"].assertions
    expected = [(c["name"], c["outcome"] == "passed", c["column"]) for c in summary["quality"]["checks"]]
    assert [(a.assertion, a.success, a.column) for a in assertions] == expected
    by_name = {a.assertion: a for a in assertions}
    assert by_name["email_well_formed"].success is False and by_name["email_well_formed"].column == "email"
    assert by_name["id__required"].success is True and by_name["id__required"].severity == "error"
    assert "schema" in output.facets  # the schema facet stays


def test_a_blocked_run_fails_without_retry_and_publishes_nothing(iceberg_default, tmp_path):
    contract = _contract(tmp_path, quality="block")
    _ingest(_people(tmp_path / "first", GOOD_AND_BAD[:1]), contract).execute({"run_id": "manual__1"})
    ti = FakeTI()
    with pytest.raises(AirflowFailException) as blocked:
        _ingest(_people(tmp_path / "drop", GOOD_AND_BAD), contract).execute({"run_id": "manual__2", "ti": ti})
    assert "main is unchanged" in str(blocked.value)
    assert "FAILED  email_well_formed" in str(blocked.value) and "2 failing rows" in str(blocked.value)
    assert ti.pushed["quality_report"]["decision"] == "block"
    assert read_table("tests.people").column("id").to_pylist() == [1]


def test_without_a_contract_nothing_changes(iceberg_default, tmp_path):
    drop = _people(tmp_path / "drop", GOOD_AND_BAD)
    operator = IcebergIngestOperator(
        task_id="t",
        source={"type": "files", "path": str(drop), "glob": "*.csv", "columns": COLUMNS},
        table="tests.people",
    )
    summary = operator.execute({"run_id": "manual__1"})
    assert (summary["rows_published"], summary["rows_quarantined"], summary["quality"]) == (4, 0, None)


# --- ContractCheckOperator ----------------------------------------------------------------------------


def _loaded(tmp_path: Path, rows=GOOD_AND_BAD, *, quality: str = "warn") -> Path:
    """tests.people holding ``rows`` (loaded with the contract, bad rows only warned about)."""
    contract = _contract(tmp_path / "contracts", quality=quality)
    _ingest(_people(tmp_path / "drop", rows), contract).execute({"run_id": "manual__1"})
    return contract


def test_check_operator_reports_on_an_iceberg_table(iceberg_default, tmp_path):
    contract = _loaded(tmp_path)
    report_file = tmp_path / "check.json"
    operator = ContractCheckOperator(
        task_id="check",
        contract=str(contract),
        table="tests.people",
        fail_on="never",
        quality_report_path=str(report_file),
    )
    report = operator.execute({})
    checks = {c["name"]: c for c in report["checks"]}
    assert report["rows_checked"] == 4 and checks["email_well_formed"]["failing_rows"] == 2
    assert checks["seen_at__fresh"]["outcome"] == "passed" and checks["rows_per_run"]["outcome"] == "passed"
    assert json.loads(report_file.read_text())["checks_failed"] == 1
    assert not operator.inlets  # the table's asset is named by its catalog, known only at run time

    (checked,) = operator.get_openlineage_facets_on_complete(task_instance=None).inputs
    assert checked.facets["symlinks"].identifiers[0].name == "tests.people"  # named by location + symlink
    assertions = {a.assertion: a.success for a in checked.inputFacets["dataQualityAssertions"].assertions}
    assert assertions == {name: c["outcome"] == "passed" for name, c in checks.items()}


def test_check_operator_fails_on_error_severity_failures(iceberg_default, tmp_path):
    _loaded(tmp_path)  # the bad row was only warned about on ingest
    contract = _contract(tmp_path / "strict", quality="block")
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match=r"\(1 blocking check\)") as failed:
        ContractCheckOperator(task_id="check", contract=str(contract), table="tests.people").execute(
            {"ti": ti}
        )
    assert "email_well_formed" in str(failed.value)
    assert ti.pushed["quality_report"]["checks_failed"] == 1


def test_check_operator_measures_freshness_at_the_given_time(iceberg_default, tmp_path):
    _loaded(tmp_path, GOOD_AND_BAD[::2])
    blocking = _contract(tmp_path / "strict", sla_handling="block")
    later = (NOW + dt.timedelta(days=3)).isoformat()
    with pytest.raises(AirflowFailException, match="seen_at__fresh"):
        ContractCheckOperator(
            task_id="check", contract=str(blocking), table="tests.people", now=later
        ).execute({})
    on_time = ContractCheckOperator(task_id="check", contract=str(blocking), table="tests.people", now=NOW)
    assert on_time.execute({})["checks_failed"] == 0


def test_check_operator_only_warns_where_the_contract_says_warn(iceberg_default, tmp_path, caplog, capsys):
    contract = _loaded(tmp_path, GOOD_AND_BAD[::2])  # sla: warn
    later = (NOW + dt.timedelta(days=3)).isoformat()
    report = ContractCheckOperator(
        task_id="check", contract=str(contract), table="tests.people", now=later
    ).execute({})
    stale = [c for c in report["checks"] if c["name"] == "seen_at__fresh"]
    assert stale[0]["outcome"] == "failed" and report["checks_failed"] == 1
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err  # Airflow 3 logs through structlog to stdout
    assert "the contract says warn" in logged and "seen_at__fresh" in logged


def test_check_operator_checks_a_postgres_table_in_place(tmp_path, postgres_conn, pg, pg_schema):
    pg.execute(f'CREATE TABLE "{pg_schema}".people (id bigint, email text, seen_at timestamptz)')
    pg.execute(
        f'INSERT INTO "{pg_schema}".people VALUES (1, %s, now()), (2, %s, now()), (NULL, %s, now())',
        ("ada@example.com", "nope", "grace@example.org"),
    )
    operator = ContractCheckOperator(
        task_id="check",
        contract=str(_contract(tmp_path)),
        sql_conn_id=postgres_conn,
        sql_table=f"{pg_schema}.people",
        fail_on="never",
    )
    checks = {c["name"]: c for c in operator.execute({})["checks"]}
    assert checks["email_well_formed"]["failing_rows"] == 1
    assert checks["email_well_formed"]["failing_keys"] == [{"id": 2, "email": "nope"}]
    assert checks["id__required"]["outcome"] == "failed"
    (checked,) = operator.get_openlineage_facets_on_complete(task_instance=None).inputs
    assert checked.name.endswith(f"{pg_schema}.people") and checked.namespace.startswith("postgres://")


def test_check_operator_checks_a_mysql_table_in_place(tmp_path, mysql_config, my, my_db, monkeypatch):
    from tests.airflow.conftest import connection_env

    monkeypatch.setenv(
        *connection_env(
            "mysql_check",
            conn_type="mysql",
            host=my_db.host,
            port=my_db.port,
            login=my_db.user,
            password=my_db.password,
            schema=my_db.database,
        )
    )
    with my.cursor() as cursor:
        cursor.execute(f"CREATE TABLE `{my_db.database}`.people (id bigint, email text, seen_at datetime)")
        cursor.execute(
            f"INSERT INTO `{my_db.database}`.people VALUES (1, 'ada@example.com', UTC_TIMESTAMP()),"
            " (2, 'nope', UTC_TIMESTAMP())"
        )
    operator = ContractCheckOperator(
        task_id="check",
        contract=str(_contract(tmp_path)),
        sql_conn_id="mysql_check",
        sql_table="people",
        fail_on="never",
    )
    checks = {c["name"]: c for c in operator.execute({})["checks"]}
    assert (checks["email_well_formed"]["failing_rows"], checks["id__required"]["outcome"]) == (1, "passed")


def test_check_operator_arguments_are_validated():
    with pytest.raises(ValueError, match="either table"):
        ContractCheckOperator(task_id="c", contract="c.yaml")
    with pytest.raises(ValueError, match="either table"):
        ContractCheckOperator(task_id="c", contract="c.yaml", table="t.t", sql_conn_id="pg", sql_table="x")
    with pytest.raises(ValueError, match="fail_on"):
        ContractCheckOperator(task_id="c", contract="c.yaml", table="t.t", fail_on="warning")


# --- one rule: the operator, the write-audit-publish gate and the CLI agree ---------------------------

VERDICT_CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:verdict
version: 1.0.0
status: active
team: {{name: data}}
slaProperties:
  - property: dativoMinRowsPerRun
    value: 100
customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: {quality}, sla: warn}}
schema:
  - name: people
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
      - name: email
        logicalType: string
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '[a-z0-9.]+@[a-z]+\\.[a-z]+'}}
            mustBe: 0
          - type: text
            description: "info: addresses come from the sign-up form (documentation only, never run)"
      - name: team
        logicalType: string
        quality:
          - name: team_distinct
            severity: warning
            metric: duplicateValues
            mustBe: 0
"""

BLOCKING_LINE = re.compile(r"^\s+(?:FAILED|ERROR)\s+(\S+) \(", re.MULTILINE)


def _verdict_case(tmp_path: Path, rows: list[tuple[int, str, str]], quality: str) -> tuple[Path, Path]:
    contract = tmp_path / "verdict.odcs.yaml"
    contract.write_text(VERDICT_CONTRACT.format(quality=quality))
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "people.csv").write_text("id,email,team\n" + "".join(f"{i},{e},{t}\n" for i, e, t in rows))
    return contract, drop


def _gate_outcome(drop: Path, contract: Path) -> tuple[set[str], set[str], str]:
    """What the write-audit-publish gate did: (checks that blocked or quarantined, warned, decision)."""
    ingest = IcebergIngestOperator(
        task_id="gate", table="tests.people_gate", contract=str(contract),
        source={"type": "files", "path": str(drop), "glob": "*.csv",
                "columns": {"id": "int64", "email": "string", "team": "string"}},
    )
    ti = FakeTI()
    try:
        quality = ingest.execute({"run_id": "manual__gate", "ti": ti})["quality"]
        held = {c for row in read_table("tests.people_gate_quarantine").to_pylist()
                for c in row["_dativo_failed_checks"]} if quality["decision"] == "quarantine" else set()
    except AirflowFailException as exc:
        quality, held = ti.pushed["quality_report"], set(BLOCKING_LINE.findall(str(exc)))
    return held, set(quality["warnings"]), quality["decision"]


def _operator_outcome(contract: Path) -> tuple[set[str], set[str]]:
    """What ContractCheckOperator did: (checks it failed on, checks that failed but did not fail it)."""
    operator = ContractCheckOperator(task_id="check", contract=str(contract), table="tests.people")
    try:
        report = operator.execute({"ti": FakeTI()})
        blocking: set[str] = set()
    except AirflowFailException as exc:
        report, blocking = operator.report, set(BLOCKING_LINE.findall(str(exc)))
    assert report is not None
    failed = {c["name"] for c in report["checks"] if c["outcome"] != "passed"}
    return blocking, failed - blocking


def _cli_outcome(contract: Path, home: Path) -> tuple[set[str], set[str], int]:
    """What ``dativo contract check`` did: (blocking checks, warned checks, exit status)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dativo_provider.cli", "contract", "check", str(contract),
         "--warehouse", str(home), "--table", "tests.people"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = (line.partition(": ") for line in result.stderr.splitlines())
    named = {label: set(names.split(", ")) for label, _, names in lines
             if label in ("blocking", "only warned")}
    return named.get("blocking", set()), named.get("only warned", set()), result.returncode


@pytest.mark.parametrize(
    ("quality", "rows", "blocking", "decision"),
    [
        # an error-severity check fails: it blocks (or holds rows back) everywhere
        ("block", [(1, "ada@example.com", "red"), (2, "not-an-email", "red")], {"email_well_formed"},
         "block"),
        ("quarantine", [(1, "ada@example.com", "red"), (2, "not-an-email", "red")], {"email_well_formed"},
         "quarantine"),
        # only the warning-severity rule and the SLA (handling warn) fail: nothing blocks anywhere
        ("block", [(1, "ada@example.com", "red"), (2, "grace@example.org", "red")], set(), "publish"),
    ],
)
def test_the_operator_the_gate_and_the_cli_apply_one_rule(
    iceberg_default, dativo_home, tmp_path, quality, rows, blocking, decision
):
    contract, drop = _verdict_case(tmp_path, rows, quality)
    IcebergIngestOperator(  # the same rows, loaded without a contract, for the checks in place
        task_id="load", table="tests.people",
        source={"type": "files", "path": str(drop), "glob": "*.csv",
                "columns": {"id": "int64", "email": "string", "team": "string"}},
    ).execute({"run_id": "manual__load"})
    warned = {"team_distinct", "rows_per_run"}  # a warning rule; an SLA check whose handling is warn

    assert _gate_outcome(drop, contract) == (blocking, warned, decision)
    assert _operator_outcome(contract) == (blocking, warned)
    cli_blocking, cli_warned, status = _cli_outcome(contract, dativo_home)
    assert (cli_blocking, cli_warned, status) == (blocking, warned, 1 if blocking else 0)


# --- release and purge --------------------------------------------------------------------------------


def test_release_publishes_rows_that_pass_the_fixed_contract(iceberg_default, tmp_path):
    drop = _people(tmp_path / "drop", GOOD_AND_BAD)
    first = _ingest(drop, _contract(tmp_path)).execute({"run_id": "manual__1"})
    assert first["rows_quarantined"] == 2
    fixed = tmp_path / "fixed" / "people.odcs.yaml"
    fixed.parent.mkdir()
    fixed.write_text(_contract(tmp_path).read_text().replace("[a-z0-9.]+@[a-z]+\\.[a-z]+", ".+"))

    released = QuarantineReleaseOperator(
        task_id="release", table="tests.people", contract=str(fixed), run_ids='["manual__1"]'
    ).execute({})
    assert (released["rows_considered"], released["rows_published"], released["rows_requarantined"]) == (
        2,
        2,
        0,
    )
    assert sorted(read_table("tests.people").column("id").to_pylist()) == [1, 2, 3, 4]
    assert read_table("tests.people_quarantine").num_rows == 0


def test_purge_deletes_quarantined_runs(iceberg_default, tmp_path):
    _ingest(_people(tmp_path / "drop", GOOD_AND_BAD), _contract(tmp_path)).execute({"run_id": "manual__1"})
    purge = QuarantinePurgeOperator(
        task_id="purge", quarantine_table="tests.people_quarantine", quarantined_before="{{ ds }}"
    )
    purge.quarantined_before = "2000-01-01"  # as rendered: nothing that old
    assert purge.execute({}) == 0
    purge.quarantined_before, purge.run_ids = None, "manual__1"
    assert purge.execute({}) == 2
    assert read_table("tests.people_quarantine").num_rows == 0
    with pytest.raises(AirflowFailException, match="purge needs run_ids or quarantined_before"):
        QuarantinePurgeOperator(task_id="purge", quarantine_table="tests.people_quarantine").execute({})


# --- ContractSlaSensor --------------------------------------------------------------------------------


def _sensor(contract: Path, **kwargs: Any) -> ContractSlaSensor:
    return ContractSlaSensor(
        task_id="sla", contract=str(contract), table="tests.people", poke_interval=0.01, **kwargs
    )


def test_sla_sensor_passes_on_a_fresh_table(iceberg_default, tmp_path):
    sensor = _sensor(_loaded(tmp_path, GOOD_AND_BAD[::2]))
    assert sensor.poke({}) is True
    assert [r.name for r in sensor._rules] == ["seen_at__fresh", "rows_per_run"]  # only the SLA checks


def test_sla_sensor_names_the_stale_column_and_its_age(iceberg_default, tmp_path):
    old = NOW - dt.timedelta(days=3, hours=2)
    sensor = _sensor(_loaded(tmp_path, [(1, "ada@example.com", old), (2, "grace@example.org", old)]))
    assert sensor.poke({}) is False
    assert sensor.unmet.startswith("seen_at is stale: its newest value is 3 days, 2:")
    assert "the contract allows 1 day, 0:00:00" in sensor.unmet
    with pytest.raises(AirflowSensorTimeout, match="seen_at is stale"):
        _sensor(_loaded(tmp_path / "again", [(1, "a@b.cd", old), (2, "e@f.gh", old)]), timeout=0.05).execute(
            {}
        )


def test_sla_sensor_waits_for_volume_and_for_the_table(iceberg_default, tmp_path):
    contract = _contract(tmp_path / "contracts")
    assert _sensor(contract).poke({}) is False  # no table yet
    _loaded(tmp_path, GOOD_AND_BAD[:1])
    sensor = _sensor(contract)
    assert sensor.poke({}) is False
    assert sensor.unmet == "the table has 1 rows; the contract expects at least 2"


def test_sla_sensor_without_sla_checks_fails_at_execute(iceberg_default, tmp_path):
    with pytest.raises(AirflowFailException, match="has no SLA checks"):
        _sensor(_contract(tmp_path, sla=False)).execute({})


# --- the example DAG ----------------------------------------------------------------------------------


def _run(dag_id: str, logical_date: dt.datetime, conf: dict[str, Any] | None = None) -> Any:
    dag = dagbag().get_dag(dag_id)
    if AIRFLOW_V_3_0_PLUS:
        run = dag.test(logical_date=logical_date, run_conf=conf)
    else:
        import airflow.providers.fab.auth_manager.models  # noqa: F401 - see helpers.run_dag

        run = dag.test(execution_date=logical_date, run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run, states


@pytest.mark.airflow
def test_example_contract_dag_quarantines_bad_rows_then_releases_them(airflow_db, iceberg_default, tmp_path):
    run, states = _run("example_contract_quarantine", dt.datetime(2024, 4, 1, 12, tzinfo=dt.UTC))
    assert states == {
        "ingest_customers": "success",
        "ingest_orders": "success",
        "check_orders": "success",
        "release_requested": "success",
        "release_orders": "skipped",
    }
    (orders,) = return_values(run, "ingest_orders")
    assert (orders["rows_read"], orders["rows_published"], orders["rows_quarantined"]) == (2110, 2106, 4)
    assert (
        orders["rows_read"] == orders["rows_published"] + orders["rows_quarantined"] + orders["rows_rejected"]
    )
    assert orders["quality"]["decision"] == "quarantine"
    assert "ordered_at__fresh" in orders["quality"]["warnings"]  # 2024 data is stale; sla: warn
    assert read_table("examples.contract_orders").num_rows == 2106
    held = {row["order_id"]: row for row in read_table("examples.contract_orders_quarantine").to_pylist()}
    assert sorted(held) == [2024040002, 2024040003, 2024040004, 2024040005]
    assert held[2024040002]["_dativo_failed_checks"] == ["currency_known"]
    assert held[2024040003]["_dativo_failed_checks"] == ["status_known"]
    assert sorted(held[2024040004]["_dativo_failed_checks"]) == [
        "customer_id__required",
        "customer_id_present",
    ]
    assert sorted(held[2024040005]["_dativo_failed_checks"]) == ["currency_known", "status_known"]
    assert "currency_known (invalidValues on currency)" in held[2024040002]["_dativo_reason"]
    (customers,) = return_values(run, "ingest_customers")
    assert (customers["rows_published"], customers["quality"]["decision"]) == (1000, "publish")
    (check,) = return_values(run, "check_orders")
    assert check["rows_checked"] == 2106 and not [c for c in check["checks"] if c["outcome"] == "failed"]

    output = openlineage_complete("example_contract_quarantine.ingest_orders")["outputs"][0]
    assertions = {
        a["assertion"]: a["success"] for a in output["facets"]["dataQualityAssertions"]["assertions"]
    }
    assert assertions["currency_known"] is False and assertions["order_id__unique"] is True
    checked = openlineage_complete("example_contract_quarantine.check_orders")["inputs"][0]
    assert checked["facets"]["symlinks"]["identifiers"][0]["name"] == "examples.contract_orders"
    assert checked["inputFacets"]["dataQualityAssertions"]["assertions"]

    # The data team accepts the two new codes, then releases: three rows publish, the one without a
    # customer stays held back.
    fixed = tmp_path / "orders_fixed.odcs.yaml"
    text = (Path(__file__).parents[2] / "contracts" / "orders.odcs.yaml").read_text()
    fixed.write_text(
        text.replace("SEK, USD]", "SEK, USD, XYZ, ABC]").replace("cancelled]", "cancelled, lost, unknown]")
    )
    run, states = _run(
        "example_contract_quarantine",
        dt.datetime(2024, 4, 1, 12, tzinfo=dt.UTC),
        {"release": True, "release_contract": str(fixed)},
    )
    assert states["release_orders"] == "success", states
    (released,) = return_values(run, "release_orders")
    assert (released["rows_considered"], released["rows_published"], released["rows_requarantined"]) == (
        4,
        3,
        1,
    )
    assert read_table("examples.contract_orders").num_rows == 2109
    (still_held,) = read_table("examples.contract_orders_quarantine").to_pylist()
    assert still_held["order_id"] == 2024040004
