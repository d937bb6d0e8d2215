"""Hooks: Airflow Connections turned into the engine's typed configuration. Import-light."""
