"""A real S3 endpoint for tests: moto's server mode on a free loopback port.

In-process ``mock_aws()`` patches botocore only, so pyarrow's own S3 client never sees it; a server
on 127.0.0.1 is reached by boto3 and pyarrow alike.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dativo_provider.connections import ObjectStoreConfig

#: moto accepts any credentials; fixed ones keep the real AWS chain (env, ~/.aws) out of tests.
ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """A running moto S3 server."""

    url: str

    def config(self) -> ObjectStoreConfig:
        """Connection settings for the engine, as a hook would build them."""
        return ObjectStoreConfig(
            access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, region=REGION, endpoint_url=self.url
        )

    def client(self) -> Any:
        """A boto3 S3 client for arranging test data."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        """Create a bucket with a unique name, so tests sharing the server never see each other."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def moto_s3_server() -> Iterator[S3Endpoint]:
    """Run moto's S3 server on a free loopback port for the duration of the block."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; test output should show failures, not traffic.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
