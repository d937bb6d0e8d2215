"""OpenLineage facets from an ingest summary. Never fails a task: problems are logged and dropped.

Imported only when the OpenLineage provider asks for facets, so DAG parsing never pays for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any


def operator_lineage(result: Mapping[str, Any] | None, log: logging.Logger) -> Any:
    """An ``OperatorLineage`` with the run's inputs and its output table (schema and statistics).

    :param result: the ingest summary (``IngestResult.to_dict()``), None if the run did not finish.
    :param log: where to warn when the facets cannot be built.
    :return: the lineage, an empty one if it cannot be built, None without the OpenLineage provider.
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    if not result:
        return OperatorLineage()
    try:
        return _build(result)
    except Exception:  # lineage must never fail the task
        log.warning("Could not build OpenLineage facets for %s", result.get("table"), exc_info=True)
        return OperatorLineage()


def _build(result: Mapping[str, Any]) -> Any:
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [InputDataset(namespace=d["namespace"], name=d["name"]) for d in result.get("inputs", [])]
    statistics = OutputStatisticsOutputDatasetFacet(
        rowCount=result.get("rows_written"), size=result.get("bytes_written")
    )
    outputs = [
        OutputDataset(
            namespace=d["namespace"],
            name=d["name"],
            facets=_schema_facets(result.get("schema", [])),
            outputFacets={"outputStatistics": statistics},
        )
        for d in result.get("outputs", [])
    ]
    return OperatorLineage(inputs=inputs, outputs=outputs)


def _schema_facets(schema: list[Mapping[str, Any]]) -> dict[str, Any]:
    if not schema:
        return {}
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    fields = [
        SchemaDatasetFacetFields(name=column["name"], type=column["type"], description=column.get("doc"))
        for column in schema
    ]
    return {"schema": SchemaDatasetFacet(fields=fields)}
