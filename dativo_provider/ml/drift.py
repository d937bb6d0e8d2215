"""Feature drift: compare a reference sample of a table with a current one, column by column.

:func:`drift_report` takes two Arrow tables; :func:`dativo_provider.ml.drift_iceberg.iceberg_drift_report`
reads Iceberg snapshots, tags, branches or time windows column by column. Both return a
:class:`DriftReport` (``to_dict()`` for XCom, ``to_html()`` for people).

Defaults are Evidently 0.7's (``DataDriftPreset``), so a team switching gets the same verdict:

- a column is *numeric* or *categorical* by its type (Arrow/Iceberg schema) or its contract setting;
  nulls, NaN and +-inf are counted and removed before testing;
- reference with at most 1,000 non-null values: numeric with more than 5 distinct values (both samples
  together) -> KS; otherwise chi-squared, or the Z-test with at most 2 distinct values;
- larger reference: numeric with more than 5 distinct values -> Wasserstein distance normed by the
  reference's std; otherwise Jensen-Shannon distance;
- thresholds: p-value tests drift when p < 0.05 (KS: p <= 0.05); distances drift when >= 0.1;
- the dataset drifts when the share of drifting columns is >= 0.5.

Every choice can be set for all columns (``stattest=``, ``threshold=``) or per column
(``column_settings={"age": {"stattest": "psi", "threshold": 0.2, "kind": "categorical"}}``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dativo_provider.exceptions import ConfigError
from dativo_provider.ml import drift_stats as stats
from dativo_provider.ml.drift_report_html import PlotData

if TYPE_CHECKING:
    import pyarrow as pa

Kind = Literal["numeric", "categorical"]
KINDS: tuple[str, ...] = ("numeric", "categorical")
#: Test name -> (what its value is, Evidently's default threshold).
TESTS: dict[str, tuple[str, float]] = {
    "ks": ("p_value", 0.05),
    "chisquare": ("p_value", 0.05),
    "z": ("p_value", 0.05),
    "wasserstein": ("distance", 0.1),
    "psi": ("distance", 0.1),
    "jensenshannon": ("distance", 0.1),
}
NUMERIC_ONLY_TESTS = ("ks", "wasserstein")
#: Evidently switches from p-value tests to distances above this many reference rows.
SMALL_REFERENCE_ROWS = 1000
DATASET_DRIFT_SHARE = 0.5
#: New categories listed by name in a result (the count is always complete).
LISTED_CATEGORIES = 20


@dataclass(frozen=True)
class ColumnSettings:
    """How one column is tested; None means Evidently's default."""

    kind: Kind | None = None
    stattest: str | None = None
    threshold: float | None = None

    @classmethod
    def parse(cls, column: str, spec: Mapping[str, Any]) -> ColumnSettings:
        if not isinstance(spec, Mapping) or set(spec) - {"kind", "stattest", "threshold"}:
            raise ConfigError(f"column_settings[{column!r}]: expected a dict with kind, stattest and/or "
                              f"threshold, got {spec!r}")
        settings = cls(spec.get("kind"), spec.get("stattest"), _threshold(spec.get("threshold"), column))
        if settings.kind is not None and settings.kind not in KINDS:
            raise ConfigError(f"column_settings[{column!r}].kind: {settings.kind!r} is not one of {KINDS}")
        _check_test(settings.stattest, f"column_settings[{column!r}].stattest")
        return settings


