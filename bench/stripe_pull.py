"""Stripe → Iceberg benchmark: 50k charges pulled from the loopback Stripe double.

The double (``tests/doubles/stripe_api.py``) runs in its own process with every object serialised
up front, and each contender runs in a fresh child process (peak RSS is its own), in turn:

* ``raw``: a ``requests.Session`` pages through ``/v1/charges`` (limit 100, ``starting_after``
  taken from the bytes) without decoding JSON: what the double can serve over HTTP. If this is
  not far above ``ours``, the double is the bottleneck and the numbers mean nothing.
* ``parse``: the same, decoding every page with ``json``: what any Python client pays.
* ``source``: our ``StripeSource`` to Arrow batches, no Iceberg.
* ``ours``: ``run_ingest(StripeSource, embedded_catalog(dir), "bench.charges")``: the product path,
  one commit into a SQLite-catalog table on local disk. Both read the list by ``created`` (the first
  run of either incremental mode).
* ``events``: our ``StripeSource`` in the events mode to Arrow batches: every charge was refunded
  after the load (``--refunded``, default all), so a run reads one ``charge.refunded`` event per
  charge from ``/v1/events`` and writes each charge once, from the event's ``data.object``.

Every child first runs its contender untimed on the first 500 charges (``created[lte]``), so the
timed run excludes imports and first-call set-up. Usage::

    python bench/stripe_pull.py                     # 50k charges, 3 repeats
    python bench/stripe_pull.py --objects 20000 --repeats 1 --contenders raw,ours
    python bench/stripe_pull.py --quiet-cpu 20        # wait for a quiet machine before each run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

CONTENDERS = ("raw", "parse", "source", "ours", "events")
PAGE = 100
T0 = 1_704_067_200  # the double's first charge, 2024-01-01T00:00:00Z; charges are 1 s apart
WARM_OBJECTS = 500
WARM_UP_MODULES = ("requests", "json", "pyarrow", "pyarrow.compute", "pyiceberg.catalog.sql", "pyiceberg.table",
                   "dativo_provider.sources.stripe", "dativo_provider.ingest.engine")


# ============================================================================================
# Child: one contender
# ============================================================================================


def _pages(url: str, decode: bool, upper: int | None) -> tuple[int, int, int]:
    """Page through the charges list; returns (objects, bytes, requests)."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {_api_key()}"
    objects = size = count = 0
    after = None
    while True:
        params = {"limit": PAGE, **({"starting_after": after} if after else {}),
                  **({"created[lte]": upper} if upper else {})}
        body = session.get(f"{url}/v1/charges", params=params, timeout=60).content
        count += 1
        size += len(body)
        if decode:
            page = json.loads(body)
            objects += len(page["data"])
            after, more = (page["data"][-1]["id"] if page["data"] else None), page["has_more"]
        else:
            objects += body.count(b'"object": "charge"')
            start = body.rfind(b'"id": "ch_')
            after, more = body[start + 7:body.index(b'"', start + 7)].decode(), b'"has_more": true' in body
        if not more:
            return objects, size, count


def pull_raw(args: argparse.Namespace, upper: int | None, decode: bool = False) -> dict[str, Any]:
    objects, size, count = _pages(args.url, decode, upper)
    return {"rows": objects, "bytes": size, "requests": count}


def pull_parse(args: argparse.Namespace, upper: int | None) -> dict[str, Any]:
    return pull_raw(args, upper, decode=True)


def _source(args: argparse.Namespace) -> Any:
    from dativo_provider.connections import StripeConfig
    from dativo_provider.sources.stripe import StripeSource, parse_spec

    spec = parse_spec({"type": "stripe", "object": "charges", "settle": "0s", "incremental": "created"})
    return StripeSource(spec, StripeConfig(api_key=_api_key(), base_url=args.url))


def pull_source(args: argparse.Namespace, upper: int | None) -> dict[str, Any]:
    from dativo_provider.sources.base import ReadBounds

    rows = 0
    with _source(args).open(None, ReadBounds(upper=upper)) as stream:
        for batch in stream:
            rows += batch.num_rows
        details = stream.report.details
    return {"rows": rows, "requests": details.get("requests")}


