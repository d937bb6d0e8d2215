"""Lineage and the metadata catalog: OpenMetadata's REST API (tables, quality, lineage edges).

No Airflow import here: the hooks in :mod:`dativo_provider.hooks.openmetadata` turn a connection into an
:class:`~dativo_provider.lineage.openmetadata_client.OpenMetadataConfig`, and the operators call
:func:`~dativo_provider.lineage.openmetadata_sync.sync_tables`,
:func:`~dativo_provider.lineage.openmetadata_quality.post_results` and
:func:`~dativo_provider.lineage.openmetadata_lineage.add_lineage`.
"""
