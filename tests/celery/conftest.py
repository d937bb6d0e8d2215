"""A real Airflow deployment on the CeleryExecutor (Redis broker, Postgres metadata database, two workers),
started once for the module (see :mod:`tests.celery.deployment`), and the source table it ingests.

Airflow 3 only: its workers run tasks through the API server's execution API, which is what is tested
here. On Airflow 2 the modules are not collected (rather than skipped: a skip would read as a test that
could not run). Without a reachable Redis or Postgres the tests skip with the reason, and fail in CI
(``DATIVO_REQUIRE_SERVICES=1``), as every service-backed test does (``_unavailable`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from dativo_provider.connections import DatabaseConfig

if not AIRFLOW_V_3_0_PLUS:
    print("tests/celery: not collected on Airflow 2 (the CeleryExecutor tests run Airflow 3's execution API)")
    collect_ignore_glob = ["test_*.py"]

Report = pytest.TestReport
#: Connection ids the DAGs in tests/celery/dags use.
SOURCE_CONN_ID = "celery_source"
LAKE_CONN_ID = "celery_lake"
LAKE_CATALOG_NAME = "celery_lake"
SOURCE_ROWS = 5_000_000
#: The DAGs of tests/celery/dags the deployment waits for before the tests start.
DAG_IDS = ("celery_split_ingest", "celery_split_ingest_worker_killed")


@pytest.fixture(scope="module")
def celery_services(postgres_config: DatabaseConfig) -> Any:
    """The machine's Postgres and Redis, or a skip (a failure in CI) when Redis does not answer."""
    from tests.celery.deployment import Services
    from tests.conftest import _unavailable

    redis_host = os.environ.get("DATIVO_REDIS_HOST", "127.0.0.1")
    redis_port = int(os.environ.get("DATIVO_REDIS_PORT", "6379"))
    try:
        import redis

        redis.Redis(host=redis_host, port=redis_port, socket_connect_timeout=3).ping()
    except Exception as exc:  # any failure to reach it means the broker cannot be used
        _unavailable(f"Redis at {redis_host}:{redis_port}", exc)
    c = postgres_config
    return Services(pg_host=c.host, pg_port=c.port or 5432, pg_user=c.user or "postgres",
                    pg_database=c.database or "test", pg_password=c.password, redis_host=redis_host,
                    redis_port=redis_port)


@pytest.fixture(scope="module")
def source_schema(celery_services: Any) -> Iterator[str]:
    """A fresh schema in the test database for the module's source tables, dropped afterwards."""
    name = f"dativo_celery_{uuid.uuid4().hex[:10]}"
    with celery_services.connect() as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with celery_services.connect() as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@dataclass(frozen=True)
class SourceTable:
    """The module's source table and what its columns add up to, computed by Postgres."""

    name: str
    rows: int
    reference: dict[str, Any]


#: The columns' aggregates, computed by Postgres on the source and by Arrow on the Iceberg table.
REFERENCE_SQL = """
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_ids, min(id) AS min_id, max(id) AS max_id,
       sum(id) AS sum_id, sum(customer_id) AS sum_customer_id, sum(amount) AS sum_amount,
       min(amount) AS min_amount, max(amount) AS max_amount, sum(quantity) AS sum_quantity,
       count(*) FILTER (WHERE status = 'shipped') AS shipped, count(note) AS notes,
       min(created_at) AS min_created_at, max(created_at) AS max_created_at
FROM {table}
"""


def seed_source_table(services: Any, schema: str) -> SourceTable:
    """``<schema>.orders``: 5M rows, bigint primary key and a few typed columns (one INSERT ... SELECT)."""
    name = f"{schema}.orders"
    with services.connect() as conn:
        conn.execute(f"""
            CREATE TABLE {name} (
                id bigint PRIMARY KEY, customer_id integer NOT NULL, amount numeric(12, 2) NOT NULL,
                quantity integer, status text NOT NULL, note text, created_at timestamptz NOT NULL)""")
        conn.execute(f"""
            INSERT INTO {name}
            SELECT g, g % 100003, round(((g * 7919) % 1000000) / 100.0, 2), (g % 17)::int,
                   (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
                   CASE WHEN g % 10 = 0 THEN 'note ' || g END,
                   timestamptz '2024-01-01 00:00+00' + g * interval '1 second'
            FROM generate_series(1::bigint, {SOURCE_ROWS}) AS g""")
        conn.execute(f"ANALYZE {name}")
        cursor = conn.execute(REFERENCE_SQL.format(table=name))
        reference = dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))
    return SourceTable(name, SOURCE_ROWS, reference)


@pytest.fixture(scope="module")
def source_seeding(celery_services: Any, source_schema: str) -> Iterator[Future[SourceTable]]:
    """Seeding, started before the deployment so that Postgres fills the table (≈ 20 s, one core) while
    Airflow's processes start on the other."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-source") as pool:
        yield pool.submit(seed_source_table, celery_services, source_schema)


@pytest.fixture(scope="module")
def source_table(source_seeding: Future[SourceTable]) -> SourceTable:
    return source_seeding.result(timeout=600)


@pytest.fixture(scope="module")
def celery_airflow(celery_services: Any, source_schema: str, source_seeding: Future[SourceTable],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running deployment; its DAGs read the source schema from ``DATIVO_CELERY_SOURCE_SCHEMA``."""
    from tests.celery.deployment import celery_deployment

    home = tmp_path_factory.mktemp("celery-airflow")
    s = celery_services
    connections = {
        SOURCE_CONN_ID: {"conn_type": "postgres", "host": s.pg_host, "port": s.pg_port, "login": s.pg_user,
                         "password": s.pg_password, "schema": s.pg_database},
        # The catalog's tables live in the deployment's own database: created and dropped with it.
        LAKE_CONN_ID: {"conn_type": "dativo_iceberg", "host": s.pg_url("{database}"),
                       "extra": {"catalog_type": "sql", "catalog_name": LAKE_CATALOG_NAME,
                                 "warehouse": f"file://{home / 'warehouse'}"}},
    }
    extra_env = {"DATIVO_CELERY_SOURCE_SCHEMA": source_schema, "DATIVO_CELERY_SOURCE_CONN_ID": SOURCE_CONN_ID,
                 "DATIVO_CELERY_LAKE_CONN_ID": LAKE_CONN_ID}
    with celery_deployment(s, home, connections, extra_env, DAG_IDS) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def lake(celery_airflow: Any) -> Any:
    """The deployment's Iceberg catalog, loaded in the test process."""
    from dativo_provider.iceberg.catalog import CatalogConfig

    return CatalogConfig(LAKE_CATALOG_NAME, {
        "type": "sql", "uri": celery_airflow.services.pg_url(celery_airflow.database),
        "warehouse": f"file://{celery_airflow.home / 'warehouse'}"}).load()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Report, Report]:
    """A failed test's report carries the tail of every deployment process's log."""
    report = yield
    deployment = getattr(item, "funcargs", {}).get("celery_airflow")
    if report.failed and deployment is not None:
        report.sections.append(("Celery deployment logs", deployment.log_tails()))
    return report
