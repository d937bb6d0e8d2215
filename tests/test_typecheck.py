"""mypy over the engine packages, configured by ``[tool.mypy]`` in pyproject.toml (CI runs this file)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dativo_provider"
#: The Airflow layer, which imports Airflow; everything else in the package is engine.
AIRFLOW_LAYER = {"hooks", "operators", "sensors", "triggers", "plugins"}
#: Data files shipped with the package, not code.
NOT_CODE = {"sample_data"}


def _mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def test_every_engine_package_is_type_checked() -> None:
    checked = set(_mypy_config()["files"])
    engine = {
        f"dativo_provider/{p.name}" for p in PACKAGE.iterdir()
        if (p / "__init__.py").is_file() and p.name not in AIRFLOW_LAYER | NOT_CODE
    }
    assert engine <= checked, f"engine packages mypy does not check: {sorted(engine - checked)}"


def test_engine_packages_type_check() -> None:
    # The cache lives in the virtualenv: per Python environment, out of the repository, warm next time.
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "--cache-dir", str(Path(sys.prefix) / ".mypy_cache")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"mypy failed (exit {result.returncode}):\n{output}", pytrace=False)
    checked = re.search(r"Success: no issues found in (\d+) source files", output)
    assert checked and int(checked.group(1)) >= 80, f"mypy checked too few files:\n{output}"
