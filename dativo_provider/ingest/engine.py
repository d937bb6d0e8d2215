"""run_ingest: one source → one Iceberg table, in one atomic commit that also stores the source state.

The steps, in order: read the state the last committed run stored; open the source after it;
create or reconcile the table schema (policy); stream batches into data files; commit them as one
snapshot whose summary holds the new state (retrying lost races with the same files); optionally
audit that snapshot on a branch before main moves to it.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import (
    CommitConflictError,
    ConcurrentRunError,
    ConfigError,
    SourceError,
    TerminalError,
)
from dativo_provider.iceberg.commit import CommitPlan, commit, retry_lost_races
from dativo_provider.iceberg.conform import BatchConformer
from dativo_provider.iceberg.schema import apply_evolution, as_optional, plan_schema, storage_schema
from dativo_provider.iceberg.state import read_state, snapshot_properties
from dativo_provider.iceberg.tables import commit_creation, load_or_stage, parse_sort, sort_columns
from dativo_provider.iceberg.writer import DataFileWriter
from dativo_provider.ml.transform import transformed
from dativo_provider.ingest.merge_keys import distinct_merge_keys
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ingest.result import IngestResult, SchemaField
from dativo_provider.progress import ProgressLog
from dativo_provider.sources.base import WATERMARK_KEY, LineageDataset, ReadBounds, Source

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table, Transaction

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditDecision:
    """What an audit gate decided about a staged snapshot.

    :param snapshot_id: the snapshot main moves to; by default the staged one. A gate that changed the
        audit branch (e.g. took quarantined rows out) names its own descendant of the staged snapshot.
    :param rows_quarantined: rows of this run the gate moved to a quarantine table instead of publishing.
    :param report: the gate's report (JSON-serialisable), kept in the run summary.
    """

    publish: bool
    reason: str = ""
    snapshot_id: int | None = None
    rows_quarantined: int = 0
    report: dict[str, Any] | None = None


@dataclass(frozen=True)
class StagedRun:
    """A run committed to its audit branch and waiting for the gate.

    :param new_files: the data files holding this run's rows (``merge`` rewrites are not among them).
    :param merge_keys: the key columns when the run merged (its rows replaced older rows by key).
    """

    catalog: Catalog
    table: Table
    audit_branch: str
    snapshot_id: int
    new_files: list[Any]
    run_id: str | None
    result: IngestResult
    merge_keys: tuple[str, ...] = ()


class AuditGate:
    """The write-audit-publish seam: the contract enforcement in :mod:`dativo_provider.quality.wap`."""

    def before_write(self, table: str, schema: pa.Schema) -> None:
        """Called with the source's schema before anything is written; raise to refuse the run."""

    def audit(self, staged: StagedRun) -> AuditDecision:
        """Decide whether main may move to the staged snapshot."""
        raise NotImplementedError

    def abandon(self, staged: StagedRun, decision: AuditDecision) -> None:
        """Main could not move after the gate said publish: undo what the gate did elsewhere."""


class AuditRejectedError(TerminalError):
    """The audit gate held the run back: main did not move."""

    def __init__(self, reason: str, result: IngestResult) -> None:
        super().__init__(f"{result.table}: the audit held this run back, main is unchanged: {reason}")
        self.result = result


def run_ingest(
    source: Source,
    catalog: CatalogConfig,
    table: str,
    options: WriteOptions | None = None,
    *,
    bounds: ReadBounds | None = None,
    run_id: str | None = None,
    audit: AuditGate | None = None,
    transform: Any = None,
) -> IngestResult:
    """Load ``source`` into the Iceberg table ``table`` ("namespace.name") of ``catalog``.

    :param bounds: incremental limits (e.g. the Airflow data interval end as ``upper``).
    :param run_id: recorded in the snapshot summary (e.g. the Airflow run id).
    :param audit: if given, the commit lands on a temporary branch, the gate inspects it, and main
        moves only if it says publish; the branch is removed either way.
    :param transform: applied to each batch before it is written (DuckDB SQL over the relation ``batch``,
        a vectorised Python function, or a list of them: see :mod:`dativo_provider.ml.transform`); the
        rows it filters out are counted as ``rows_dropped``.
    :raises TerminalError: bad configuration, data or schema drift; nothing became visible.
    :raises TransientError: a passing condition; rerunning is safe (no state was committed).
    """
    options = options or WriteOptions()
    if transform is not None:
        source = transformed(source, transform)
    _check_fits(source, options, table)
    started = time.monotonic()
    result = IngestResult(
        table=table,
        mode=options.mode,
        source=source.identity,
        branch=options.branch or "main",
        inputs=[source.lineage],
        outputs=[LineageDataset(catalog.lineage_namespace, table)],
    )
    iceberg = catalog.load()
    _Run(iceberg, source, table, options, result).execute(bounds or ReadBounds(), run_id, audit)
    result.duration_seconds = round(time.monotonic() - started, 3)
    log.info("%s", result.summary_line())
    return result


