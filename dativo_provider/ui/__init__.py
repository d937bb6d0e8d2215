"""The data behind the provider's page in the Airflow UI, as JSON-ready dicts (no airflow import).

Each view is built from catalog metadata (table metadata files, snapshot summaries, refs, schema,
table properties), never from the tables' data files. Two small exceptions read a few columns of
tables this provider writes for itself: the quarantine tables' reason columns (what is held and why)
and the data-subject audit trail (which requests exist, and their events).

- :mod:`.tables`: the tables list, with a cache keyed by metadata location;
- :mod:`.table_detail`: one table's snapshots, refs, schema with contract classifications, contract
  results, quarantine and drift;
- :mod:`.quarantines`: rows held per table, run and check;
- :mod:`.subject_requests`: data-subject requests from the audit trail and their certificates;
- :mod:`.reports`: the JSON reports (contract checks, drift) a reports folder holds;
- :mod:`.page`: the HTML page that renders all of it.

The Airflow layer (:mod:`dativo_provider.plugins`) builds :class:`~.settings.UiSettings` from
Airflow connections and configuration and serves these views behind Airflow's authentication.
"""
