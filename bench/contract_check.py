"""Contract check benchmark: 10 rules on a 10M-row Iceberg table — ours vs Soda directly vs GX directly.

The table (10 columns, deterministic numpy/pyarrow data with a known number of violations per rule)
is built once under ``$TMPDIR/dativo-bench/contract-data/`` in an embedded (SQLite) catalog and reused.
Each contender runs in a fresh child process (peak RSS is its own), first once untimed on a 1,000-row
table of the same shape (imports, GX context, first-call set-up), then timed. Runs are interleaved and
the median of ``--repeats`` is reported; the GX contenders run ``--gx-repeats`` times (default 1).

Contenders (all read the same Iceberg snapshot inside the timed section):

* ``ours``: ``run_contract(contract, IcebergTarget(catalog, "bench.contract"))`` with the 10 rules on
  engine soda: Iceberg → in-memory DuckDB table, Soda's one aggregate query, then our failing-row
  localisation (count + key sample per failing row-level rule). Its phases are timed by wrapping
  ``runner._load_snapshot``, ``soda.run_soda`` and ``runner._locate``.
* ``soda``: the same rules compiled by ``compile_soda_contract`` and written to YAML, run with
  ``soda_core.contracts.verify_contract_locally`` on a DuckDB connection where the table's Arrow data
  (``scan().to_arrow()``) is registered, with a view ``dataset`` over it. ``soda_only_seconds`` is the
  verify call alone, the data already in DuckDB.
* ``gx``: the same 10 rules written as a GX 1.x suite by hand, validated (``result_format`` BASIC) on
  ``scan().to_arrow().to_pandas()`` through an ephemeral context.
* ``ours-gx``: ``run_contract`` with the same rules on engine great_expectations (our GX adapter asks
  for COMPLETE results with row ids, to locate failing rows).

Every contender's per-rule failing count (observed value for the row count) is checked against the
generator's known counts; a mismatch is an error, printed. A duplicate rule counts every row of a
repeated key (one definition for every engine, docs/quality.md), so its expected count is twice the
number of planted extra copies.

Usage::

    python bench/contract_check.py                         # 10M rows, ours/soda 3×, GX 1×
    python bench/contract_check.py --rows 200000 --repeats 1   # smoke run
    python bench/contract_check.py --contenders ours,soda
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

TABLE = "bench.contract"
WARM_ROWS = 1_000
DATA_VERSION = "v1"  # bump when the generator changes: cached tables are keyed by it
CONTENDERS = ("ours", "soda", "gx", "ours-gx")
GOALS = {"ours_vs_soda": 1.10}

WARM_UP_MODULES = (
    "pyarrow", "pyarrow.compute", "pyiceberg.catalog.sql", "pyiceberg.table", "pyiceberg.io.pyarrow",
    "duckdb", "pandas", "yaml", "soda_core.contracts", "soda_core.contracts.contract_verification",
    "soda_duckdb.common.data_sources.duckdb_data_source", "great_expectations",
    "dativo_provider.quality.runner", "dativo_provider.quality.soda", "dativo_provider.quality.gx",
    "dativo_provider.contracts.loader", "dativo_provider.iceberg.catalog",
)

STATUSES = ["placed", "paid", "shipped", "refunded", "cancelled"]
COUNTRIES = ["US", "DE", "FR", "GB", "PL", "SE", "JP", "IN", "BR", "CA"]
EMAIL_PATTERN = r"[a-z0-9.]+@[a-z]+\.[a-z]+"
CATEGORY_PATTERN = r"cat[0-9]{1,2}"
AMOUNT_RANGE = (0, 1000)
QUANTITY_RANGE = (1, 100)
MIN_ROWS = 1000

#: rule name -> (column, share of rows that break it, per 10,000). Row positions never overlap.
VIOLATIONS = {
    "id_unique": 1, "customer_id_present": 2, "email_well_formed": 3, "status_known": 4,
    "country_present": 5, "amount_in_range": 6, "quantity_in_range": 7, "created_at_present": 8,
    "category_well_formed": 9,
}


# ============================================================================================
# Data: table, violations, contracts
# ============================================================================================


def violation_counts(rows: int) -> dict[str, int]:
    """How many rows break each rule (Soda's counts; row_count's entry is the observed row count)."""
    counts = {name: max(1, rows * per // 10_000) for name, per in VIOLATIONS.items()}
    counts["id_unique"] = min(counts["id_unique"], rows // 2 - 1)
    counts["min_rows"] = rows
    return counts


def generate(rows: int, seed: int = 42, counts: dict[str, int] | None = None) -> Any:
    """The 10-column table as a ``pa.Table``; violations at disjoint random positions.

    ``counts`` overrides :func:`violation_counts` (missing names: no violations of that rule).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = violation_counts(rows) if counts is None else counts
    rng = np.random.default_rng(seed)
    i = np.arange(rows, dtype=np.int64)
    half = rows // 2
    spots = half + rng.permutation(rows - half)  # every violation lives in the second half
    taken = 0

    def positions(name: str) -> Any:
        nonlocal taken
        n = counts.get(name, 0)
        out = np.sort(spots[taken:taken + n])
        taken += n
        return out

    def mask(name: str) -> Any:
        m = np.zeros(rows, dtype=bool)
        m[positions(name)] = True
        return pa.array(m)

    ids = i.copy()
    dup = positions("id_unique")
    ids[dup] = dup - half  # a value of the first half, each repeated exactly once
    id_text = pc.cast(pa.array(i), pa.string())
    email = pc.binary_join_element_wise("u", id_text, "@shop.com", "")
    email = pc.if_else(mask("email_well_formed"), pa.scalar("Not An Email"), email)
    status = pa.array(np.array(STATUSES, dtype=object)[i % len(STATUSES)], pa.string())
    status = pc.if_else(mask("status_known"), pa.scalar("lost"), status)
    country = pa.DictionaryArray.from_arrays(pa.array(i % len(COUNTRIES), pa.int32()), COUNTRIES).cast(pa.string())
    missing = positions("country_present")  # half empty strings, half 'N/A'
    empty = np.zeros(rows, dtype=bool)
    empty[missing[::2]] = True
    na = np.zeros(rows, dtype=bool)
    na[missing[1::2]] = True
    country = pc.if_else(pa.array(empty), pa.scalar(""), country)
    country = pc.if_else(pa.array(na), pa.scalar("N/A"), country)
    amount = (i % 9973) / 10.0 + 1.0
    amount[positions("amount_in_range")] = -5.0
    quantity = (i % 7 + 1).astype(np.int32)
    quantity[positions("quantity_in_range")] = 1000
    customer = pa.array((i * 7919) % 1_000_000, pa.int64(), mask=mask("customer_id_present").to_numpy(
        zero_copy_only=False))
    created = pa.array(np.datetime64("2026-01-01T00:00:00", "us") + i * 1_000_000, pa.timestamp("us"),
                       mask=mask("created_at_present").to_numpy(zero_copy_only=False))
    category = pc.binary_join_element_wise("cat", pc.cast(pa.array(i % 50), pa.string()), "")
    category = pc.if_else(mask("category_well_formed"), pa.scalar("CAT-X"), category)
    score = rng.random(rows)
    return pa.table({
        "id": ids, "customer_id": customer, "email": email, "status": status, "country": country,
        "amount": amount, "quantity": quantity, "created_at": created, "category": category, "score": score,
    })


