"""Verdicts agree with Evidently's default preset (DataDriftPreset, Evidently 0.7) on ten fixtures: the
same test per column, the same value (p-value or distance), the same drift flags, the same dataset verdict.

Evidently is a test dependency only (the `test` group; it needs pandas<3, as feast does): users who
switch from it are the audience of this comparison, never its runtime.
Column kinds are given to Evidently explicitly, as our schema gives them (Evidently would otherwise
guess them from values: integers with at most 10 distinct values become categorical)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dativo_provider.ml.drift import drift_report

with warnings.catch_warnings():  # Evidently touches numpy.core on import (a DeprecationWarning; ours are errors)
    warnings.simplefilter("ignore", DeprecationWarning)
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

METHODS = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
           "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
           "PSI": "psi"}


def fixture(name: str, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    def normal(n, mu=0.0, sigma=1.0):
        return rng.normal(mu, sigma, n)

    def cats(n, values="abc", p=None):
        return pa.array(rng.choice(list(values), n, p=p))

    if name == "shifted mean, small":
        return pa.table({"x": normal(500)}), pa.table({"x": normal(600, 0.3)})
    if name == "shifted mean, large":
        return pa.table({"x": normal(5_000)}), pa.table({"x": normal(4_000, 0.15)})
    if name == "scaled variance, small":
        return pa.table({"x": normal(800)}), pa.table({"x": normal(700, 0, 1.5)})
    if name == "scaled variance, large":
        return pa.table({"x": normal(3_000)}), pa.table({"x": normal(3_000, 0, 1.4)})
    if name == "no drift":
        return (pa.table({"x": normal(2_000), "y": normal(2_000, 5, 2), "c": cats(2_000)}),
                pa.table({"x": normal(2_500), "y": normal(2_500, 5, 2), "c": cats(2_500)}))
    if name == "new category, small":
        return pa.table({"c": cats(400)}), pa.table({"c": cats(400, "abcd")})
    if name == "new category, large":
        return pa.table({"c": cats(3_000)}), pa.table({"c": cats(3_000, "abcde")})
    if name == "nulls":
        x_ref, x_cur = normal(1_500), normal(1_500, 0.2)
        x_ref[::7], x_cur[::3] = np.nan, np.nan
        c_ref = rng.choice(["a", "b", None], 1_500).tolist()
        c_cur = rng.choice(["a", "b", None], 1_500, p=[0.2, 0.2, 0.6]).tolist()
        return pa.table({"x": x_ref, "c": c_ref}), pa.table({"x": x_cur, "c": c_cur})
    if name == "binary and few values, small":
        return (pa.table({"flag": cats(500, "yn"), "k": rng.integers(0, 4, 500)}),
                pa.table({"flag": cats(500, "yn", [0.6, 0.4]), "k": rng.integers(0, 4, 500)}))
    if name == "few values and proportions, large":
        return (pa.table({"k": rng.integers(0, 4, 4_000), "c": cats(4_000)}),
                pa.table({"k": rng.integers(0, 5, 4_000), "c": cats(4_000, "abc", [0.5, 0.3, 0.2])}))
    raise KeyError(name)


FIXTURES = ["shifted mean, small", "shifted mean, large", "scaled variance, small", "scaled variance, large",
            "no drift", "new category, small", "new category, large", "nulls", "binary and few values, small",
            "few values and proportions, large"]


def evidently_verdicts(reference: pa.Table, current: pa.Table) -> tuple[dict[str, tuple[str, float]], float]:
    numeric = [f.name for f in reference.schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)]
    categorical = [f.name for f in reference.schema if f.name not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Evidently's own pandas/scipy warnings (division by zero ...)
        snapshot = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current.to_pandas(), data_definition=definition),
            reference_data=Dataset.from_pandas(reference.to_pandas(), data_definition=definition))
    columns, share = {}, math.nan
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = (METHODS[config["method"]], float(metric["value"]))
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    return columns, share


@pytest.mark.parametrize("name", FIXTURES)
def test_the_verdict_agrees_with_evidentlys_default_preset(name):
    reference, current = fixture(name, np.random.default_rng(FIXTURES.index(name)))
    ours = drift_report(reference, current)
    theirs, share = evidently_verdicts(reference, current)
    assert {c.column: c.stattest for c in ours.columns} == {k: v[0] for k, v in theirs.items()}
    for column in ours.columns:
        value = theirs[column.column][1]
        assert column.value == pytest.approx(value, rel=1e-9, abs=1e-12), column.column
    flagged = sum(c.drifted for c in ours.columns)
    assert ours.share_drifted == pytest.approx(share)
    assert ours.dataset_drift == (share >= 0.5)
    print(name, {c.column: (c.stattest, round(c.value, 6), c.drifted) for c in ours.columns}, flagged)