def _check_fits(source: Source, options: WriteOptions, table: str) -> None:
    if "." not in table:
        raise ConfigError(f"table {table!r} must be 'namespace.table'")
    if source.may_repeat_rows and options.mode not in ("merge", "replace"):
        raise ConfigError(
            f"the source may deliver rows an earlier run already wrote (a lookback window, changed objects "
            f"from Stripe events, or a sheet read whole each time) but write mode is {options.mode!r}: use mode 'merge' with merge_keys "
            "(or 'replace') so repeated rows replace themselves instead of repeating"
        )


class _Run:
    """One run's steps; holds what they share so each step stays a few lines."""

    def __init__(self, catalog: Catalog, source: Source, table: str, options: WriteOptions,
                 result: IngestResult) -> None:
        self.catalog = catalog
        self.source = source
        self.table_name = table
        self.options = options
        self.result = result
        self.branch = options.branch or "main"
        #: The table's creation, staged until the commit that adds this run's rows (or until nothing
        #: is left that could refuse the run): a refused first run leaves no empty table behind.
        self.creation: Transaction | None = None

    def execute(self, bounds: ReadBounds, run_id: str | None, audit: AuditGate | None) -> None:
        prior = self._prior_state()
        previous_state = prior.state if prior else None
        self.result.watermark_before = (previous_state or {}).get(WATERMARK_KEY)
        with self.source.open(previous_state, bounds) as stream:
            _check_has_columns(stream.schema, self.source.identity, self.table_name)
            source_schema = stream.schema if self.options.required_columns else as_optional(stream.schema)
            if audit is not None:
                audit.before_write(self.table_name, source_schema)
            table = self._prepare_table(source_schema)
            files, keys = self._write(table, stream)
            new_state = stream.state()
            self.result.rows_rejected = stream.report.rows_rejected
            self.result.rows_dropped = stream.report.rows_dropped
            self.result.rejected_samples = list(stream.report.rejected_samples)
            self.result.source_details = dict(stream.report.details)
        self.result.rows_read = (self.result.rows_written + self.result.rows_rejected
                                 + self.result.rows_dropped)
        self.result.watermark_after = (new_state or previous_state or {}).get(WATERMARK_KEY)
        self.result.schema = _schema_fields(table)
        if not self._needs_commit(files, new_state, previous_state):
            table = self._create_staged_table() or table
            self.result.snapshot_id = _head(table, self.branch)
            return
        plan = CommitPlan(
            identifier=self.table_name,
            # A merge of no rows only moves the state (a quiet period of Stripe events): nothing to remove.
            mode="append" if self.options.mode == "merge" and not files else self.options.mode,
            branch=self.branch,
            new_files=files,
            properties=snapshot_properties(self.source.identity, new_state, run_id),
            source_identity=self.source.identity,
            expected_state_snapshot=prior.snapshot_id if prior else None,
            merge_keys=self.options.merge_keys,
            keys=keys,
            sort_by=self._sort(table),
            target_file_bytes=self.options.target_file_size_mb * 1024 * 1024,
            creation=self.creation if audit is None else None,
        )
        self._commit(plan, audit, run_id)

    def _prior_state(self) -> Any:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = self.catalog.load_table(self.table_name)
        except NoSuchTableError:
            return None
        return read_state(table, self.source.identity, self.branch) or self._former_state(table)

    def _former_state(self, table: Table) -> Any:
        """The state the source committed under an identity it had before, until it commits under its
        own; nothing is committed under the new identity yet, so the concurrency check expects nothing."""
        for former in self.source.former_identities:
            found = read_state(table, former, self.branch)
            if found is not None:
                return SimpleNamespace(snapshot_id=None, state=found.state)
        return None

    def _prepare_table(self, source_schema: pa.Schema) -> Table:
        incoming = storage_schema(source_schema)
        table, self.creation = load_or_stage(self.catalog, self.table_name, incoming, self.options)
        if self.creation is not None:
            self.result.schema_changes.append(f"created {self.table_name} with {len(incoming)} columns")
        plan = plan_schema(table, incoming, self.options.schema_policy)
        self.result.warnings.extend(plan.warnings)
        for warning in plan.warnings:
            log.warning("%s", warning)
        if plan.evolve:
            table = apply_evolution(table, incoming)
            self.result.schema_changes.extend(c.describe() for c in plan.evolved)
        missing_keys = [k for k in self.options.merge_keys if k not in table.schema().column_names]
        if missing_keys:
            raise ConfigError(f"merge_keys {missing_keys} are not columns of {self.table_name}")
        return table

    def _write(self, table: Table, stream: Any) -> tuple[list[Any], pa.Table | None]:
        def counted(rows: int) -> None:
            self.result.rows_written += rows

        # The run's summary line ends the log, so this progress never logs a final line of its own.
        files, distinct_keys = stream_into_files(table, self.table_name, stream, self.options,
                                                 f"{self.table_name}: streaming", counted, self.options.merge_keys)
        self.result.files_written = len(files)
        self.result.bytes_written = sum(f.file_size_in_bytes for f in files)
        return files, distinct_keys

    def _sort(self, table: Table) -> list[tuple[str, str]]:
        return write_order(table, self.options)

    def _needs_commit(self, files: list[Any], new_state: Any, previous_state: Any) -> bool:
        if self.options.mode == "replace":
            return True
        return bool(files) or new_state != previous_state

    def _commit(self, plan: CommitPlan, audit: AuditGate | None, run_id: str | None) -> None:
        created_here = False
        if audit is not None:
            created_here = self._create_staged_table() is not None
            plan.branch = self._open_audit_branch()
        try:
            outcome = commit(self.catalog, plan, self.options.max_commit_attempts)
        except (ConcurrentRunError, CommitConflictError):
            # These guarantee nothing landed; after any other error the files may be referenced.
            _delete_files(self.catalog, plan)
            raise
        self.result.commit_attempts = outcome.attempts
        self.result.previous_snapshot_id = outcome.previous_snapshot_id
        self.result.files_removed = outcome.files_removed
        self.result.rows_deleted = outcome.rows_deleted
        self.result.files_rewritten = outcome.files_rewritten
        self.result.bytes_rewritten = outcome.bytes_rewritten
        self.result.snapshot_id = outcome.snapshot_id
        if audit is not None:
            assert outcome.snapshot_id is not None  # a commit that landed made a snapshot
            try:
                self._publish_if_approved(plan, outcome.snapshot_id, audit, run_id)
            except AuditRejectedError:
                if created_here:
                    self._drop_if_never_published()
                raise
        self.result.committed = True

    def _drop_if_never_published(self) -> None:
        """A refused first run leaves no table: drop (and purge) the table this run created for its audit,
        unless another run published to it meanwhile."""
        table = self.catalog.load_table(self.table_name)
        head = table.current_snapshot()
        never_published = head is None or (
            head.summary is not None and head.summary.get("dativo.operation") == "create"
            and head.parent_snapshot_id is None and set(table.metadata.refs) <= {"main"}
        )
        if never_published:
            self.catalog.purge_table(self.table_name)
            self.result.schema_changes.append(f"dropped {self.table_name}: its first run was refused")

    def _create_staged_table(self) -> Table | None:
        """Commit the staged creation on its own (no rows to add, or an audit branch needs the table)."""
        if self.creation is None:
            return None
        table, _ = commit_creation(self.catalog, self.table_name, self.creation)
        self.creation = None
        return table

    def _open_audit_branch(self) -> str:
        name = f"dativo-audit-{uuid.uuid4().hex[:12]}"
        retry_lost_races(self.table_name, lambda: self._branch_from_head(name))
        return name

    def _branch_from_head(self, name: str) -> None:
        table = self.catalog.load_table(self.table_name)
        head = _head(table, self.branch)
        if head is None:
            # Iceberg lets a table without snapshots be written only on main: give it an empty one.
            transaction = table.transaction()
            update = transaction.update_snapshot(snapshot_properties={"dativo.operation": "create"},
                                                 branch=self.branch)
            with update.fast_append():
                pass
            table = transaction.commit_transaction()
            head = _head(table, self.branch)
        assert head is not None  # the empty snapshot above
        table.manage_snapshots().create_branch(head, name).commit()

    def _publish_if_approved(self, plan: CommitPlan, snapshot_id: int, gate: AuditGate,
                             run_id: str | None) -> None:
        table = self.catalog.load_table(self.table_name)
        staged = StagedRun(self.catalog, table, plan.branch, snapshot_id, plan.new_files, run_id, self.result,
                           plan.merge_keys if plan.mode == "merge" else ())
        try:
            decision = gate.audit(staged)
            self.result.quality = decision.report
            if not decision.publish:
                raise AuditRejectedError(decision.reason, self.result)
            try:
                self._fast_forward(snapshot_id, decision.snapshot_id or snapshot_id)
            except BaseException:
                gate.abandon(staged, decision)
                raise
            self.result.rows_quarantined = decision.rows_quarantined
            self.result.snapshot_id = decision.snapshot_id or snapshot_id
        finally:
            retry_lost_races(self.table_name, lambda: self._remove_branch(plan.branch))

    def _remove_branch(self, name: str) -> None:
        self.catalog.load_table(self.table_name).manage_snapshots().remove_branch(name).commit()

    def _fast_forward(self, staged_id: int, publish_id: int) -> None:
        # A commit elsewhere on the table (another run's audit branch) makes this one lose on a SQL
        # catalog; retried, the check below still refuses a main that moved.
        retry_lost_races(self.table_name, lambda: self._fast_forward_once(staged_id, publish_id))

    def _fast_forward_once(self, staged_id: int, publish_id: int) -> None:
        table = self.catalog.load_table(self.table_name)
        staged = table.metadata.snapshot_by_id(staged_id)
        assert staged is not None  # snapshots are only expired by maintenance, never this young
        if _head(table, self.branch) != staged.parent_snapshot_id:
            raise CommitConflictError(
                f"{self.table_name}: {self.branch} moved while the run was audited; rerun to audit again"
            )
        # Re-pointing an existing branch asserts it still points where we loaded it: a guarded
        # fast-forward.
        table.manage_snapshots().create_branch(publish_id, self.branch).commit()


