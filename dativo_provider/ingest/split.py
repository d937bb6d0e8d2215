"""One table across many workers: a split ingest writes parts anywhere and commits them once.

Three steps, each a plain function whose input and output are JSON (so they travel through XCom
between tasks that run on any executor):

1. :func:`plan_split_ingest` reads the committed state (and the snapshot that holds it), creates or
   evolves the table, freezes the cursor's upper bound so every part reads the same window, and cuts
   a database source into key ranges on the server's min/max of the split column, or a files source
   into groups of the files due (the state after them is known then, and is what the commit stores).
2. :func:`write_split_part` reads one key range and writes its data files against the table's schema
   and partition spec, without committing; it returns their exact description.
3. :func:`commit_split_ingest` commits the files of every part in ONE snapshot that also holds the
   combined source state and the split run's key (``dativo.split-run``).

Exactly once: a part that fails in Python deletes its files; a retried part writes new files and only
its final output reaches the commit, so rows never repeat. If any part fails the commit never runs and
the table does not change (files of a killed worker stay as orphans for maintenance's orphan removal).
The commit refuses with :class:`ConcurrentRunError` when another run of the same source committed
since the plan, and a retried commit that finds its own snapshot returns the same result instead of
committing again.

A failed FIRST run leaves at most an empty table (created by the plan, no snapshot): the table must
exist before the parts write, since every part's files follow its schema and partition spec.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConcurrentRunError, ConfigError, SchemaDriftError, SourceError
from dativo_provider.iceberg.commit import CommitPlan, commit
from dativo_provider.iceberg.data_file_json import data_file_from_dict, data_file_to_dict
from dativo_provider.iceberg.schema import apply_evolution, as_optional, plan_schema, storage_schema
from dativo_provider.iceberg.state import CommittedState, read_state, snapshot_properties
from dativo_provider.iceberg.tables import commit_creation, load_or_stage
from dativo_provider.ingest.engine import stream_into_files, write_order
from dativo_provider.ingest.merge_keys import distinct_merge_keys
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ingest.result import IngestResult, SchemaField
from dativo_provider.sources.base import WATERMARK_KEY, LineageDataset, ReadBounds, RejectedRow
from dativo_provider.sources.sql_common import column_value, to_datetime, utc_naive

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.sources.sql_common import SqlSource

log = logging.getLogger(__name__)

#: The snapshot summary key that marks the commit of one split run (its :attr:`SplitPlan.run_key`).
SPLIT_RUN_KEY = "dativo.split-run"
#: Source types a split ingest can cut: databases into key ranges on the server, files into groups.
SPLITTABLE_SOURCES = ("postgres", "mysql", "files")
_DATABASES = ("postgres", "mysql")
#: Bump when the plan or part layout changes; another version is refused, not misread.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SplitPart:
    """One part of a split ingest.

    :param key_range: a database source's ``key_range`` for this part (``{"column", "lower", "upper"}``,
        lower inclusive, upper exclusive, None unbounded); None reads every row.
    :param reads: False when the plan found nothing to read (an empty source): the part writes nothing.
    :param file_group: a files source's files for this part (paths relative to its ``path``).
    """

    index: int
    key_range: dict[str, Any] | None
    reads: bool = True
    file_group: list[str] | None = None

    @property
    def spec_patch(self) -> dict[str, Any]:
        """What the part adds to the source spec to read its share."""
        if self.file_group is not None:
            return {"file_group": self.file_group}
        return {} if self.key_range is None else {"key_range": self.key_range}


@dataclass
class SplitPlan:
    """What every part reads and writes against, and what the commit checks; JSON-serialisable.

    :param source: the source spec as given (connection ids only, no secrets).
    :param run_key: recorded as ``dativo.split-run`` in the commit's snapshot: run id, table and a
        unique plan id, so a retried commit recognises its own snapshot and a rerun plan never does.
    :param expected_state_snapshot: the snapshot holding the state the plan read; the commit is
        refused if another snapshot of the same source appears first.
    :param prior_state: that state; every part reads after it.
    :param upper: the frozen cursor upper bound (inclusive) every part reads up to; None for a full read.
    :param split_by: the column the key ranges are on; None when the source is read as one part.
    :param schema_id: the table schema the parts write against.
    :param spec_id: the partition spec the parts write against.
    :param state_from_plan: the commit stores :attr:`planned_state` (a files source: the plan knows every
        file the parts read) instead of combining the parts' states (the newest watermark).
    """

    table: str
    source: dict[str, Any]
    write_options: dict[str, Any]
    source_identity: str
    source_lineage: dict[str, str]
    output_lineage: dict[str, str]
    run_key: str
    run_id: str | None
    expected_state_snapshot: int | None
    prior_state: dict[str, Any] | None
    upper: Any
    split_by: str | None
    parts: list[SplitPart]
    schema_id: int
    spec_id: int
    schema_changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state_from_plan: bool = False
    planned_state: dict[str, Any] | None = None

    @property
    def options(self) -> WriteOptions:
        return WriteOptions.from_mapping(self.write_options)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for XCom)."""
        return {"version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SplitPlan:
        """The plan :meth:`to_dict` described; refuses another layout version."""
        values = dict(_versioned(values, "split ingest plan"))
        values["parts"] = [SplitPart(**part) for part in values["parts"]]
        return cls(**values)


@dataclass
class PartOutput:
    """What one part wrote: its data files (exact descriptions), counts and its own state.

    ``rows_read == rows_written + rows_rejected``.
    """

    run_key: str
    index: int
    files: list[dict[str, Any]]
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    bytes_written: int = 0
    state: dict[str, Any] | None = None
    seconds: float = 0.0
    rejected_samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for XCom)."""
        return {"version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PartOutput:
        """The output :meth:`to_dict` described; refuses another layout version."""
        return cls(**_versioned(values, "split ingest part output"))


def _versioned(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    if not hasattr(values, "get") or values.get("version") != FORMAT_VERSION:
        shown = values.get("version") if hasattr(values, "get") else type(values).__name__
        raise ConfigError(f"not a {what} of version {FORMAT_VERSION} (got {shown!r}); rerun the whole split ingest")
    return {k: v for k, v in values.items() if k != "version"}


# --- 1. the plan --------------------------------------------------------------------------------


def plan_split_ingest(
    source_spec: Mapping[str, Any],
    connection: Any,
    catalog: CatalogConfig,
    table: str,
    parts: int,
    *,
    split_by: str | None = None,
    write_options: Mapping[str, Any] | None = None,
    bounds: ReadBounds | None = None,
    run_id: str | None = None,
) -> SplitPlan:
    """Prepare the table and cut the source into ``parts`` key ranges (databases) or file groups (files).

    :param source_spec: a ``postgres``, ``mysql`` or ``files`` source spec (without ``key_range`` or
        ``file_group``).
    :param connection: the source's connection config (a ``DatabaseConfig``, or an ``ObjectStoreConfig``
        or None for files).
    :param parts: how many parts at most (fewer when the split column has fewer distinct values, or
        there are fewer files to read).
    :param split_by: an integer, decimal, date or timestamp column to cut on; default the primary key
        when it is one integer column, else the cursor.
    :param write_options: :class:`WriteOptions` as a dict, every mode; a ``merge`` reads the key columns of
        every part's files back at the commit.
    :param bounds: ``upper`` caps the cursor window (it is frozen at the lower of it and the cursor's
        current maximum on the server).
    :param run_id: recorded in the commit (e.g. the Airflow run id).
    :raises ConfigError: an unsupported source type, mode, split column or part count.
    """
    from dativo_provider.sources import build_source

    options = _check_request(source_spec, table, parts, write_options)
    bounds = bounds or ReadBounds()
    if bounds.lookback is not None:
        raise ConfigError("split ingest: give a lookback in the source spec ('lookback'), not in the bounds")
    source: Any = build_source(source_spec, connection)
    if source.may_repeat_rows and options.mode not in ("merge", "replace"):
        raise ConfigError(
            f"split ingest into {table}: the source re-reads rows behind its watermark (a lookback) but write "
            f"mode is {options.mode!r}: use mode 'merge' with merge_keys (or 'replace') so repeated rows replace "
            "themselves instead of repeating"
        )
    iceberg = catalog.load()
    branch = options.branch or "main"
    prior = _prior_state(iceberg, table, source, branch)
    prior_state = prior.state if prior else None
    is_files = source_spec.get("type") == "files"
    if is_files and split_by is not None:
        raise ConfigError("split ingest: 'split_by' applies to database sources; a files source is split "
                          "into groups of files")
    with source.open(prior_state, bounds) as stream:
        source_schema = stream.schema if options.required_columns else as_optional(stream.schema)
        groups = stream.file_groups(parts) if is_files else []
        planned_state = stream.state_after_all() if is_files else None
    changes: list[str] = []
    warnings: list[str] = []
    target = _prepare_table(iceberg, table, source_schema, options, changes, warnings)
    column: str | None = None
    if is_files:
        upper = bounds.upper
        cut = [SplitPart(i, None, file_group=group) for i, group in enumerate(groups)]
        cut = cut or [SplitPart(0, None, reads=False)]
    else:
        upper = _frozen_upper(source, prior_state, bounds)
        column = split_by or _default_split_column(source)
        cut = _cut(source, column, prior_state, ReadBounds(upper=upper), parts) if column else [SplitPart(0, None)]
        if source.spec.cursor and upper is None:
            # Nothing to read yet: no cursor value on the server and no watermark to hold the window shut.
            cut = [SplitPart(0, None, reads=False)]
    plan = SplitPlan(
        table=table,
        source=dict(source_spec),
        write_options=dict(write_options or {}),
        source_identity=source.identity,
        source_lineage=asdict(source.lineage),
        output_lineage=asdict(LineageDataset(catalog.lineage_namespace, table)),
        run_key=f"{run_id or 'manual'}|{table}|{uuid.uuid4().hex[:12]}",
        run_id=run_id,
        expected_state_snapshot=prior.snapshot_id if prior else None,
        prior_state=prior_state,
        upper=_json_value(upper),
        split_by=column if len(cut) > 1 else None,
        parts=cut,
        schema_id=target.metadata.current_schema_id,
        spec_id=target.metadata.default_spec_id,
        schema_changes=changes,
        warnings=warnings,
        state_from_plan=is_files,
        planned_state=planned_state,
    )
    log.info("%s: split ingest planned in %d part(s)%s; cursor window up to %r", table, len(cut),
             f" on {column!r}" if plan.split_by else "", plan.upper)
    for part in cut:
        log.info("%s: part %d reads %s", table, part.index, _describe_part(part))
    return plan


def _check_request(source_spec: Mapping[str, Any], table: str, parts: int,
                   write_options: Mapping[str, Any] | None) -> WriteOptions:
    kind = source_spec.get("type")
    if kind not in SPLITTABLE_SOURCES:
        raise ConfigError(
            f"split ingest cannot cut a {kind!r} source into parts; it splits postgres and mysql sources into "
            "key ranges and files sources into groups of files (use IcebergIngestOperator for other sources)"
        )
    for key in ("key_range", "file_group"):
        if key in source_spec:
            raise ConfigError(f"split ingest: the source spec must not have a {key!r}; the plan sets one per part")
    if "." not in table:
        raise ConfigError(f"table {table!r} must be 'namespace.table'")
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ConfigError(f"split ingest 'parts' must be a positive integer, got {parts!r}")
    return WriteOptions.from_mapping(write_options)


def _prior_state(iceberg: Catalog, table: str, source: Any, branch: str) -> CommittedState | None:
    """The state the source committed; under an identity it had before if none under its own yet (then
    nothing is committed under the new identity, so the commit expects no snapshot of it)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        loaded = iceberg.load_table(table)
    except NoSuchTableError:
        return None
    found = read_state(loaded, source.identity, branch)
    for former in () if found else source.former_identities:
        earlier = read_state(loaded, former, branch)
        if earlier is not None:
            return CommittedState(snapshot_id=None, state=earlier.state)  # type: ignore[arg-type]
    return found


