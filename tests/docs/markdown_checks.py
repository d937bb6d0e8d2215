"""Checks shared by the example-DAG and doc-snippet tests: reST left in Markdown, connection types."""

from __future__ import annotations

import json
import re

# Connection types the provider reads by their fields without their own Airflow provider installed
# (docs/connections.md); every other type a doc names must be registered by an installed provider.
OFFICIAL_TYPES_READ_WITHOUT_PROVIDER = frozenset({"postgres", "mysql", "aws", "google_cloud_platform"})

_REST_MARKUP = (
    (re.compile(r"::[ \t]*$", re.M), "a reST literal-block marker (a line ending in '::')"),
    (re.compile(r"^\s*\.\. \w", re.M), "a reST directive or comment ('.. ')"),
    (re.compile(r"``[^`\n]+``"), "reST inline literal (``double backticks``)"),
    (re.compile(r":(?:param|class|func|meth|ref|doc|mod|attr)[ :`]"), "a reST role or field"),
)


def rest_markup(text: str) -> list[str]:
    """What in ``text`` is reStructuredText rather than Markdown (empty when none)."""
    return [f"{why}: {match.group(0).strip()!r}" for pattern, why in _REST_MARKUP for match in pattern.finditer(text)]


def named_connection_types(text: str) -> set[str]:
    """The ``conn_type`` values of the connection JSON documents quoted in ``text``."""
    return set(re.findall(r'"conn_type":\s*"([^"]+)"', text))


def registered_connection_types() -> set[str]:
    """Connection types of every installed provider (ours included), plus the official types we read."""
    try:  # Airflow 3: the task runtime's registry (ProvidersManager.hooks is deprecated there)
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Providers
    except ImportError:  # Airflow 2
        from airflow.providers_manager import ProvidersManager as Providers

    return set(Providers().hooks) | OFFICIAL_TYPES_READ_WITHOUT_PROVIDER


def connection_problems(conn_id: str, value: str, known_types: set[str]) -> list[str]:
    """Why an ``AIRFLOW_CONN_<ID>`` value would not give Airflow a usable connection (empty when fine)."""
    try:
        fields = json.loads(value)
    except ValueError as exc:
        return [f"{conn_id}: not JSON ({exc})"]
    if not isinstance(fields, dict) or not fields.get("conn_type"):
        return [f"{conn_id}: no conn_type"]
    if fields["conn_type"] not in known_types:
        return [f"{conn_id}: conn_type {fields['conn_type']!r} is registered by no installed provider"]
    from airflow.models.connection import Connection

    try:
        Connection.from_json(value, conn_id=conn_id)
    except Exception as exc:  # noqa: BLE001 - any refusal is the finding
        return [f"{conn_id}: Airflow refuses it ({type(exc).__name__}: {exc})"]
    return []
