"""dativo_provider.compat resolves every name, with and without common-compat's ``sdk`` module."""

from __future__ import annotations

import subprocess
import sys

from dativo_provider import compat

NAMES = [name for name in compat.__all__ if name != "AIRFLOW_V_3_0_PLUS"]

# common-compat 1.7.0 (MWAA's pin for Airflow 2.11) has no sdk module: hide it and compare.
WITHOUT_SDK = f"""
import sys
import airflow.providers.common.compat.sdk as sdk
expected = {{name: getattr(sdk, name) for name in {NAMES!r}}}
sys.modules["airflow.providers.common.compat.sdk"] = None
import dativo_provider.compat as compat
different = [name for name, value in expected.items() if getattr(compat, name) is not value]
assert not different, different
print("ok")
"""


def test_names_resolve_through_common_compat():
    from airflow.providers.common.compat import sdk

    for name in NAMES:
        assert getattr(compat, name) is getattr(sdk, name), name


def test_fallback_without_common_compat_sdk_gives_the_same_classes():
    run = subprocess.run([sys.executable, "-c", WITHOUT_SDK], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-3000:]
