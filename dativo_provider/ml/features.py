"""Feature transforms: DuckDB SQL over Iceberg tables read at a snapshot, tag or branch.

Each input table is exposed to the SQL under a name. The inputs are resolved to snapshot ids once, at
the start of a run, and streamed from those snapshots (pyiceberg scans, batch by batch) into a DuckDB
database in a temporary folder, where the SQL may aggregate, join and window over them; DuckDB spills
to that folder when they do not fit in memory. The result streams out batch by batch and is written
through the ingest commit path (:func:`~dativo_provider.ingest.engine.run_ingest`): write modes,
exactly-once state, schema policy and contract audits apply as for any source.

Each commit stores the input snapshot ids (and a hash of the SQL) as the run's state in its snapshot
summary (``dativo.state``, see :func:`committed_inputs`). A rerun whose inputs and SQL are unchanged
commits nothing.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.state import read_state
from dativo_provider.ingest.engine import AuditGate, run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ingest.result import IngestResult
from dativo_provider.ml.transform import (
    EXTRA,
    Transform,
    TransformError,
    connect_duckdb,
    to_arrow_reader,
)
from dativo_provider.optional import require
from dativo_provider.progress import ProgressLog
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source, SourceReport, SourceStream

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: The state key under which a commit records its inputs' snapshots.
INPUTS_KEY = "inputs"
#: A feature transform's state in the output table is kept under this prefix and its name.
IDENTITY_PREFIX = "feature-transform:"
#: Rows per batch of the transform's result.
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class TableInput:
    """One Iceberg table a feature transform reads, and the name the SQL knows it by.

    :param name: the relation name in the SQL.
    :param table: ``"namespace.table"``.
    :param snapshot_id: read this snapshot; else ``ref`` (a tag or branch); else the current snapshot.
    :param columns: read only these columns (all when empty).
    :param row_filter: read only rows matching this pyiceberg filter, e.g. ``"ordered_at >= '2024-01-01'"``.
    """

    name: str
    table: str
    snapshot_id: int | None = None
    ref: str | None = None
    columns: tuple[str, ...] = ()
    row_filter: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"input name {self.name!r} must be a plain SQL name (letters, digits, _)")
        if "." not in self.table:
            raise ConfigError(f"input {self.name!r}: table {self.table!r} must be 'namespace.table'")
        if self.snapshot_id is not None and self.ref is not None:
            raise ConfigError(f"input {self.name!r}: give a snapshot_id or a tag/branch, not both")

    @classmethod
    def parse(cls, name: str, spec: Any) -> TableInput:
        """From ``"namespace.table"`` or ``{"table": ..., "snapshot_id" | "tag" | "branch": ...,
        "columns": [...], "filter": ...}``."""
        if isinstance(spec, str):
            return cls(name, spec)
        if not isinstance(spec, Mapping):
            raise ConfigError(f"input {name!r}: expected 'namespace.table' or a dict, "
                              f"got {type(spec).__name__}")
        unknown = set(spec) - {"table", "snapshot_id", "tag", "branch", "columns", "filter"}
        if unknown or "table" not in spec:
            raise ConfigError(f"input {name!r}: needs 'table'; allowed keys: table, snapshot_id, tag, "
                              f"branch, columns, filter (got {sorted(spec)})")
        if spec.get("tag") and spec.get("branch"):
            raise ConfigError(f"input {name!r}: give a tag or a branch, not both")
        columns = spec.get("columns") or ()
        return cls(
            name,
            str(spec["table"]),
            snapshot_id=_snapshot_id(name, spec.get("snapshot_id")),
            ref=spec.get("tag") or spec.get("branch") or None,
            columns=(columns,) if isinstance(columns, str) else tuple(columns),
            row_filter=spec.get("filter") or None,
        )

    def resolve(self, catalog: Catalog) -> ResolvedInput:
        """Pin the snapshot this run reads (None: the table has no snapshot yet)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = catalog.load_table(self.table)
        except NoSuchTableError:
            raise ConfigError(f"input {self.name!r}: table {self.table!r} does not exist") from None
        if self.snapshot_id is not None:
            if table.metadata.snapshot_by_id(self.snapshot_id) is None:
                raise ConfigError(f"input {self.name!r}: {self.table} has no snapshot {self.snapshot_id}")
            return ResolvedInput(self, self.snapshot_id)
        ref = self.ref or "main"
        snapshot = table.metadata.snapshot_by_name(ref)
        if snapshot is None and self.ref is not None:
            refs = ", ".join(sorted(table.metadata.refs)) or "none"
            raise ConfigError(f"input {self.name!r}: {self.table} has no tag or branch {ref!r} "
                              f"(it has: {refs})")
        return ResolvedInput(self, snapshot.snapshot_id if snapshot else None)


def _snapshot_id(name: str, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"input {name!r}: snapshot_id {value!r} is not a snapshot id (an integer)") \
            from None


@dataclass(frozen=True)
class ResolvedInput:
    """An input pinned to the snapshot a run reads."""

    spec: TableInput
    snapshot_id: int | None

    def state(self) -> dict[str, Any]:
        return {"table": self.spec.table, "snapshot_id": self.snapshot_id, "ref": self.spec.ref or "main"}


