"""The provider's Airflow plugin: a page in the Airflow UI over :mod:`dativo_provider.ui`.

- :mod:`.catalog_page`: the ``AirflowPlugin`` (a FastAPI app and a navigation entry on Airflow 3,
  a Flask AppBuilder view on Airflow 2.11), registered through the provider's metadata and the
  ``airflow.plugins`` entry point;
- :mod:`.ui_config`: what the page shows, from ``[dativo_ui]`` options and Airflow connections;
- :mod:`.quarantine_actions`: the DAG the page triggers to release or purge quarantined rows.
"""

#: Where the API server (Airflow 3) mounts the page's app, and where Airflow 2.11's view lives.
URL_PREFIX = "/dativo"
