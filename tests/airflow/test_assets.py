"""Table assets: URIs named by the catalog, Airflow's normalisation of them, and the events a run emits.

The DAGs in ``asset_dags/`` run with ``dag.test()`` (Airflow 3.x and 2.11); events are read back from the
metadata database (AssetEvent / DatasetEvent rows).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import urllib.parse
from datetime import UTC, datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo_provider.assets import sanitize_uri, table_uri
from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, Asset, AssetAlias
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.iceberg.catalog import CatalogConfig
from tests.airflow.conftest import connection_env

ASSET_DAGS = Path(__file__).parent / "asset_dags"
ROWS = 20  # ten batches of two rows (the DAGs' batch_rows)


# --- URIs -------------------------------------------------------------------------------------------

def _sanitized(uri: str) -> str:
    return urllib.parse.urlunsplit(sanitize_uri(urllib.parse.urlsplit(uri)))


@pytest.mark.parametrize(("given", "normalised"), [
    ("iceberg://Polaris.Example.COM:443/api/catalog/lake/sales/orders",
     "iceberg://polaris.example.com/api/catalog/lake/sales/orders"),
    ("iceberg://cat.example.com:80/lake/sales/orders", "iceberg://cat.example.com/lake/sales/orders"),
    ("iceberg://pg:5432/analytics/dativo/sales/orders", "iceberg://pg:5432/analytics/dativo/sales/orders"),
    ("iceberg://user@pg:5432/db/dativo/sales/orders", "iceberg://pg:5432/db/dativo/sales/orders"),
    ("iceberg://h:8181/my.wh/a.b%2ec/t%7E1?x=1#frag", "iceberg://h:8181/my.wh/a.b%2Ec/t~1"),
    ("iceberg://h/lake/raw/kunden%c3%bcberblick", "iceberg://h/lake/raw/kunden%C3%BCberblick"),
])
def test_sanitize_normalises_host_ports_and_quoting(given, normalised):
    assert _sanitized(given) == normalised
    assert _sanitized(normalised) == normalised


@pytest.mark.parametrize(("given", "message"), [
    ("iceberg://iceberg_default/sales/orders", "old form"),
    ("iceberg://host/lake//orders", "no empty path segment"),
    ("iceberg:///lake/sales/orders", "names the catalog's server"),
])
def test_sanitize_rejects_uris_that_cannot_name_a_table(given, message):
    with pytest.raises(ValueError, match=message):
        sanitize_uri(urllib.parse.urlsplit(given))


def test_airflow_applies_the_registered_normalisation():
    asset = Asset("iceberg://Cat.Example.com:443/lake/sales/orders")
    assert asset.uri == "iceberg://cat.example.com/lake/sales/orders"
    if AIRFLOW_V_3_0_PLUS:  # Airflow 2.11 only warns about a non-compliant URI
        with pytest.raises(ValueError, match="old form"):
            Asset("iceberg://iceberg_default/sales/orders")


@pytest.mark.parametrize(("properties", "name", "table", "uri"), [
    ({"type": "rest", "uri": "https://Polaris.example.com/api/catalog", "warehouse": "lake", "token": "t"},
     "x", "sales.orders", "iceberg://polaris.example.com/api/catalog/lake/sales/orders"),
    ({"type": "rest", "uri": "http://127.0.0.1:8181"}, "x", "sales.orders",
     "iceberg://127.0.0.1:8181/-/sales/orders"),
    ({"type": "rest", "uri": "http://h:8181", "warehouse": "arn:aws:s3tables:eu-west-1:1:bucket/lake"}, "x",
     "a.b.t", "iceberg://h:8181/arn%3Aaws%3As3tables%3Aeu-west-1%3A1%3Abucket%2Flake/a.b/t"),
    ({"type": "sql", "uri": "postgresql+psycopg://u:secret@PG.internal/analytics"}, "dativo", "sales.orders",
     "iceberg://pg.internal:5432/analytics/dativo/sales/orders"),
    ({"type": "sql", "uri": "sqlite:////data/catalog.db"}, "dativo", "raw.kundenüberblick",
     "iceberg://localhost/data/catalog.db/dativo/raw/kunden%C3%BCberblick"),
    ({"type": "glue", "glue.region": "eu-west-1", "glue.id": "123456789012"}, "x", "Sales.Orders",
     "iceberg://glue.eu-west-1.amazonaws.com/123456789012/sales/orders"),
])
def test_table_uris_name_the_catalog(properties, name, table, uri):
    assert table_uri(CatalogConfig(name, properties), table) == uri
    assert _sanitized(uri) == uri  # what we emit is already normalised


def test_secrets_never_reach_a_uri():
    config = CatalogConfig("x", {"type": "sql", "uri": "postgresql+psycopg://admin:hunter2@pg/db"})
    assert "hunter2" not in table_uri(config, "a.b") and "admin" not in table_uri(config, "a.b")


def test_two_connections_to_one_catalog_give_one_uri(monkeypatch):
    """Different ids and types, the same REST catalog (written two ways); a SQL catalog under a second name
    in the same database is another catalog."""
    connections = {
        "lake_a": {"conn_type": "dativo_iceberg", "host": "https://Polaris.example.com:443/api/catalog",
                   "password": "token-a", "extra": {"catalog_type": "rest", "warehouse": "lake"}},
        "lake_b": {"conn_type": "iceberg", "host": "https://polaris.example.com/api/catalog/", "login": "id",
                   "password": "secret", "extra": {"warehouse": "lake"}},
        "pg_one": {"conn_type": "dativo_iceberg", "host": "postgresql+psycopg://u@pg:5432/db"},
        "pg_two": {"conn_type": "dativo_iceberg", "host": "postgresql+psycopg://other@PG/db"},
        "pg_other_catalog": {"conn_type": "dativo_iceberg", "host": "postgresql+psycopg://u@pg/db",
                             "extra": {"catalog_name": "finance"}},
    }
    for conn_id, fields in connections.items():
        monkeypatch.setenv(*connection_env(conn_id, **fields))
    uri = {conn_id: table_uri(IcebergHook(conn_id).get_catalog_config(), "sales.orders")
           for conn_id in connections}
    assert uri["lake_a"] == uri["lake_b"] == "iceberg://polaris.example.com/api/catalog/lake/sales/orders"
    assert uri["pg_one"] == uri["pg_two"] == "iceberg://pg:5432/db/dativo/sales/orders"
    assert uri["pg_other_catalog"] == "iceberg://pg:5432/db/finance/sales/orders"


# --- events from real runs ----------------------------------------------------------------------------

@pytest.fixture
def asset_dags(airflow_db, iceberg_default, tmp_path, monkeypatch) -> Path:
    """The DAGs of ``asset_dags/`` as the DAG folder, reading a 20-row CSV; returns the catalog file."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "people.csv").write_text("id,name\n" + "".join(f"{i},person {i}\n" for i in range(ROWS)))
    monkeypatch.setenv("DATIVO_TEST_DROP", str(drop))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(ASSET_DAGS))
    import airflow.settings

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(ASSET_DAGS))  # Airflow 3 bundles read it
    return tmp_path / "dativo" / "catalog.db"


