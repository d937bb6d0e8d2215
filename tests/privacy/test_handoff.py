"""Erasure hand-off: the SQL handed to Spark/Trino, and adoption of the external delete.

The external engine here is the stand-in (DuckDB running the planned Trino statement verbatim, then a
pyiceberg commit); the certificate must pass only when the subject's rows are really gone.
"""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from dativo_provider.exceptions import ConfigError, TerminalError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy.audit import AuditTrail, ObjectAuditStore, verify
from dativo_provider.privacy.certificate import SigningKey, audit_anchor, verify_certificate
from dativo_provider.privacy.handoff import (
    ExternalDeleteMissingError,
    finish_handoff,
    plan_handoff,
    read_statement,
)
from dativo_provider.privacy.handoff_sql import (
    compaction_statement,
    count_statement,
    delete_statement,
    literal,
    quote_identifier,
)
from dativo_provider.privacy.handoff_standin import STANDIN_ENGINE, run_standin_delete
from dativo_provider.privacy.request import SubjectRequest

CONTRACT = Path(__file__).resolve().parents[2] / "example_dags" / "contracts" / "handoff_accounts.odcs.yaml"
TABLE = "examples.handoff_accounts"
HASH_KEY = b"handoff-test-hash-key-0123456789"
#: The subject: account 87, whose address is stored with odd spacing and case, plus an anonymous row
#: (no account id) from the same address; their names hold a quote, a backslash and non-ASCII letters.
SUBJECT_EMAIL = "o'brien.zoë@exämple.org"
TRICKY = ["O'Brien \\ Zoë", 'say "hi"; DROP TABLE x; --', "日本語 ☃", "back\\slash'", "tab\there"]


def accounts() -> pa.Table:
    ids = [1, 2, 87, 4, None, 6, 87]
    emails = ["a@example.org", "b@example.org", " O'Brien.Zoë@Exämple.org", "d@example.org",
              "o'brien.zoë@exämple.org", "f@example.org", None]
    names = ["Ann", TRICKY[1], TRICKY[0], TRICKY[2], "anonymous", TRICKY[3], "second account row"]
    return pa.table({"account_id": pa.array(ids, pa.int64()), "email": pa.array(emails, pa.string()),
                     "display_name": pa.array(names, pa.string()), "plan": pa.array(["free"] * 7, pa.string())})


@pytest.fixture
def catalog(tmp_path):
    config = embedded_catalog(tmp_path / "lake")
    iceberg = config.load()
    iceberg.create_namespace_if_not_exists("examples")
    rows = accounts()
    table = iceberg.create_table(TABLE, rows.schema, properties={
        f"write.metadata.metrics.column.{c}": "counts" for c in ("account_id", "email", "display_name")})
    table.append(rows.slice(0, 4))
    table.append(rows.slice(4))
    return config


@pytest.fixture
def trail(tmp_path):
    return AuditTrail(ObjectAuditStore(str(tmp_path / "audit")), HASH_KEY)


KEY = SigningKey.hmac(b"handoff-signing-secret-0123456789", "handoff-test")


def _request(**extra) -> SubjectRequest:
    return SubjectRequest("dsr-handoff-1", "erasure", "customer", subject_ids=("87",), **extra)


def _plan(catalog, trail, tmp_path, engine="trino"):
    return plan_handoff(catalog, [CONTRACT], _request(), engine=engine, engine_catalog="lake",
                        statement_dir=tmp_path / "statements", trail=trail, hash_key=HASH_KEY)


def _finish(catalog, trail, tmp_path, plan):
    return finish_handoff(catalog, [CONTRACT], _request(), plan.to_dict(), tmp_path / "cert.json", signing_key=KEY,
                          hash_key=HASH_KEY, trail=trail, safety_window=timedelta(0))


def _rows(catalog) -> list[dict]:
    return catalog.load().load_table(TABLE).scan().to_arrow().to_pylist()