def pull_ours(args: argparse.Namespace, upper: int | None) -> dict[str, Any]:
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.sources.base import ReadBounds

    home = Path(args.workdir) / ("warm" if upper else "run")
    result = run_ingest(_source(args), embedded_catalog(home), "bench.charges", bounds=ReadBounds(upper=upper))
    written = embedded_catalog(home).load().load_table("bench.charges").scan().count()
    return {"rows": result.rows_written, "rows_in_table": written, "files": result.files_written,
            "bytes_written": result.bytes_written, "requests": result.source_details.get("requests")}


def pull_events(args: argparse.Namespace, upper: int | None) -> dict[str, Any]:
    """The refunds since an hour ago through ``/v1/events``; the warm call's bound reads none of them."""
    from datetime import UTC, datetime, timedelta

    from dativo_provider.connections import StripeConfig
    from dativo_provider.sources.base import ReadBounds
    from dativo_provider.sources.stripe import StripeSource, parse_spec

    spec = parse_spec({"type": "stripe", "object": "charges", "settle": "0s", "incremental": "events"})
    source = StripeSource(spec, StripeConfig(api_key=_api_key(), base_url=args.url))
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    rows = 0
    bounds = ReadBounds(upper=None if upper is None else datetime.now(UTC) - timedelta(minutes=30))
    with source.open({"watermark": since, "cursor": "events"}, bounds) as stream:
        for batch in stream:
            rows += batch.num_rows
        details = stream.report.details
    if upper is None and rows != args.refunded_count:
        raise RuntimeError(f"events: {rows} charges read, {args.refunded_count} were refunded")
    return {"rows": rows, "requests": details.get("requests"), "retrieved": details.get("objects_retrieved")}


PULLS = {"raw": pull_raw, "parse": pull_parse, "source": pull_source, "ours": pull_ours, "events": pull_events}


def _api_key() -> str:
    from tests.doubles.stripe_api import API_KEY

    return API_KEY


def timed(args: argparse.Namespace) -> dict[str, Any]:
    """Warm call on the first 500 charges (untimed), then the full pull, timed."""
    pull = PULLS[args.child]
    started = time.perf_counter()
    pull(args, T0 + WARM_OBJECTS - 1)
    warm = time.perf_counter() - started
    cpu, started = time.process_time(), time.perf_counter()
    out = pull(args, None)
    seconds = time.perf_counter() - started
    return {**out, "seconds": seconds, "cpu_seconds": time.process_time() - cpu, "warm_call_seconds": warm,
            "rows_per_s": out["rows"] / seconds}


HANDLERS = {name: timed for name in PULLS}


# ============================================================================================
# Parent: the double, the children, the report
# ============================================================================================


