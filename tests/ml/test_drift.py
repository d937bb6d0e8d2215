"""drift_report on Arrow tables and Iceberg samples: Evidently's default tests, nulls and new categories
reported, options checked, the JSON small and the HTML self-contained, escaped and small; the Iceberg
path reads tags, snapshots and windows column by column and equals the Arrow path; above
max_rows_in_memory it stays within its stated error bounds."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pyarrow as pa
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ml.drift import drift_report
from dativo_provider.ml.drift_iceberg import head_snapshot, iceberg_drift_report
from dativo_provider.ml.drift_outputs import log_to_mlflow, mlflow_metrics, openlineage_facets


def frame(rng, n, shift=0.0, scale=1.0, cats=("a", "b", "c"), p=None):
    return pa.table({"amount": rng.normal(shift, scale, n),
                     "segment": pa.array(rng.choice(list(cats), n, p=p)),
                     "visits": rng.integers(0, 3, n)})


def test_default_tests_follow_evidently_by_kind_and_size():
    rng = np.random.default_rng(1)
    small = drift_report(frame(rng, 800), frame(rng, 800))
    assert {c.column: c.stattest for c in small.columns} == {"amount": "ks", "segment": "chisquare",
                                                              "visits": "chisquare"}
    large = drift_report(frame(rng, 1_500), frame(rng, 1_500))
    assert {c.column: c.stattest for c in large.columns} == {"amount": "wasserstein",
                                                              "segment": "jensenshannon", "visits": "jensenshannon"}
    two = drift_report(pa.table({"flag": [True, False] * 50}), pa.table({"flag": [True] * 60 + [False] * 40}))
    assert two.column("flag").stattest == "z"
    assert [c.threshold for c in large.columns] == [0.1, 0.1, 0.1]


def test_a_shift_drifts_and_the_dataset_drifts_at_half_the_columns():
    rng = np.random.default_rng(2)
    report = drift_report(frame(rng, 3_000), frame(rng, 3_000, shift=0.5, p=[0.1, 0.1, 0.8]))
    assert report.drifted_columns == ["amount", "segment"]
    assert report.share_drifted == pytest.approx(2 / 3) and report.dataset_drift
    assert report.column("amount").value == pytest.approx(0.5, abs=0.1)  # Wasserstein in stds
    one = drift_report(frame(rng, 3_000), frame(rng, 3_000, shift=0.5))
    assert one.drifted_columns == ["amount"] and not one.dataset_drift
    assert drift_report(frame(rng, 3_000), frame(rng, 3_000, shift=0.5), drift_share=0.3).dataset_drift


def test_nulls_and_new_categories_are_reported_not_dropped_silently():
    reference = pa.table({"city": ["paris", "rome", None, "oslo"] * 100, "x": [1.0, None, 2.0, float("nan")] * 100})
    current = pa.table({"city": ["paris", "<b>lima</b>", None, None] * 100, "x": [1.0, 2.0, 3.0, None] * 100})
    report = drift_report(reference, current)
    city = report.column("city")
    assert (city.reference_nulls, city.current_nulls, city.reference_rows, city.current_rows) == (100, 200, 300, 200)
    assert city.new_categories == ("<b>lima</b>",) and city.new_category_count == 1
    assert city.new_category_share == 0.5 and city.missing_category_count == 2
    assert city.drifted and city.statistics["chisquare_statistic"] == float("inf")
    x = report.column("x")
    assert (x.reference_nulls, x.current_nulls) == (200, 100)  # NaN counts as null
    as_json = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_json["columns"][0]["statistics"]["chisquare_statistic"] is None  # infinity has no JSON


def test_per_column_settings_win_and_bad_options_name_the_parameter():
    rng = np.random.default_rng(3)
    ref, cur = frame(rng, 2_000), frame(rng, 2_000, shift=0.05)
    report = drift_report(ref, cur, columns=["amount", "visits"], stattest="psi",
                          column_settings={"amount": {"stattest": "ks", "threshold": 0.5},
                                           "visits": {"kind": "categorical"}})
    assert (report.column("amount").stattest, report.column("amount").threshold) == ("ks", 0.5)
    assert (report.column("visits").kind, report.column("visits").stattest) == ("categorical", "psi")
    with pytest.raises(ConfigError, match="unknown test 'kl'"):
        drift_report(ref, cur, stattest="kl")
    with pytest.raises(ConfigError, match="needs a numeric column"):
        drift_report(ref, cur, columns=["segment"], stattest="ks")
    with pytest.raises(ConfigError, match="column 'nope' is not in the reference table"):
        drift_report(ref, cur, columns=["nope"])
    with pytest.raises(ConfigError, match=r"unknown drift option\(s\) \['treshold'\]"):
        drift_report(ref, cur, treshold=0.2)


def test_columns_of_other_types_are_skipped_with_the_reason():
    table = pa.table({"ts": pa.array([dt.datetime(2024, 1, 1)] * 10), "x": list(range(10))})
    report = drift_report(table, table)
    assert report.skipped == {"ts": "type timestamp[us] is neither numeric nor categorical"}
    assert [c.column for c in report.columns] == ["x"]


def twenty_columns(rng, n, shift):
    columns = {f"num_{i}": rng.normal(shift if i < 5 else 0, 1, n) for i in range(15)}
    columns.update({f"cat_{i}": pa.array(rng.choice([f"v{k}" for k in range(30)], n)) for i in range(5)})
    return pa.table(columns)


def test_json_is_small_and_html_is_self_contained_escaped_and_under_500_kb():
    rng = np.random.default_rng(4)
    reference = twenty_columns(rng, 20_000, 0.0)
    current = twenty_columns(rng, 20_000, 0.3).append_column("<script>alert(1)</script>",
                                                              pa.array(["x"] * 20_000))
    reference = reference.append_column("<script>alert(1)</script>", pa.array(["y"] * 20_000))
    report = drift_report(reference, current)
    assert len(json.dumps(report.to_dict())) < 30_000
    page = report.to_html()
    assert len(page.encode()) <= 500_000
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched from elsewhere
    assert page.count("<svg") == 21 and not report.dataset_drift
    assert f"No dataset drift: {len(report.drifted_columns)} of\n21 columns drifted" in page


def test_openlineage_facets_and_mlflow_metrics(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    report = drift_report(frame(rng, 2_000), frame(rng, 2_000, shift=1.0))
    facets = openlineage_facets(report)
    assert facets["dataQualityMetrics"]["rowCount"] == 2_000
    assert facets["dataQualityMetrics"]["columnMetrics"]["segment"] == {"nullCount": 0, "count": 2000.0,
                                                                        "distinctCount": 3}
    assert {"assertion": "drift:wasserstein < 0.1", "success": False, "column": "amount"} in \
        facets["dataQualityAssertions"]["assertions"]
    metrics = mlflow_metrics(report)
    assert metrics["drift.amount.drifted"] == 1.0 and metrics["drift.share_drifted"] == pytest.approx(1 / 3)

    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as tests/ml/test_mlflow_source.py
    uri = (tmp_path / "mlruns").as_uri()
    run = mlflow.tracking.MlflowClient(uri).create_run(
        mlflow.tracking.MlflowClient(uri).create_experiment("drift"))
    try:
        log_to_mlflow(report, run_id=run.info.run_id, tracking_uri=uri)
    finally:
        mlflow.set_tracking_uri(None)
    logged = mlflow.tracking.MlflowClient(uri).get_run(run.info.run_id).data.metrics
    assert logged["drift.amount.wasserstein"] == pytest.approx(report.column("amount").value)


@pytest.fixture
def catalog(tmp_path):
    config = embedded_catalog(tmp_path / "dativo")
    config.load().create_namespace("ml")
    return config


def day_rows(rng, n, day, shift=0.0):
    return pa.table({"amount": rng.normal(shift, 1, n),
                     "segment": pa.array(rng.choice(["a", "b", None], n)),
                     "event_ts": pa.array([dt.datetime(2024, 1, day)] * n, pa.timestamp("us"))})


def test_iceberg_tag_against_main_equals_the_arrow_report(catalog):
    rng = np.random.default_rng(6)
    first, second = day_rows(rng, 3_000, 1), day_rows(rng, 3_000, 2, shift=0.4)
    table = catalog.load().create_table("ml.features", schema=first.schema)
    table.append(first)
    table = catalog.load().load_table("ml.features")
    training = table.current_snapshot().snapshot_id
    table.manage_snapshots().create_tag(training, "training").commit()
    table.append(second)
    head = head_snapshot(catalog, "ml.features")
    assert head is not None and head[0] != training

    report = iceberg_drift_report(catalog, {"table": "ml.features", "tag": "training"}, "ml.features")
    expected = drift_report(first, pa.concat_tables([first, second]), columns=["amount", "segment"])
    assert report.reference == {"table": "ml.features", "snapshot_id": str(training), "ref": "training"}
    assert report.current["snapshot_id"] == str(head[0])
    assert report.skipped == {"event_ts": "type timestamp is neither numeric nor categorical"}
    for column in ("amount", "segment"):
        assert report.column(column).to_dict() == expected.column(column).to_dict()

    windows = iceberg_drift_report(
        catalog, {"table": "ml.features", "window": {"column": "event_ts", "end": "2024-01-02T00:00:00"}},
        {"table": "ml.features", "window": {"column": "event_ts", "start": "2024-01-02T00:00:00"}},
        columns=["amount", "segment"])
    by_day = drift_report(first, second, columns=["amount", "segment"])
    assert [c.to_dict() for c in windows.columns] == [c.to_dict() for c in by_day.columns]
    assert windows.column("amount").drifted

    with pytest.raises(ConfigError, match="has no tag or branch 'nope'"):
        iceberg_drift_report(catalog, {"table": "ml.features", "tag": "nope"}, "ml.features")


def test_above_max_rows_in_memory_binned_statistics_stay_within_their_bounds(catalog):
    rng = np.random.default_rng(7)
    first, second = day_rows(rng, 20_000, 1), day_rows(rng, 20_000, 2, shift=0.05)
    table = catalog.load().create_table("ml.big", schema=first.schema)
    table.append(first)
    old = catalog.load().load_table("ml.big").current_snapshot().snapshot_id
    table.append(second)
    exact = iceberg_drift_report(catalog, {"table": "ml.big", "snapshot_id": old}, "ml.big", columns=["amount"])
    binned = iceberg_drift_report(catalog, {"table": "ml.big", "snapshot_id": old}, "ml.big", columns=["amount"],
                                  max_rows_in_memory=10_000)
    e, b = exact.column("amount"), binned.column("amount")
    assert (e.method, b.method) == ("exact", "binned")
    for name in ("ks_statistic", "wasserstein_normed"):
        assert abs(e.statistics[name] - b.statistics[name]) <= b.error_bound[name], name
    assert b.statistics["psi"] == pytest.approx(e.statistics["psi"], abs=1e-12)  # same Sturges bins
    assert b.statistics["jensenshannon"] == pytest.approx(e.statistics["jensenshannon"], abs=1e-12)
    assert (b.reference_rows, b.current_rows, b.drifted) == (e.reference_rows, e.current_rows, e.drifted)


def test_contract_drift_settings_choose_columns_and_tests(catalog, tmp_path):
    rng = np.random.default_rng(8)
    rows = day_rows(rng, 2_000, 1)
    table = catalog.load().create_table("ml.contracted", schema=rows.schema)
    table.append(rows)
    contract = tmp_path / "features.odcs.yaml"
    contract.write_text("""\
apiVersion: v3.0.2
kind: DataContract
id: features
version: 1.0.0
status: active
team:
  name: ml-platform
schema:
  - name: contracted
    physicalName: ml.contracted
    properties:
      - {name: amount, logicalType: number}
      - {name: segment, logicalType: string}
      - {name: event_ts, logicalType: date}
    customProperties:
      - property: dativoFeatures
        value:
          entities: [segment]
          timestampColumn: event_ts
          features: [amount]
          drift:
            amount: {stattest: psi, threshold: 0.25}
""")
    report = iceberg_drift_report(catalog, "ml.contracted", "ml.contracted", contract=str(contract))
    assert [(c.column, c.stattest, c.threshold, c.drifted) for c in report.columns] == [
        ("amount", "psi", 0.25, False)]