def write_order(table: Table, options: WriteOptions) -> list[tuple[str, str]]:
    """The order rows are sorted in within each data file: the run's ``sort_by``, else the table's sort order."""
    return parse_sort(options.sort_by) if options.sort_by else sort_columns(table)


def stream_into_files(table: Table, table_name: str, stream: Any, options: WriteOptions, progress_label: str,
                      counted: Any, merge_keys: tuple[str, ...] = ()) -> tuple[list[Any], pa.Table | None]:
    """Conform each batch of ``stream`` to the table and write it into rolling data files, not committed.

    :param counted: called with the row count of each written batch.
    :param merge_keys: key columns whose distinct values are collected (and checked) for a merge.
    :returns: the data files and the distinct merge keys (None without keys). On any error the files
        written so far are deleted.
    """
    writer = DataFileWriter(table, write_order(table, options), options.target_file_size_mb * 1024 * 1024)
    required = {f.name for f in table.schema().fields if f.required}
    conform = BatchConformer(stream.schema, writer.arrow_schema, required, table_name)
    keys = _KeyCollector(merge_keys)
    progress = ProgressLog(log, progress_label, unit="rows")
    try:
        for batch in stream:
            if batch.num_rows == 0:
                continue
            batch = conform(batch)
            keys.add(batch)
            writer.write(batch)
            counted(batch.num_rows)
            progress.advance(batch.num_rows, nbytes=batch.nbytes)
        files = writer.close()
        distinct_keys = keys.distinct()
    except BaseException:
        writer.abort()
        raise
    return files, distinct_keys


