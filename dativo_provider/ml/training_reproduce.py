"""Rebuild a training set from its manifest and say whether it holds the same rows.

Each input is read at the head of the ref that pinned it. Normally that is still the snapshot the
manifest records, and the rebuilt rows hash to the recorded content hash whatever was committed to
the tables since. The one thing that may move a pin is a data-subject erasure: its delete commits on
every branch head (a pin included), and its purge may seal the branch with an empty commit and expire
the pinned snapshot. Every snapshot between the recorded one and the pin's head must then carry the
erasure's marks (``dativo.dsr-request`` / ``dativo.dsr-purge``), or an empty state carry; the rebuild
is the set minus the subject's rows, and the result says which erasures changed it and how many rows
went. A pin changed by anything else, or removed, cannot reproduce the set: that is an error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import TerminalError
from dativo_provider.ml.training_join import as_of_rows
from dativo_provider.ml.training_manifest import ContentHash, PinnedInput, TrainingSetManifest

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table.metadata import TableMetadata

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

#: Snapshot-summary marks of the commits an erasure makes (privacy.erase / privacy.purge).
_ERASURE_KEYS = ("dativo.dsr-request", "dativo.dsr-purge")
#: An empty snapshot re-committing a source's state (maintenance, purge): it changes no rows.
_CARRY_KEY = "dativo.carried-from"


class PinMovedError(TerminalError):
    """A pin was removed, or moved by something other than an erasure: the set cannot be reproduced."""


@dataclass
class ReproduceResult:
    """How a rebuild compares with the manifest.

    :param status: ``identical`` (same hash), ``erased`` (differs, and only erasures changed the pinned
        inputs), ``different`` (differs with the pins unchanged: the data under them changed).
    :param rows_removed: recorded rows minus rebuilt rows.
    :param erasures: per table, the erasure requests that changed its pinned snapshot.
    """

    name: str
    run_id: str
    status: str
    row_count: int
    expected_row_count: int
    content_hash: str
    expected_content_hash: str
    rows_removed: int
    erasures: dict[str, list[str]] = field(default_factory=dict)
    snapshots_read: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def reproduced(self) -> bool:
        """True unless the rows differ for a reason the pins do not explain."""
        return self.status != "different"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reproduce_training_set(manifest_path: str | os.PathLike[str], catalog: CatalogConfig | None = None
                           ) -> ReproduceResult:
    """Rebuild the set ``manifest_path`` describes from its pinned inputs and compare (module doc).

    :param catalog: the catalog to read (with its credentials); default: the manifest's, which has no
        secrets in it.
    :raises PinMovedError: a pin was removed or moved by something other than an erasure.
    :raises ConfigError: the manifest is unreadable, or a table or column is gone.
    """
    from dativo_provider.iceberg.catalog import CatalogConfig

    manifest = TrainingSetManifest.read(manifest_path)
    config = catalog or CatalogConfig(manifest.catalog["name"], manifest.catalog["properties"])
    iceberg = config.load()
    erasures: dict[str, list[str]] = {}
    inputs = [_current(iceberg, pinned, erasures) for pinned in manifest.inputs]
    digest = ContentHash(manifest.columns)
    for batch in as_of_rows(iceberg, inputs):
        digest.add(batch)
    result = ReproduceResult(
        name=manifest.name, run_id=manifest.run_id, status="identical", row_count=digest.rows,
        expected_row_count=manifest.row_count, content_hash=digest.hexdigest,
        expected_content_hash=manifest.content_hash, rows_removed=manifest.row_count - digest.rows,
        erasures=erasures, snapshots_read={i.table: str(i.snapshot_id) for i in inputs})
    _judge(result)
    log.info("training set %s (run %s): %s", manifest.name, manifest.run_id, result.message)
    return result


def _judge(result: ReproduceResult) -> None:
    if result.content_hash == result.expected_content_hash:
        result.status = "identical"
        result.message = f"identical: {result.row_count} rows, content hash {result.content_hash}"
    elif result.erasures:
        requests = sorted({r for found in result.erasures.values() for r in found})
        result.status = "erased"
        result.message = (f"the set minus erased data: {result.rows_removed} of {result.expected_row_count} "
                          f"rows removed; the content hash differs because of erasure request(s) {requests} "
                          f"on {sorted(result.erasures)}")
    else:
        result.status = "different"
        result.message = (f"NOT reproduced: {result.row_count} rows (recorded {result.expected_row_count}) "
                          f"and content hash {result.content_hash} (recorded {result.expected_content_hash}) "
                          "although no pin moved: the files under a pinned snapshot were changed or lost")


def _current(iceberg: Catalog, pinned: PinnedInput, erasures: dict[str, list[str]]) -> PinnedInput:
    """``pinned`` at its ref's head, after checking that only erasures moved the ref (noted in
    ``erasures``)."""
    from dataclasses import replace

    table = iceberg.load_table(pinned.table)
    ref = table.metadata.refs.get(pinned.ref)
    if ref is None:
        raise PinMovedError(f"{pinned.table}: the pin {pinned.ref!r} of snapshot {pinned.snapshot_id} was "
                            "removed, so the training set cannot be rebuilt; keep training-set pins "
                            "(dativo-training/...)")
    if ref.snapshot_id == pinned.snapshot_id:
        return pinned
    requests = _erasures_since(table.metadata, ref.snapshot_id, pinned)
    if requests:
        erasures.setdefault(pinned.table, [])
        erasures[pinned.table] += [r for r in requests if r not in erasures[pinned.table]]
    return replace(pinned, snapshot_id=ref.snapshot_id)


def _erasures_since(metadata: TableMetadata, head_id: int, pinned: PinnedInput) -> list[str]:
    """The erasure requests of the commits from the pinned snapshot up to ``head_id``; raises when another
    kind of commit is among them."""
    requests: list[str] = []
    current = metadata.snapshot_by_id(head_id)
    while current is not None and current.snapshot_id != pinned.snapshot_id:
        summary = current.summary
        marks = [summary.get(key) for key in _ERASURE_KEYS] if summary is not None else []
        carried = summary is not None and summary.get(_CARRY_KEY) is not None
        if not any(marks) and not carried:
            raise PinMovedError(
                f"{pinned.table}: snapshot {current.snapshot_id} was committed to the pin {pinned.ref!r} and "
                f"is no erasure, so the pin no longer holds the rows of snapshot {pinned.snapshot_id}; "
                "nothing but an erasure may write to a training-set pin")
        requests += [m for m in marks if m and m not in requests]
        if current.parent_snapshot_id == pinned.snapshot_id:
            break
        parent = current.parent_snapshot_id
        current = metadata.snapshot_by_id(parent) if parent is not None else None
        if current is None and parent is not None and parent != pinned.snapshot_id:
            # The purge expired the snapshots the erasure replaced: the chain ends at an erasure commit.
            break
    return requests