def build_table(home: Path, rows: int) -> Any:
    """An embedded catalog under ``home`` with ``bench.contract`` holding ``rows`` rows (built once)."""
    from dativo_provider.iceberg.catalog import embedded_catalog

    config = embedded_catalog(home)
    marker = home / f"built-{rows}-{DATA_VERSION}"
    if marker.exists():
        return config
    catalog = config.load()
    catalog.create_namespace_if_not_exists("bench")
    if catalog.table_exists(TABLE):
        catalog.drop_table(TABLE)
    data = generate(rows)
    table = catalog.create_table(TABLE, schema=data.schema)
    step = 1_000_000  # ~1M rows per data file
    with table.transaction() as tx:
        for start in range(0, rows, step):
            tx.append(data.slice(start, step))
    marker.write_text("ok")
    return config


def contract_yaml(engine: str = "soda") -> str:
    """The ODCS contract with the 10 rules, all on ``engine`` (soda or great_expectations)."""
    gx = engine == "great_expectations"
    def engine_tag(indent: int) -> str:
        pad = " " * indent
        return (f"\n{pad}customProperties:\n{pad}  - property: dativoEngine\n"
                f"{pad}    value: great_expectations") if gx else ""

    tag = engine_tag(12)

    def rng(name: str, low: int, high: int) -> str:
        if gx:
            impl = (f"{{type: expect_column_values_to_be_between, kwargs: {{min_value: {low}, "
                    f"max_value: {high}}}}}")
            return f"""
          - name: {name}
            type: custom
            engine: great_expectations
            implementation: {impl}"""
        return f"""
          - name: {name}
            type: custom
            engine: soda
            implementation: {{invalid: {{valid_min: {low}, valid_max: {high}}}}}
            mustBe: 0"""

    return f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:dativo:bench:contract
