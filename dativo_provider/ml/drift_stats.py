"""Drift statistics on one column: numeric samples (sorted arrays) and categorical counts.

Every statistic is computed as scipy and Evidently 0.7 compute it (tests compare them to 1e-9):

- **KS**: the two-sample Kolmogorov-Smirnov statistic and its two-sided p-value, as
  ``scipy.stats.ks_2samp(method="auto")``: scipy's exact distribution when both samples have at most
  10,000 values (scipy computes it), else Smirnov's asymptotic ``kstwo.sf(D, round(n*m/(n+m)))``.
- **Wasserstein**: ``scipy.stats.wasserstein_distance`` divided by the reference's standard deviation
  (population, floored at 0.001), as Evidently's ``wasserstein`` test.
- **PSI** ``sum((cur - ref) * ln(cur / ref))`` and **Jensen-Shannon distance** (natural log, as
  ``scipy.spatial.distance.jensenshannon``) on the shares of :func:`binned_shares`: Sturges' bins over
  both samples combined for a numeric column with more than 20 distinct reference values, else one bin
  per value. PSI replaces an empty bin's share by ``0.0001`` (or by the smallest non-zero share / 1e6
  when that is at most 0.0001); Jensen-Shannon uses the shares unchanged.
- **chi-squared**: ``scipy.stats.chisquare(observed current counts, reference counts scaled to the
  current size)``; a category absent from the reference makes it infinite (p-value 0).
- **Z-test** for two-valued columns: the two-proportion z-test with pooled variance.

Nulls (and NaN, +-inf in numeric columns) are removed before any statistic and counted separately.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Up to this many values in both samples, scipy's ``ks_2samp`` uses its exact p-value.
KS_EXACT_MAX_N = 10_000
#: A numeric column with more distinct reference values than this is binned (Sturges) for PSI and JS.
BINNING_MIN_DISTINCT = 20
#: Empty-bin share in PSI (unless the smallest non-zero share is at most this; then that share / 1e6).
PSI_EMPTY_BIN_SHARE = 0.0001
#: Values per chunk when walking two sorted samples together (bounds temporary memory).
_MERGE_CHUNK = 1 << 20


@dataclass(frozen=True)
class NumericSample:
    """The finite values of a numeric column, sorted (float64), and how many were null or not finite."""

    values: np.ndarray
    nulls: int = 0

    @classmethod
    def from_values(cls, values: np.ndarray, nulls: int = 0, owned: bool = False) -> NumericSample:
        """Sort ``values``: a copy, unless ``owned`` and the array owns writable memory (then in place,
        saving a copy of the column; never an Arrow buffer viewed without a copy)."""
        array = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(array)
        if not finite.all():
            nulls += int(array.size - np.count_nonzero(finite))
            array = array[finite]
        elif not (owned and array is values and array.flags.owndata and array.flags.writeable):
            array = array.copy()
        del finite
        array.sort()
        return cls(array, nulls)

    @property
    def size(self) -> int:
        return int(self.values.size)

    def distinct(self) -> int:
        if self.values.size == 0:
            return 0
        return int(np.count_nonzero(self.values[1:] != self.values[:-1])) + 1

    def std(self) -> float:
        return float(np.std(self.values))

    def counts(self) -> dict[Any, int]:
        keys, counts = np.unique(self.values, return_counts=True)
        return {float(k): int(c) for k, c in zip(keys, counts, strict=True)}


@dataclass(frozen=True)
class CdfWalk:
    """What one walk over both sorted samples gives: the KS statistic and the Wasserstein distance."""

    ks_statistic: float
    wasserstein: float
    distinct: int  # distinct values of both samples together


def cdf_walk(reference: NumericSample, current: NumericSample) -> CdfWalk:
    """Evaluate both empirical CDFs at every distinct value of both samples, in value order.

    The KS statistic is scipy's (``max(F_ref - F_cur)`` or ``-min(...)``, the larger, with the CDFs
    taken as ``searchsorted(..., side="right") / n``) and the Wasserstein distance is
    ``scipy.stats.wasserstein_distance`` (the sum of |F_ref - F_cur| times the gap to the next value).
    No sort: each sample's values are placed in the merged order by one binary search into the other.
    The walk goes by value ranges of about a million values, so its temporary arrays stay small.
    """
    ref, cur = reference.values, current.values
    max_diff, min_diff, total = -np.inf, np.inf, 0.0
    previous: float | None = None
    previous_gap = 0.0
    distinct = 0
    for (low_ref, high_ref), (low_cur, high_cur) in _value_ranges(ref, cur):
        points, ref_le, cur_le = _merged_cdf_counts(ref[low_ref:high_ref], cur[low_cur:high_cur])
        distinct += points.size
        diff = (ref_le + low_ref) / ref.size - (cur_le + low_cur) / cur.size
        max_diff, min_diff = max(max_diff, float(diff.max())), min(min_diff, float(diff.min()))
        gap = np.abs(diff)
        if previous is not None:
            total += previous_gap * (float(points[0]) - previous)
        total += float(np.sum(gap[:-1] * np.diff(points)))
        previous, previous_gap = float(points[-1]), float(gap[-1])
    min_s = float(np.clip(-min_diff, 0, 1))
    return CdfWalk(min_s if min_s > max_diff else max_diff, total, distinct)


def _merged_cdf_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct values of two sorted arrays, and how many values of each are <= each of them."""
    size = ref.size + cur.size
    ref_le_cur = np.searchsorted(ref, cur, side="right")
    ref_positions = np.arange(ref.size) + np.searchsorted(cur, ref, side="left")
    cur_positions = np.arange(cur.size) + ref_le_cur
    merged = np.empty(size, dtype=np.float64)
    merged[ref_positions], merged[cur_positions] = ref, cur
    ref_le = np.empty(size, dtype=np.int64)
    ref_le[ref_positions], ref_le[cur_positions] = np.arange(1, ref.size + 1), ref_le_cur
    # Equal values sit together, reference first: the last of each run holds the counts of "<= value".
    last = np.empty(size, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last[:-1])
    last[-1] = True
    at = np.flatnonzero(last)
    return merged[at], ref_le[at], at + 1 - ref_le[at]