class Double:
    """The Stripe double in its own process; ``url`` once it printed READY."""

    def __init__(self, objects: int, refunded: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.doubles.stripe_api", "--charges", str(objects), "--refunded", str(refunded)],
            cwd=c.REPO_DIR, env=c.bench_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the Stripe double did not start: {line!r}")
        self.url = line.removeprefix("READY ")

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_one(args: argparse.Namespace, double: Double, contender: str, repeat: int) -> dict[str, Any]:
    workdir = c.new_workdir(f"stripe-{contender}")
    argv = [sys.executable, __file__, "--child", contender, "--url", double.url, "--workdir", str(workdir),
            "--result", str(workdir / "result.json"), "--refunded-count", str(args.refunded_count)]
    busy = c.wait_for_quiet(args.quiet_cpu, args.quiet_wait)
    double_cpu = double.cpu_seconds()
    out = c.run_child(argv, timeout=args.timeout, log=c.SCRATCH_DIR / f"stripe-{contender}-{repeat}.log")
    out.update(contender=contender, repeat=repeat, double_cpu_seconds=double.cpu_seconds() - double_cpu,
               busy_cpu_pct_before=busy)
    print(f"  {contender} #{repeat + 1}: " + (f"{out['rows_per_s']:,.0f} rows/s, {out['peak_rss_mb']:.0f} MB"
                                             if "error" not in out else out["error"]), flush=True)
    return out


def summarise(runs: list[dict[str, Any]], contender: str) -> dict[str, Any]:
    ok = [r for r in runs if r["contender"] == contender and "error" not in r]
    if not ok:
        errors = [r.get("error") for r in runs if r["contender"] == contender]
        return {"contender": contender, "error": errors[0] if errors else "not run"}
    return {
        "contender": contender, "rows": ok[0]["rows"], "seconds": c.median([r["seconds"] for r in ok]),
        "rows_per_s": c.median([r["rows_per_s"] for r in ok]), "peak_rss_mb": c.median([r["peak_rss_mb"] for r in ok]),
        "cpu_seconds": c.median([r["cpu_seconds"] for r in ok]),
        "double_cpu_seconds": c.median([r["double_cpu_seconds"] for r in ok]),
        "mb_per_s": c.median([r["bytes"] / r["seconds"] / 2**20 for r in ok]) if "bytes" in ok[0] else None,
        "runs": len(ok), "noise": c.spread([r["rows_per_s"] for r in ok]),
        "busy_cpu_pct_before": c.median([r["busy_cpu_pct_before"] for r in ok]),
    }


def report(stats: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    headers = ["contender", "rows", "median s", "rows/s", "peak RSS MB", "client CPU s", "double CPU s", "MB/s",
               "runs", "noise", "busy %"]
    rows = [[s["contender"], s.get("rows"), s.get("seconds"), s.get("rows_per_s"), s.get("peak_rss_mb"),
             s.get("cpu_seconds"), s.get("double_cpu_seconds"), s.get("mb_per_s"), s.get("runs"), s.get("noise"),
             s.get("busy_cpu_pct_before")]
            for s in stats if "error" not in s]
    print("\n" + c.format_table(headers, rows))
    for s in stats:
        if "error" in s:
            print(f"  {s['contender']}: {s['error']}")
    by = {s["contender"]: s for s in stats if "error" not in s}
    ratios = {}
    if "raw" in by and "ours" in by:
        ratios["double_headroom"] = by["raw"]["rows_per_s"] / by["ours"]["rows_per_s"]
        verdict = "not the bottleneck" if ratios["double_headroom"] >= 2 else "TOO CLOSE: the double may limit ours"
        print(f"\nThe double serves {ratios['double_headroom']:.1f}× faster than ours ingests: {verdict}.")
    if "source" in by and "ours" in by:
        ratios["ours_vs_source"] = by["ours"]["rows_per_s"] / by["source"]["rows_per_s"]
        print(f"ours (to Iceberg) runs at {ratios['ours_vs_source']:.0%} of the source alone (to Arrow).")
    print(c.MEASURING_NOTE.split(" Each child")[0] + f" Each child ran its contender once on the first "
          f"{WARM_OBJECTS} charges, untimed. 'double CPU s' = the double's process during the timed child.")
    return {"objects": args.objects, "stats": stats, "ratios": ratios}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--objects", type=int, default=50_000, help="charges the double serves")
    p.add_argument("--repeats", type=int, default=3, help="runs per contender (median)")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--refunded", type=int, default=None, help="charges refunded for 'events' (default: all)")
    p.add_argument("--refunded-count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--quiet-cpu", type=float, default=None,
                   help="wait before each run until other processes use less than this CPU %% (all cores)")
    p.add_argument("--quiet-wait", type=float, default=180, help="longest wait for --quiet-cpu, seconds")
    p.add_argument("--child", choices=sorted(HANDLERS), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return c.child_main(HANDLERS, args)
    contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    info = c.machine_info()
    warm = c.warm_up(Path(__file__), WARM_UP_MODULES)
    started = time.perf_counter()
    wanted = args.objects if args.refunded is None else args.refunded
    args.refunded_count = wanted if "events" in contenders else 0  # the double refunds them at start
    double = Double(args.objects, args.refunded_count)
    print(f"Stripe double with {args.objects:,} charges at {double.url} "
          f"(started in {time.perf_counter() - started:.1f}s)", flush=True)
    runs = []
    try:
        for repeat in range(args.repeats):
            runs += [run_one(args, double, contender, repeat) for contender in contenders]
    finally:
        double.stop()
    payload = report([summarise(runs, name) for name in contenders], args)
    payload.update(runs=runs, machine=info, warm_up=warm, loadavg_end=os.getloadavg())
    print(f"results: {c.write_results('stripe_pull', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
