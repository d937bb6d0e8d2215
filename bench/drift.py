"""Drift benchmark (not in CI): our drift_report vs Evidently's default preset, and a 10M-row Iceberg check.

    python bench/drift.py --evidently-python /tmp/evvenv/bin/python     # 1M rows x (20 numeric + 5 categorical)
    python bench/drift.py --contenders iceberg10m                        # 10M-row Iceberg table, peak RSS

Evidently is not our dependency: give the interpreter of a virtualenv that has it (``evidently<0.8``,
``pandas<3``; it fails to import with pandas 3). Each contender runs in a fresh process (bench/_common:
byte code cached, peak RSS = the larger of the kernel high-water mark and the sampled process tree).
Both read the same Parquet files, untimed; each first runs once, untimed, on 1,000 rows (imports and
first-call set-up); the timed section is the drift computation alone (ours from Arrow, Evidently from
pandas, its own input format). The 10M-row check reads an Iceberg table (reference: a tag at 5M rows,
current: main at 10M rows, 6 numeric + 2 categorical columns) column by column.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    SCRATCH_DIR,
    child_main,
    harness_arguments,
    machine_info,
    run_child,
    wait_for_quiet,
    warm_up,
    write_results,
)

DATA = SCRATCH_DIR / "drift"
ROWS = 1_000_000
NUMERIC, CATEGORICAL = 20, 5
ICEBERG_ROWS, ICEBERG_BATCH = 10_000_000, 1_000_000


def make_frames(rows: int = ROWS) -> tuple[Path, Path]:
    """reference.parquet and current.parquet: current shifts 3 numeric columns and 1 categorical one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    DATA.mkdir(parents=True, exist_ok=True)
    paths = DATA / f"reference_{rows}.parquet", DATA / f"current_{rows}.parquet"
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(14)
    letters = np.array([f"v{i}" for i in range(12)])
    for path, drifting in zip(paths, (False, True), strict=True):
        columns: dict[str, Any] = {}
        for i in range(NUMERIC):
            shift = (0.02 * (i + 1)) if drifting and i < 3 else 0.0
            columns[f"num_{i:02d}"] = rng.normal(10 * i + shift, 1 + i / 10, rows)
        for i in range(CATEGORICAL):
            weights = np.ones(letters.size)
            if drifting and i == 0:
                weights[:3] *= 1.5
            columns[f"cat_{i}"] = pa.array(letters[rng.choice(letters.size, rows, p=weights / weights.sum())])
        pq.write_table(pa.table(columns), path)
    return paths


def child_ours(args: Any) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dativo_provider.ml.drift import drift_report

    reference, current = (pq.read_table(p) for p in make_frames())
    drift_report(reference.slice(0, 1000), current.slice(0, 1000))  # warm call
    started = time.perf_counter()
    report = drift_report(reference, current)
    seconds = time.perf_counter() - started
    html = report.to_html()
    return {"seconds": seconds, "drifted": report.drifted_columns, "tests": sorted({c.stattest for c in report.columns}),
            "html_bytes": len(html.encode())}