def parse_inputs(spec: Mapping[str, Any]) -> list[TableInput]:
    """``{"orders": "sales.orders", "customers": {"table": "crm.customers", "tag": "v1"}}`` as inputs."""
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError("inputs must name at least one table, e.g. {'orders': 'sales.orders'}")
    return [TableInput.parse(str(name), value) for name, value in spec.items()]


class TableTransformSource(Source):
    """The result of DuckDB SQL over pinned Iceberg snapshots, as a source for the ingest engine.

    It re-reads its inputs whole on every run, so it may repeat rows an earlier run wrote: the engine
    accepts it only with write mode ``replace`` or ``merge``.
    """

    may_repeat_rows = True

    def __init__(self, catalog: CatalogConfig, inputs: Sequence[ResolvedInput], sql: str, name: str, *,
                 fingerprint: str = "", batch_rows: int = BATCH_ROWS,
                 duckdb_settings: Mapping[str, str] | None = None) -> None:
        if not sql or not str(sql).strip():
            raise ConfigError(f"feature transform {name!r}: sql is empty")
        self.catalog = catalog
        self.inputs = list(inputs)
        self.sql = sql
        self.name = name
        self.fingerprint = hashlib.sha256(f"{sql.strip()}\n{fingerprint}".encode()).hexdigest()[:16]
        self.batch_rows = batch_rows
        self.duckdb_settings = dict(duckdb_settings or {})

    @property
    def identity(self) -> str:
        return f"{IDENTITY_PREFIX}{self.name}"

    @property
    def lineage(self) -> LineageDataset:
        return self.lineage_inputs[0]

    @property
    def lineage_inputs(self) -> list[LineageDataset]:
        return [LineageDataset(self.catalog.lineage_namespace, i.spec.table) for i in self.inputs]

    def planned_state(self) -> dict[str, Any]:
        """The state a commit of this run stores: each input's table and snapshot id, and the SQL's hash."""
        return {INPUTS_KEY: {i.spec.name: i.state() for i in self.inputs}, "sql": self.fingerprint}

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SourceStream:
        return _TableTransformStream(self)


