"""What a test's tables hold in storage, whatever the catalog: the file listing of a table, and a local
copy of every file under the test's namespace for the independent decoded scan (tests/privacy/decoded.py).

The SQL catalogs write under a local warehouse directory; the REST catalog (SeaweedFS) writes to its
S3 bucket under ``s3://lake/<namespace>/<table>/``, so there the objects are listed and downloaded with
boto3 — not through the product's file IO, so the check shares no code with what it checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.catalogs.conftest import Lake


def table_location(lake: Lake, name: str) -> str:
    """The table's location as the catalog reports it (``file:///…`` or ``s3://bucket/…``)."""
    return lake.load().load_table(lake.table(name)).metadata.location


def stored_files(lake: Lake, name: str) -> set[str]:
    """Every file under the table's location, as ``file://`` or ``s3://`` URIs."""
    location = table_location(lake, name).rstrip("/")
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        return {f"s3://{bucket}/{key}" for key in _keys(s3_client(lake), bucket, prefix + "/")}
    root = Path(location.removeprefix("file://"))
    return {f"file://{p}" for p in root.rglob("*") if p.is_file()}


def namespace_copy(lake: Lake, into: Path) -> Path:
    """A local directory holding every file of the test's namespace (downloaded from S3 for REST)."""
    if lake.kind != "rest":
        catalog = lake.load()
        folders = {Path(catalog.load_table(identifier).metadata.location.removeprefix("file://")).parent
                   for identifier in catalog.list_tables(lake.namespace)}
        assert len(folders) == 1, f"the tables of {lake.namespace} are not in one folder: {folders}"
        return folders.pop()
    client = s3_client(lake)
    bucket = lake.config.properties["warehouse"]
    into.mkdir(parents=True, exist_ok=True)
    keys = _keys(client, bucket, f"{lake.namespace}/")
    assert keys, f"nothing stored under s3://{bucket}/{lake.namespace}/"
    for key in keys:
        target = into / key
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return into / lake.namespace


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        # SeaweedFS lists its folders too, as empty objects whose keys end with "/"
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    return keys


def s3_client(lake: Lake) -> Any:
    """A boto3 client for the REST catalog's S3 gateway (the key pair the catalog's properties carry)."""
    import boto3

    p = lake.config.properties
    return boto3.client("s3", endpoint_url=p["s3.endpoint"], aws_access_key_id=p["s3.access-key-id"],
                        aws_secret_access_key=p["s3.secret-access-key"], region_name=p["s3.region"])


def referenced_files(table: Any) -> tuple[set[str], set[str]]:
    """(live, named): the files ``table``'s metadata needs to read every snapshot — the current metadata
    file and its log, manifest lists, manifests, live data files — and those plus every file a manifest
    still names as deleted. Read with pyiceberg's own readers, not the product's."""
    live = {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
    named: set[str] = set()
    for snapshot in table.snapshots():
        live.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            live.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                (named if int(entry.status) == 2 else live).add(entry.data_file.file_path)
    return live, live | named