version: 1.0.0
status: active
team: {{name: bench}}
customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: quarantine, sla: warn}}
schema:
  - name: contract
    physicalName: {TABLE}
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        quality:
          - name: id_unique
            metric: duplicateValues
            mustBe: 0{tag}
      - name: customer_id
        logicalType: integer
        physicalType: bigint
        quality:
          - name: customer_id_present
            metric: nullValues
            mustBe: 0{tag}
      - name: email
        logicalType: string
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '{EMAIL_PATTERN}'}}
            mustBe: 0{tag}
      - name: status
        logicalType: string
        quality:
          - name: status_known
            metric: invalidValues
            arguments: {{validValues: {STATUSES}}}
            mustBe: 0{tag}
      - name: country
        logicalType: string
        quality:
          - name: country_present
            metric: missingValues
            arguments: {{missingValues: ['', 'N/A']}}
            mustBe: 0{tag}
      - name: amount
        logicalType: number
        physicalType: double
        quality:{rng("amount_in_range", *AMOUNT_RANGE)}
      - name: quantity
        logicalType: integer
        physicalType: int
        quality:{rng("quantity_in_range", *QUANTITY_RANGE)}
      - name: created_at
        logicalType: timestamp
        physicalType: timestamp
        quality:
          - name: created_at_present
            metric: nullValues
            mustBe: 0{tag}
      - name: category
        logicalType: string
        quality:
          - name: category_well_formed
            metric: invalidValues
            arguments: {{pattern: '{CATEGORY_PATTERN}'}}
            mustBe: 0{tag}
      - name: score
        logicalType: number
        physicalType: double
    quality:
      - name: min_rows
        metric: rowCount
        mustBeGreaterOrEqualTo: {MIN_ROWS}{engine_tag(8)}
"""


def expected_counts(rows: int, engine: str) -> dict[str, int]:
    counts = violation_counts(rows)
    counts["id_unique"] *= 2  # every row of a repeated key (each planted extra copy repeats one id)
    return counts


def gx_suite() -> Any:
    """The 10 rules as a plain GX 1.x suite, written the way a GX user would."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    full = lambda p: f"^(?:{p})\\Z"  # noqa: E731 - GX searches; a full match needs anchors
    return gx.ExpectationSuite(name="bench_contract", expectations=[
        gxe.ExpectColumnValuesToBeUnique(column="id", meta={"rule": "id_unique"}),
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", meta={"rule": "customer_id_present"}),
        gxe.ExpectColumnValuesToMatchRegex(column="email", regex=full(EMAIL_PATTERN),
                                           meta={"rule": "email_well_formed"}),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES, meta={"rule": "status_known"}),
        gxe.ExpectColumnValuesToNotBeInSet(column="country", value_set=["", "N/A"],
                                           meta={"rule": "country_present"}),
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=AMOUNT_RANGE[0], max_value=AMOUNT_RANGE[1],
                                          meta={"rule": "amount_in_range"}),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=QUANTITY_RANGE[0],
                                          max_value=QUANTITY_RANGE[1], meta={"rule": "quantity_in_range"}),
        gxe.ExpectColumnValuesToNotBeNull(column="created_at", meta={"rule": "created_at_present"}),
        gxe.ExpectColumnValuesToMatchRegex(column="category", regex=full(CATEGORY_PATTERN),
                                           meta={"rule": "category_well_formed"}),
        gxe.ExpectTableRowCountToBeBetween(min_value=MIN_ROWS, meta={"rule": "min_rows"}),
    ])


# ============================================================================================
# Children
# ============================================================================================


def _iceberg_arrow(config: Any) -> Any:
    return config.load().load_table(TABLE).scan().to_arrow()


