"""Transforms: DuckDB SQL over each Arrow batch and vectorised Python functions, Arrow in, Arrow out.

A transform is a named list of steps applied to every batch a source streams, one batch at a time, so
memory stays flat however large the source is. A SQL step sees the batch as the relation ``batch``
(:attr:`Transform.relation`); a Python step is a function taking a ``pyarrow.RecordBatch`` and returning
a ``RecordBatch`` or ``Table``. Steps may filter rows: the rows a transform drops are counted
(:attr:`SourceReport.rows_dropped`), so a run still accounts for every row it read.

:func:`transformed` wraps a :class:`~dativo_provider.sources.base.Source` so the ingest engine writes the
transformed batches through its usual commit path (exactly-once state, merge, schema policy, audit).
Nothing heavy is imported until a transform runs.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.optional import require
from dativo_provider.sources.base import LineageDataset, ReadBounds, Source, SourceReport, SourceStream

if TYPE_CHECKING:
    import pyarrow as pa

#: The pip extra that provides DuckDB for transforms.
EXTRA = "ml"
#: The relation name a SQL step reads the batch from, unless the transform names another.
DEFAULT_RELATION = "batch"

BatchFunction = Callable[["pa.RecordBatch"], Any]


class TransformError(ConfigError):
    """A transform step failed: bad SQL, a function that raised, or output that does not fit.

    The message names the transform and its step; retrying the same input fails the same way.
    """


@dataclass(frozen=True)
class SqlStep:
    """A DuckDB query over the batch (the relation named by the transform)."""

    sql: str
    name: str = ""

    def describe(self, index: int) -> str:
        return f"step {index} ({self.name or 'sql'})"

    def fingerprint(self) -> str:
        return f"sql:{self.sql.strip()}"


@dataclass(frozen=True)
class FunctionStep:
    """A vectorised Python function: ``RecordBatch`` in, ``RecordBatch`` or ``Table`` out."""

    function: BatchFunction
    name: str = ""

    def describe(self, index: int) -> str:
        return f"step {index} ({self.name or _qualified_name(self.function)})"

    def fingerprint(self) -> str:
        return f"function:{_qualified_name(self.function)}"


Step = SqlStep | FunctionStep


@dataclass(frozen=True)
class Transform:
    """Named steps applied to each batch in order.

    :param name: names the transform in errors and in the run summary.
    :param steps: SQL and function steps; each one's output is the next one's input.
    :param relation: the relation name SQL steps read the batch from.
    """

    name: str
    steps: tuple[Step, ...]
    relation: str = DEFAULT_RELATION
    #: Extra DuckDB settings for SQL steps, e.g. ``{"memory_limit": "512MB"}``.
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ConfigError(f"transform {self.name!r} has no steps; give SQL, a function, or a list of "
                              "them")
        if not self.relation.isidentifier():
            raise ConfigError(f"transform {self.name!r}: relation {self.relation!r} must be a plain SQL name")

    @classmethod
    def parse(cls, spec: Any, name: str = "transform") -> Transform:
        """A transform from what a DAG author writes.

        ``spec`` is a :class:`Transform`; SQL text; a function; a ``"module:function"`` string under
        ``{"function": ...}``; a dict ``{"name": ..., "sql" | "function" | "steps": ..., "relation": ...}``;
        or a list of these (the steps, in order).
        """
        if isinstance(spec, Transform):
            return spec
        if isinstance(spec, Mapping) and "steps" in spec:
            unknown = set(spec) - {"name", "steps", "relation", "settings"}
            if unknown:
                raise ConfigError(f"transform {name!r}: unknown keys {sorted(unknown)}; "
                                  "allowed: name, steps, relation, settings")
            name = str(spec.get("name") or name)
            steps = tuple(_step(s, name, i) for i, s in enumerate(_as_list(spec["steps"]), start=1))
            relation = str(spec.get("relation") or DEFAULT_RELATION)
            return cls(name, steps, relation, dict(spec.get("settings") or {}))
        if isinstance(spec, Mapping) and spec.get("name") and len(spec) > 1:
            name = str(spec["name"])
        return cls(name, tuple(_step(s, name, i) for i, s in enumerate(_as_list(spec), start=1)))

    def fingerprint(self) -> str:
        """A short hash of what the transform does (its SQL and function names), for run state."""
        text = "\n".join([self.relation, *(step.fingerprint() for step in self.steps)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def open(self) -> BatchTransformer:
        """Start applying the transform; close the result when done (it may hold a DuckDB connection)."""
        return BatchTransformer(self)


def _as_list(spec: Any) -> list[Any]:
    return list(spec) if isinstance(spec, (list, tuple)) else [spec]


def _step(spec: Any, transform: str, index: int) -> Step:
    if isinstance(spec, (SqlStep, FunctionStep)):
        return spec
    if isinstance(spec, str):
        return SqlStep(spec)
    if callable(spec):
        return FunctionStep(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"name", "sql", "function"}
        if unknown or ("sql" in spec) == ("function" in spec):
            raise ConfigError(f"transform {transform!r} step {index}: give exactly one of 'sql' or "
                              f"'function' (and optionally 'name'); got keys {sorted(spec)}")
        step_name = str(spec.get("name") or "")
        if "sql" in spec:
            return SqlStep(str(spec["sql"]), step_name)
        function = spec["function"]
        return FunctionStep(function if callable(function) else _import_function(function, transform, index),
                            step_name)
    raise ConfigError(f"transform {transform!r} step {index}: expected SQL text, a function or a dict, "
                      f"got {type(spec).__name__}")


def _import_function(path: Any, transform: str, index: int) -> BatchFunction:
    """The function a ``"package.module:function"`` string names."""
    module_name, _, attribute = str(path).partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"transform {transform!r} step {index}: function {path!r} must be "
                          "'package.module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"transform {transform!r} step {index}: cannot import {path!r}: {exc}") from exc
    if not callable(function):
        raise ConfigError(f"transform {transform!r} step {index}: {path!r} is not callable")
    return function


def _qualified_name(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


class BatchTransformer:
    """Applies a transform to one batch at a time; holds one DuckDB connection for all its SQL steps."""

    def __init__(self, transform: Transform) -> None:
        self.transform = transform
        self._connection: Any = None

    def __call__(self, batch: pa.RecordBatch) -> pa.Table:
        """The transformed rows of ``batch`` (any number, possibly none)."""
        import pyarrow as pa

        data: pa.Table | pa.RecordBatch = batch
        for index, step in enumerate(self.transform.steps, start=1):
            where = f"transform {self.transform.name!r} {step.describe(index)}"
            if isinstance(step, SqlStep):
                data = self._sql(step, data, where)
            else:
                data = _call(step, _one_batch(data), where)
        return data if isinstance(data, pa.Table) else pa.Table.from_batches([data])

    def _sql(self, step: SqlStep, data: pa.Table | pa.RecordBatch, where: str) -> pa.Table:
        connection = self._duckdb()
        duckdb = require("duckdb", EXTRA)
        relation = self.transform.relation
        connection.register(relation, data)
        try:
            result = connection.sql(step.sql)
            if result is None:
                raise TransformError(f"{where}: the SQL must be a query (SELECT ... FROM {relation}) that "
                                     "returns the transformed rows; it returned nothing")
            return to_arrow_table(result)
        except duckdb.Error as exc:
            columns = ", ".join(data.schema.names)
            raise TransformError(
                f"{where}: DuckDB rejected the SQL: {_first_lines(str(exc))} "
                f"(the batch is the relation {relation!r} with columns {columns})"
            ) from exc
        finally:
            connection.unregister(relation)

    def _duckdb(self) -> Any:
        if self._connection is None:
            self._connection = connect_duckdb(self.transform.settings)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _call(step: FunctionStep, batch: pa.RecordBatch, where: str) -> pa.Table | pa.RecordBatch:
    import pyarrow as pa

    try:
        out = step.function(batch)
    except Exception as exc:  # noqa: BLE001 - whatever the user's function raised, name the step
        raise TransformError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, (pa.RecordBatch, pa.Table)):
        raise TransformError(f"{where} returned {type(out).__name__}; it must return a pyarrow RecordBatch "
                             "or Table")
    return out


def _one_batch(data: pa.Table | pa.RecordBatch) -> pa.RecordBatch:
    """A function step always receives one RecordBatch, whatever the previous step produced."""
    import pyarrow as pa

    if isinstance(data, pa.RecordBatch):
        return data
    combined = data.combine_chunks().to_batches()
    return combined[0] if combined else pa.RecordBatch.from_pylist([], schema=data.schema)


def _first_lines(message: str, lines: int = 2) -> str:
    return " ".join(line.strip() for line in message.strip().splitlines()[:lines])


def connect_duckdb(settings: Mapping[str, str] | None = None, database: str = ":memory:") -> Any:
    """A DuckDB connection that returns timestamps with time zone in UTC (not the machine's zone)."""
    duckdb = require("duckdb", EXTRA)
    connection = duckdb.connect(database)
    # Every statement's result is drained: DuckDB 2 refuses new work while one is unfinished.
    connection.execute("SET TimeZone = 'UTC'").fetchall()
    for key, value in (settings or {}).items():
        if not key.replace("_", "").isalnum():
            raise ConfigError(f"DuckDB setting {key!r} is not a setting name")
        connection.execute(f"SET {key} = ?", [value]).fetchall()
    return connection


def to_arrow_table(relation: Any) -> pa.Table:
    """A DuckDB relation's rows as a pyarrow Table (DuckDB ≥ 1.4 renamed ``fetch_arrow_table``)."""
    method = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return method()


def to_arrow_reader(relation: Any, batch_rows: int) -> pa.RecordBatchReader:
    """A DuckDB relation's rows streamed as record batches of ``batch_rows``."""
    method = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    return method(batch_rows)


# -- a source whose batches pass through a transform ------------------------------------------------


def transformed(source: Source, transform: Any) -> Source:
    """``source`` with every batch passed through ``transform`` (anything :meth:`Transform.parse` takes).

    The wrapped source keeps the original's identity, so the state an earlier run committed (its
    watermark) still applies when a transform is added.
    """
    return TransformedSource(source, Transform.parse(transform))


class TransformedSource(Source):
    """A source whose batches pass through a transform on their way to the table."""

    def __init__(self, source: Source, transform: Transform) -> None:
        self.source = source
        self.transform = transform
        self.may_repeat_rows = source.may_repeat_rows
        self.former_identities = source.former_identities

    @property
    def identity(self) -> str:
        return self.source.identity

    @property
    def lineage(self) -> LineageDataset:
        return self.source.lineage

    def open(self, state: Mapping[str, Any] | None, bounds: ReadBounds) -> SourceStream:
        return TransformedStream(self.source.open(state, bounds), self.transform)


class TransformedStream(SourceStream):
    """The source's stream, transformed batch by batch.

    The output schema is that of the first transformed batch (an empty batch when the source has no
    rows), so the first source batch is read when the schema is first asked for; every later output is
    cast to that schema.
    """

    def __init__(self, inner: SourceStream, transform: Transform) -> None:
        self.inner = inner
        self.transform = transform
        self._apply = transform.open()
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._pending: pa.Table | None = None
        self._schema: pa.Schema | None = None
        self._rows_in = self._rows_out = self._batch_count = 0

    @property
    def report(self) -> SourceReport:
        return self.inner.report

    @report.setter
    def report(self, value: SourceReport) -> None:
        self.inner.report = value

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            self._pending = self._first()
            self._schema = self._pending.schema
        return self._schema

    def _first(self) -> pa.Table:
        import pyarrow as pa

        self._batches = iter(self.inner)
        first = next(self._batches, None)
        if first is None:
            first = pa.RecordBatch.from_pylist([], schema=self.inner.schema)
        return self._transform(first)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        schema = self.schema
        assert self._batches is not None and self._pending is not None  # set by the schema above
        yield from self._pending.to_batches()
        self._pending = None
        for number, batch in enumerate(self._batches, start=2):
            if batch.num_rows == 0:
                continue
            yield from self._conform(self._transform(batch), schema, number).to_batches()

    def _transform(self, batch: pa.RecordBatch) -> pa.Table:
        out = self._apply(batch)
        self._rows_in += batch.num_rows
        self._rows_out += out.num_rows
        self._batch_count += 1
        # rows_in - rows_out: negative when a step makes several rows of one (an unnest).
        self.report.rows_dropped += batch.num_rows - out.num_rows
        self.report.details["transform"] = {"name": self.transform.name, "rows_in": self._rows_in,
                                            "rows_out": self._rows_out, "batches": self._batch_count}
        return out

    def _conform(self, out: pa.Table, schema: pa.Schema, number: int) -> pa.Table:
        import pyarrow as pa

        if out.schema.equals(schema):
            return out
        try:
            return out.select(schema.names).cast(schema)
        except (KeyError, ValueError, TypeError, pa.ArrowException) as exc:
            raise TransformError(
                f"transform {self.transform.name!r}: batch {number} came out with columns "
                f"{_describe(out.schema)} but the first batch had {_describe(schema)}; a transform must "
                "return the same columns for every batch"
            ) from exc

    def state(self) -> dict[str, Any] | None:
        return self.inner.state()

    def close(self) -> None:
        try:
            self._apply.close()
        finally:
            self.inner.close()


def _describe(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{f.name} {f.type}" for f in schema) + ")"
