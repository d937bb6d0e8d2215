"""Shared plumbing for the benchmark scripts: child processes, peak RSS, warm-up, tables, JSON.

Every measured contender runs in a fresh child process, so its peak RSS is its own. The peak is the
larger of (a) the child's kernel high-water marks (``getrusage`` RUSAGE_SELF and RUSAGE_CHILDREN,
reported by the child itself) and (b) the summed RSS of the child's process tree, sampled by the
parent with psutil every 50 ms.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

PG_HOST, PG_PORT, PG_USER, PG_DB = "127.0.0.1", 5432, "postgres", "test"
PG_URI = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
PG_DSN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_DB}"

PYCACHE_DIR = Path(os.environ.get("DATIVO_BENCH_PYCACHE", Path(tempfile.gettempdir()) / "dativo-bench-pycache"))
SCRATCH_DIR = Path(os.environ.get("DATIVO_BENCH_SCRATCH", Path(tempfile.gettempdir()) / "dativo-bench"))

MEASURING_NOTE = (
    "Measuring (FACTS.md): children run with PYTHONDONTWRITEBYTECODE unset and "
    f"PYTHONPYCACHEPREFIX={PYCACHE_DIR}; one warm-up child imported every library first, so no "
    "timed run pays for byte-compiling. Each child also runs its contender once, untimed, on the "
    "1,000-row bench.wide_warm table, so timed sections exclude interpreter start-up, imports and "
    "first-call set-up for every contender alike."
)


# --------------------------------------------------------------------------------------------
# Environment and child processes
# --------------------------------------------------------------------------------------------


def bench_env() -> dict[str, str]:
    """The environment every child runs in: byte-code caching on, in a scratch folder."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # dlt: no telemetry from benchmark runs
    env.setdefault("PYTHONPATH", str(REPO_DIR))
    return env


def warm_up(script: Path, modules: Sequence[str]) -> dict[str, Any]:
    """Import ``modules`` once in a child so byte code is cached for the timed children."""
    PYCACHE_DIR.mkdir(parents=True, exist_ok=True)
    code = (
        "import importlib, json, sys, time\n"
        "t = time.perf_counter(); failed = {}\n"
        f"for m in {list(modules)!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as exc:  # a contender that is not installed / not written yet\n"
        "        failed[m] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'failed': failed}))\n"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], env=bench_env(), cwd=REPO_DIR, capture_output=True, text=True, check=True
    )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["process_seconds"] = time.perf_counter() - started
    return info


def run_child(argv: Sequence[str], timeout: float | None = None, log: Path | None = None) -> dict[str, Any]:
    """Run one contender in a fresh process; return its JSON result plus peak RSS and wall time.

    The child must write its result as JSON to the path given after ``--result``. On timeout the
    child's process group is killed and ``{"timed_out": True}`` is returned.
    """
    import psutil

    result_path = Path(argv[list(argv).index("--result") + 1])
    result_path.unlink(missing_ok=True)
    log = log or result_path.with_suffix(".log")
    started = time.perf_counter()
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            list(argv), env=bench_env(), cwd=REPO_DIR, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        tree_peak, timed_out = _poll_tree_rss(proc, psutil, timeout, started)
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"process_seconds": wall, "tree_peak_rss_mb": tree_peak / 2**20}
    if timed_out:
        out.update(timed_out=True, error=f"timed out after {timeout:.0f}s (killed)")
        return out
    if result_path.exists():
        out.update(json.loads(result_path.read_text()))
    else:
        out["error"] = f"child exited {proc.returncode} without a result; see {log}"
    if proc.returncode and "error" not in out:
        out["error"] = f"child exited {proc.returncode}; see {log}"
    out["log"] = str(log)
    out["peak_rss_mb"] = max(
        out["tree_peak_rss_mb"], out.get("maxrss_self_mb", 0.0), out.get("maxrss_children_mb", 0.0)
    )
    return out


def _poll_tree_rss(proc: subprocess.Popen, psutil: Any, timeout: float | None, started: float) -> tuple[int, bool]:
    peak = 0
    try:
        root = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        root = None
    while proc.poll() is None:
        if timeout is not None and time.perf_counter() - started > timeout:
            os.killpg(proc.pid, signal.SIGKILL)  # the child's own session, started above
            proc.wait()
            return peak, True
        total = 0
        if root is not None:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        peak = max(peak, total)
        time.sleep(0.05)
    return peak, False