def _value_ranges(ref: np.ndarray, cur: np.ndarray) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """Index ranges of both sorted arrays covering consecutive value ranges, cut at reference values
    (equal values always fall in one range)."""
    step = _MERGE_CHUNK // 2
    cuts = ref[step::step].tolist() if ref.size > _MERGE_CHUNK else []
    low_ref = low_cur = 0
    for cut in [*cuts, None]:
        high_ref = ref.size if cut is None else int(np.searchsorted(ref, cut, side="left"))
        high_cur = cur.size if cut is None else int(np.searchsorted(cur, cut, side="left"))
        if high_ref > low_ref or high_cur > low_cur:
            yield (low_ref, high_ref), (low_cur, high_cur)
        low_ref, low_cur = high_ref, high_cur


@dataclass(frozen=True)
class PValueResult:
    statistic: float
    p_value: float
    method: str = ""


def ks_test(reference: NumericSample, current: NumericSample, walk: CdfWalk | None = None) -> PValueResult:
    """Two-sample KS statistic and two-sided p-value, as ``scipy.stats.ks_2samp`` (method 'auto');
    ``method`` says which p-value scipy's rule picks, 'exact' or 'asymp'."""
    n1, n2 = reference.size, current.size
    if max(n1, n2) <= KS_EXACT_MAX_N:
        from scipy.stats import ks_2samp

        # What method="auto" does, minus its warning: try the exact distribution, else the asymptotic.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                result, exact = ks_2samp(reference.values, current.values, method="exact"), True
        except RuntimeWarning:
            result, exact = ks_2samp(reference.values, current.values, method="asymp"), False
        return PValueResult(float(result.statistic), float(result.pvalue), "exact" if exact else "asymp")
    from scipy.stats import kstwo

    statistic = (walk or cdf_walk(reference, current)).ks_statistic
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p_value = float(np.clip(kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))
    return PValueResult(statistic, p_value, "asymp")


def wasserstein_normed(reference: NumericSample, current: NumericSample, walk: CdfWalk | None = None) -> float:
    """Wasserstein distance in units of the reference's standard deviation (floored at 0.001)."""
    return (walk or cdf_walk(reference, current)).wasserstein / max(reference.std(), 0.001)


@dataclass(frozen=True)
class Bins:
    """Shares of each sample per bin, and what the bins are (edges, or one category per bin)."""

    reference: np.ndarray
    current: np.ndarray
    edges: np.ndarray | None = None
    keys: tuple[Any, ...] = ()

    @property
    def description(self) -> str:
        if self.edges is not None:
            return f"{self.edges.size - 1} Sturges bins over both samples"
        return f"{len(self.keys)} values"


