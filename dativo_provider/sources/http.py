"""One small HTTP client for the SaaS sources (Stripe, HubSpot, later Google): JSON over ``requests``.

What it does for every call:

* **Auth.** Headers come from an :class:`Auth` object asked on every attempt, so a refreshed OAuth
  token is picked up. A 401 asks the auth to refresh once (OAuth); a second 401 fails.
* **Retries.** 429, 5xx, connection errors, timeouts and unreadable bodies are retried with
  exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP date), until
  ``max_attempts`` or ``max_total_wait`` seconds of waiting are used up. An API dialect can overrule
  the decision either way (Stripe's ``Stripe-Should-Retry`` header) or turn a response into its own
  error (HubSpot's daily limit). Only reads are sent through here, so every retry is safe.
* **Errors that never hold a secret.** Every message is passed through
  :func:`~dativo_provider.exceptions.redact` with the auth's current secrets plus the dialect's
  patterns (Stripe echoes a masked key). 401/403 → :class:`ApiAuthError` naming the connection;
  404 → :class:`ApiNotFoundError` naming what was asked for; other 4xx → :class:`ApiRequestError`;
  retries used up → :class:`ApiUnavailableError` (transient).
* **A clock you can replace.** Sleeping and "now" go through a :class:`Clock`, so tests run the
  whole retry schedule without a single real sleep.

Logging: each request at DEBUG (method, path, query parameters, status), each retry at WARNING.
No headers or bodies are logged.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from dativo_provider.exceptions import SourceError, TransientError, redact

log = logging.getLogger(__name__)

#: (connect, read) timeouts in seconds.
DEFAULT_TIMEOUT = (10.0, 60.0)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


# --- errors -------------------------------------------------------------------------------------


class ApiError(SourceError):
    """A request the API refused. Fields: ``api``, ``status``, ``method``, ``path``."""

    def __init__(self, message: str, *, api: str, status: int | None, method: str, path: str) -> None:
        super().__init__(message)
        self.api, self.status, self.method, self.path = api, status, method, path


class ApiAuthError(ApiError):
    """401/403: the credentials are wrong, expired or lack a scope."""


class ApiNotFoundError(ApiError):
    """404: the object type, endpoint or record does not exist."""


class ApiRequestError(ApiError):
    """Another 4xx: the request itself is wrong (a parameter the endpoint does not take, ...)."""


class DailyLimitError(ApiError):
    """The API's daily request quota is used up; retrying before it resets fails the same way.

    ``resets_at`` is when the API said it resets (None when it did not say).
    """

    def __init__(self, message: str, *, resets_at: datetime | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.resets_at = resets_at


class ApiUnavailableError(TransientError):
    """429/5xx/network errors outlasted the retries. Fields: ``api``, ``status``, ``attempts``."""

    def __init__(self, message: str, *, api: str, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.api, self.status, self.attempts = api, status, attempts


# --- pluggable parts ----------------------------------------------------------------------------


class Clock(Protocol):
    """Time as the client sees it; tests pass one that records sleeps instead of sleeping."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


class Auth:
    """No authentication. Subclasses add headers and may refresh credentials on a 401."""

    def headers(self) -> dict[str, str]:
        return {}

    def refresh(self) -> bool:
        """Get new credentials after a 401; True if there are new ones to try once more."""
        return False

    def secrets(self) -> tuple[str | None, ...]:
        """Every secret this auth holds now, for redaction."""
        return ()


class BearerAuth(Auth):
    """``Authorization: Bearer <token>`` (Stripe secret keys, HubSpot private-app tokens)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def secrets(self) -> tuple[str | None, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class Dialect:
    """How one API words its errors and retry hints. The defaults suit any JSON API."""

    #: Regexes whose matches are replaced by ``***`` in messages (e.g. masked keys an API echoes).
    scrub: tuple[re.Pattern[str], ...] = ()

    def should_retry(self, response: requests.Response) -> bool | None:
        """True/False overrules the status-based decision; None keeps it."""
        return None

    def message(self, response: requests.Response) -> str:
        """The API's own explanation of an error response (unredacted; the client redacts it)."""
        body = json_or_none(response)
        if isinstance(body, Mapping):
            for key in ("message", "error_description", "error"):
                if isinstance(body.get(key), str):
                    return body[key]
        return (response.reason or "").strip()

    def special_error(self, response: requests.Response, api: str) -> ApiError | None:
        """An error that must not be retried or mapped by status (e.g. a daily quota), or None."""
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """When to give up. Waits grow ``base_delay * 2**n`` up to ``max_delay``, with full jitter.

    :param max_attempts: tries per request, the first included.
    :param max_total_wait: seconds of waiting one request may spend over all its retries.
    :param jitter: fraction of each backoff drawn at random (0 → exact, 1 → full jitter).
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0
    max_total_wait: float = 300.0
    jitter: float = 1.0


@dataclass
class Page:
    """A decoded JSON response and the headers it came with."""

    body: Any
    headers: Mapping[str, str]
    status: int

    @property
    def server_time(self) -> datetime | None:
        """The ``Date`` header: the server's clock when it answered (None when absent)."""
        return parse_http_date(self.headers.get("Date"))


