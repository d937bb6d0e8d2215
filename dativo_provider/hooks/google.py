"""Google credentials for the Drive and Sheets sources, from either of two connection types.

* ``google_cloud_platform`` — the official Google provider's connection (that provider need not be
  installed: only the connection's fields are read). Extras: ``keyfile_dict`` (the key file's JSON,
  as text or an object; ``keyfile_json`` is accepted as another name for it), ``key_path`` (a key
  file on the worker), ``scope`` (comma separated), ``quota_project_id``. With none of the key
  extras, Application Default Credentials are used as google-auth finds them: the key file named by
  ``GOOGLE_APPLICATION_CREDENTIALS``, else the metadata server (Cloud Composer, GCE, GKE Workload
  Identity; ``GCE_METADATA_HOST`` overrides its address). ``key_secret_name``,
  ``credential_config_file``, ``impersonation_chain`` and anonymous access are not supported and
  fail with a message saying so.
* ``dativo_google`` — this provider's own: ``password`` holds the service-account key JSON (or an
  OAuth access token minted elsewhere). Extras ``scope``, ``subject``, ``quota_project_id``.

Both types also take ``subject`` (domain-wide delegation) and ``drive_url``/``sheets_url`` (a
proxy, or a test double). The private key and any access token are registered with Airflow's
secret masker as soon as they are read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from dativo_provider.compat import BaseHook, mask_secret
from dativo_provider.connections import GOOGLE_READONLY_SCOPES, GoogleConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import (
    GOOGLE_CONN_FIELDS,
    GOOGLE_INTEGRATION,
    GOOGLE_UI_FIELD_BEHAVIOUR,
)
from dativo_provider.hooks.connection_test import connection_secrets, connection_test
from dativo_provider.hooks.forms import field_behaviour, form_widgets
from dativo_provider.hooks.sources import checked_type, extras_of
from dativo_provider.sources.registry import DATIVO_GOOGLE, GOOGLE_CLOUD

DEFAULT_METADATA_URL = "http://metadata.google.internal"
_UNSUPPORTED_EXTRAS = {
    "key_secret_name": "read the key from Secret Manager into keyfile_dict with a secrets backend instead",
    "credential_config_file": "workload identity federation needs google-auth; use a service-account key",
    "impersonation_chain": "service-account impersonation needs the IAM credentials API; use that "
                           "account's key, or domain-wide delegation with the 'subject' extra",
    "is_anonymous": "Drive and Sheets need credentials",
}


class GoogleHook(BaseHook):
    """Read a ``dativo_google`` or ``google_cloud_platform`` connection.

    :param google_conn_id: the connection id (default ``google_cloud_default``, the official one's).
    """

    conn_name_attr = "google_conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = DATIVO_GOOGLE.name
    hook_name = GOOGLE_INTEGRATION

    def __init__(self, google_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.google_conn_id = google_conn_id

    def get_conn(self) -> GoogleConfig:
        """The engine's Google configuration (secrets stay out of its ``repr``)."""
        conn = self.get_connection(self.google_conn_id)
        return google_config(checked_type(conn, DATIVO_GOOGLE, GOOGLE_CLOUD.name))

    def test_connection(self) -> tuple[bool, str]:
        """Mint an access token and, with a Drive scope, list one file id (no file content is read)."""
        from dativo_provider.sources.probes import probe_google

        return connection_test(lambda: probe_google(self.get_conn()),
                               lambda: connection_secrets(self.get_connection(self.google_conn_id)))

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.x (Airflow >= 3.2 reads ``conn-fields`` instead)."""
        return form_widgets(GOOGLE_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return field_behaviour(GOOGLE_UI_FIELD_BEHAVIOUR)


def google_config(conn: Any) -> GoogleConfig:
    """Map a ``google_cloud_platform`` or ``dativo_google`` Connection to a :class:`GoogleConfig`.

    :raises ConfigError: a key that is not JSON, a key file that cannot be read, an unsupported extra.
    """
    extras = extras_of(conn)
    if conn.conn_type == "google_cloud_platform":
        credentials = _official_credentials(conn.conn_id, extras)
    else:
        credentials = _own_credentials(conn)
    config = GoogleConfig(
        **credentials,
        scopes=_scopes(extras.get("scope")),
        subject=extras.get("subject") or None,
        quota_project=extras.get("quota_project_id") or None,
        drive_url=extras.get("drive_url") or GoogleConfig.drive_url,
        sheets_url=extras.get("sheets_url") or GoogleConfig.sheets_url,
        conn_id=conn.conn_id,
    )
    for secret in config.secrets:
        if secret:
            mask_secret(secret)
    return config


def _official_credentials(conn_id: str, extras: Mapping[str, Any]) -> dict[str, Any]:
    """Key, key file or Application Default Credentials, as the official provider reads them."""
    unsupported = [key for key in _UNSUPPORTED_EXTRAS if extras.get(key) not in (None, "", False)]
    if unsupported:
        key = unsupported[0]
        raise ConfigError(f"connection {conn_id!r}: extra {key!r} is not supported by the Drive and Sheets "
                          f"sources: {_UNSUPPORTED_EXTRAS[key]}")
    keyfile = extras.get("keyfile_dict") or extras.get("keyfile_json")
    if keyfile:
        return {"service_account_info": _key_json(keyfile, conn_id, "extra 'keyfile_dict'")}
    if extras.get("key_path"):
        return {"service_account_info": _key_file(str(extras["key_path"]), conn_id, "extra 'key_path'")}
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        path = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
        return {"service_account_info": _key_file(path, conn_id, "GOOGLE_APPLICATION_CREDENTIALS")}
    host = os.environ.get("GCE_METADATA_HOST")
    return {"metadata_url": f"http://{host}" if host else DEFAULT_METADATA_URL}


def _own_credentials(conn: Any) -> dict[str, Any]:
    """``dativo_google``: the key JSON in the password field, or an access token."""
    secret = (conn.password or "").strip()
    if not secret:
        raise ConfigError(f"connection {conn.conn_id!r}: put the service-account key JSON (or an access "
                          "token) in the password field")
    if secret.startswith("{"):
        return {"service_account_info": _key_json(secret, conn.conn_id, "the password field")}
    return {"access_token": secret}


def _key_json(value: Any, conn_id: str, where: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(str(value))
    except ValueError:
        # The parser's message quotes the text around the error, which may be key material.
        parsed = None
    if not isinstance(parsed, dict):
        raise ConfigError(f"connection {conn_id!r}: {where} is not a service-account key file's JSON object")
    return parsed


def _key_file(path: str, conn_id: str, where: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"connection {conn_id!r}: cannot read the key file {path!r} ({where}): "
                          f"{exc.strerror}") from None
    return _key_json(text, conn_id, f"the key file {path!r}")


def _scopes(value: Any) -> tuple[str, ...]:
    """The ``scope`` extra (comma or space separated) or the read-only Drive and Sheets scopes."""
    if not value:
        return GOOGLE_READONLY_SCOPES
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    return tuple(str(part).strip() for part in parts if str(part).strip())
