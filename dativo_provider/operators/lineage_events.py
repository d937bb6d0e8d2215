"""The OpenLineage datasets and facets of each operator, from its arguments (start) or its result
(complete, failure). Each function takes the task and the stage and returns an ``OperatorLineage``;
the operators' ``get_openlineage_facets_on_*`` methods call them through :func:`lineage_for`, which
never lets an error reach the task.

Built from :mod:`dativo_provider.operators.lineage_facets`; imported only when the OpenLineage provider asks.
Results are read from the attribute each operator sets in ``execute`` (``ingest_result``,
``transform_result``, ``report``, else ``run_summary``); a start event names what the arguments name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dativo_provider.operators.lineage_facets import (
    IcebergLineage,
    column_lineage_facet,
    load_contract_quietly,
    operator_lineage,
    path_dataset,
    quality_facets,
    run_facet,
    safe_lineage,
)

START, COMPLETE, FAILURE = "start", "complete", "failure"


def lineage_for(task: Any, stage: str) -> Any:
    """The task's lineage at ``stage``: its builder from :data:`BUILDERS` (by class name, then base
    classes), an empty lineage when something goes wrong (logged)."""
    builder = next((BUILDERS[cls.__name__] for cls in type(task).__mro__ if cls.__name__ in BUILDERS), None)
    if builder is None:
        return None
    catalog = _catalog(task)
    if catalog is None and builder is not contract_check:  # a database table's check needs no catalog
        task.log.debug("OpenLineage %s event without datasets: the catalog is not known yet", stage)
        return operator_lineage()
    return safe_lineage(lambda: builder(task, stage, catalog), task.log, f"{task.task_id} ({stage})")


def _catalog(task: Any) -> Any:
    """The catalog the task's connection resolved to in this process, None before it did.

    Events are built in a process the listener forks, where asking Airflow for a connection hangs on
    Airflow 3 (``RESOLVED_CATALOGS`` in :mod:`dativo_provider.hooks.iceberg`); a start event therefore
    names tables only when the worker process already resolved the connection.
    """
    from dativo_provider.hooks.iceberg import RESOLVED_CATALOGS

    return RESOLVED_CATALOGS.get(task.iceberg_conn_id)


def _tables(catalog: Any, contract: Any = None, contract_dataset: str | None = None) -> IcebergLineage:
    return IcebergLineage(catalog, contract, contract_dataset)


def _summary(task: Any, stage: str, attribute: str = "run_summary") -> Any:
    return None if stage == START else getattr(task, attribute, None)


# --- ingest and transforms ---------------------------------------------------------------------------


def ingest(task: Any, stage: str, catalog: Any) -> Any:
    """Source datasets in; the table out at the committed snapshot, with schema, column lineage (source
    column → same-named column, or through the run's SQL transform), statistics and the contract run."""
    from dativo_provider.lineage.column_lineage import ColumnLineage, identity_lineage, sql_column_lineage

    result = _summary(task, stage, "ingest_result")
    tables = _tables(catalog, load_contract_quietly(task, task.contract, task.log), task.contract_dataset)
    if result is None:
        return operator_lineage(outputs=[tables.output(task.table)] if stage == START else [])
    inputs = _result_inputs(result)
    columns = [column["name"] for column in result.get("schema", [])]
    if isinstance(task.transform, str) and task.transform.strip():
        lineage = sql_column_lineage(task.transform, {"batch": []})
    elif task.transform:  # Python steps: what they do to columns is not ours to guess
        lineage = ColumnLineage()
    else:
        lineage = identity_lineage(columns, "batch")
    relations = {"batch": (inputs[0].namespace, inputs[0].name)} if len(inputs) == 1 else {}
    outputs = [_written(tables, result["table"], result, column_lineage_facet(lineage, relations))]
    quality = result.get("quality") or {}
    if result.get("rows_quarantined") and quality.get("quarantine_table"):
        outputs.append(
            tables.output(quality["quarantine_table"], statistics={"rowCount": result["rows_quarantined"]})
        )
    return operator_lineage(inputs, outputs)


def _written(
    tables: IcebergLineage, table: str, result: Mapping[str, Any], column_lineage: Mapping[str, Any]
) -> Any:
    """The output table of an ingest-like run: at its snapshot, with statistics and quality facets."""
    snapshot_id = result.get("snapshot_id") or tables.current_snapshot(table)
    statistics = {"rowCount": result.get("rows_written"), "size": result.get("bytes_written")}
    return tables.output(
        table,
        snapshot_id,
        statistics=statistics,
        extra_facets={**column_lineage, **quality_facets(result.get("quality"))},
    )


def feature_transform(task: Any, stage: str, catalog: Any) -> Any:
    """Input tables at the snapshots read; the feature table with column lineage from the SQL."""
    from dativo_provider.lineage.column_lineage import sql_column_lineage

    result = _summary(task, stage, "transform_result")
    tables = _tables(catalog, load_contract_quietly(task, task.contract, task.log), task.contract_dataset)
    if result is None:
        if stage != START:
            return operator_lineage()
        planned = [spec if isinstance(spec, str) else spec.get("table") for spec in task.inputs.values()]
        return operator_lineage([tables.input(t) for t in planned if t], [tables.output(task.table)])
    read = (result.get("source_details") or {}).get("inputs") or {}
    inputs = {key: tables.input(spec["table"], spec.get("snapshot_id")) for key, spec in read.items()}
    relations = {
        key: [c.name for c in tables.columns(spec["table"], spec.get("snapshot_id"))]
        for key, spec in read.items()
    }
    lineage = sql_column_lineage(task.sql, relations)
    datasets = {key: (dataset.namespace, dataset.name) for key, dataset in inputs.items()}
    output = _written(tables, task.table, result, column_lineage_facet(lineage, datasets))
    return operator_lineage(inputs.values(), [output])


def training_set(task: Any, stage: str, catalog: Any) -> Any:
    """Labels and feature tables at their pinned snapshots in; the training-set table out, each of its
    columns linked to the inputs that have a column of that name (the as-of join copies them)."""
    from dativo_provider.lineage.column_lineage import ColumnLineage, SourceColumn

    summary = _summary(task, stage)
    tables = _tables(catalog)
    if summary is None:
        planned = [
            task.labels.get("table"),
            *(f.get("table") for f in task.features if isinstance(f, Mapping)),
        ]
        outputs = [tables.output(task.output_table)] if task.output_table and stage == START else []
        return operator_lineage([tables.input(t) for t in planned if t and stage == START], outputs)
    read = summary.get("inputs") or []
    inputs = [tables.input(i["table"], i.get("snapshot_id")) for i in read]
    if not summary.get("output_table"):
        return operator_lineage(inputs, [], run_facet("training_set", {"rows": summary.get("row_count")}))
    output_table, snapshot_id = summary["output_table"], summary.get("output_snapshot_id")
    by_input = {
        str(n): {c.name for c in tables.columns(i["table"], i.get("snapshot_id"))} for n, i in enumerate(read)
    }
    columns = [c.name for c in tables.columns(output_table, snapshot_id)]
    lineage = ColumnLineage(
        fields={
            column: tuple(SourceColumn(n, column) for n, names in by_input.items() if column in names)
            for column in columns
        }
    )
    datasets = {str(n): (d.namespace, d.name) for n, d in enumerate(inputs)}
    output = tables.output(
        output_table,
        snapshot_id,
        statistics={"rowCount": summary.get("row_count")},
        extra_facets=column_lineage_facet(lineage, datasets),
    )
    return operator_lineage(inputs, [output])


# --- split ingest: one plan, mapped parts, one commit ------------------------------------------------------
#
# Only the commit has the table as an output. Marquez records a dataset version for every output of a
# run and makes it the table's current version when the run completes (and ignores the version facet
# of the inputs that read it), OpenMetadata adds a lineage edge from each input to each output of an
# event: a part writing the table as an (unversioned) output would leave one table version per part
# that no snapshot holds, current until the commit, and downstream runs in between would be linked to
# it. So the parts read the source and report their share in the run facet; the plan names the table
# on start, as an ingest does (what the run will write), and nothing more once it completes.


def _plan_of(task: Any) -> Mapping[str, Any]:
    """The split plan a part or the commit was given (rendered from XCom), {} before it is known."""
    plan = getattr(task, "plan", None)
    return plan if isinstance(plan, Mapping) else {}


def _planned_source(plan: Mapping[str, Any]) -> list[Any]:
    """The source dataset as the plan named it (the engine's own naming, as an ingest's inputs)."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset

    named = plan.get("source_lineage") or {}
    return [InputDataset(namespace=named["namespace"], name=named["name"])] if named.get("name") else []


def _spec_source(spec: Any) -> list[Any]:
    """The source of a files spec, named from its path. A database source is named by its connection's
    host, which an event must not ask Airflow for (see :func:`_catalog`): its plan names it."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset

    from dativo_provider import objectstore

    if not isinstance(spec, Mapping) or spec.get("type") != "files" or not spec.get("path"):
        return []
    namespace, name = objectstore.parse(spec["path"]).openlineage_name()
    return [InputDataset(namespace=namespace, name=name)]


def split_plan(task: Any, stage: str, catalog: Any) -> Any:
    """The source in (a files source from its spec on start, any source from the plan); the table out
    on start only: the plan creates or evolves the table but commits no rows."""
    plan = _summary(task, stage)
    if plan is None:
        outputs = [_tables(catalog).output(task.table)] if stage == START else []
        return operator_lineage(_spec_source(task.source), outputs)
    counts = {"parts": len(plan.get("parts") or []), "schema_changes": len(plan.get("schema_changes") or [])}
    return operator_lineage(_planned_source(plan), [], run_facet("split_ingest_plan", counts))


def split_part(task: Any, stage: str, catalog: Any) -> Any:
    """The source in; the part's key range (numeric bounds: a date or decimal bound is text, and the
    counts-only facet leaves it out) or file count, and what it wrote, in the run facet. No output: see
    the comment above."""
    plan = _plan_of(task)
    output = _summary(task, stage) or {}
    given = output.get("index", task.part_index)
    index = int(given) if str(given).isdigit() else None
    parts = plan.get("parts") or []
    part = parts[index] if index is not None and index < len(parts) else {}
    key_range = part.get("key_range") or {}
    counts = {
        "part_index": index,
        "parts": len(parts),
        "key_lower": key_range.get("lower"),
        "key_upper": key_range.get("upper"),
        "files_planned": None if part.get("file_group") is None else len(part["file_group"]),
        **{k: output.get(k) for k in ("rows_read", "rows_written", "rows_rejected", "bytes_written")},
        "files_written": len(output["files"]) if "files" in output else None,
    }
    return operator_lineage(_planned_source(plan), [], run_facet("split_ingest_part", counts))


def split_commit(task: Any, stage: str, catalog: Any) -> Any:
    """As an ingest: the source in; the table out at the committed snapshot, with schema, identity column
    lineage and statistics; the parts and commit attempts in the run facet."""
    from dativo_provider.lineage.column_lineage import identity_lineage

    result = _summary(task, stage)
    tables = _tables(catalog)
    if result is None:
        table = _plan_of(task).get("table")
        outputs = [tables.output(table)] if stage == START and table else []
        return operator_lineage(_planned_source(_plan_of(task)), outputs)
    inputs = _result_inputs(result)
    columns = [column["name"] for column in result.get("schema", [])]
    relations = {"batch": (inputs[0].namespace, inputs[0].name)} if len(inputs) == 1 else {}
    lineage = column_lineage_facet(identity_lineage(columns, "batch"), relations)
    counts = {
        "parts": len((result.get("source_details") or {}).get("parts") or []),
        **{k: result.get(k) for k in ("rows_read", "rows_rejected", "files_written", "commit_attempts")},
        "committed": bool(result.get("committed")),
    }
    output = _written(tables, result["table"], result, lineage)
    return operator_lineage(inputs, [output], run_facet("split_ingest_commit", counts))


def _result_inputs(result: Mapping[str, Any]) -> list[Any]:
    from airflow.providers.common.compat.openlineage.facet import InputDataset

    return [InputDataset(namespace=d["namespace"], name=d["name"]) for d in result.get("inputs", [])]


# --- contracts ----------------------------------------------------------------------------------------


def contract_check(task: Any, stage: str, catalog: Any) -> Any:
    """The checked dataset as an input, with one assertion per check and the metrics of the run."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset

    report = _summary(task, stage, "report")
    if not task.table:  # a Postgres/MySQL table, named as the database sources name it
        checked = task.checked_dataset
        if not checked:
            return operator_lineage()
        return operator_lineage(
            [
                InputDataset(
                    namespace=checked["namespace"], name=checked["name"], inputFacets=quality_facets(report)
                )
            ]
        )
    tables = _tables(catalog, load_contract_quietly(task, task.contract, task.log), task.contract_dataset)
    snapshot_id = (report or {}).get("snapshot_id") or task.snapshot_id
    return operator_lineage([tables.input(task.table, snapshot_id or None, quality_facets(report))])


def quarantine_release(task: Any, stage: str, catalog: Any) -> Any:
    """The quarantine table in; the table (at the release's snapshot) and the quarantine table out."""
    summary = _summary(task, stage)
    tables = _tables(catalog, load_contract_quietly(task, task.contract, task.log), task.contract_dataset)
    quarantine = (
        (summary or {}).get("quarantine_table") or task.quarantine_table or f"{task.table}_quarantine"
    )
    if summary is None:
        return operator_lineage(
            [tables.input(quarantine)], [tables.output(task.table)] if stage == START else []
        )
    published = tables.output(
        summary["table"],
        summary.get("snapshot_id") or tables.current_snapshot(summary["table"]),
        statistics={"rowCount": summary.get("rows_published")},
        extra_facets=quality_facets(summary.get("quality")),
    )
    left = tables.output(quarantine, tables.current_snapshot(quarantine))
    counts = {k: summary.get(k) for k in ("rows_considered", "rows_published", "rows_requarantined")}
    return operator_lineage(
        [tables.input(quarantine)], [published, left], run_facet("quarantine_release", counts)
    )


def quarantine_purge(task: Any, stage: str, catalog: Any) -> Any:
    """The quarantine table out, at the snapshot the purge left; the rows purged in the run facet."""
    summary = _summary(task, stage)
    tables = _tables(catalog)
    if summary is None:
        return operator_lineage(outputs=[tables.output(task.quarantine_table)] if stage == START else [])
    output = tables.output(task.quarantine_table, tables.current_snapshot(task.quarantine_table))
    return operator_lineage([], [output], run_facet("quarantine_purge", summary))


# --- tables and hand-offs ---------------------------------------------------------------------------------


def maintenance(task: Any, stage: str, catalog: Any) -> Any:
    """Each maintained table in and out (at the snapshot maintenance left); totals in the run facet."""
    from dativo_provider.operators.common import native_list

    summary = _summary(task, stage)
    tables = _tables(catalog)
    if summary is None:
        names = native_list(task.tables) or [] if stage == START else []
        return operator_lineage([tables.input(t) for t in names], [])
    names = [result["table"] for result in summary.get("tables", [])]
    outputs = [tables.output(t, tables.current_snapshot(t)) for t in names]
    counts = {k: v for k, v in summary.items() if k != "tables"}
    return operator_lineage([tables.input(t) for t in names], outputs, run_facet("maintenance", counts))


def snapshot_export(task: Any, stage: str, catalog: Any) -> Any:
    """The table at the exported snapshot in; the destination (its physical location) out, with the
    exported columns' schema and identity column lineage."""
    summary = _summary(task, stage)
    tables = _tables(catalog)
    if summary is None:
        return operator_lineage([tables.input(task.table)] if stage == START else [], [])
    source = tables.input(summary["table"], summary["snapshot_id"])
    exported = [
        c
        for c in tables.columns(summary["table"], summary["snapshot_id"])
        if not task.columns or c.name in task.columns
    ]
    facets = {
        **_copied_columns(exported, source),
        "schema": source.facets["schema"].__class__(
            fields=[f for f in source.facets["schema"].fields if f.name in {c.name for c in exported}]
        ),
    }
    output = path_dataset(summary["destination"], facets)
    return operator_lineage(
        [source],
        [output],
        run_facet("snapshot_export", {"rows": summary.get("rows"), "files": len(summary.get("files", []))}),
    )


def _copied_columns(columns: list[Any], source: Any) -> dict[str, Any]:
    from dativo_provider.lineage.column_lineage import identity_lineage

    lineage = identity_lineage([c.name for c in columns], "source")
    return column_lineage_facet(lineage, {"source": (source.namespace, source.name)})


def sagemaker_export(task: Any, stage: str, catalog: Any) -> Any:
    """The feature table at the exported snapshot in; the feature group out (namespace
    ``sagemaker-featurestore://<region>``, name the group), with identity column lineage."""
    summary = _summary(task, stage)
    tables = _tables(catalog)
    table = (summary or {}).get("table") or (
        task.features.get("table") if isinstance(task.features, Mapping) else None
    )
    if summary is None:
        return operator_lineage([tables.input(table)] if table and stage == START else [], [])
    from airflow.providers.common.compat.openlineage.facet import OutputDataset

    source = tables.input(table, summary.get("snapshot_id"))
    columns = tables.columns(table, summary.get("snapshot_id"))
    region = task.region_name or getattr(task, "resolved_region", None) or "default"
    output = OutputDataset(
        namespace=f"sagemaker-featurestore://{region}",
        name=summary["feature_group_name"],
        facets=_copied_columns(columns, source),
    )
    counts = {k: summary.get(k) for k in ("rows_read", "records_written", "requests", "retried_records")}
    return operator_lineage([source], [output], run_facet("sagemaker_export", counts))


def _drift_assertion(column: Mapping[str, Any]) -> str:
    """``drift:<test> < <threshold>`` (p-value tests: ``>=``), as the drift report names a column's test."""
    passing = ">=" if column["value_kind"] == "p_value" else "<"
    return f"drift:{column['stattest']} {passing} {column['threshold']:g}"


def feast_materialize(task: Any, stage: str, catalog: Any) -> Any:
    """The feature table at the materialized snapshot in; the feature view out (namespace
    ``feast://<project>``, name the view); rows read and entities written or deleted in the run facet.
    The online store's connection is never named (it may carry a password)."""
    from airflow.providers.common.compat.openlineage.facet import OutputDataset

    summary = _summary(task, stage)
    tables = _tables(catalog)
    if summary is None:
        return operator_lineage([tables.input(task.table)] if stage == START else [], [])
    source = tables.input(summary["table"], summary.get("snapshot_id"))
    output = OutputDataset(namespace=f"feast://{summary['project']}", name=str(summary["feature_view"]))
    counts = {k: summary.get(k) for k in ("rows_read", "entities_written", "entities_deleted")}
    return operator_lineage([source], [output], run_facet("feast_materialize", counts))


def mlflow_log(task: Any, stage: str, catalog: Any) -> Any:
    """The training-set table at the logged snapshot, as the MLflow run's input."""
    summary = _summary(task, stage)
    if summary is None:
        return operator_lineage()
    source = summary.get("source") or {}
    tables = _tables(catalog)
    return operator_lineage(
        [tables.input(source["table"], source.get("snapshot_id"))],
        [],
        run_facet("mlflow_log_training_set", {"rows": summary.get("row_count")}),
    )


def drift_check(task: Any, stage: str, catalog: Any) -> Any:
    """Both samples in, at their pinned snapshots; the current one with the test per column as
    assertions (passing when the column did not drift) and its row and null counts as metrics."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    summary = _summary(task, stage)
    if summary is None:
        return operator_lineage()
    tables = _tables(catalog, load_contract_quietly(task, task.contract, task.log), task.contract_dataset)
    columns = summary.get("columns") or []
    checked = {
        "dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(
            assertions=[
                dq.Assertion(
                    assertion=_drift_assertion(c),
                    success=not c["drifted"],
                    column=c["column"],
                    actual=None if c.get("value") is None else str(c["value"]),
                )
                for c in columns
            ]
        ),
        "dataQualityMetrics": dqm.DataQualityMetricsInputDatasetFacet(
            rowCount=max((c["current_rows"] + c["current_nulls"] for c in columns), default=0),
            columnMetrics={
                c["column"]: dqm.ColumnMetrics(nullCount=c["current_nulls"], count=float(c["current_rows"]))
                for c in columns
            },
        ),
    }
    reference, current = summary.get("reference") or {}, summary.get("current") or {}
    inputs = [
        tables.input(reference["table"], reference.get("snapshot_id")),
        tables.input(current["table"], current.get("snapshot_id"), checked),
    ]
    counts = {
        "columns": len(columns),
        "drifted_columns": len(summary.get("drifted_columns") or []),
        "dataset_drift": bool(summary.get("dataset_drift")),
    }
    return operator_lineage(inputs, [], run_facet("drift_check", counts))


# --- data-subject requests: tables and counts, never an identifier -------------------------------------


def dsr(task: Any, stage: str, catalog: Any) -> Any:
    """Tables a request read or changed, and counts; no identifier (the results carry none)."""
    summary = _summary(task, stage)
    if summary is None:
        return operator_lineage()
    kind = type(task).__name__
    tables = _tables(catalog)
    if kind == "DsrDiscoverOperator":
        found = [t for t in summary.get("tables", []) if ":" not in t["table"]]  # another catalog's: skipped
        counts = {
            "tables_matched": len(summary.get("tables", [])),
            "rows": summary.get("total_rows"),
            "tables_unidentifiable": len(summary.get("unidentifiable", [])),
            "tables_missing": len(summary.get("missing", [])),
            "flagged": len(summary.get("flagged", [])),
        }
        return operator_lineage(
            [tables.input(t["table"], t.get("snapshot_id")) for t in found],
            [],
            run_facet("dsr_discover", counts),
        )
    if kind == "DsrExportOperator":
        read = [t for t in summary.get("tables", []) if ":" not in t["table"]]
        counts = {"tables": len(summary.get("tables", [])), "rows": summary.get("total_rows")}
        return operator_lineage(
            [tables.input(t["table"], t.get("snapshot_id")) for t in read],
            [path_dataset(summary["location"])],
            run_facet("dsr_export", counts),
        )
    if kind == "DsrRestrictOperator":
        registry = task.restrictions_table
        return operator_lineage(
            [],
            [tables.output(registry, tables.current_snapshot(registry))],
            run_facet(f"dsr_{summary.get('action', 'restrict')}", {"rows": summary.get("rows")}),
        )
    return _erasure(task, tables, summary)


#: The ``dativo`` facet's operation of the operators that erase, by class; other erasures: ``dsr_erase``.
_ERASING = {
    "TenantTerminateOperator": "tenant_terminate",
    "ErasureHandoffVerifyOperator": "erasure_handoff_verify",
}


def _erasure(task: Any, tables: IcebergLineage, summary: Mapping[str, Any]) -> Any:
    """An erasure (a tenant termination that erased, a hand-off's verification of the engine's delete):
    each table in and out at the snapshot it left."""
    erasure = summary.get("erasure") if isinstance(summary.get("erasure"), Mapping) else summary
    changed = [t for t in erasure.get("tables", []) if ":" not in str(t.get("table"))]
    counts: dict[str, Any] = {
        key: sum(int(t.get(key) or 0) for t in erasure.get("tables", []))
        for key in ("rows_deleted", "files_rewritten", "files_removed", "snapshots_expired")
    }
    counts.update(
        tables=len(erasure.get("tables", [])),
        serving_targets=len(erasure.get("serving", [])),
        verified=bool(erasure.get("verified")),
    )
    for step in ("connections", "variables", "dags"):  # a termination's steps: how many, never which
        outcome = summary.get(step)
        if isinstance(outcome, Mapping):
            counts[step] = sum(len(names) for names in outcome.values() if isinstance(names, (list, tuple)))
    outputs = [tables.output(t["table"], tables.current_snapshot(t["table"])) for t in changed]
    inputs = [tables.input(t["table"]) for t in changed]
    if type(task).__name__ == "ErasureHandoffVerifyOperator":  # the engine's name is text: count its tables
        counts["tables_handed_off"] = sum(1 for t in erasure.get("tables", []) if t.get("engine"))
    operation = _ERASING.get(type(task).__name__, "dsr_erase")
    return operator_lineage(inputs, outputs, run_facet(operation, counts))


def handoff_plan(task: Any, stage: str, catalog: Any) -> Any:
    """The tables handed to the engine, each at the snapshot its DELETE was planned on, and those holding
    the subject in history only; no output (the engine deletes, the verification reports it). Counts
    only: the plan's statement paths and HMACs stay out too."""
    plan = _summary(task, stage)
    if plan is None:
        return operator_lineage()
    tables = _tables(catalog)
    planned = [t for t in plan.get("tables", []) if ":" not in str(t.get("table"))]
    history = [t for t in plan.get("history_only", []) if ":" not in str(t)]
    counts = {
        "tables": len(planned),
        "rows": sum(int(t.get("rows") or 0) for t in planned),
        "branches": sum(len(t.get("branches") or ()) for t in planned),
        "tables_history_only": len(history),
    }
    inputs = [tables.input(t["table"], t.get("base_snapshot_id")) for t in planned]
    inputs += [tables.input(t) for t in history]
    return operator_lineage(inputs, [], run_facet("erasure_handoff_plan", counts))


def handoff_verify(task: Any, stage: str, catalog: Any) -> Any:
    """As an erasure (:func:`_erasure`): the tables the engine deleted from and the purge changed."""
    summary = _summary(task, stage)
    return operator_lineage() if summary is None else _erasure(task, _tables(catalog), summary)


BUILDERS: dict[str, Callable[[Any, str, Any], Any]] = {
    "IcebergIngestOperator": ingest,
    "FeatureTransformOperator": feature_transform,
    "TrainingSetOperator": training_set,
    "ContractCheckOperator": contract_check,
    "QuarantineReleaseOperator": quarantine_release,
    "QuarantinePurgeOperator": quarantine_purge,
    "IcebergMaintenanceOperator": maintenance,
    "SnapshotExportOperator": snapshot_export,
    "FeatureStoreExportOperator": sagemaker_export,
    "MlflowLogTrainingSetOperator": mlflow_log,
    "DsrBaseOperator": dsr,
    "DriftCheckMixin": drift_check,
    "FeastMaterializeOperator": feast_materialize,
    "SplitIngestPlanOperator": split_plan,
    "SplitIngestPartOperator": split_part,
    "SplitIngestCommitOperator": split_commit,
    "ErasureHandoffPlanOperator": handoff_plan,
    "ErasureHandoffVerifyOperator": handoff_verify,
}
