"""Schema policy on real databases altered between runs: no policy drops a value, required columns
follow the source's NOT NULL / primary key, and a narrower source type is drift.

Each test loads a Postgres (or MariaDB) table into Iceberg, alters the source table, loads again under
a policy, and reads the Iceberg table back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dativo_provider.exceptions import SchemaDriftError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.iceberg.schema import POLICY_OUTCOMES
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ingest.result import IngestResult
from dativo_provider.sources import build_source

TABLE = "lake.people"


@pytest.fixture
def lake(tmp_path) -> CatalogConfig:
    return embedded_catalog(tmp_path / "lake")


@pytest.fixture
def people(pg, pg_schema) -> str:
    """``people(id bigint primary key, name text not null, note text)`` with two rows."""
    pg.execute(f'CREATE TABLE "{pg_schema}".people (id bigint PRIMARY KEY, name text NOT NULL, note text)')
    pg.execute(f"""INSERT INTO "{pg_schema}".people VALUES (1, 'ada', 'first'), (2, 'bob', NULL)""")
    return f"{pg_schema}.people"


def load(lake: CatalogConfig, config: Any, relation: str, kind: str = "postgres",
         **options: Any) -> IngestResult:
    source = build_source({"type": kind, "table": relation}, config)
    return run_ingest(source, lake, TABLE, WriteOptions(**options))


def back(lake: CatalogConfig) -> list[dict[str, Any]]:
    return sorted(lake.load().load_table(TABLE).scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def required(lake: CatalogConfig) -> dict[str, bool]:
    return {f.name: f.required for f in lake.load().load_table(TABLE).schema().fields}


def snapshots(lake: CatalogConfig) -> int:
    return len(lake.load().load_table(TABLE).snapshots())


# --- 9: warn never drops a value -------------------------------------------------------------------


@pytest.mark.postgres
def test_warn_refuses_an_added_column_instead_of_dropping_its_values(pg, people, postgres_config, lake):
    load(lake, postgres_config, people, schema_policy="warn")
    pg.execute(f'ALTER TABLE {_q(people)} ADD COLUMN score integer')
    pg.execute(f"INSERT INTO {_q(people)} VALUES (3, 'cy', NULL, 42)")

    with pytest.raises(SchemaDriftError) as refused:
        load(lake, postgres_config, people, schema_policy="warn")

    never_drops = "+ score int (new in source): policy warn never changes the table and never drops a value"
    assert never_drops in str(refused.value)
    assert [r["id"] for r in back(lake)] == [1, 2]
    assert "score" not in required(lake)


@pytest.mark.postgres
def test_warn_refuses_a_rename_in_replace_mode_and_the_old_values_stay(pg, people, postgres_config, lake):
    load(lake, postgres_config, people, mode="replace", schema_policy="warn")
    pg.execute(f"ALTER TABLE {_q(people)} RENAME COLUMN note TO remark")

    with pytest.raises(SchemaDriftError) as refused:
        load(lake, postgres_config, people, mode="replace", schema_policy="warn")

    assert "+ remark string (new in source)" in str(refused.value)
    assert "- note string (absent from source)" in str(refused.value)
    assert [(r["id"], r["note"]) for r in back(lake)] == [(1, "first"), (2, None)]


@pytest.mark.postgres
def test_evolve_follows_a_rename_in_replace_mode_keeping_every_value(pg, people, postgres_config, lake):
    load(lake, postgres_config, people, mode="replace")
    pg.execute(f"ALTER TABLE {_q(people)} RENAME COLUMN note TO remark")

    result = load(lake, postgres_config, people, mode="replace")

    rows = [(r["id"], r["note"], r["remark"]) for r in back(lake)]
    assert rows == [(1, None, "first"), (2, None, None)]
    assert result.schema_changes == ["+ remark string (new in source)"]


@pytest.mark.postgres
def test_warn_writes_what_fits_the_table_and_says_so(pg, people, postgres_config, lake):
    load(lake, postgres_config, people, schema_policy="warn")
    pg.execute(f"ALTER TABLE {_q(people)} DROP COLUMN note, ALTER COLUMN id TYPE integer")
    pg.execute(f"INSERT INTO {_q(people)} VALUES (3, 'cy')")

    result = load(lake, postgres_config, people, schema_policy="warn", mode="replace")

    assert back(lake) == [{"id": 1, "name": "ada", "note": None}, {"id": 2, "name": "bob", "note": None},
                          {"id": 3, "name": "cy", "note": None}]
    assert "~ id long <- int (narrower in source; the values fit long)" in result.warnings[0]
    assert "- note string (absent from source)" in result.warnings[0]
    assert str(lake.load().load_table(TABLE).schema().find_field("id").field_type) == "long"


# --- 10: required columns follow NOT NULL and the primary key ----------------------------------------


@pytest.mark.postgres
def test_not_null_and_primary_key_columns_are_required(people, postgres_config, lake):
    load(lake, postgres_config, people)

    assert required(lake) == {"id": True, "name": True, "note": False}
    assert back(lake) == [{"id": 1, "name": "ada", "note": "first"}, {"id": 2, "name": "bob", "note": None}]


@pytest.mark.postgres
def test_required_columns_false_creates_every_column_optional(people, postgres_config, lake):
    load(lake, postgres_config, people, required_columns=False)

    assert required(lake) == {"id": False, "name": False, "note": False}


@pytest.mark.postgres
def test_a_query_read_makes_optional_columns(people, postgres_config, lake):
    query = f"SELECT id, name FROM {_q(people)}"
    run_ingest(build_source({"type": "postgres", "query": query}, postgres_config), lake, TABLE)

    assert required(lake) == {"id": False, "name": False}


@pytest.mark.postgres
def test_a_dropped_not_null_goes_through_the_policy(pg, people, postgres_config, lake):
    load(lake, postgres_config, people)
    pg.execute(f"ALTER TABLE {_q(people)} ALTER COLUMN name DROP NOT NULL")
    pg.execute(f"INSERT INTO {_q(people)} VALUES (3, NULL, 'nameless')")

    relaxed = r"~ name string \(nullable in source, required in the table\)"
    for policy in ("strict", "warn"):
        with pytest.raises(SchemaDriftError, match=relaxed):
            load(lake, postgres_config, people, schema_policy=policy, mode="replace")
    assert [r["id"] for r in back(lake)] == [1, 2]

    result = load(lake, postgres_config, people, schema_policy="evolve", mode="replace")
    assert result.schema_changes == ["~ name string (nullable in source, required in the table)"]
    assert required(lake) == {"id": True, "name": False, "note": False}
    assert back(lake)[2] == {"id": 3, "name": None, "note": "nameless"}


@pytest.mark.postgres
def test_a_new_not_null_is_drift_for_strict_and_kept_optional_by_evolve(pg, people, postgres_config, lake):
    load(lake, postgres_config, people)
    pg.execute(f"UPDATE {_q(people)} SET note = 'second' WHERE id = 2")
    pg.execute(f"ALTER TABLE {_q(people)} ALTER COLUMN note SET NOT NULL")

    tightened = r"~ note string \(NOT NULL in source, optional in the table\)"
    with pytest.raises(SchemaDriftError, match=tightened):
        load(lake, postgres_config, people, schema_policy="strict", mode="replace")

    result = load(lake, postgres_config, people, mode="replace")
    assert required(lake)["note"] is False  # Iceberg cannot make a column that may hold nulls required
    assert "~ note string (NOT NULL in source, optional in the table)" in result.warnings[0]
    assert [r["note"] for r in back(lake)] == ["first", "second"]


@pytest.mark.postgres
def test_a_required_column_missing_from_the_source_fails_under_evolve(pg, people, postgres_config, lake):
    load(lake, postgres_config, people)
    pg.execute(f"ALTER TABLE {_q(people)} DROP COLUMN name")

    missing = r"- name string \(absent from source\): required in the table"
    with pytest.raises(SchemaDriftError, match=missing):
        load(lake, postgres_config, people)
    assert [r["name"] for r in back(lake)] == ["ada", "bob"]


@pytest.mark.postgres
def test_an_added_not_null_column_is_added_optional_under_evolve(pg, people, postgres_config, lake):
    load(lake, postgres_config, people)
    pg.execute(f"ALTER TABLE {_q(people)} ADD COLUMN score integer NOT NULL DEFAULT 7")

    result = load(lake, postgres_config, people, mode="replace")

    assert result.schema_changes == ["+ score int (new in source)"]
    assert required(lake)["score"] is False  # the table's older snapshots have no value for it
    assert [r["score"] for r in back(lake)] == [7, 7]


# --- 11: strict reports narrowing --------------------------------------------------------------------


@pytest.mark.postgres
def test_strict_refuses_a_narrower_source_type_with_the_diff(pg, people, postgres_config, lake):
    load(lake, postgres_config, people)
    pg.execute(f"ALTER TABLE {_q(people)} ALTER COLUMN id TYPE integer")
    pg.execute(f"INSERT INTO {_q(people)} VALUES (3, 'cy', NULL)")

    narrowed = r"~ id long <- int \(narrower in source; the values fit long\)"
    with pytest.raises(SchemaDriftError, match=narrowed):
        load(lake, postgres_config, people, schema_policy="strict", mode="replace")
    assert [r["id"] for r in back(lake)] == [1, 2]

    result = load(lake, postgres_config, people, schema_policy="evolve", mode="replace")
    assert result.schema_changes == []
    assert "~ id long <- int (narrower in source; the values fit long)" in result.warnings[0]
    assert [r["id"] for r in back(lake)] == [1, 2, 3]


@pytest.mark.postgres
def test_strict_refuses_a_narrower_decimal_and_double(pg, pg_schema, postgres_config, lake):
    relation = f"{pg_schema}.prices"
    pg.execute(f"CREATE TABLE {_q(relation)} (id int PRIMARY KEY, amount numeric(18, 2), rate float8)")
    pg.execute(f"INSERT INTO {_q(relation)} VALUES (1, 12.34, 0.5)")
    load(lake, postgres_config, relation)
    pg.execute(f"ALTER TABLE {_q(relation)} ALTER COLUMN amount TYPE numeric(10, 2), "
               "ALTER COLUMN rate TYPE real")

    with pytest.raises(SchemaDriftError) as refused:
        load(lake, postgres_config, relation, schema_policy="strict")
    assert "~ amount decimal(18, 2) <- decimal(10, 2) (narrower in source" in str(refused.value)
    assert "~ rate double <- float (narrower in source" in str(refused.value)


# --- MariaDB: its source reports NOT NULL through the result's column flags ---------------------------


@pytest.mark.mysql
def test_mariadb_not_null_columns_are_required_and_dropping_it_is_drift(my, my_db, lake):
    with my.cursor() as cur:
        cur.execute("CREATE TABLE people (id bigint PRIMARY KEY, name varchar(20) NOT NULL, note text)")
        cur.execute("INSERT INTO people VALUES (1, 'ada', 'first'), (2, 'bob', NULL)")
    load(lake, my_db, "people", kind="mysql")
    assert required(lake) == {"id": True, "name": True, "note": False}

    with my.cursor() as cur:
        cur.execute("ALTER TABLE people MODIFY name varchar(20) NULL, MODIFY id int")
        cur.execute("INSERT INTO people VALUES (3, NULL, 'nameless')")
    with pytest.raises(SchemaDriftError) as refused:
        load(lake, my_db, "people", kind="mysql", schema_policy="strict", mode="replace")
    assert "~ name string (nullable in source, required in the table)" in str(refused.value)
    assert "~ id long <- int (narrower in source; the values fit long)" in str(refused.value)

    load(lake, my_db, "people", kind="mysql", mode="replace")
    assert required(lake) == {"id": True, "name": False, "note": False}
    assert back(lake)[2] == {"id": 3, "name": None, "note": "nameless"}


@pytest.mark.mysql
def test_mariadb_query_reads_make_optional_columns(my, my_db, lake):
    with my.cursor() as cur:
        cur.execute("CREATE TABLE people (id bigint PRIMARY KEY, name varchar(20) NOT NULL)")
        cur.execute("INSERT INTO people VALUES (1, 'ada')")
    run_ingest(build_source({"type": "mysql", "query": "SELECT id, name FROM people"}, my_db), lake, TABLE)

    assert required(lake) == {"id": False, "name": False}


# --- the docs' table says what the code does -------------------------------------------------------

#: The docs table's rows (by their first words) and the change kind each describes.
DOC_ROWS = {"**added**": "added", "**removed**": "missing", "**wider**": "widened",
            "**narrower**": "narrowed", "**nullable** now": "relaxed", "**NOT NULL** now": "tightened",
            "incompatible": "incompatible"}


def test_the_docs_policy_table_fails_exactly_where_the_code_does():
    page = (Path(__file__).resolve().parents[2] / "docs" / "ingestion.md").read_text(encoding="utf-8")
    header = "| change in the source (vs the table) | `strict` | `evolve` (default) | `warn` |"
    rows = page.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    documented = {}
    for row in rows:
        label, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        kind = next((k for prefix, k in DOC_ROWS.items() if label.startswith(prefix)), None)
        if kind is not None:
            cells_by_policy = zip(POLICY_OUTCOMES, cells)
            documented[kind] = {policy: cell.startswith("fail") for policy, cell in cells_by_policy}

    in_code = {kind: {policy: outcomes[kind] == "fail" for policy, outcomes in POLICY_OUTCOMES.items()}
               for kind in DOC_ROWS.values()}
    assert documented == in_code


def _q(relation: str) -> str:
    return ".".join(f'"{part}"' for part in relation.split("."))