def _threshold(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: threshold {value!r} must be a non-negative number")
    return float(value)


def _check_test(name: str | None, where: str) -> None:
    if name is not None and name not in TESTS:
        raise ConfigError(f"{where}: unknown test {name!r}; one of {', '.join(TESTS)}")


@dataclass(frozen=True)
class DriftOptions:
    """Options of a drift check (the ``**options`` of :func:`drift_report`).

    :param stattest: one test for every column (default: Evidently's choice per column).
    :param threshold: one threshold for every column (default: the test's).
    :param column_settings: per column ``{"kind", "stattest", "threshold"}``; wins over the above.
    :param drift_share: the dataset drifts when at least this share of columns drifts.
    :param max_rows_in_memory: Iceberg reads: above this many rows in one sample, a numeric column is
        summarised in fixed bins instead of held whole (see :mod:`dativo_provider.ml.drift_iceberg`).
    :param workers: Arrow tables: columns tested at once (threads); Iceberg reads go one column at a
        time to bound memory.
    """

    stattest: str | None = None
    threshold: float | None = None
    column_settings: Mapping[str, ColumnSettings] = field(default_factory=dict)
    drift_share: float = DATASET_DRIFT_SHARE
    max_rows_in_memory: int = 50_000_000
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> DriftOptions:
        unknown = set(options) - {"stattest", "threshold", "column_settings", "drift_share",
                                  "max_rows_in_memory", "workers"}
        if unknown:
            raise ConfigError(f"unknown drift option(s) {sorted(unknown)}; allowed: stattest, threshold, "
                              "column_settings, drift_share, max_rows_in_memory, workers")
        _check_test(options.get("stattest"), "stattest")
        share = options.get("drift_share", DATASET_DRIFT_SHARE)
        if not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(f"drift_share: {share!r} must be a number in (0, 1]")
        settings = options.get("column_settings") or {}
        return cls(
            stattest=options.get("stattest"),
            threshold=_threshold(options.get("threshold"), "threshold"),
            column_settings={str(c): s if isinstance(s, ColumnSettings) else ColumnSettings.parse(str(c), s)
                             for c, s in settings.items()},
            drift_share=float(share),
            max_rows_in_memory=int(options.get("max_rows_in_memory", 50_000_000)),
            workers=int(options.get("workers", min(4, os.cpu_count() or 1))),
        )

    def settings(self, column: str) -> ColumnSettings:
        return self.column_settings.get(column, ColumnSettings())


CategoryCounts = stats.CategoryCounts
ColumnData = stats.ColumnData


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column. ``value`` is the test's p-value or distance; ``statistics`` holds every
    statistic computed for the column (KS, Wasserstein, PSI, Jensen-Shannon, chi-squared...)."""

    column: str
    kind: str
    stattest: str
    threshold: float
    value: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_nulls: int
    current_nulls: int
    statistics: Mapping[str, float]
    binning: str = ""
    new_categories: tuple[str, ...] = ()
    new_category_count: int = 0
    new_category_share: float = 0.0
    missing_category_count: int = 0
    current_distinct: int = 0
    method: str = "exact"
    error_bound: Mapping[str, float] = field(default_factory=dict)
    plot: PlotData | None = None

    @property
    def value_kind(self) -> str:
        return TESTS[self.stattest][0]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "column": self.column, "kind": self.kind, "stattest": self.stattest,
            "value_kind": self.value_kind, "value": _json_float(self.value), "threshold": self.threshold,
            "drifted": self.drifted, "reference_rows": self.reference_rows, "current_rows": self.current_rows,
            "reference_nulls": self.reference_nulls, "current_nulls": self.current_nulls,
            "statistics": {k: _json_float(v) for k, v in self.statistics.items()},
            "binning": self.binning, "method": self.method,
        }
        if self.kind == "categorical":
            out.update(new_categories=list(self.new_categories), new_category_count=self.new_category_count,
                       new_category_share=self.new_category_share,
                       missing_category_count=self.missing_category_count)
        if self.error_bound:
            out["error_bound"] = dict(self.error_bound)
        return out


def _json_float(value: float) -> float | None:
    """JSON has no infinity or NaN: None stands for them (a chi-squared with a new category is inf)."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class DriftReport:
    """The verdict on a dataset: one :class:`ColumnDrift` per tested column."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float
    reference: Mapping[str, Any] = field(default_factory=dict)
    current: Mapping[str, Any] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share_drifted >= self.drift_share

    def summary(self) -> str:
        verdict = "DRIFT" if self.dataset_drift else "no dataset drift"
        drifted = ", ".join(self.drifted_columns) or "none"
        return (f"{verdict}: {len(self.drifted_columns)}/{len(self.columns)} columns drifted "
                f"({self.share_drifted:.0%}, threshold {self.drift_share:.0%}): {drifted}")

    def column(self, name: str) -> ColumnDrift:
        for result in self.columns:
            if result.column == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe and small (no plot data): for XCom and files."""
        return {
            "dataset_drift": self.dataset_drift, "share_drifted": self.share_drifted,
            "drift_share": self.drift_share, "drifted_columns": self.drifted_columns,
            "number_of_columns": len(self.columns), "reference": dict(self.reference),
            "current": dict(self.current), "columns": [c.to_dict() for c in self.columns],
            "skipped": dict(self.skipped), "seconds": round(self.seconds, 3),
        }

    def to_html(self, title: str = "Drift report") -> str:
        """A self-contained HTML page (inline SVG plots, no script, no external resource)."""
        from dativo_provider.ml.drift_report_html import render_html

        return render_html(self, title)

    def write(self, json_path: str | None = None, html_path: str | None = None, title: str = "Drift report") -> None:
        """Write the JSON result and/or the HTML report (local paths; folders are created)."""
        import json
        from pathlib import Path

        for path, text in ((json_path, lambda: json.dumps(self.to_dict(), indent=2, allow_nan=False)),
                           (html_path, lambda: self.to_html(title))):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text(), encoding="utf-8")


