"""The engine on every catalog kind reachable here: SQLite, Postgres, Glue (moto), S3 warehouse (moto)."""

from __future__ import annotations

import gc
import uuid
import warnings

import pyarrow as pa
import pytest

from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from tests.memory_source import TableSource
from tests.s3_server import moto_server

ROWS = pa.table({"id": pa.array(range(5_000), pa.int64()), "name": [f"n{i}" for i in range(5_000)]})


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        yield endpoint


def _s3_properties(moto) -> dict[str, str]:
    return {
        "s3.endpoint": moto.url,
        "s3.access-key-id": moto.access_key_id,
        "s3.secret-access-key": moto.secret_access_key,
        "s3.region": moto.region,
    }


def _round_trip(config: CatalogConfig) -> None:
    run_ingest(TableSource(ROWS), config, "lake.people")
    changed = pa.table({"id": pa.array([7, 9_999], pa.int64()), "name": ["seven", "new"]})
    run_ingest(TableSource(changed, identity="memory://changes"), config, "lake.people",
               WriteOptions(mode="merge", merge_keys=("id",)))
    back = config.load().load_table("lake.people").scan().to_arrow().sort_by("id")
    assert back.num_rows == 5_001
    assert back["name"][7].as_py() == "seven" and back["name"][5_000].as_py() == "new"


def test_s3_warehouse_with_an_endpoint_override(tmp_path, moto):
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    config = CatalogConfig("s3lake", {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db",
                                      "warehouse": f"s3://{bucket}/warehouse", **_s3_properties(moto)})
    _round_trip(config)
    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("warehouse/lake/people/data/") and k.endswith(".parquet") for k in keys)


def test_glue_catalog(moto):
    bucket = f"glue-{uuid.uuid4().hex[:8]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    config = CatalogConfig("glue", {
        "type": "glue",
        "glue.endpoint": moto.url,
        "glue.region": moto.region,
        "glue.access-key-id": moto.access_key_id,
        "glue.secret-access-key": moto.secret_access_key,
        "warehouse": f"s3://{bucket}/warehouse",
        **_s3_properties(moto),
    })
    _round_trip(config)
    assert moto.client("glue").get_table(DatabaseName="lake", Name="people")["Table"]["Name"] == "people"


@pytest.mark.postgres
def test_postgres_sql_catalog(tmp_path, postgres_config):
    config = CatalogConfig(f"pg_{uuid.uuid4().hex[:8]}", {
        "type": "sql",
        "uri": f"postgresql+psycopg://{postgres_config.user}@{postgres_config.host}:{postgres_config.port}/"
               f"{postgres_config.database}",
        "warehouse": f"file://{tmp_path}/warehouse",
    })
    _round_trip(config)


@pytest.mark.postgres
def test_a_dropped_postgres_catalog_closes_its_connections(tmp_path, postgres_config, pg):
    """Callers drop catalogs without closing them: the server sessions must end with the object, and no
    ResourceWarning (an error in this suite) may reach whichever test runs when the collector does."""
    application = f"dativo-test-{uuid.uuid4().hex[:8]}"
    config = CatalogConfig(f"pg_{uuid.uuid4().hex[:8]}", {
        "type": "sql",
        "uri": f"postgresql+psycopg://{postgres_config.user}@{postgres_config.host}:{postgres_config.port}/"
               f"{postgres_config.database}?application_name={application}",
        "warehouse": f"file://{tmp_path}/warehouse",
    })

    def sessions() -> int:
        return pg.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                          (application,)).fetchone()[0]

    catalog = config.load()
    catalog.create_namespace("lake")
    assert catalog.list_namespaces() == [("lake",)]
    if not hasattr(catalog, "engine"):
        assert sessions() == 0  # DbApiCatalog (Airflow 2.11): one short connection per operation
        return
    assert sessions() >= 1  # pooled, for the next call
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del catalog
        gc.collect()
    assert sessions() == 0


def test_catalog_repr_hides_secrets():
    config = CatalogConfig("rest", {"type": "rest", "uri": "https://cat", "token": "tok-123",
                                    "credential": "id:sec-456", "s3.secret-access-key": "sk-789",
                                    "adls.account-key": "ak-000"})
    shown = repr(config)
    assert "tok-123" not in shown and "sec-456" not in shown and "sk-789" not in shown and "ak-000" not in shown
    assert set(config.secrets) == {"tok-123", "id:sec-456", "sk-789", "ak-000"}
