"""The contracts folder by contract id: what a table's ``dativo.contract`` property points at.

The folder is read again only when a file in it changed (names and modification times are compared).
A contract that does not lint is left out and logged; the page then shows the id without details.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dativo_provider.contracts.model import Contract, Dataset

log = logging.getLogger(__name__)


class ContractIndex:
    """Contracts under ``folder`` by id (None: no folder, an empty index)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self._by_id: dict[str, Contract] = {}
        self._lock = threading.Lock()

    def get(self, contract_id: str | None) -> Contract | None:
        if not contract_id or self.folder is None:
            return None
        with self._lock:
            self._refresh()
            return self._by_id.get(contract_id)

    def _refresh(self) -> None:
        from dativo_provider.contracts.loader import contract_files, load_contract
        from dativo_provider.exceptions import DativoError

        assert self.folder is not None
        files = contract_files(self.folder) if self.folder.is_dir() else []
        stamp = tuple((str(f), f.stat().st_mtime) for f in files)
        if stamp == self._stamp:
            return
        by_id: dict[str, Contract] = {}
        for file in files:
            try:
                contract = load_contract(file)
            except DativoError as exc:
                log.warning("contract %s is left out of the page: %s", file, exc)
                continue
            by_id.setdefault(contract.id, contract)
        self._by_id, self._stamp = by_id, stamp


def contract_dataset(contract: Contract | None, name: str | None) -> Dataset | None:
    """The dataset ``name`` of ``contract`` (its only one when ``name`` is None); None when unknown."""
    if contract is None:
        return None
    if name is None:
        return contract.datasets[0] if len(contract.datasets) == 1 else None
    return contract.dataset(name)


def contract_summary(contract: Contract | None, dataset: Dataset | None) -> dict[str, Any] | None:
    """Id, version, owner and the rules that apply to ``dataset``, for the table page."""
    if contract is None:
        return None
    rules = [
        {"name": rule.name, "engine": rule.engine, "severity": rule.severity, "column": rule.column,
         "category": rule.category, "description": rule.description}
        for rule in contract.rules if dataset is None or rule.dataset == dataset.name
    ]
    return {"id": contract.id, "version": contract.version, "name": contract.name, "status": contract.status,
            "owner": contract.governance.owner,
            "dataset": dataset.name if dataset else None, "file": Path(contract.path).name, "rules": rules}