# --- rendering -------------------------------------------------------------------------------------


def _parsed_values(statement: str, dialect: str) -> dict[str, list]:
    tree = sqlglot.parse_one(statement, read=dialect)
    assert isinstance(tree, exp.Delete)
    found: dict[str, list] = {}
    for term in tree.find_all(exp.In):
        found[term.this.name] = [v.to_py() for v in term.expressions]
    return found


@pytest.mark.parametrize("dialect", ["spark", "trino"])
def test_rendered_delete_parses_back_to_the_exact_names_and_values(dialect):
    match = {"email": [SUBJECT_EMAIL, *TRICKY], "account_id": [87, -3, 2**62], "we`ird \"col\"": ["x"]}
    statement = delete_statement("my ns.tä`b\"le", match, dialect, "lake")  # type: ignore[arg-type]
    tree = sqlglot.parse_one(statement, read=dialect)
    table = tree.find(exp.Table)
    assert (table.catalog, table.db, table.name) == ("lake", "my ns", 'tä`b"le')
    values = _parsed_values(statement, dialect)
    assert values == {"account_id": [-3, 87, 2**62], "email": sorted([SUBJECT_EMAIL, *TRICKY]),
                      'we`ird "col"': ["x"]}
    # one statement: the ';' and '--' inside values stay data
    assert len(sqlglot.parse(statement, read=dialect)) == 1


def test_spark_and_trino_quote_differently():
    assert quote_identifier("a`b", "spark") == "`a``b`" and quote_identifier('a"b', "trino") == '"a""b"'
    assert literal("it's \\ x", "spark") == "'it\\'s \\\\ x'"
    assert literal("it's \\ x", "trino") == "'it''s \\ x'"
    with pytest.raises(ConfigError, match="float"):
        literal(1.5, "spark")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="NUL"):
        literal("a\x00b", "trino")


def test_branches_nested_namespaces_and_compaction():
    spark = delete_statement("a.b.t", {"id": [1]}, "spark", "cat", branch="audit")
    assert spark == "DELETE FROM `cat`.`a`.`b`.`t`.`branch_audit` WHERE `id` IN (1)"
    with pytest.raises(ConfigError, match="Trino cannot delete on a branch"):
        delete_statement("a.t", {"id": [1]}, "trino", "cat", branch="audit")
    with pytest.raises(ConfigError, match="nested namespace"):
        delete_statement("a.b.t", {"id": [1]}, "trino", "cat")
    assert compaction_statement("ns.t", "spark", "cat") == (
        "CALL `cat`.system.rewrite_data_files(table => 'ns.t', options => map('delete-file-threshold', '1'))")
    assert compaction_statement("ns.t", "trino", "cat") == 'ALTER TABLE "cat"."ns"."t" EXECUTE optimize'
    sqlglot.parse_one(compaction_statement("ns.t", "trino", "cat"), read="trino")
    assert count_statement("ns.t", {"id": [1]}, "trino", "cat").startswith('SELECT count(*) AS subject_rows FROM')


def test_both_dialects_delete_the_same_rows_when_transpiled_to_duckdb():
    import duckdb

    rows = accounts()
    match = {"account_id": [87], "email": [" O'Brien.Zoë@Exämple.org", "o'brien.zoë@exämple.org"]}
    left = {}
    for dialect in ("spark", "trino"):
        statement = delete_statement("ns.accounts", match, dialect, "lake")  # type: ignore[arg-type]
        con = duckdb.connect()
        con.execute("ATTACH ':memory:' AS lake")
        con.execute("CREATE SCHEMA lake.ns")
        con.register("source", rows)
        con.execute("CREATE TABLE lake.ns.accounts AS SELECT * FROM source")
        con.execute(sqlglot.transpile(statement, read=dialect, write="duckdb")[0])
        left[dialect] = sorted(r[0] for r in con.execute("SELECT display_name FROM lake.ns.accounts").fetchall())
    assert left["spark"] == left["trino"] == sorted(["Ann", TRICKY[1], TRICKY[2], TRICKY[3]])


