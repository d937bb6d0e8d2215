"""A copy-on-write delete kept as files, so that losing a commit race costs a rebase, not a restage.

Staging a delete decodes and rewrites data files, which takes longer than a busy writer takes to commit
again: restaging after every lost race would lose forever. :func:`stage` stages the delete (with
:func:`~dativo_provider.privacy.rewrite.stage_delete`) and reads back from the staged snapshots which
files it removes and which it writes; :meth:`StagedDelete.rebase` re-applies exactly that to a newer
head as one OVERWRITE, unless another writer removed one of those files meanwhile (then the caller
stages anew). The OVERWRITE is pyiceberg's, told which manifests list the removed files: pyiceberg
would decode every manifest of the head, which on a table receiving a commit every few hundred
milliseconds (one manifest each) takes longer than the next commit takes to arrive.

Files other writers added between staging and commit are collected (``others_added``); the caller
decodes them after its commit with :func:`holds_match`, outside the race.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table, Transaction


def stage(table: Table, branch: str, parts: list[BooleanExpression],
          properties: dict[str, str]) -> tuple[Transaction, StagedDelete]:
    """The delete of ``parts`` (one filter per column, applied in turn) staged on ``branch``'s head, and
    the files it removes and writes."""
    from dativo_provider.privacy.rewrite import stage_delete

    transaction = table.transaction()
    for part in parts:
        stage_delete(transaction, part, branch=branch, snapshot_properties=properties)
    known = {s.snapshot_id for s in table.metadata.snapshots}
    removed: dict[str, DataFile] = {}
    added: dict[str, DataFile] = {}
    metadata = transaction.table_metadata
    for snapshot in metadata.snapshots:
        if snapshot.snapshot_id in known:
            continue
        for status, data_file in _own_entries(snapshot, table):
            if status == _DELETED:
                if data_file.file_path in added:  # written and dropped within the staged snapshots
                    del added[data_file.file_path]
                else:
                    removed[data_file.file_path] = data_file
            elif status == _ADDED:
                added[data_file.file_path] = data_file
    head = table.metadata.snapshot_by_name(branch)
    holding = _manifests_holding(head.manifests(table.io) if head else [], set(removed), table)
    return transaction, StagedDelete(_head(table, branch), properties, list(removed.values()),
                                     list(added.values()), holding)


@dataclass
class StagedDelete:
    """A staged delete as files: on ``base``, remove these, add those; and what others added since.

    :param holding: the manifests known to list a removed file (read once, at staging).
    :param others_added: data files other writers committed since staging (see :func:`holds_match`).
    """

    base: int | None
    properties: dict[str, str]
    removed: list[DataFile]
    added: list[DataFile]
    holding: set[str] = field(default_factory=set)
    others_added: list[DataFile] = field(default_factory=list)

    def rebase(self, table: Table, branch: str) -> Transaction | None:
        """The same change as one overwrite on ``branch``'s new head, or None when it must be staged anew."""
        from pyiceberg.table.snapshots import ancestors_between_ids

        head = _head(table, branch)
        if self.base is None or head is None or not _is_ancestor(table, self.base, head):
            return None
        gone: set[str] = set()
        removed = {f.file_path for f in self.removed}
        for snapshot in ancestors_between_ids(self.base, head, table.metadata):
            for status, data_file in _own_entries(snapshot, table):
                if status == _DELETED:
                    gone.add(data_file.file_path)
                elif status == _ADDED:
                    self.others_added.append(data_file)
            own = [m for m in snapshot.manifests(table.io) if m.added_snapshot_id == snapshot.snapshot_id]
            self.holding |= _manifests_holding(own, removed, table)  # a rewritten manifest may list them
        if gone & removed:
            return None
        transaction = table.transaction()
        overwrite = _overwrite_known_manifests(self.holding, transaction, branch, self.properties)
        with overwrite:
            for data_file in self.removed:
                overwrite.delete_data_file(data_file)
            for data_file in self.added:
                overwrite.append_data_file(data_file)
        self.base = head
        return transaction


def _manifests_holding(manifests: Any, paths: set[str], table: Table) -> set[str]:
    """The manifests among ``manifests`` that list one of ``paths`` as live."""
    return {m.manifest_path for m in manifests
            if any(e.data_file.file_path in paths for e in m.fetch_manifest_entry(table.io, discard_deleted=True))}


