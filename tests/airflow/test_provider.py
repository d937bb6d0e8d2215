"""The provider is discoverable: entry point, provider info, `airflow providers list`, form fields."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from dativo_provider.get_provider_info import ICEBERG_CONN_FIELDS, get_provider_info

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


def test_connection_types_reuse_official_ones():
    types = {conn["connection-type"]: conn for conn in get_provider_info()["connection-types"]}
    assert {"iceberg", "stripe", "hubspot"} <= set(types)
    assert not set(types) & {"postgres", "mysql", "aws", "google_cloud_platform"}, "official types are reused"
    assert types["iceberg"]["hook-class-name"] == "dativo_provider.hooks.iceberg.IcebergHook"
    assert types["iceberg"]["conn-fields"]["credential"]["schema"]["format"] == "password"


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
        widget = manager.connection_form_widgets[f"extra__iceberg__{field}"]
        assert widget.hook_class_name.endswith("IcebergHook")
    assert manager.field_behaviours["iceberg"]["relabeling"]["host"] == "Catalog URI or host"
