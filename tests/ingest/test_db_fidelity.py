"""End to end: every database type the sources map goes into Iceberg and comes back unchanged.

Source table → ``run_ingest`` into an embedded catalog → ``scan().to_arrow()`` → the same values the
source read (the source tests prove those equal the driver's values).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.types import DecimalType, ListType, TimestamptzType, TimeType, UUIDType

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.sources import build_source
from dativo_provider.sources.base import ReadBounds, Source
from tests.sources import test_mysql, test_postgres


def source_rows(source: Source) -> list[dict]:
    with source.open(None, ReadBounds()) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema).sort_by("id").to_pylist()


def ingest_and_read_back(source: Source, tmp_path, name: str) -> tuple[list[dict], object]:
    catalog = embedded_catalog(tmp_path / "lake")
    result = run_ingest(source, catalog, f"lake.{name}", WriteOptions(), bounds=ReadBounds())
    table = catalog.load().load_table(f"lake.{name}")
    assert result.committed and result.rows_written == result.rows_read
    return table.scan().to_arrow().sort_by("id").to_pylist(), table.schema()


@pytest.mark.postgres
def test_postgres_types_survive_iceberg(pg, pg_schema, postgres_config, tmp_path):
    columns = {"id": "int primary key", **{c: d for c, (d, _) in test_postgres.ALL_TYPES.items()}}
    test_postgres.create_table(pg, pg_schema, "all_types", columns)
    placeholders = ", ".join(["%s"] * len(columns))
    with pg.cursor() as cur:
        insert = f'INSERT INTO "{pg_schema}".all_types VALUES ({placeholders})'
        cur.executemany(insert, test_postgres.EDGE_ROWS)
    source = build_source({"type": "postgres", "table": f"{pg_schema}.all_types"}, postgres_config)

    back, schema = ingest_and_read_back(source, tmp_path, "pg_types")

    assert back == source_rows(source)
    assert len(back) == len(test_postgres.EDGE_ROWS)
    assert isinstance(schema.find_field("c_uuid").field_type, UUIDType)
    assert schema.find_field("c_numeric").field_type == DecimalType(38, 10)
    assert isinstance(schema.find_field("c_tstz").field_type, TimestamptzType)
    assert isinstance(schema.find_field("c_time").field_type, TimeType)
    assert isinstance(schema.find_field("c_numeric_array").field_type, ListType)


@pytest.mark.mysql
def test_mysql_types_survive_iceberg(my, my_db, tmp_path):
    columns = {"id": "int primary key", **{c: d for c, (d, _) in test_mysql.ALL_TYPES.items()}}
    test_mysql.create_table(my, "all_types", columns)
    placeholders = ", ".join(["%s"] * len(columns))
    with my.cursor() as cur:
        cur.executemany(f"INSERT INTO all_types VALUES ({placeholders})", test_mysql.EDGE_ROWS)
    source = build_source({"type": "mysql", "table": "all_types"}, my_db)

    back, schema = ingest_and_read_back(source, tmp_path, "mysql_types")

    assert back == source_rows(source)
    assert len(back) == len(test_mysql.EDGE_ROWS)
    assert schema.find_field("c_bigint_u").field_type == DecimalType(20, 0)
    assert schema.find_field("c_decimal").field_type == DecimalType(38, 9)
    assert isinstance(schema.find_field("c_timestamp").field_type, TimestamptzType)