def binned_shares(reference: NumericSample, current: NumericSample) -> Bins:
    """Evidently's ``get_binned_data`` without the zero filling: Sturges bins or one bin per value."""
    if reference.distinct() > BINNING_MIN_DISTINCT:
        low = min(reference.values[0], current.values[0])
        high = max(reference.values[-1], current.values[-1])
        # np.histogram_bin_edges(combined, "sturges") needs only the size and the range.
        edges = np.histogram_bin_edges(np.array([low, high]), bins=_sturges(reference.size + current.size),
                                       range=(float(low), float(high)))
        return Bins(_histogram_sorted(reference.values, edges) / reference.size,
                    _histogram_sorted(current.values, edges) / current.size, edges=edges)
    return category_shares(reference.counts(), current.counts())


def _sturges(size: int) -> int:
    """numpy's 'sturges' bin count for ``size`` values: ceil(log2(size) + 1)."""
    return int(np.ceil(np.log2(size) + 1.0))


def _histogram_sorted(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for sorted values (the last bin includes its right edge)."""
    starts = np.searchsorted(values, edges[:-1], side="left")
    ends = np.append(starts[1:], np.searchsorted(values, edges[-1], side="right"))
    return (ends - starts).astype(np.float64)


def category_shares(reference: Mapping[Any, int], current: Mapping[Any, int]) -> Bins:
    """Shares of every value seen in either sample (nulls excluded)."""
    keys = tuple(dict.fromkeys([*reference, *current]))
    ref_total = sum(reference.values()) or 1
    cur_total = sum(current.values()) or 1
    return Bins(np.array([reference.get(k, 0) / ref_total for k in keys], dtype=np.float64),
                np.array([current.get(k, 0) / cur_total for k in keys], dtype=np.float64), keys=keys)


def fill_empty(shares: np.ndarray) -> np.ndarray:
    """Evidently's empty-bin replacement for PSI (see the module docstring)."""
    nonzero = shares[shares != 0]
    if nonzero.size == 0:
        return shares
    smallest = float(nonzero.min())
    filled = shares.copy()
    filled[filled == 0] = smallest / 10**6 if smallest <= PSI_EMPTY_BIN_SHARE else PSI_EMPTY_BIN_SHARE
    return filled


def psi(bins: Bins) -> float:
    """Population stability index on ``bins``, empty bins filled by :func:`fill_empty`."""
    ref, cur = fill_empty(bins.reference), fill_empty(bins.current)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def jensen_shannon(bins: Bins) -> float:
    """Jensen-Shannon distance (natural log) between the two share vectors, as scipy computes it."""
    p = bins.reference / np.sum(bins.reference)
    q = bins.current / np.sum(bins.current)
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(np.sqrt((np.sum(left) + np.sum(right)) / 2.0))


def chi_squared(reference: Mapping[Any, int], current: Mapping[Any, int]) -> PValueResult:
    """Evidently's chi-squared: current counts against reference counts scaled to the current size."""
    from scipy.stats import chi2

    keys = list(dict.fromkeys([*reference, *current]))
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    expected = np.array([reference.get(k, 0) for k in keys], dtype=np.float64) * (cur_total / ref_total)
    observed = np.array([current.get(k, 0) for k in keys], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(np.sum((observed - expected) ** 2 / expected))
    if math.isnan(statistic):  # 0/0 only where both counts are 0, which cannot happen for a seen key
        statistic = math.inf
    return PValueResult(statistic, float(chi2.sf(statistic, len(keys) - 1)))


def z_test(reference: Mapping[Any, int], current: Mapping[Any, int]) -> PValueResult:
    """Two-proportion z-test for a column with at most two values (Evidently's ``z`` test)."""
    from scipy.stats import norm

    keys = sorted(dict.fromkeys([*reference, *current]), key=repr)
    if len(keys) == 1:
        return PValueResult(0.0, 1.0)
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    p1 = (ref_total - reference.get(keys[0], 0)) / ref_total
    p2 = (cur_total - current.get(keys[0], 0)) / cur_total
    pooled = (p1 * ref_total + p2 * cur_total) / (ref_total + cur_total)
    statistic = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / ref_total + 1.0 / cur_total))
    return PValueResult(statistic, float(2 * (1 - norm.cdf(abs(statistic)))))


@dataclass(frozen=True)
class CategoryCounts:
    """Non-null value counts of a categorical column, and its null count."""

    counts: Mapping[Any, int]
    nulls: int = 0

    @property
    def size(self) -> int:
        return sum(self.counts.values())


#: One column of one sample, as the statistics take it.
ColumnData = NumericSample | CategoryCounts
