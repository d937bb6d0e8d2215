"""The package as users get it: the wheel and sdist built from this checkout, their contents and
metadata, and the wheel installed into a clean virtualenv with only Airflow (pinned by
``constraints/airflow-3.3.txt``), where ``airflow providers list``, ``dativo --version`` and a copied
example DAG must work with nothing from this repository on ``sys.path``.

Defined on the Airflow 3.3 run of CI only: the clean virtualenv is an Airflow 3.3 one whichever
Airflow runs the suite, so the Airflow 2.11 run would repeat the same minutes. Needs uv (dev/test
installs it into the virtualenv) and the package registry or uv's cache.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import airflow
import pytest
from packaging.version import Version

import dativo_provider
from dativo_provider.iceberg.catalog import embedded_catalog

ROOT = Path(__file__).resolve().parents[2]
VERSION = dativo_provider.__version__
UV = Path(sys.executable).parent / "uv"
EXAMPLE = "example_files_to_iceberg"
#: The rows of the bundled sample data (dativo_provider/sample_data/README.md) per example table.
EXAMPLE_ROWS = {"examples.customers": 1000, "examples.orders": 2100, "examples.events": 1500,
                "examples.products": 120}


def _run(args: list[str | Path], env: dict[str, str], cwd: Path) -> str:
    """Run a command; on failure the assertion shows its output."""
    done = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _uv_env() -> dict[str, str]:
    """This process's environment without its virtualenv, so uv acts only on the paths it is given."""
    return {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}


def _wheel_py_sources(wheel: zipfile.ZipFile) -> dict[str, str]:
    return {name: wheel.read(name).decode() for name in wheel.namelist() if name.endswith(".py")}


