"""Merge benchmark: 10k changed Postgres rows merged into a 5M-row Iceberg table, ours vs dlt.

Per size (default 5M):

1. Copy ``bench.wide_<size>`` to ``bench.merge_<size>`` (so the ingest tables stay pristine) with an
   index on ``updated_at`` (a real incremental table has one on its cursor column).
2. Setup, not the measured part: load all rows into our Iceberg table (append) and into dlt's
   Iceberg table (``filesystem`` destination, ``table_format="iceberg"``, SQLite catalog,
   ``write_disposition="append"`` — loading 5M rows with dlt's merge would upsert them 1,000 at a
   time). The setup timings are printed too.
3. Each round: change 10,000 rows in Postgres (``qty = qty + 1``, ``updated_at = clock_timestamp()``;
   ids spread evenly over the table by default, ``--layout clustered`` for one contiguous range),
   then merge just those rows, each contender in its own child process:

   * ours: ``run_ingest(build_source(<spec selecting updated_at > T0>), ..., WriteOptions(mode="merge",
     merge_keys=("id",)))``. The spec defaults to ``{"type": "postgres", "query": "SELECT * FROM ...
     WHERE updated_at > '<T0>'"}``; override with ``--ours-spec`` if the source names it differently.
   * dlt: ``sql_table`` with a ``query_adapter_callback`` adding the same WHERE, run with
     ``write_disposition="merge", primary_key="id"`` (dlt's Iceberg merge strategy is ``upsert``).
     dlt runs with a time cap (``--dlt-cap``); a run that hits it is reported as "> cap", later rounds
     at that size are skipped, and the 1M size is measured as well (unless ``--sizes`` says
     otherwise).

After every merge the child checks (untimed) that the table still holds N rows and that a sample
of changed ids carries the new values, so a fast wrong merge cannot win.

Usage::

    python bench/merge_postgres.py                     # 5M (and 1M if dlt hits its cap), 2 rounds
    python bench/merge_postgres.py --sizes 1m,5m --rounds 3 --dlt-cap 900
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import ingest_postgres as ip  # noqa: E402

SIZES = {"1m": "bench.wide_1m", "5m": "bench.wide_5m"}
CHANGED_ROWS = 10_000
SAMPLE_IDS = 25
DEFAULT_OURS_SPEC = '{"type": "postgres", "query": "SELECT * FROM {table} WHERE updated_at > \'{since}\'"}'
DLT_BACKEND = "connectorx"  # the faster dlt backend in ingest_postgres.py on this machine
GOAL_VS_DLT = 10.0


# ============================================================================================
# Children
# ============================================================================================


def _verify(table_obj: Any, pg_table: str, sample: list[int]) -> dict[str, Any]:
    """Untimed: the row count, and that sampled changed rows carry the Postgres values."""
    import psycopg
    from pyiceberg.expressions import In

    snapshot = table_obj.current_snapshot()
    out: dict[str, Any] = {"rows_in_table": int(snapshot.summary["total-records"]) if snapshot else 0}
    if sample:
        with psycopg.connect(c.PG_DSN) as conn:
            expected = dict(conn.execute(f"SELECT id, qty FROM {pg_table} WHERE id = ANY(%s)", (sample,)).fetchall())
        got: dict[int, list[int]] = {}
        for row in table_obj.scan(row_filter=In("id", sample), selected_fields=("id", "qty")).to_arrow().to_pylist():
            got.setdefault(row["id"], []).append(row["qty"])
        wrong = {i: (got.get(i), expected[i]) for i in sample if got.get(i) != [expected[i]]}
        out["sample_checked"] = len(sample)
        if wrong:
            out["error"] = f"merge result wrong for {len(wrong)}/{len(sample)} sampled ids, e.g. {list(wrong.items())[:3]}"
    return out


def ours_run(spec: dict[str, Any], workdir: Path, merge: bool) -> tuple[dict[str, Any], Any]:
    ip._preimport("pyarrow", "pyiceberg.catalog.sql", "pyiceberg.table", "pyiceberg.io.pyarrow",
                  "adbc_driver_postgresql.dbapi", "dativo_provider.sources.postgres", "psycopg")
    from dativo_provider.connections import DatabaseConfig
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.sources import build_source

    catalog = embedded_catalog(workdir / "ours")
    options = WriteOptions(mode="merge", merge_keys=("id",)) if merge else WriteOptions(mode="append")
    started = time.perf_counter()
    source = build_source(spec, DatabaseConfig(host=c.PG_HOST, port=c.PG_PORT, user=c.PG_USER, database=c.PG_DB))
    result = run_ingest(source, catalog, ip.TARGET, options)
    seconds = time.perf_counter() - started
    summary = result.to_dict()
    out = {"seconds": seconds, "rows": result.rows_written, "engine": {k: summary.get(k) for k in (
        "rows_read", "rows_written", "rows_deleted", "files_written", "files_removed", "bytes_written",
        "duration_seconds", "commit_attempts", "warnings")}}
    return out, catalog.load().load_table(ip.TARGET)


def dlt_run(table: str, workdir: Path, merge: bool, since: str = "") -> tuple[dict[str, Any], Any]:
    workdir = workdir / "dlt"
    ip.dlt_setup(workdir)
    ip._preimport("dlt", "dlt.sources.sql_database", "dlt.destinations", "dlt.common.libs.pyiceberg",
                  "dlt.destinations.impl.filesystem.filesystem", "pyiceberg.catalog.sql", "sqlalchemy",
                  "connectorx", "pyarrow", "psycopg")
    import sqlalchemy as sa

    kwargs: dict[str, Any] = {}
    if merge:
        kwargs["query_adapter_callback"] = lambda query, tbl: query.where(
            sa.text(f"updated_at > '{since}'::timestamptz"))
    run_kwargs: dict[str, Any] = (
        {"write_disposition": "merge", "primary_key": "id"} if merge else {"write_disposition": "append"})
    started = time.perf_counter()
    pipeline = ip.dlt_pipeline(workdir)
    info = pipeline.run(ip.dlt_table(table, DLT_BACKEND, **kwargs), table_format="iceberg",
                        table_name=ip.TARGET.split(".")[1], **run_kwargs)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    table_obj = ip.dlt_catalog(workdir).load_table(ip.TARGET)
    return {"seconds": seconds, "dlt_steps": ip.dlt_trace(pipeline),
            "snapshots": len(table_obj.metadata.snapshots)}, table_obj


def _ours_spec(args: argparse.Namespace, table: str, since: str) -> dict[str, Any]:
    return json.loads(args.ours_spec.replace("{table}", table).replace("{since}", since))


def _step(args: argparse.Namespace, contender: str, table: str, workdir: Path, since: str) -> tuple[dict[str, Any], Any]:
    """One load or merge by one contender; the merge reads only rows changed after ``since``."""
    if contender == "ours-load":
        return ours_run({"type": "postgres", "table": table}, workdir, merge=False)
    if contender == "ours-merge":
        return ours_run(_ours_spec(args, table, since), workdir, merge=True)
    if contender == "dlt-load":
        return dlt_run(table, workdir, merge=False)
    return dlt_run(table, workdir, merge=True, since=since)


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up on the tiny table (a load, plus a merge of all its rows), untimed; then the real step."""
    workdir = Path(args.workdir)
    extra: dict[str, Any] = {}
    if args.warm_table:
        started = time.perf_counter()
        warm_dir = workdir / f"warm-{args.child}"
        load = args.child.split("-")[0] + "-load"
        _step(args, load, args.warm_table, warm_dir, "")
        if args.child.endswith("-merge"):
            _step(args, args.child, args.warm_table, warm_dir, "-infinity")
        extra["warm_call_seconds"] = time.perf_counter() - started
        shutil.rmtree(warm_dir, ignore_errors=True)
    cpu = time.process_time()
    out, table_obj = _step(args, args.child, args.table, workdir, args.since)
    out["cpu_seconds"] = time.process_time() - cpu
    out.update(_verify(table_obj, args.table, json.loads(args.sample)))
    return {**out, **extra}