def _prepare_table(iceberg: Catalog, name: str, source_schema: pa.Schema, options: WriteOptions,
                   changes: list[str], warnings: list[str]) -> Table:
    """Create the table (committed, still without a snapshot) or evolve its schema per the policy."""
    incoming = storage_schema(source_schema)
    table, creation = load_or_stage(iceberg, name, incoming, options)
    if creation is not None:
        table, created = commit_creation(iceberg, name, creation)
        if created:
            changes.append(f"created {name} with {len(incoming)} columns")
    schema_plan = plan_schema(table, incoming, options.schema_policy)
    warnings.extend(schema_plan.warnings)
    for warning in schema_plan.warnings:
        log.warning("%s", warning)
    if schema_plan.evolve:
        table = apply_evolution(table, incoming)
        changes.extend(c.describe() for c in schema_plan.evolved)
    missing_keys = [k for k in options.merge_keys if k not in table.schema().column_names]
    if missing_keys:
        raise ConfigError(f"merge_keys {missing_keys} are not columns of {name}")
    return table


def _frozen_upper(source: SqlSource, prior_state: Any, bounds: ReadBounds) -> Any:
    """The cursor bound every part reads up to: the lower of ``bounds.upper`` and the cursor's maximum
    now; the committed watermark when the window holds no row (so it stays shut for every part)."""
    cursor = source.spec.cursor
    if cursor is None:
        return None
    extent = source.extent(cursor, prior_state, bounds)
    upper = column_value(bounds.upper, extent.arrow_type) if bounds.upper is not None else None
    if extent.high is not None:
        return extent.high if upper is None or extent.high < upper else upper
    watermark = (prior_state or {}).get(WATERMARK_KEY)
    return None if watermark is None else column_value(watermark, extent.arrow_type)


