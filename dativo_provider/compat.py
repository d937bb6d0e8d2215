"""The one version-compatibility module: Airflow classes for Airflow 2.11 and 3.x.

Names come from ``airflow.providers.common.compat.sdk`` when the installed common-compat has it.
Older common-compat releases (1.7.0, which MWAA pins for Airflow 2.11, ships no ``sdk`` module) fall
back to the import paths of the running Airflow major version.
"""

from __future__ import annotations

from airflow import __version__ as _airflow_version
from packaging.version import Version

AIRFLOW_V_3_0_PLUS = Version(Version(_airflow_version).base_version) >= Version("3.0.0")

try:
    from airflow.providers.common.compat.sdk import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        Asset,
        AssetAlias,
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        BranchMixIn,
        Context,
        TaskGroup,
        mask_secret,
    )
except ImportError:  # pragma: no cover - exercised by tests/airflow/test_compat.py in a subprocess
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset, AssetAlias, BaseHook, BaseOperator, BaseSensorOperator, Context, TaskGroup
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
        )
        from airflow.sdk.log import mask_secret
        try:  # Airflow 3.1+: the Task SDK's own (the standard provider's imports common-compat's sdk)
            from airflow.sdk.bases.branch import BranchMixIn
        except ImportError:  # Airflow 3.0
            from airflow.providers.standard.operators.branch import BranchMixIn
    else:
        from airflow.datasets import Dataset as Asset
        from airflow.datasets import DatasetAlias as AssetAlias
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
        )
        from airflow.hooks.base import BaseHook
        from airflow.models.baseoperator import BaseOperator
        from airflow.operators.branch import BranchMixIn
        from airflow.sensors.base import BaseSensorOperator
        from airflow.utils.context import Context
        from airflow.utils.log.secrets_masker import mask_secret
        from airflow.utils.task_group import TaskGroup

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "Asset",
    "AssetAlias",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BranchMixIn",
    "Context",
    "TaskGroup",
    "mask_secret",
]
