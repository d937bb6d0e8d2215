"""Column lineage from DuckDB SQL (five transform shapes), ingest identity lineage, and the Spark-style
OpenLineage names of Iceberg tables. Engine only: no Airflow."""

from __future__ import annotations

import pytest

from dativo_provider.lineage.column_lineage import (
    ColumnLineage,
    SourceColumn,
    identity_lineage,
    sql_column_lineage,
)
from dativo_provider.lineage.openlineage_names import iceberg_dataset_name, physical_name

pytest.importorskip("sqlglot")

RELATIONS = {
    "orders": ["order_id", "customer_id", "amount", "ordered_at", "status"],
    "customers": ["customer_id", "email", "country"],
}


def link(relation: str, column: str, kind: str = "DIRECT", subtype: str = "IDENTITY") -> SourceColumn:
    return SourceColumn(relation, column, kind, subtype)


# Each fixture: the SQL, then the expected lineage of every output column and of the whole dataset.
FIXTURES = {
    "aggregate": (
        (
            "SELECT customer_id, SUM(amount) AS spend, COUNT(*) AS orders FROM orders "
            "WHERE status <> 'cancelled' GROUP BY customer_id HAVING SUM(amount) > 0"
        ),
        {
            "customer_id": [link("orders", "customer_id")],
            "spend": [link("orders", "amount", subtype="AGGREGATION")],
            "orders": [],
        },
        [
            link("orders", "amount", "INDIRECT", "FILTER"),
            link("orders", "customer_id", "INDIRECT", "GROUP_BY"),
            link("orders", "status", "INDIRECT", "FILTER"),
        ],
    ),
    "window": (
        (
            "SELECT order_id, SUM(amount) OVER (PARTITION BY customer_id ORDER BY ordered_at) "
            "AS running_spend FROM orders"
        ),
        {
            "order_id": [link("orders", "order_id")],
            "running_spend": [
                link("orders", "amount", subtype="AGGREGATION"),
                link("orders", "customer_id", "INDIRECT", "WINDOW"),
                link("orders", "ordered_at", "INDIRECT", "WINDOW"),
            ],
        },
        [],
    ),
    "join": (
        (
            "SELECT o.order_id, c.email AS customer_email, o.amount * 1.25 AS amount_with_vat "
            "FROM orders AS o JOIN customers AS c ON o.customer_id = c.customer_id ORDER BY o.ordered_at"
        ),
        {
            "order_id": [link("orders", "order_id")],
            "customer_email": [link("customers", "email")],
            "amount_with_vat": [link("orders", "amount", subtype="TRANSFORMATION")],
        },
        [
            link("customers", "customer_id", "INDIRECT", "JOIN"),
            link("orders", "customer_id", "INDIRECT", "JOIN"),
            link("orders", "ordered_at", "INDIRECT", "SORT"),
        ],
    ),
    "cte": (
        (
            "WITH recent AS (SELECT customer_id, amount FROM orders WHERE ordered_at >= DATE '2024-01-01'), "
            "totals AS (SELECT customer_id, MAX(amount) AS biggest FROM recent GROUP BY customer_id) "
            "SELECT customer_id AS id, biggest FROM totals"
        ),
        {"id": [link("orders", "customer_id")], "biggest": [link("orders", "amount", subtype="AGGREGATION")]},
        [
            link("orders", "customer_id", "INDIRECT", "GROUP_BY"),
            link("orders", "ordered_at", "INDIRECT", "FILTER"),
        ],
    ),
    "case": (
        (
            "SELECT customer_id, CASE WHEN country IN ('SE', 'NO') THEN 'nordics' ELSE country END AS region "
            "FROM customers"
        ),
        {
            "customer_id": [link("customers", "customer_id")],
            "region": [
                link("customers", "country", "INDIRECT", "CONDITIONAL"),
                link("customers", "country", subtype="TRANSFORMATION"),
            ],
        },
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_sql_column_lineage(name):
    sql, fields, dataset = FIXTURES[name]
    lineage = sql_column_lineage(sql, RELATIONS)
    assert {column: sorted(links) for column, links in lineage.fields.items()} == {
        column: sorted(links) for column, links in fields.items()
    }
    assert sorted(lineage.dataset) == sorted(dataset)


def test_star_expands_through_the_inputs_schema_and_unions_take_both_branches():
    star = sql_column_lineage("SELECT * FROM customers", RELATIONS)
    assert star.fields == {c: (link("customers", c),) for c in RELATIONS["customers"]}
    union = sql_column_lineage(
        "SELECT customer_id FROM orders UNION ALL SELECT customer_id FROM customers", RELATIONS
    )
    assert union.fields == {"customer_id": (link("customers", "customer_id"), link("orders", "customer_id"))}


def test_sql_it_cannot_read_gives_no_lineage_instead_of_an_error():
    assert sql_column_lineage("SELEC broken FROM", RELATIONS) == ColumnLineage()
    assert sql_column_lineage("", RELATIONS) == ColumnLineage()


def test_ingest_copies_each_source_column_into_the_column_of_the_same_name():
    assert identity_lineage(["id", "email"], "batch").fields == {
        "id": (link("batch", "id"),),
        "email": (link("batch", "email"),),
    }
    assert identity_lineage(["id", "loaded_at"], "batch", source_columns=["id"]).fields == {
        "id": (link("batch", "id"),)
    }


def test_iceberg_tables_are_named_as_the_spark_integration_names_them():
    sql = iceberg_dataset_name(
        "lake",
        {
            "type": "sql",
            "uri": "postgresql+psycopg://dativo:S3cr3t-Pw@db.example:5432/catalog",
            "warehouse": "s3://lake/warehouse",
            "s3.secret-access-key": "AWS-S3CR3T",
        },
        "shop.orders",
        "s3://lake/warehouse/shop/orders",
        7387417717254914059,
    )
    assert (sql.namespace, sql.name) == ("s3://lake", "warehouse/shop/orders")
    assert sql.symlink() == {
        "namespace": "postgresql+psycopg://dativo@db.example:5432/catalog",
        "name": "shop.orders",
        "type": "TABLE",
    }
    assert (sql.catalog_type, sql.catalog_name, sql.version) == ("jdbc", "lake", "7387417717254914059")
    assert (sql.metadata_uri, sql.warehouse_uri) == (
        "postgresql+psycopg://dativo@db.example:5432/catalog",
        "s3://lake/warehouse",
    )
    assert "S3cr3t" not in repr(sql) and "AWS-S3CR3T" not in repr(sql)

    glue = iceberg_dataset_name(
        "glue",
        {"type": "glue", "glue.region": "eu-west-1", "glue.id": "123456789012"},
        "shop.orders",
        "s3://lake/shop.db/orders",
    )
    assert glue.symlink() == {
        "namespace": "arn:aws:glue:eu-west-1:123456789012",
        "name": "table/shop/orders",
        "type": "TABLE",
    }
    assert glue.version is None

    rest = iceberg_dataset_name(
        "polaris",
        {"type": "rest", "uri": "https://polaris.example/api/catalog"},
        "a.b.events",
        "file:///srv/lake/a.b/events/",
    )
    assert (rest.namespace, rest.name) == ("file", "/srv/lake/a.b/events")
    assert rest.symlink()["namespace"] == "https://polaris.example/api/catalog"
    assert rest.symlink()["name"] == "a.b.events" and rest.catalog_type == "rest"


def test_physical_names_follow_openlineage_path_naming():
    assert physical_name("/srv/drop/") == ("file", "/srv/drop")
    assert physical_name("gs://bucket/exports/vertex") == ("gs://bucket", "exports/vertex")
    assert physical_name("s3://user:pw@bucket/key") == ("s3://bucket", "key")