def _run(dag_id: str, day: int) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        import airflow.providers.fab.auth_manager.models  # noqa: F401  (dag_run_note's foreign key)
        from airflow.models import DagBag
    dag = DagBag(dag_folder=str(ASSET_DAGS)).get_dag(dag_id)
    # Airflow 2's dag.test() does not store the DAG's alias as the DAG processor does: the operator does.
    logical_date = datetime(2026, 1, day, tzinfo=UTC)
    if AIRFLOW_V_3_0_PLUS:
        dag_run = dag.test(logical_date=logical_date)
    else:
        dag_run = dag.test(execution_date=logical_date)
    states = [(ti.task_id, ti.map_index, ti.state) for ti in dag_run.get_task_instances()]
    assert dag_run.state == "success", states
    return dag_run


def _events(dag_run: Any) -> list[tuple[str, int, dict[str, Any]]]:
    """(asset URI, source map index, extra) of every asset event ``dag_run`` emitted, by map index."""
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
    else:
        from airflow.models.dataset import DatasetEvent as Event
    with create_session() as session:
        rows = session.query(Event).filter(Event.source_dag_id == dag_run.dag_id,
                                           Event.source_run_id == dag_run.run_id).all()
        events = [((row.asset if AIRFLOW_V_3_0_PLUS else row.dataset).uri, row.source_map_index,
                   dict(row.extra)) for row in rows]
    return sorted(events, key=lambda event: event[1])


