"""Contract enforcement on ingest: write, audit, publish.

The engine commits a run to an audit branch; :class:`ContractGate` checks the rows that run wrote
(Soda/GX/custom, on an in-memory DuckDB copy of the new data files) and decides per failed check by
the rule in :mod:`dativo_provider.quality.verdict` (the contract's violation handling for the check's
kind: schema, quality, SLA; a ``warning`` rule only warns):

* block: main does not move, the task fails with the summary;
* quarantine: the failing rows go to the quarantine table with the checks they failed, the audit branch
  gets one more snapshot without them, and main moves there. A failed dataset-level check (row count,
  freshness, a SQL metric) or schema check cannot name rows, so it quarantines the whole run;
* warn: published, the failure is logged and reported.

Rows written = rows published + rows quarantined, reported on every run.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.contracts.model import Contract
from dativo_provider.exceptions import ContractViolationError
from dativo_provider.ingest.engine import AuditDecision, AuditGate, StagedRun
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.quality import quarantine as q
from dativo_provider.quality.plan import dataset_of
from dativo_provider.quality.result import CheckResult, QualityReport
from dativo_provider.quality.verdict import Verdict, consequence, judge

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)


#: Table properties naming the contract (its id) and dataset that describe a table.
CONTRACT_PROPERTY = "dativo.contract"
CONTRACT_DATASET_PROPERTY = "dativo.contract-dataset"
#: Classifications whose values must not appear in manifest statistics (min/max bounds).
PERSONAL = ("pii", "restricted")


def write_options_for(contract: Contract, dataset: str | None, options: WriteOptions) -> WriteOptions:
    """``options`` with the table and column properties a contract implies for a table it creates.

    Each column's description becomes its Iceberg doc; columns that identify a data subject or are
    classified pii/restricted get metrics mode ``counts``, so no personal value is kept as a min/max
    bound in manifests (those outlive deletes; see FACTS.md). The table records which contract and
    dataset describe it (:data:`CONTRACT_PROPERTY`), so data-subject discovery finds it under any
    name. Unless the caller chose a sort order, the table is sorted by its data-subject columns, so
    a subject's rows cluster and an erasure rewrites few files (``bench/erase.py``). Properties the
    caller set win.
    """
    import dataclasses

    implied: dict[str, dict[str, str]] = {}
    for column in dataset_of(contract, dataset).columns:
        props: dict[str, str] = {}
        if column.description:
            props["doc"] = column.description
        if column.data_subject or column.classification in PERSONAL:
            props["metrics"] = "counts"
        if props:
            implied[column.name] = props
    for name, given in options.column_properties.items():
        implied[name] = {**implied.get(name, {}), **given}
    chosen = dataset_of(contract, dataset)
    table_properties = {CONTRACT_PROPERTY: contract.id, CONTRACT_DATASET_PROPERTY: chosen.name,
                        **options.table_properties}
    sort_by = options.sort_by or tuple(c.name for c in chosen.subject_identifiers)
    return dataclasses.replace(options, column_properties=implied, table_properties=table_properties,
                               sort_by=sort_by)


@dataclass
class _FileSpan:
    """One new data file and the row ids its rows got when loaded for checking."""

    data_file: Any
    first_row: int
    rows: int


class ContractGate(AuditGate):
    """Enforce ``contract`` on each run of an ingest (pass as ``run_ingest(..., audit=gate)``).

    :param dataset: the contract dataset to enforce (needed when the contract describes several).
    :param quarantine_table: where quarantined rows go; default ``<table>_quarantine``.
    :param report_path: also write each run's JSON report there.
    :param now: the time freshness is measured against (default: the time of the check).
    :param restrictions: a restriction registry (GDPR Art. 18): rows of restricted subjects are kept in
        the quarantine table (check ``restricted``) instead of being published, until the restriction
        is lifted and the rows released.
    """

    def __init__(self, contract: Contract | str | Path, catalog: CatalogConfig, *, dataset: str | None = None,
                 quarantine_table: str | None = None, report_path: str | Path | None = None,
                 now: datetime | None = None, restrictions: Any = None) -> None:
        from dativo_provider.contracts.loader import load_contract

        self.contract = contract if isinstance(contract, Contract) else load_contract(contract)
        self.dataset = dataset_of(self.contract, dataset)
        self.catalog = catalog
        self.quarantine_table = quarantine_table
        self.report_path = report_path
        self.now = now
        self.restrictions = restrictions
        self._schema_results: list[CheckResult] = []
        self._run_id: str | None = None
        self.report: QualityReport | None = None

    # --- before anything is written ---------------------------------------------------------------

    def before_write(self, table: str, schema: pa.Schema) -> None:
        from dativo_provider.quality.schema_policy import schema_findings

        self.quarantine_table = self.quarantine_table or q.quarantine_table_for(table)
        self._schema_results = schema_findings(self.dataset, schema, self.contract.schema_policy)
        violations = [r for r in self._schema_results if r.failed]
        if any(consequence(self.contract, r) == "block" for r in violations):
            lines = "\n".join("  " + r.line() for r in violations)
            raise ContractViolationError(
                f"{table}: the incoming schema breaks contract {self.contract.id} (schema violations are "
                f"blocked; nothing was written):\n{lines}"
            )
        for violation in violations:
            log.warning("schema violation (%s): %s", self.contract.handling.schema, violation.message)

    # --- on the audit branch ----------------------------------------------------------------------

    def audit(self, staged: StagedRun) -> AuditDecision:
        from dativo_provider.quality.runner import check_rows

        run_id = staged.run_id or f"run-{uuid.uuid4().hex[:12]}"
        loaded, spans = _load_new_rows(staged)
        try:
            report = check_rows(self.contract, self.dataset, loaded, now=self.now, collect_row_ids=True,
                                snapshot_id=staged.snapshot_id,
                                target=f"iceberg table {staged.result.table} (audit branch "
                                       f"{staged.audit_branch}, snapshot {staged.snapshot_id}, this run's rows)")
            report.checks[:0] = self._schema_results
            restricted = self._restricted(loaded)
            if restricted is not None:
                report.checks.append(restricted)
            self.report = report
            verdict = judge(self.contract, report, can_hold_rows=True)
            log.info("%s", report.summary())
            if verdict.blocks:
                return self._decision(False, _block_reason(verdict, self.contract), report, verdict)
            if not verdict.quarantining:
                return self._decision(True, "", report, verdict)
            failing = _failing_rows(verdict, loaded)
        finally:
            loaded.close()
        snapshot_id, rows = self._quarantine(staged, spans, failing, verdict, run_id)
        return self._decision(True, "", report, verdict, snapshot_id=snapshot_id, quarantined=rows)

    def _restricted(self, loaded: Any) -> CheckResult | None:
        """The rows of subjects under a processing restriction, as a check result (None: no registry)."""
        if self.restrictions is None:
            return None
        from dativo_provider.privacy.restriction import CHECK_NAME
        from dativo_provider.quality.runner import restricted_row_ids

        ids = restricted_row_ids(loaded, self.dataset, self.restrictions)
        result = CheckResult(name=CHECK_NAME, engine="dativo", category="quality", severity="error",
                             outcome="passed", dataset=self.dataset.name, metric="restriction",
                             failing_rows=len(ids))
        if len(ids):
            result.outcome = "failed"
            result.message = "rows of subjects whose processing is restricted (GDPR Art. 18) are held back"
            result.row_ids = ids
        return result

    def abandon(self, staged: StagedRun, decision: AuditDecision) -> None:
        if decision.rows_quarantined and self._run_id and self.quarantine_table:
            q.delete_run(self.catalog, self.quarantine_table, [self._run_id])

    def _decision(self, publish: bool, reason: str, report: QualityReport, verdict: Verdict, *,
                  snapshot_id: int | None = None, quarantined: int = 0) -> AuditDecision:
        data = report.to_dict()
        data["decision"] = "block" if not publish else "quarantine" if quarantined else "publish"
        data["rows_quarantined"] = quarantined
        data["quarantine_table"] = self.quarantine_table if quarantined else None
        data["warnings"] = [c.name for c in verdict.warned]
        if self.report_path:
            import json

            Path(self.report_path).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        return AuditDecision(publish, reason, snapshot_id=snapshot_id, rows_quarantined=quarantined, report=data)

    def _quarantine(self, staged: StagedRun, spans: list[_FileSpan], failing: pa.Table, verdict: Verdict,
                    run_id: str) -> tuple[int, int]:
        """Move the failing rows to the quarantine table and out of the audit branch.

        Each affected data file is read once: its passing rows go to new data files for the audit
        branch, its failing rows (with the checks they failed) to the quarantine table.
        """
        self._run_id = run_id
        assert self.quarantine_table is not None
        at = datetime.now(timezone.utc)
        reasons = _reasons(verdict)
        split = _Split(staged, [s for s in spans if _ids_in(failing, s).num_rows], failing)
        try:
            def quarantined() -> Iterator[pa.Table]:
                for rows, checks in split.failing_rows():
                    text = ["failed " + ", ".join(f"{c} ({reasons[c]})" for c in names) for names in checks]
                    yield q.with_reasons(rows, checks, text, run_id, staged.snapshot_id, at)

            held = quarantined()
            first = next(held)
            written = q.write_quarantine(
                self.catalog, self.quarantine_table, first.schema,
                (b for t in itertools.chain([first], held) for b in t.to_batches()), run_id,
                guarded_table=staged.result.table,
                column_properties=write_options_for(self.contract, self.dataset.name, WriteOptions()).column_properties,
            )
        except BaseException:
            split.abort()
            raise
        try:
            snapshot_id = split.commit(run_id, written.rows_written)
        except BaseException:
            q.delete_run(self.catalog, self.quarantine_table, [run_id])
            raise
        log.warning("%s: %d rows quarantined in %s (run %s)", staged.result.table, written.rows_written,
                    self.quarantine_table, run_id)
        return snapshot_id, written.rows_written


def _failing_rows(verdict: Verdict, loaded: Any) -> pa.Table:
    """(id, checks) of every row to quarantine, sorted by id."""
    import pyarrow as pa

    parts = []
    everyone: Any = loaded.row_ids() if verdict.whole_run else None
    for check in verdict.quarantining:
        ids = everyone if check in verdict.whole_run else check.row_ids
        parts.append(pa.table({"id": pa.array(ids, pa.int64()),
                               "check": pa.array([check.name] * len(ids), pa.string())}))
    grouped = pa.concat_tables(parts).group_by("id").aggregate([("check", "list")])
    return grouped.rename_columns(["id", "checks"]).sort_by("id")


def _reasons(verdict: Verdict) -> dict[str, str]:
    """Each quarantining check's reason, as the quarantine table records it."""
    out = {}
    for check in verdict.quarantining:
        where = f" on {check.column}" if check.column else ""
        out[check.name] = f"{check.metric or check.category}{where}"
    return out