# --- plan, external step, adopt --------------------------------------------------------------------


def test_plan_writes_private_statements_and_records_no_identifier(catalog, trail, tmp_path):
    plan = _plan(catalog, trail, tmp_path)
    (planned,) = plan.tables
    assert (planned.table, planned.rows, planned.branches) == (TABLE, 3, ("main",))
    path = Path(planned.statement_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "brien.zoë@exämple.org" in path.read_text()  # the statement needs the values...
    public = json.dumps(plan.to_dict(), ensure_ascii=False)
    events = json.dumps([e.event for e in trail.store.read()], ensure_ascii=False)
    for text in (public, events):  # ...the plan and the trail never hold them
        assert "brien" not in text.lower() and " 87" not in text and "[87" not in text
    assert [e.event["event"] for e in trail.store.read()] == ["received", "discovered"]
    assert trail.store.read()[-1].event["details"]["handoff"]["tables"][0]["base_snapshot_id"] == planned.base_snapshot_id


def test_the_certificate_is_signed_only_after_the_external_delete_removed_every_row(catalog, trail, tmp_path):
    plan = _plan(catalog, trail, tmp_path)
    (planned,) = plan.to_dict()["tables"]
    done = run_standin_delete(catalog, TABLE, read_statement(planned, HASH_KEY))
    assert (done.rows_before, done.rows_deleted) == (7, 3)

    summary = _finish(catalog, trail, tmp_path, plan)
    assert sorted(r["display_name"] for r in _rows(catalog)) == sorted(["Ann", TRICKY[1], TRICKY[2], TRICKY[3]])
    certificate = json.loads(Path(summary["certificate_path"]).read_text())
    assert verify_certificate(certificate, KEY.verifying_key()).valid
    table = certificate["tables"][TABLE]
    # pyiceberg's overwrite commits a delete and an append: the delete is the erasure snapshot
    assert table["rows_deleted"] == 3 and table["engine"]["snapshots"][-1] == done.snapshot_id
    assert table["erasure_snapshot"] == table["engine"]["snapshots"][0]
    assert table["engine"]["name"] == "trino" and table["engine"]["named_in_snapshot"] == STANDIN_ENGINE
    assert certificate["verification"]["passed"] and certificate["verification"]["findings"] == []
    assert certificate["verification"]["discovery_rows"] == 0
    assert certificate["handoff"] == {"engine": "trino", "engine_catalog": "lake"}
    events = [e.event for e in trail.store.read()]
    assert [e["event"] for e in events] == ["received", "discovered", "deleted", "purged", "verified", "completed"]
    assert events[2]["details"]["engine"]["erasure_snapshot"] == table["erasure_snapshot"]
    assert verify(trail.store, HASH_KEY, anchors=[audit_anchor(certificate)]).valid


def test_no_external_delete_fails_and_signs_nothing(catalog, trail, tmp_path):
    plan = _plan(catalog, trail, tmp_path)
    with pytest.raises(ExternalDeleteMissingError, match="committed no delete"):
        _finish(catalog, trail, tmp_path, plan)
    assert not (tmp_path / "cert.json").exists()
    assert trail.store.read()[-1].event["event"] == "failed"
    assert len([r for r in _rows(catalog) if r["account_id"] == 87]) == 2  # nothing purged either


def test_a_delete_that_matched_nothing_commits_nothing_and_fails(catalog, trail, tmp_path):
    plan = _plan(catalog, trail, tmp_path)
    other = delete_statement(TABLE, {"account_id": [424242]}, "trino", "lake")
    assert run_standin_delete(catalog, TABLE, other).snapshot_id is None
    with pytest.raises(ExternalDeleteMissingError, match="committed no delete"):
        _finish(catalog, trail, tmp_path, plan)


def test_a_partial_external_delete_fails_with_the_rows_left(catalog, trail, tmp_path):
    plan = _plan(catalog, trail, tmp_path)
    # the engine ran only the id half of the statement: the anonymous row from the address stays
    partial = delete_statement(TABLE, {"account_id": [87]}, "trino", "lake")
    assert run_standin_delete(catalog, TABLE, partial).rows_deleted == 2
    with pytest.raises(ExternalDeleteMissingError, match="still holds 1 of the subject's rows") as raised:
        _finish(catalog, trail, tmp_path, plan)
    assert "brien" not in str(raised.value).lower()
    assert not (tmp_path / "cert.json").exists()
    failed = trail.store.read()[-1].event
    assert failed["event"] == "failed" and failed["details"]["error"] == "ExternalDeleteMissingError"


def test_a_changed_statement_file_is_refused(catalog, trail, tmp_path):
    (planned,) = _plan(catalog, trail, tmp_path).to_dict()["tables"]
    original = Path(planned["statement_path"]).read_text()
    assert read_statement(planned, HASH_KEY) == original
    # keyed: the plan's digest confirms no guessed statement without the trail key
    assert planned["statement_mac"] != hashlib.sha256(original.encode()).hexdigest()
    with pytest.raises(TerminalError, match="changed since it was planned"):
        read_statement(planned, b"another-key-of-32-bytes-0123456789")
    Path(planned["statement_path"]).write_text("DELETE FROM \"lake\".\"examples\".\"handoff_accounts\" WHERE 1=1\n")
    with pytest.raises(TerminalError, match="changed since it was planned"):
        read_statement(planned, HASH_KEY)


def test_spark_plan_and_unknown_engine(catalog, trail, tmp_path):
    plan = _plan(catalog, trail, tmp_path, engine="spark")
    text = Path(plan.tables[0].statement_path).read_text()
    assert text.startswith("DELETE FROM `lake`.`examples`.`handoff_accounts` WHERE ") and text.endswith(";\n")
    assert _parsed_values(text.rstrip(";\n"), "spark")["account_id"] == [87]
    assert Path(plan.statements_path).read_text() == text  # one table: the combined file is its file
    assert stat.S_IMODE(Path(plan.statements_path).stat().st_mode) == 0o600
    assert _plan(catalog, None, tmp_path, engine="trino").statements_path is None
    with pytest.raises(ConfigError, match="renders SQL for"):
        _plan(catalog, None, tmp_path, engine="presto")
    with pytest.raises(ConfigError, match="Trino-dialect"):
        run_standin_delete(catalog, TABLE, text)


def test_rows_left_on_another_branch_fail_and_trino_refuses_branches(catalog, trail, tmp_path):
    table = catalog.load().load_table(TABLE)
    table.manage_snapshots().create_branch(table.metadata.current_snapshot_id, "audit").commit()
    with pytest.raises(ConfigError, match="branch 'audit' holds the subject's rows, and Trino cannot"):
        _plan(catalog, None, tmp_path)
    plan = _plan(catalog, trail, tmp_path, engine="spark")
    assert plan.tables[0].branches == ("main", "audit")
    statements = Path(plan.tables[0].statement_path).read_text().split(";\n")
    assert sqlglot.parse_one(statements[1], read="spark").find(exp.Table).parts[-1].name == "branch_audit"
    # the engine deleted on main only
    main_only = delete_statement(TABLE, {"account_id": [87], "email": [" O'Brien.Zoë@Exämple.org", SUBJECT_EMAIL]},
                                 "trino", "lake")
    assert run_standin_delete(catalog, TABLE, main_only).rows_deleted == 3
    with pytest.raises(ExternalDeleteMissingError, match="branch 'audit' still holds 3 of the subject's rows"):
        _finish(catalog, trail, tmp_path, plan)