def _uri(catalog_file: Path, table: str) -> str:
    return f"iceberg://localhost{catalog_file}/dativo/tests/{table}"


def _snapshot_id(table: str) -> str:
    return str(IcebergHook().get_conn().load_table(table).current_snapshot().snapshot_id)


def test_a_static_table_gets_an_event_per_commit_and_none_without(asset_dags):
    first = _run("assets_static", 2)
    assert _events(first) == [(_uri(asset_dags, "static"), -1, {
        "table": "tests.static", "snapshot_id": _snapshot_id("tests.static"), "mode": "append",
        "rows_written": ROWS, "rows_published": ROWS,
    })]
    again = _run("assets_static", 3)  # the file was read: nothing to commit
    assert _events(again) == []


def test_a_templated_table_gets_its_rendered_asset(asset_dags):
    (event,) = _events(_run("assets_templated", 2))
    assert event[:2] == (_uri(asset_dags, "templated"), -1)
    assert event[2]["table"] == "tests.templated"
    assert event[2]["snapshot_id"] == _snapshot_id("tests.templated")


def test_each_mapped_table_gets_its_own_event(asset_dags):
    events = _events(_run("assets_mapped", 2))
    assert [(uri, index) for uri, index, _ in events] == [
        (_uri(asset_dags, "mapped_a"), 0), (_uri(asset_dags, "mapped_b"), 1)
    ]
    assert [extra["table"] for _, _, extra in events] == ["tests.mapped_a", "tests.mapped_b"]
    assert [extra["snapshot_id"] for _, _, extra in events] == [_snapshot_id("tests.mapped_a"),
                                                               _snapshot_id("tests.mapped_b")]


def test_outlets_are_an_alias_per_task_also_when_mapped(asset_dags):
    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models import DagBag
    bag = DagBag(dag_folder=str(ASSET_DAGS))
    outlets = {dag_id: bag.get_dag(dag_id).get_task("load").outlets
               for dag_id in ("assets_static", "assets_templated", "assets_mapped")}
    assert outlets == {dag_id: [AssetAlias(f"dativo:{dag_id}.load")] for dag_id in outlets}


def test_progress_lines_at_the_interval_and_one_summary_in_the_task_log(asset_dags, monkeypatch, caplog):
    ticks = itertools.count(0, 5)  # every clock reading is 5 s after the last: a line every other batch
    monkeypatch.setattr("dativo_provider.progress.monotonic", lambda: float(next(ticks)))
    with caplog.at_level(logging.INFO), _structlog_events() as operator_events:
        _run("assets_templated", 4)
    # The task log: the engine's records (logging) and, on Airflow 3, the operator's (structlog).
    log = [record.getMessage() for record in caplog.records] + [e["event"] for e in operator_events]
    marker = "tests.templated: streaming: "
    progress = [line.split(marker)[1] for line in log if marker in line]
    lines = zip((4, 8, 12, 16, 20), _sizes(progress), (10, 20, 30, 40, 50))
    assert progress == [f"{rows} rows ({size}) running after {seconds}s, 0.4 rows/s"
                        for rows, size, seconds in lines]
    assert len([line for line in log if line.startswith("tests.templated: read 20 rows, wrote 20,")]) == 1
    assert len([line for line in log if line.startswith("Asset event for iceberg://")]) == 1  # the operator's


@contextlib.contextmanager
def _structlog_events() -> Iterator[list[dict[str, Any]]]:
    """Airflow 3 operators log through structlog, which logging's capture does not see (2.11 has none)."""
    if not AIRFLOW_V_3_0_PLUS:
        yield []
        return
    import structlog

    with structlog.testing.capture_logs() as events:
        yield events


def _sizes(progress: list[str]) -> list[str]:
    """The byte counts of the progress lines (under 1 KiB here), which must grow with the rows."""
    sizes = [line.split("(")[1].split(")")[0] for line in progress]
    counts = [int(size.removesuffix(" B")) for size in sizes]
    assert counts == sorted(set(counts))
    return sizes
