"""Feast online materialization benchmark (issue 13): ours vs ``feast materialize``, 1M entities x 10 features.

One table, built once per run under ``$TMPDIR/dativo-bench/feast-*``: 1M rows (one per entity,
``customer_id`` int64, ``feature_ts``), ten features (Int64 x3, Float64 x3, Float32, Int32, String,
Bool; 5 % nulls), as an Iceberg table (embedded SQLite catalog) and as the Parquet file Feast's
``FileSource`` reads.

Contenders, each in a fresh child process (its peak RSS its own), for each store (SQLite file; the Redis
server on 127.0.0.1:6379, db 7, a project of its own):

* ``feast``: ``FeatureStore.materialize(start, end)`` over the Parquet file (what ``feast materialize``
  runs), registry and view applied before the clock starts;
* ``ours``: :func:`dativo_provider.ml.feast_online.materialize_online` from the Iceberg table (full run);
  afterwards, untimed, 1,000 random entities read back through ``get_online_features`` from both
  stores must be equal;
* ``ours-incremental``: 10,000 of the 1M entities get a newer row (one Iceberg append, untimed), then
  ``materialize_online`` again: it reads only the appended file and the old snapshot's key and time
  columns, and writes the 10,000 entities.

Imports happen before the clock starts in every child (Feast: an untimed ``materialize`` of an empty
window first). Not run in CI.

Usage::

    python bench/feast_materialize.py                 # 1M entities, SQLite and Redis, ≈ 10 min
    python bench/feast_materialize.py --entities 100000 --stores sqlite
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TABLE = "bench.customer_stats"
REDIS_DB = 7
CHANGED = 10_000


def _features() -> dict[str, tuple[Any, str]]:
    import pyarrow as pa

    return {"orders_7d": (pa.int64(), "Int64"), "orders_30d": (pa.int64(), "Int64"),
            "orders_90d": (pa.int64(), "Int64"), "spend_7d": (pa.float64(), "Float64"),
            "spend_30d": (pa.float64(), "Float64"), "spend_90d": (pa.float64(), "Float64"),
            "score": (pa.float32(), "Float32"), "visits": (pa.int32(), "Int32"),
            "segment": (pa.string(), "String"), "vip": (pa.bool_(), "Bool")}


def _online(store: str, workdir: Path, contender: str) -> Any:
    from tests.ml.feast_fixtures import redis_online, sqlite_online

    return sqlite_online(workdir / f"online-{contender}.db") if store == "sqlite" else redis_online(REDIS_DB)


def _store(args: Any, contender: str) -> Any:
    """The Feast store of one contender: its own registry and project, the shared Parquet file."""
    from feast import FeatureStore, RepoConfig

    workdir = Path(args.workdir)
    project = f"{args.tag}_{contender}_{args.store}"
    config = RepoConfig(project=project, provider="local", registry=str(workdir / f"{project}.db"),
                        online_store=_online(args.store, workdir, contender), entity_key_serialization_version=3)
    return FeatureStore(config=config)


def child_setup(args: Any) -> dict[str, Any]:
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import embedded_catalog
    from tests.ml.feast_fixtures import feast_store, rows, write_parquet

    workdir = Path(args.workdir)
    started = time.perf_counter()
    data = rows(args.entities, versions=1, features=_features(), wide=False)
    catalog = embedded_catalog(workdir / "lake")
    catalog.load().create_namespace("bench")
    catalog.load().create_table(TABLE, schema=data.schema).append(data)
    parquet = write_parquet(data, workdir / "features.parquet")
    changed = rows(args.entities, versions=1, seed=99, features=_features(), day=30, wide=False).take(
        pa.array(range(0, args.entities, max(1, args.entities // CHANGED))[:CHANGED]))
    write_parquet(changed, workdir / "changed.parquet")
    for contender in ("feast", "ours"):
        for store in args.stores.split(","):
            project = f"{args.tag}_{contender}_{store}"
            feast_store(workdir, _online(store, workdir, contender), parquet, project, features=_features())
    return {"seconds": time.perf_counter() - started, "rows": data.num_rows, "changed": changed.num_rows}


def child_feast(args: Any) -> dict[str, Any]:
    from tests.ml.feast_fixtures import T0

    store = _store(args, "feast")
    store.materialize(T0 - dt.timedelta(days=30), T0 - dt.timedelta(days=29))  # warm-up: an empty window
    started = time.perf_counter()
    store.materialize(T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=400))
    return {"seconds": time.perf_counter() - started}


def _warm_up(args: Any) -> Any:
    """Imports and first-call set-up out of the clock: the catalog, DuckDB, the encoders, the store client."""
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.ml.feast_encoding import encode_values
    from dativo_provider.ml.transform import connect_duckdb

    catalog = embedded_catalog(Path(args.workdir) / "lake")
    catalog.load().load_table(TABLE).scan(limit=1).to_arrow()
    connect_duckdb().close()
    encode_values(pa.array([1.0]), "DOUBLE")
    import redis  # noqa: F401

    return catalog


def child_ours(args: Any) -> dict[str, Any]:
    import random

    from dativo_provider.ml.feast_online import materialize_online
    from tests.ml.feast_fixtures import VIEW, online_values

    catalog = _warm_up(args)
    store = _store(args, "ours")
    started = time.perf_counter()
    result = materialize_online(catalog, TABLE, store, VIEW, record_target=False)
    seconds = time.perf_counter() - started
    sample = random.Random(5).sample(range(args.entities), 1000)
    ours = online_values(store, sample, _features())
    theirs = online_values(_store(args, "feast"), sample, _features())
    differing = {name: [(sample[i], a, b) for i, (a, b) in enumerate(zip(ours[name], theirs[name])) if a != b][:3]
                 for name in ours}
    return {"seconds": seconds, "result": result.to_dict(), "equal_to_feast_on_1000_entities": ours == theirs,
            "differing": {name: rows for name, rows in differing.items() if rows}}


def child_incremental(args: Any) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dativo_provider.ml.feast_online import materialize_online
    from tests.ml.feast_fixtures import VIEW

    catalog = _warm_up(args)
    table = catalog.load().load_table(TABLE)
    if len(table.snapshots()) == 1:  # the first store's run appends; the next store's reads the same append
        table.append(pq.read_table(Path(args.workdir) / "changed.parquet"))
    store = _store(args, "ours")
    started = time.perf_counter()
    result = materialize_online(catalog, TABLE, store, VIEW, record_target=False)
    return {"seconds": time.perf_counter() - started, "result": result.to_dict()}


HANDLERS = {"setup": child_setup, "feast": child_feast, "ours": child_ours, "ours-incremental": child_incremental}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entities", type=int, default=1_000_000)
    p.add_argument("--stores", default="sqlite,redis")
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--tag", help=argparse.SUPPRESS)
    c.harness_arguments(p, HANDLERS, timeout=1800)
    return p.parse_args(argv)


def _child(args: Any, name: str, store: str, workdir: Path, tag: str) -> dict[str, Any]:
    result = workdir / f"{name}-{store}.json"
    argv = [sys.executable, __file__, "--child", name, "--result", str(result), "--workdir", str(workdir),
            "--store", store, "--tag", tag, "--entities", str(args.entities), "--stores", args.stores]
    busy = c.wait_for_quiet(args.quiet_cpu, args.quiet_wait)
    out = c.run_child(argv, timeout=args.timeout)
    out.update(busy_cpu_pct_before=busy)
    if "error" in out:
        print(f"  {name} {store}: ERROR {out['error']}")
    else:
        print(f"  {name:17s} {store:7s} {out.get('seconds', 0):8.1f} s   peak RSS {out['peak_rss_mb']:7.0f} MB")
    return out


def _cleanup_redis(tag: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    for contender in ("feast", "ours"):
        project = f"{tag}_{contender}_redis"
        batch = []
        for key in client.scan_iter(match=f"*{project}", count=10_000):
            batch.append(key)
            if len(batch) == 10_000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
        client.delete(f"dativo:feast:position:{project}:customer_stats")
    client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return c.child_main(HANDLERS, args)
    workdir = c.new_workdir("feast")
    tag = f"b{int(time.time())}"
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    print(f"Feast materialization: {args.entities:,} entities x 10 features; stores {', '.join(stores)}; {workdir}")
    runs: dict[str, dict[str, Any]] = {"setup": _child(args, "setup", stores[0], workdir, tag)}
    try:
        for name in ("feast", "ours", "ours-incremental"):  # every full run before the table changes
            for store in stores:
                runs[f"{name}/{store}"] = _child(args, name, store, workdir, tag)
    finally:
        if "redis" in stores:
            _cleanup_redis(tag)
    summary = {}
    for store in stores:
        feast, ours, incremental = (runs[f"{name}/{store}"] for name in ("feast", "ours", "ours-incremental"))
        if any("error" in run for run in (feast, ours, incremental)):
            continue
        summary[store] = {
            "feast_s": feast["seconds"], "ours_s": ours["seconds"], "speedup": feast["seconds"] / ours["seconds"],
            "feast_peak_rss_mb": feast["peak_rss_mb"], "ours_peak_rss_mb": ours["peak_rss_mb"],
            "incremental_s": incremental["seconds"], "incremental_peak_rss_mb": incremental["peak_rss_mb"],
            "incremental_fraction_of_full": incremental["seconds"] / ours["seconds"],
            "incremental_entities_written": incremental["result"]["entities_written"],
            "equal_to_feast": ours["equal_to_feast_on_1000_entities"]}
        s = summary[store]
        print(f"{store}: ours {s['speedup']:.1f}x faster than feast materialize "
              f"({s['ours_s']:.1f} s vs {s['feast_s']:.1f} s; peak RSS {s['ours_peak_rss_mb']:.0f} MB vs "
              f"{s['feast_peak_rss_mb']:.0f} MB); incremental {CHANGED:,} of {args.entities:,}: "
              f"{s['incremental_s']:.2f} s = 1/{1 / s['incremental_fraction_of_full']:.0f} of a full run "
              f"({s['incremental_entities_written']:,} written); values equal Feast's: {s['equal_to_feast']}")
    payload = {"machine": c.machine_info(), "args": vars(args), "runs": runs, "summary": summary}
    path = c.write_results("feast_materialize", payload)
    print(f"results: {path.relative_to(c.REPO_DIR)}")
    print(json.dumps(summary, indent=1))
    return 0 if len(summary) == len(stores) else 1


if __name__ == "__main__":
    sys.exit(main())
