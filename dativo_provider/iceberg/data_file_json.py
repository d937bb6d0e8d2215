"""A written data file as plain JSON and back, exactly: what a worker hands to the task that commits.

A split ingest writes data files on many workers and commits them in one snapshot elsewhere; between
them the description travels through XCom (JSON). Everything the manifest entry needs is kept: path,
format, partition values (tagged with their kind, so a date stays a date), counts, per-column sizes
and value/null/NaN counts, lower/upper bounds (base64 of Iceberg's binary form), split offsets and the
partition spec id.
"""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile

#: Bump when the layout changes; a description with another version is refused, not misread.
FORMAT_VERSION = 1
_COUNT_FIELDS = ("column_sizes", "value_counts", "null_value_counts", "nan_value_counts")
_BOUND_FIELDS = ("lower_bounds", "upper_bounds")


def data_file_to_dict(data_file: DataFile) -> dict[str, Any]:
    """The JSON-serialisable description of a data file."""
    partition = data_file.partition
    described: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "content": int(data_file.content),
        "file_path": data_file.file_path,
        "file_format": data_file.file_format.value,
        "partition": [_tagged(partition[i]) for i in range(len(partition))],
        "record_count": data_file.record_count,
        "file_size_in_bytes": data_file.file_size_in_bytes,
        "split_offsets": list(data_file.split_offsets) if data_file.split_offsets else None,
        "sort_order_id": data_file.sort_order_id,
        "spec_id": data_file.spec_id,
    }
    for name in _COUNT_FIELDS:
        counts = getattr(data_file, name)
        described[name] = None if counts is None else {str(k): v for k, v in counts.items()}
    for name in _BOUND_FIELDS:
        bounds = getattr(data_file, name)
        described[name] = None if bounds is None else {
            str(k): base64.b64encode(v).decode("ascii") for k, v in bounds.items()
        }
    return described


def data_file_from_dict(described: dict[str, Any]) -> DataFile:
    """Rebuild the data file :func:`data_file_to_dict` described.

    :raises ConfigError: the description is not one this module wrote (or another version's).
    """
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    if not isinstance(described, dict) or described.get("version") != FORMAT_VERSION:
        shown = described.get("version") if isinstance(described, dict) else type(described).__name__
        raise ConfigError(
            f"not a data file description of version {FORMAT_VERSION} (got {shown!r}); the task that "
            "wrote it runs another provider version: rerun the whole split ingest"
        )
    arguments: dict[str, Any] = {
        name: None if described[name] is None else {int(k): int(v) for k, v in described[name].items()}
        for name in _COUNT_FIELDS
    }
    arguments.update({
        name: None if described[name] is None else {int(k): base64.b64decode(v) for k, v in described[name].items()}
        for name in _BOUND_FIELDS
    })
    data_file = DataFile.from_args(
        content=DataFileContent(described["content"]),
        file_path=described["file_path"],
        file_format=FileFormat(described["file_format"]),
        partition=Record(*[_untagged(v) for v in described["partition"]]),
        record_count=described["record_count"],
        file_size_in_bytes=described["file_size_in_bytes"],
        split_offsets=described["split_offsets"],
        sort_order_id=described["sort_order_id"],
        equality_ids=None,
        key_metadata=None,
        **arguments,
    )
    # from_args does not keep the spec id (the manifest does), so set it as the writer does.
    data_file.spec_id = described["spec_id"]
    return data_file


def _tagged(value: Any) -> Any:
    """A partition value as JSON: ints, floats, strings and booleans as they are, others tagged."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    raise ConfigError(f"a partition value of type {type(value).__name__} cannot be described as JSON: {value!r}")


def _untagged(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "decimal" in value:
        return Decimal(value["decimal"])
    if "bytes" in value:
        return base64.b64decode(value["bytes"])
    return uuid.UUID(value["uuid"])