HANDLERS = {name: child for name in ("ours-load", "ours-merge", "dlt-load", "dlt-merge")}


# ============================================================================================
# Parent
# ============================================================================================


def prepare_source(size: str) -> tuple[str, int]:
    """Copy the seeded table to ``bench.merge_<size>`` with an index on the cursor column."""
    import psycopg

    src, dst = SIZES[size], f"bench.merge_{size}"
    started = time.perf_counter()
    with psycopg.connect(c.PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {dst}")
        conn.execute(f"CREATE TABLE {dst} (LIKE {src} INCLUDING ALL)")
        conn.execute(f"INSERT INTO {dst} SELECT * FROM {src}")
        conn.execute(f"CREATE INDEX ON {dst} (updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {dst}")
        rows = conn.execute(f"SELECT count(*) FROM {dst}").fetchone()[0]
    print(f"  copied {src} → {dst} ({rows:,} rows) in {time.perf_counter() - started:.1f}s")
    return dst, rows


def change_rows(table: str, rows: int, round_no: int, layout: str) -> tuple[str, list[int]]:
    """Update CHANGED_ROWS rows; return the timestamp just before the change and sample ids."""
    import psycopg

    with psycopg.connect(c.PG_DSN, autocommit=True) as conn:
        since = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
        if layout == "spread":
            step = max(rows // CHANGED_ROWS, 1)
            ids_sql = (f"SELECT g FROM generate_series({1 + round_no % step}::bigint, {rows}::bigint, "
                       f"{step}::bigint) g LIMIT {CHANGED_ROWS}")
        else:
            start = 1 + (round_no * 7_919_113) % max(rows - CHANGED_ROWS, 1)
            ids_sql = f"SELECT generate_series({start}::bigint, {start + CHANGED_ROWS - 1}::bigint)"
        changed = conn.execute(
            f"UPDATE {table} SET qty = qty + 1, updated_at = clock_timestamp() WHERE id IN ({ids_sql}) RETURNING id"
        ).fetchall()
        conn.execute(f"ANALYZE {table}")
    ids = sorted(r[0] for r in changed)
    sample = ids[:: max(len(ids) // SAMPLE_IDS, 1)][:SAMPLE_IDS]
    assert len(ids) == min(CHANGED_ROWS, rows), f"changed {len(ids)} rows"
    return since, sample


def run(args: argparse.Namespace, contender: str, size: str, table: str, workdir: Path, label: str,
        since: str = "", sample: list[int] | None = None, timeout: float | None = None) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", contender, "--table", table, "--workdir", str(workdir),
            "--result", str(workdir / f"{contender}.json"), "--since", since,
            "--sample", json.dumps(sample or []), "--ours-spec", args.ours_spec, "--warm-table", args.warm_table]
    busy = c.wait_for_quiet(args.quiet_cpu, args.quiet_wait)
    out = c.run_child(argv, timeout=timeout or args.timeout, log=c.SCRATCH_DIR / f"merge-{contender}-{size}-{label}.log")
    out.update(contender=contender, size=size, label=label, busy_cpu_pct_before=busy)
    if "error" not in out and out.get("rows_in_table") not in (None, args.expected[size]):
        out["error"] = f"table holds {out['rows_in_table']} rows, expected {args.expected[size]}"
    if out.get("timed_out"):
        status = f"> {timeout:.0f}s (cap hit, killed)"
    else:
        status = out.get("error") or (f"{out['seconds']:.2f}s  peak {out['peak_rss_mb']:.0f} MB  "
                                      f"cpu {out.get('cpu_seconds', 0):.1f}s  busy-before {busy:.0f}%")
    print(f"  [{size} {label}] {contender:10s} {status}", flush=True)
    return out


def bench_size(args: argparse.Namespace, size: str, runs: list[dict[str, Any]], state: dict[str, Any]) -> None:
    table, rows = prepare_source(size)
    args.expected[size] = rows
    workdir = c.new_workdir(f"merge-{size}")
    try:
        ours_ok = not state.get("ours_not_ready")
        if ours_ok:
            r = run(args, "ours-load", size, table, workdir, "setup")
            runs.append(r)
            if r.get("not_ready") or "error" in r:
                state["ours_not_ready"] = r["error"]
                ours_ok = False
        r = run(args, "dlt-load", size, table, workdir, "setup")
        runs.append(r)
        dlt_ok = "error" not in r
        for round_no in range(args.rounds):
            since, sample = change_rows(table, rows, round_no, args.layout)
            label = f"round {round_no + 1}"
            if ours_ok:
                runs.append(run(args, "ours-merge", size, table, workdir, label, since, sample))
            if dlt_ok:
                r = run(args, "dlt-merge", size, table, workdir, label, since, sample, timeout=args.dlt_cap)
                runs.append(r)
                if r.get("timed_out"):
                    state.setdefault("dlt_capped", []).append(size)
                    dlt_ok = False  # the table is now in an unknown state; later rounds are moot
                elif "error" in r:
                    dlt_ok = False
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def summarize(args: argparse.Namespace, runs: list[dict[str, Any]], sizes: list[str], state: dict[str, Any]) -> dict[str, Any]:
    table_rows, summary = [], {}
    for size in sizes:
        entry: dict[str, Any] = {}
        for contender in ("ours-load", "dlt-load", "ours-merge", "dlt-merge"):
            mine = [r for r in runs if r["size"] == size and r["contender"] == contender]
            ok = [r for r in mine if "error" not in r]
            capped = any(r.get("timed_out") for r in mine)
            if ok:
                secs = c.median([r["seconds"] for r in ok])
                entry[contender] = {"seconds": secs, "runs": len(ok), "all_seconds": [round(r["seconds"], 3) for r in ok],
                                    "best_seconds": min(r["seconds"] for r in ok),
                                    "cpu_seconds": c.median([r.get("cpu_seconds") for r in ok]),
                                    "peak_rss_mb": max(r["peak_rss_mb"] for r in ok)}
                shown = f"{secs:.2f}" + (" (+ > cap)" if capped else "")
                e = entry[contender]
                table_rows.append([contender, size, shown, e["best_seconds"], e["cpu_seconds"], len(ok),
                                   c.spread([r["seconds"] for r in ok]), e["peak_rss_mb"]])
            elif capped:
                entry[contender] = {"seconds": None, "capped_at": args.dlt_cap}
                table_rows.append([contender, size, f"> {args.dlt_cap:.0f} (cap)", None, None, 0, "-", None])
            elif mine:
                entry[contender] = {"error": mine[0]["error"]}
                table_rows.append([contender, size, "ERROR (below)", None, None, 0, "-", None])
        om, dm = entry.get("ours-merge", {}), entry.get("dlt-merge", {})
        if om.get("seconds") and dm.get("seconds"):
            entry["dlt_over_ours"] = dm["seconds"] / om["seconds"]
        elif om.get("seconds") and dm.get("capped_at"):
            entry["dlt_over_ours_at_least"] = dm["capped_at"] / om["seconds"]
        summary[size] = entry
    print("\n" + c.format_table(
        ["step", "size", "median s", "best s", "client CPU s", "runs", "noise", "peak RSS MB"], table_rows))
    for r in runs:
        if "error" in r and not r.get("timed_out"):
            print(f"  {r['contender']} {r['size']} {r['label']}: {r['error']}")
    print(f"\n{CHANGED_ROWS:,} changed rows per round, layout '{args.layout}'. Speed-up of ours over dlt "
          f"(goal ≥ {GOAL_VS_DLT:.0f}×):")
    for size in sizes:
        e = summary[size]
        if "dlt_over_ours" in e:
            verdict = "met" if e["dlt_over_ours"] >= GOAL_VS_DLT else "NOT met"
            print(f"  {size}: {e['dlt_over_ours']:.1f}× → {verdict}")
        elif "dlt_over_ours_at_least" in e:
            print(f"  {size}: ≥ {e['dlt_over_ours_at_least']:.1f}× (dlt hit the {args.dlt_cap:.0f}s cap)")
        else:
            print(f"  {size}: n/a" + (f" (ours: {state['ours_not_ready']})" if state.get("ours_not_ready") else ""))
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="5m", help="comma list of 1m,5m; 1m is added when dlt hits its cap at 5m")
    p.add_argument("--rounds", type=int, default=2, help="change+merge rounds per size (median)")
    p.add_argument("--layout", choices=("spread", "clustered"), default="spread",
                   help="changed ids spread over the whole table, or one contiguous range")
    p.add_argument("--dlt-cap", type=float, default=900, help="seconds before a dlt merge is killed")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before any other child is killed")
    p.add_argument("--ours-spec", default=DEFAULT_OURS_SPEC,
                   help="JSON source spec for our merge run; {table} and {since} are substituted")
    p.add_argument("--no-auto-1m", action="store_true", help="do not add 1m when dlt is capped at 5m")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument("--quiet-cpu", type=float, default=None,
                   help="before each run, wait until machine CPU use (%% of all cores, over 1 s) is below "
                        "this; default: only record it")
    p.add_argument("--quiet-wait", type=float, default=180, help="longest wait for --quiet-cpu, seconds")
    p.add_argument("--child", choices=sorted(HANDLERS), help=argparse.SUPPRESS)
    p.add_argument("--table", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--since", default="", help=argparse.SUPPRESS)
    p.add_argument("--sample", default="[]", help=argparse.SUPPRESS)
    p.add_argument("--warm-table", default=ip.WARM_TABLE,
                   help="tiny table each child loads and merges once, untimed, before its timed step ('' = none)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return c.child_main(HANDLERS, args)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for table in [SIZES[s] for s in sizes] + ([args.warm_table] if args.warm_table else []):
        if not c.pg_table_exists(table):
            print(f"{table} is missing: run bench/pg_seed.py first", file=sys.stderr)
            return 2
    info = c.machine_info()
    print(f"dativo merge benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {info['cpus']} CPUs, "
          f"pyiceberg {info['pyiceberg']}, dlt {info['dlt']} (backend {DLT_BACKEND}), Postgres {info['postgres']}; "
          f"code {info.get('git_commit')}{'+uncommitted' if info.get('git_dirty') else ''} "
          f"(dativo_provider sha1 {info['engine_tree_sha1']})")
    print(c.MEASURING_NOTE)
    warm = c.warm_up(Path(__file__), ip.WARM_UP_MODULES + ("pyiceberg.expressions",))
    print(f"warm-up import child: {warm['process_seconds']:.1f}s")
    args.expected = {}
    runs: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    done: list[str] = []
    queue = list(sizes)
    while queue:
        size = queue.pop(0)
        print(f"\n{size}:", flush=True)
        bench_size(args, size, runs, state)
        done.append(size)
        if size == "5m" and "5m" in state.get("dlt_capped", []) and "1m" not in sizes + queue and not args.no_auto_1m:
            print("\ndlt hit its cap at 5M: measuring 1M as well", flush=True)
            queue.append("1m")
    summary = summarize(args, runs, done, state)
    info["loadavg_end"] = os.getloadavg()
    print(f"\nload average start {info['loadavg_start']}, end {info['loadavg_end']}")
    print(c.MEASURING_NOTE)
    payload = {"summary": summary, "runs": runs, "machine": info, "warm_up": warm, "state": state,
               "changed_rows": CHANGED_ROWS, "measuring": c.MEASURING_NOTE,
               "args": {k: v for k, v in vars(args).items() if k != "expected"}}
    path = c.write_results("merge_postgres", payload)
    print(f"results: {path.relative_to(c.REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