def check_ours(home: Path, workdir: Path, engine: str) -> dict[str, Any]:
    from dativo_provider.quality import runner, soda
    from dativo_provider.quality.runner import IcebergTarget, run_contract

    config = _catalog(home)
    path = workdir / f"contract-{engine}.yaml"
    path.write_text(contract_yaml(engine))
    phases: dict[str, float] = {}
    undo = [_timed(runner, "_load_snapshot", "load", phases), _timed(soda, "run_soda", "soda", phases),
            _timed(runner, "_locate", "locate", phases)]
    if engine == "great_expectations":
        from dativo_provider.quality import gx

        undo.append(_timed(gx, "run_gx_frame", "gx", phases))
    try:
        started = time.perf_counter()
        report = run_contract(path, IcebergTarget(config, TABLE))
        seconds = time.perf_counter() - started
    finally:
        for restore in undo:
            restore()
    counts = {}
    for check in report.checks:
        counts[check.name] = check.observed if check.metric == "rowCount" else check.failing_rows
    errors = [f"{ch.name}: {ch.message}" for ch in report.checks if ch.outcome == "error"]
    return {"seconds": seconds, "counts": counts, "rows": report.rows_checked, "phases": phases,
            "check_errors": errors}


def _catalog(home: Path) -> Any:
    from dativo_provider.iceberg.catalog import embedded_catalog

    return embedded_catalog(home)


