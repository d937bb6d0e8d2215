"""Every example DAG parses, and runs end to end with ``dag.test()`` against the real servers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.airflow.conftest import EXAMPLE_DAGS
from tests.airflow.helpers import dagbag, openlineage_complete, read_table, return_values, rows_by, run_dag
from tests.airflow.saas_fixtures import at, hubspot_api, millis, stripe_api  # noqa: F401 - fixtures
from tests.docs.markdown_checks import named_connection_types, registered_connection_types, rest_markup

pytestmark = pytest.mark.airflow

EXAMPLE_DAG_IDS = sorted(path.stem for path in EXAMPLE_DAGS.glob("example_*.py"))
REPO = EXAMPLE_DAGS.parent

# Runs of one source must not overlap: an incremental source's second run would read what the first is
# still committing, and the loser of the first commit race would fail on "Table already exists". The
# DSR DAG queues requests, since two erasures would rewrite the same tables. Maintenance of one table
# races its own commits. A new example DAG must be added here, with its reason.
MAX_ACTIVE_RUNS = {
    "example_contract_quarantine": 1,  # incremental files; a release reads the quarantine as left
    "example_drift": 1,  # incremental files feed the table the drift check reads
    "example_erasure_handoff": 1,  # erasures rewrite the same table
    "example_dsr": 1,  # erasures rewrite the same tables
    "example_feature_transform": 1,  # incremental files feed the feature table
    "example_feast_materialize": 1,  # incremental files; the online store keeps one position
    "example_files_to_iceberg": 1,  # incremental files
    "example_google_drive_to_iceberg": 1,  # incremental Drive folder
    "example_google_sheets_to_iceberg": 1,  # a full refresh: two would race for one commit
    "example_hubspot_to_iceberg": 1,  # incremental by lastmodifieddate
    "example_iceberg_maintenance": 1,  # compaction and expiry of the same tables
    "example_markdown_kv_to_iceberg": 1,  # incremental files
    "example_ml_pipeline": 1,  # incremental files feed the features and the training set
    "example_mysql_to_iceberg": 1,  # incremental cursor
    "example_openmetadata_sync": 1,  # two syncs of one table would race to create it
    "example_postgres_to_iceberg": 1,  # incremental cursor
    "example_split_ingest": 1,  # incremental cursor; parts of one run share one frozen window
    "example_sagemaker_export": 1,  # incremental files feed the exported feature table
    "example_stripe_to_iceberg": 1,  # incremental by events
    "example_training_set": 1,  # incremental files feed the training set
    "example_vertex_feature_export": 1,  # incremental files feed the exported feature table
}
DOC_SECTIONS = ("### What it shows", "### What it needs", "### How to run it")


def _day(day: int) -> datetime:
    """Noon on a January 2024 day. The run reads rows up to its data interval end: that midnight on
    Airflow 2 (CronDataIntervalTimetable), noon itself on Airflow 3 (CronTriggerTimetable); the
    rows below fall on the same side of both."""
    return datetime(2024, 1, day, 12, tzinfo=UTC)


def test_every_example_dag_imports_without_errors(airflow_db):
    bag = dagbag()
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == EXAMPLE_DAG_IDS
    assert len(EXAMPLE_DAG_IDS) >= 3


def test_every_example_dag_has_markdown_docs_and_no_overlapping_runs(airflow_db):
    dags = dagbag().dags
    assert sorted(MAX_ACTIVE_RUNS) == EXAMPLE_DAG_IDS, "add the new example DAG to MAX_ACTIVE_RUNS"
    known_types = registered_connection_types()
    for dag_id in EXAMPLE_DAG_IDS:
        dag = dags[dag_id]
        doc = dag.doc_md or ""
        assert [s for s in DOC_SECTIONS if s not in doc] == [], f"{dag_id}: doc_md lacks these sections"
        assert rest_markup(doc) == [], f"{dag_id}: doc_md is Markdown, not reST"
        assert named_connection_types(doc) <= known_types, f"{dag_id}: doc_md names an unknown connection type"
        for page in re.findall(r"docs/[\w./-]+\.md", doc):
            assert (REPO / page).is_file(), f"{dag_id}: doc_md points at {page}, which does not exist"
        assert dag.max_active_runs == MAX_ACTIVE_RUNS[dag_id], dag_id


def test_the_markdown_check_finds_rest():
    rest = "Run it::\n\n    airflow dags test x\n\n.. note:: careful\n\nThe ``table`` and :param x: y"
    assert len(rest_markup(rest)) == 4
    assert rest_markup("`key:: value` lines and `code`, a list:\n\n- one") == []


@pytest.fixture
def pg_source(postgres_config, postgres_conn):
    """An empty Postgres source table (the DAG's seed task creates it)."""
    import psycopg

    with psycopg.connect(host=postgres_config.host, port=postgres_config.port, user=postgres_config.user,
                         dbname=postgres_config.database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dativo_example_orders")
        yield conn


@pytest.fixture
def mysql_source(mysql_config, mysql_conn):
    """An empty MySQL source table (the DAG's seed task creates it)."""
    import pymysql

    conn = pymysql.connect(host=mysql_config.host, port=mysql_config.port, user=mysql_config.user,
                           password=mysql_config.password or "", database=mysql_config.database, autocommit=True)
    with conn:
        conn.cursor().execute("DROP TABLE IF EXISTS dativo_example_orders")
        yield conn


def test_postgres_example_loads_increments_and_merges(airflow_db, iceberg_default, pg_source, postgres_config):
    run = run_dag("example_postgres_to_iceberg", _day(2))
    (summary,) = return_values(run, "ingest_orders")
    assert (summary["rows_read"], summary["rows_written"], summary["mode"]) == (3, 3, "merge")
    _assert_lineage(postgres_config)

    pg_source.execute("UPDATE dativo_example_orders SET status = 'paid', updated_at = '2024-01-02 10:00+00' WHERE id = 2")
    pg_source.execute("INSERT INTO dativo_example_orders VALUES (4, 'dan', 40, 'new', '2024-01-02 09:00+00'),"
                      " (5, 'erin', 50, 'new', '2024-01-03 18:00+00')")
    _assert_increments("example_postgres_to_iceberg", "examples.pg_orders")


def _assert_lineage(postgres_config) -> None:
    """The OpenLineage listener sent our facets: the source table in, the Iceberg table and schema out."""
    event = openlineage_complete("example_postgres_to_iceberg.ingest_orders")
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        (f"postgres://{postgres_config.host}:{postgres_config.port}", "test.public.dativo_example_orders")
    ]
    (output,) = event["outputs"]
    assert output["facets"]["symlinks"]["identifiers"][0]["name"] == "examples.pg_orders"
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == [
        "id", "customer", "amount", "status", "updated_at"
    ]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3


def test_mysql_example_loads_increments_and_merges(airflow_db, iceberg_default, mysql_source):
    run_dag("example_mysql_to_iceberg", _day(2))
    cursor = mysql_source.cursor()
    cursor.execute("UPDATE dativo_example_orders SET status = 'paid', updated_at = '2024-01-02 10:00' WHERE id = 2")
    cursor.execute("INSERT INTO dativo_example_orders VALUES (4, 'dan', 40, 'new', '2024-01-02 09:00'),"
                   " (5, 'erin', 50, 'new', '2024-01-03 18:00')")
    _assert_increments("example_mysql_to_iceberg", "examples.mysql_orders")


def _assert_increments(dag_id: str, table: str) -> None:
    """Day 3 merges the update and row 4, not row 5 (after its interval); a rerun changes nothing."""
    run = run_dag(dag_id, _day(3))
    (summary,) = return_values(run, "ingest_orders")
    assert (summary["rows_read"], summary["rows_written"]) == (2, 2)
    _assert_orders(table, ids=[1, 2, 3, 4], paid=[2])

    (rerun,) = return_values(run_dag(dag_id, _day(3)), "ingest_orders")
    assert rerun["rows_written"] == 0
    _assert_orders(table, ids=[1, 2, 3, 4], paid=[2])

    run_dag(dag_id, _day(4))
    _assert_orders(table, ids=[1, 2, 3, 4, 5], paid=[2])


def _assert_orders(table: str, ids: list[int], paid: list[int]) -> None:
    rows = rows_by(read_table(table), "id")
    assert sorted(rows) == ids, f"{table}: ids {sorted(rows)} (duplicates or gaps?)"
    assert len(read_table(table)) == len(ids)
    assert sorted(i for i, row in rows.items() if row["status"] == "paid") == paid
    assert rows[1]["customer"] == "alice" and rows[1]["amount"] == Decimal("10.50")


def test_files_example_loads_sample_data_once_with_mapped_tasks(airflow_db, iceberg_default):
    expected = {"examples.orders": 2100, "examples.events": 1500, "examples.products": 120}
    run = run_dag("example_files_to_iceberg", _day(2))
    (customers,) = return_values(run, "ingest_customers")
    mapped = return_values(run, "ingest_table")
    assert customers["rows_written"] == 1000
    assert {summary["table"]: summary["rows_written"] for summary in mapped} == expected
    assert len(read_table("examples.customers")) == 1000
    for table, count in expected.items():
        assert len(read_table(table)) == count, table
    orders = read_table("examples.orders")
    assert min(orders.column("order_id").to_pylist()) == 2024010001

    rerun = run_dag("example_files_to_iceberg", _day(3))
    assert [summary["rows_written"] for summary in return_values(rerun, "ingest_table")] == [0, 0, 0]
    assert {table: len(read_table(table)) for table in expected} == expected


def test_markdown_kv_example_loads_the_sample_docs_in_three_layouts_once(airflow_db, iceberg_default):
    expected = {"ingest_doc_entries": 51, "ingest_documents": 5, "ingest_doc_text": 5}
    run = run_dag("example_markdown_kv_to_iceberg", _day(2))
    assert {task: return_values(run, task)[0]["rows_written"] for task in expected} == expected
    documents = rows_by(read_table("examples.documents"), "doc_id")
    assert documents["policies/refunds.md"]["title"] == "Refund policy"
    entries = read_table("examples.doc_entries").to_pylist()
    (hours,) = [row for row in entries if row["key"] == "opening_hours"]
    assert (hours["doc_id"], hours["section"]) == ("stores/berlin-mitte.md", "Berlin Mitte")
    assert hours["value_json"] == hours["value"]

    rerun = run_dag("example_markdown_kv_to_iceberg", _day(3))
    assert [return_values(rerun, task)[0]["rows_written"] for task in expected] == [0, 0, 0]
    assert len(read_table("examples.doc_entries")) == 51


def test_stripe_example_loads_charges_by_day_once(airflow_db, iceberg_default, stripe_api):
    run = run_dag("example_stripe_to_iceberg", _day(2))
    (charges,) = return_values(run, "ingest_charges")
    (customers,) = return_values(run, "ingest_customers")
    assert (charges["rows_written"], customers["rows_written"]) == (3, 2)
    assert charges["inputs"][0]["name"] == "charges"
    assert [r.headers["authorization"] for r in stripe_api.requests][:1] == [f"Bearer {stripe_api.api_key}"]

    run = run_dag("example_stripe_to_iceberg", _day(3))
    assert return_values(run, "ingest_charges")[0]["rows_written"] == 1
    rerun = run_dag("example_stripe_to_iceberg", _day(3))
    assert [return_values(rerun, t)[0]["rows_written"] for t in ("ingest_charges", "ingest_customers")] == [0, 0]
    run_dag("example_stripe_to_iceberg", _day(4))
    table = rows_by(read_table("examples.stripe_charges"), "id")
    assert sorted(table) == [f"ch_{n:014d}" for n in range(1, 6)] and len(read_table("examples.stripe_charges")) == 5
    assert table["ch_00000000000001"]["amount"] == 1001 and table["ch_00000000000001"]["currency"] == "eur"


def test_hubspot_example_merges_updated_deals_once(airflow_db, iceberg_default, hubspot_api):
    run = run_dag("example_hubspot_to_iceberg", _day(2))
    assert [return_values(run, t)[0]["rows_written"] for t in ("ingest_deals", "ingest_contacts")] == [3, 2]
    deals = rows_by(read_table("examples.hubspot_deals"), "id")
    assert deals["1"]["associations_companies"] == ["101", "102"] and deals["1"]["amount"] == Decimal("100.5")

    hubspot_api.update("deals", 2, millis(at(2, 20)), dealstage="closedwon")
    hubspot_api.put("deals", 4, {"dealname": "Deal 4", "amount": "4", "dealstage": "qualified"}, created=millis(at(2, 18)))
    run = run_dag("example_hubspot_to_iceberg", _day(3))
    assert return_values(run, "ingest_deals")[0]["rows_written"] == 2
    rerun = run_dag("example_hubspot_to_iceberg", _day(3))
    assert return_values(rerun, "ingest_deals")[0]["rows_written"] == 0
    deals = rows_by(read_table("examples.hubspot_deals"), "id")
    assert sorted(deals) == ["1", "2", "3", "4"] and len(read_table("examples.hubspot_deals")) == 4
    assert deals["2"]["dealstage"] == "closedwon" and deals["3"]["dealstage"] == "appointmentscheduled"