def wait_for_quiet(max_busy: float | None, max_wait: float) -> float:
    """Before a run: the machine's CPU use (%, all cores) over one second — other people's work, as
    no benchmark child is running. With ``max_busy`` set, wait (at most ``max_wait`` s) until it is
    below that. Returns the last reading, recorded with the run as a noise indicator."""
    import psutil

    deadline = time.monotonic() + max_wait
    busy = psutil.cpu_percent(interval=1.0)
    while max_busy is not None and busy >= max_busy and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=2.0)
    return busy


def harness_arguments(parser: Any, handlers: dict[str, Any], timeout: float) -> None:
    """The options every benchmark script shares: child timeout, quiet-machine wait, child mode."""
    import argparse

    parser.add_argument("--timeout", type=float, default=timeout, help="seconds before a child is killed")
    parser.add_argument("--quiet-cpu", type=float, default=None,
                        help="before each run, wait until machine CPU use (%% of all cores, over 1 s) is "
                             "below this; default: only record it")
    parser.add_argument("--quiet-wait", type=float, default=180, help="longest wait for --quiet-cpu, seconds")
    parser.add_argument("--child", choices=sorted(handlers), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def child_report(path: str, payload: dict[str, Any]) -> None:
    """Called in the child: add kernel RSS high-water marks and write the result JSON."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    payload = {**payload, "maxrss_self_mb": self_kb / 1024, "maxrss_children_mb": kids_kb / 1024}
    Path(path).write_text(json.dumps(payload, default=str, indent=1))


def child_main(handlers: dict[str, Callable[[Any], dict[str, Any]]], args: Any) -> int:
    """Run one contender handler in the child; errors become a result with ``error`` set."""
    import traceback

    try:
        payload = handlers[args.child](args)
    except NotImplementedError as exc:
        payload = {"error": f"not ready: NotImplementedError {exc}".strip(), "not_ready": True}
    except ModuleNotFoundError as exc:
        not_ready = bool(exc.name and exc.name.startswith("dativo_provider"))
        payload = {"error": f"ModuleNotFoundError: {exc}", "not_ready": not_ready,
                   "traceback": traceback.format_exc()}
    except Exception as exc:  # noqa: BLE001 - reported, never swallowed
        payload = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        traceback.print_exc()
    child_report(args.result, payload)
    return 1 if "error" in payload else 0


# --------------------------------------------------------------------------------------------
# Postgres helpers (parent side)
# --------------------------------------------------------------------------------------------


def pg_count(table: str) -> int:
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def pg_table_exists(table: str) -> bool:
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values: Sequence[float]) -> str:
    """min-max around the median, as a percentage: a rough noise figure."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return "-"
    mid = statistics.median(values)
    return f"±{(max(values) - min(values)) / 2 / mid * 100:.0f}%"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(  # noqa: E731
        v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths))
    )
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine_info() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_start": os.getloadavg(),
    }
    for dist in ("pyarrow", "pyiceberg", "dlt", "connectorx", "adbc-driver-postgresql", "psycopg",
                 "dativo-airflow-provider"):
        try:
            from importlib.metadata import version

            info[dist] = version(dist)
        except Exception:  # noqa: BLE001
            info[dist] = None
    try:
        import psycopg

        with psycopg.connect(PG_DSN) as conn:
            info["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
    except Exception:  # noqa: BLE001
        info["postgres"] = None
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True
        ).stdout.strip()
        info["git_dirty"] = bool(
            subprocess.run(["git", "status", "--porcelain", "dativo_provider"], cwd=REPO_DIR,
                           capture_output=True, text=True).stdout.strip()
        )
    except OSError:
        pass
    info["engine_tree_sha1"] = engine_tree_hash()
    return info


def engine_tree_hash() -> str:
    """sha1 of every ``dativo_provider/**/*.py`` as it is on disk (the code measured, committed or not)."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((REPO_DIR / "dativo_provider").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    text = json.dumps(payload, indent=1, default=str)
    path.write_text(text)
    (RESULTS_DIR / f"{name}-latest.json").write_text(text)
    return path


def new_workdir(label: str) -> Path:
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=SCRATCH_DIR))
