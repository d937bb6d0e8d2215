"""The README's first command, ``dev/demo``, runs from start to end and shows what the README says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.snippets import REPO


# dev/demo installs and runs Airflow 3.3 in .venv: the test is defined in that virtualenv only (the
# Airflow 2.11 run of the suite happens in .venv-af2).
RUNS_IN_DEMO_VENV = Path(sys.prefix).resolve() == (REPO / ".venv").resolve()


if RUNS_IN_DEMO_VENV:

    @pytest.mark.timeout(900)
    def test_dev_demo_loads_quarantines_erases_and_checks_drift(tmp_path):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "DATIVO"))}
        env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
        done = subprocess.run([str(REPO / "dev" / "demo")], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        out = done.stdout
        for dag_id in ("example_files_to_iceberg", "example_contract_quarantine", "example_dsr", "example_drift"):
            assert re.search(rf"^{dag_id}: success in ", out, re.M), out
        assert re.search(r"^examples\.orders +2100 ", out, re.M), out
        assert "2106 rows published, 4 held back in examples.contract_orders_quarantine" in out
        assert "signature (ed25519): valid" in out and "customer 87 rows left in examples.customers: 0" in out

        # The drift verdict is the example DAG's own; each column line must be backed by the JSON it wrote.
        (verdict,) = re.findall(r"^drift of examples\.drift_orders against its 'training' tag: (.*)$", out, re.M)
        assert re.fullmatch(r"(DRIFT|no drift) \(\d/4 columns drifted\)", verdict), out
        for column in ("quantity", "amount", "currency", "status"):
            assert re.search(rf"^  {column} +(numeric|categorical) ", out, re.M), out
        (report,) = re.findall(r"^  report: (.*\.html)$", out, re.M)
        assert Path(report).read_text().lstrip().lower().startswith("<!doctype html")

        (verify,) = re.findall(r"verify it yourself: (dativo certificate verify .*)$", out, re.M)
        checked = subprocess.run(verify.split(), env={**env, "PATH": f"{REPO / '.venv/bin'}:{env['PATH']}"},
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0 and ": VALID: " in checked.stdout, checked.stdout + checked.stderr


SAMPLE_DATA = REPO / "dativo_provider" / "sample_data"


def sample_rows() -> dict[str, int]:
    """Rows of each bundled sample file set, read from the files themselves."""
    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet

    return {
        "examples.customers": pyarrow.csv.read_csv(SAMPLE_DATA / "customers.csv").num_rows,
        "examples.orders": sum(pyarrow.csv.read_csv(path).num_rows for path in SAMPLE_DATA.glob("orders_*.csv")),
        "examples.events": pyarrow.json.read_json(SAMPLE_DATA / "events.jsonl").num_rows,
        "examples.products": pyarrow.parquet.read_table(SAMPLE_DATA / "products.parquet").num_rows,
    }


if RUNS_IN_DEMO_VENV:

    @pytest.mark.timeout(900)
    def test_dev_demo_rest_runs_on_a_rest_catalog_and_s3_with_secrets_masked(tmp_path):
        import json
        import socket

        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "DATIVO"))}
        home = tmp_path / "airflow-home"
        env["AIRFLOW_HOME"] = str(home)
        done = subprocess.run([str(REPO / "dev" / "demo"), "--rest"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        out = done.stdout
        for dag_id in ("example_files_to_iceberg", "example_contract_quarantine", "example_dsr", "example_drift"):
            assert re.search(rf"^{dag_id}: success in ", out, re.M), out

        # The connection the DAGs used: printed masked, kept with its secrets in a file only the user reads.
        kept = home / "rest-lake" / "connection.json"
        assert kept.stat().st_mode & 0o777 == 0o600
        connection = json.loads(kept.read_text())["iceberg_default"]
        secret = connection["password"]
        assert connection["extra"]["s3.secret-access-key"] == secret and len(secret) >= 20
        (shown,) = re.findall(r"^  AIRFLOW_CONN_ICEBERG_DEFAULT='(.*)'$", out, re.M)
        assert json.loads(shown) == {**connection, "password": "***",
                                     "extra": {**connection["extra"], "s3.secret-access-key": "***"}}
        assert connection["conn_type"] == "iceberg" and connection["extra"]["warehouse"] == "lake"
        assert f"catalog {connection['host']}, warehouse lake" in out
        # Not in the output, nor in any file the run wrote except that one (Airflow's task log included).
        assert secret not in out + done.stderr
        leaked = [path for path in home.rglob("*") if path.is_file() and path != kept
                  and secret.encode() in path.read_bytes()]
        assert leaked == []

        # The bundled sample data, every row, in tables stored in the S3 bucket (listed there, not asked
        # of the catalog).
        for table, rows in sample_rows().items():
            assert re.search(rf"^{re.escape(table)} +{rows} ", out, re.M), (table, rows, out)
            name = table.split(".")[1]
            (listed,) = re.findall(rf"^  {re.escape(table)} +s3://lake/examples/{name}  (\d+) data files "
                                   rf"\(([\d,]+) bytes\), (\d+) metadata files$", out, re.M)
            data_files, data_bytes, metadata_files = int(listed[0]), int(listed[1].replace(",", "")), int(listed[2])
            assert data_files >= 1 and data_bytes > 1000 and metadata_files >= 2, (table, listed)
        assert "2106 rows published, 4 held back in examples.contract_orders_quarantine" in out
        assert "signature (ed25519): valid" in out and "customer 87 rows left in examples.customers: 0" in out

        # weed mini is stopped: its catalog port no longer answers.
        assert out.rstrip().endswith("weed mini stopped")
        port = int(connection["host"].rsplit(":", 1)[1])
        with socket.socket() as probe, pytest.raises(OSError):
            probe.settimeout(2)
            probe.connect(("127.0.0.1", port))
