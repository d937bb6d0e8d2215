"""Drift over Iceberg tables: samples by snapshot, tag, branch or time window, read column by column.

Each sample is pinned to one snapshot when the check starts. Columns are then read one at a time, one
data file and one row group at a time (:func:`dativo_provider.iceberg.reader.stream_file`), so memory
holds one column of both samples, never a table:

- a categorical column becomes value counts (memory grows with the number of distinct values only);
- a numeric column is held as a sorted float64 array (8 bytes a row) while its samples have at most
  ``max_rows_in_memory`` rows each (default 50M): all statistics are then exact;
- above that, the column is read twice and summarised in :data:`FINE_BINS` equal-width bins over
  both samples' range. PSI and Jensen-Shannon stay exact (their Sturges bins depend only on the range
  and the row count, known after the first pass). KS and Wasserstein come from the binned CDFs: the KS
  statistic is off by at most the largest share of either sample in one fine bin, the Wasserstein
  distance by at most one fine bin's width (both bounds are reported in ``error_bound``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dativo_provider.exceptions import ConfigError
from dativo_provider.ml import drift_stats as stats
from dativo_provider.ml.drift import (
    TESTS,
    ColumnData,
    ColumnDrift,
    DriftOptions,
    DriftReport,
    default_stattest,
    evaluate_column,
    is_drift,
)
from dativo_provider.ml.drift_report_html import PlotData
from dativo_provider.ml.drift_stats import CategoryCounts

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

#: Fine bins of a numeric column too large to hold (see the module docstring).
FINE_BINS = 1 << 14


@dataclass(frozen=True)
class TableSample:
    """Which rows of an Iceberg table are a drift sample.

    :param table: ``"namespace.table"``.
    :param snapshot_id: read this snapshot; else ``ref`` (a tag or branch); else main's head.
    :param window: ``(column, start, end)``: only rows with ``start <= column < end`` (ISO strings; either
        bound may be None).
    """

    table: str
    snapshot_id: int | None = None
    ref: str | None = None
    window: tuple[str, str | None, str | None] | None = None

    @classmethod
    def parse(cls, spec: Any, where: str) -> TableSample:
        """From ``"namespace.table"`` or ``{"table", "snapshot_id" | "tag" | "branch", "window":
        {"column", "start", "end"}}``."""
        if isinstance(spec, TableSample):
            return spec
        if isinstance(spec, str):
            spec = {"table": spec}
        if not isinstance(spec, Mapping) or "table" not in spec or \
                set(spec) - {"table", "snapshot_id", "tag", "branch", "window"}:
            raise ConfigError(f"{where}: expected 'namespace.table' or a dict with table and optionally "
                              f"snapshot_id, tag, branch, window; got {spec!r}")
        refs = [k for k in ("snapshot_id", "tag", "branch") if spec.get(k) not in (None, "", "None")]
        if len(refs) > 1:
            raise ConfigError(f"{where}: give one of snapshot_id, tag, branch (got {refs})")
        window = spec.get("window")
        if window is not None:
            if not isinstance(window, Mapping) or "column" not in window or set(window) - {"column", "start", "end"}:
                raise ConfigError(f"{where}.window: expected {{'column', 'start', 'end'}}, got {window!r}")
            window = (str(window["column"]), _iso(window.get("start")), _iso(window.get("end")))
        snapshot = spec.get("snapshot_id") if "snapshot_id" in refs else None
        try:
            snapshot_id = int(snapshot) if snapshot is not None else None
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.snapshot_id: {snapshot!r} is not a snapshot id") from None
        ref = spec.get("tag") or spec.get("branch") if refs and refs[0] != "snapshot_id" else None
        return cls(str(spec["table"]), snapshot_id, ref, window)


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else str(value)


@dataclass(frozen=True)
class _Pinned:
    sample: TableSample
    table: Table
    snapshot_id: int

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.sample.table, "snapshot_id": str(self.snapshot_id)}
        if self.sample.ref:
            out["ref"] = self.sample.ref
        if self.sample.window:
            column, start, end = self.sample.window
            out["window"] = {"column": column, "start": start, "end": end}
        return out


def pin(catalog: Any, sample: TableSample, where: str) -> _Pinned:
    """The snapshot ``sample`` reads, fixed for the whole check."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(sample.table)
    except NoSuchTableError:
        raise ConfigError(f"{where}: table {sample.table!r} does not exist") from None
    if sample.snapshot_id is not None:
        if table.metadata.snapshot_by_id(sample.snapshot_id) is None:
            raise ConfigError(f"{where}: {sample.table} has no snapshot {sample.snapshot_id}")
        return _Pinned(sample, table, sample.snapshot_id)
    snapshot = table.metadata.snapshot_by_name(sample.ref or "main")
    if snapshot is None:
        refs = ", ".join(sorted(table.metadata.refs)) or "none"
        what = f"no tag or branch {sample.ref!r} (it has: {refs})" if sample.ref else "no snapshot yet"
        raise ConfigError(f"{where}: {sample.table} has {what}")
    return _Pinned(sample, table, snapshot.snapshot_id)


