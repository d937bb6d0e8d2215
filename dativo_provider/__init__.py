"""dativo-airflow-provider: ingest SaaS, database and file data into Apache Iceberg from Airflow.

The package root stays import-light: the scheduler imports it while parsing DAG files.
"""

__version__ = "0.1.0"
