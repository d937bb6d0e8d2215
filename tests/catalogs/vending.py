"""A REST catalog that vends storage credentials with each table, built from ``weed mini`` (which does not).

Catalogs such as Polaris, Unity, Gravitino or AWS S3 Tables return the S3 endpoint and (short-lived)
credentials in the ``config`` of every LoadTableResult, and the client is configured with nothing but the
catalog's URI and its own credential. ``vending_catalog`` puts a small HTTP proxy in front of the real
REST catalog that forwards every call unchanged and adds the S3 properties to each table it returns, so
the code paths that must use the table's FileIO (and not the catalog's properties) are exercised.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.rest_catalog import REGION

#: Request headers passed on to the catalog (the rest are the proxy's own business).
_FORWARDED = ("Authorization", "Content-Type", "Accept", "X-Iceberg-Access-Delegation")


@contextmanager
def vending_catalog(rest: Any) -> Iterator[dict[str, str]]:
    """pyiceberg properties of a catalog that vends ``rest``'s S3 access: no ``s3.*`` in them."""
    vended = {"s3.endpoint": rest.s3_endpoint, "s3.access-key-id": rest.access_key_id,
              "s3.secret-access-key": rest.secret_access_key, "s3.region": REGION}
    upstream = rest.catalog_uri

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k in _FORWARDED if (v := self.headers.get(k)) is not None}
            request = urllib.request.Request(upstream + self.path, data=body, headers=headers,
                                             method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, content, kind = answer.status, answer.read(), answer.headers.get("Content-Type")
            except urllib.error.HTTPError as error:
                status, content, kind = error.code, error.read(), error.headers.get("Content-Type")
            if kind and "json" in kind and content:
                document = json.loads(content)
                if isinstance(document, dict) and "metadata-location" in document:  # a LoadTableResult
                    document["config"] = {**document.get("config", {}), **vended}
                    content = json.dumps(document).encode()
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"type": "rest", "uri": f"http://127.0.0.1:{server.server_address[1]}",
               "warehouse": rest.warehouse, "credential": f"{rest.access_key_id}:{rest.secret_access_key}"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
