"""OpenLineage names of Iceberg tables, as the OpenLineage Spark integration gives them.

The naming spec has no Iceberg entry; Spark's Iceberg handler is what every consumer (Marquez,
OpenMetadata, DataHub) already resolves, so a table loaded here and read by Spark is one dataset:

* the dataset is the table's **physical location**: ``file`` + the absolute path for local tables,
  ``s3://bucket`` + the key prefix for S3 (``gs://``, ``abfss://``... alike);
* a **symlink** (type ``TABLE``) names it in its catalog: ``{namespace: <catalog URI>, name:
  "namespace.table"}``; a Glue catalog is ``arn:aws:glue:<region>:<account>`` and ``table/<db>/<table>``;
* a **catalog facet** (``CatalogDatasetFacet``): framework ``iceberg``, the catalog type and name, its
  URI (``metadataUri``) and warehouse (``warehouseUri``), source ``dativo``;
* the **snapshot id** (as text: it exceeds 2^53) is the dataset version.

No URI here ever carries a password: every catalog URI goes through
:func:`~dativo_provider.iceberg.catalog.without_password`, and catalog properties through
:func:`~dativo_provider.iceberg.catalog.public_properties`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dativo_provider.iceberg.catalog import public_properties, without_password

#: ``source`` of the catalog facet: the system that reports the catalog (Spark says ``spark``).
CATALOG_SOURCE = "dativo"
#: pyiceberg's catalog type → the type name the Spark integration reports (``sql`` is Iceberg's JDBC catalog).
_CATALOG_TYPES = {"sql": "jdbc"}


@dataclass(frozen=True)
class IcebergDatasetName:
    """Everything that names one Iceberg table in an OpenLineage event (see the module doc)."""

    namespace: str
    name: str
    symlink_namespace: str
    symlink_name: str
    catalog_name: str
    catalog_type: str
    metadata_uri: str | None
    warehouse_uri: str | None
    version: str | None = None

    def symlink(self) -> dict[str, str]:
        """The symlinks facet's identifier, as JSON."""
        return {"namespace": self.symlink_namespace, "name": self.symlink_name, "type": "TABLE"}


def physical_name(location: str) -> tuple[str, str]:
    """``(namespace, name)`` of a file-system location, as OpenLineage's Spark ``PathUtils`` gives it.

    >>> physical_name("s3://lake/warehouse/shop.db/orders")
    ('s3://lake', 'warehouse/shop.db/orders')
    >>> physical_name("file:///srv/warehouse/shop.db/orders")
    ('file', '/srv/warehouse/shop.db/orders')
    """
    parts = urllib.parse.urlsplit(location)
    if not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1:  # a path (or a drive letter)
        path = urllib.parse.unquote(parts.path) if parts.scheme == "file" else location
        return "file", path.rstrip("/") or "/"
    authority = parts.netloc.rpartition("@")[2]  # never a user:password
    return f"{parts.scheme}://{authority}", parts.path.strip("/") or "/"


def iceberg_dataset_name(
    catalog_name: str,
    catalog_properties: Mapping[str, Any],
    table: str,
    location: str,
    snapshot_id: int | str | None = None,
) -> IcebergDatasetName:
    """The OpenLineage name of ``table`` (``"namespace.table"``) stored at ``location``.

    :param catalog_name: the pyiceberg catalog's name.
    :param catalog_properties: its properties; secrets are dropped here, never copied.
    :param location: the table's location (``table.location()``).
    :param snapshot_id: the snapshot read or written, None when unknown (a start event).
    """
    properties = public_properties(catalog_properties)
    kind = properties.get("type", "rest")
    namespace, name = physical_name(location)
    symlink_namespace, symlink_name = _symlink(catalog_name, properties, table)
    return IcebergDatasetName(
        namespace=namespace,
        name=name,
        symlink_namespace=symlink_namespace,
        symlink_name=symlink_name,
        catalog_name=catalog_name,
        catalog_type=_CATALOG_TYPES.get(kind, kind),
        metadata_uri=properties.get("uri"),
        warehouse_uri=properties.get("warehouse"),
        version=None if snapshot_id in (None, "", "None") else str(snapshot_id),
    )


def _symlink(catalog_name: str, properties: Mapping[str, str], table: str) -> tuple[str, str]:
    """The catalog's name for ``table``: Glue's ARN form, else the catalog URI and ``namespace.table``."""
    if properties.get("type") == "glue":
        region = properties.get("glue.region") or properties.get("client.region") or "unknown-region"
        account = properties.get("glue.id") or "unknown-account"
        namespace, _, name = table.rpartition(".")
        return f"arn:aws:glue:{region}:{account}", f"table/{namespace}/{name}"
    uri = properties.get("uri")
    return (without_password(uri) if uri else f"iceberg://{catalog_name}"), table
