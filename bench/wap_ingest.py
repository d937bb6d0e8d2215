"""Write-audit-publish benchmark: a 5M-row ingest with a contract vs the same ingest without one.

Source: Parquet files (``{"type": "files", "path": ..., "glob": "*.parquet"}``), 5 files of up to 1M
rows each, the 10-column table of ``contract_check.py`` generated once under
``$TMPDIR/dativo-bench/wap-data/`` — a clean copy (no violations) and a copy where 1 % of the rows have
an unknown ``status``. Each contender ingests into a fresh embedded (SQLite) catalog, in its own child
process, after one untimed warm call on 1,000 rows of the same shape; runs are interleaved and the
median of ``--repeats`` is reported.

Contenders:

* ``plain``: ``run_ingest(build_source(spec), catalog, "bench.wap", WriteOptions(mode="append"))`` on
  the clean files;
* ``wap-pass``: the same with ``audit=ContractGate(contract, catalog)``; the contract has 5 soda rules
  (id unique, customer_id not null, email pattern, status in a set, amount range) and every row passes;
* ``wap-quarantine``: the dirty files, same contract (quality violations: quarantine): 1 % of the rows
  go to ``bench.wap_quarantine``, the rest is published.

Checked after each timed run (untimed): rows read / published / quarantined, and the main snapshot's
``total-records``. The gate's phases (load of the new rows into DuckDB, Soda, failing-row
localisation, quarantine write, audit-branch rewrite) are timed by wrapping those functions.

Usage::

    python bench/wap_ingest.py                           # 5M rows, median of 3
    python bench/wap_ingest.py --rows 200000 --repeats 1    # smoke run
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import contract_check as cc  # noqa: E402

TABLE = "bench.wap"
WARM_ROWS = 1_000
FILE_ROWS = 1_000_000
DATA_VERSION = "v1"
CONTENDERS = ("plain", "wap-pass", "wap-quarantine")
GOAL = 1.5  # WAP ≤ 1.5 × plain
BAD_SHARE = 100  # 1 row in 100 breaks status_known in the dirty copy

WARM_UP_MODULES = (
    "pyarrow", "pyarrow.parquet", "pyarrow.compute", "pyiceberg.catalog.sql", "pyiceberg.table",
    "pyiceberg.io.pyarrow", "duckdb", "yaml", "soda_core.contracts.contract_verification",
    "soda_duckdb.common.data_sources.duckdb_data_source", "dativo_provider.ingest.engine",
    "dativo_provider.sources.files", "dativo_provider.quality.wap", "dativo_provider.quality.runner",
    "dativo_provider.quality.soda", "dativo_provider.iceberg.catalog",
)

CONTRACT = f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:dativo:bench:wap
version: 1.0.0
status: active
team: {{name: bench}}
customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: quarantine, sla: warn}}
schema:
  - name: wap
    physicalName: {TABLE}
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        quality:
          - name: id_unique
            metric: duplicateValues
            mustBe: 0
      - name: customer_id
        logicalType: integer
        physicalType: bigint
        quality:
          - name: customer_id_present
            metric: nullValues
            mustBe: 0
      - name: email
        logicalType: string
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '{cc.EMAIL_PATTERN}'}}
            mustBe: 0
      - name: status
        logicalType: string
        quality:
          - name: status_known
            metric: invalidValues
            arguments: {{validValues: {cc.STATUSES}}}
            mustBe: 0
      - name: amount
        logicalType: number
        physicalType: double
        quality:
          - name: amount_in_range
            type: custom
            engine: soda
            implementation: {{invalid: {{valid_min: {cc.AMOUNT_RANGE[0]}, valid_max: {cc.AMOUNT_RANGE[1]}}}}}
            mustBe: 0
      - name: country
        logicalType: string
      - name: quantity
        logicalType: integer
        physicalType: int
      - name: created_at
        logicalType: timestamp
        physicalType: timestamp
      - name: category
        logicalType: string
      - name: score
        logicalType: number
        physicalType: double
"""


# ============================================================================================
# Data
# ============================================================================================


