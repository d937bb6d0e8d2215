"""The manifest of a training set: what it was built from, and a hash of what it holds.

A manifest is the JSON file a training set is reproduced from: the catalog (secrets left out), the
label table and each feature table with the snapshot read and the ref pinning it, the output table,
the row count and :class:`ContentHash` of the rows. The hash does not depend on row order or on the
files the rows were written to, so a rebuild months later compares equal when, and only when, it
holds the same rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

#: The manifest format; a reader refuses others.
MANIFEST_FORMAT = "dativo.training-set/1"
#: The hash is a sum of per-row SHA-256 values modulo 2**256: order-independent, and unlike XOR it
#: still tells one copy of a row from three.
_MODULUS = 1 << 256


class ContentHash:
    """An order-independent hash of rows: each row's canonical encoding hashed, the hashes summed."""

    def __init__(self, columns: Iterable[str]) -> None:
        self.columns = list(columns)
        self.rows = 0
        self._total = 0
        self._header = json.dumps(sorted(self.columns)).encode()

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add the rows of ``batch`` (its columns in any order; the names must be this hash's)."""
        if sorted(batch.schema.names) != sorted(self.columns):
            raise ConfigError(f"rows with columns {batch.schema.names} cannot join a hash of {self.columns}")
        ordered = sorted(self.columns)
        values = [batch.column(name).to_pylist() for name in ordered]
        for row in zip(*values, strict=True):
            encoded = json.dumps([_canonical(v) for v in row], separators=(",", ":")).encode()
            row_hash = int.from_bytes(hashlib.sha256(self._header + encoded).digest())
            self._total = (self._total + row_hash) % _MODULUS
            self.rows += 1

    @property
    def hexdigest(self) -> str:
        return f"sha256-sum:{self._total:064x}"


def _canonical(value: Any) -> Any:
    """One JSON value per Python value, with the type in it where JSON would blur two (1 vs 1.0)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return ["float", "nan" if math.isnan(value) else repr(value)]
    if isinstance(value, decimal.Decimal):
        return ["decimal", str(value)]
    if isinstance(value, dt.datetime):
        aware = value.astimezone(dt.timezone.utc) if value.tzinfo else value
        return ["datetime", aware.isoformat()]
    if isinstance(value, (dt.date, dt.time)):
        return [type(value).__name__, value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["timedelta", value // dt.timedelta(microseconds=1)]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, dict):
        return ["map", sorted([str(k), _canonical(v)] for k, v in value.items())]
    if isinstance(value, (list, tuple)):
        return ["list", [_canonical(v) for v in value]]
    return [type(value).__name__, str(value)]


@dataclass(frozen=True)
class PinnedInput:
    """One table a training set read: the snapshot, and the ref that keeps it.

    :param role: ``labels`` or ``features``.
    :param columns: the columns read (label columns; feature view: entities, timestamp, features).
    :param entities: key columns (label keys, or the feature view's entities).
    :param ttl_seconds: features only: older feature rows give null; None means no limit.
    """

    role: str
    table: str
    snapshot_id: int
    ref: str
    timestamp_column: str
    entities: tuple[str, ...]
    columns: tuple[str, ...]
    ttl_seconds: int | None = None


@dataclass(frozen=True)
class TrainingSetManifest:
    """Everything needed to rebuild a training set and to know the rebuild is the same set."""

    name: str
    run_id: str
    created_at: str
    catalog: dict[str, Any]
    inputs: tuple[PinnedInput, ...]
    output_table: str | None
    output_snapshot_id: int | None
    columns: tuple[str, ...]
    row_count: int
    content_hash: str
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # JSON readers in JavaScript lose digits above 2**53: snapshot ids travel as strings.
        for entry in data["inputs"]:
            entry["snapshot_id"] = str(entry["snapshot_id"])
        if data["output_snapshot_id"] is not None:
            data["output_snapshot_id"] = str(data["output_snapshot_id"])
        return data

    def write(self, path: str | os.PathLike[str]) -> str:
        """Write the manifest as JSON to ``path`` (folders created); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return str(target)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> TrainingSetManifest:
        """Read a manifest :meth:`write` wrote; a clear error names the file and what is wrong."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"training-set manifest {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"training-set manifest {path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"training-set manifest {path}: format is {found!r}; "
                              f"expected {MANIFEST_FORMAT!r}")
        try:
            inputs = tuple(_pinned(entry) for entry in data["inputs"])
            output_snapshot = data["output_snapshot_id"]
            output_id = int(output_snapshot) if output_snapshot is not None else None
            return cls(**{**data, "inputs": inputs, "columns": tuple(data["columns"]),
                          "output_snapshot_id": output_id})
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"training-set manifest {path}: malformed ({type(exc).__name__}: {exc})"
                              ) from None


def _pinned(entry: dict[str, Any]) -> PinnedInput:
    return PinnedInput(**{**entry, "snapshot_id": int(entry["snapshot_id"]),
                          "entities": tuple(entry["entities"]), "columns": tuple(entry["columns"])})