@dataclass
class _Attempts:
    """Bookkeeping for one request's retries."""

    count: int = 0
    waited: float = 0.0
    refreshed: bool = False
    last_status: int | None = None
    last_problem: str = ""


# --- the client ---------------------------------------------------------------------------------


class HttpClient:
    """JSON requests to one API with retries and secret-free errors.

    :param api: the API's name for messages, e.g. ``"Stripe"``.
    :param base_url: scheme and host (and optional path prefix) every request path is joined to.
    :param auth: supplies headers and secrets.
    :param conn_id: the Airflow connection the credentials came from, named in auth errors.
    :param headers: fixed headers sent with every request (``Stripe-Account``, ...).
    :param dialect: the API's error and retry conventions.
    :param policy: retry limits.
    :param clock: time source; :class:`SystemClock` unless a test injects another.
    :param rng: random source for jitter.
    :param timeout: ``(connect, read)`` seconds.
    """

    def __init__(
        self,
        api: str,
        base_url: str,
        auth: Auth | None = None,
        *,
        conn_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        dialect: Dialect | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")
        self.auth = auth or Auth()
        self.conn_id = conn_id
        self.dialect = dialect or Dialect()
        self.policy = policy or RetryPolicy()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        self.requests_sent = 0

    def get(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
            *, what: str) -> Page:
        """GET ``path`` and decode its JSON body. ``what`` names the thing asked for, for errors."""
        return self.request("GET", path, params=params, what=what)

    def post(self, path: str, *, json: Any = None, data: Mapping[str, str] | None = None, what: str) -> Page:
        """POST a read (search, batch read, token refresh): safe to retry like a GET."""
        return self.request("POST", path, json=json, data=data, what=what)

    def request(self, method: str, path: str, *, what: str,
                read_body: Callable[[requests.Response], Any] | None = None, **kwargs: Any) -> Page:
        """Send one logical request, retrying as the policy allows; see the module docstring.

        :param read_body: reads a successful response instead of decoding it as JSON (a download
            sent with ``stream=True``); its return value becomes ``Page.body``. A retry calls it
            again on a new response, so it must start over. A ``ValueError`` or a network error
            while it reads is retried like a truncated body. The response is closed afterwards.
        """
        attempts = _Attempts()
        while True:
            attempts.count += 1
            outcome = self._attempt(method, path, what, kwargs, attempts, read_body)
            if isinstance(outcome, Page):
                return outcome
            self._wait_or_give_up(method, path, what, outcome, attempts)

    def close(self) -> None:
        self.session.close()

    def redact(self, message: str) -> str:
        """``message`` with every current secret and scrubbed pattern replaced by ``***``."""
        message = redact(message, self.auth.secrets())
        for pattern in self.dialect.scrub:
            message = pattern.sub("***", message)
        return message

    # -- one attempt -----------------------------------------------------------------------------

    def _attempt(
        self, method: str, path: str, what: str, kwargs: dict[str, Any], attempts: _Attempts,
        read_body: Callable[[requests.Response], Any] | None = None,
    ) -> Page | float | None:
        """A decoded page, or the delay the server asked for (a float, or None: use backoff)."""
        try:
            response = self._send(method, path, kwargs)
        except _NETWORK_ERRORS as exc:
            attempts.last_status, attempts.last_problem = None, self.redact(f"{type(exc).__name__}: {exc}")
            return None
        attempts.last_status = response.status_code
        if response.status_code == 401 and not attempts.refreshed and self.auth.refresh():
            attempts.refreshed = True
            return 0.0
        if response.ok and read_body is not None:
            return self._read(response, attempts, read_body)
        if response.ok:
            return self._decode(response, attempts)
        self._raise_if_final(method, path, what, response)
        attempts.last_problem = self.redact(self.dialect.message(response))[:300]
        return retry_after_seconds(response.headers.get("Retry-After"), self.clock.now())

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> requests.Response:
        self.requests_sent += 1
        response = self.session.request(
            method, self.base_url + path, headers=self.auth.headers(), timeout=self.timeout, **kwargs
        )
        log.debug("%s %s %s %s -> %s", self.api, method, path, _loggable(kwargs.get("params")),
                  response.status_code)
        return response

    def _decode(self, response: requests.Response, attempts: _Attempts) -> Page | None:
        try:
            body = response.json()
        except ValueError:
            attempts.last_problem = "the response body is not JSON (truncated?)"
            return None
        return Page(body, response.headers, response.status_code)

    def _read(self, response: requests.Response, attempts: _Attempts,
              read_body: Callable[[requests.Response], Any]) -> Page | None:
        try:
            with response:
                return Page(read_body(response), response.headers, response.status_code)
        except (ValueError, *_NETWORK_ERRORS) as exc:
            attempts.last_problem = self.redact(f"reading the body failed: {type(exc).__name__}: {exc}")[:300]
            return None

    def _raise_if_final(self, method: str, path: str, what: str, response: requests.Response) -> None:
        """Raise now unless the response is worth retrying."""
        special = self.dialect.special_error(response, self.api)
        if special is not None:
            special.args = (self.redact(str(special)),)
            raise special
        hint = self.dialect.should_retry(response)
        retry = response.status_code in RETRY_STATUSES if hint is None else hint
        if not retry:
            raise self._client_error(method, path, what, response)

    def _client_error(self, method: str, path: str, what: str, response: requests.Response) -> ApiError:
        status = response.status_code
        detail = self.redact(self.dialect.message(response))[:500]
        error_class: type[ApiError]
        if status in (401, 403):
            where = f"connection {self.conn_id!r}" if self.conn_id else "the credentials"
            error_class = ApiAuthError
            message = f"authentication failed for {self.api} (check {where}): HTTP {status}: {detail}"
        elif status == 404:
            error_class = ApiNotFoundError
            message = f"{self.api}: {what} not found ({method} {path}, HTTP 404): {detail}"
        else:
            error_class = ApiRequestError
            message = f"{self.api} refused {method} {path} ({what}): HTTP {status}: {detail}"
        return error_class(message, api=self.api, status=status, method=method, path=path)

    # -- waiting ---------------------------------------------------------------------------------

    def _wait_or_give_up(
        self, method: str, path: str, what: str, asked: float | None, attempts: _Attempts
    ) -> None:
        delay = asked if asked is not None else self._backoff(attempts.count)
        problem = f"HTTP {attempts.last_status}" if attempts.last_status else "no response"
        if attempts.count >= self.policy.max_attempts or attempts.waited + delay > self.policy.max_total_wait:
            raise ApiUnavailableError(
                f"{self.api} {method} {path} ({what}): {problem} ({attempts.last_problem}) after "
                f"{attempts.count} attempt(s) and {attempts.waited:.1f}s of waiting"
                + (f"; the API asked to wait {delay:.0f}s more" if asked else "")
                + ". Rerun later; nothing was committed",
                api=self.api, status=attempts.last_status, attempts=attempts.count,
            )
        if delay > 0:
            log.warning("%s %s %s: %s, retrying in %.2fs (attempt %d of %d)", self.api, method, path, problem,
                        delay, attempts.count + 1, self.policy.max_attempts)
        attempts.waited += delay
        self.clock.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempt - 1))
        return ceiling * (1 - self.policy.jitter * self.rng.random())


# --- helpers ------------------------------------------------------------------------------------


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds to wait: a number of seconds, or an HTTP date minus ``now``.

    :returns: None when the header is absent or unreadable; never negative.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    moment = parse_http_date(value)
    return None if moment is None else max(0.0, (moment - now).total_seconds())


def parse_http_date(value: str | None) -> datetime | None:
    """An RFC 7231 date (``Wed, 21 Oct 2015 07:28:00 GMT``) as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def json_or_none(response: requests.Response) -> Any:
    """The decoded body of an error response, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _loggable(params: Any) -> str:
    if not params:
        return ""
    items = params.items() if isinstance(params, Mapping) else params
    return "?" + "&".join(f"{key}={value}" for key, value in items)


__all__ = [
    "ApiAuthError", "ApiError", "ApiNotFoundError", "ApiRequestError", "ApiUnavailableError", "Auth",
    "BearerAuth", "Clock", "DailyLimitError", "Dialect", "HttpClient", "Page", "RetryPolicy", "SystemClock",
    "json_or_none", "parse_http_date", "retry_after_seconds",
]
