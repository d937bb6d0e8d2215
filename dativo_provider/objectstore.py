"""Where files live, local disk or S3, decided in one place (as pyiceberg's ``load_file_io`` does for tables).

Every part of the provider that reads or writes files itself -- the files and markdown_kv sources, the
markdown_kv sink, data-subject exports, the audit trail's folder -- turns its path or URI into a
:class:`StoreLocation` here and asks it for a :mod:`pyarrow.fs` file system:

* ``s3://bucket/prefix`` is S3 (credentials and endpoint from an :class:`ObjectStoreConfig`; None
  uses the AWS credential chain);
* ``file:///dir`` and a plain path (relative paths are made absolute) are the local disk;
* any other scheme is refused with a message naming what was given.

The tables' own files go through their Iceberg FileIO: :func:`table_filesystem` builds that file system
from the table's FileIO properties, and :func:`catalog_s3_properties` turns an
:class:`ObjectStoreConfig` into those properties.

pyarrow is imported inside the functions that need it: hooks import this module at DAG-parse time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

S3_SCHEME = "s3://"
FILE_SCHEME = "file://"


def is_s3(location: str) -> bool:
    """Whether ``location`` is an ``s3://`` URI."""
    return location.startswith(S3_SCHEME)


@dataclass(frozen=True)
class StoreLocation:
    """A local directory (``bucket`` None) or an S3 bucket and prefix.

    :param base: the location as :mod:`pyarrow.fs` names it: an absolute local path, or
        ``bucket/prefix`` (no trailing slash).
    """

    base: str
    bucket: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def display(self, path: str) -> str:
        """How messages and reports name ``path`` (a pyarrow.fs path under this location)."""
        return f"{S3_SCHEME}{path}" if self.bucket else path

    def openlineage_name(self) -> tuple[str, str]:
        """(namespace, name) as OpenLineage names the directory or prefix."""
        if self.bucket:
            prefix = self.base.removeprefix(self.bucket).strip("/")
            return f"{S3_SCHEME}{self.bucket}", prefix or "/"
        return "file", self.base

    def filesystem(self, config: ObjectStoreConfig | None = None) -> pafs.FileSystem:
        """The file system to read and write it with; ``config`` is used for S3 only."""
        if self.bucket:
            return s3_filesystem(config)
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem()


def parse(location: Any, what: str = "path") -> StoreLocation:
    """``s3://bucket/prefix``, ``file:///dir`` or a local path as a :class:`StoreLocation`.

    :param what: names the setting in the error, e.g. ``"files source: 'path'"``.
    :raises ConfigError: not a non-empty string, an S3 URI without a bucket, or another scheme.
    """
    wrong = ConfigError(f"{what} must be a local directory or s3://bucket/prefix, not {location!r}")
    if not isinstance(location, str) or not location:
        raise wrong
    if is_s3(location):
        bucket, _, prefix = location.removeprefix(S3_SCHEME).partition("/")
        if not bucket:
            raise wrong
        return StoreLocation(f"{bucket}/{prefix.strip('/')}".rstrip("/"), bucket)
    if "://" in location and not location.startswith(FILE_SCHEME):
        raise wrong
    return StoreLocation(os.path.abspath(location.removeprefix(FILE_SCHEME)))


def resolve(location: str, config: ObjectStoreConfig | None = None,
            what: str = "path") -> tuple[pafs.FileSystem, str]:
    """The file system of ``location`` and the location as a path in it."""
    parsed = parse(location, what)
    return parsed.filesystem(config), parsed.base


def local_path(uri: str) -> str | None:
    """The local path of a ``file://`` URI or a plain path; None for a URI of any other scheme."""
    if uri.startswith(FILE_SCHEME):
        return uri.removeprefix(FILE_SCHEME)
    return None if "://" in uri else uri


#: URI schemes other engines write S3 table files under (Hadoop's s3a/s3n); all are S3 to us.
S3_URI_SCHEMES = ("s3", "s3a", "s3n")


def uri_filesystem(uri: str, s3: Callable[[], pafs.FileSystem]) -> tuple[pafs.FileSystem, str]:
    """The file system of any file URI a table may reference, and the URI as a path in it.

    S3 schemes get ``s3()`` (the caller's configured, usually cached, S3 file system); a plain path or
    ``file://`` the local disk; any other scheme whatever :mod:`pyarrow.fs` makes of it.
    """
    import pyarrow.fs as pafs

    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme in S3_URI_SCHEMES:
        return s3(), uri.split("://", 1)[1]
    if scheme in ("", "file"):
        return pafs.LocalFileSystem(), uri.removeprefix(FILE_SCHEME)
    return pafs.FileSystem.from_uri(uri)


def s3_filesystem(config: ObjectStoreConfig | None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem from an :class:`ObjectStoreConfig`; None uses the AWS credential chain."""
    import pyarrow.fs as pafs

    config = config or ObjectStoreConfig()
    if bool(config.access_key_id) != bool(config.secret_access_key):
        raise ConfigError("S3 connection: set both the access key id and the secret access key, or neither")
    options = {
        "access_key": config.access_key_id,
        "secret_key": config.secret_access_key,
        "session_token": config.session_token,
        "region": config.region,
    }
    if config.endpoint_url:
        scheme, _, host = config.endpoint_url.partition("://")
        if not host:
            raise ConfigError(
                f"S3 connection: endpoint_url {config.endpoint_url!r} must start with http:// or https://"
            )
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    return pafs.S3FileSystem(**{k: v for k, v in options.items() if v})


#: :class:`ObjectStoreConfig` fields by the pyiceberg FileIO property that carries them.
_CATALOG_S3_PROPERTIES = {
    "s3.endpoint": "endpoint_url",
    "s3.region": "region",
    "s3.access-key-id": "access_key_id",
    "s3.secret-access-key": "secret_access_key",
    "s3.session-token": "session_token",
}


def catalog_s3_properties(config: ObjectStoreConfig) -> dict[str, str | None]:
    """The pyiceberg FileIO properties (``s3.*``) that give a catalog's tables ``config``'s S3 access."""
    return {prop: getattr(config, name) for prop, name in _CATALOG_S3_PROPERTIES.items()}


def config_from_catalog(properties: Mapping[str, Any]) -> ObjectStoreConfig:
    """The S3 access a catalog's ``s3.*`` properties give (the inverse of :func:`catalog_s3_properties`)."""
    return ObjectStoreConfig(**{name: properties.get(prop) for prop, name in _CATALOG_S3_PROPERTIES.items()})


def table_filesystem(io_properties: Mapping[str, str],
                     location: str) -> tuple[pafs.FileSystem, str, Callable[[str], str]]:
    """The file system of an Iceberg location, configured as the table's FileIO (``io_properties``).

    :returns: the file system, ``location`` as a path in it, and a function mapping any other location
        of the table (``s3://…``, ``file://…``) to such a path.
    """
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = PyArrowFileIO(dict(io_properties))
    scheme, netloc, root = io.parse_location(location)

    def to_path(other: str) -> str:
        return io.parse_location(other, io.properties)[2]

    return io.fs_by_scheme(scheme, netloc), root.rstrip("/"), to_path
