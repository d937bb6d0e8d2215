"""A small OpenMetadata REST client: JWT bearer auth, retries, paging, bounded concurrency.

It speaks only the endpoints the sync needs (``/api/v1/...``) with ``requests``; the
``openmetadata-ingestion`` package is not used (it pins much of the stack, is not under an OSI licence,
and its client refuses servers of another minor version).

Errors, by status:

- 401: the token is missing, expired or not a JWT the server accepts. Terminal.
- 403: the token's bot or user lacks a permission for that call. Terminal.
- 404: :class:`OpenMetadataNotFound` (callers that look entities up catch it and create them).
- 409: :class:`OpenMetadataConflict` (an entity of that name already exists: callers read it back).
- 429 and 5xx: retried up to ``max_retries`` times with exponential backoff, waiting at least
  ``Retry-After`` seconds when the server sends it; then :class:`OpenMetadataUnavailable` (transient).
- Any other 4xx: terminal, with the server's own message (``{"code": 400, "message": ...}``).

No message ever holds the token: it is only in the ``Authorization`` header.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from dativo_provider.exceptions import TerminalError, TransientError, redact

API = "/api/v1"
JSON_PATCH = "application/json-patch+json"
#: The page size asked for when listing; OpenMetadata caps ``limit`` at 1,000 and defaults to 10.
PAGE_SIZE = 100
_RETRIED = frozenset({429, 500, 502, 503, 504})
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class OpenMetadataConfig:
    """Where the server is and how to talk to it.

    :param server_url: e.g. ``https://openmetadata.example.org`` (``/api`` is added; a trailing
        ``/api`` is accepted too).
    :param token: a JWT (an OpenMetadata bot's token). Kept out of ``repr``.
    :param max_workers: at most this many requests in flight at once.
    :param max_retries: retries of a 429/5xx answer before giving up.
    :param backoff_seconds: the first retry's wait; doubled each time (with jitter), capped at 30 s.
    """

    server_url: str
    token: str = field(repr=False)
    timeout_seconds: float = 30.0
    max_workers: int = 8
    max_retries: int = 5
    backoff_seconds: float = 0.5
    verify_ssl: bool = True
    conn_id: str | None = None

    @property
    def base_url(self) -> str:
        url = self.server_url.rstrip("/")
        return url.removesuffix("/api")


class OpenMetadataError(TerminalError):
    """OpenMetadata refused a request. ``status`` is the HTTP status, ``path`` the request path."""

    def __init__(self, message: str, status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.path = path


class OpenMetadataNotFound(OpenMetadataError):
    """404: no entity at that path."""


class OpenMetadataConflict(OpenMetadataError):
    """409: an entity of that name exists already."""


class OpenMetadataUnavailable(TransientError):
    """429 or 5xx after every retry, or the server could not be reached: try again later."""


class OpenMetadataClient:
    """Thread-safe: each worker thread has its own HTTP session (connection pool).

    :param sleep: how to wait between retries (tests pass a recorder).
    """

    def __init__(self, config: OpenMetadataConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._local = threading.local()
        self.retries = 0

    # -- verbs -----------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, operations: list[dict[str, Any]]) -> Any:
        """Apply an RFC 6902 JSON patch (``application/json-patch+json``)."""
        return self.request("PATCH", path, body=operations, content_type=JSON_PATCH)

    def find(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """GET ``path``; None on 404."""
        try:
            return self.get(path, params)
        except OpenMetadataNotFound:
            return None

    def version(self) -> str:
        """The server's version (``GET /api/v1/system/version``), e.g. ``1.12.3``."""
        return str(self.get("/system/version").get("version", "unknown"))

    def paged(
        self, path: str, params: dict[str, Any] | None = None, *, limit: int = PAGE_SIZE
    ) -> Iterator[Any]:
        """Every entity of a list endpoint, following ``paging.after`` cursors to the end."""
        query = {**(params or {}), "limit": limit}
        while True:
            page = self.get(path, query)
            yield from page.get("data", [])
            after = (page.get("paging") or {}).get("after")
            if not after:
                return
            query["after"] = after

    def map_bounded(self, work: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
        """``work`` over ``items`` on at most ``max_workers`` threads, results in input order.

        The first exception is raised once every started item has finished.
        """
        items = list(items)
        if self.config.max_workers <= 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(
            max_workers=self.config.max_workers, thread_name_prefix="openmetadata"
        ) as pool:
            return list(pool.map(work, items))

    # -- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One call, retried on 429/5xx and connection errors; the decoded JSON answer (None if empty)."""
        url = f"{self.config.base_url}{API}{path}"
        data = None if body is None else json.dumps(body, default=str)
        attempt = 0
        while True:
            try:
                response = self._session().request(
                    method,
                    url,
                    params=params,
                    data=data,
                    timeout=self.config.timeout_seconds,
                    headers={"Content-Type": content_type},
                    verify=self.config.verify_ssl,
                )
            except requests.RequestException as exc:
                if attempt >= self.config.max_retries:
                    raise OpenMetadataUnavailable(
                        self._scrub(
                            f"OpenMetadata at {self.config.base_url} did not answer {method} {path}: {exc}"
                        )
                    ) from None
                self._wait(attempt, None)
                attempt += 1
                continue
            if response.status_code in _RETRIED and attempt < self.config.max_retries:
                self._wait(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            return self._answer(method, path, response)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.config.token}"
            session.headers["Accept"] = "application/json"
            self._local.session = session
        return session

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        self.retries += 1
        delay = min(30.0, self.config.backoff_seconds * 2**attempt) * (0.5 + random.random() / 2)
        self._sleep(max(delay, _seconds(retry_after)))

    def _answer(self, method: str, path: str, response: requests.Response) -> Any:
        status = response.status_code
        if status < 400:
            return response.json() if response.content else None
        said = _server_message(response)
        where = f"{method} {path}"
        if status == 401:
            raise OpenMetadataError(
                self._scrub(
                    f"OpenMetadata rejected the token (401) on {where}: {said}. Put a valid bot JWT in "
                    f"the password field of connection {self.config.conn_id or '(none)'}"
                ),
                status,
                path,
            )
        if status == 403:
            raise OpenMetadataError(
                self._scrub(
                    f"OpenMetadata denied {where} (403): {said}. Give the token's bot a role allowing it"
                ),
                status,
                path,
            )
        if status == 404:
            raise OpenMetadataNotFound(self._scrub(f"OpenMetadata has no {path} (404): {said}"), status, path)
        if status == 409:
            raise OpenMetadataConflict(
                self._scrub(f"OpenMetadata: {where} conflicts (409): {said}"), status, path
            )
        if status in _RETRIED:
            raise OpenMetadataUnavailable(
                self._scrub(
                    f"OpenMetadata answered {status} to {where} after {self.config.max_retries} retries: "
                    f"{said}"
                )
            )
        raise OpenMetadataError(self._scrub(f"OpenMetadata refused {where} ({status}): {said}"), status, path)

    def _scrub(self, message: str) -> str:
        return redact(message, (self.config.token,))


def _seconds(retry_after: str | None) -> float:
    """``Retry-After`` in seconds (OpenMetadata sends seconds; an HTTP date counts as no hint)."""
    try:
        return max(0.0, float(retry_after)) if retry_after else 0.0
    except ValueError:
        return 0.0


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:1000]
    return json.dumps(body)[:300]


def quote_path(name: str) -> str:
    """A fully qualified name as one path segment (``/tables/name/{fqn}``)."""
    return urllib.parse.quote(name, safe="")
