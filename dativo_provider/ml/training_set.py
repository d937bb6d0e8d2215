"""Training sets: a label table joined as of event time with feature tables, pinned for reproduction.

:func:`build_training_set` runs, in order:

1. **pin** every input: the snapshot read (main's head, unless given) gets a ref named
   ``dativo-training/<name>/<run>`` before anything is read, so maintenance cannot expire it meanwhile;
   a rerun of the same run finds its pins and reads the very same snapshots;
2. **join** as of event time (:mod:`dativo_provider.ml.training_join`: feature time <= event time,
   newest such row, null beyond the TTL);
3. **write** the rows, if an output table is named, through the ingest commit path (one ``replace``
   commit), hashing them on the way (:class:`~dativo_provider.ml.training_manifest.ContentHash`); the
   output table records the contract dataset its label table records (``dativo.contract``, else the
   first feature table's), so data-subject discovery finds it as a copy of that dataset and an erasure
   removes the subject's rows from it too (:mod:`dativo_provider.privacy.discovery`);
4. **record** a manifest (tables, snapshot ids, refs, row count, content hash) for
   :func:`~dativo_provider.ml.training_reproduce.reproduce_training_set`.

The pins are Iceberg *branches*, not tags, and nothing ever commits to them except an erasure. A
data-subject erasure deletes the subject's rows on every branch head and keeps the rest of each
branch (docs/privacy.md), so a pinned snapshot becomes "the same rows minus the subject" and the set
stays reproducible without the subject. A tag cannot follow: the erasure can only refuse to run
(``refs_policy="fail"``), drop the tag or move it to main's head, which holds later commits too.
Maintenance never expires a pinned snapshot: every ref head is kept, no max-ref-age is set on a pin,
and no state is carried onto a pin (:mod:`dativo_provider.iceberg.maintenance`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.maintenance import PINNED_REF_PREFIX
from dativo_provider.ml.training_join import as_of_rows, output_columns
from dativo_provider.ml.training_manifest import ContentHash, PinnedInput, TrainingSetManifest

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: Every training-set pin is a branch under this prefix (maintenance recognises them by it).
PIN_PREFIX = PINNED_REF_PREFIX
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LabelTable:
    """The entity/label table: one row per example, its entity keys and event time.

    :param table: ``namespace.table``.
    :param keys: entity key columns; feature tables join on the columns of the same names.
    :param timestamp_column: the event time; features are taken as of it.
    :param columns: further columns to keep (labels, weights); empty keeps every column of the table.
    """

    table: str
    keys: tuple[str, ...]
    timestamp_column: str
    columns: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> LabelTable:
        """From ``{"table", "keys", "timestamp_column", "columns"?}`` (an operator's rendered argument)."""
        known = _known(spec, "labels", ("table", "keys", "timestamp_column"), ("columns",))
        return cls(str(known["table"]), _names(known["keys"]), str(known["timestamp_column"]),
                   _names(known.get("columns") or ()))


@dataclass(frozen=True)
class FeatureTable:
    """A feature table: entity keys, the time a row's values became true, the features, a TTL.

    :param ttl: a feature row older than this at the event time gives null; None means no limit.
    """

    table: str
    entities: tuple[str, ...]
    timestamp_column: str
    features: tuple[str, ...]
    ttl: dt.timedelta | None = None

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> FeatureTable:
        """From ``{"contract": path, "dataset"?, "table"?}`` (the contract's ``dativoFeatures``) or
        ``{"table", "entities", "timestamp_column", "features", "ttl_days"?}``."""
        if isinstance(spec, Mapping) and "contract" in spec:
            known = _known(spec, "features", ("contract",), ("dataset", "table"))
            return cls.from_contract(str(known["contract"]), known.get("dataset"), table=known.get("table"))
        known = _known(spec, "features", ("table", "entities", "timestamp_column", "features"), ("ttl_days",))
        days = known.get("ttl_days")
        return cls(str(known["table"]), _names(known["entities"]), str(known["timestamp_column"]),
                   _names(known["features"]), dt.timedelta(days=float(days)) if days is not None else None)

    @classmethod
    def from_contract(cls, path: str, dataset: str | None = None, *,
                      table: str | None = None) -> FeatureTable:
        """The feature table a contract dataset declares with ``dativoFeatures`` (entities,
        ``timestampColumn``, features, ``ttlDays``); ``table`` overrides its ``physicalName``."""
        from dativo_provider.contracts import load_contract
        from dativo_provider.quality.plan import dataset_of

        chosen = dataset_of(load_contract(path), dataset)
        if chosen.features is None:
            raise ConfigError(f"contract {path}: dataset {chosen.name!r} declares no dativoFeatures")
        name = table or chosen.physical_name
        if not name:
            raise ConfigError(f"contract {path}: dataset {chosen.name!r} has no physicalName; pass table=")
        view = chosen.features
        ttl = dt.timedelta(days=view.ttl_days) if view.ttl_days is not None else None
        return cls(name, tuple(view.entities), view.timestamp_column, tuple(view.features), ttl)


@dataclass(frozen=True)
class TrainingSetResult:
    """What :func:`build_training_set` made: the manifest and where it was written."""

    manifest: TrainingSetManifest
    manifest_path: str

    def to_dict(self) -> dict[str, Any]:
        return {"manifest_path": self.manifest_path, "name": self.manifest.name,
                "run_id": self.manifest.run_id,
                "row_count": self.manifest.row_count, "content_hash": self.manifest.content_hash,
                "output_table": self.manifest.output_table,
                "output_snapshot_id": _text(self.manifest.output_snapshot_id),
                "inputs": [{"table": i.table, "snapshot_id": str(i.snapshot_id), "ref": i.ref}
                           for i in self.manifest.inputs]}


def build_training_set(
    catalog: CatalogConfig,
    name: str,
    labels: LabelTable,
    features: Sequence[FeatureTable],
    *,
    manifest_path: str,
    run_id: str,
    output_table: str | None = None,
    snapshot_ids: dict[str, int] | None = None,
    now: dt.datetime | None = None,
) -> TrainingSetResult:
    """Build the training set ``name`` (the module doc gives the steps) and write its manifest.

    :param run_id: names the pins with ``name`` (e.g. the Airflow run id); a rerun reuses them.
    :param output_table: ``namespace.table`` to write the rows to (replacing what it held); None only
        hashes them.
    :param snapshot_ids: read these tables at these snapshots instead of main's head.
    :param now: the creation time recorded in the manifest (default now).
    :raises ConfigError: a bad name, a missing table, snapshot or column, clashing feature names.
    :raises SourceError: a feature table with two rows for one entity and time.
    """
    if not name.strip() or not run_id.strip():
        raise ConfigError("a training set needs a non-empty name and run_id: they name its pins")
    if not features:
        raise ConfigError(f"training set {name!r}: name at least one feature table")
    ref = pin_name(name, run_id)
    iceberg = catalog.load()
    inputs = [_pin(iceberg, _label_input(iceberg, labels), ref, snapshot_ids or {})]
    inputs += [_pin(iceberg, _feature_input(view), ref, snapshot_ids or {}) for view in features]
    columns = output_columns(inputs)
    digest = ContentHash(columns)
    rows = _hashed(as_of_rows(iceberg, inputs), digest)
    if output_table:
        origin = _recorded_contract(iceberg, [labels.table, *(view.table for view in features)])
        output_snapshot = _write(catalog, output_table, name, rows, run_id, origin)
    else:
        output_snapshot = _drain(rows)
    manifest = TrainingSetManifest(
        name=name, run_id=run_id, created_at=(now or dt.datetime.now(dt.timezone.utc)).isoformat(),
        catalog={"name": catalog.name, "properties": catalog.public_properties()}, inputs=tuple(inputs),
        output_table=output_table, output_snapshot_id=output_snapshot, columns=tuple(columns),
        row_count=digest.rows, content_hash=digest.hexdigest)
    path = manifest.write(manifest_path)
    log.info("training set %s (run %s): %d rows, %s; inputs pinned as %r; manifest %s", name, run_id,
             digest.rows, digest.hexdigest, ref, path)
    return TrainingSetResult(manifest, path)


def pin_name(name: str, run_id: str) -> str:
    """The ref pinning a run's inputs: ``dativo-training/<name>/<run>`` with unsafe characters as ``-``."""
    return f"{PIN_PREFIX}{_UNSAFE.sub('-', name.strip())}/{_UNSAFE.sub('-', run_id.strip())}"


def _label_input(iceberg: Catalog, labels: LabelTable) -> PinnedInput:
    if not labels.keys:
        raise ConfigError(f"label table {labels.table}: name its entity key columns (keys)")
    wanted = labels.columns or tuple(_load(iceberg, labels.table).schema().column_names)
    columns = tuple(dict.fromkeys([*labels.keys, labels.timestamp_column, *wanted]))
    return PinnedInput("labels", labels.table, 0, "", labels.timestamp_column, tuple(labels.keys), columns)


def _feature_input(view: FeatureTable) -> PinnedInput:
    if not view.entities or not view.features:
        raise ConfigError(f"feature table {view.table}: name its entities and at least one feature")
    ttl = int(view.ttl.total_seconds()) if view.ttl is not None else None
    if ttl is not None and ttl <= 0:
        raise ConfigError(f"feature table {view.table}: ttl is {view.ttl}; it must be positive")
    columns = tuple(dict.fromkeys([*view.entities, view.timestamp_column, *view.features]))
    return PinnedInput("features", view.table, 0, "", view.timestamp_column, tuple(view.entities), columns,
                       ttl)


def _pin(iceberg: Catalog, pending: PinnedInput, ref: str, snapshot_ids: dict[str, int]) -> PinnedInput:
    """Point ``ref`` at the snapshot to read (kept if the ref already exists: a rerun reads the same)."""
    table = _load(iceberg, pending.table)
    existing = table.metadata.refs.get(ref)
    if existing is not None:
        snapshot_id = existing.snapshot_id
    else:
        snapshot_id = snapshot_ids.get(pending.table) or _main_head(table)
        if table.metadata.snapshot_by_id(snapshot_id) is None:
            raise ConfigError(f"{pending.table}: no snapshot {snapshot_id} to build the training set from")
        table.manage_snapshots().create_branch(snapshot_id, ref).commit()
    from dataclasses import replace

    return replace(pending, snapshot_id=snapshot_id, ref=ref)


def _load(iceberg: Catalog, name: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return iceberg.load_table(name)
    except NoSuchTableError:
        raise ConfigError(f"{name}: no such table in catalog {iceberg.name!r}") from None


def _main_head(table: Table) -> int:
    head = table.metadata.snapshot_by_name("main")
    if head is None:
        raise ConfigError(f"{table.name()}: the table has no snapshot yet; load rows into it first")
    return head.snapshot_id


def _hashed(batches: Iterable[pa.RecordBatch], digest: ContentHash) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        digest.add(batch)
        yield batch


def _drain(rows: Iterator[pa.RecordBatch]) -> int | None:
    """Consume ``rows`` for their hash only: no output table, so no output snapshot."""
    for _ in rows:
        pass
    return None


def _recorded_contract(iceberg: Catalog, tables: Sequence[str]) -> dict[str, str]:
    """The contract dataset the first of ``tables`` that records one records (its two properties).

    The output holds copies of the label rows (entity keys included); recording their contract dataset
    is what lets an erasure find the output table by its identifier columns and primary key. With no
    contract recorded anywhere, discovery cannot find the output: that is logged as a warning.
    """
    from dativo_provider.quality.wap import CONTRACT_DATASET_PROPERTY, CONTRACT_PROPERTY

    for name in tables:
        properties = _load(iceberg, name).properties
        if properties.get(CONTRACT_PROPERTY):
            return {CONTRACT_PROPERTY: properties[CONTRACT_PROPERTY],
                    CONTRACT_DATASET_PROPERTY: properties.get(CONTRACT_DATASET_PROPERTY, "")}
    log.warning("training set inputs %s record no contract (dativo.contract): data-subject erasures will "
                "not find the output table; load the label table under its contract", list(tables))
    return {}


def _write(catalog: CatalogConfig, table: str, name: str, rows: Iterator[pa.RecordBatch],
           run_id: str, properties: Mapping[str, str]) -> int | None:
    """Stream ``rows`` into ``table`` as one ``replace`` commit through the ingest engine; the table
    records ``properties`` before the rows land (a new table is created with them)."""
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.sources.arrow import ArrowSource

    first = next(rows, None)
    if first is None:
        raise ConfigError(f"training set {name!r}: the label table has no rows; nothing to write to {table}")

    def batches() -> Iterator[pa.RecordBatch]:
        yield first
        yield from rows

    iceberg = catalog.load()
    if properties and iceberg.table_exists(table):
        existing = iceberg.load_table(table)
        if any(existing.properties.get(k) != v for k, v in properties.items()):
            with existing.transaction() as transaction:
                transaction.set_properties(dict(properties))
    source = ArrowSource(first.schema, batches, identity=f"dativo-training-set:{name}")
    options = WriteOptions(mode="replace", table_properties=dict(properties))
    return run_ingest(source, catalog, table, options, run_id=run_id).snapshot_id


def _known(spec: Mapping[str, Any], what: str, required: tuple[str, ...], optional: tuple[str, ...]
           ) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"training set {what}: expected a mapping, got {type(spec).__name__}: {spec!r}")
    unknown = sorted(set(spec) - set(required) - set(optional))
    missing = [k for k in required if spec.get(k) in (None, "", [], ())]
    if unknown or missing:
        raise ConfigError(f"training set {what} {dict(spec)!r}: "
                          + "; ".join([*(f"unknown key {k!r}" for k in unknown),
                                       *(f"{k!r} is required" for k in missing)])
                          + f" (keys: {', '.join(required + optional)})")
    return spec


def _names(value: Any) -> tuple[str, ...]:
    """Column names from a list, or one name, or comma-separated names."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(v) for v in value)


def _text(value: int | None) -> str | None:
    return str(value) if value is not None else None
