"""A moto S3/Glue server on loopback (in-process ``mock_aws`` breaks pyarrow's S3 file system)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class MotoEndpoint:
    url: str
    access_key_id: str = "testing-key"
    secret_access_key: str = "testing-secret"
    region: str = "us-east-1"

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )


@contextmanager
def moto_server() -> Iterator[MotoEndpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoEndpoint(url=f"http://{host}:{port}")
    finally:
        server.stop()
