"""Restriction of processing (GDPR Art. 18): a registry of restricted subjects and the rows they own.

The registry is an Iceberg table (``dativo.restrictions`` by default, created on first use) with one
row per restricted identifier per request:

* ``subject_kind`` — the ``dativoDataSubject`` kind (``customer``);
* ``subject_hash`` — HMAC-SHA256 with the registry key over ``<subject_kind>:<identifier>``, hex; the
  identifier is a subject id as text or a normalised e-mail. The registry never holds an identifier in
  clear text (nor do its manifests' column bounds, which only ever see hashes);
* ``request_id`` — the restriction request; ``restricted_at`` — when it was recorded;
* ``lifted_at`` / ``lift_request_id`` — null while the restriction is active.

Lifting rewrites the active rows with ``lifted_at`` set, so the history of every restriction stays.
Writes are optimistic: each attempt reloads the table, re-checks what is already there (which is what
makes :meth:`RestrictionRegistry.restrict` idempotent per request id, also against a concurrent call),
and commits with pyiceberg's own retry switched off, because its retry would re-apply a stale append.

Rows are matched by hashing each *distinct* value of a dataset's identifying columns: the columns with
``dativoDataSubject`` (against restrictions of that kind) and the e-mail columns
(:func:`~dativo_provider.privacy.identifiers.is_email_column`; normalised, against restrictions of every
kind: an address names one person, whatever role the table sees them in). A table whose only identifier
is an e-mail column is therefore matched too. Matching follows :mod:`dativo_provider.privacy.identifiers`:
whole values, and a blank stored value never matches (not even a hash of ``""`` recorded by an older
version).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import CommitConflictError, ConfigError
from dativo_provider.iceberg.commit import disable_builtin_retries, is_lost_race
from dativo_provider.privacy import identifiers
from dativo_provider.privacy.identifiers import is_email_column
from dativo_provider.privacy.request import SubjectRequest

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from dativo_provider.contracts.model import Dataset, QualityRule
    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

DEFAULT_TABLE = "dativo.restrictions"
#: The check name restricted rows are held under (quarantine) and reported with.
CHECK_NAME = "restricted"
MAX_COMMIT_ATTEMPTS = 10
_KIND, _HASH, _REQUEST, _AT, _LIFTED_AT, _LIFT_REQUEST = (
    "subject_kind", "subject_hash", "request_id", "restricted_at", "lifted_at", "lift_request_id")


def subject_hash(key: bytes, subject_kind: str, identifier: str) -> str:
    """HMAC-SHA256 (hex) of ``<subject_kind>:<identifier>``: how the registry stores an identifier.

    :param identifier: a subject id as text, or an e-mail in its normalised form
        (:func:`~dativo_provider.privacy.identifiers.normalise_email`), which is the form rows are
        matched in.
    :raises ConfigError: the identifier is empty or whitespace only.
    """
    if identifiers.is_blank(identifier):
        raise ConfigError(f"cannot hash a blank {subject_kind} identifier: it would restrict anonymous rows")
    return hmac.new(key, f"{subject_kind}:{identifier}".encode(), hashlib.sha256).hexdigest()


def request_hashes(key: bytes, request: SubjectRequest) -> tuple[str, ...]:
    """The distinct hashes of a request's subject ids and (already normalised) e-mails, in order."""
    values = (*request.subject_ids, *request.emails)
    return tuple(dict.fromkeys(subject_hash(key, request.subject_kind, v) for v in values))


def registry_schema() -> pa.Schema:
    import pyarrow as pa

    stamp = pa.timestamp("us", tz="UTC")
    return pa.schema([
        pa.field(_KIND, pa.string(), nullable=False),
        pa.field(_HASH, pa.string(), nullable=False),
        pa.field(_REQUEST, pa.string(), nullable=False),
        pa.field(_AT, stamp, nullable=False),
        pa.field(_LIFTED_AT, stamp),
        pa.field(_LIFT_REQUEST, pa.string()),
    ])


