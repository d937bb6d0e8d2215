"""Write options for one ingest run, validated with errors that name the parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dativo_provider.exceptions import ConfigError

WriteMode = Literal["append", "replace", "overwrite", "merge"]
SchemaPolicy = Literal["strict", "evolve", "warn"]

WRITE_MODES: tuple[str, ...] = ("append", "replace", "overwrite", "merge")
SCHEMA_POLICIES: tuple[str, ...] = ("strict", "evolve", "warn")
METRICS_MODES = ("none", "counts", "full")


@dataclass(frozen=True)
class WriteOptions:
    """How rows land in the target table.

    :param mode: ``append``; ``replace`` (full refresh); ``overwrite`` the partitions present in the
        new data; ``merge`` on ``merge_keys`` (rows with those keys are replaced, others appended).
    :param merge_keys: key columns for ``merge``.
    :param partition_by: partition fields for a new table, e.g. ``["day(created_at)", "region",
        "bucket(16, id)", "truncate(4, sku)"]``.
    :param sort_by: sort order for a new table, e.g. ``["customer_id", "created_at desc"]``; each
        written row group is sorted by it.
    :param schema_policy: on drift, ``strict`` fails with a diff; ``evolve`` adds columns, widens types
        and makes columns optional, keeping what it cannot change (a narrower source type, a new NOT
        NULL); ``warn`` never changes the table: it writes when every value fits and fails with the diff
        otherwise. No policy drops a value (see ``POLICY_OUTCOMES`` in :mod:`dativo_provider.iceberg.schema`).
    :param required_columns: a source column declared NOT NULL (a primary key, or a non-nullable
        Arrow field) becomes a required table column; False makes every column optional and ignores the
        source's NOT NULL.
    :param branch: commit to this branch instead of main (write-audit-publish).
    :param table_properties: Iceberg properties for a new table.
    :param column_properties: per column, ``{"metrics": "none"|"counts"|"full"|"truncate(N)", "doc": "..."}``.
    :param target_file_size_mb: roll to a new data file after this many MB of Parquet.
    :param max_commit_attempts: attempts when concurrent writers win the commit race.
    """

    mode: WriteMode = "append"
    merge_keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()
    schema_policy: SchemaPolicy = "evolve"
    required_columns: bool = True
    branch: str | None = None
    table_properties: Mapping[str, str] = field(default_factory=dict)
    column_properties: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    target_file_size_mb: int = 256
    max_commit_attempts: int = 10

    def __post_init__(self) -> None:
        if self.mode not in WRITE_MODES:
            raise ConfigError(f"write option 'mode' is {self.mode!r}; expected one of {', '.join(WRITE_MODES)}")
        if self.schema_policy not in SCHEMA_POLICIES:
            raise ConfigError(
                f"write option 'schema_policy' is {self.schema_policy!r}; "
                f"expected one of {', '.join(SCHEMA_POLICIES)}"
            )
        if not isinstance(self.required_columns, bool):
            raise ConfigError(
                f"write option 'required_columns' is {self.required_columns!r}; expected true or false"
            )
        if self.mode == "merge" and not self.merge_keys:
            raise ConfigError("write option 'merge_keys' is required when mode is 'merge'")
        if self.mode != "merge" and self.merge_keys:
            raise ConfigError(f"write option 'merge_keys' only applies to mode 'merge', not {self.mode!r}")
        if self.target_file_size_mb < 1:
            raise ConfigError("write option 'target_file_size_mb' must be at least 1")
        if self.max_commit_attempts < 1:
            raise ConfigError("write option 'max_commit_attempts' must be at least 1")
        for column, props in self.column_properties.items():
            unknown = set(props) - {"metrics", "doc"}
            if unknown:
                raise ConfigError(
                    f"write option 'column_properties.{column}' has unknown keys {sorted(unknown)}; "
                    "allowed: metrics, doc"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> WriteOptions:
        """Build from a plain dict (a templated operator argument), naming any unknown key."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown write option(s) {unknown}; allowed: {sorted(known)}")
        for key in ("merge_keys", "partition_by", "sort_by"):
            if isinstance(values.get(key), str):
                values[key] = (values[key],)
            elif key in values:
                values[key] = tuple(values[key])
        return cls(**values)