def _timed(module: Any, name: str, label: str, phases: dict[str, float]) -> Any:
    """Wrap ``module.name`` so its time adds up in ``phases[label]``; returns the undo callable."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - started

    setattr(module, name, wrapper)
    return lambda: setattr(module, name, original)


def check_soda(home: Path, workdir: Path) -> dict[str, Any]:
    import duckdb
    from soda_core.contracts import verify_contract_locally
    from soda_duckdb.common.data_sources.duckdb_data_source import DuckDBDataSourceImpl

    from dativo_provider.contracts.loader import load_contract
    from dativo_provider.quality.plan import checks_for
    from dativo_provider.quality.soda import compile_soda_contract, dump_yaml

    contract_path = workdir / "contract-soda.yaml"
    contract_path.write_text(contract_yaml("soda"))
    contract = load_contract(contract_path)
    rules = checks_for(contract, contract.datasets[0])
    soda_path = workdir / "soda-contract.yaml"
    soda_path.write_text(dump_yaml(compile_soda_contract(rules, contract.datasets[0], "bench/main/dataset")))
    config = _catalog(home)
    started = time.perf_counter()
    arrow = _iceberg_arrow(config)
    read = time.perf_counter()
    con = duckdb.connect()
    con.register("arrow_data", arrow)
    con.execute("CREATE VIEW dataset AS SELECT * FROM arrow_data")
    source = DuckDBDataSourceImpl.from_existing_cursor(con, "bench")
    verify_started = time.perf_counter()
    session = verify_contract_locally(data_sources=[source], contract_file_path=str(soda_path))
    ended = time.perf_counter()
    by_name = {}
    for contract_result in session.contract_verification_results:
        for check in contract_result.check_results:
            by_name[check.check.name] = _number(check.threshold_value)
    con.close()
    return {"seconds": ended - started, "read_seconds": read - started, "soda_only_seconds": ended - verify_started,
            "counts": by_name, "rows": arrow.num_rows, "check_errors": [str(e) for e in session.get_errors()]}


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_gx(home: Path, workdir: Path) -> dict[str, Any]:
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    config = _catalog(home)
    started = time.perf_counter()
    frame = _iceberg_arrow(config).to_pandas()
    converted = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas(name=f"bench_{time.monotonic_ns()}") \
        .add_dataframe_asset(name="frame").add_batch_definition_whole_dataframe("whole") \
        .get_batch(batch_parameters={"dataframe": frame})
    results = batch.validate(gx_suite(), result_format={"result_format": "BASIC"})
    ended = time.perf_counter()
    counts, errors = {}, []
    for res in results.results:
        name = res.expectation_config.meta["rule"]
        if res.exception_info and res.exception_info.get("raised_exception"):
            errors.append(f"{name}: {res.exception_info.get('exception_message')}")
        value = res.result.get("observed_value") if name == "min_rows" else res.result.get("unexpected_count")
        counts[name] = _number(value)
    return {"seconds": ended - started, "read_seconds": converted - started, "gx_only_seconds": ended - converted,
            "counts": counts, "rows": len(frame), "check_errors": errors}


def run_contender(contender: str, home: Path, workdir: Path) -> dict[str, Any]:
    if contender == "ours":
        return check_ours(home, workdir, "soda")
    if contender == "ours-gx":
        return check_ours(home, workdir, "great_expectations")
    if contender == "soda":
        return check_soda(home, workdir)
    return check_gx(home, workdir)


def child(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run_contender(args.child, Path(args.warm_home), workdir)  # untimed: imports and first-call set-up
    warm = time.perf_counter() - started
    cpu = time.process_time()
    result = run_contender(args.child, Path(args.home), workdir)
    return {**result, "cpu_seconds": time.process_time() - cpu, "warm_call_seconds": warm}


HANDLERS = {name: child for name in CONTENDERS}


# ============================================================================================
# Parent
# ============================================================================================


def engine_of(contender: str) -> str:
    return "great_expectations" if contender in ("gx", "ours-gx") else "soda"


def verify_counts(out: dict[str, Any], rows: int) -> None:
    expected = expected_counts(rows, engine_of(out["contender"]))
    got = out.get("counts") or {}
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    if wrong:
        out["error"] = "counts disagree with the generator (got, expected): " + ", ".join(
            f"{k}={g}≠{e}" for k, (g, e) in wrong.items())
    elif out.get("check_errors"):
        out["error"] = "engine errors: " + "; ".join(out["check_errors"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows in the checked table")
    p.add_argument("--repeats", type=int, default=3, help="runs of ours and soda (median)")
    p.add_argument("--gx-repeats", type=int, default=1, help="runs of gx and ours-gx (slow at 10M)")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma list of {', '.join(CONTENDERS)}")
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--warm-home", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    c.harness_arguments(p, HANDLERS, timeout=1200)
    return p.parse_args(argv)


def stats(runs: list[dict[str, Any]], contender: str) -> dict[str, Any] | None:
    mine = [r for r in runs if r["contender"] == contender]
    ok = [r for r in mine if "error" not in r]
    if not ok:
        return {"contender": contender, "error": mine[0]["error"]} if mine else None
    med = lambda key: c.median([r.get(key) for r in ok])  # noqa: E731
    phases = {k: c.median([r["phases"].get(k) for r in ok]) for k in ok[0].get("phases", {})}
    return {"contender": contender, "runs": len(ok), "seconds": med("seconds"), "best": min(r["seconds"] for r in ok),
            "read_seconds": med("read_seconds"), "soda_only_seconds": med("soda_only_seconds"),
            "gx_only_seconds": med("gx_only_seconds"), "cpu_seconds": med("cpu_seconds"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "noise": c.spread([r["seconds"] for r in ok]),
            "phases": phases, "all_seconds": [round(r["seconds"], 3) for r in ok]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return c.child_main(HANDLERS, args)
    wanted = [w.strip() for w in args.contenders.split(",") if w.strip()]
    info = c.machine_info()
    print(f"dativo contract-check benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {info['cpus']} CPUs, "
          f"Python {info['python']}, pyarrow {info['pyarrow']}, pyiceberg {info['pyiceberg']}; code "
          f"{info.get('git_commit')}{'+uncommitted' if info.get('git_dirty') else ''} "
          f"(dativo_provider sha1 {info['engine_tree_sha1']})")
    print(c.MEASURING_NOTE.replace("1,000-row bench.wide_warm table", f"{WARM_ROWS:,}-row table of the same shape"))
    data_dir = c.SCRATCH_DIR / "contract-data"
    started = time.perf_counter()
    home, warm_home = data_dir / f"rows-{args.rows}", data_dir / f"rows-{WARM_ROWS}"
    build_table(home, args.rows)
    build_table(warm_home, WARM_ROWS)
    print(f"table {TABLE}: {args.rows:,} rows × 10 columns under {home} ({time.perf_counter() - started:.1f}s "
          f"to build or find); violations per rule: {violation_counts(args.rows)}")
    warm = c.warm_up(Path(__file__), WARM_UP_MODULES)
    print(f"warm-up import child: {warm['process_seconds']:.1f}s"
          + (f" (not importable: {', '.join(sorted(warm['failed']))})" if warm["failed"] else ""))

    runs: list[dict[str, Any]] = []
    for repeat in range(max(args.repeats, args.gx_repeats)):
        for contender in wanted:
            limit = args.gx_repeats if engine_of(contender) == "great_expectations" else args.repeats
            if repeat >= limit:
                continue
            workdir = c.new_workdir(f"contract-{contender}")
            argv = [sys.executable, __file__, "--child", contender, "--home", str(home), "--warm-home",
                    str(warm_home), "--workdir", str(workdir), "--result", str(workdir / "result.json")]
            busy = c.wait_for_quiet(args.quiet_cpu, args.quiet_wait)
            out = c.run_child(argv, timeout=args.timeout, log=c.SCRATCH_DIR / f"contract-{contender}-{repeat}.log")
            out.update(contender=contender, repeat=repeat, busy_cpu_pct_before=busy)
            if "error" not in out:
                verify_counts(out, args.rows)
            runs.append(out)
            status = out.get("error") or (
                f"{out['seconds']:.2f}s  peak {out['peak_rss_mb']:.0f} MB  cpu {out['cpu_seconds']:.1f}s  "
                f"busy-before {busy:.0f}%  " + "  ".join(f"{k} {v:.2f}s" for k, v in out.get("phases", {}).items()))
            print(f"  [#{repeat + 1}] {contender:8s} {status}", flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
    payload = report(runs, wanted, args.rows)
    payload.update(machine=info, warm_up=warm, measuring=c.MEASURING_NOTE, args=vars(args), runs=runs)
    path = c.write_results("contract_check", payload)
    print(f"results: {path.relative_to(c.REPO_DIR)}")
    return 0 if all("error" not in s for s in payload["stats"]) else 1


def report(runs: list[dict[str, Any]], wanted: list[str], rows: int) -> dict[str, Any]:
    all_stats = [s for name in wanted if (s := stats(runs, name))]
    headers = ["contender", "rows", "median s", "read s", "engine-only s", "peak RSS MB", "best s", "CPU s",
               "runs", "noise"]
    table = []
    for s in all_stats:
        if "error" in s:
            table.append([s["contender"], rows, "ERROR (below)"] + [None] * 7)
            continue
        ph = s["phases"]
        read = ph.get("load") if s["contender"].startswith("ours") else s["read_seconds"]
        engine = (ph.get("soda") or ph.get("gx")) if s["contender"].startswith("ours") else (
            s["soda_only_seconds"] or s["gx_only_seconds"])
        table.append([s["contender"], rows, s["seconds"], read, engine, s["peak_rss_mb"], s["best"],
                      s["cpu_seconds"], s["runs"], s["noise"]])
    print("\n" + c.format_table(headers, table))
    for s in all_stats:
        if "error" in s:
            print(f"  {s['contender']}: {s['error']}")
        elif s["phases"]:
            print(f"  {s['contender']} phases (median s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in s["phases"].items() if v is not None)
                  + f", other {s['seconds'] - sum(v for v in s['phases'].values() if v):.2f}")
    by = {s["contender"]: s for s in all_stats if "error" not in s}
    ratios = {}
    for name, (a, b) in {"ours_vs_soda": ("ours", "soda"), "ours_vs_gx": ("ours", "gx"),
                         "ours-gx_vs_gx": ("ours-gx", "gx"), "ours_vs_ours-gx": ("ours", "ours-gx")}.items():
        if a in by and b in by:
            ratios[name] = by[a]["seconds"] / by[b]["seconds"]
    if "ours" in by and "soda" in by and by["soda"].get("soda_only_seconds"):
        ours_load = by["ours"]["phases"].get("load") or 0
        ratios["ours_minus_load_vs_soda_only"] = (by["ours"]["seconds"] - ours_load) / by["soda"]["soda_only_seconds"]
    print("\nRatios (time, lower is better for ours): " + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
    if "ours_vs_soda" in ratios:
        met = ratios["ours_vs_soda"] <= GOALS["ours_vs_soda"]
        print(f"goal: ours ≤ 1.10 × Soda directly → {ratios['ours_vs_soda']:.2f} ({'met' if met else 'NOT met'})")
    print("counts: every contender's per-rule failing counts were checked against the generator "
          f"({expected_counts(rows, 'soda')}: id_unique counts every row of a repeated id)")
    return {"stats": all_stats, "ratios": ratios, "rows": rows, "expected": violation_counts(rows)}


if __name__ == "__main__":
    sys.exit(main())