def drift_report(reference: pa.Table, current: pa.Table, columns: Sequence[str] | None = None,
                 **options: Any) -> DriftReport:
    """Test every column (or ``columns``) of ``current`` against ``reference``.

    :param reference: the reference sample (e.g. the training set), an Arrow table.
    :param current: the sample to check, an Arrow table with the same columns.
    :param columns: the columns to test; default every numeric and categorical column of ``reference``
        (others are listed under ``skipped``).
    :param options: see :class:`DriftOptions`.
    :raises ConfigError: a named column missing from either table, a test that does not fit a column,
        an unknown option.
    """
    from concurrent.futures import ThreadPoolExecutor

    from dativo_provider.ml.drift_arrow import arrow_kind, column_data

    started = time.perf_counter()
    settings = DriftOptions.from_mapping(options)
    names = list(columns) if columns is not None else list(reference.column_names)
    kinds: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        for table, which in ((reference, "reference"), (current, "current")):
            if name not in table.column_names:
                raise ConfigError(f"column {name!r} is not in the {which} table "
                                  f"(it has: {', '.join(table.column_names)})")
        kind = settings.settings(name).kind or arrow_kind(reference.schema.field(name).type)
        if kind is None:
            skipped[name] = f"type {reference.schema.field(name).type} is neither numeric nor categorical"
        else:
            kinds[name] = kind

    def check(name: str) -> ColumnDrift | str:
        return evaluate_column(name, kinds[name], column_data(reference.column(name), kinds[name]),
                               column_data(current.column(name), kinds[name]), settings)

    # numpy and Arrow release the GIL in sorts, searches and counts: columns run side by side.
    with ThreadPoolExecutor(max_workers=max(1, min(settings.workers, len(kinds)))) as pool:
        outcomes = list(pool.map(check, kinds))
    results = []
    for name, outcome in zip(kinds, outcomes, strict=True):
        if isinstance(outcome, str):
            skipped[name] = outcome
        else:
            results.append(outcome)
    return DriftReport(tuple(results), settings.drift_share,
                       reference={"rows": reference.num_rows}, current={"rows": current.num_rows},
                       skipped=skipped, seconds=time.perf_counter() - started)


def default_stattest(kind: str, reference_rows: int, distinct: int) -> str:
    """Evidently 0.7's choice (``_get_default_stattest``) for a column kind and size."""
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if kind == "numeric" and distinct > 5:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    if kind == "numeric" and distinct > 5:
        return "wasserstein"
    return "jensenshannon"


