"""One table across many workers: plan, mapped parts and one commit (see ``docs/split-ingest.md``).

``split_ingest(...)`` builds the three tasks in a task group; the operators are there for DAGs that wire
them by hand. Plans and part outputs travel as JSON through XCom, so the parts run on any executor
(Celery workers, Kubernetes pods) and nothing but their data files is shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dativo_provider.compat import BaseOperator, Context, TaskGroup
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import TableAliasOutlet, airflow_errors, native_bound
from dativo_provider.operators.lineage import OpenLineageFacets

#: Retries of a part task unless the DAG says otherwise: a retried part writes new files and only its
#: final attempt's output reaches the commit, so retrying never repeats rows.
DEFAULT_PART_RETRIES = 2
#: The XCom key of the plan itself (for the commit); the return value is one assignment per part.
PLAN_KEY = "plan"


class SplitIngestPlanOperator(OpenLineageFacets, BaseOperator):
    """Plan a split ingest: read the committed state, create or evolve the table, freeze the cursor
    window and cut the source into key ranges (or file groups). Pushes the plan (JSON) under the XCom key ``plan`` for
    :class:`SplitIngestCommitOperator`, and returns one ``{"plan": ..., "part_index": i}`` per part, which
    :class:`SplitIngestPartOperator` is mapped over with ``.partial(...).expand_kwargs(plan_task.output)``.

    :param source: a ``postgres``, ``mysql`` or ``files`` source spec (connection ids only), as for
        :class:`~dativo_provider.operators.ingest.IcebergIngestOperator`; files are split into groups.
    :param table: the target table, ``"namespace.table"``.
    :param parts: how many parts at most (fewer when the split column has fewer values).
    :param split_by: an integer, decimal, date or timestamp column to cut on; default the primary key
        when it is one integer column, else the cursor.
    :param write_options: :class:`~dativo_provider.ingest.options.WriteOptions` as a dict, every mode
        (``merge`` reads the key columns of every part's files back at the commit).
    :param iceberg_conn_id: the ``iceberg`` connection.
    :param upper_bound: inclusive upper bound for the cursor, e.g. ``"{{ data_interval_end }}"``; the
        window is frozen at the lower of it and the cursor's maximum when the plan runs.
    """

    template_fields: Sequence[str] = ("source", "table", "write_options", "upper_bound", "split_by")
    template_fields_renderers: ClassVar[dict[str, str]] = {"source": "json", "write_options": "json"}
    ui_color = "#cfe8fc"

    def __init__(self, *, source: Mapping[str, Any], table: str, parts: int, split_by: str | None = None,
                 write_options: Mapping[str, Any] | None = None,
                 iceberg_conn_id: str = IcebergHook.default_conn_name, upper_bound: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.table = table
        self.parts = parts
        self.split_by = split_by
        self.write_options = write_options or {}
        self.iceberg_conn_id = iceberg_conn_id
        self.upper_bound = upper_bound

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from dativo_provider.hooks.sources import source_connection_config
        from dativo_provider.ingest.split import plan_split_ingest
        from dativo_provider.sources import ReadBounds

        with airflow_errors():
            plan = plan_split_ingest(
                dict(self.source), source_connection_config(self.source),
                IcebergHook(self.iceberg_conn_id).get_catalog_config(), self.table, self.parts,
                split_by=self.split_by or None, write_options=self.write_options,
                bounds=ReadBounds(upper=native_bound(self.upper_bound)), run_id=context.get("run_id"),
            )
        described = self.run_summary = plan.to_dict()  # OpenLineage names the source from it
        context["ti"].xcom_push(key=PLAN_KEY, value=described)
        return [{"plan": described, "part_index": index} for index in range(len(plan.parts))]


class SplitIngestPartOperator(OpenLineageFacets, BaseOperator):
    """Write one part of a split ingest (``.partial(...).expand_kwargs(plan_task.output)``): its data
    files, not committed. Returns their exact description (JSON) for :class:`SplitIngestCommitOperator`.

    A failed attempt deletes its files; a killed worker's files stay as orphans (maintenance's orphan
    removal deletes them). Give it retries: a retried part writes new files and only the final
    attempt's output is committed.

    :param plan: the plan (given by the mapping, as ``part_index``).
    :param part_index: which part.
    :param iceberg_conn_id: the ``iceberg`` connection.
    """

    template_fields: Sequence[str] = ("plan", "part_index")
    ui_color = "#e3f1fd"

    def __init__(self, *, plan: Any, part_index: Any, iceberg_conn_id: str = IcebergHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.part_index = part_index
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.hooks.sources import source_connection_config
        from dativo_provider.ingest.split import SplitPlan, write_split_part

        with airflow_errors():
            plan = SplitPlan.from_dict(self.plan)
            output = write_split_part(plan, int(self.part_index), source_connection_config(plan.source),
                                      IcebergHook(self.iceberg_conn_id).get_catalog_config())
        self.run_summary = output.to_dict()
        return self.run_summary


class SplitIngestCommitOperator(OpenLineageFacets, TableAliasOutlet, BaseOperator):
    """Commit every part of a split ingest as one snapshot holding the combined source state; push the
    run summary (rows read = written + rejected, summed over the parts) to XCom and emit the table's
    asset event through the alias ``dativo:<dag id>.<task id>``.

    It runs only when every part succeeded (Airflow's default trigger rule); a retried commit that
    finds its own snapshot returns the same summary. If another run of the same source committed since
    the plan, it fails without retries (``ConcurrentRunError``) and nothing lands.

    :param plan: the plan (``plan_task.output["plan"]``).
    :param part_outputs: the mapped part task's return values (``part_task.output``).
    :param iceberg_conn_id: the ``iceberg`` connection.
    """

    template_fields: Sequence[str] = ("plan", "part_outputs")
    ui_color = "#cfe8fc"

    def __init__(self, *, plan: Any, part_outputs: Any, iceberg_conn_id: str = IcebergHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.part_outputs = part_outputs
        self.iceberg_conn_id = iceberg_conn_id
        self.declare_table_alias()

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.ingest.split import SplitPlan, commit_split_ingest

        with airflow_errors():
            plan = SplitPlan.from_dict(self.plan)
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            result = commit_split_ingest(plan, list(self.part_outputs), catalog)
        event = None
        if result.committed:
            extra = result.event_extra()
            uri = self.emit_table_event(context, catalog, plan.table, extra)
            event = {"uri": uri, "extra": extra} if uri else None
        self.run_summary = {**result.to_dict(), "asset_event": event}
        return self.run_summary


def split_ingest(
    group_id: str,
    *,
    source: Mapping[str, Any],
    table: str,
    parts: int,
    split_by: str | None = None,
    write_options: Mapping[str, Any] | None = None,
    iceberg_conn_id: str = IcebergHook.default_conn_name,
    upper_bound: Any = None,
    **task_kwargs: Any,
) -> TaskGroup:
    """A split ingest in one call: ``plan >> write_part (mapped, one task per part) >> commit`` in a
    task group ``group_id``. Use it where a task would go: ``seed >> split_ingest("orders", ...)``.

    :param task_kwargs: passed to all three tasks (``pool``, ``queue``, ``executor_config``, ...); the
        part tasks get ``retries=2`` unless ``retries`` is given.
    Other parameters as for :class:`SplitIngestPlanOperator`.
    """
    with TaskGroup(group_id) as group:
        plan = SplitIngestPlanOperator(
            task_id="plan", source=source, table=table, parts=parts, split_by=split_by,
            write_options=write_options, iceberg_conn_id=iceberg_conn_id, upper_bound=upper_bound, **task_kwargs,
        )
        part_kwargs = {"retries": DEFAULT_PART_RETRIES, **task_kwargs}
        written = SplitIngestPartOperator.partial(
            task_id="write_part", iceberg_conn_id=iceberg_conn_id, **part_kwargs,
        ).expand_kwargs(plan.output)
        SplitIngestCommitOperator(
            task_id="commit", plan=plan.output[PLAN_KEY], part_outputs=written.output,
            iceberg_conn_id=iceberg_conn_id,
            **task_kwargs,
        )
    return group
