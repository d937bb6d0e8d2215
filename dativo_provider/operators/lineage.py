"""OpenLineage facets from an ingest summary or a contract run. Never fails a task: problems are
logged and dropped.

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
    facets = {**_schema_facets(result.get("schema", [])), **_quality_facets(result.get("quality"))}
    outputs = [
        OutputDataset(
            namespace=d["namespace"],
            name=d["name"],
            facets=facets,
            outputFacets={"outputStatistics": statistics},
        )
        for d in result.get("outputs", [])
    ]
    return OperatorLineage(inputs=inputs, outputs=outputs)


def checked_dataset_lineage(
    dataset: Mapping[str, str] | None, report: Mapping[str, Any] | None, log: logging.Logger
) -> Any:
    """An ``OperatorLineage`` whose input is the checked dataset, with one assertion per check.

    :param dataset: the checked dataset as ``{"namespace": ..., "name": ...}``, None if unknown.
    :param report: the contract run's report (``QualityReport.to_dict()``), None if the run did not finish.
    :param log: where to warn when the facets cannot be built.
    :return: the lineage, an empty one if it cannot be built, None without the OpenLineage provider.
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    if not dataset:
        return OperatorLineage()
    try:
        from airflow.providers.common.compat.openlineage.facet import InputDataset

        checked = InputDataset(
            namespace=dataset["namespace"], name=dataset["name"], inputFacets=_quality_facets(report)
        )
        return OperatorLineage(inputs=[checked])
    except Exception:  # lineage must never fail the task
        log.warning("Could not build OpenLineage facets for %s", dataset, exc_info=True)
        return OperatorLineage()


def _quality_facets(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """``dataQualityAssertions``: one assertion per check of a contract run (none without a report)."""
    if not report or not report.get("checks"):
        return {}
    # facet_v2 is a module exposing the generated facet modules as attributes, not a package.
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    assertions = [
        dq.Assertion(
            assertion=check["name"],
            success=check["outcome"] == "passed",
            column=check.get("column"),
            severity=check.get("severity"),
            expected=check.get("threshold"),
            actual=None if check.get("observed") is None else str(check["observed"]),
        )
        for check in report["checks"]
    ]
    return {"dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(assertions=assertions)}


def _schema_facets(schema: list[Mapping[str, Any]]) -> dict[str, Any]:
    if not schema:
        return {}
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    fields = [
        SchemaDatasetFacetFields(name=column["name"], type=column["type"], description=column.get("doc"))
        for column in schema
    ]
    return {"schema": SchemaDatasetFacet(fields=fields)}
