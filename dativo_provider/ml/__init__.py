"""ML feature pipelines on Iceberg (no Airflow here).

- :mod:`dativo_provider.ml.transform`: transforms (DuckDB SQL over each Arrow batch, vectorised Python
  functions), applied batch by batch while a source streams into a table;
- :mod:`dativo_provider.ml.features`: feature transforms, DuckDB SQL over Iceberg tables read at a
  snapshot, tag or branch, written through the ingest commit path;
- :mod:`dativo_provider.ml.windows`: point-in-time window features as SQL.

This package imports nothing from its modules, so the ingest engine can use the transforms without
loading the rest.
"""
