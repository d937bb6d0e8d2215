"""The ingestion engine: a Source's Arrow batches into one atomic Iceberg commit. No airflow here."""
