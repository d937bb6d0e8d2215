"""``test_connection`` for every hook: ``(ok, message)`` as Airflow's UI and CLI expect, never a secret.

Airflow calls ``hook.test_connection()`` for ``airflow connections test`` and the UI's Test button.
A failure is reported, not raised: the message names what failed, with every secret the connection
holds replaced by ``***`` (the UI and the CLI print it outside Airflow's log masking).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dativo_provider.exceptions import redact

#: Extra names whose values are secrets (the password field always is).
_SECRET_MARKERS = ("password", "secret", "token", "credential", "private_key", "keyfile")


def connection_test(check: Callable[[], str], secrets: Callable[[], Iterable[str | None]]) -> tuple[bool, str]:
    """Run ``check`` (it returns what answered); on any error, ``False`` and a secret-free message.

    :param check: does the cheap real call and describes the answer.
    :param secrets: the connection's secrets, asked for only to scrub a failure's message.
    """
    try:
        return True, check()
    except Exception as exc:  # a connection test reports every failure rather than raising it
        message = f"{type(exc).__name__}: {exc}"
        try:
            known = tuple(secrets())
        except Exception:  # the connection itself could not be read: nothing more to scrub
            known = ()
        return False, redact(message, known)


def connection_secrets(conn: Any) -> tuple[str, ...]:
    """The password, a password inside a URI host, and every extra value whose name marks a secret."""
    found = [*_with_nested(conn.password), _uri_password(conn.host)]
    found += _secret_values(conn.extra_dejson or {})
    return tuple(value for value in found if isinstance(value, str) and value)


def _uri_password(host: str | None) -> str | None:
    if not host or "://" not in host:
        return None
    password = urllib.parse.urlsplit(host).password
    return urllib.parse.unquote(password) if password else None


def _secret_values(extras: Mapping[str, Any]) -> list[str]:
    values: list[str] = []
    for key, value in extras.items():
        if isinstance(value, Mapping):
            values += _secret_values(value)
        elif isinstance(value, str) and any(marker in str(key).lower() for marker in _SECRET_MARKERS):
            values += _with_nested(value)
    return values


def _with_nested(value: str | None) -> list[str | None]:
    """A secret, and the secrets inside it when it is a JSON object (a service-account key file)."""
    if not value or not value.lstrip().startswith("{"):
        return [value]
    try:
        parsed = json.loads(value)
    except ValueError:
        return [value]
    return [value, *(_secret_values(parsed) if isinstance(parsed, Mapping) else [])]