def child_evidently(args: Any) -> dict[str, Any]:
    import warnings

    import pyarrow.parquet as pq
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = (pq.read_table(p).to_pandas() for p in make_frames())
    definition = DataDefinition(numerical_columns=[f"num_{i:02d}" for i in range(NUMERIC)],
                                categorical_columns=[f"cat_{i}" for i in range(CATEGORICAL)])

    def run(ref: Any, cur: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Report([DataDriftPreset()]).run(
                current_data=Dataset.from_pandas(cur, data_definition=definition),
                reference_data=Dataset.from_pandas(ref, data_definition=definition))

    run(reference.head(1000), current.head(1000))  # warm call
    started = time.perf_counter()
    snapshot = run(reference, current)
    seconds = time.perf_counter() - started
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value, threshold = float(metric["value"]), float(config["threshold"])
            is_p_value = "p_value" in config["method"]
            if (value < threshold) if is_p_value else (value >= threshold):
                drifted.append(config["column"])
    html_path = DATA / "evidently.html"
    snapshot.save_html(str(html_path))
    return {"seconds": seconds, "drifted": sorted(drifted), "html_bytes": html_path.stat().st_size}


def make_iceberg_table() -> tuple[Any, str]:
    """A 10M-row table in a scratch SQLite catalog; tag ``reference`` at 5M rows."""
    import numpy as np
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import embedded_catalog

    catalog = embedded_catalog(DATA / "iceberg")
    iceberg = catalog.load()
    name = "bench.drift_10m"
    if iceberg.table_exists(name):
        return catalog, name
    if "bench" not in [n[0] for n in iceberg.list_namespaces()]:
        iceberg.create_namespace("bench")
    rng = np.random.default_rng(10)
    table = None
    for part in range(ICEBERG_ROWS // ICEBERG_BATCH):
        shift = 0.05 if part >= 5 else 0.0
        batch = pa.table({**{f"num_{i}": rng.normal(i + shift, 1, ICEBERG_BATCH) for i in range(6)},
                          **{f"cat_{i}": pa.array(rng.choice(["a", "b", "c", "d"], ICEBERG_BATCH)) for i in range(2)}})
        table = table or iceberg.create_table(name, schema=batch.schema)
        table.append(batch)
        if part == 4:
            table = iceberg.load_table(name)
            table.manage_snapshots().create_tag(table.current_snapshot().snapshot_id, "reference").commit()
        table = iceberg.load_table(name)
    return catalog, name


def child_iceberg10m(args: Any) -> dict[str, Any]:
    from dativo_provider.ml.drift_iceberg import iceberg_drift_report

    catalog, name = make_iceberg_table()
    started = time.perf_counter()
    report = iceberg_drift_report(catalog, {"table": name, "tag": "reference"}, name)
    seconds = time.perf_counter() - started
    column = report.columns[0]
    return {"seconds": seconds, "drifted": report.drifted_columns, "reference_rows": column.reference_rows,
            "current_rows": column.current_rows, "method": column.method}


HANDLERS = {"ours": child_ours, "evidently": child_evidently, "iceberg10m": child_iceberg10m}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contenders", default="ours,evidently", help="comma list: ours, evidently, iceberg10m")
    parser.add_argument("--evidently-python", default="/tmp/evvenv/bin/python",
                        help="the interpreter of a virtualenv with evidently<0.8 and pandas<3")
    harness_arguments(parser, HANDLERS, timeout=1800)
    args = parser.parse_args()
    if args.child:
        return child_main(HANDLERS, args)
    contenders = args.contenders.split(",")
    if "ours" in contenders or "evidently" in contenders:
        make_frames()
    if "iceberg10m" in contenders:
        make_iceberg_table()
    print("warm-up:", warm_up(Path(__file__), ["scipy.stats", "pyarrow.parquet", "dativo_provider.ml.drift",
                                               "dativo_provider.ml.drift_iceberg", "pyiceberg.table"]))
    results: dict[str, Any] = {}
    for name in contenders:
        python = args.evidently_python if name == "evidently" else sys.executable
        busy = wait_for_quiet(args.quiet_cpu, args.quiet_wait)
        result_path = DATA / f"{name}.json"
        results[name] = {**run_child([python, __file__, "--child", name, "--result", str(result_path)],
                                     timeout=args.timeout), "cpu_busy_before": busy}
        r = results[name]
        print(f"{name:10s} {r.get('seconds', float('nan')):8.2f} s  peak RSS {r.get('peak_rss_mb', 0):7.0f} MB  "
              f"drifted {r.get('drifted')}  {r.get('error', '')}")
    if "ours" in results and "evidently" in results and "seconds" in results["evidently"]:
        ours, theirs = results["ours"], results["evidently"]
        print(f"speed-up {theirs['seconds'] / ours['seconds']:.1f}x (goal >= 20x); peak memory "
              f"{ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f} of Evidently's (goal <= 0.5); HTML "
              f"{ours['html_bytes'] / 1e3:.0f} KB vs {theirs['html_bytes'] / 1e6:.1f} MB")
    print("results:", write_results("drift", {"machine": machine_info(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
