"""The pytest process gets the private AIRFLOW_HOME of the Airflow tests before anything imports airflow
(a user's ~/airflow/airflow.cfg, written by another Airflow version, could break the import)."""

import tests.airflow.conftest  # noqa: F401 - sets the environment on import