class _KeyCollector:
    """Collects merge-key values of the written rows; refuses nulls and keys repeated in one run."""

    def __init__(self, key_columns: tuple[str, ...]) -> None:
        self.key_columns = key_columns
        self.parts: list[pa.Table] = []

    def add(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        if self.key_columns:
            self.parts.append(pa.Table.from_batches([batch.select(list(self.key_columns))]))

    def distinct(self) -> pa.Table | None:
        import pyarrow as pa

        if not self.key_columns or not self.parts:
            return None
        return distinct_merge_keys(pa.concat_tables(self.parts), self.key_columns)


def _head(table: Table, branch: str) -> int | None:
    snapshot = table.metadata.snapshot_by_name(branch)
    return snapshot.snapshot_id if snapshot else None


def _schema_fields(table: Table) -> list[SchemaField]:
    return [SchemaField(f.name, str(f.field_type), f.required, f.doc) for f in table.schema().fields]


def _check_has_columns(schema: pa.Schema, source: str, table: str) -> None:
    if len(schema) == 0:
        raise SourceError(
            f"{source} has no columns, so there is nothing to load into {table}; read a table or query "
            "that has columns (or list them in the source's 'columns')"
        )


def _delete_files(catalog: Catalog, plan: CommitPlan) -> None:
    """The commit did not land: remove this run's data files so no orphans pile up."""
    try:
        io = plan.file_io(catalog)
        for data_file in plan.new_files:
            io.delete(data_file.file_path)
    except Exception as exc:  # noqa: BLE001 - the commit error matters more than cleanup
        log.warning("could not delete uncommitted data files of %s: %s", plan.identifier, exc)
