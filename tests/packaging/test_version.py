"""One version everywhere: the package, its installed metadata, the provider info and ``dativo --version``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import dativo_provider
from dativo_provider.get_provider_info import get_provider_info


def test_the_cli_the_provider_info_and_the_metadata_report_the_package_version():
    dativo = Path(sys.executable).parent / "dativo"
    shown = subprocess.run([str(dativo), "--version"], capture_output=True, text=True, check=True).stdout
    assert shown == f"dativo-airflow-provider {dativo_provider.__version__}\n"
    assert version("dativo-airflow-provider") == dativo_provider.__version__
    assert get_provider_info()["versions"] == [dativo_provider.__version__]
