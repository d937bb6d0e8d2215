"""How far an erasure got, kept so that running the same request again finishes it.

An erasure changes tables one step at a time (resolve identities → delete per table → purge per table
→ verify). A failure anywhere — a lost race, a refs policy, a killed worker — must leave a request that
a rerun completes, ending in the state an uninterrupted run reaches. Two things make that hard: once
the subject's row in ``customers`` is deleted and purged, their e-mail can no longer be resolved from
the data, and once expiry committed, the files holding their rows are unreachable and only a record of
them says they must go.

So each step is recorded, as it completes, in an Iceberg table beside the audit trail
(``dativo.dsr_progress`` by default), one row per step:

* ``details``: JSON without identifiers (per-table counts, the dirty files' paths);
* ``sealed``: the identity resolved (ids, e-mails and each table's match values), encrypted with
  AES-256-GCM under a key derived from the request hash key (the ``dativo_dsr_hash_key`` connection)
  and bound to the request id. Without that key the row is opaque.

When the request completes, its rows are deleted from the progress table and that table is purged
with the same machinery as the erasure itself (history expired, files removed), so no copy of the
identity outlives the request. A request that is abandoned keeps its sealed identity until it is run
again to completion; :meth:`ErasureProgress.drop` removes it on demand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import CommitConflictError, ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

DEFAULT_PROGRESS_TABLE = "dativo.dsr_progress"
_KEY_LABEL = b"dativo.dsr-progress.v1"
#: Files of concurrent requests' progress rows not committed yet are younger than this.
_SWEEP_WINDOW = timedelta(hours=1)
_ATTEMPTS = 20


@dataclass
class Identity:
    """The subject as resolved: identifier values and, per table, the match values (column → values)."""

    subject_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    matches: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Identity(<{len(self.subject_ids)} ids, {len(self.emails)} e-mails, {len(self.matches)} tables>)"

    def merge(self, other: Identity) -> Identity:
        matches = {t: dict(m) for t, m in self.matches.items()}
        for table, match in other.matches.items():
            mine = matches.setdefault(table, {})
            for column, values in match.items():
                mine[column] = union_values(mine.get(column, []), values)
        return Identity(self.subject_ids | other.subject_ids, self.emails | other.emails, matches)

    def to_json(self) -> bytes:
        return json.dumps({"subject_ids": sorted(self.subject_ids), "emails": sorted(self.emails),
                           "matches": self.matches}, sort_keys=True, default=str).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Identity:
        loaded = json.loads(data)
        return cls(set(loaded["subject_ids"]), set(loaded["emails"]), loaded["matches"])


class ErasureProgress:
    """The recorded steps of one request, read when it starts and written as it goes.

    :param catalog: where the progress table lives (the request's main catalog).
    :param hash_key: the request hash key; the sealing key is derived from it.
    :param table: the progress table, created on first use.
    """

    def __init__(self, catalog: CatalogConfig, hash_key: bytes, request_id: str,
                 table: str = DEFAULT_PROGRESS_TABLE) -> None:
        if not request_id or not request_id.strip():
            raise ConfigError("ErasureProgress needs a request id")
        self.catalog = catalog
        self.request_id = request_id
        self.table_name = table
        self._key = hmac.new(hash_key, _KEY_LABEL, hashlib.sha256).digest()
        self.steps: list[dict[str, Any]] = []
        self._identity = Identity()
        self._load()

    def __repr__(self) -> str:
        return f"ErasureProgress({self.request_id!r}, {len(self.steps)} steps)"

    # --- reading ------------------------------------------------------------------------------

    @property
    def resumed(self) -> bool:
        """Whether an earlier run of this request recorded anything."""
        return bool(self.steps)

    @property
    def identity(self) -> Identity:
        return self._identity

    def details(self, step: str, table: str | None = None) -> dict[str, Any] | None:
        """The details of the latest record of ``step`` (for ``table``), or None."""
        for record in reversed(self.steps):
            if record["step"] == step and record["table"] == table:
                return record["details"]
        return None

    def started_at(self) -> datetime | None:
        return min((r["recorded_at"] for r in self.steps), default=None)

    def _load(self) -> None:
        from pyiceberg.expressions import EqualTo

        table = self._table(create=False)
        if table is None:
            return
        rows = table.scan(row_filter=EqualTo("request_id", self.request_id)).to_arrow().sort_by("seq")
        for row in rows.to_pylist():
            sealed = row.pop("sealed")
            if sealed is not None:
                self._identity = self._identity.merge(Identity.from_json(self._open(sealed)))
            row["details"] = json.loads(row["details"])
            self.steps.append(row)

    # --- writing ------------------------------------------------------------------------------

    def record(self, step: str, table: str | None = None, details: dict[str, Any] | None = None, *,
               identity: Identity | None = None) -> None:
        """Append one step (and, sealed, the identity as now known); retried when another request's
        progress wins the commit race."""
        import pyarrow as pa

        if identity is not None:
            self._identity = self._identity.merge(identity)
        row = {"request_id": self.request_id, "seq": len(self.steps) + 1, "step": step, "table": table,
               "details": json.dumps(details or {}, sort_keys=True, default=str),
               "sealed": self._seal(self._identity.to_json()) if identity is not None else None,
               "recorded_at": datetime.now(timezone.utc)}
        batch = pa.Table.from_pylist([row], schema=_schema())
        self._append(batch)
        self.steps.append({**row, "details": details or {}})

    def drop(self) -> None:
        """Delete this request's rows and purge the progress table, so the sealed identity is gone."""
        from pyiceberg.expressions import EqualTo

        from dativo_provider.privacy.erase import delete_rows
        from dativo_provider.privacy.purge import purge_table

        if self._table(create=False) is None:
            return
        subject = EqualTo("request_id", self.request_id)
        marker = f"{self.request_id}/progress"
        delete_rows(self.catalog, self.table_name, subject, request_id=marker)
        purge_table(self.catalog, self.table_name, subject=subject, request_id=marker, refs_policy="remove",
                    safety_window=_SWEEP_WINDOW)
        self.steps = []
        self._identity = Identity()

    def _append(self, rows: pa.Table) -> None:
        from dativo_provider.iceberg.commit import is_lost_race

        for attempt in range(1, _ATTEMPTS + 1):
            table = self._table(create=True)
            assert table is not None  # created when missing
            try:
                table.append(rows)
                return
            except Exception as exc:
                if not is_lost_race(exc):
                    raise
                time.sleep(min(0.02 * 2**attempt, 1.0))
        raise CommitConflictError(f"{self.table_name}: recording progress of {self.request_id} lost the commit "
                                  f"race {_ATTEMPTS} times")

    def _table(self, *, create: bool) -> Table | None:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError

        catalog = self.catalog.load()
        try:
            return catalog.load_table(self.table_name)
        except NoSuchTableError:
            if not create:
                return None
        namespace = self.table_name.rsplit(".", 1)[0]
        try:
            catalog.create_namespace(namespace)
        except NamespaceAlreadyExistsError:
            pass
        try:
            # Identifying values are only inside ``sealed``; no column bounds are kept for any column.
            return catalog.create_table(self.table_name, schema=_schema(),
                                        properties={"write.metadata.metrics.default": "counts"})
        except TableAlreadyExistsError:
            return catalog.load_table(self.table_name)

    # --- sealing ------------------------------------------------------------------------------

    def _seal(self, plain: bytes) -> bytes:
        aead = _aesgcm()(self._key)
        nonce = os.urandom(12)
        return nonce + aead.encrypt(nonce, plain, self.request_id.encode())

    def _open(self, sealed: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        aead = _aesgcm()(self._key)
        try:
            return aead.decrypt(sealed[:12], sealed[12:], self.request_id.encode())
        except InvalidTag:
            raise ConfigError(f"the recorded progress of request {self.request_id} does not open with this hash "
                              "key: was the dativo_dsr_hash_key connection changed mid-request?") from None


def _aesgcm() -> Any:
    from dativo_provider.optional import require

    return require("cryptography.hazmat.primitives.ciphers.aead", "privacy").AESGCM


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        pa.field("request_id", pa.string(), nullable=False), pa.field("seq", pa.int64(), nullable=False),
        pa.field("step", pa.string(), nullable=False), pa.field("table", pa.string()),
        pa.field("details", pa.string()), pa.field("sealed", pa.binary()),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC")),
    ])


def union_values(left: Iterable[Any], right: Iterable[Any]) -> list[Any]:
    """Both lists' values once each, sorted (by text when the values do not compare)."""
    values = list(dict.fromkeys([*left, *right]))
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)