def _default_split_column(source: SqlSource) -> str | None:
    """The primary key when it is one integer column, else the cursor, else None (one part)."""
    key = source.primary_key()
    if len(key) == 1:
        import pyarrow as pa

        extent = source.extent(key[0], None, ReadBounds()) if source.spec.query is None else None
        if extent is not None and pa.types.is_integer(extent.arrow_type):
            return key[0]
    return source.spec.cursor


def _cut(source: SqlSource, column: str, prior_state: Any, bounds: ReadBounds, parts: int) -> list[SplitPart]:
    """Key ranges of ``column`` over the rows in the window: the first has no lower bound and the last
    no upper bound, so every row (null keys included) is in exactly one."""
    extent = source.extent(column, prior_state, bounds)
    _check_split_type(column, extent.arrow_type)
    if extent.low is None or parts == 1:
        return [SplitPart(0, None)]
    edges = _edges(extent.low, extent.high, parts)
    if not edges:
        return [SplitPart(0, None)]
    lowers: list[Any] = [None, *edges]
    uppers: list[Any] = [*edges, None]
    return [
        SplitPart(i, {"column": column, "lower": _json_value(lower), "upper": _json_value(upper)})
        for i, (lower, upper) in enumerate(zip(lowers, uppers))
    ]


def _check_split_type(column: str, arrow_type: pa.DataType) -> None:
    import pyarrow as pa

    t = pa.types
    if not (t.is_integer(arrow_type) or t.is_decimal(arrow_type) or t.is_date(arrow_type)
            or t.is_timestamp(arrow_type)):
        raise ConfigError(
            f"split_by column {column!r} has type {arrow_type}; split on an integer, decimal, date or "
            "timestamp column"
        )


