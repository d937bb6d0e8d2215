"""The Google example DAGs run end to end with ``dag.test()`` against the loopback Google double, and
the service-account key and access tokens never reach task logs, XCom or files.

(Kept apart from ``test_example_dags.py`` only because that file was being edited concurrently.)
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow.conftest import AIRFLOW_HOME, connection_env
from tests.airflow.helpers import dagbag, read_table, return_values, rows_by, run_dag
from tests.doubles.google_api import make_service_account_key
from tests.doubles.google_fixtures import (  # noqa: F401 - fixtures
    CLIENT_EMAIL,
    _key_pair,
    google,
    key_marker,
    service_account_info,
)

pytestmark = pytest.mark.airflow

DRIVE_DAG, SHEETS_DAG = "example_google_drive_to_iceberg", "example_google_sheets_to_iceberg"
FOLDER_ID, SPREADSHEET_ID = "1DativoExampleDriveFolder", "1DativoExampleSpreadsheet"
HEADER = "order_id,customer,amount,ordered_at\n"


def _day(day: int) -> datetime:
    """Noon on a January 2024 day (see ``test_example_dags._day``: files below avoid the hours where
    Airflow 2's and 3's data interval ends differ)."""
    return datetime(2024, 1, day, 12, tzinfo=UTC)


def _connect(monkeypatch: pytest.MonkeyPatch, google, key: dict) -> None:
    monkeypatch.setenv(*connection_env(
        "google_cloud_default", conn_type="dativo_google", password=json.dumps(key),
        extra={"drive_url": google.url, "sheets_url": google.url},
    ))


@pytest.fixture
def google_example(google, service_account_info, monkeypatch):
    """The double seeded with what the example DAGs read, and ``google_cloud_default`` pointing at it."""
    folder = google.add_folder("exports", folder_id=FOLDER_ID)
    sub = google.add_folder("2024", folder)
    google.add_file("orders_1.csv", folder, (HEADER + "1,ada,10.50,2024-01-01T09:00:00Z\n"
                                             "2,bob,20.00,2024-01-01T09:30:00Z\n").encode(), _at(1, 10))
    google.add_file("orders_2.csv", sub, (HEADER + "3,cy,30.25,2024-01-01T10:00:00Z\n").encode(), _at(1, 11))
    google.add_file("readme.csv", folder, b"not,an,order\n", _at(1, 11))
    book = google.add_spreadsheet(SPREADSHEET_ID, "Stock", time_zone="Europe/Berlin")
    book.put_sheet("Stock", [["warehouse", "sku", "on_hand", "unit_price", "counted_on", "active"],
                             ["Berlin", "A-1", 10, 2.5, date(2024, 1, 1), True],
                             [None, "A-2", 0, 3, date(2024, 1, 1), False]], merges=[(1, 3, 0, 1)])
    _connect(monkeypatch, google, service_account_info)
    return google


def _at(day: int, hour: int) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def test_drive_example_loads_each_file_version_once(airflow_db, iceberg_default, google_example):
    (summary,) = return_values(run_dag(DRIVE_DAG, _day(2)), "ingest_orders")
    assert (summary["rows_written"], summary["source_details"]["files_read"]) == (3, 2)
    assert sorted(rows_by(read_table("examples.drive_orders"), "order_id")) == [1, 2, 3]

    google_example.add_file("orders_3.csv", FOLDER_ID, (HEADER + "4,dee,5.00,2024-01-02T17:00:00Z\n").encode(),
                            _at(2, 18))
    (second,) = return_values(run_dag(DRIVE_DAG, _day(3)), "ingest_orders")
    (rerun,) = return_values(run_dag(DRIVE_DAG, _day(3)), "ingest_orders")
    assert (second["rows_written"], rerun["rows_written"]) == (1, 0)
    orders = rows_by(read_table("examples.drive_orders"), "order_id")
    assert sorted(orders) == [1, 2, 3, 4] and str(orders[3]["amount"]) == "30.25"


def test_sheets_example_replaces_the_table_with_typed_rows(airflow_db, iceberg_default, google_example):
    (summary,) = return_values(run_dag(SHEETS_DAG, _day(2)), "ingest_stock")
    assert (summary["rows_written"], summary["mode"]) == (2, "replace")
    stock = rows_by(read_table("examples.sheet_stock"), "sku")
    assert stock["A-2"]["warehouse"] == "Berlin", "the merged cell was filled"
    assert (str(stock["A-1"]["unit_price"]), stock["A-2"]["active"], stock["A-1"]["counted_on"]) == (
        "2.50", False, date(2024, 1, 1))

    google_example.spreadsheets[SPREADSHEET_ID].put_sheet(
        "Stock", [["warehouse", "sku", "on_hand", "unit_price", "counted_on", "active"],
                  ["Paris", "B-1", 4, 9.99, date(2024, 1, 2), True]])
    run_dag(SHEETS_DAG, _day(3))
    assert list(rows_by(read_table("examples.sheet_stock"), "sku")) == ["B-1"]


def _run_failing(dag_id: str, logical_date: datetime) -> str:
    dag = dagbag().get_dag(dag_id)
    run = dag.test(logical_date=logical_date) if AIRFLOW_V_3_0_PLUS else dag.test(execution_date=logical_date)
    return str(run.state)


def _files_holding(root: Path, needle: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def test_the_key_and_tokens_stay_out_of_logs_xcom_and_files(
    airflow_db, iceberg_default, dativo_home, google_example, service_account_info, monkeypatch, capfd, caplog
):
    caplog.set_level("DEBUG")
    wrong_key, _ = make_service_account_key(f"{google_example.url}/token", CLIENT_EMAIL)
    _connect(monkeypatch, google_example, wrong_key)
    assert _run_failing(DRIVE_DAG, _day(2)) == "failed"
    failed_output = capfd.readouterr()
    assert "invalid_grant" in failed_output.out + failed_output.err + caplog.text, "the failure must be explained"

    _connect(monkeypatch, google_example, service_account_info)
    (summary,) = return_values(run_dag(DRIVE_DAG, _day(2)), "ingest_orders")
    assert summary["rows_written"] == 3, "the run must really have read through the connection"
    passed_output = capfd.readouterr()

    assertions = [r.body["assertion"] for r in google_example.requests_to("/token")]
    secrets = [key_marker(service_account_info), key_marker(wrong_key), *google_example.issued, *assertions]
    logs = failed_output.out + failed_output.err + passed_output.out + passed_output.err + caplog.text
    for secret in secrets:
        assert secret not in logs, "a Google secret in task logs"
        assert secret not in json.dumps(summary, default=str), "a Google secret in XCom"
        assert _files_holding(AIRFLOW_HOME, secret) == [], "a Google secret in Airflow's files"
        assert _files_holding(dativo_home, secret) == [], "a Google secret in the warehouse"