def head_snapshot(catalog: CatalogConfig, table: str, branch: str = "main") -> tuple[int, int] | None:
    """The head snapshot of ``branch``: (id, commit time in ms since the epoch); None when the table or
    the branch does not exist yet. What the drift sensor and its trigger poll (metadata only)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        snapshot = catalog.load().load_table(table).metadata.snapshot_by_name(branch)
    except NoSuchTableError:
        return None
    return (snapshot.snapshot_id, snapshot.timestamp_ms) if snapshot is not None else None


def contract_settings(path: str, dataset: str | None = None) -> tuple[list[str], dict[str, Any]]:
    """The feature columns and per-column drift settings of a contract dataset's ``dativoFeatures``."""
    from dativo_provider.contracts import load_contract
    from dativo_provider.quality.plan import dataset_of

    chosen = dataset_of(load_contract(path), dataset)
    if chosen.features is None:
        return [], {}
    return list(chosen.features.features), {c: dict(v) for c, v in chosen.features.drift.items()}


def iceberg_drift_report(catalog: CatalogConfig, reference: Any, current: Any,
                         columns: Sequence[str] | None = None, *, contract: str | None = None,
                         contract_dataset: str | None = None, **options: Any) -> DriftReport:
    """Test ``current`` against ``reference`` (each a ``"namespace.table"`` or a :class:`TableSample`
    dict), column by column, streaming.

    :param columns: default: the contract's feature columns, else every numeric and categorical column.
    :param contract: an ODCS contract whose ``dativoFeatures.drift`` gives per-column settings (the
        ``column_settings`` option wins over it).
    :raises ConfigError: a missing table, snapshot, tag, branch or column; bad options.
    """
    started = time.perf_counter()
    if contract:
        feature_columns, from_contract = contract_settings(contract, contract_dataset)
        options = {**options, "column_settings": {**from_contract, **(options.get("column_settings") or {})}}
        columns = columns or feature_columns or None
    settings = DriftOptions.from_mapping(options)
    iceberg = catalog.load()
    ref = pin(iceberg, TableSample.parse(reference, "reference"), "reference")
    cur = pin(iceberg, TableSample.parse(current, "current"), "current")
    results: list[ColumnDrift] = []
    skipped: dict[str, str] = {}
    for name in _columns(ref, cur, columns):
        kind = settings.settings(name).kind or iceberg_kind(ref.table.schema().find_field(name).field_type)
        if kind is None:
            skipped[name] = f"type {ref.table.schema().find_field(name).field_type} is neither numeric nor categorical"
            continue
        result = _check_column(name, kind, ref, cur, settings)
        if isinstance(result, str):
            skipped[name] = result
        else:
            results.append(result)
    return DriftReport(tuple(results), settings.drift_share, reference=ref.describe(), current=cur.describe(),
                       skipped=skipped, seconds=time.perf_counter() - started)


def _columns(ref: _Pinned, cur: _Pinned, columns: Sequence[str] | None) -> list[str]:
    names = [f.name for f in ref.table.schema().fields]
    if columns is None:
        return names
    for name in columns:
        for pinned, which in ((ref, "reference"), (cur, "current")):
            if _field(pinned, name) is None:
                raise ConfigError(f"column {name!r} is not in the {which} table {pinned.sample.table}")
    return list(columns)


def _field(pinned: _Pinned, name: str) -> Any:
    try:
        return pinned.table.schema().find_field(name)
    except ValueError:
        return None


def iceberg_kind(field_type: Any) -> str | None:
    """numeric (int, long, float, double, decimal), categorical (string, boolean) or None."""
    from pyiceberg import types as t

    if isinstance(field_type, (t.IntegerType, t.LongType, t.FloatType, t.DoubleType, t.DecimalType)):
        return "numeric"
    if isinstance(field_type, (t.StringType, t.BooleanType)):
        return "categorical"
    return None