def _edges(low: Any, high: Any, parts: int) -> list[Any]:
    """``parts - 1`` evenly spaced inner boundaries of ``[low, high]``, each above ``low``, no repeats."""
    if isinstance(low, datetime):
        span = high - low
        found = [low + span * i / parts for i in range(1, parts)]
    elif isinstance(low, date):
        days = (high - low).days + 1
        found = [low + timedelta(days=days * i // parts) for i in range(1, parts)]
    elif isinstance(low, int):
        width = high - low + 1
        found = [low + width * i // parts for i in range(1, parts)]
    else:
        found = [low + (high - low) * i / parts for i in range(1, parts)]
    return sorted({edge for edge in found if low < edge <= high})


def _json_value(value: Any) -> Any:
    """A bound as JSON the source's ``key_range``/``upper`` reads back exactly."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _describe_part(part: SplitPart) -> str:
    if not part.reads:
        return "nothing (the source has no rows in the window)"
    if part.file_group is not None:
        return f"{len(part.file_group)} file(s)"
    if part.key_range is None:
        return "every row"
    lower, upper = part.key_range["lower"], part.key_range["upper"]
    column = part.key_range["column"]
    shown = [f"{column} >= {lower!r}" if lower is not None else None,
             f"{column} < {upper!r}" if upper is not None else None]
    return " and ".join(s for s in shown if s) + (" (and null keys)" if lower is None else "")


# --- 2. one part --------------------------------------------------------------------------------


def write_split_part(plan: SplitPlan, part_index: int, connection: Any, catalog: CatalogConfig) -> PartOutput:
    """Read part ``part_index`` of ``plan`` and write its data files, without committing.

    Memory stays flat (Arrow batches stream into rolling files). If anything fails in Python the files
    are deleted; a killed worker leaves them as orphans, which no snapshot references.

    :raises SchemaDriftError: the table's schema or partition spec changed since the plan (rerun the
        whole split ingest: retrying the part cannot help).
    """
    from dativo_provider.sources import build_source

    if not 0 <= part_index < len(plan.parts):
        raise ConfigError(f"split ingest of {plan.table}: part {part_index} does not exist; the plan has "
                          f"{len(plan.parts)} part(s)")
    part = plan.parts[part_index]
    started = time.monotonic()
    output = PartOutput(run_key=plan.run_key, index=part_index, files=[], state=plan.prior_state)
    if not part.reads:
        log.info("%s: part %d has nothing to read", plan.table, part_index)
        return output
    table = _table_as_planned(catalog.load(), plan)
    source = build_source({**plan.source, **part.spec_patch}, connection)
    options = plan.options
    log.info("%s: part %d/%d reads %s", plan.table, part_index + 1, len(plan.parts), _describe_part(part))
    with source.open(plan.prior_state, ReadBounds(upper=plan.upper)) as stream:
        files = _write(table, plan.table, stream, options, output, part_index)
        output.state = stream.state()
        output.rows_rejected = stream.report.rows_rejected
        output.rejected_samples = [asdict(r) for r in stream.report.rejected_samples]
    output.rows_read = output.rows_written + output.rows_rejected
    output.files = [data_file_to_dict(f) for f in files]
    output.bytes_written = sum(f.file_size_in_bytes for f in files)
    output.seconds = round(time.monotonic() - started, 3)
    rate = f", {output.rows_read / output.seconds:.0f} rows/s" if output.seconds > 0 else ""
    log.info("%s: part %d read %d rows, wrote %d (%d rejected) into %d file(s) in %.2fs%s", plan.table,
             part_index, output.rows_read, output.rows_written, output.rows_rejected, len(files),
             output.seconds, rate)
    return output


def _table_as_planned(iceberg: Catalog, plan: SplitPlan) -> Table:
    table = iceberg.load_table(plan.table)
    metadata = table.metadata
    if metadata.current_schema_id != plan.schema_id or metadata.default_spec_id != plan.spec_id:
        raise SchemaDriftError(
            f"{plan.table}: its schema or partitioning changed since the split ingest was planned "
            f"(schema {plan.schema_id} -> {metadata.current_schema_id}, spec {plan.spec_id} -> "
            f"{metadata.default_spec_id}); rerun the whole split ingest"
        )
    return table


def _write(table: Table, name: str, stream: Any, options: WriteOptions, output: PartOutput,
           part_index: int) -> list[Any]:
    def counted(rows: int) -> None:
        output.rows_written += rows

    # No merge keys here: a merge reads every part's keys back at the commit (a key may repeat across parts).
    files, _ = stream_into_files(table, name, stream, options, f"{name} part {part_index}: streaming", counted)
    return files


# --- 3. the commit ------------------------------------------------------------------------------


def commit_split_ingest(plan: SplitPlan, part_outputs: Sequence[PartOutput | Mapping[str, Any]],
                        catalog: CatalogConfig) -> IngestResult:
    """Commit every part's files as one snapshot holding the combined source state.

    :param part_outputs: one output per part of the plan (in any order), from the parts' final attempts.
    :returns: the run summary; ``rows_read == rows_written + rows_rejected`` summed over the parts.
    :raises ConcurrentRunError: another run of the same source committed since the plan; nothing landed.
    :raises CommitConflictError: other writers won the commit race every time; rerunning the commit is safe.
    """
    started = time.monotonic()
    outputs = _check_outputs(plan, part_outputs)
    options = plan.options
    branch = options.branch or "main"
    result = _result(plan, outputs, branch)
    iceberg = catalog.load()
    table = iceberg.load_table(plan.table)
    own = _own_snapshot(table, branch, plan.run_key)
    if own is not None:
        log.info("%s: split run %s was already committed as snapshot %d (a retried commit); not committing "
                 "again", plan.table, plan.run_key, own)
        result.snapshot_id, result.committed = own, True
        return _finish(result, table, started)
    files = [data_file_from_dict(described) for output in outputs for described in output.files]
    new_state = plan.planned_state if plan.state_from_plan else _combined_state(plan, outputs)
    result.watermark_after = (new_state or plan.prior_state or {}).get(WATERMARK_KEY)
    if options.mode != "replace" and not files and new_state == plan.prior_state:
        result.snapshot_id = _head(table, branch)
        return _finish(result, table, started)
    merging = options.mode == "merge" and bool(files)
    try:
        keys = _merge_keys(table, files, options.merge_keys) if merging else None
    except SourceError:
        _delete_files(table, files)  # terminal: a rerun writes the parts again
        raise
    commit_plan = CommitPlan(
        identifier=plan.table,
        # A merge of no rows only moves the state: nothing to remove.
        mode=options.mode if merging or options.mode != "merge" else "append",
        branch=branch,
        new_files=files,
        merge_keys=options.merge_keys,
        keys=keys,
        properties={**snapshot_properties(plan.source_identity, new_state, plan.run_id),
                    SPLIT_RUN_KEY: plan.run_key},
        source_identity=plan.source_identity,
        expected_state_snapshot=plan.expected_state_snapshot,
        sort_by=write_order(table, options),
        target_file_bytes=options.target_file_size_mb * 1024 * 1024,
    )
    try:
        outcome = commit(iceberg, commit_plan, options.max_commit_attempts)
    except ConcurrentRunError:
        # Terminal: the state moved on, so these files can never be committed; a commit race lost
        # (CommitConflictError) keeps them for the task's retry.
        _delete_files(table, files)
        raise
    result.commit_attempts = outcome.attempts
    result.previous_snapshot_id = outcome.previous_snapshot_id
    result.files_removed = outcome.files_removed
    result.rows_deleted = outcome.rows_deleted
    result.files_rewritten = outcome.files_rewritten
    result.bytes_rewritten = outcome.bytes_rewritten
    result.snapshot_id = outcome.snapshot_id
    result.committed = True
    return _finish(result, iceberg.load_table(plan.table), started)


def _merge_keys(table: Table, files: list[Any], key_columns: tuple[str, ...]) -> pa.Table:
    """The distinct merge keys of every part's rows, read back from the parts' files (key columns only);
    refuses null keys and a key repeated in this run, as a merge needs one row per key."""
    import pyarrow as pa
    from pyiceberg.table import FileScanTask

    from dativo_provider.iceberg.reader import stream_file

    key_schema = table.schema().select(*key_columns)
    batches = [batch for data_file in files for batch in stream_file(table, FileScanTask(data_file), key_schema)]
    keys = pa.Table.from_batches(batches).select(list(key_columns))
    return distinct_merge_keys(keys, key_columns, ", across all parts")


def _check_outputs(plan: SplitPlan, part_outputs: Sequence[PartOutput | Mapping[str, Any]]) -> list[PartOutput]:
    outputs = [o if isinstance(o, PartOutput) else PartOutput.from_dict(o) for o in part_outputs]
    foreign = [o.index for o in outputs if o.run_key != plan.run_key]
    if foreign:
        raise ConfigError(f"split ingest of {plan.table}: part output(s) {foreign} belong to another plan "
                          f"than {plan.run_key!r}; rerun the whole split ingest")
    indexes = sorted(o.index for o in outputs)
    if indexes != list(range(len(plan.parts))):
        raise ConfigError(f"split ingest of {plan.table}: expected one output for each of the plan's "
                          f"{len(plan.parts)} part(s), got parts {indexes}; nothing was committed")
    return sorted(outputs, key=lambda o: o.index)


def _result(plan: SplitPlan, outputs: list[PartOutput], branch: str) -> IngestResult:
    result = IngestResult(
        table=plan.table, mode=plan.options.mode, source=plan.source_identity, branch=branch,
        inputs=[LineageDataset(**plan.source_lineage)], outputs=[LineageDataset(**plan.output_lineage)],
    )
    result.rows_read = sum(o.rows_read for o in outputs)
    result.rows_written = sum(o.rows_written for o in outputs)
    result.rows_rejected = sum(o.rows_rejected for o in outputs)
    result.files_written = sum(len(o.files) for o in outputs)
    result.bytes_written = sum(o.bytes_written for o in outputs)
    result.rejected_samples = [RejectedRow(**r) for o in outputs for r in o.rejected_samples][:20]
    result.watermark_before = (plan.prior_state or {}).get(WATERMARK_KEY)
    result.schema_changes = list(plan.schema_changes)
    result.warnings = list(plan.warnings)
    result.source_details = {
        "split_run": plan.run_key,
        "split_by": plan.split_by,
        "cursor_upper": plan.upper,
        "parts": [{"index": o.index, "key_range": plan.parts[o.index].key_range, "rows_read": o.rows_read,
                   "rows_written": o.rows_written, "rows_rejected": o.rows_rejected, "files": len(o.files),
                   "seconds": o.seconds} for o in outputs],
    }
    for o in outputs:
        log.info("%s: part %d read %d rows, wrote %d, rejected %d, %d file(s)", plan.table, o.index,
                 o.rows_read, o.rows_written, o.rows_rejected, len(o.files))
    return result


def _finish(result: IngestResult, table: Table, started: float) -> IngestResult:
    result.schema = [SchemaField(f.name, str(f.field_type), f.required, f.doc) for f in table.schema().fields]
    result.duration_seconds = round(time.monotonic() - started, 3)
    log.info("%s (split ingest of %d parts)", result.summary_line(), len(result.source_details["parts"]))
    return result


def _own_snapshot(table: Table, branch: str, run_key: str) -> int | None:
    """The snapshot of ``branch``'s ancestry an earlier attempt of this split run committed, if any."""
    from pyiceberg.table.snapshots import ancestors_of

    head = table.metadata.snapshot_by_name(branch)
    if head is None:
        return None
    for snapshot in ancestors_of(head, table.metadata):
        if snapshot.summary is not None and snapshot.summary.get(SPLIT_RUN_KEY) == run_key:
            return snapshot.snapshot_id
    return None


def _combined_state(plan: SplitPlan, outputs: list[PartOutput]) -> dict[str, Any] | None:
    """The state after every part: the newest watermark any part reached (none reads past the frozen
    upper bound, so it never passes it); the prior state when no part has one."""
    states = [o.state for o in outputs if o.state]
    if not states:
        return plan.prior_state
    with_watermark = [s for s in states if s.get(WATERMARK_KEY) is not None]
    if not with_watermark:
        return states[0]
    return max(with_watermark, key=lambda s: _ordered(s[WATERMARK_KEY]))


def _ordered(watermark: Any) -> Any:
    """A watermark as a comparable value: numbers (also decimal text) exactly, ISO timestamps in UTC."""
    if isinstance(watermark, (int, float)):
        return Decimal(str(watermark))
    try:
        return Decimal(str(watermark))
    except InvalidOperation:
        return utc_naive(to_datetime(watermark))


def _head(table: Table, branch: str) -> int | None:
    snapshot = table.metadata.snapshot_by_name(branch)
    return snapshot.snapshot_id if snapshot else None


def _delete_files(table: Table, files: list[Any]) -> None:
    try:
        for data_file in files:
            table.io.delete(data_file.file_path)
    except Exception as exc:  # noqa: BLE001 - the commit error matters more than cleanup
        log.warning("could not delete uncommitted data files of %s: %s", table.name(), exc)