class RestrictionRegistry:
    """Restricted data subjects, as keyed hashes in an Iceberg table.

    :param catalog: the catalog holding the registry table.
    :param key: the HMAC key (keep it in a secret store; the same key must be used to restrict and to
        match rows, and a different key matches nothing). Never shown in ``repr``.
    :param table: the registry table, created on the first :meth:`restrict`.
    """

    def __init__(self, catalog: CatalogConfig, key: bytes, table: str = DEFAULT_TABLE) -> None:
        if not isinstance(key, bytes) or not key:
            raise ConfigError("the restriction registry key must be non-empty bytes (from a secret store)")
        self.catalog = catalog
        self.table = table
        self._key = key

    def __repr__(self) -> str:
        return f"RestrictionRegistry(catalog={self.catalog.name!r}, table={self.table!r}, key=***)"

    # --- writes -----------------------------------------------------------------------------------

    def restrict(self, request: SubjectRequest) -> int:
        """Record the request's identifiers as restricted; returns the rows added.

        Idempotent per request id: identifiers this request already recorded are not added again, so a
        retried task (or two concurrent runs of it) adds each row once. A subject that another request
        already restricted gets a row for this request too, so every request stays on record.

        :raises ConfigError: the request is not a ``restriction`` request.
        :raises CommitConflictError: other writers won the commit race every time (transient).
        """
        _require_kind(request, ("restriction",), "restrict")
        hashes = request_hashes(self._key, request)
        return self._with_retry(lambda table: self._append_missing(table, request, hashes), create=True)

    def lift(self, request: SubjectRequest, *, lift_request_id: str) -> int:
        """Mark every active restriction of the request's identifiers lifted; returns the rows lifted.

        ``request`` supplies the identifiers: the original restriction request or the lift request.
        Restrictions placed by any request for those identifiers are lifted, in one overwrite that keeps
        their ``request_id`` and ``restricted_at``. Lifting again finds nothing active and returns 0.
        """
        _require_kind(request, ("restriction", "lift_restriction"), "lift")
        if not lift_request_id:
            raise ConfigError("lift needs a lift_request_id: the id of the request that lifts it")
        hashes = request_hashes(self._key, request)
        kind = request.subject_kind
        return self._with_retry(lambda table: self._mark_lifted(table, kind, hashes, lift_request_id),
                                create=False)

    # --- reads ------------------------------------------------------------------------------------

    def active_hashes(self, subject_kind: str) -> frozenset[str]:
        """The hashes of the identifiers of ``subject_kind`` that are restricted now."""
        return self._active().get(subject_kind, frozenset())

    def applies_to(self, dataset: Dataset) -> bool:
        """Whether any active restriction can match ``dataset``'s rows: one of the kind of its subject
        columns, or any at all when it has an e-mail column (e-mails match restrictions of every kind)."""
        active = self._active()
        if any(is_email_column(c) for c in dataset.columns):
            return any(active.values())
        return any(active.get(c.data_subject) for c in dataset.columns if c.data_subject)

    def restricted_mask(self, rows: pa.Table, dataset: Dataset) -> pa.BooleanArray:
        """True where a row belongs to a restricted subject (never null).

        Each distinct value of the identifying columns present in ``rows`` is hashed once.

        :raises ConfigError: ``dataset`` has identifying columns but ``rows`` holds none of them, so
            restricted rows could not be told apart.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        probes = _present_probes(dataset, rows.column_names)
        mask: Any = pa.repeat(False, rows.num_rows)
        active = self._active() if probes and rows.num_rows else {}
        for probe in probes:
            matchers = [_Matcher(self._key, kind, hashes) for kind, hashes in active.items()
                        if probe.kind is None or probe.kind == kind]
            if matchers:
                mask = pc.or_(mask, _column_hits(rows.column(probe.column), probe.normalise, matchers))
        return mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask

    def exclude_restricted(self, rows: pa.Table, dataset: Dataset) -> tuple[pa.Table, int]:
        """``rows`` without the rows of restricted subjects, and how many rows were left out."""
        import pyarrow.compute as pc

        mask = self.restricted_mask(rows, dataset)
        excluded = pc.sum(mask).as_py() or 0
        return (rows.filter(pc.invert(mask)) if excluded else rows), excluded

    # --- internals --------------------------------------------------------------------------------

    def _active(self) -> dict[str, frozenset[str]]:
        from pyiceberg.expressions import IsNull

        table = self._load(create=False)
        if table is None:
            return {}
        found = table.scan(row_filter=IsNull(_LIFTED_AT), selected_fields=(_KIND, _HASH)).to_arrow()
        by_kind: dict[str, set[str]] = {}
        for kind, digest in zip(found.column(_KIND).to_pylist(), found.column(_HASH).to_pylist()):
            by_kind.setdefault(kind, set()).add(digest)
        return {kind: frozenset(hashes) for kind, hashes in by_kind.items()}

    def _append_missing(self, table: Table, request: SubjectRequest, hashes: tuple[str, ...]) -> int:
        import pyarrow as pa
        from pyiceberg.expressions import EqualTo

        recorded = table.scan(row_filter=EqualTo(_REQUEST, request.request_id),
                              selected_fields=(_HASH,)).to_arrow()
        known = set(recorded.column(_HASH).to_pylist())
        missing = [h for h in hashes if h not in known]
        if not missing:
            return 0
        n, now = len(missing), datetime.now(timezone.utc)
        rows = pa.Table.from_arrays(
            [pa.array([request.subject_kind] * n), pa.array(missing), pa.array([request.request_id] * n),
             pa.array([now] * n, pa.timestamp("us", tz="UTC")), pa.nulls(n, pa.timestamp("us", tz="UTC")),
             pa.nulls(n, pa.string())], schema=registry_schema())
        table.append(rows, snapshot_properties={"dativo.restriction.request-id": request.request_id})
        return n

    def _mark_lifted(self, table: Table, kind: str, hashes: tuple[str, ...], lift_request_id: str) -> int:
        import pyarrow as pa
        from pyiceberg.expressions import And, EqualTo, In, IsNull

        condition = And(EqualTo(_KIND, kind), In(_HASH, set(hashes)), IsNull(_LIFTED_AT))
        active = table.scan(row_filter=condition).to_arrow()
        n = active.num_rows
        if not n:
            return 0
        schema = registry_schema()
        lifted = active.select(schema.names).cast(schema)
        lifted = lifted.set_column(4, schema.field(_LIFTED_AT),
                                   pa.array([datetime.now(timezone.utc)] * n, schema.field(_LIFTED_AT).type))
        lifted = lifted.set_column(5, schema.field(_LIFT_REQUEST),
                                   pa.array([lift_request_id] * n, pa.string()))
        table.overwrite(lifted, overwrite_filter=condition,
                        snapshot_properties={"dativo.restriction.lift-request-id": lift_request_id})
        return n

    def _with_retry(self, attempt: Callable[[Table], int], *, create: bool) -> int:
        """Run ``attempt`` on a freshly loaded table until it commits without losing a race."""
        lost: Exception | None = None
        for number in range(1, MAX_COMMIT_ATTEMPTS + 1):
            try:
                table = self._load(create=create)
                if table is None:
                    return 0
                return attempt(disable_builtin_retries(table))
            except Exception as exc:
                if not _is_lost_race(exc):
                    raise
                lost = exc
                log.info("restriction registry %s: lost a commit race (attempt %d/%d): %s", self.table,
                         number, MAX_COMMIT_ATTEMPTS, exc)
                time.sleep(min(0.05 * 2**number, 2.0) * random.uniform(0.5, 1.5))
        raise CommitConflictError(
            f"could not commit to restriction registry {self.table}: other writers won the commit race "
            f"{MAX_COMMIT_ATTEMPTS} times; retry the task") from lost

    def _load(self, *, create: bool) -> Table | None:
        from pyiceberg.exceptions import NoSuchTableError

        from dativo_provider.iceberg.tables import load_or_create
        from dativo_provider.ingest.options import WriteOptions

        catalog = self.catalog.load()
        if create:
            # A table created here comes back staged (not scannable): load it again below.
            load_or_create(catalog, self.table, registry_schema(), WriteOptions())
        try:
            return catalog.load_table(self.table)
        except NoSuchTableError:
            return None


def restriction_check(registry: RestrictionRegistry, dataset: Dataset) -> Callable[[pa.Table, QualityRule],
                                                                                    pa.BooleanArray]:
    """A custom row check (see :mod:`dativo_provider.quality.custom`): True where a row is NOT restricted.

    ``dataset`` names the identifying columns (a custom check only receives the rule, whose
    ``dataset`` is a name). Add it as a rule named :data:`CHECK_NAME` so held rows say why.
    """
    import pyarrow.compute as pc

    def check(rows: pa.Table, rule: QualityRule) -> pa.BooleanArray:
        return pc.invert(registry.restricted_mask(rows, dataset))

    return check


# --- matching rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    """A column to test: its values are identifiers of ``kind`` (None: of any kind)."""

    column: str
    kind: str | None
    normalise: bool


class _Matcher:
    """Finds the identifiers of one kind whose hash is active.

    The HMAC is computed from hashlib states keyed once (RFC 2104: ``H(K^opad || H(K^ipad || m))``, the
    construction :mod:`hmac` implements); copying two C hash objects per value is about twice as fast
    as copying an :class:`hmac.HMAC`, which matters at a million distinct values. A test checks the
    result equals :func:`subject_hash` for short, block-sized and long keys.
    """

    def __init__(self, key: bytes, kind: str, hashes: Iterable[str]) -> None:
        block = hashlib.sha256().block_size
        key = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + f"{kind}:".encode())
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self._digests = frozenset(bytes.fromhex(h) for h in hashes)

    def hits(self, pairs: Iterable[tuple[Any, str]]) -> list[Any]:
        """The values of the ``(value, identifier)`` pairs whose identifier is restricted."""
        inner, outer, digests = self._inner, self._outer, self._digests
        found = []
        for value, identifier in pairs:
            digest = inner.copy()
            digest.update(identifier.encode())
            final = outer.copy()
            final.update(digest.digest())
            if final.digest() in digests:
                found.append(value)
        return found


def _present_probes(dataset: Dataset, names: list[str]) -> list[_Probe]:
    probes = [_Probe(c.name, c.data_subject, is_email_column(c))
              for c in dataset.columns if c.data_subject or is_email_column(c)]
    present = [p for p in probes if p.column in names]
    if probes and not present:
        raise ConfigError(
            f"dataset {dataset.name!r}: none of its identifying columns "
            f"({', '.join(p.column for p in probes)}) are among the rows' columns, so restricted subjects "
            "cannot be recognised; select at least one of them")
    return present


def _column_hits(values: pa.ChunkedArray, normalise: bool, matchers: list[_Matcher]) -> pa.ChunkedArray:
    """True where the value's identifier (as text; normalised for e-mails) is restricted under a matcher.

    Only the column's distinct values are turned into text and hashed.
    Blank values are never hashed, so they never match.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct, texts = identifiers.value_texts(values, email=normalise)
    pairs = list(enumerate(texts))
    hits = sorted({i for matcher in matchers for i in matcher.hits(pairs)})
    return pc.is_in(values, value_set=pc.take(distinct, pa.array(hits, pa.int64())))


def _require_kind(request: SubjectRequest, kinds: tuple[str, ...], operation: str) -> None:
    if request.kind not in kinds:
        raise ConfigError(f"{operation} takes a {' or '.join(kinds)} request; request {request.request_id!r} "
                          f"is a {request.kind!r} request")


def _is_lost_race(exc: Exception) -> bool:
    # Besides a lost commit, SqlCatalog reports a namespace another writer created a moment ago (first
    # use) as a unique-constraint violation.
    return is_lost_race(exc) or type(exc).__name__ == "IntegrityError"