def _block_reason(verdict: Verdict, contract: Contract) -> str:
    lines = "\n".join("  " + c.line() for c in verdict.blocking)
    return f"contract {contract.id} v{contract.version} is violated ({len(verdict.blocking)} blocking checks):\n{lines}"


def _load_new_rows(staged: StagedRun) -> tuple[Any, list[_FileSpan]]:
    """This run's rows (its new data files, in order) in DuckDB, remembering which ids each file got."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    from dativo_provider.quality.runner import LoadedRows, local_parquet

    local = local_parquet(staged.table, staged.new_files, current_schema=True) if staged.new_files else None
    if local:
        return LoadedRows.from_parquet(local), [
            _FileSpan(f, first, f.record_count) for f, (_, first) in zip(staged.new_files, local)
        ]
    spans: list[_FileSpan] = []
    batches = _stream_new_files(staged, spans)
    first_batch = next(batches, None)
    schema = first_batch.schema if first_batch is not None else schema_to_pyarrow(staged.table.schema())

    def all_batches() -> Iterable[Any]:
        if first_batch is not None:
            yield first_batch
            yield from batches

    return LoadedRows.from_batches(schema, all_batches()), spans


def _stream_new_files(staged: StagedRun, spans: list[_FileSpan]) -> Iterator[Any]:
    from pyiceberg.table import FileScanTask

    from dativo_provider.iceberg.reader import stream_file

    offset = 0
    for data_file in staged.new_files:
        spans.append(_FileSpan(data_file, offset, data_file.record_count))
        for batch in stream_file(staged.table, FileScanTask(data_file), staged.table.schema()):
            yield batch
        offset += data_file.record_count


def _ids_in(failing: pa.Table, span: _FileSpan) -> pa.Table:
    import pyarrow.compute as pc

    ids = failing.column("id")
    mask = pc.and_(pc.greater_equal(ids, span.first_row), pc.less(ids, span.first_row + span.rows))
    return failing.filter(mask)


class _Split:
    """The affected data files of a run, split into passing rows (new files) and failing rows."""

    def __init__(self, staged: StagedRun, affected: list[_FileSpan], failing: pa.Table) -> None:
        from dativo_provider.iceberg.tables import sort_columns
        from dativo_provider.iceberg.writer import DataFileWriter

        self.staged = staged
        self.affected = affected
        self.failing = failing
        self.table = staged.catalog.load_table(staged.result.table)
        self.writer = DataFileWriter(self.table, sort_columns(self.table), 256 * 1024 * 1024)
        self.held_keys: list[pa.Table] = []

    def failing_rows(self) -> Iterator[tuple[pa.Table, list[list[str]]]]:
        """Yield (failing rows, each row's failed checks); the passing rows go to the writer meanwhile."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyiceberg.table import FileScanTask

        from dativo_provider.iceberg.reader import stream_file

        for span in self.affected:
            ids = _ids_in(self.failing, span)
            positions = pc.subtract(ids.column("id"), span.first_row).combine_chunks()
            offset = done = 0  # the file's failing rows come in position order, as ``ids`` is sorted
            for batch in stream_file(self.staged.table, FileScanTask(span.data_file), self.staged.table.schema()):
                here = pa.array(np.arange(offset, offset + batch.num_rows, dtype=np.int64))
                hit = pc.is_in(here, value_set=positions)
                offset += batch.num_rows
                rows = pa.Table.from_batches([batch])
                kept = rows.filter(pc.invert(hit))
                if kept.num_rows:
                    self.writer.write(kept)
                bad = rows.filter(hit)
                if bad.num_rows:
                    if self.staged.merge_keys:
                        self.held_keys.append(bad.select(list(self.staged.merge_keys)))
                    yield bad, ids.column("checks").slice(done, bad.num_rows).to_pylist()
                    done += bad.num_rows

    def commit(self, run_id: str, quarantined: int) -> int:
        """One more snapshot on the audit branch: each affected file replaced by its passing rows."""
        try:
            if self.held_keys:
                # The merge deleted these keys' previous rows; a held-back update must not lose them.
                for rows in _previous_rows(self.staged, self.held_keys):
                    self.writer.write(rows)
            kept = self.writer.close()
        except BaseException:
            self.writer.abort()
            raise
        properties = {"dativo.quarantine-run": run_id, "dativo.rows-quarantined": str(quarantined)}
        transaction = self.table.transaction()
        update = transaction.update_snapshot(snapshot_properties=properties, branch=self.staged.audit_branch)
        with update.overwrite() as overwrite:
            for span in self.affected:
                overwrite.delete_data_file(span.data_file)
            for data_file in kept:
                overwrite.append_data_file(data_file)
        committed = transaction.commit_transaction()
        head = committed.metadata.snapshot_by_name(self.staged.audit_branch)
        assert head is not None  # this commit just moved the branch
        return head.snapshot_id

    def abort(self) -> None:
        self.writer.abort()


def _previous_rows(staged: StagedRun, held_keys: list[pa.Table]) -> Iterator[pa.Table]:
    """The rows main held for ``held_keys`` before this merge run (what its quarantined rows replaced)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyiceberg.expressions import In

    keys = pa.concat_tables(held_keys)
    audited = staged.table.metadata.snapshot_by_id(staged.snapshot_id)
    assert audited is not None  # the audit snapshot of this very run
    parent = audited.parent_snapshot_id
    if parent is None or keys.num_rows == 0:
        return
    first = staged.merge_keys[0]
    scan = staged.table.scan(snapshot_id=parent, row_filter=In(first, set(keys.column(first).to_pylist())))
    for batch in scan.to_arrow_batch_reader():
        rows = pa.Table.from_batches([batch])
        if len(staged.merge_keys) == 1:
            rows = rows.filter(pc.is_in(rows.column(first), value_set=keys.column(first).combine_chunks()))
        else:
            rows = rows.join(keys, keys=list(staged.merge_keys), join_type="left semi")
        if rows.num_rows:
            yield rows
