"""Iceberg plumbing: catalogs, schema conversion and drift, the streaming writer, state in snapshots."""
