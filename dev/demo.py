"""Run the example DAGs once with dag.test() and report what landed in Iceberg.

1. example_files_to_iceberg: the bundled sample files into four tables.
2. example_contract_quarantine: the same orders plus ten late ones, loaded under
   contracts/orders.odcs.yaml: the four rows that break the contract are held back in a quarantine
   table with the checks they failed, the rest is published.
3. example_dsr, triggered with an erasure request for customer 87 (as Airflow's REST API would):
   every row of that customer is deleted, old snapshots and files purged, every file decoded to
   verify, and a signed certificate written; the demo verifies the certificate.
4. example_drift: January's orders tagged ``training``, February and March appended, the new snapshot
   checked against the tag; the demo prints the drift verdict per column and where the HTML report is.

With ``--rest`` every DAG runs against a real Iceberg REST catalog with S3 storage (SeaweedFS ``weed
mini``, tests/rest_catalog.py) instead of the embedded catalog. The DAGs are unchanged: only the
``iceberg_default`` connection differs, and it is the connection a production REST catalog needs (the
official ``iceberg`` type), printed with its secrets masked. The demo then lists the tables' objects in
the S3 bucket itself, and stops ``weed`` at the end.

Called by ``dev/demo``, which sets AIRFLOW_HOME and the DAGs folder and migrates the metadata DB.
Airflow's own task log goes to the file named by the first argument; stdout gets the report.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, TextIO

DAG_RUNS = (
    ("example_files_to_iceberg", None),
    ("example_contract_quarantine", None),
    ("example_dsr", {"request_id": "demo-erasure-87", "kind": "erasure", "subject_kind": "customer",
                     "subject_ids": ["87"], "emails": []}),
    ("example_drift", None),
)
SUBJECT = 87
REPO = Path(__file__).resolve().parents[1]
#: Connection fields and extras that hold a secret: never printed.
SECRET_WORDS = ("password", "secret", "token", "credential")
TABLES = ("examples.customers", "examples.orders", "examples.events", "examples.products")
CONTRACT_TABLE = "examples.contract_orders"


def run_dag(dag_id: str, conf: dict | None, log: TextIO) -> str:
    """Run the DAG, Airflow's output into ``log`` (kept open: Airflow's loggers hold on to it)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models import DagBag

    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, force=True)
        bag = DagBag()
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        dag_run = bag.get_dag(dag_id).test(run_conf=conf) if conf else bag.get_dag(dag_id).test()
    return str(dag_run.state)


def report() -> None:
    """Per table: rows, the current snapshot and what its commit added."""
    from dativo_provider.hooks.iceberg import IcebergHook

    catalog = IcebergHook().get_conn()
    print(f"{'table':<22}{'rows':>8}  {'snapshot':<20}{'last commit added rows / files':>32}")
    for name in TABLES:
        table = catalog.load_table(name)
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot else {}
        rows = table.scan().to_arrow().num_rows
        print(
            f"{name:<22}{rows:>8}  {snapshot.snapshot_id if snapshot else '-':<20}"
            f"{summary.get('added-records') or '0':>25} / {summary.get('added-data-files') or '0'}"
        )
    properties = IcebergHook().get_catalog_config().properties
    print(f"catalog {properties['uri']}, warehouse {properties['warehouse']}")


def report_contract() -> None:
    """What the contract let through and what it held back, and why."""
    import pyarrow.compute as pc

    from dativo_provider.hooks.iceberg import IcebergHook

    catalog = IcebergHook().get_conn()
    published = catalog.load_table(CONTRACT_TABLE).scan().to_arrow()
    held = catalog.load_table(f"{CONTRACT_TABLE}_quarantine").scan().to_arrow()
    print(f"contracts/orders.odcs.yaml on {CONTRACT_TABLE}: {published.num_rows} rows published, "
          f"{held.num_rows} held back in {CONTRACT_TABLE}_quarantine:")
    for row in held.sort_by("order_id").to_pylist():
        print(f"  order {row['order_id']} (currency {row['currency']}, status {row['status']}, customer "
              f"{row['customer_id']}): {row['_dativo_reason']}")
    late = pc.sum(pc.greater_equal(published["order_id"], 2024040000)).as_py()
    print(f"  of the 10 late orders {late} were published; release with `airflow dags trigger "
          f"example_contract_quarantine -c '{{\"release\": true}}'` after fixing the rule")