if Version(airflow.__version__).release[:2] == (3, 3):
    pytestmark = pytest.mark.packaging

    @pytest.fixture(scope="module")
    def dists(tmp_path_factory) -> dict[str, Path]:
        """The sdist and the wheel, built the way a release is (the wheel from the sdist)."""
        out = tmp_path_factory.mktemp("dist")
        _run([UV, "build", "--out-dir", out, ROOT], _uv_env(), cwd=out)
        (sdist,) = out.glob("*.tar.gz")
        (wheel,) = out.glob("*.whl")
        return {"sdist": sdist, "wheel": wheel}

    @pytest.mark.timeout(600)
    def test_wheel_holds_the_package_its_data_and_licence_and_nothing_of_the_repository(dists):
        with zipfile.ZipFile(dists["wheel"]) as wheel:
            names = set(wheel.namelist())
            sources = _wheel_py_sources(wheel)
        dist_info = f"dativo_airflow_provider-{VERSION}.dist-info"
        assert {name.split("/")[0] for name in names} == {"dativo_provider", dist_info}
        for expected in [
            f"{dist_info}/licenses/LICENSE",
            "dativo_provider/py.typed",
            "dativo_provider/sample_data/customers.csv",
            "dativo_provider/sample_data/products.parquet",
            "dativo_provider/sample_data/checks.py",
            "dativo_provider/sample_data/docs/policies/refunds.md",
            "dativo_provider/sample_data/contracts/orders.odcs.yaml",
            "dativo_provider/sample_data/contracts/customers.odcs.yaml",
        ]:
            assert expected in names
        assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
        # Nothing installed may find files through the repository's layout.
        layout = re.compile(r"parents\[|__file__|(?<!\.)\.\./")
        assert {name for name, text in sources.items() if layout.search(text)} == set()
        licence = (ROOT / "LICENSE").read_text()
        assert "Apache License" in licence and "Version 2.0, January 2004" in licence

    @pytest.mark.timeout(600)
    def test_sdist_holds_the_examples_docs_and_changelog_but_no_tests(dists):
        with tarfile.open(dists["sdist"]) as sdist:
            prefix = f"dativo_airflow_provider-{VERSION}/"
            names = {name.removeprefix(prefix) for name in sdist.getnames()}
        for expected in ["LICENSE", "README.md", "CHANGELOG.md", "PKG-INFO", "pyproject.toml",
                         "dativo_provider/py.typed", "dativo_provider/sample_data/contracts/orders.odcs.yaml",
                         "example_dags/example_files_to_iceberg.py", "example_dags/example_dsr.py",
                         "docs/install.md"]:
            assert expected in names
        top_level = {name.split("/")[0] for name in names}
        assert not top_level & {"tests", "bench", "dev", ".ci", "constraints", "contracts", ".venv"}

    @pytest.mark.timeout(600)
    def test_metadata_names_the_licence_urls_pythons_and_no_development_extras(dists):
        with zipfile.ZipFile(dists["wheel"]) as wheel:
            text = wheel.read(f"dativo_airflow_provider-{VERSION}.dist-info/METADATA").decode()
            entry_points = wheel.read(f"dativo_airflow_provider-{VERSION}.dist-info/entry_points.txt").decode()
        metadata = email.parser.Parser().parsestr(text)
        assert metadata["Name"] == "dativo-airflow-provider" and metadata["Version"] == VERSION
        assert metadata["License-Expression"] == "Apache-2.0"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert metadata["License"] is None  # the deprecated free-text field is gone
        urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
        assert set(urls) >= {"Homepage", "Documentation", "Changelog", "Issues"}
        assert all(url.startswith("https://github.com/dativo-io/dativo-airflow-provider") for url in urls.values())
        assert metadata["Requires-Python"] == ">=3.11"
        # The Python classifiers are exactly the Python CI runs the suite on (this one).
        pythons = {c.rsplit(" :: ", 1)[1] for c in metadata.get_all("Classifier")
                   if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
        assert pythons == {f"{sys.version_info.major}.{sys.version_info.minor}"}
        assert "Typing :: Typed" in metadata.get_all("Classifier")
        extras = set(metadata.get_all("Provides-Extra"))
        assert {"postgres", "mysql", "aws", "google", "openlineage", "quality", "privacy"} <= extras
        assert not extras & {"test", "bench", "dev"}
        requirements = " ".join(metadata.get_all("Requires-Dist"))
        assert not re.search(r"\b(pytest|moto|mypy|dlt|connectorx)\b", requirements)
        assert "provider_info = dativo_provider.get_provider_info:get_provider_info" in entry_points
        assert "dativo = dativo_provider.cli:main" in entry_points

    @pytest.fixture(scope="module")
    def clean_venv(dists, tmp_path_factory) -> Path:
        """A new virtualenv with apache-airflow and the wheel only, pinned like a user's deployment."""
        venv = tmp_path_factory.mktemp("clean") / "venv"
        _run([UV, "venv", "--quiet", "--python", sys.executable, venv], _uv_env(), cwd=venv.parent)
        _run([UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python",
              "-c", ROOT / "constraints" / "airflow-3.3.txt", "apache-airflow", dists["wheel"]],
             _uv_env(), cwd=venv.parent)
        return venv

    @pytest.fixture(scope="module")
    def airflow_env(clean_venv, tmp_path_factory) -> dict[str, str]:
        """An environment for the clean virtualenv's commands: its own AIRFLOW_HOME, nothing inherited."""
        home = tmp_path_factory.mktemp("airflow-home")
        dags = home / "dags"
        dags.mkdir()
        return {
            "PATH": f"{clean_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }

    @pytest.mark.timeout(1200)
    def test_the_installed_wheel_is_airflows_provider_with_nothing_from_the_repository(clean_venv, airflow_env):
        home = Path(airflow_env["AIRFLOW_HOME"])
        python = clean_venv / "bin" / "python"
        where = json.loads(_run([python, "-c", "import dativo_provider, json, sys; "
                                 "print(json.dumps([dativo_provider.__file__, sys.path]))"], airflow_env, home))
        assert Path(where[0]).is_relative_to(clean_venv)
        assert not [entry for entry in where[1] if entry and Path(entry).resolve().is_relative_to(ROOT)]

        assert _run([clean_venv / "bin" / "dativo", "--version"], airflow_env, home).strip() == (
            f"dativo-airflow-provider {VERSION}")

        providers = json.loads(_run([clean_venv / "bin" / "airflow", "providers", "list", "-o", "json"],
                                    airflow_env, home))
        ours = [p for p in providers if p["package_name"] == "dativo-airflow-provider"]
        assert [p["version"] for p in ours] == [VERSION]

    @pytest.mark.timeout(1200)
    def test_an_example_dag_copied_into_a_dags_folder_runs_from_the_installed_wheel(clean_venv, airflow_env):
        home = Path(airflow_env["AIRFLOW_HOME"])
        shutil.copy(ROOT / "example_dags" / f"{EXAMPLE}.py", airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])
        airflow_cli = clean_venv / "bin" / "airflow"
        _run([airflow_cli, "db", "migrate"], airflow_env, home)
        output = _run([airflow_cli, "dags", "test", EXAMPLE, "2024-01-02"], airflow_env, home)
        assert "state=failed" not in output

        # Read back from this process (the repository's pyiceberg), independently of the clean venv.
        catalog = embedded_catalog(home / "dativo").load()
        landed = {table: catalog.load_table(table).scan().to_arrow().num_rows for table in EXAMPLE_ROWS}
        assert landed == EXAMPLE_ROWS