@functools.cache
def _known_manifests_overwrite() -> type:
    """pyiceberg's OVERWRITE producer, told which manifests list the files it removes.

    pyiceberg decodes every manifest of the head to find them, which on a table that receives a commit
    every few hundred milliseconds (one manifest each) takes longer than the next commit takes to
    arrive; a rebase then never wins. Here only the manifests known to hold them are decoded and
    rewritten; every other manifest is carried over as it is.
    """
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    class KnownManifestsOverwrite(_OverwriteFiles):
        def __init__(self, holding: set[str], transaction: Any, branch: str, properties: dict[str, str]) -> None:
            super().__init__(operation=Operation.OVERWRITE, transaction=transaction, io=transaction._table.io,
                             branch=branch, snapshot_properties=properties)
            self._holding = holding

        def _head_manifests(self) -> list[Any]:
            head = self._transaction.table_metadata.snapshot_by_name(self._target_branch)
            return head.manifests(self._io) if head else []

        def _existing_manifests(self) -> list[Any]:
            kept = []
            for manifest in self._head_manifests():
                if manifest.manifest_path not in self._holding:
                    kept.append(manifest)
                    continue
                survivors = [e for e in manifest.fetch_manifest_entry(self._io, discard_deleted=True)
                             if e.data_file not in self._deleted_data_files]
                if not survivors:
                    continue
                with self.new_manifest_writer(self.spec(manifest.partition_spec_id)) as writer:
                    for entry in survivors:
                        writer.add_entry(ManifestEntry.from_args(
                            status=ManifestEntryStatus.EXISTING, snapshot_id=entry.snapshot_id,
                            sequence_number=entry.sequence_number, file_sequence_number=entry.file_sequence_number,
                            data_file=entry.data_file))
                kept.append(writer.to_manifest_file())
            return kept

        def _deleted_entries(self) -> list[Any]:
            return [ManifestEntry.from_args(
                        status=ManifestEntryStatus.DELETED, snapshot_id=self._snapshot_id,
                        sequence_number=entry.sequence_number, file_sequence_number=entry.file_sequence_number,
                        data_file=entry.data_file)
                    for manifest in self._head_manifests() if manifest.manifest_path in self._holding
                    for entry in manifest.fetch_manifest_entry(self._io, discard_deleted=True)
                    if entry.data_file in self._deleted_data_files]

    return KnownManifestsOverwrite


def _overwrite_known_manifests(holding: set[str], transaction: Any, branch: str, properties: dict[str, str]) -> Any:
    """A :func:`_known_manifests_overwrite` producer (the class is built on first use: pyiceberg is heavy)."""
    return _known_manifests_overwrite()(holding, transaction, branch, properties)


_ADDED, _DELETED = 1, 2


def _own_entries(snapshot: Any, table: Table) -> list[tuple[int, DataFile]]:
    """(status, data file) of the entries ``snapshot`` itself added or deleted."""
    entries = []
    for manifest in snapshot.manifests(table.io):
        if manifest.added_snapshot_id != snapshot.snapshot_id:  # entries of a snapshot are in its own manifests
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
            if entry.snapshot_id == snapshot.snapshot_id and int(entry.status) in (_ADDED, _DELETED):
                entries.append((int(entry.status), entry.data_file))
    return entries


def _is_ancestor(table: Table, ancestor: int, snapshot_id: int) -> bool:
    from pyiceberg.table.snapshots import ancestors_of

    start = table.metadata.snapshot_by_id(snapshot_id)
    return any(s.snapshot_id == ancestor for s in ancestors_of(start, table.metadata)) if start else False


def holds_match(table: Table, files: list[DataFile], row_filter: BooleanExpression, columns: list[str]) -> bool:
    """Whether any of ``files`` holds a row ``row_filter`` matches (decoded; ``columns`` are the ones it
    reads)."""
    from dativo_provider.privacy.history import history_batches

    if not files:
        return False
    return any(batch.num_rows for _, batch in history_batches(table, columns, row_filter, files=files))


def _head(table: Table, branch: str) -> int | None:
    snapshot = table.metadata.snapshot_by_name(branch)
    return snapshot.snapshot_id if snapshot else None
