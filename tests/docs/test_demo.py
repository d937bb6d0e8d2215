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
