"""Drift statistics equal scipy's (KS statistic and p-value, chi-squared, Jensen-Shannon, Wasserstein) to
1e-9, PSI equals its written-out formula on the documented bins, and KS false alarms stay at their rate."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from dativo_provider.ml import drift_stats as ds
from dativo_provider.ml.drift import drift_report, is_drift

RNG_SEEDS = range(6)


def numeric_pairs():
    """(reference, current) fixtures: small and large, shifted, scaled, discrete with ties, skewed."""
    for seed in RNG_SEEDS:
        rng = np.random.default_rng(seed)
        yield rng.normal(0, 1, 300), rng.normal(0.2, 1, 450)  # exact p-value (both <= 10,000)
        yield rng.normal(0, 1, 12_000), rng.normal(0, 1.3, 9_000)  # asymptotic p-value
        yield rng.integers(0, 40, 5_000).astype(float), rng.integers(3, 40, 7_000).astype(float)  # ties
        yield rng.lognormal(0, 1, 2_000), rng.lognormal(0.1, 1, 2_500)


@pytest.mark.parametrize("chunk", [ds._MERGE_CHUNK, 64])
@pytest.mark.parametrize("pair", list(numeric_pairs()), ids=lambda p: f"{p[0].size}x{p[1].size}")
def test_ks_and_wasserstein_equal_scipy(pair, chunk, monkeypatch):
    """Also with the walk cut into many value ranges (as on samples over a million values)."""
    monkeypatch.setattr(ds, "_MERGE_CHUNK", chunk)
    ref, cur = pair
    a, b = ds.NumericSample.from_values(ref), ds.NumericSample.from_values(cur)
    walk = ds.cdf_walk(a, b)
    ks = ds.ks_test(a, b, walk)
    expected = scipy_stats.ks_2samp(ref, cur)
    assert abs(ks.statistic - expected.statistic) <= 1e-9
    assert abs(ks.p_value - expected.pvalue) <= 1e-9
    assert ks.method == ("exact" if max(ref.size, cur.size) <= 10_000 else "asymp")
    assert abs(walk.ks_statistic - expected.statistic) <= 1e-9  # the walk's own statistic too
    distance = scipy_stats.wasserstein_distance(ref, cur)
    assert math.isclose(walk.wasserstein, distance, rel_tol=1e-9, abs_tol=1e-12)
    assert abs(ds.wasserstein_normed(a, b, walk) - distance / max(np.std(ref), 0.001)) <= 1e-9
    assert walk.distinct == np.unique(np.concatenate([ref, cur])).size


def test_nan_and_infinity_are_counted_as_nulls_and_left_out():
    sample = ds.NumericSample.from_values(np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 2.0]), nulls=2)
    assert sample.values.tolist() == [1.0, 2.0, 3.0] and sample.nulls == 5


def binned(ref: np.ndarray, cur: np.ndarray) -> ds.Bins:
    return ds.binned_shares(ds.NumericSample.from_values(ref), ds.NumericSample.from_values(cur))


def test_numeric_bins_are_sturges_over_both_samples_and_js_equals_scipy():
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(0, 1, 4_000), rng.normal(0.3, 1.2, 3_000)
    bins = binned(ref, cur)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    assert bins.edges is not None and np.array_equal(bins.edges, edges)
    assert bins.edges.size - 1 == math.ceil(math.log2(7_000) + 1) == 14
    assert np.array_equal(bins.reference, np.histogram(ref, edges)[0] / ref.size)
    assert np.array_equal(bins.current, np.histogram(cur, edges)[0] / cur.size)
    assert abs(ds.jensen_shannon(bins) - jensenshannon(bins.reference, bins.current)) <= 1e-9


def test_psi_is_the_written_out_formula_with_the_empty_bin_share():
    rng = np.random.default_rng(4)
    ref = rng.normal(0, 1, 2_000)
    cur = np.concatenate([rng.normal(1.5, 0.5, 1_000), [6.0]])  # leaves reference bins empty in current
    bins = binned(ref, cur)
    assert (bins.current == 0).any()

    def filled(shares):
        smallest = min(s for s in shares if s > 0)
        epsilon = smallest / 1e6 if smallest <= 0.0001 else 0.0001
        return [s if s > 0 else epsilon for s in shares]

    expected = sum((r - c) * math.log(r / c) for r, c in zip(filled(bins.reference), filled(bins.current),
                                                                    strict=True))
    assert abs(ds.psi(bins) - expected) <= 1e-9
    # The tiny-share branch: a share at or below 0.0001 makes the empty-bin share that / 1e6.
    shares = np.array([0.00005, 0.0, 0.99995])
    assert ds.fill_empty(shares).tolist() == [0.00005, 0.00005 / 1e6, 0.99995]


def test_low_cardinality_numeric_columns_get_one_bin_per_value():
    bins = binned(np.array([1.0, 2, 2, 3, 3, 3]), np.array([1.0, 1, 4]))
    assert bins.edges is None and dict(zip(bins.keys, bins.current.tolist(), strict=True)) == {
        1.0: 2 / 3, 2.0: 0.0, 3.0: 0.0, 4.0: 1 / 3}


CATEGORY_FIXTURES = [
    ({"a": 500, "b": 300, "c": 200}, {"a": 480, "b": 330, "c": 190}),
    ({"a": 50, "b": 30, "c": 20, "d": 5}, {"a": 10, "b": 60, "c": 25, "d": 5}),
    ({"x": 1_000, "y": 10}, {"x": 900, "y": 90}),
]


@pytest.mark.parametrize(("reference", "current"), CATEGORY_FIXTURES)
def test_chi_squared_equals_scipy(reference, current):
    keys = list(reference)
    observed = [current[k] for k in keys]
    expected = [reference[k] * sum(current.values()) / sum(reference.values()) for k in keys]
    want = scipy_stats.chisquare(observed, expected)
    got = ds.chi_squared(reference, current)
    assert abs(got.statistic - want.statistic) <= 1e-9 and abs(got.p_value - want.pvalue) <= 1e-9
    # The same verdict as a contingency test on the two samples' counts (no continuity correction).
    contingency = scipy_stats.chi2_contingency([[reference[k] for k in keys], observed], correction=False)
    assert (got.p_value < 0.05) == (contingency.pvalue < 0.05)
    bins = ds.category_shares(reference, current)
    assert abs(ds.jensen_shannon(bins) - jensenshannon(bins.reference, bins.current)) <= 1e-9


def test_a_new_category_makes_chi_squared_infinite():
    result = ds.chi_squared({"a": 10, "b": 10}, {"a": 10, "b": 5, "new": 5})
    assert result.statistic == math.inf and result.p_value == 0.0


def test_z_test_is_the_pooled_two_proportion_test():
    reference, current = {"yes": 120, "no": 380}, {"yes": 160, "no": 340}
    p1, p2 = 380 / 500, 340 / 500  # share of the second value ("yes" sorts last)
    pooled = (380 + 340) / 1000
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 500))
    got = ds.z_test(reference, current)
    assert abs(abs(got.statistic) - abs(z)) <= 1e-12
    assert abs(got.p_value - 2 * scipy_stats.norm.sf(abs(z))) <= 1e-9
    assert ds.z_test({"a": 5}, {"a": 9}).p_value == 1.0


def test_ks_false_alarms_stay_within_the_binomial_bounds_of_the_threshold():
    """200 pairs from one distribution, 500 vs 700 rows (KS is the default test at this size): the number
    flagged (600 vs 600 rows each) is a Binomial(200, P(p <= 0.05)) draw; with the exact p-value that probability is at most
    0.05, so the count must lie within the 99.9% interval of Binomial(200, 0.05)."""
    rng = np.random.default_rng(2026)
    report = drift_report(pa.table({"x": rng.normal(size=500)}), pa.table({"x": rng.normal(size=700)}))
    assert report.column("x").stattest == "ks" and report.column("x").threshold == 0.05
    flagged = 0
    for _ in range(200):
        ks = ds.ks_test(ds.NumericSample.from_values(rng.normal(size=600)),
                        ds.NumericSample.from_values(rng.normal(size=600)))
        flagged += is_drift("ks", ks.p_value, 0.05)
    low, high = scipy_stats.binom.ppf([0.0005, 0.9995], 200, 0.05)
    assert low <= flagged <= high, (flagged, low, high)
