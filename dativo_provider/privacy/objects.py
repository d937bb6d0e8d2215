"""Small files directly under a local directory or an ``s3://bucket/prefix``: the audit trail's event
files, its sealed head and the anchors of requests all live in such a folder.

Creating a file is exclusive (locally: a fully written temporary file hard-linked under its name, so a
crash never leaves half a file; on S3: ``If-None-Match: *``); replacing one is atomic (``os.replace``,
or one S3 PUT). Reads and listings go through ``pyarrow.fs``; S3 writes through boto3 (pyarrow cannot
send conditional headers), so S3 needs the ``aws`` extra.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from dativo_provider import objectstore


class ObjectFiles:
    """The files of one folder.

    :param location: a local directory (created with mode 0700 on first write) or ``s3://bucket/prefix``.
    :param connection: S3 credentials and endpoint (an ``ObjectStoreConfig``); None for the AWS chain.
    """

    def __init__(self, location: str, connection: Any = None) -> None:
        self.location = location.rstrip("/")
        self.connection = connection
        self.place = objectstore.parse(self.location, "audit and anchor folder")
        self.s3 = self.place.is_s3
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"ObjectFiles({self.location!r})"

    def names(self, pattern: re.Pattern[str]) -> dict[str, str]:
        """The base names matching ``pattern`` (whole name), each with the path :meth:`read` takes."""
        if not self.s3:  # names only: a listing that stats files races with temporary files vanishing
            found = os.listdir(self.location) if os.path.isdir(self.location) else []
            return {name: os.path.join(self.location, name) for name in found if pattern.fullmatch(name)}
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.place.base, allow_not_found=True, recursive=False)
        return {info.base_name: info.path for info in self._filesystem().get_file_info(selector)
                if info.type == pafs.FileType.File and pattern.fullmatch(info.base_name)}

    def read(self, path: str) -> bytes:
        """The bytes of ``path`` (as :meth:`names` returned it)."""
        with self._filesystem().open_input_stream(path) as stream:
            return stream.read()

    def read_name(self, name: str) -> bytes | None:
        """The bytes of the file called ``name``, or None when there is none."""
        try:
            return self.read(f"{self.place.base}/{name}")
        except FileNotFoundError:
            return None

    def create(self, name: str, data: bytes) -> None:
        """Write a new file; :class:`FileExistsError` when ``name`` exists already."""
        if self.s3:
            self._put_s3(name, data, exclusive=True)
        else:
            self._put_local(name, data, lambda temporary, target: os.link(temporary, target))

    def replace(self, name: str, data: bytes) -> None:
        """Write ``name`` whole, replacing what was there in one step."""
        if self.s3:
            self._put_s3(name, data, exclusive=False)
        else:
            self._put_local(name, data, os.replace)

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs = self.place.filesystem(self.connection)
        return self._fs

    def _put_local(self, name: str, data: bytes, publish: Any) -> None:
        os.makedirs(self.location, mode=0o700, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=self.location)
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            publish(temporary, os.path.join(self.location, name))
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def _put_s3(self, name: str, data: bytes, *, exclusive: bool) -> None:
        from dativo_provider.optional import require

        require("boto3", "aws")
        from botocore.exceptions import ClientError

        bucket = self.place.bucket
        prefix = self.place.base.removeprefix(bucket or "").strip("/")
        key = f"{prefix}/{name}" if prefix else name
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            _s3_client(self.connection).put_object(Bucket=bucket, Key=key, Body=data,
                                                   ContentType="application/json", **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if exclusive and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(f"s3://{bucket}/{key} exists") from None
            raise


def _s3_client(connection: Any) -> Any:
    import boto3

    options = {
        "aws_access_key_id": getattr(connection, "access_key_id", None),
        "aws_secret_access_key": getattr(connection, "secret_access_key", None),
        "aws_session_token": getattr(connection, "session_token", None),
        "region_name": getattr(connection, "region", None),
        "endpoint_url": getattr(connection, "endpoint_url", None),
    }
    return boto3.client("s3", **{k: v for k, v in options.items() if v})
