"""DAG parsing stays light, and the engine never imports airflow."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dativo_provider

PACKAGE = Path(dativo_provider.__file__).parent
AIRFLOW_LAYER = ("hooks", "operators", "sensors", "triggers")
#: The UI plugin: Airflow layer too, with modules for one Airflow major version each (FastAPI or Flask).
PLUGINS = "plugins"
AIRFLOW_MODULES = {"compat.py", "get_provider_info.py", "assets.py"}  # assets.py: the asset-uris handlers
HEAVY = ["pyarrow", "pyiceberg", "pandas", "duckdb", "adbc_driver_postgresql", "connectorx", "soda_core",
         "great_expectations"]

IMPORT_ALL = """
import importlib, json, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def _airflow_layer_modules() -> list[str]:
    modules = []
    for layer in AIRFLOW_LAYER:
        for path in sorted((PACKAGE / layer).glob("*.py")):
            parts = ("dativo_provider", layer) if path.stem == "__init__" else ("dativo_provider", layer, path.stem)
            modules.append(".".join(parts))
    return modules


def test_airflow_layer_imports_no_heavy_library():
    modules = _airflow_layer_modules()
    assert {"dativo_provider.operators.ingest", "dativo_provider.operators.contracts",
            "dativo_provider.sensors.contracts", "dativo_provider.operators.privacy",
            "dativo_provider.hooks.privacy"} <= set(modules)
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules], capture_output=True, text=True, timeout=300, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(run.stdout.splitlines()[-1])}
    assert not loaded & set(HEAVY), f"parse-time imports of {sorted(loaded & set(HEAVY))}"


def test_loading_the_plugin_imports_no_heavy_library():
    # Every Airflow component loads plugins: the page's views and their libraries load on first request.
    run = subprocess.run([sys.executable, "-c", IMPORT_ALL, "dativo_provider.plugins.catalog_page"],
                         capture_output=True, text=True, timeout=300, check=True)
    loaded = {name.split(".")[0] for name in json.loads(run.stdout.splitlines()[-1])}
    assert not loaded & {*HEAVY, "fastapi"}, f"plugin-load imports of {sorted(loaded & {*HEAVY, 'fastapi'})}"


def _engine_files() -> list[Path]:
    return [
        path for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in (*AIRFLOW_LAYER, PLUGINS) and path.name not in AIRFLOW_MODULES
    ]


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_engine_module_imports_airflow():
    files = _engine_files()
    assert any(path.name == "engine.py" for path in files)
    offenders = [str(path.relative_to(PACKAGE)) for path in files if "airflow" in _imported_roots(path)]
    assert not offenders, f"engine modules importing airflow: {offenders}"
