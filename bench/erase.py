"""Erasure benchmark (issues 5 and 9): delete 1 and 1,000 data subjects from a 10M-row Iceberg table.

Two layouts of the same rows, built once under ``$TMPDIR/dativo-bench/erase-data/`` and reused:

* ``random``: every row's ``customer_id`` drawn at random (≈ 100 rows per customer), rows in ``id``
  order, so each subject's rows are spread over ≈ 63 % of the data files;
* ``clustered``: the same rows sorted by ``customer_id``, so a subject lives in one file (two at a
  boundary).

Both are written as 100 appends of N/100 rows (one transaction: 100 snapshots, 100 data files), 10
columns: ``id``, ``customer_id`` (int64), ``email``, ``name``, ``country``, ``status``, ``amount``,
``quantity``, ``created_at``, ``score``. Default pyiceberg table properties (column metrics
``truncate(16)``, so the files' min/max bounds on ``customer_id`` let a delete skip files).

Contenders, each in a fresh child process on a fresh copy of the table (the cached warehouse
directory is copied to the same path before every child, so the absolute paths in the metadata hold):

* ``ours``: ``delete_rows(catalog, table, In("customer_id", subjects), request_id=...)`` (IN lists
  over 200 values are split by the engine so file pruning keeps working; each column's delete is
  staged by :func:`dativo_provider.privacy.rewrite.stage_delete`: files checked on their filter
  column first, affected files rewritten in a bounded thread pool), then
  ``purge_table(..., refs_policy="remove", safety_window=0)``, then ``verify_erased`` with the
  subjects' ids and e-mails. Each step timed; the delete's time is split into stage_delete's phases
  (``check``/``read``/``write`` are summed over the pool's threads, so they can exceed the wall time).
  ``DATIVO_BENCH_REWRITE_WORKERS`` sets the pool size (default: stage_delete's).
* ``pyiceberg``: the same per-column, IN-chunked filter through pyiceberg's own
  ``Transaction.delete`` in one transaction (what ``delete_rows`` did before issue 9): delete only, no
  purge. Its time is split into pyiceberg's phases (scan planning, reading affected files, writing
  their survivors, commit) by wrapping the functions ``Transaction.delete`` calls.
* ``naive``: read the whole table (``scan().to_arrow()``), drop the subjects' rows with
  ``pyarrow.compute.is_in``, ``overwrite`` the table with the rest.

Every child first runs its contender once, untimed, on a fresh copy of a 20,000-row table of the same
shape (imports, first-call set-up), and after its timed run checks (untimed, streaming, so its peak
RSS is not inflated): rows after = rows before − the subjects' rows, no subject row left, and the sum
of ``id`` over all rows = before − the subjects' ``id`` sum (the other rows are intact). A failed
check is an error, not a time.

Usage::

    python bench/erase.py                                  # 10M rows, 1 and 1,000 subjects, both layouts
    python bench/erase.py --rows 200000 --repeats 1        # smoke run
    python bench/erase.py --layouts clustered --subjects 1 --contenders ours
    python bench/erase.py --repeats 3 --quiet-cpu 30       # the issue-9 figures (median of 3)
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

TABLE = "bench.erase"
FILES = 100  # appends, one data file each
ROWS_PER_CUSTOMER = 100
WARM_ROWS = 20_000
WARM_FILES = 10
ID_BASE = 1_000_000
DATA_VERSION = "v1"  # bump when the generator changes: cached tables are keyed by it
LAYOUTS = ("random", "clustered")
#: Also accepted by --layouts: the clustered rows in a table whose ``customer_id`` keeps counts only in
#: its manifests (what a contract sets on a data-subject column), so no file can be skipped by bounds.
EXTRA_LAYOUTS = ("clustered-counts",)
CONTENDERS = ("ours", "pyiceberg", "naive")
REQUEST_ID = "bench-erase"

WARM_UP_MODULES = (
    "pyarrow", "pyarrow.compute", "pyarrow.parquet", "pyiceberg.catalog.sql", "pyiceberg.table",
    "pyiceberg.io.pyarrow", "pyiceberg.expressions", "pyiceberg.table.update.snapshot",
    "dativo_provider.iceberg.catalog", "dativo_provider.privacy.erase", "dativo_provider.privacy.purge",
    "dativo_provider.privacy.verify", "dativo_provider.privacy.rewrite",
)

FIRST = ["Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gia", "Hal", "Ida", "Jon", "Kim", "Lea"]
LAST = ["Smith", "Jones", "Brown", "Meyer", "Novak", "Rossi", "Dubois", "Silva", "Sato", "Kowalski"]
COUNTRIES = ["US", "DE", "FR", "GB", "PL", "SE", "JP", "IN", "BR", "CA"]
STATUSES = ["active", "paused", "closed", "trial"]


# ============================================================================================
# Data
# ============================================================================================


def customers(rows: int) -> int:
    return max(1, rows // ROWS_PER_CUSTOMER)


def email_of(customer_id: int) -> str:
    return f"customer{customer_id}@example.com"


def generate(rows: int, seed: int = 7) -> Any:
    """The table in ``id`` order, each row's customer drawn at random (the random layout)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    i = np.arange(rows, dtype=np.int64)
    cust = ID_BASE + rng.integers(0, customers(rows), rows, dtype=np.int64)
    cust_arr = pa.array(cust)
    email = pc.binary_join_element_wise("customer", pc.cast(cust_arr, pa.string()), "@example.com", "")
    first = np.array(FIRST, dtype=object)[cust % len(FIRST)]
    last = np.array(LAST, dtype=object)[(cust // len(FIRST)) % len(LAST)]
    name = pc.binary_join_element_wise(pa.array(first, pa.string()), pa.array(last, pa.string()), " ")
    country = pa.DictionaryArray.from_arrays(pa.array(cust % len(COUNTRIES), pa.int32()), COUNTRIES).cast(pa.string())
    status = pa.DictionaryArray.from_arrays(pa.array(i % len(STATUSES), pa.int32()), STATUSES).cast(pa.string())
    return pa.table({
        "id": i,
        "customer_id": cust_arr,
        "email": email,
        "name": name,
        "country": country,
        "status": status,
        "amount": np.round(rng.random(rows) * 500, 2),
        "quantity": (i % 9 + 1).astype(np.int32),
        "created_at": pa.array(np.datetime64("2026-01-01T00:00:00", "us") + i * 1_000_000, pa.timestamp("us")),
        "score": rng.random(rows),
    })


def build(target: Path, rows: int, files: int, layout: str) -> None:
    """Write the table at ``target`` (an embedded catalog home): ``files`` appends in one transaction."""
    from dativo_provider.iceberg.catalog import embedded_catalog

    shutil.rmtree(target, ignore_errors=True)
    catalog = embedded_catalog(target).load()
    catalog.create_namespace_if_not_exists("bench")
    data = generate(rows)
    if layout.startswith("clustered"):
        data = data.sort_by([("customer_id", "ascending"), ("id", "ascending")])
    properties = {"write.metadata.metrics.column.customer_id": "counts"} if layout.endswith("-counts") else {}
    table = catalog.create_table(TABLE, schema=data.schema, properties=properties)
    step = -(-rows // files)
    with table.transaction() as tx:
        for start in range(0, rows, step):
            tx.append(data.slice(start, step))


def cached_table(cache: Path, run_home: Path, rows: int, files: int, layout: str) -> tuple[Path, float]:
    """The cached warehouse for (layout, rows); built at ``run_home`` (where every run's copy lives, so
    absolute paths in the metadata resolve) and moved into the cache."""
    path = cache / f"{layout}-{rows}-{files}-{DATA_VERSION}"
    if (path / "built").exists():
        return path, 0.0
    started = time.perf_counter()
    # in a child: the parent's RSS at fork time becomes every later child's ru_maxrss floor (Linux keeps
    # the high-water mark across fork and exec), so the parent must never hold the 10M rows itself
    import subprocess

    subprocess.run([sys.executable, __file__, "--build", str(run_home), str(rows), str(files), layout],
                   env=c.bench_env(), cwd=c.REPO_DIR, check=True)
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_home), str(path))
    (path / "built").write_text(str(run_home))
    return path, time.perf_counter() - started


def fresh_copy(cached: Path, home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(cached, home, ignore=shutil.ignore_patterns("built"))


def pick_subjects(rows: int, count: int, seed: int = 11) -> list[int]:
    """``count`` distinct customer ids (every id in the range has rows at these sizes), deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed + count)
    n = customers(rows)
    return sorted(int(ID_BASE + k) for k in rng.choice(n, size=min(count, n), replace=False))


# ============================================================================================
# Children
# ============================================================================================


def _catalog(home: Path) -> Any:
    from dativo_provider.iceberg.catalog import embedded_catalog

    return embedded_catalog(home)


def tally(config: Any, subjects: list[int]) -> dict[str, int]:
    """Streamed over the current snapshot (``id``, ``customer_id`` only): total rows, ``id`` sum, and
    the subjects' rows and ``id`` sum."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = config.load().load_table(TABLE)
    wanted = pa.array(subjects, pa.int64())
    out = {"rows": 0, "id_sum": 0, "subject_rows": 0, "subject_id_sum": 0}
    reader = table.scan(selected_fields=("id", "customer_id")).to_arrow_batch_reader()
    for batch in reader:
        mask = pc.is_in(batch.column("customer_id"), value_set=wanted)
        out["rows"] += batch.num_rows
        out["id_sum"] += pc.sum(batch.column("id")).as_py() or 0
        out["subject_rows"] += pc.sum(mask).as_py() or 0
        out["subject_id_sum"] += pc.sum(pc.filter(batch.column("id"), mask)).as_py() or 0
    return out


def data_files(config: Any) -> int:
    table = config.load().load_table(TABLE)
    return len(list(table.inspect.files().column("file_path")))


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phases:
    """Wraps module/class attributes so each call's time (and count) adds up under a label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[Any] = []

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        self.calls[label] = self.calls.get(label, 0) + 1

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - started)

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original))

    def wrap_generator(self, owner: Any, name: str, label: str) -> None:
        """For a generator function: time spent producing its items (the work happens lazily)."""
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            iterator = iter(original(*args, **kwargs))
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self.add(label, time.perf_counter() - started)
                    return
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
                yield item

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original))

    def wrap_cached_property(self, owner: type, name: str, label: str) -> None:
        import functools

        original = owner.__dict__[name]
        func = original.func

        def timed(instance: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(instance)
            finally:
                self.add(label, time.perf_counter() - started)

        replacement = functools.cached_property(timed)
        replacement.__set_name__(owner, name)
        setattr(owner, name, replacement)
        self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def delete_phases() -> Phases:
    """pyiceberg's copy-on-write delete, split: manifest evaluation of the DELETE snapshot, scan planning
    of the files to rewrite, reading each file, writing its survivors, writing the snapshots' manifests
    and manifest lists, the catalog commit. The rest ("other") is mostly filtering each file's rows
    (``pa.Table.filter``, which cannot be wrapped) and loading the table."""
    import pyiceberg.io.pyarrow as pio
    from pyiceberg.table import DataScan, Transaction
    from pyiceberg.table.update.snapshot import _DeleteFiles, _SnapshotProducer

    phases = Phases()
    phases.wrap_cached_property(_DeleteFiles, "_compute_deletes", "manifest_eval")
    phases.wrap(DataScan, "plan_files", "plan")
    phases.wrap(pio.ArrowScan, "to_table", "read")
    phases.wrap_generator(pio, "_dataframe_to_data_files", "write")
    phases.wrap(_SnapshotProducer, "_commit", "write_manifests")
    phases.wrap(Transaction, "commit_transaction", "commit")
    return phases


def rewrite_phases() -> Phases:
    """``stage_delete`` split: the DELETE snapshot (manifest evaluation), planning the files to check,
    the pool's wall time, and, summed over its threads, checking the filter column, reading whole
    files and writing survivors; then the OVERWRITE snapshot's manifests and the catalog commit."""
    from pyiceberg.table import Transaction

    from dativo_provider.privacy import rewrite

    phases = Phases()
    phases.wrap(rewrite, "_drop_whole_files", "manifest_eval")
    phases.wrap(rewrite, "_plan", "plan")
    phases.wrap(rewrite._FileRewriter, "run", "pool_wall")
    phases.wrap(rewrite._FileRewriter, "_any_row_matches", "check_threads")
    phases.wrap(rewrite._FileRewriter, "_write", "write_threads")
    phases.wrap(rewrite, "_stage_overwrite", "write_manifests")
    phases.wrap(Transaction, "commit_transaction", "commit")
    return phases


def _set_workers() -> None:
    workers = os.environ.get("DATIVO_BENCH_REWRITE_WORKERS")
    if workers:
        from dativo_provider.privacy import rewrite

        rewrite.DEFAULT_MAX_WORKERS = int(workers)


def purge_phases() -> Phases:
    from dativo_provider.iceberg import files
    from dativo_provider.privacy import purge

    phases = Phases()
    # the purge is being reworked (issue 9): time whichever of its steps this version has
    owner = getattr(purge, "PurgePlan", None) or getattr(purge, "_Purge", None)
    for name, label in (("__init__", "load_and_erased_files"), ("_carry_states", "seal"),
                        ("_change_refs_and_expire", "refs_and_expire"), ("_trim_metadata_log", "trim_metadata_log"),
                        ("_verify", "check")):
        if owner is not None and hasattr(owner, name):
            phases.wrap(owner, name, label)
    if hasattr(files, "OrphanSweep"):
        phases.wrap(files.OrphanSweep, "run", "sweep")
    return phases


def run_ours(home: Path, subjects: list[int], profile: bool = True) -> dict[str, Any]:
    from pyiceberg.expressions import EqualTo, In

    from dativo_provider.privacy.erase import delete_rows
    from dativo_provider.privacy.purge import purge_table
    from dativo_provider.privacy.verify import Identifiers, verify_erased

    config = _catalog(home)
    row_filter = EqualTo("customer_id", subjects[0]) if len(subjects) == 1 else In("customer_id", subjects)
    out: dict[str, Any] = {"rss_before_mb": _rss_mb()}
    _set_workers()

    phases = rewrite_phases() if profile else Phases()
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        deletion = delete_rows(config, TABLE, row_filter, request_id=REQUEST_ID)
        out["delete_seconds"] = time.perf_counter() - started
        out["delete_cpu_seconds"] = time.process_time() - cpu_started
    finally:
        phases.restore()
    out.update(rows_deleted=deletion.rows_deleted, files_rewritten=deletion.files_rewritten,
               files_dropped=deletion.files_removed, delete_phases=phases.seconds, delete_calls=phases.calls,
               maxrss_after_delete_mb=_rss_mb())
    if deletion.snapshot_id is None:
        raise RuntimeError("delete_rows matched nothing")

    phases = purge_phases() if profile else Phases()
    try:
        started = time.perf_counter()
        purged = _purge(purge_table, config, row_filter, deletion.snapshot_id)
        out["purge_seconds"] = time.perf_counter() - started
    finally:
        phases.restore()
    out.update(files_removed=purged.files_removed, bytes_removed=purged.bytes_removed,
               metadata_files_removed=purged.metadata_files_removed, snapshots_expired=purged.snapshots_expired,
               purge_phases=phases.seconds, maxrss_after_purge_mb=_rss_mb())

    identifiers = Identifiers(values=tuple(str(s) for s in subjects) + tuple(email_of(s) for s in subjects),
                              columns=("customer_id",))
    started = time.perf_counter()
    verified = verify_erased(config, [TABLE], identifiers)
    out["verify_seconds"] = time.perf_counter() - started
    out.update(verify_passed=verified.passed, verify_files=verified.files_scanned,
               verify_bytes=verified.bytes_scanned, verify_findings=len(verified.findings),
               verify_finding_sample=[f"{f.kind}: {f.where}" for f in verified.findings[:5]],
               maxrss_after_verify_mb=_rss_mb())
    out["seconds"] = out["delete_seconds"]
    return out


def _purge(purge_table: Any, config: Any, row_filter: Any, erased_snapshot_id: int) -> Any:
    """``purge_table`` before (``erased_snapshot_id``) and after (``subject``) issue 9's rework."""
    import inspect
    from datetime import timedelta

    if "subject" in inspect.signature(purge_table).parameters:
        return purge_table(config, TABLE, subject=row_filter, request_id=REQUEST_ID, refs_policy="remove",
                           safety_window=timedelta(0))
    return purge_table(config, TABLE, erased_snapshot_id=erased_snapshot_id, refs_policy="remove",
                       safety_window=timedelta(0))


def run_pyiceberg(home: Path, subjects: list[int]) -> dict[str, Any]:
    """pyiceberg's ``Transaction.delete`` per column, IN lists chunked: ``delete_rows`` before issue 9."""
    import warnings

    from pyiceberg.expressions import EqualTo, In

    from dativo_provider.privacy.erase import REQUEST_KEY, chunk_in_predicates, per_column

    config = _catalog(home)
    row_filter = EqualTo("customer_id", subjects[0]) if len(subjects) == 1 else In("customer_id", subjects)
    out: dict[str, Any] = {"rss_before_mb": _rss_mb()}
    phases = delete_phases()
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        table = config.load().load_table(TABLE)
        head = table.metadata.current_snapshot_id
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transaction = table.transaction()
            for part in per_column(row_filter):
                transaction.delete(chunk_in_predicates(part), snapshot_properties={REQUEST_KEY: REQUEST_ID})
            transaction.commit_transaction()
        out["delete_seconds"] = time.perf_counter() - started
        out["delete_cpu_seconds"] = time.process_time() - cpu_started
    finally:
        phases.restore()
    written, dropped, deleted = _commit_totals(config.load().load_table(TABLE), head)
    out.update(seconds=out["delete_seconds"], rows_deleted=deleted, files_rewritten=written, files_dropped=dropped,
               delete_phases=phases.seconds, delete_calls=phases.calls, maxrss_after_delete_mb=_rss_mb())
    return out


def run_naive(home: Path, subjects: list[int]) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    config = _catalog(home)
    out: dict[str, Any] = {"rss_before_mb": _rss_mb()}
    started = time.perf_counter()
    cpu_started = time.process_time()
    table = config.load().load_table(TABLE)
    head = table.metadata.current_snapshot_id
    data = table.scan().to_arrow()
    read = time.perf_counter()
    keep = data.filter(pc.invert(pc.is_in(data.column("customer_id"), value_set=pa.array(subjects, pa.int64()))))
    del data
    filtered = time.perf_counter()
    table.overwrite(keep, snapshot_properties={"dativo.bench": "naive-erase"})
    ended = time.perf_counter()
    out["delete_cpu_seconds"] = time.process_time() - cpu_started
    written, dropped, deleted = _commit_totals(config.load().load_table(TABLE), head)
    out.update(seconds=ended - started, delete_seconds=ended - started,
               delete_phases={"read": read - started, "filter": filtered - read, "overwrite": ended - filtered},
               files_rewritten=written, files_dropped=dropped, rows_deleted=deleted, maxrss_after_delete_mb=_rss_mb())
    return out


def _commit_totals(table: Any, before: int | None) -> tuple[int, int, int]:
    """Data files added and removed, and net rows removed, by the snapshots committed after ``before``."""
    written = dropped = deleted = 0
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != before:
        summary = snapshot.summary
        written += int(summary.get("added-data-files") or 0)
        dropped += int(summary.get("deleted-data-files") or 0)
        deleted += int(summary.get("deleted-records") or 0) - int(summary.get("added-records") or 0)
        snapshot = table.metadata.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    return written, dropped, deleted


def child(args: argparse.Namespace) -> dict[str, Any]:
    subjects = json.loads(Path(args.subjects).read_text())
    warm_subjects = json.loads(Path(args.warm_subjects).read_text())
    run = RUNNERS[args.child]
    started = time.perf_counter()
    run(Path(args.warm_home), warm_subjects)  # untimed: imports and first-call set-up
    warm = time.perf_counter() - started
    config = _catalog(Path(args.home))
    before = tally(config, subjects)
    files_before = data_files(config)
    cpu = time.process_time()
    result = run(Path(args.home), subjects)
    result["cpu_seconds"] = time.process_time() - cpu
    after = tally(config, subjects)
    result.update(before=before, after=after, data_files_before=files_before, data_files_after=data_files(config),
                  warm_call_seconds=warm)
    problems = []
    if after["rows"] != before["rows"] - before["subject_rows"]:
        problems.append(f"rows after {after['rows']} ≠ {before['rows']} − {before['subject_rows']}")
    if after["subject_rows"]:
        problems.append(f"{after['subject_rows']} subject rows left")
    if after["id_sum"] != before["id_sum"] - before["subject_id_sum"]:
        problems.append("other rows changed (id checksum)")
    if result.get("rows_deleted") != before["subject_rows"]:
        problems.append(f"rows_deleted {result.get('rows_deleted')} ≠ subject rows {before['subject_rows']}")
    if args.child == "ours" and not result.get("verify_passed"):
        problems.append(f"verification failed: {result.get('verify_finding_sample')}")
    if problems:
        result["error"] = "; ".join(problems)
    return result


HANDLERS = {name: child for name in CONTENDERS}
RUNNERS = {"ours": run_ours, "pyiceberg": run_pyiceberg, "naive": run_naive}


# ============================================================================================
# Parent
# ============================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows in the table")
    p.add_argument("--files", type=int, default=FILES, help="appends (one data file each)")
    p.add_argument("--subjects", default="1,1000", help="comma list of subject counts")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma list of {', '.join(LAYOUTS + EXTRA_LAYOUTS)}")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma list of {', '.join(CONTENDERS)}")
    p.add_argument("--repeats", type=int, default=1, help="runs per case and contender (median)")
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--warm-home", help=argparse.SUPPRESS)
    p.add_argument("--warm-subjects", help=argparse.SUPPRESS)
    c.harness_arguments(p, HANDLERS, timeout=1800)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--build":
        target, rows, files, layout = sys.argv[2:6]
        build(Path(target), int(rows), int(files), layout)
        return 0
    args = parse_args(argv)
    if args.child:
        return c.child_main(HANDLERS, args)
    layouts = [w.strip() for w in args.layouts.split(",") if w.strip()]
    counts = [int(w) for w in args.subjects.split(",") if w.strip()]
    wanted = [w.strip() for w in args.contenders.split(",") if w.strip()]
    info = c.machine_info()
    print(f"dativo erasure benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {info['cpus']} CPUs, "
          f"Python {info['python']}, pyarrow {info['pyarrow']}, pyiceberg {info['pyiceberg']}; code "
          f"{info.get('git_commit')}{'+uncommitted' if info.get('git_dirty') else ''} "
          f"(dativo_provider sha1 {info['engine_tree_sha1']})")
    print(c.MEASURING_NOTE.replace("1,000-row bench.wide_warm table",
                                   f"{WARM_ROWS:,}-row table of the same shape (a fresh copy)"))
    cache = c.SCRATCH_DIR / "erase-data"
    run_dir = c.SCRATCH_DIR / "erase-run"
    home, warm_home = run_dir / "table", run_dir / "warm"
    cached: dict[str, Path] = {}
    for layout in layouts:
        cached[layout], took = cached_table(cache, home, args.rows, args.files, layout)
        cached[f"warm-{layout}"], _ = cached_table(cache, warm_home, WARM_ROWS, WARM_FILES, layout)
        print(f"table {TABLE} ({layout}): {args.rows:,} rows, {args.files} appends, {customers(args.rows):,} "
              f"customers, under {cached[layout]} ({'built in %.1fs' % took if took else 'cached'})")
    warm = c.warm_up(Path(__file__), WARM_UP_MODULES)
    print(f"warm-up import child: {warm['process_seconds']:.1f}s"
          + (f" (not importable: {', '.join(sorted(warm['failed']))})" if warm["failed"] else ""))

    runs: list[dict[str, Any]] = []
    for layout in layouts:
        for count in counts:
            subjects = pick_subjects(args.rows, count)
            warm_subjects = pick_subjects(WARM_ROWS, min(count, customers(WARM_ROWS) // 2))
            for repeat in range(args.repeats):
                for contender in wanted:
                    workdir = c.new_workdir(f"erase-{contender}")
                    (workdir / "subjects.json").write_text(json.dumps(subjects))
                    (workdir / "warm-subjects.json").write_text(json.dumps(warm_subjects))
                    fresh_copy(cached[layout], home)
                    fresh_copy(cached[f"warm-{layout}"], warm_home)
                    argv = [sys.executable, __file__, "--child", contender, "--home", str(home),
                            "--warm-home", str(warm_home), "--subjects", str(workdir / "subjects.json"),
                            "--warm-subjects", str(workdir / "warm-subjects.json"),
                            "--result", str(workdir / "result.json")]
                    busy = c.wait_for_quiet(args.quiet_cpu, args.quiet_wait)
                    out = c.run_child(argv, timeout=args.timeout,
                                      log=c.SCRATCH_DIR / f"erase-{layout}-{count}-{contender}-{repeat}.log")
                    out.update(contender=contender, layout=layout, subjects=count, repeat=repeat,
                               busy_cpu_pct_before=busy)
                    runs.append(out)
                    print(f"  [{layout} {count:>5} #{repeat + 1}] {contender:5s} {describe(out)}", flush=True)
                    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    payload = report(runs, layouts, counts, wanted, args.rows)
    payload.update(machine=info, warm_up=warm, measuring=c.MEASURING_NOTE, args=vars(args), runs=runs)
    path = c.write_results("erase", payload)
    print(f"results: {path.relative_to(c.REPO_DIR)}")
    return 0 if all("error" not in r for r in runs) else 1


def describe(out: dict[str, Any]) -> str:
    if "error" in out and "delete_seconds" not in out:
        return f"ERROR {out['error']}"
    text = (f"delete {out['delete_seconds']:.2f}s ({out.get('files_rewritten')} files written, "
            f"{out.get('files_dropped')} out, {out.get('rows_deleted'):,} rows)")
    if "purge_seconds" in out:
        text += (f"  purge {out['purge_seconds']:.2f}s ({out['files_removed']} files removed)  "
                 f"verify {out['verify_seconds']:.2f}s (passed={out['verify_passed']})")
    text += (f"  peak {out['peak_rss_mb']:.0f} MB  cpu {out['cpu_seconds']:.1f}s (delete "
             f"{out.get('delete_cpu_seconds', 0):.1f}s)  busy-before {out['busy_cpu_pct_before']:.0f}%")
    text += "  phases " + " ".join(f"{k} {v:.2f}" for k, v in out.get("delete_phases", {}).items())
    if "error" in out:
        text += f"  ERROR {out['error']}"
    return text


def report(runs: list[dict[str, Any]], layouts: list[str], counts: list[int], wanted: list[str],
           rows: int) -> dict[str, Any]:
    stats = []
    for layout in layouts:
        for count in counts:
            for contender in wanted:
                mine = [r for r in runs if (r["layout"], r["subjects"], r["contender"]) == (layout, count, contender)]
                ok = [r for r in mine if "error" not in r]
                if not ok:
                    stats.append({"layout": layout, "subjects": count, "contender": contender,
                                  "error": mine[0].get("error") if mine else "not run"})
                    continue
                med = lambda key, ok=ok: c.median([r.get(key) for r in ok])  # noqa: E731
                first = ok[0]
                phase_names = dict.fromkeys(k for r in ok for k in r.get("delete_phases", {}))
                stats.append({
                    "layout": layout, "subjects": count, "contender": contender, "runs": len(ok),
                    "rows_deleted": first["rows_deleted"], "files_written": first["files_rewritten"],
                    "files_dropped": first["files_dropped"], "delete_seconds": med("delete_seconds"),
                    "purge_seconds": med("purge_seconds"), "verify_seconds": med("verify_seconds"),
                    "files_removed": first.get("files_removed"), "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
                    "rss_after_delete_mb": max(r["maxrss_after_delete_mb"] for r in ok),
                    "cpu_seconds": med("cpu_seconds"), "delete_cpu_seconds": med("delete_cpu_seconds"), "noise": c.spread([r["delete_seconds"] for r in ok]),
                    "delete_phases": {k: c.median([r["delete_phases"].get(k) for r in ok]) for k in phase_names},
                    "files_read": (first.get("delete_calls") or {}).get(
                        "check_threads" if contender == "ours" else "read"),
                    "purge_phases": {k: c.median([r.get("purge_phases", {}).get(k) for r in ok])
                                     for k in first.get("purge_phases", {})},
                    "verify_files": first.get("verify_files"), "verify_bytes": first.get("verify_bytes"),
                    "all_delete_seconds": [round(r["delete_seconds"], 3) for r in ok],
                })
    headers = ["layout", "subjects", "contender", "rows deleted", "delete s", "files read*", "files written",
               "files out", "purge s", "files removed", "verify s", "peak RSS MB", "RSS @delete MB", "runs", "noise"]
    table = []
    for s in stats:
        if "error" in s:
            table.append([s["layout"], s["subjects"], s["contender"], "ERROR"] + [None] * 11)
            continue
        table.append([s["layout"], s["subjects"], s["contender"], s["rows_deleted"], s["delete_seconds"],
                      s["files_read"], s["files_written"], s["files_dropped"], s["purge_seconds"], s["files_removed"],
                      s["verify_seconds"], s["peak_rss_mb"], s["rss_after_delete_mb"], s["runs"], s["noise"]])
    print(f"\n{rows:,} rows, {len(layouts)} layouts\n" + c.format_table(headers, table))
    for s in stats:
        if "error" in s:
            print(f"  {s['layout']} {s['subjects']} {s['contender']}: {s['error']}")
    print("\nwhere the delete's time goes (median s; read = files read whole, write = their survivors written):")
    for s in stats:
        if "error" not in s and s["delete_phases"]:
            total = s["delete_seconds"]
            named = {k: v for k, v in s["delete_phases"].items() if v is not None}
            parts = ", ".join(f"{k} {v:.2f}" for k, v in named.items())
            if s["contender"] == "pyiceberg":
                parts += f", other {total - sum(named.values()):.2f}"
            print(f"  {s['layout']:9s} {s['subjects']:>5} {s['contender']:5s}: {parts}")
    print("purge phases (median s):")
    for s in stats:
        if "error" not in s and s["purge_phases"]:
            print(f"  {s['layout']:9s} {s['subjects']:>5}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in s["purge_phases"].items() if v is not None)
                + f"; verify scanned {s['verify_files']} ({(s['verify_bytes'] or 0) / 2**20:.0f} MB)")
    print("* files read: ours = files whose filter column was checked (then read whole only if a row matches);"
          " pyiceberg = files read whole")
    ratios = _ratios(stats, layouts, counts)
    print("\nRatios (delete time; > 1 means ours is faster):")
    for key, r in ratios.items():
        print(f"  {key:15s} naive/ours {_x(r.get('naive_vs_ours'))}  pyiceberg/ours {_x(r.get('pyiceberg_vs_ours'))}"
              f"  ours/naive {_x(r.get('ours_vs_naive'))}  CPU naive/ours {_x(r.get('cpu_naive_vs_ours'))}"
              f"  CPU pyiceberg/ours {_x(r.get('cpu_pyiceberg_vs_ours'))}  ours peak RSS {r['ours_peak_rss_mb']:.0f} MB"
              f"  (ours delete+purge+verify {r['ours_delete_purge_verify_s']:.2f}s)")
    _print_goals(ratios)
    print("checked in every run: rows after = rows before − subject rows, 0 subject rows left, id checksum of the "
          "other rows unchanged, rows_deleted = subject rows; ours: verify_erased passed")
    return {"stats": stats, "ratios": ratios, "rows": rows}


def _ratios(stats: list[dict[str, Any]], layouts: list[str], counts: list[int]) -> dict[str, dict[str, Any]]:
    by = {(s["layout"], s["subjects"], s["contender"]): s for s in stats if "error" not in s}
    ratios: dict[str, dict[str, Any]] = {}
    for layout in layouts:
        for count in counts:
            ours = by.get((layout, count, "ours"))
            if not ours:
                continue
            naive, theirs = by.get((layout, count, "naive")), by.get((layout, count, "pyiceberg"))
            ratios[f"{layout}/{count}"] = {
                "naive_vs_ours": naive["delete_seconds"] / ours["delete_seconds"] if naive else None,
                "ours_vs_naive": ours["delete_seconds"] / naive["delete_seconds"] if naive else None,
                "pyiceberg_vs_ours": theirs["delete_seconds"] / ours["delete_seconds"] if theirs else None,
                # CPU seconds of the delete (all threads): what other people's load on the machine
                # distorts least; wall-time gains from the pool need idle cores
                "cpu_naive_vs_ours": naive["delete_cpu_seconds"] / ours["delete_cpu_seconds"] if naive else None,
                "cpu_pyiceberg_vs_ours": theirs["delete_cpu_seconds"] / ours["delete_cpu_seconds"] if theirs else None,
                "ours_peak_rss_mb": ours["peak_rss_mb"],
                "ours_delete_purge_verify_s": ours["delete_seconds"] + ours["purge_seconds"] + ours["verify_seconds"],
            }
    return ratios


def _x(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}×"


def _print_goals(ratios: dict[str, dict[str, Any]]) -> None:
    """Issue 9's must-show for bench/erase.py, met or not."""
    goals = [("random/1", "naive_vs_ours", ">=", 2.5), ("random/1000", "ours_vs_naive", "<=", 0.5),
             ("clustered/1000", "ours_vs_naive", "<=", 0.5), ("clustered/1", "naive_vs_ours", ">=", 10.0)]
    print("\nGoals (issue 9):")
    for case, key, op, bound in goals:
        value = ratios.get(case, {}).get(key)
        if value is None:
            print(f"  {case:15s} {key} {op} {bound}: not measured")
            continue
        met = value >= bound if op == ">=" else value <= bound
        print(f"  {case:15s} {key} {value:.2f} {op} {bound}: {'met' if met else 'NOT met'}")
    peak = max((r["ours_peak_rss_mb"] for r in ratios.values()), default=None)
    if peak is not None:
        print(f"  ours peak RSS {peak:.0f} MB <= 600 MB: {'met' if peak <= 600 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
