"""The plumbing every API double shares: a threaded HTTP server on 127.0.0.1, a request log,
scripted faults, and a settable clock for the ``Date`` header.

A double subclasses :class:`ApiDouble` and implements :meth:`ApiDouble.route`. Use it as a context
manager (``with StripeDouble() as api: api.url``) or ``start()``/``stop()``. Keep-alive (HTTP/1.1)
is on, so a client's session reuses one connection, as it would against the real API.
"""

from __future__ import annotations

import email.utils
import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One request as the double saw it. ``params`` keeps repeated keys (``expand[]``) as lists."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Pre-serialised JSON, used instead of ``body`` when set (fast pages).
    raw: bytes | None = None

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.body is None else json.dumps(self.body).encode()


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests that ``match`` (None: forever)."""

    response: Response
    times: int | None = 1
    match: Callable[[Request], bool] | None = None


class ApiDouble:
    """A loopback API server. Subclasses implement :meth:`route`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        #: The server's clock for the ``Date`` header; None means the real time.
        self.now: datetime | None = None
        #: Called with each request before it is answered (to change data mid-paging).
        self.before: list[Callable[[Request], None]] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, port: int = 0) -> ApiDouble:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ApiDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting -------------------------------------------------------------------------------

    def fail(self, status: int, body: Any = None, *, headers: dict[str, str] | None = None, times: int | None = 1,
             match: Callable[[Request], bool] | None = None) -> None:
        """Answer the next ``times`` matching requests with ``status`` (None: until :meth:`clear_faults`)."""
        with self.lock:
            self.faults.append(Fault(Response(status, body, dict(headers or {})), times, match))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def requests_to(self, path_prefix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
            for hook in self.before:
                hook(request)
            fault = self._take_fault(request)
            if fault is not None:
                return fault
            return self.route(request)

    def _take_fault(self, request: Request) -> Response | None:
        for fault in self.faults:
            if fault.match is None or fault.match(request):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault.response
        return None

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def date_header(self) -> str:
        moment = self.now.timestamp() if self.now is not None else None
        return email.utils.formatdate(moment, usegmt=True)


def _handler_for(double: ApiDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY each keep-alive response waits
        # ~40 ms for a delayed ACK, which would make the double, not the client, the bottleneck.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            split = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(method, split.path, urllib.parse.parse_qs(split.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, _decode(raw, self.headers))
            response = double.dispatch(request)
            payload = response.payload()
            self.send_response(response.status)
            # A double may answer with another type (a file download): its header replaces the default.
            if "Content-Type" not in response.headers:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def date_time_string(self, timestamp: float | None = None) -> str:
            return double.date_header()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    return Handler


def _decode(raw: bytes, headers: Any) -> Any:
    if not raw:
        return None
    kind = headers.get("Content-Type", "")
    if "application/x-www-form-urlencoded" in kind:
        return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
