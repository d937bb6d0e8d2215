"""Postgres → Iceberg ingestion benchmark: our engine vs dlt vs the ADBC → Parquet ceiling.

Reads ``bench.wide_1m`` and ``bench.wide_5m`` (seed them with ``bench/pg_seed.py``). Each contender
runs in its own fresh child process, so its peak RSS is its own; runs are interleaved
(contender A, B, C, A, B, C, ...) so background noise spreads over all of them, and the median of
``--repeats`` runs is reported. Each child first runs its contender once, untimed, on the 1,000-row
``bench.wide_warm`` so that lazy imports and first-call set-up are not timed for anyone.

Contenders:

* ``ours``: ``run_ingest(build_source({"type": "postgres", "table": ...}), embedded_catalog(dir),
  "bench.wide", WriteOptions(mode="append"))`` into a SQLite-catalog table on local disk.
* ``dlt-pyarrow`` / ``dlt-connectorx``: dlt ``sql_table`` (pyarrow backend; connectorx backend in
  its documented streaming mode ``return_type="arrow_stream"``) into dlt's ``filesystem``
  destination with ``table_format="iceberg"`` on a local bucket, with a SQLite SQL catalog
  configured through ``[iceberg_catalog]`` (env ``ICEBERG_CATALOG__*``). Both run at 1M; the faster
  runs at 5M.
* ``ours-rest``: the same run into a real Iceberg REST catalog with S3 storage (SeaweedFS ``weed mini``,
  started by this script on loopback for the whole benchmark, see ``tests/rest_catalog.py``): the
  overhead of a production-shaped catalog and object store against the local SQLite catalog and disk.
* ``ours-split2``: the same table as a split ingest (``dativo_provider.ingest.split``) of 2 key-range
  parts written by 2 worker processes at once (started and warmed before the timer, as Airflow workers
  are), then one commit: what the second core buys. ``ours-split2-rest`` does it on the REST catalog.
* ``ceiling``: ADBC (``adbc_driver_postgresql``) record-batch stream → one zstd Parquet file, no
  catalog, no type conversion (numerics stay the strings ADBC returns).
* ``ref-pyiceberg`` (reference, not a goal): the same ADBC stream, numerics cast to
  decimal128(p, s), into ``pyiceberg`` ``Table.append(RecordBatchReader)`` on a SQLite catalog:
  what pyiceberg itself costs, with no engine around it.

Usage::

    python bench/pg_seed.py                       # once
    python bench/ingest_postgres.py               # 1M and 5M, 3 repeats
    python bench/ingest_postgres.py --sizes 1m --repeats 1 --contenders ceiling,ours
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

SIZES = {"1m": "bench.wide_1m", "5m": "bench.wide_5m"}
TARGET = "bench.wide"  # namespace.table written by every Iceberg contender
WARM_TABLE = "bench.wide_warm"  # 1,000 rows, seeded by pg_seed.py
DLT_BACKENDS = ("pyarrow", "connectorx")

WARM_UP_MODULES = (
    "pyarrow", "pyarrow.parquet", "pyarrow.compute", "pyarrow.dataset",
    "pyiceberg.catalog.sql", "pyiceberg.table", "pyiceberg.io.pyarrow", "sqlalchemy",
    "adbc_driver_postgresql.dbapi", "psycopg", "connectorx",
    "dlt", "dlt.sources.sql_database", "dlt.destinations", "dlt.common.libs.pyiceberg",
    "dlt.destinations.impl.filesystem.filesystem",
    "dativo_provider.ingest.engine", "dativo_provider.sources", "dativo_provider.sources.postgres",
    "dativo_provider.iceberg.catalog", "dativo_provider.ingest.options",
)

GOALS = {"ours_vs_dlt": 3.0, "ours_vs_ceiling": 0.75, "peak_rss_mb": 600.0}


# ============================================================================================
# Children: one contender each. Imports happen before the timer starts.
# ============================================================================================


def _preimport(*modules: str) -> None:
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the timed code will raise the real error


def iceberg_total_records(catalog: Any, table: str) -> int | None:
    snapshot = catalog.load_table(table).current_snapshot()
    return int(snapshot.summary["total-records"]) if snapshot else 0


def ingest_ours(contender: str, table: str, workdir: Path) -> dict[str, Any]:
    _preimport("pyarrow", "pyiceberg.catalog.sql", "pyiceberg.table", "pyiceberg.io.pyarrow",
               "adbc_driver_postgresql.dbapi", "dativo_provider.sources.postgres")
    from dativo_provider.connections import DatabaseConfig
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.sources import build_source

    catalog, target = _target_catalog(contender, workdir)
    started = time.perf_counter()
    source = build_source(
        {"type": "postgres", "table": table},
        DatabaseConfig(host=c.PG_HOST, port=c.PG_PORT, user=c.PG_USER, database=c.PG_DB),
    )
    result = run_ingest(source, catalog, target, WriteOptions(mode="append"))
    seconds = time.perf_counter() - started
    summary = result.to_dict()
    return {
        "seconds": seconds,
        "rows": result.rows_written,
        "rows_in_table": iceberg_total_records(catalog.load(), target),
        "engine": {k: summary.get(k) for k in (
            "rows_read", "rows_written", "files_written", "bytes_written", "duration_seconds",
            "commit_attempts", "snapshot_id", "source_details", "warnings")},
    }


#: The parent hands the running REST catalog's properties to ``ours-rest`` children through this variable.
REST_CATALOG_ENV = "DATIVO_BENCH_REST_CATALOG"


def _target_catalog(contender: str, workdir: Path) -> tuple[Any, str]:
    """The catalog and table a contender of ours writes: the embedded one, or the REST catalog (each run
    in a namespace of its own, as the catalog outlives the runs)."""
    import uuid

    from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog

    if contender.endswith("-rest"):
        properties = json.loads(os.environ[REST_CATALOG_ENV])
        return CatalogConfig("bench_rest", properties), f"bench_{uuid.uuid4().hex[:8]}.wide"
    return embedded_catalog(workdir), TARGET


SPLIT_PARTS = 2


def _split_worker_ready() -> bool:
    _preimport("pyarrow", "pyiceberg.table", "pyiceberg.io.pyarrow", "pyiceberg.catalog.sql",
               "pyiceberg.catalog.rest", "adbc_driver_postgresql.dbapi", "dativo_provider.sources.postgres",
               "dativo_provider.ingest.split")
    return True


def _write_part(plan: dict[str, Any], index: int, catalog: tuple[str, dict[str, str]]) -> dict[str, Any]:
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.ingest.split import SplitPlan, write_split_part

    catalog = CatalogConfig(*catalog)
    return write_split_part(SplitPlan.from_dict(plan), index, _pg_config(), catalog).to_dict()


def _pg_config() -> Any:
    from dativo_provider.connections import DatabaseConfig

    return DatabaseConfig(host=c.PG_HOST, port=c.PG_PORT, user=c.PG_USER, database=c.PG_DB)


def ingest_ours_split(contender: str, table: str, workdir: Path) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _split_worker_ready()
    from dativo_provider.ingest.split import commit_split_ingest, plan_split_ingest

    catalog, target = _target_catalog(contender, workdir)
    with ProcessPoolExecutor(SPLIT_PARTS, mp_context=multiprocessing.get_context("spawn")) as workers:
        # The workers exist and have imported everything before the timer, like Airflow's workers.
        list(workers.map(_split_worker_ready_call, range(SPLIT_PARTS)))
        started = time.perf_counter()
        plan = plan_split_ingest({"type": "postgres", "table": table}, _pg_config(), catalog, target, SPLIT_PARTS,
                                 split_by="id", write_options={"mode": "append"})
        outputs = list(workers.map(_write_part, [plan.to_dict()] * len(plan.parts), range(len(plan.parts)),
                                   [(catalog.name, dict(catalog.properties))] * len(plan.parts)))
        result = commit_split_ingest(plan, outputs, catalog)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": result.rows_written,
        "rows_in_table": iceberg_total_records(catalog.load(), target),
        "parts": len(plan.parts),
    }


def _split_worker_ready_call(_: int) -> bool:
    return _split_worker_ready()


def dlt_setup(workdir: str | Path) -> None:
    """Point dlt's Iceberg catalog at a SQLite file in the workdir (dlt's ``[iceberg_catalog]``)."""
    import os

    os.environ["ICEBERG_CATALOG__ICEBERG_CATALOG_NAME"] = "default"
    os.environ["ICEBERG_CATALOG__ICEBERG_CATALOG_TYPE"] = "sql"
    os.environ["ICEBERG_CATALOG__ICEBERG_CATALOG_CONFIG"] = json.dumps({
        "type": "sql",
        "uri": f"sqlite:///{workdir}/dlt_catalog.db",
        "warehouse": f"file://{workdir}/dlt_warehouse",
    })
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"


def dlt_pipeline(workdir: str | Path, name: str = "bench_dlt") -> Any:
    import dlt

    return dlt.pipeline(
        pipeline_name=name,
        destination=dlt.destinations.filesystem(bucket_url=f"file://{workdir}/dlt_bucket"),
        dataset_name=TARGET.split(".")[0],
        pipelines_dir=f"{workdir}/dlt_pipelines",
    )


def dlt_table(table: str, backend: str, **kwargs: Any) -> Any:
    from dlt.sources.sql_database import sql_table

    schema, name = table.split(".")
    backend_kwargs = {"return_type": "arrow_stream"} if backend == "connectorx" else {}
    return sql_table(credentials=c.PG_URI, schema=schema, table=name, backend=backend,
                     backend_kwargs=backend_kwargs, **kwargs)


def dlt_catalog(workdir: str | Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("default", uri=f"sqlite:///{workdir}/dlt_catalog.db",
                      warehouse=f"file://{workdir}/dlt_warehouse")


def dlt_trace(pipeline: Any) -> dict[str, float]:
    trace = pipeline.last_trace
    return {s.step: (s.finished_at - s.started_at).total_seconds() for s in trace.steps} if trace else {}


def ingest_dlt(contender: str, table: str, workdir: Path) -> dict[str, Any]:
    backend = contender.removeprefix("dlt-")
    dlt_setup(workdir)
    _preimport("dlt", "dlt.sources.sql_database", "dlt.destinations", "dlt.common.libs.pyiceberg",
               "dlt.destinations.impl.filesystem.filesystem", "pyiceberg.catalog.sql", "sqlalchemy",
               "connectorx", "psycopg2", "pyarrow")
    started = time.perf_counter()
    pipeline = dlt_pipeline(workdir)
    info = pipeline.run(dlt_table(table, backend), table_format="iceberg",
                        write_disposition="append", table_name=TARGET.split(".")[1])
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    rows = iceberg_total_records(dlt_catalog(workdir), TARGET)
    return {"seconds": seconds, "rows": rows, "rows_in_table": rows, "dlt_steps": dlt_trace(pipeline)}


def _adbc_stream(table: str) -> tuple[Any, Any, Any]:
    import adbc_driver_postgresql.dbapi as adbc

    conn = adbc.connect(c.PG_URI)
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {table}")
    return conn, cur, cur.fetch_record_batch()


def ingest_ceiling(contender: str, table: str, workdir: Path) -> dict[str, Any]:
    _preimport("pyarrow", "pyarrow.parquet", "adbc_driver_postgresql.dbapi")
    import pyarrow as pa
    import pyarrow.parquet as pq

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "ceiling.parquet"
    started = time.perf_counter()
    conn, cur, reader = _adbc_stream(table)
    # ADBC returns numerics as an opaque extension over strings: write the storage as it comes.
    schema = pa.schema([pa.field(f.name, getattr(f.type, "storage_type", f.type), f.nullable)
                        for f in reader.schema])
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in reader:
            arrays = [getattr(col, "storage", col) for col in batch.columns]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            rows += batch.num_rows
    cur.close()
    conn.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "rows_in_table": pq.ParquetFile(path).metadata.num_rows,
            "bytes": path.stat().st_size}


def _numeric_type(field: Any) -> Any:
    """decimal128(p, s) from the Postgres typmod ADBC puts in the field metadata."""
    import pyarrow as pa

    typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod < 4:
        return pa.decimal128(38, 9)
    return pa.decimal128(((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF)


def ingest_ref_pyiceberg(contender: str, table: str, workdir: Path) -> dict[str, Any]:
    _preimport("pyarrow", "pyarrow.compute", "pyiceberg.catalog.sql", "pyiceberg.table",
               "pyiceberg.io.pyarrow", "adbc_driver_postgresql.dbapi")
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyiceberg.catalog.sql import SqlCatalog

    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    catalog = SqlCatalog("ref", uri=f"sqlite:///{workdir}/ref_catalog.db",
                         warehouse=f"file://{workdir}/ref_warehouse")
    catalog.create_namespace_if_not_exists(TARGET.split(".")[0])
    conn, cur, reader = _adbc_stream(table)
    fields = [pa.field(f.name, _numeric_type(f) if hasattr(f.type, "storage_type") else f.type, f.nullable)
              for f in reader.schema]
    schema = pa.schema(fields)

    def batches():  # noqa: ANN202
        for batch in reader:
            cols = [pc.cast(col.storage, f.type) if hasattr(col, "storage") else col
                    for col, f in zip(batch.columns, fields)]
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    table = catalog.create_table(TARGET, schema=schema)
    table.append(pa.RecordBatchReader.from_batches(schema, batches()))
    cur.close()
    conn.close()
    seconds = time.perf_counter() - started
    rows = iceberg_total_records(catalog, TARGET)
    return {"seconds": seconds, "rows": rows, "rows_in_table": rows}


INGESTERS = {
    "ours": ingest_ours,
    "ours-rest": ingest_ours,
    "ours-split2": ingest_ours_split,
    "ours-split2-rest": ingest_ours_split,
    "dlt-pyarrow": ingest_dlt,
    "dlt-connectorx": ingest_dlt,
    "ceiling": ingest_ceiling,
    "ref-pyiceberg": ingest_ref_pyiceberg,
}


def warm_then_time(run: Any, contender: str, args: argparse.Namespace, *steps: tuple[str, str]) -> dict[str, Any]:
    """Run ``run(contender, table, dir)`` on the tiny warm table (untimed), then for real.

    The warm call pays every contender's lazy imports and first-call set-up (dlt's first
    ``dlt.pipeline()`` alone imports ~1,300 modules in ~4 s), so the timed call measures the work.
    """
    workdir = Path(args.workdir)
    warm: dict[str, Any] = {}
    if args.warm_table:
        started = time.perf_counter()
        run(contender, args.warm_table, workdir / "warm")
        warm["warm_call_seconds"] = time.perf_counter() - started
        shutil.rmtree(workdir / "warm", ignore_errors=True)
    cpu = time.process_time()  # all threads of this process; the Postgres server is not included
    result = run(contender, args.table, workdir / "run")
    return {**result, "cpu_seconds": time.process_time() - cpu, **warm}


HANDLERS = {name: (lambda args, fn=fn: warm_then_time(fn, args.child, args)) for name, fn in INGESTERS.items()}


# ============================================================================================
# Parent: schedule, measure, report
# ============================================================================================


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs: list[dict[str, Any]] = []
        self.ours_not_ready: str | None = None

    def run(self, contender: str, size: str, repeat: int) -> dict[str, Any] | None:
        if contender == "ours" and self.ours_not_ready:
            return None
        workdir = c.new_workdir(f"{contender}-{size}")
        argv = [sys.executable, __file__, "--child", contender, "--table", SIZES[size],
                "--workdir", str(workdir), "--result", str(workdir / "result.json"),
                "--warm-table", self.args.warm_table]
        busy = c.wait_for_quiet(self.args.quiet_cpu, self.args.quiet_wait)
        out = c.run_child(argv, timeout=self.args.timeout, log=c.SCRATCH_DIR / f"{contender}-{size}-{repeat}.log")
        out["busy_cpu_pct_before"] = busy
        out.update(contender=contender, size=size, repeat=repeat, expected_rows=self.expected[size])
        if out.get("rows_in_table") not in (None, self.expected[size]) and "error" not in out:
            out["error"] = f"table holds {out['rows_in_table']} rows, source has {self.expected[size]}"
        if contender == "ours" and out.get("not_ready"):
            self.ours_not_ready = out["error"]
        self.runs.append(out)
        status = out.get("error") or (
            f"{out['seconds']:.2f}s  {out['expected_rows'] / out['seconds']:,.0f} rows/s  "
            f"peak {out['peak_rss_mb']:.0f} MB  cpu {out.get('cpu_seconds', 0):.1f}s  busy-before {busy:.0f}%")
        print(f"  [{size} #{repeat + 1}] {contender:15s} {status}", flush=True)
        if not self.args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return out

    def round_robin(self, size: str, contenders: list[str]) -> None:
        for repeat in range(self.args.repeats):
            for contender in contenders:
                self.run(contender, size, repeat)

    def stats(self, size: str, contender: str) -> dict[str, Any] | None:
        ok = [r for r in self.runs if r["size"] == size and r["contender"] == contender and "error" not in r]
        if not ok:
            errors = [r["error"] for r in self.runs if r["size"] == size and r["contender"] == contender]
            return {"contender": contender, "size": size, "error": errors[0]} if errors else None
        seconds = c.median([r["seconds"] for r in ok])
        rows = ok[0]["expected_rows"]
        return {
            "contender": contender, "size": size, "rows": rows, "runs": len(ok),
            "seconds": seconds, "rows_per_s": rows / seconds,
            "best_seconds": min(r["seconds"] for r in ok),
            "cpu_seconds": c.median([r.get("cpu_seconds") for r in ok]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
            "process_seconds": c.median([r["process_seconds"] for r in ok]),
            "noise": c.spread([r["seconds"] for r in ok]),
            "all_seconds": [round(r["seconds"], 3) for r in ok],
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1m,5m", help="comma list of 1m,5m")
    p.add_argument("--repeats", type=int, default=3, help="runs per contender and size (median)")
    p.add_argument("--contenders", default="ceiling,ours,ours-split2,ours-rest,dlt,ref-pyiceberg",
                   help="comma list of ceiling, ours, ours-split2 (2 parts on 2 processes), ours-rest and "
                        "ours-split2-rest (REST catalog + S3), dlt (both backends at "
                        "1M, faster at 5M), "
                        "dlt-pyarrow, dlt-connectorx, ref-pyiceberg")
    p.add_argument("--dlt-backend", choices=("auto", *DLT_BACKENDS), default="auto",
                   help="dlt backend for 5M (auto: faster median at 1M)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a child is killed")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument("--quiet-cpu", type=float, default=None,
                   help="before each run, wait until machine CPU use (%% of all cores, over 1 s) is below "
                        "this; default: only record it")
    p.add_argument("--quiet-wait", type=float, default=180, help="longest wait for --quiet-cpu, seconds")
    # child mode
    p.add_argument("--child", choices=sorted(HANDLERS), help=argparse.SUPPRESS)
    p.add_argument("--table", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--warm-table", default=WARM_TABLE,
                   help="tiny table each child ingests once, untimed, before its timed run ('' = none)")
    return p.parse_args(argv)


def contenders_for(size: str, wanted: list[str], dlt_best: str | None, first_size: bool) -> list[str]:
    out: list[str] = []
    for name in wanted:
        if name == "dlt":
            if dlt_best and not first_size:
                out.append(f"dlt-{dlt_best}")
            else:
                out.extend(f"dlt-{b}" for b in DLT_BACKENDS)
        else:
            out.append(name)
    return out


def report(runner: Runner, sizes: list[str], warm: dict[str, Any], info: dict[str, Any],
           dlt_choice: dict[str, Any]) -> dict[str, Any]:
    names = sorted({r["contender"] for r in runner.runs}, key=lambda n: list(HANDLERS).index(n))
    stats = [s for size in sizes for n in names if (s := runner.stats(size, n))]
    headers = ["contender", "size", "rows", "median s", "rows/s", "peak RSS MB", "best s", "client CPU s",
               "process s", "runs", "noise"]
    rows = [[s["contender"], s["size"], s.get("rows"), s.get("seconds"), s.get("rows_per_s"),
             s.get("peak_rss_mb"), s.get("best_seconds"), s.get("cpu_seconds"), s.get("process_seconds"),
             s.get("runs"), s.get("noise")]
            if "error" not in s else [s["contender"], s["size"], "ERROR (below)"] + [None] * 8
            for s in stats]
    print("\n" + c.format_table(headers, rows))
    for s in stats:
        if "error" in s:
            print(f"  {s['contender']} {s['size']}: {s['error']}")

    by = {(s["contender"], s["size"]): s for s in stats if "error" not in s}
    ratios: dict[str, Any] = {}
    lines = []
    for size in sizes:
        ours = by.get(("ours", size))
        dlts = [by[(n, size)] for n in names if n.startswith("dlt-") and (n, size) in by]
        dlt = max(dlts, key=lambda s: s["rows_per_s"]) if dlts else None
        ceiling = by.get(("ceiling", size))
        entry: dict[str, Any] = {}
        if ours and dlt:
            entry["ours_vs_dlt"] = ours["rows_per_s"] / dlt["rows_per_s"]
            entry["dlt_contender"] = dlt["contender"]
        if ours and ceiling:
            entry["ours_vs_ceiling"] = ours["rows_per_s"] / ceiling["rows_per_s"]
        if dlt and ceiling:
            entry["dlt_vs_ceiling"] = dlt["rows_per_s"] / ceiling["rows_per_s"]
        ours_rest = by.get(("ours-rest", size))
        if ours and ours_rest:
            # Below 1: what the REST catalog and S3 cost against the SQLite catalog on local disk.
            entry["ours_rest_vs_ours"] = ours_rest["rows_per_s"] / ours["rows_per_s"]
        split = by.get(("ours-split2", size))
        if ours and split:
            entry["split2_vs_ours"] = split["rows_per_s"] / ours["rows_per_s"]
        if split and dlt:
            entry["split2_vs_dlt"] = split["rows_per_s"] / dlt["rows_per_s"]
        ratios[size] = entry
        parts = [f"{k} = {v:.2f}" for k, v in entry.items() if isinstance(v, float)]
        lines.append(f"{size}: " + (", ".join(parts) if parts else "no ratio (a contender missing)")
                     + (f"  [dlt = {entry['dlt_contender']}]" if "dlt_contender" in entry else ""))
    print("\nRatios (rows/s):\n  " + "\n  ".join(lines))

    goals = []
    big = sizes[-1]
    o, r1 = by.get(("ours", big)), by.get(("ours", sizes[0]))
    if o:
        rv = ratios[big]
        goals.append(("ours ≥ 3× dlt", rv.get("ours_vs_dlt"), GOALS["ours_vs_dlt"]))
        goals.append(("ours ≥ 75 % of ceiling", rv.get("ours_vs_ceiling"), GOALS["ours_vs_ceiling"]))
        goals.append(("peak RSS ≤ 600 MB", o["peak_rss_mb"], GOALS["peak_rss_mb"]))
        if r1 and r1 is not o:
            growth = o["peak_rss_mb"] - r1["peak_rss_mb"]
            ratios["ours_rss_growth_mb"] = growth
            print(f"\nours peak RSS {sizes[0]} → {big}: {r1['peak_rss_mb']:.0f} → {o['peak_rss_mb']:.0f} MB "
                  f"({growth:+.0f} MB)")
        print(f"\nGoals at {big}:")
        for label, value, target in goals:
            if value is None:
                print(f"  {label}: n/a")
                continue
            ok = value <= target if "RSS" in label else value >= target
            print(f"  {label}: {value:.2f} → {'met' if ok else 'NOT met'}")
    else:
        why = runner.ours_not_ready or "no successful run"
        print(f"\nours: not measured ({why}); goals not evaluated.")

    info["loadavg_end"] = os.getloadavg()
    print(f"\nload average start {info['loadavg_start']}, end {info['loadavg_end']}")
    print(c.MEASURING_NOTE + " 'process s' = the whole child process (start-up, imports, warm call, run, "
          "check); 'client CPU s' = CPU of the contender's process during the timed run (all threads; "
          "not the Postgres server); 'noise' = half the min-max range of the runs over the median.")
    print(f"warm-up import: {warm['process_seconds']:.1f}s"
          + (f"; not importable: {sorted(warm['failed'])}" if warm.get("failed") else ""))
    if dlt_choice:
        print(f"dlt backend at 5M: {dlt_choice}")
    return {"stats": stats, "ratios": ratios, "goals": GOALS, "dlt_choice": dlt_choice,
            "ours_not_ready": runner.ours_not_ready, "runs": runner.runs, "machine": info,
            "warm_up": warm, "measuring": c.MEASURING_NOTE}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return c.child_main(HANDLERS, args)

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    wanted = [w.strip() for w in args.contenders.split(",") if w.strip()]
    for table in [SIZES[s] for s in sizes] + ([args.warm_table] if args.warm_table else []):
        if not c.pg_table_exists(table):
            print(f"{table} is missing: run bench/pg_seed.py first", file=sys.stderr)
            return 2
    info = c.machine_info()
    print(f"dativo ingest benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {info['cpus']} CPUs, "
          f"Python {info['python']}, pyarrow {info['pyarrow']}, pyiceberg {info['pyiceberg']}, "
          f"dlt {info['dlt']}, Postgres {info['postgres']}; code {info.get('git_commit')}"
          f"{'+uncommitted' if info.get('git_dirty') else ''} (dativo_provider sha1 {info['engine_tree_sha1']})")
    print(c.MEASURING_NOTE)
    warm = c.warm_up(Path(__file__), WARM_UP_MODULES)
    print(f"warm-up import child: {warm['process_seconds']:.1f}s"
          + (f" (not importable: {', '.join(sorted(warm['failed']))})" if warm["failed"] else ""))

    with ExitStack() as services:
        if any(w.endswith("-rest") for w in wanted):
            os.environ[REST_CATALOG_ENV] = json.dumps(_start_rest_catalog(services))
        return _run_all(args, sizes, wanted, info, warm)


def _start_rest_catalog(services: ExitStack) -> dict[str, str]:
    sys.path.insert(0, str(c.REPO_DIR))
    from tests.rest_catalog import local_rest_lake

    lake = services.enter_context(local_rest_lake(c.new_workdir("rest-lake")))
    print(f"REST catalog (weed mini) at {lake.catalog_uri}, S3 at {lake.s3_endpoint}", flush=True)
    return lake.catalog_properties()


def _run_all(args: argparse.Namespace, sizes: list[str], wanted: list[str], info: dict[str, Any],
             warm: dict[str, Any]) -> int:
    runner = Runner(args)
    runner.expected = {size: c.pg_count(SIZES[size]) for size in sizes}
    dlt_best = None if args.dlt_backend == "auto" else args.dlt_backend
    dlt_choice: dict[str, Any] = {}
    for i, size in enumerate(sizes):
        contenders = contenders_for(size, wanted, dlt_best, first_size=(i == 0))
        print(f"\n{SIZES[size]} ({runner.expected[size]:,} rows): {', '.join(contenders)}", flush=True)
        runner.round_robin(size, contenders)
        if dlt_best is None and "dlt" in wanted:
            medians = {b: (s or {}).get("rows_per_s") for b in DLT_BACKENDS
                       if (s := runner.stats(size, f"dlt-{b}"))}
            medians = {b: v for b, v in medians.items() if v}
            if medians:
                dlt_best = max(medians, key=medians.get)
                dlt_choice = {"chosen": dlt_best, "at": size, "rows_per_s": medians}
    payload = report(runner, sizes, warm, info, dlt_choice)
    payload["args"] = vars(args)
    path = c.write_results("ingest_postgres", payload)
    print(f"results: {path.relative_to(c.REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
