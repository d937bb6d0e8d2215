"""MLflow dataset inputs from Iceberg: a training set, or any table at a snapshot, loadable later as it was.

- :class:`IcebergDatasetSource` is an MLflow ``DatasetSource`` (type ``dativo_iceberg``) registered
  through the ``mlflow.dataset_source`` entry point, so ``mlflow.data.get_source(run_input)`` turns a
  logged input back into it in any process that has this package installed. It records the catalog's
  identity without secrets (name, non-secret properties, the URI without its password), the table, the
  snapshot id, the ref that keeps the snapshot and, for a training set, the manifest path and content
  hash. :meth:`IcebergDatasetSource.load` reads exactly that snapshot.
- :func:`log_training_set` logs a training set (its manifest) as a run input; the output snapshot is
  pinned on the output table under the set's own pin (``dativo-training/<name>/<run>``) so maintenance
  keeps it, as it keeps the pinned inputs. :func:`log_iceberg_table` logs any table at a snapshot, tag
  or branch.

**Which catalog ``load()`` reads.** A source carries no credentials, so the reader supplies them, in
this order: the ``catalog`` argument (a :class:`~dativo_provider.iceberg.catalog.CatalogConfig`, a
pyiceberg catalog, or a mapping of properties); else the recorded properties overlaid with pyiceberg's
own configuration of the catalog's name (``~/.pyiceberg.yaml`` or ``PYICEBERG_CATALOG__<NAME>__*``
environment variables, where credentials belong); a catalog needing no secret (SQLite and a local
warehouse) loads from the recorded properties alone.

**Erasures.** Only a data-subject erasure moves a training-set pin (docs/privacy.md): when the recorded
pin's head is no longer the recorded snapshot, ``load()`` reads the pin's head -- the set minus the
erased rows -- and logs that it did, never the pre-erasure snapshot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

with warnings.catch_warnings():
    # Importing MLflow loads the `mlflow.dataset_source` entry points, ours among them. When this module is
    # what imports MLflow first, that load finds it half-initialised and MLflow warns; the class is
    # registered explicitly at the end of this module instead (register_source).
    warnings.filterwarnings("ignore", message=r"Failure attempting to register dataset constructor "
                                              r"\"EntryPoint\(name='dativo_iceberg'", category=UserWarning)
    from mlflow.data.dataset import Dataset
    from mlflow.data.dataset_source import DatasetSource

from dativo_provider.exceptions import ConfigError, TerminalError
from dativo_provider.iceberg.catalog import public_properties
from dativo_provider.ml.training_manifest import ContentHash, TrainingSetManifest

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: The MLflow source type (also the name of the entry point in pyproject.toml). Not plain "iceberg":
#: a later MLflow built-in of that name would take the type over from us.
SOURCE_TYPE = "dativo_iceberg"
#: ``dativo-iceberg://<catalog>/<namespace>.<table>@<snapshot id>``: a raw source MLflow can resolve.
URI_SCHEME = "dativo-iceberg://"
#: MLflow refuses longer dataset digests (mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE).
DIGEST_LENGTH = 32


class ContentMismatchError(TerminalError):
    """``load(verify=True)`` read rows whose content hash is not the one recorded."""


@dataclass(frozen=True)
class SnapshotLocation:
    """What an :class:`IcebergDatasetSource` points at (plain data: JSON in the tracking store).

    :param catalog: the catalog's name.
    :param catalog_properties: its pyiceberg properties without secrets (no token, credential, key,
        password; the URI without its password).
    :param ref: the branch or tag that keeps the snapshot (a training-set pin), if any.
    :param manifest_path: the training-set manifest, if the table is a training set's output.
    :param content_hash: the manifest's content hash of the rows.
    """

    catalog: str
    table: str
    snapshot_id: int
    catalog_properties: Mapping[str, str]
    ref: str | None = None
    manifest_path: str | None = None
    content_hash: str | None = None
    columns: tuple[str, ...] = ()


class IcebergDatasetSource(DatasetSource):
    """An Iceberg table at one snapshot, as an MLflow dataset source (module doc: catalog, erasures)."""

    def __init__(self, location: SnapshotLocation) -> None:
        self.location = location

    @staticmethod
    def _get_source_type() -> str:
        return SOURCE_TYPE

    @property
    def uri(self) -> str:
        """``dativo-iceberg://<catalog>/<table>@<snapshot id>``."""
        return f"{URI_SCHEME}{self.location.catalog}/{self.location.table}@{self.location.snapshot_id}"

    def load(self, catalog: Any = None, *, columns: list[str] | None = None,
             verify: bool = False) -> pa.Table:
        """The rows of the recorded snapshot as a pyarrow Table (``.to_pandas()`` for pandas).

        :param catalog: a ``CatalogConfig``, a pyiceberg catalog or a mapping of catalog properties;
            default: the recorded properties with pyiceberg's configuration of the catalog's name.
        :param columns: read only these; default the recorded columns (a training set's), else all.
        :param verify: hash the rows and compare with the recorded content hash (a training set).
        :raises ConfigError: the table, or the snapshot and its pin, no longer exist.
        :raises ContentMismatchError: ``verify`` and the rows differ from the recorded ones.
        """
        return self.batch_reader(catalog, columns=columns, verify=verify).read_all()

    def batch_reader(self, catalog: Any = None, *, columns: list[str] | None = None,
                     verify: bool = False) -> pa.RecordBatchReader:
        """As :meth:`load`, streamed: batches one at a time (a hash mismatch raises at the end)."""
        import pyarrow as pa

        table = _load_table(_catalog(catalog, self.location), self.location.table)
        snapshot_id = self._snapshot_to_read(table)
        selected = tuple(columns or self.location.columns or ("*",))
        reader = table.scan(snapshot_id=snapshot_id, selected_fields=selected).to_arrow_batch_reader()
        if not verify:
            return reader
        if not self.location.content_hash:
            raise ConfigError(f"{self.uri}: no content hash recorded (not a training set); "
                              "load without verify")
        digest = ContentHash(reader.schema.names)
        expected = self.location.content_hash

        def checked() -> Any:
            for batch in reader:
                digest.add(batch)
                yield batch
            if digest.hexdigest != expected:
                raise ContentMismatchError(f"{self.uri}: read {digest.rows} rows hashing to "
                                           f"{digest.hexdigest}; the manifest records {expected}")

        return pa.RecordBatchReader.from_batches(reader.schema, checked())

    def _snapshot_to_read(self, table: Table) -> int:
        """The recorded snapshot, or its pin's head when an erasure moved the pin (module doc)."""
        where = self.location
        pin = table.metadata.refs.get(where.ref) if where.ref else None
        if pin is not None and pin.snapshot_id != where.snapshot_id:
            log.warning("%s: the pin %r moved from snapshot %s to %s (only erasures move a pin): reading the "
                        "pin's head, the logged rows minus erased ones", where.table, where.ref,
                        where.snapshot_id, pin.snapshot_id)
            return pin.snapshot_id
        if table.metadata.snapshot_by_id(where.snapshot_id) is None:
            pin_gone = f" and its pin {where.ref!r} removed" if where.ref else ""
            raise ConfigError(f"{self.uri}: snapshot {where.snapshot_id} of {where.table} no longer exists "
                              f"(expired{pin_gone}); "
                              "pin snapshots you log (a training set's are pinned when logged)")
        return where.snapshot_id

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith(URI_SCHEME)

    @classmethod
    def _resolve(cls, raw_source: Any) -> IcebergDatasetSource:
        """From ``dativo-iceberg://<catalog>/<namespace>.<table>@<snapshot id>``."""
        catalog, _, rest = str(raw_source).removeprefix(URI_SCHEME).partition("/")
        table, _, snapshot = rest.rpartition("@")
        if not (catalog and table and snapshot.isdigit()):
            raise ConfigError(f"{raw_source!r}: expected "
                              f"{URI_SCHEME}<catalog>/<namespace>.<table>@<snapshot id>")
        return cls(SnapshotLocation(catalog, table, int(snapshot), {}))

    def to_dict(self) -> dict[str, Any]:
        where = self.location
        data: dict[str, Any] = {"catalog": where.catalog,
                                "catalog_properties": dict(where.catalog_properties),
                                "table": where.table, "snapshot_id": str(where.snapshot_id)}
        optional = {"ref": where.ref, "manifest_path": where.manifest_path,
                    "content_hash": where.content_hash, "columns": list(where.columns)}
        return {**data, **{k: v for k, v in optional.items() if v}}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> IcebergDatasetSource:
        try:
            return cls(SnapshotLocation(
                catalog=str(source_dict["catalog"]), table=str(source_dict["table"]),
                snapshot_id=int(source_dict["snapshot_id"]),
                catalog_properties=dict(source_dict.get("catalog_properties") or {}),
                ref=source_dict.get("ref"), manifest_path=source_dict.get("manifest_path"),
                content_hash=source_dict.get("content_hash"),
                columns=tuple(source_dict.get("columns") or ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{SOURCE_TYPE} dataset source {source_dict!r}: malformed "
                              f"({type(exc).__name__}: {exc})") from None


class IcebergDataset(Dataset):
    """An MLflow dataset over an :class:`IcebergDatasetSource`: no data in it, the source reads it.

    The digest is the content hash's first 32 hex digits for a training set, else a hash of the table's
    UUID and snapshot id: equal digests mean the same rows.
    """

    def __init__(self, source: IcebergDatasetSource, name: str, digest: str, row_count: int | None) -> None:
        self._row_count = row_count
        super().__init__(source=source, name=name, digest=digest)

    def _compute_digest(self) -> str:  # the constructor always receives one
        return hashlib.sha256(self.source.to_json().encode()).hexdigest()[:DIGEST_LENGTH]

    @property
    def source(self) -> IcebergDatasetSource:
        source = self._source
        assert isinstance(source, IcebergDatasetSource)
        return source

    @property
    def profile(self) -> dict[str, Any]:
        where = self.source.location
        return {"num_rows": self._row_count, "table": where.table, "snapshot_id": str(where.snapshot_id)}

    @property
    def schema(self) -> None:
        return None

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def training_set_dataset(manifest_or_path: TrainingSetManifest | str | os.PathLike[str], *,
                         catalog: Any = None, pin: bool = True,
                         manifest_path: str | None = None) -> IcebergDataset:
    """The MLflow dataset of a training set: its output table at the output snapshot.

    :param manifest_or_path: the manifest, or the path of its JSON file.
    :param catalog: as in :meth:`IcebergDatasetSource.load`; needed to pin the output snapshot.
    :param pin: keep the output snapshot with the set's pin (a branch) on the output table, so that
        maintenance never expires what the run trained on.
    :param manifest_path: where the manifest lives, when a manifest object is given.
    :raises ConfigError: the set was not written to a table (nothing to read back), or the output
        snapshot no longer exists.
    """
    if isinstance(manifest_or_path, TrainingSetManifest):
        manifest, path = manifest_or_path, manifest_path
    else:
        manifest, path = TrainingSetManifest.read(manifest_or_path), str(manifest_or_path)
    if manifest.output_table is None or manifest.output_snapshot_id is None:
        raise ConfigError(f"training set {manifest.name!r} (manifest {path}) was not written to a table: "
                          "give TrainingSetOperator / build_training_set an output_table to log it to MLflow")
    properties = public_properties(manifest.catalog.get("properties") or {})
    ref = manifest.inputs[0].ref if manifest.inputs else None
    location = SnapshotLocation(str(manifest.catalog["name"]), manifest.output_table,
                                manifest.output_snapshot_id, properties, ref, path, manifest.content_hash,
                                tuple(manifest.columns))
    if pin and ref:
        location = _pinned(_catalog(catalog, location), location)
    digest = manifest.content_hash.rpartition(":")[2][:DIGEST_LENGTH]
    return IcebergDataset(IcebergDatasetSource(location), manifest.name, digest, manifest.row_count)


def table_dataset(catalog: CatalogConfig, table: str, *, snapshot_id: int | None = None,
                  ref: str | None = None, name: str | None = None) -> IcebergDataset:
    """The MLflow dataset of ``table`` at ``snapshot_id``, else at the head of ``ref`` (a tag or branch),
    else at main's head; the ref is recorded so the snapshot stays findable.

    :raises ConfigError: no such table, snapshot or ref; or both a snapshot id and a ref.
    """
    if snapshot_id is not None and ref:
        raise ConfigError(f"{table}: give a snapshot_id or a ref (tag or branch), not both")
    loaded = _load_table(catalog.load(), table)
    snapshot = (loaded.metadata.snapshot_by_id(snapshot_id) if snapshot_id is not None
                else loaded.metadata.snapshot_by_name(ref or "main"))
    if snapshot is None:
        refs = ", ".join(sorted(loaded.metadata.refs)) or "none"
        wanted = f"snapshot {snapshot_id}" if snapshot_id is not None else f"tag or branch {ref or 'main'!r}"
        raise ConfigError(f"{table}: no {wanted} (its refs: {refs})")
    location = SnapshotLocation(catalog.name, table, snapshot.snapshot_id, public_properties(
        catalog.properties), ref)
    identity = f"{loaded.metadata.table_uuid}@{snapshot.snapshot_id}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:DIGEST_LENGTH]
    rows = snapshot.summary.get("total-records") if snapshot.summary is not None else None
    return IcebergDataset(IcebergDatasetSource(location), name or f"{table}@{snapshot.snapshot_id}", digest,
                          int(rows) if rows is not None else None)


def log_training_set(manifest_or_path: TrainingSetManifest | str | os.PathLike[str],
                     context: str = "training", *, catalog: Any = None, run_id: str | None = None,
                     pin: bool = True, tags: Mapping[str, str] | None = None,
                     log_manifest: bool = True, tracking_uri: str | None = None) -> IcebergDataset:
    """Log a training set as an input of an MLflow run (:func:`training_set_dataset` makes the dataset).

    :param context: the input's ``mlflow.data.context`` tag, e.g. ``training`` or ``validation``.
    :param run_id: the run to log to; default the active run (started if there is none, as
        ``mlflow.log_input`` does).
    :param log_manifest: also store the manifest JSON as the run artifact
        ``dativo/training_sets/<name>.json``, so the set can be rebuilt from the run alone.
    :param tracking_uri: log to this tracking server; default MLflow's (``MLFLOW_TRACKING_URI``).
    :returns: the logged dataset.
    """
    import mlflow

    dataset = training_set_dataset(manifest_or_path, catalog=catalog, pin=pin)
    target = _log(dataset, context, run_id, tags, tracking_uri)
    if log_manifest and dataset.source.location.manifest_path:
        manifest = TrainingSetManifest.read(dataset.source.location.manifest_path)
        artifact = f"dativo/training_sets/{manifest.name}.json"
        mlflow.MlflowClient(tracking_uri).log_dict(target, manifest.to_dict(), artifact)
    log.info("MLflow run %s: training set %s logged as input (%s, context %s)", target, dataset.name,
             dataset.source.uri, context)
    return dataset


def log_iceberg_table(catalog: CatalogConfig, table: str, context: str | None = None, *,
                      snapshot_id: int | None = None, ref: str | None = None, name: str | None = None,
                      run_id: str | None = None, tags: Mapping[str, str] | None = None,
                      tracking_uri: str | None = None) -> IcebergDataset:
    """Log ``table`` at a snapshot (:func:`table_dataset`) as an input of an MLflow run."""
    dataset = table_dataset(catalog, table, snapshot_id=snapshot_id, ref=ref, name=name)
    target = _log(dataset, context, run_id, tags, tracking_uri)
    log.info("MLflow run %s: %s logged as input", target, dataset.source.uri)
    return dataset


def register_source() -> None:
    """Register :class:`IcebergDatasetSource` with MLflow in this process unless its entry point did
    (an environment whose package metadata predates the entry point)."""
    from mlflow.data.dataset_source_registry import get_registered_sources, register_dataset_source

    if not any(source._get_source_type() == SOURCE_TYPE for source in get_registered_sources()):
        # MLflow registers source classes; its annotation says instance.
        register_dataset_source(IcebergDatasetSource)  # type: ignore[arg-type]


def _log(dataset: IcebergDataset, context: str | None, run_id: str | None,
         tags: Mapping[str, str] | None, tracking_uri: str | None = None) -> str:
    """Log ``dataset`` to ``run_id`` (default: the active run, started if needed); returns the run id."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    register_source()
    if run_id is None:
        if tracking_uri:
            raise ConfigError("tracking_uri needs run_id: the active run belongs to MLflow's own "
                              "tracking URI")
        mlflow.log_input(dataset, context=context, tags=dict(tags or {}))
        active = mlflow.active_run()
        assert active is not None  # log_input starts a run when there is none
        return str(active.info.run_id)
    input_tags = [InputTag(key, value) for key, value in (tags or {}).items()]
    if context:
        input_tags.append(InputTag(MLFLOW_DATASET_CONTEXT, context))
    entity = DatasetInput(dataset._to_mlflow_entity(), input_tags)
    mlflow.MlflowClient(tracking_uri).log_inputs(run_id, [entity])
    return run_id


def _catalog(catalog: Any, location: SnapshotLocation) -> Catalog:
    """The pyiceberg catalog to read ``location`` with (module doc: the order)."""
    from dativo_provider.iceberg.catalog import CatalogConfig

    if catalog is None:
        from pyiceberg.utils.config import Config

        configured = Config().get_catalog_config(location.catalog) or {}
        merged = {**location.catalog_properties, **{k: str(v) for k, v in configured.items()}}
        if not merged:
            raise ConfigError(f"catalog {location.catalog!r}: nothing recorded and no pyiceberg "
                              "configuration of that name; pass catalog= to load()")
        return CatalogConfig(location.catalog, merged).load()
    if isinstance(catalog, CatalogConfig):
        return catalog.load()
    if isinstance(catalog, Mapping):
        return CatalogConfig(location.catalog, {str(k): str(v) for k, v in catalog.items()}).load()
    if hasattr(catalog, "load_table"):
        return catalog
    raise ConfigError(f"catalog: expected a CatalogConfig, a pyiceberg catalog or properties, "
                      f"not {type(catalog).__name__}")


def _load_table(catalog: Catalog, table: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(table)
    except NoSuchTableError:
        raise ConfigError(f"{table}: no such table in catalog {catalog.name!r}") from None


def _pinned(catalog: Catalog, location: SnapshotLocation) -> SnapshotLocation:
    """``location`` with its snapshot kept by its ref on the output table (created if missing). A ref of
    that name already on another snapshot is left alone and not recorded: it pins an earlier output."""
    from dataclasses import replace

    table = _load_table(catalog, location.table)
    if table.metadata.snapshot_by_id(location.snapshot_id) is None:
        raise ConfigError(f"{location.table}: the training set's output snapshot {location.snapshot_id} no "
                          "longer exists (overwritten and expired); rebuild the set and log the new manifest")
    assert location.ref is not None
    existing = table.metadata.refs.get(location.ref)
    if existing is None:
        table.manage_snapshots().create_branch(location.snapshot_id, location.ref).commit()
    elif existing.snapshot_id != location.snapshot_id:
        log.warning("%s: the ref %r already pins snapshot %s, not the logged %s; the logged snapshot is not "
                    "pinned", location.table, location.ref, existing.snapshot_id, location.snapshot_id)
        return replace(location, ref=None)
    return location


register_source()
