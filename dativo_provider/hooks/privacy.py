"""Keys for data-subject requests, and Airflow's REST API for account termination, from Connections.

Two key connections, of this provider's type ``dativo_dsr_key`` (``generic`` connections are read
the same way, but only ``dativo_dsr_key`` has a form and reaches :meth:`DsrKeyHook.test_connection`
from ``airflow connections test`` and the UI: Airflow finds a hook by connection type). Only
``password`` and ``extra`` are read:

- **signing** (default ``dativo_dsr_signing``): ``password`` holds the Ed25519 private key as
  unencrypted PKCS#8 PEM; or an HMAC secret (at least 16 bytes) with extra
  ``{"algorithm": "hmac-sha256"}``. Extra ``key_id`` names the key in certificates (default: the
  connection id).
- **hash key** (default ``dativo_dsr_hash_key``): ``password`` holds the key of the audit trail's
  keyed hashes and of the restriction registry (at least 16 bytes; 32 random bytes recommended).

Both secrets are registered with Airflow's secret masker as soon as they are read, live only inside
key objects whose ``repr`` hides them, and are never returned, logged or pushed to XCom.

The **Airflow API** connection (conn type ``http``, the official HTTP provider's: its fields mean
exactly what they mean there, so no type of our own) is what
:class:`~dativo_provider.operators.privacy.TenantTerminateOperator` uses on Airflow 3, where a task
cannot touch the metadata database: ``host`` is the API server's base URL (``http://api-server:8080``;
``schema`` ``https`` and ``port`` are honoured when ``host`` has no scheme). With ``login`` and
``password`` a JWT is requested from ``/auth/token`` (Airflow 3) or HTTP basic auth is sent (Airflow 2
``/api/v1``); with only ``password`` it is sent as a bearer token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS, BaseHook, mask_secret
from dativo_provider.exceptions import ConfigError
from dativo_provider.get_provider_info import (
    DSR_KEY_CONN_FIELDS,
    DSR_KEY_UI_FIELD_BEHAVIOUR,
    PRIVACY_KEY_HOOK_NAME,
)
from dativo_provider.hooks.connection_test import connection_secrets, connection_test
from dativo_provider.hooks.forms import field_behaviour, form_widgets
from dativo_provider.hooks.sources import extras_of

if TYPE_CHECKING:
    from dativo_provider.privacy.certificate import SigningKey

SIGNING_CONN_ID = "dativo_dsr_signing"
HASH_KEY_CONN_ID = "dativo_dsr_hash_key"
HMAC = "hmac-sha256"
ED25519 = "ed25519"


class DsrKeyHook(BaseHook):
    """Read a data-subject-request key from a Connection.

    :param conn_id: the connection holding the key in its ``password``.
    """

    conn_name_attr = "conn_id"
    default_conn_name = SIGNING_CONN_ID
    conn_type = "dativo_dsr_key"
    hook_name = PRIVACY_KEY_HOOK_NAME

    def __init__(self, conn_id: str = SIGNING_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def get_conn(self) -> SigningKey:
        return self.signing_key()

    def test_connection(self) -> tuple[bool, str]:
        """Validate the key material: a signing key (PEM, or extra ``algorithm`` ``hmac-sha256``) signs a
        test message; any other secret must be long enough to be a hash key. Nothing leaves the worker."""
        return connection_test(self._check_key, lambda: connection_secrets(self.get_connection(self.conn_id)))

    def _check_key(self) -> str:
        secret, extras = self._secret()
        if secret.lstrip().startswith("-----BEGIN") or extras.get("algorithm"):
            key = self.signing_key()
            key.sign(b"dativo connection test")
            return f"{key.algorithm} signing key {key.key_id!r} signs"
        return f"a {len(self.hash_key())}-byte hash key (or, with extra algorithm hmac-sha256, an HMAC signing key)"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.x (Airflow >= 3.2 reads ``conn-fields`` instead)."""
        return form_widgets(DSR_KEY_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled standard fields for Airflow 2.x (Airflow >= 3.2 reads ``ui-field-behaviour``)."""
        return field_behaviour(DSR_KEY_UI_FIELD_BEHAVIOUR)

    def _secret(self) -> tuple[str, dict[str, Any]]:
        conn = self.get_connection(self.conn_id)
        secret = conn.password or ""
        if not secret:
            raise ConfigError(f"connection {self.conn_id!r}: the key belongs in its password field, which is empty")
        mask_secret(secret)
        return secret, extras_of(conn)

    def signing_key(self) -> SigningKey:
        """The certificate signing key: Ed25519 (PEM in the password) or HMAC-SHA256 (extra ``algorithm``)."""
        from dativo_provider.privacy.certificate import SigningKey

        secret, extras = self._secret()
        algorithm = str(extras.get("algorithm") or ED25519).lower()
        key_id = str(extras.get("key_id") or self.conn_id)
        if algorithm == ED25519:
            return SigningKey.ed25519(secret, key_id)
        if algorithm == HMAC:
            return SigningKey.hmac(secret, key_id)
        raise ConfigError(f"connection {self.conn_id!r}: extra 'algorithm' is {algorithm!r}; "
                          f"expected {ED25519!r} or {HMAC!r}")

    def hash_key(self) -> bytes:
        """The audit-trail and restriction-registry key, as bytes."""
        secret, _ = self._secret()
        key = secret.encode("utf-8")
        if len(key) < 16:
            raise ConfigError(f"connection {self.conn_id!r}: the hash key is {len(key)} bytes; use at least 16 "
                              "(32 random bytes recommended)")
        return key


class AirflowApiHook(BaseHook):
    """A small client of Airflow's own REST API (``/api/v2`` on Airflow 3, ``/api/v1`` on 2.x).

    :param airflow_api_conn_id: the connection (see the module docstring).
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = "airflow_api"
    conn_type = "http"
    hook_name = "Airflow REST API (Dativo)"

    def __init__(self, airflow_api_conn_id: str = default_conn_name, timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.airflow_api_conn_id = airflow_api_conn_id
        self.timeout = timeout
        self._session: Any = None
        self.prefix = "/api/v2" if AIRFLOW_V_3_0_PLUS else "/api/v1"

    def get_conn(self) -> Any:
        """A ``requests.Session`` with authentication set up."""
        if self._session is None:
            import requests

            conn = self.get_connection(self.airflow_api_conn_id)
            self.base_url = _base_url(conn)
            session = requests.Session()
            if conn.password:
                mask_secret(conn.password)
            if conn.login and conn.password and AIRFLOW_V_3_0_PLUS:
                session.headers["Authorization"] = f"Bearer {self._jwt(session, conn.login, conn.password)}"
            elif conn.login and conn.password:
                session.auth = (conn.login, conn.password)
            elif conn.password:
                session.headers["Authorization"] = f"Bearer {conn.password}"
            self._session = session
        return self._session

    def _jwt(self, session: Any, login: str, password: str) -> str:
        response = session.post(f"{self.base_url}/auth/token", json={"username": login, "password": password},
                                timeout=self.timeout)
        if response.status_code >= 400:
            raise ConfigError(f"connection {self.airflow_api_conn_id!r}: {self.base_url}/auth/token refused the "
                              f"login (HTTP {response.status_code}); check login and password")
        token = response.json()["access_token"]
        mask_secret(token)
        return token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; returns the JSON body (None for 204). HTTP errors raise with the path only."""
        session = self.get_conn()
        response = session.request(method, f"{self.base_url}{self.prefix}{path}", timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            raise ConfigError(f"Airflow API {method} {self.prefix}{path}: HTTP {response.status_code} "
                              f"{response.text[:300]}")
        return response.json() if response.content else None

    def test_connection(self) -> tuple[bool, str]:
        """List one DAG: proves the API answers, the login works and DAGs are readable."""
        return connection_test(self._list_one_dag,
                               lambda: connection_secrets(self.get_connection(self.airflow_api_conn_id)))

    def _list_one_dag(self) -> str:
        page = self.request("GET", "/dags", params={"limit": 1})
        return f"Airflow API {self.base_url}{self.prefix} answered: {page.get('total_entries', 0)} DAG(s) visible"

    def paged(self, path: str, field: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged list endpoint (``limit``/``offset``)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", path, params={**(params or {}), "limit": 100, "offset": len(items)})
            batch = page.get(field) or []
            items.extend(batch)
            if not batch or len(items) >= int(page.get("total_entries") or 0):
                return items


def _base_url(conn: Any) -> str:
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ConfigError(f"connection {conn.conn_id!r}: 'host' must be the Airflow API server's base URL")
    if "://" not in host:
        host = f"{conn.schema or 'http'}://{host}"
        if conn.port:
            host += f":{conn.port}"
    return host


# --- account termination ------------------------------------------------------------------------------

_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def validate_account(account: str) -> str:
    """The tenant name, checked: letters, digits, ``-`` and ``_`` (no pattern or path characters)."""
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise ConfigError(f"account {account!r}: use 1-63 letters, digits, '-' or '_', starting with a letter "
                          "or digit")
    return account


def tenant_backend(airflow_api_conn_id: str | None) -> MetadataDbTenantBackend | ApiTenantBackend:
    """How a task changes Airflow's own objects: the REST API when a connection is given, else the
    metadata database (Airflow 2.x only).

    :raises ConfigError: on Airflow 3 without ``airflow_api_conn_id``.
    """
    if airflow_api_conn_id:
        return ApiTenantBackend(AirflowApiHook(airflow_api_conn_id))
    if AIRFLOW_V_3_0_PLUS:
        raise ConfigError("on Airflow 3 a task cannot change connections, variables or DAGs through the metadata "
                          "database: give airflow_api_conn_id, a connection to Airflow's REST API "
                          "(see docs/privacy.md, Account termination)")
    return MetadataDbTenantBackend()


class ApiTenantBackend:
    """Termination steps through Airflow's REST API (``/api/v2`` on Airflow 3, ``/api/v1`` on 2.x).

    List endpoints' pattern filters are SQL ``LIKE``/``ILIKE`` searches that ignore case and treat ``_``
    as a wildcard, so they only narrow the candidates: each is checked again here, case-exactly, and
    only those are deleted or paused.
    """

    name = "rest-api"

    def __init__(self, api: AirflowApiHook) -> None:
        self.api = api

    def run(self, step: str, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        return getattr(self, step)(prefix, tag, dry_run)

    def connections(self, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        search = {"connection_id_pattern": prefix} if AIRFLOW_V_3_0_PLUS else {}
        found = owned_names((c["connection_id"] for c in self.api.paged("/connections", "connections", search)),
                            prefix)
        for conn_id in found if not dry_run else ():
            self.api.request("DELETE", f"/connections/{_quote(conn_id)}")
        return removal(found, dry_run)

    def variables(self, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        search = {"variable_key_pattern": prefix} if AIRFLOW_V_3_0_PLUS else {}
        found = owned_names((v["key"] for v in self.api.paged("/variables", "variables", search)), prefix)
        for key in found if not dry_run else ():
            self.api.request("DELETE", f"/variables/{_quote(key)}")
        return removal(found, dry_run)

    def dags(self, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        tagged = {d["dag_id"]: bool(d.get("is_paused")) for d in self.api.paged("/dags", "dags", {"tags": tag})
                  if tag in [t["name"] if isinstance(t, dict) else t for t in d.get("tags") or []]}
        outcome = pausing(tagged, dry_run)
        for dag_id in outcome.get("paused", ()):
            self.api.request("PATCH", f"/dags/{_quote(dag_id)}", params={"update_mask": "is_paused"},
                             json={"is_paused": True})
        return outcome


def _quote(value: str) -> str:
    import urllib.parse

    return urllib.parse.quote(value, safe="")


def owned_names(names: Iterable[str], prefix: str) -> list[str]:
    """The names that start with ``prefix``, compared case-exactly, sorted and distinct.

    The one matching rule of termination: database and API searches ignore case on some backends
    (SQLite ``LIKE``, MySQL collations, the API's ``ILIKE``), so ``Tenant_acme_x`` is never ``tenant_acme_``'s.
    """
    return sorted({name for name in names if name.startswith(prefix)})


def removal(names: list[str], dry_run: bool) -> dict[str, Any]:
    """A connections/variables step's outcome: ``removed``, or ``would_remove`` in a dry run."""
    return {"would_remove" if dry_run else "removed": names, "count": len(names)}


def pausing(paused_by_dag: dict[str, bool], dry_run: bool) -> dict[str, Any]:
    """The DAG step's outcome from ``{dag_id: is_paused}``: ``paused``, or ``would_pause`` in a dry run."""
    to_pause = sorted(dag_id for dag_id, paused in paused_by_dag.items() if not paused)
    return {"would_pause" if dry_run else "paused": to_pause,
            "already_paused": sorted(dag_id for dag_id, paused in paused_by_dag.items() if paused),
            "count": len(to_pause)}


class MetadataDbTenantBackend:
    """Termination steps through Airflow 2.x's metadata database (a task may use the ORM there).

    The SQL filters only narrow the candidates (SQLite's ``LIKE`` and MySQL's default collations ignore
    case); exactly the rows :func:`owned_names` keeps, and the DAGs carrying the tag case-exactly, are
    deleted or paused, by primary key.
    """

    name = "metadata-db"

    def run(self, step: str, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        from airflow.utils.session import create_session

        with create_session() as session:
            return getattr(self, step)(session, prefix, tag, dry_run)

    @staticmethod
    def connections(session: Any, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        from airflow.models.connection import Connection

        rows = session.query(Connection).filter(Connection.conn_id.startswith(prefix, autoescape=True)).all()
        found = owned_names((c.conn_id for c in rows), prefix)
        for row in [r for r in rows if r.conn_id in found] if not dry_run else ():
            session.delete(row)
        return removal(found, dry_run)

    @staticmethod
    def variables(session: Any, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        from airflow.models.variable import Variable
        from airflow.secrets.cache import SecretCache

        rows = session.query(Variable).filter(Variable.key.startswith(prefix, autoescape=True)).all()
        found = owned_names((v.key for v in rows), prefix)
        # By row, not Variable.delete(key): its ``key = ...`` ignores case under MySQL collations.
        for row in [r for r in rows if r.key in found] if not dry_run else ():
            session.delete(row)
            SecretCache.invalidate_variable(row.key)
        return removal(found, dry_run)

    @staticmethod
    def dags(session: Any, prefix: str, tag: str, dry_run: bool) -> dict[str, Any]:
        from airflow.models.dag import DagModel, DagTag

        query = session.query(DagModel, DagTag.name).join(DagTag, DagTag.dag_id == DagModel.dag_id)
        rows = query.filter(DagTag.name == tag).all()
        dags = {dag.dag_id: dag for dag, name in rows if name == tag}
        outcome = pausing({dag_id: bool(dag.is_paused) for dag_id, dag in dags.items()}, dry_run)
        for dag_id in outcome.get("paused", ()):
            dags[dag_id].is_paused = True
        return outcome