def _check_column(name: str, kind: str, ref: _Pinned, cur: _Pinned, options: DriftOptions) -> ColumnDrift | str:
    if kind == "numeric" and max(_planned_rows(ref), _planned_rows(cur)) > options.max_rows_in_memory:
        return _binned_column(name, ref, cur, options)
    return evaluate_column(name, kind, _read(ref, name, kind), _read(cur, name, kind), options)


def _planned_rows(pinned: _Pinned) -> int:
    """Rows in the data files the sample reads (before deletes and the window filter: an upper bound)."""
    return sum(task.file.record_count for task in _scan(pinned, ()).plan_files())


def _scan(pinned: _Pinned, names: tuple[str, ...]) -> Any:
    from pyiceberg.expressions import AlwaysTrue

    return pinned.table.scan(row_filter=_filter(pinned) or AlwaysTrue(), snapshot_id=pinned.snapshot_id,
                             selected_fields=names or ("*",))


def _filter(pinned: _Pinned) -> Any:
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    if pinned.sample.window is None:
        return None
    column, start, end = pinned.sample.window
    bounds = [GreaterThanOrEqual(column, start) if start else None, LessThan(column, end) if end else None]
    present = [b for b in bounds if b is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else And(*present)


def _column_chunks(pinned: _Pinned, name: str) -> Iterator[pa.Array]:
    """One column of the sample, batch by batch (window rows only)."""
    import pyarrow as pa

    from dativo_provider.iceberg.reader import stream_file

    window = _filter(pinned)
    names = (name,) if window is None or pinned.sample.window[0] == name else (name, pinned.sample.window[0])  # type: ignore[index]
    schema = pinned.table.schema().select(*names)
    predicate = _arrow_predicate(window, schema) if window is not None else None
    for task in _scan(pinned, names).plan_files():
        for batch in stream_file(pinned.table, task, schema):
            table = pa.Table.from_batches([batch])
            if predicate is not None:
                table = table.filter(predicate)
            yield from table.column(name).chunks


def _arrow_predicate(expression: Any, schema: Any) -> Any:
    from pyiceberg.expressions.visitors import bind
    from pyiceberg.io.pyarrow import expression_to_pyarrow

    return expression_to_pyarrow(bind(schema, expression, case_sensitive=True))


def _read(pinned: _Pinned, name: str, kind: str) -> ColumnData:
    from dativo_provider.ml.drift_arrow import add_counts, numeric_values

    if kind == "numeric":
        parts, nulls = [], 0
        for chunk in _column_chunks(pinned, name):
            nulls += chunk.null_count
            parts.append(numeric_values(chunk))
        values = np.concatenate(parts) if len(parts) != 1 else parts[0]
        parts.clear()
        return stats.NumericSample.from_values(values, nulls, owned=True)
    counter: Counter[Any] = Counter()
    nulls = sum(add_counts(counter, chunk) for chunk in _column_chunks(pinned, name))
    return CategoryCounts(dict(counter), nulls)


@dataclass
class _Pass1:
    """First pass over a large numeric sample: size, nulls, range, moments, up to 21 distinct values."""

    count: int = 0
    nulls: int = 0
    low: float = np.inf
    high: float = -np.inf
    shift: float | None = None
    sum: float = 0.0
    sum_sq: float = 0.0
    few: Counter[float] | None = None

    def add(self, values: np.ndarray, nulls: int) -> None:
        finite = values[np.isfinite(values)]
        self.nulls += nulls + int(values.size - finite.size)
        if finite.size == 0:
            return
        self.count += int(finite.size)
        self.low, self.high = min(self.low, float(finite.min())), max(self.high, float(finite.max()))
        if self.shift is None:  # shifted sums keep the variance accurate for large means
            self.shift = float(finite[0])
            self.few = Counter()
        centred = finite - self.shift
        self.sum += float(centred.sum())
        self.sum_sq += float(np.dot(centred, centred))
        if self.few is not None:
            keys, counts = np.unique(finite, return_counts=True)
            self.few.update(dict(zip(keys.tolist(), counts.tolist(), strict=True)))
            if len(self.few) > stats.BINNING_MIN_DISTINCT:
                self.few = None

    def std(self) -> float:
        mean = self.sum / self.count
        return float(np.sqrt(max(self.sum_sq / self.count - mean * mean, 0.0)))


def _binned_column(name: str, ref: _Pinned, cur: _Pinned, options: DriftOptions) -> ColumnDrift | str:
    from dativo_provider.ml.drift_arrow import numeric_values

    first = [_Pass1(), _Pass1()]
    for pinned, summary in zip((ref, cur), first, strict=True):
        for chunk in _column_chunks(pinned, name):
            summary.add(numeric_values(chunk), chunk.null_count)
    if first[0].count == 0 or first[1].count == 0:
        return f"no non-null values in the {'reference' if first[0].count == 0 else 'current'} sample"
    low, high = min(s.low for s in first), max(s.high for s in first)
    fine = np.linspace(low, high, FINE_BINS + 1) if high > low else np.array([low - 0.5, high + 0.5])
    sturges = np.histogram_bin_edges(np.array([low, high]), bins=int(np.ceil(np.log2(first[0].count + first[1].count) + 1)),
                                     range=(low, high))
    counts = []
    for pinned in (ref, cur):
        fine_counts, sturges_counts = np.zeros(fine.size - 1), np.zeros(sturges.size - 1)
        for chunk in _column_chunks(pinned, name):
            values = numeric_values(chunk)
            values = values[np.isfinite(values)]
            fine_counts += np.histogram(values, fine)[0]
            sturges_counts += np.histogram(values, sturges)[0]
        counts.append((fine_counts, sturges_counts))
    return _binned_verdict(name, first, fine, sturges, counts, options)


def _binned_verdict(name: str, first: list[_Pass1], fine: np.ndarray, sturges: np.ndarray,
                    counts: list[tuple[np.ndarray, np.ndarray]], options: DriftOptions) -> ColumnDrift:
    from scipy.stats import kstwo

    ref, cur = first
    ref_fine, cur_fine = counts[0][0] / ref.count, counts[1][0] / cur.count
    cdf_gap = np.cumsum(ref_fine) - np.cumsum(cur_fine)
    ks = float(np.abs(cdf_gap).max())
    width = float(fine[1] - fine[0])
    norm = max(ref.std(), 0.001)
    wasserstein = float(np.abs(cdf_gap[:-1]).sum() * width) / norm
    m, n = sorted([float(ref.count), float(cur.count)], reverse=True)
    ks_p = float(np.clip(kstwo.sf(ks, np.round(m * n / (m + n))), 0, 1))
    if ref.few is not None and cur.few is not None:
        bins = stats.category_shares(ref.few, cur.few)
    else:
        bins = stats.Bins(counts[0][1] / ref.count, counts[1][1] / cur.count, edges=sturges)
    distinct = len(set(ref.few) | set(cur.few)) if ref.few is not None and cur.few is not None \
        else int(np.count_nonzero(counts[0][0] + counts[1][0]))
    values = {"ks": ks_p, "wasserstein": wasserstein, "psi": stats.psi(bins), "jensenshannon": stats.jensen_shannon(bins)}
    own = options.settings(name)
    test = own.stattest or options.stattest or default_stattest("numeric", ref.count, distinct)
    if test not in values:
        raise ConfigError(f"column {name!r}: test {test!r} is not available above max_rows_in_memory "
                          f"({options.max_rows_in_memory} rows); use ks, wasserstein, psi or jensenshannon")
    threshold = own.threshold if own.threshold is not None else (
        options.threshold if options.threshold is not None else TESTS[test][1])
    group = FINE_BINS // 32 if fine.size - 1 == FINE_BINS else 1
    plot = PlotData(_regroup(ref_fine, group), _regroup(cur_fine, group), edges=fine[::group].tolist())
    return ColumnDrift(
        column=name, kind="numeric", stattest=test, threshold=threshold, value=values[test],
        drifted=is_drift(test, values[test], threshold), reference_rows=ref.count, current_rows=cur.count,
        reference_nulls=ref.nulls, current_nulls=cur.nulls,
        statistics={"ks_statistic": ks, "ks_p_value": ks_p, "wasserstein_normed": wasserstein,
                    "psi": values["psi"], "jensenshannon": values["jensenshannon"]},
        binning=bins.description, method="binned",
        error_bound={"ks_statistic": float(np.maximum(ref_fine, cur_fine).max()),
                     "wasserstein_normed": width / norm},
        plot=plot,
    )


def _regroup(shares: np.ndarray, group: int) -> list[float]:
    return shares.reshape(-1, group).sum(axis=1).tolist() if group > 1 else shares.tolist()
