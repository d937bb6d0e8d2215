"""The provider is discoverable: entry point, provider info, `airflow providers list`, form fields."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from dativo_provider.get_provider_info import ICEBERG_CONN_FIELDS, get_provider_info
from dativo_provider.sources.registry import own_connection_types

REQUIRED_KEYS = {"package-name", "name", "description", "versions", "integrations", "hooks", "operators"}


def test_entry_point_returns_provider_info():
    (entry_point,) = [
        ep for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("dativo_provider.")
    ]
    info = entry_point.load()()
    assert REQUIRED_KEYS <= set(info)
    assert info["package-name"] == entry_point.dist.metadata["Name"] == "dativo-airflow-provider"
    assert info["versions"] == [entry_point.dist.version]


def test_our_connection_types_cannot_clash_and_official_ones_are_reused():
    types = {conn["connection-type"]: conn for conn in get_provider_info()["connection-types"]}
    assert set(types) == {"dativo_iceberg", "dativo_stripe", "dativo_hubspot", "dativo_google", "dativo_dsr_key",
                          "dativo_openmetadata"}
    assert types["dativo_iceberg"]["hook-class-name"] == "dativo_provider.hooks.iceberg.IcebergHook"
    assert types["dativo_iceberg"]["conn-fields"]["credential"]["schema"]["format"] == "password"


def test_the_source_registry_feeds_connection_types_hooks_and_integrations():
    info = get_provider_info()
    types = {conn["connection-type"]: conn for conn in info["connection-types"]}
    hook_modules = {module for entry in info["hooks"] for module in entry["python-modules"]}
    integrations = {entry["integration-name"] for entry in info["integrations"]}
    for kind in own_connection_types():
        module, _, name = str(kind.hook).rpartition(".")
        assert types[kind.name]["hook-class-name"] == kind.hook
        assert getattr(importlib.import_module(module), name).conn_type == kind.name
        assert module in hook_modules and kind.integration in integrations
    for entry in info["connection-types"]:
        module, _, name = entry["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == entry["connection-type"] and callable(hook.test_connection)


# A fresh process: ProvidersManager discovers once per process and logs clashes while it does.
_DISCOVER = """
import json, logging
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
from airflow.providers_manager import ProvidersManager  # importing airflow configures logging: hook in after
discovery_log = logging.getLogger("airflow.providers_manager")
discovery_log.addHandler(Keep())
discovery_log.setLevel(logging.WARNING)
manager = ProvidersManager()
manager.initialize_providers_hooks()
print(json.dumps({
    "hooks": {t: manager.hooks[t].hook_class_name for t in manager.hooks if t.startswith("dativo_") or t == "iceberg"},
    "widgets": sorted(k for k in manager.connection_form_widgets if k.startswith("extra__dativo_iceberg__")),
    "relabeling": {t: manager.field_behaviours[t]["relabeling"] for t in ("iceberg", "dativo_iceberg")},
    "warnings": records,
}))
"""


def test_both_iceberg_forms_register_beside_the_official_provider():
    assert importlib.metadata.version("apache-airflow-providers-apache-iceberg")
    found = subprocess.run([sys.executable, "-c", _DISCOVER], capture_output=True, text=True, check=True,
                           env=os.environ, timeout=300)
    result = json.loads(found.stdout.strip().splitlines()[-1])
    assert result["hooks"] == {
        "iceberg": "airflow.providers.apache.iceberg.hooks.iceberg.IcebergHook",
        "dativo_iceberg": "dativo_provider.hooks.iceberg.IcebergHook",
        "dativo_stripe": "dativo_provider.hooks.stripe.StripeHook",
        "dativo_hubspot": "dativo_provider.hooks.hubspot.HubSpotHook",
        "dativo_google": "dativo_provider.hooks.google.GoogleHook",
        "dativo_dsr_key": "dativo_provider.hooks.privacy.DsrKeyHook",
        "dativo_openmetadata": "dativo_provider.hooks.openmetadata.OpenMetadataHook",
    }
    assert result["widgets"] == sorted(f"extra__dativo_iceberg__{field}" for field in ICEBERG_CONN_FIELDS)
    assert result["relabeling"]["iceberg"]["host"] == "Catalog URI"  # the official form, untouched
    assert result["relabeling"]["dativo_iceberg"]["host"] == "Catalog URI or host"
    clashes = [w for w in result["warnings"] if "already" in w and ("dativo" in w or "iceberg" in w)]
    assert clashes == []


def test_airflow_providers_list_shows_the_provider(airflow_db: Path):
    airflow = Path(sys.executable).parent / "airflow"
    listed = subprocess.run(
        [str(airflow), "providers", "list", "--output", "plain"],
        capture_output=True, text=True, check=True, env=os.environ, timeout=300,
    )
    assert "dativo-airflow-provider" in listed.stdout


def test_providers_manager_knows_the_iceberg_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    for field in ICEBERG_CONN_FIELDS:
        widget = manager.connection_form_widgets[f"extra__dativo_iceberg__{field}"]
        assert widget.hook_class_name.endswith("IcebergHook")
    assert manager.field_behaviours["dativo_iceberg"]["relabeling"]["host"] == "Catalog URI or host"