def dsr_keys() -> Any:
    """Demo keys for example_dsr, as the Airflow connections it reads (a real deployment keeps them in
    a secrets backend). Returns the signing key's public half, to verify the certificate with."""
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    os.environ["AIRFLOW_CONN_DATIVO_DSR_SIGNING"] = json.dumps(
        {"conn_type": "generic", "password": pem, "extra": {"key_id": "demo-signing-key"}})
    os.environ["AIRFLOW_CONN_DATIVO_DSR_HASH_KEY"] = json.dumps(
        {"conn_type": "generic", "password": secrets.token_hex(32)})
    return private.public_key()


def report_erasure(public_key: Any) -> None:
    """The certificate: what was erased, the verification, and its signature checked."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from dativo_provider.hooks.iceberg import IcebergHook
    from dativo_provider.privacy.certificate import VerifyingKey, verify_certificate

    path = Path(os.environ["AIRFLOW_HOME"]) / "dativo" / "dsr" / "certificates" / "demo-erasure-87.json"
    certificate = json.loads(path.read_text())
    print(f"erasure of customer {SUBJECT}: certificate {path}")
    for table, figures in sorted(certificate["tables"].items()):
        print(f"  {table:<40} rows deleted {figures['rows_deleted']:>3}, files rewritten "
              f"{figures['files_rewritten']}, snapshots expired {figures['snapshots_expired']}")
    verification = certificate["verification"]
    print(f"  verification: passed={verification['passed']}, files decoded {verification['files_scanned']}")
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    check = verify_certificate(path.read_bytes(), VerifyingKey.ed25519(pem))
    print(f"  signature ({certificate['signature']['algorithm']}): {'valid' if check.valid else check.reason}")
    catalog = IcebergHook().get_conn()
    left = catalog.load_table("examples.customers").scan().to_arrow()
    print(f"  customer {SUBJECT} rows left in examples.customers: "
          f"{sum(1 for c in left['customer_id'].to_pylist() if c == SUBJECT)}")
    public = Path(os.environ["AIRFLOW_HOME"]) / "dativo" / "dsr" / "demo-signing-key.pub"
    public.write_bytes(pem)
    print(f"  verify it yourself: dativo certificate verify {path} --public-key {public}")


def report_drift() -> None:
    """The verdict example_drift wrote (its JSON), one line per column, and the HTML report beside it."""
    home = os.environ.get("DATIVO_HOME") or os.path.join(os.environ["AIRFLOW_HOME"], "dativo")
    written = sorted(Path(home, "drift").glob("drift_orders_*.json"), key=lambda p: p.stat().st_mtime)
    verdict = json.loads(written[-1].read_text())
    print(f"drift of examples.drift_orders against its 'training' tag: "
          f"{'DRIFT' if verdict['dataset_drift'] else 'no drift'} "
          f"({len(verdict['drifted_columns'])}/{verdict['number_of_columns']} columns drifted)")
    for column in verdict["columns"]:
        print(f"  {column['column']:<10} {column['kind']:<12} {column['stattest']:<14} "
              f"{column['value_kind']} {column['value']:.4g} (threshold {column['threshold']}): "
              f"{'drift' if column['drifted'] else 'no drift'}")
    print(f"  report: {written[-1].with_suffix('.html')}")


def rest_connection(lake: Any) -> dict[str, Any]:
    """``iceberg_default`` for a REST catalog with S3 storage, as production sets it: the official
    ``iceberg`` type, the catalog URI as host, the OAuth2 client id and secret as login and password (sent
    as pyiceberg's ``credential``), pyiceberg properties as extras (the warehouse and the S3 file IO)."""
    from tests.rest_catalog import REGION

    return {
        "conn_type": "iceberg",
        "host": lake.catalog_uri,
        "login": lake.access_key_id,
        "password": lake.secret_access_key,
        "extra": {
            "warehouse": lake.warehouse,
            "s3.endpoint": lake.s3_endpoint,
            "s3.region": REGION,
            "s3.access-key-id": lake.access_key_id,
            "s3.secret-access-key": lake.secret_access_key,
        },
    }


def masked(connection: dict[str, Any]) -> dict[str, Any]:
    """The connection with every secret field and extra replaced by ``***``."""
    def hide(key: str, value: Any) -> Any:
        return "***" if any(word in key.lower() for word in SECRET_WORDS) else value

    shown = {key: hide(key, value) for key, value in connection.items() if key != "extra"}
    shown["extra"] = {key: hide(key, value) for key, value in connection.get("extra", {}).items()}
    return shown


def use_rest_lake(lake: Any) -> None:
    """Make ``iceberg_default`` the REST catalog; show it (masked) and keep it, secrets included, in a
    file only this user can read (the lake's keys are new at every start and die with it)."""
    connection = rest_connection(lake)
    os.environ["AIRFLOW_CONN_ICEBERG_DEFAULT"] = json.dumps(connection)
    kept = lake.log_path.parent / "connection.json"
    kept.touch(mode=0o600)
    kept.write_text(json.dumps({"iceberg_default": connection}, indent=2))
    print(f"REST catalog {lake.catalog_uri} and S3 {lake.s3_endpoint} (SeaweedFS weed mini, log "
          f"{lake.log_path}); the connection every DAG uses, secrets masked:")
    print(f"  AIRFLOW_CONN_ICEBERG_DEFAULT='{json.dumps(masked(connection))}'")
    print(f"  with its secrets in {kept} (mode 600; `airflow connections import` reads it)", flush=True)


def report_storage() -> None:
    """Where each table lives, and its objects as the S3 bucket lists them (not as the catalog says)."""
    import urllib.parse

    from pyarrow import fs

    from dativo_provider.hooks.iceberg import IcebergHook

    config = IcebergHook().get_catalog_config()
    properties = config.properties
    endpoint = urllib.parse.urlsplit(properties["s3.endpoint"])
    bucket = fs.S3FileSystem(access_key=properties["s3.access-key-id"],
                             secret_key=properties["s3.secret-access-key"], region=properties["s3.region"],
                             endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
    catalog = config.load()
    print(f"where the tables live (objects listed in the bucket at {properties['s3.endpoint']}):")
    for name in (*TABLES, CONTRACT_TABLE, f"{CONTRACT_TABLE}_quarantine"):
        location = catalog.load_table(name).location()
        objects = bucket.get_file_info(fs.FileSelector(location.removeprefix("s3://"), recursive=True))
        files = [info for info in objects if info.type == fs.FileType.File]
        data = [info for info in files if "/data/" in info.path]
        print(f"  {name:<35} {location}  {len(data)} data files ({sum(f.size for f in data):,} bytes), "
              f"{len(files) - len(data)} metadata files")


def run_demo(rest: bool) -> int:
    public_key = dsr_keys()

    def report_loads() -> None:
        report()
        report_contract()
        if rest:
            report_storage()

    reports = {"example_contract_quarantine": report_loads,
               "example_dsr": lambda: report_erasure(public_key), "example_drift": report_drift}
    with open(sys.argv[1], "w") as log:
        for dag_id, conf in DAG_RUNS:
            started = time.monotonic()
            state = run_dag(dag_id, conf, log)
            print(f"{dag_id}: {state} in {time.monotonic() - started:.1f}s", flush=True)
            if state != "success":
                print(f"see {sys.argv[1]}")
                return 1
            if dag_id in reports:
                reports[dag_id]()
    return 0


def main() -> int:
    if "--rest" not in sys.argv[2:]:
        return run_demo(rest=False)
    import shutil

    sys.path.insert(0, str(REPO))  # tests/rest_catalog.py starts and stops weed mini
    from tests.rest_catalog import local_rest_lake

    home = Path(os.environ["AIRFLOW_HOME"]) / "rest-lake"
    shutil.rmtree(home, ignore_errors=True)  # a new lake every run: its keys are new at every start
    with local_rest_lake(home) as lake:
        use_rest_lake(lake)
        outcome = run_demo(rest=True)
    print("weed mini stopped")
    return outcome


if __name__ == "__main__":
    raise SystemExit(main())