def write_files(folder: Path, rows: int, dirty: bool) -> Path:
    """``rows`` rows as zstd Parquet files of up to :data:`FILE_ROWS` rows (written once)."""
    import pyarrow.parquet as pq

    marker = folder / f"_built-{rows}-{DATA_VERSION}"  # names starting with _ are skipped by the source
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    counts = {"status_known": rows // BAD_SHARE} if dirty else {}
    data = cc.generate(rows, seed=7, counts=counts)
    for n, start in enumerate(range(0, rows, FILE_ROWS)):
        pq.write_table(data.slice(start, FILE_ROWS), folder / f"part-{n:03d}.parquet", compression="zstd")
    marker.write_text("ok")
    return folder


def expected(contender: str, rows: int) -> tuple[int, int]:
    """(rows published, rows quarantined)."""
    bad = rows // BAD_SHARE if contender == "wap-quarantine" else 0
    return rows - bad, bad


# ============================================================================================
# Children
# ============================================================================================


def ingest(contender: str, data: Path, workdir: Path) -> dict[str, Any]:
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.quality.wap import ContractGate
    from dativo_provider.sources import build_source

    workdir.mkdir(parents=True, exist_ok=True)
    contract = workdir / "contract.yaml"
    contract.write_text(CONTRACT)
    catalog = embedded_catalog(workdir / "lake")
    started = time.perf_counter()
    source = build_source({"type": "files", "path": str(data), "glob": "*.parquet"})
    gate = ContractGate(contract, catalog) if contender != "plain" else None
    result = run_ingest(source, catalog, TABLE, WriteOptions(mode="append"), audit=gate)
    seconds = time.perf_counter() - started
    snapshot = catalog.load().load_table(TABLE).current_snapshot()
    return {"seconds": seconds, "rows_read": result.rows_read, "rows_published": result.rows_published,
            "rows_quarantined": result.rows_quarantined,
            "rows_in_table": int(snapshot.summary["total-records"]) if snapshot else 0,
            "engine_seconds": result.duration_seconds}


def child(args: argparse.Namespace) -> dict[str, Any]:
    from dativo_provider.quality import quarantine, runner, soda, wap

    workdir = Path(args.workdir)
    started = time.perf_counter()
    ingest(args.child, Path(args.warm_data), workdir / "warm")  # untimed
    warm = time.perf_counter() - started
    shutil.rmtree(workdir / "warm", ignore_errors=True)
    phases: dict[str, float] = {}
    undo = [cc._timed(wap, "_load_new_rows", "load", phases), cc._timed(soda, "run_soda", "soda", phases),
            cc._timed(runner, "_locate", "locate", phases), cc._timed(runner, "check_rows", "check_rows", phases),
            # One read of each affected file feeds both: the quarantine write also writes the kept rows.
            cc._timed(quarantine, "write_quarantine", "split_and_quarantine_write", phases),
            cc._timed(wap._Split, "commit", "rewrite_commit", phases),
            cc._timed(wap.ContractGate, "audit", "audit", phases)]
    cpu = time.process_time()
    try:
        result = ingest(args.child, Path(args.data), workdir / "run")
    finally:
        for restore in undo:
            restore()
    return {**result, "phases": phases, "cpu_seconds": time.process_time() - cpu, "warm_call_seconds": warm}


HANDLERS = {name: child for name in CONTENDERS}


# ============================================================================================
# Parent
# ============================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=5_000_000, help="rows ingested")
    p.add_argument("--repeats", type=int, default=3, help="runs per contender (median)")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma list of {', '.join(CONTENDERS)}")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--warm-data", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    c.harness_arguments(p, HANDLERS, timeout=1200)
    return p.parse_args(argv)


def check(out: dict[str, Any], rows: int) -> None:
    published, quarantined = expected(out["contender"], rows)
    got = (out.get("rows_read"), out.get("rows_published"), out.get("rows_quarantined"), out.get("rows_in_table"))
    if got != (rows, published, quarantined, published):
        out["error"] = (f"read/published/quarantined/in table = {got}, expected "
                        f"{(rows, published, quarantined, published)}")


def stats(runs: list[dict[str, Any]], contender: str) -> dict[str, Any] | None:
    mine = [r for r in runs if r["contender"] == contender]
    ok = [r for r in mine if "error" not in r]
    if not ok:
        return {"contender": contender, "error": mine[0]["error"]} if mine else None
    keys = sorted({k for r in ok for k in r.get("phases", {})})
    return {"contender": contender, "runs": len(ok), "seconds": c.median([r["seconds"] for r in ok]),
            "best": min(r["seconds"] for r in ok), "cpu_seconds": c.median([r["cpu_seconds"] for r in ok]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "noise": c.spread([r["seconds"] for r in ok]),
            "rows_published": ok[0]["rows_published"], "rows_quarantined": ok[0]["rows_quarantined"],
            "phases": {k: c.median([r["phases"].get(k, 0.0) for r in ok]) for k in keys},
            "all_seconds": [round(r["seconds"], 3) for r in ok]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return c.child_main(HANDLERS, args)
    wanted = [w.strip() for w in args.contenders.split(",") if w.strip()]
    info = c.machine_info()
    print(f"dativo write-audit-publish benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {info['cpus']} CPUs, "
          f"Python {info['python']}, pyarrow {info['pyarrow']}, pyiceberg {info['pyiceberg']}; code "
          f"{info.get('git_commit')}{'+uncommitted' if info.get('git_dirty') else ''} "
          f"(dativo_provider sha1 {info['engine_tree_sha1']})")
    print(c.MEASURING_NOTE.replace("1,000-row bench.wide_warm table", f"{WARM_ROWS:,} rows of the same shape"))
    root = c.SCRATCH_DIR / "wap-data"
    started = time.perf_counter()
    clean = write_files(root / f"clean-{args.rows}", args.rows, dirty=False)
    dirty = write_files(root / f"dirty-{args.rows}", args.rows, dirty=True)
    warm_data = write_files(root / f"clean-{WARM_ROWS}", WARM_ROWS, dirty=False)
    print(f"Parquet files: {args.rows:,} rows × 10 columns, clean and 1 % dirty, under {root} "
          f"({time.perf_counter() - started:.1f}s to build or find)")
    warm = c.warm_up(Path(__file__), WARM_UP_MODULES)
    print(f"warm-up import child: {warm['process_seconds']:.1f}s"
          + (f" (not importable: {', '.join(sorted(warm['failed']))})" if warm["failed"] else ""))

    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for contender in wanted:
            workdir = c.new_workdir(f"wap-{contender}")
            data = dirty if contender == "wap-quarantine" else clean
            argv = [sys.executable, __file__, "--child", contender, "--data", str(data), "--warm-data",
                    str(warm_data), "--workdir", str(workdir), "--result", str(workdir / "result.json")]
            busy = c.wait_for_quiet(args.quiet_cpu, args.quiet_wait)
            out = c.run_child(argv, timeout=args.timeout, log=c.SCRATCH_DIR / f"wap-{contender}-{repeat}.log")
            out.update(contender=contender, repeat=repeat, busy_cpu_pct_before=busy)
            if "error" not in out:
                check(out, args.rows)
            runs.append(out)
            status = out.get("error") or (
                f"{out['seconds']:.2f}s  peak {out['peak_rss_mb']:.0f} MB  cpu {out['cpu_seconds']:.1f}s  "
                f"busy-before {busy:.0f}%  " + "  ".join(f"{k} {v:.2f}s" for k, v in out["phases"].items()))
            print(f"  [#{repeat + 1}] {contender:15s} {status}", flush=True)
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    payload = report(runs, wanted, args.rows)
    payload.update(machine=info, warm_up=warm, measuring=c.MEASURING_NOTE, args=vars(args), runs=runs)
    path = c.write_results("wap_ingest", payload)
    print(f"results: {path.relative_to(c.REPO_DIR)}")
    return 0 if all("error" not in s for s in payload["stats"]) else 1


def report(runs: list[dict[str, Any]], wanted: list[str], rows: int) -> dict[str, Any]:
    all_stats = [s for name in wanted if (s := stats(runs, name))]
    headers = ["contender", "rows", "published", "quarantined", "median s", "rows/s", "peak RSS MB", "best s",
               "CPU s", "runs", "noise"]
    table = [[s["contender"], rows, s["rows_published"], s["rows_quarantined"], s["seconds"], rows / s["seconds"],
              s["peak_rss_mb"], s["best"], s["cpu_seconds"], s["runs"], s["noise"]]
             if "error" not in s else [s["contender"], rows, "ERROR (below)"] + [None] * 8 for s in all_stats]
    print("\n" + c.format_table(headers, table))
    for s in all_stats:
        if "error" in s:
            print(f"  {s['contender']}: {s['error']}")
        elif s["phases"]:
            print(f"  {s['contender']} phases (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in s["phases"].items()))
    by = {s["contender"]: s for s in all_stats if "error" not in s}
    ratios = {f"{name}_vs_plain": by[name]["seconds"] / by["plain"]["seconds"]
              for name in ("wap-pass", "wap-quarantine") if name in by and "plain" in by}
    for name, ratio in ratios.items():
        print(f"{name} = {ratio:.2f} (goal ≤ {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    return {"stats": all_stats, "ratios": ratios, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
