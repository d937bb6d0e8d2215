"""Each failure reaches Airflow as one clear message of the right class: terminal (AirflowFailException,
no retry) or transient (AirflowException, retried), with a short traceback instead of a chain.

Runs IcebergIngestOperator.execute against the real PostgreSQL server and the embedded catalog.
"""

from __future__ import annotations

import traceback

import pytest

from dativo_provider.compat import AirflowException, AirflowFailException
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.ingest import IcebergIngestOperator
from tests.airflow.conftest import connection_env

#: Frames from the test through Airflow's execute wrapper into airflow_errors, and the message: about
#: 13 lines. A chained traceback (what failures printed before) is 20 to 60.
SHORT_TRACEBACK = 16


def _fail(source: dict) -> tuple[AirflowException, str]:
    """Run the operator, which must fail; the exception and the traceback the task log would print."""
    operator = IcebergIngestOperator(task_id="load", source=source, table="tests.events")
    with pytest.raises(AirflowException) as caught:
        operator.execute({"run_id": "manual__1"})
    printed = "".join(traceback.format_exception(caught.value))
    return caught.value, printed


def _assert_short(printed: str, message: str) -> None:
    assert "The above exception was the direct cause" not in printed
    assert "During handling of the above exception" not in printed
    assert printed.rstrip().endswith(message), printed
    assert len(printed.splitlines()) <= SHORT_TRACEBACK, printed


def _table_exists(table: str) -> bool:
    return IcebergHook("iceberg_default").get_conn().table_exists(table)


def test_a_bc_date_is_terminal_names_the_column_and_leaves_no_table(iceberg_default, postgres_conn, pg, pg_schema):
    pg.execute(f'CREATE TABLE "{pg_schema}".events (id int, happened date)')
    pg.execute(f"INSERT INTO \"{pg_schema}\".events VALUES (1, '2020-01-01'), (2, date '0044-03-15 BC')")
    error, printed = _fail({"type": "postgres", "conn_id": postgres_conn, "table": f"{pg_schema}.events"})
    assert isinstance(error, AirflowFailException)
    assert str(error).startswith(
        "SourceError: tests.events: column 'happened' holds a date before year 1 (BC) in row 2 of this run's rows."
    )
    assert "CAST(happened AS text) AS happened" in str(error)
    _assert_short(printed, "to keep the value as text")
    assert not _table_exists("tests.events")


def test_an_invalid_sslmode_is_terminal_and_lists_the_valid_values(iceberg_default, postgres_config, monkeypatch):
    monkeypatch.setenv(*connection_env(
        "pg_bad_ssl", conn_type="postgres", host=postgres_config.host, port=postgres_config.port,
        login=postgres_config.user, schema=postgres_config.database, extra={"sslmode": "bogus"},
    ))
    error, printed = _fail({"type": "postgres", "conn_id": "pg_bad_ssl", "table": "public.events"})
    message = ("ConfigError: postgres connection option 'sslmode' is 'bogus'; valid values: disable, allow, "
               "prefer, require, verify-ca, verify-full (set it in the connection's extra)")
    assert isinstance(error, AirflowFailException) and str(error) == message
    _assert_short(printed, message)


def test_an_unknown_conn_id_is_terminal_and_named(iceberg_default):
    error, printed = _fail({"type": "postgres", "conn_id": "dativo_no_such_conn", "table": "public.events"})
    assert isinstance(error, AirflowFailException)
    assert "`dativo_no_such_conn` isn't defined" in str(error)
    assert str(error).endswith("or fix the id; a retry would fail the same way")
    _assert_short(printed, "a retry would fail the same way")


def test_a_table_without_columns_is_terminal(iceberg_default, postgres_conn, pg, pg_schema):
    pg.execute(f'CREATE TABLE "{pg_schema}".events ()')
    error, printed = _fail({"type": "postgres", "conn_id": postgres_conn, "table": f"{pg_schema}.events"})
    assert isinstance(error, AirflowFailException)
    assert str(error).startswith(f"SourceError: postgres://127.0.0.1:5432/test/{pg_schema}.events has no columns, "
                                 "so there is nothing to load into tests.events")
    _assert_short(printed, "(or list them in the source's 'columns')")
    assert not _table_exists("tests.events")


def test_an_unreachable_server_is_transient(iceberg_default, postgres_config, monkeypatch):
    monkeypatch.setenv(*connection_env(
        "pg_down", conn_type="postgres", host="127.0.0.1", port=1, login=postgres_config.user,
        schema=postgres_config.database, extra={"connect_timeout": "2"},
    ))
    error, printed = _fail({"type": "postgres", "conn_id": "pg_down", "table": "public.events"})
    assert not isinstance(error, AirflowFailException)
    assert str(error).startswith(
        f"TransientError (will retry): cannot connect to postgres://127.0.0.1:1/{postgres_config.database} as user "
        f"{postgres_config.user!r}"
    )
    _assert_short(printed, str(error).splitlines()[-1])