class _TableTransformStream(SourceStream):
    """Loads the inputs into a DuckDB database in a temporary folder and streams the query's result."""

    def __init__(self, source: TableTransformSource) -> None:
        self.source = source
        self.report = SourceReport(details={INPUTS_KEY: source.planned_state()[INPUTS_KEY]})
        self._folder = Path(tempfile.mkdtemp(prefix="dativo-transform-"))
        self._connection: Any = None
        self._reader: pa.RecordBatchReader | None = None
        try:
            settings = {"temp_directory": str(self._folder / "spill"), **source.duckdb_settings}
            self._connection = connect_duckdb(settings, database=str(self._folder / "inputs.duckdb"))
            catalog = source.catalog.load()
            for resolved in source.inputs:
                self._load(catalog, resolved)
            self._reader = self._query()
        except BaseException:
            self.close()
            raise

    def _load(self, catalog: Catalog, resolved: ResolvedInput) -> None:
        """Stream one input's snapshot into a DuckDB table named after the input."""
        spec = resolved.spec
        started = time.monotonic()
        scan = _scan(catalog.load_table(spec.table), resolved)
        staging = f"__dativo_input_{spec.name}"
        self._connection.register(staging, self._counted(scan.to_arrow_batch_reader(), spec))
        try:
            self._connection.execute(f'CREATE TABLE "{spec.name}" AS SELECT * FROM "{staging}"').fetchall()
        finally:
            self._connection.unregister(staging)
        rows = self._connection.execute(f'SELECT count(*) FROM "{spec.name}"').fetchall()[0][0]
        self.report.details[INPUTS_KEY][spec.name]["rows"] = rows
        log.info("feature transform %s: loaded %s (snapshot %s) as %s: %d rows in %.1fs", self.source.name,
                 spec.table, resolved.snapshot_id, spec.name, rows, time.monotonic() - started)

    def _counted(self, reader: pa.RecordBatchReader, spec: TableInput) -> pa.RecordBatchReader:
        """``reader``, logging rows staged and rows/s at a steady interval (a large input takes minutes)."""
        progress = ProgressLog(log, f"feature transform {self.source.name}: staging {spec.table}", unit="rows")

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                progress.advance(batch.num_rows, nbytes=batch.nbytes)
                yield batch

        import pyarrow

        return pyarrow.RecordBatchReader.from_batches(reader.schema, batches())

    def _query(self) -> pa.RecordBatchReader:
        duckdb = require("duckdb", EXTRA)
        where = f"feature transform {self.source.name!r}"
        try:
            relation = self._connection.sql(self.source.sql)
        except duckdb.Error as exc:
            raise TransformError(f"{where}: DuckDB rejected the SQL: {' '.join(str(exc).split())} "
                                 f"(inputs: {self._describe_inputs()})") from exc
        if relation is None:
            raise TransformError(f"{where}: the SQL must be a query (SELECT ...) that returns the feature "
                                 "rows; it returned nothing")
        return to_arrow_reader(relation, self.source.batch_rows)

    def _describe_inputs(self) -> str:
        described = []
        for resolved in self.source.inputs:
            name = resolved.spec.name
            query = ("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                     "ORDER BY ordinal_position")
            columns = [row[0] for row in self._connection.execute(query, [name]).fetchall()]
            described.append(f"{name}({', '.join(columns)})")
        return "; ".join(described)

    @property
    def schema(self) -> pa.Schema:
        assert self._reader is not None  # opened in __init__
        return self._reader.schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        assert self._reader is not None
        yield from self._reader

    def state(self) -> dict[str, Any] | None:
        return self.source.planned_state()

    def close(self) -> None:
        try:
            if self._reader is not None:
                self._reader.close()
            if self._connection is not None:
                self._connection.close()
        finally:
            self._reader = self._connection = None
            shutil.rmtree(self._folder, ignore_errors=True)


def _scan(table: Table, resolved: ResolvedInput) -> Any:
    spec = resolved.spec
    options: dict[str, Any] = {"snapshot_id": resolved.snapshot_id}
    if spec.columns:
        options["selected_fields"] = spec.columns
    if spec.row_filter:
        options["row_filter"] = spec.row_filter
    return table.scan(**options)


@dataclass(frozen=True)
class FeatureTransform:
    """What a feature transform computes: SQL over named inputs, optionally followed by a batch transform.

    :param name: names the transform in errors, and keys its state in the output table (two transforms
        writing one table need two names).
    :param sql: DuckDB SQL; each input is a table named by its key in ``inputs``.
    :param inputs: ``{"orders": "sales.orders", "customers": {"table": ..., "tag": ...}}``.
    :param transform: applied to each result batch (see :mod:`dativo_provider.ml.transform`).
    :param duckdb_settings: DuckDB settings, e.g. ``{"memory_limit": "1GB", "threads": "2"}``.
    """

    name: str
    sql: str
    inputs: Mapping[str, Any]
    transform: Any = None
    duckdb_settings: Mapping[str, str] = field(default_factory=dict)
    batch_rows: int = BATCH_ROWS


def run_feature_transform(
    feature: FeatureTransform,
    catalog: CatalogConfig,
    table: str,
    options: WriteOptions | None = None,
    *,
    run_id: str | None = None,
    audit: AuditGate | None = None,
) -> IngestResult:
    """Compute ``feature`` over its inputs' pinned snapshots and commit the result to ``table``.

    :param options: write options; ``replace`` (the default) or ``merge`` on keys, since every run
        recomputes the result from whole inputs.
    :returns: the run summary; ``committed`` is False when the inputs and SQL are those of the last
        commit (nothing to do), and ``source_details["inputs"]`` names the snapshots read.
    :raises TransformError: the SQL or the transform failed; the message names the transform.
    :raises ConfigError: an input table, snapshot, tag or branch does not exist.
    """
    options = options or WriteOptions(mode="replace")
    post = Transform.parse(feature.transform, feature.name) if feature.transform is not None else None
    iceberg = catalog.load()
    resolved = [spec.resolve(iceberg) for spec in parse_inputs(feature.inputs)]
    source = TableTransformSource(
        catalog, resolved, feature.sql, feature.name, fingerprint=post.fingerprint() if post else "",
        batch_rows=feature.batch_rows, duckdb_settings=feature.duckdb_settings,
    )
    branch = options.branch or "main"
    if _already_committed(iceberg, table, source, branch):
        return _unchanged(source, catalog, table, options, branch)
    result = run_ingest(source, catalog, table, options, run_id=run_id, audit=audit, transform=post)
    result.inputs = source.lineage_inputs
    return result


def _already_committed(catalog: Catalog, table: str, source: TableTransformSource, branch: str) -> bool:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        committed = read_state(catalog.load_table(table), source.identity, branch)
    except NoSuchTableError:
        return False
    return committed is not None and committed.state == source.planned_state()


def _unchanged(source: TableTransformSource, catalog: CatalogConfig, table: str, options: WriteOptions,
               branch: str) -> IngestResult:
    head = catalog.load().load_table(table).metadata.snapshot_by_name(branch)
    result = IngestResult(
        table=table, mode=options.mode, source=source.identity, branch=branch,
        snapshot_id=head.snapshot_id if head else None, inputs=source.lineage_inputs,
        outputs=[LineageDataset(catalog.lineage_namespace, table)],
        source_details={INPUTS_KEY: source.planned_state()[INPUTS_KEY], "unchanged": True},
    )
    log.info("%s: the inputs and SQL of feature transform %r are those of its last commit; nothing to do",
             table, source.name)
    return result


def committed_inputs(table: Table, name: str, branch: str = "main") -> dict[str, dict[str, Any]]:
    """The inputs (table, snapshot id, ref) the newest commit of feature transform ``name`` read;
    empty if it never committed to ``table``."""
    committed = read_state(table, f"{IDENTITY_PREFIX}{name}", branch)
    if committed is None or not committed.state:
        return {}
    return dict(committed.state.get(INPUTS_KEY) or {})