def evaluate_column(name: str, kind: str, reference: ColumnData, current: ColumnData,
                    options: DriftOptions) -> ColumnDrift | str:
    """Test one column; a string says why it was not tested (an empty sample)."""
    if reference.size == 0 or current.size == 0:
        empty = "reference" if reference.size == 0 else "current"
        return f"no non-null values in the {empty} sample"
    walk = None
    if isinstance(reference, stats.NumericSample) and isinstance(current, stats.NumericSample):
        walk = stats.cdf_walk(reference, current)
        distinct = walk.distinct
    else:
        distinct = len(set(_counts(reference)) | set(_counts(current)))
    own = options.settings(name)
    test = own.stattest or options.stattest or default_stattest(kind, reference.size, distinct)
    if test in NUMERIC_ONLY_TESTS and kind != "numeric":
        raise ConfigError(f"column {name!r} is categorical: test {test!r} needs a numeric column "
                          "(use chisquare, z, psi or jensenshannon, or set its kind to numeric)")
    threshold = own.threshold if own.threshold is not None else (
        options.threshold if options.threshold is not None else TESTS[test][1])
    computed = _statistics(reference, current, test, walk)
    value = computed.values[test]
    return ColumnDrift(
        column=name, kind=kind, stattest=test, threshold=threshold, value=value,
        drifted=is_drift(test, value, threshold), reference_rows=reference.size, current_rows=current.size,
        reference_nulls=reference.nulls, current_nulls=current.nulls,
        statistics=computed.statistics, binning=computed.binning, **_categories(reference, current),
        plot=computed.plot,
    )


def is_drift(test: str, value: float, threshold: float) -> bool:
    """A p-value at or below (KS) / below (others) the threshold, or a distance at or above it."""
    if TESTS[test][0] == "distance":
        return value >= threshold
    return value <= threshold if test == "ks" else value < threshold


def _counts(data: ColumnData) -> Mapping[Any, int]:
    return data.counts() if isinstance(data, stats.NumericSample) else data.counts


@dataclass(frozen=True)
class _Computed:
    values: dict[str, float]  # test name -> its value (p-value or distance)
    statistics: dict[str, float]
    binning: str
    plot: PlotData


def _statistics(reference: ColumnData, current: ColumnData, test: str, walk: stats.CdfWalk | None) -> _Computed:
    from dativo_provider.ml.drift_report_html import category_plot, numeric_plot

    values: dict[str, float] = {}
    out: dict[str, float] = {}
    if isinstance(reference, stats.NumericSample) and isinstance(current, stats.NumericSample):
        walk = walk or stats.cdf_walk(reference, current)
        ks = stats.ks_test(reference, current, walk)
        values["ks"] = out["ks_p_value"] = ks.p_value
        out["ks_statistic"] = ks.statistic
        values["wasserstein"] = out["wasserstein_normed"] = stats.wasserstein_normed(reference, current, walk)
        bins = stats.binned_shares(reference, current)
        plot = numeric_plot(reference, current)
    else:
        bins = stats.category_shares(_counts(reference), _counts(current))
        plot = category_plot(_counts(reference), _counts(current))
    values["psi"] = out["psi"] = stats.psi(bins)
    values["jensenshannon"] = out["jensenshannon"] = stats.jensen_shannon(bins)
    if test in ("chisquare", "z") or not isinstance(reference, stats.NumericSample):
        chi = stats.chi_squared(_counts(reference), _counts(current))
        values["chisquare"] = out["chisquare_p_value"] = chi.p_value
        out["chisquare_statistic"] = chi.statistic
    if test == "z":
        z = stats.z_test(_counts(reference), _counts(current))
        values["z"] = out["z_p_value"] = z.p_value
        out["z_statistic"] = z.statistic
    return _Computed(values, out, bins.description, plot)


def _categories(reference: ColumnData, current: ColumnData) -> dict[str, Any]:
    if isinstance(reference, stats.NumericSample) or isinstance(current, stats.NumericSample):
        return {}
    new = [k for k in current.counts if k not in reference.counts]
    new_rows = sum(current.counts[k] for k in new)
    return {
        "new_categories": tuple(str(k) for k in new[:LISTED_CATEGORIES]),
        "new_category_count": len(new),
        "new_category_share": new_rows / current.size if current.size else 0.0,
        "missing_category_count": sum(1 for k in reference.counts if k not in current.counts),
        "current_distinct": len(current.counts),
    }
