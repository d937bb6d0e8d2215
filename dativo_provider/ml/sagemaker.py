"""Export an Iceberg feature table's snapshot to a SageMaker Feature Store feature group, and delete or
count a data subject's records there.

:func:`export_snapshot` runs, in order:

1. **pin** the snapshot to read (the one given, a tag's or branch's head, else main's head);
2. **select** the rows: by default the newest row per record identifier (by the timestamp column); with
   ``history=True`` every row, streamed, so the offline store gets the history and the online store
   ends at the newest (a write whose EventTime is not later than the stored record's reaches only the
   offline store);
3. **convert** each row into a ``Record`` of string values (:func:`feature_value`, table below);
4. **write** 25 records per ``BatchWriteRecord`` call (the service model's maximum), ``concurrency``
   calls at a time, or one ``PutRecord`` per record where the client has no ``batch_write_record``.
   Entries that come back in ``UnprocessedEntries``, or in ``Errors`` with a transient code
   (throttling, ``InternalFailure``, ``ServiceUnavailable``), and whole calls that fail with such a code,
   are retried with exponential backoff and jitter, ``RetryPolicy.max_attempts`` times per batch.

Failure semantics: records written before a failure stay written (the Feature Store has no
transaction). Exhausted retries raise :class:`FeatureStoreWriteError` (transient: a rerun may pass);
an entry the service refuses (``ValidationError``, ``ResourceNotFound``, ``AccessForbidden``, or any
code not known to be transient) raises :class:`FeatureStoreRejectedError` (terminal). Both name the
feature group, how many records failed and their error codes, never the records' values or
identifiers. A rerun writes the same records again with the same EventTime: the online store keeps
its values, the offline store gets duplicate rows (deduplicate there on identifier and EventTime).

Type mapping (Iceberg -> Feature Store; every value travels as a string):

===========================================  ============  ========================================
Iceberg                                      feature type  ``ValueAsString``
===========================================  ============  ========================================
int, long                                    Integral      ``"42"``
boolean                                      Integral      ``"1"`` / ``"0"``
float, double                                Fractional    shortest round-trip repr, ``"0.1"``
decimal(p, s)                                Fractional    exact digits, ``"12.50"``
string, uuid                                 String        the text
date, time                                   String        ISO-8601, ``"2024-01-31"``
timestamp, timestamptz                       String        ISO-8601 UTC, milliseconds:
                                                           ``"2024-01-31T09:30:00.000Z"``
list<any of the above>                       collection    ``ValueAsStringList``
===========================================  ============  ========================================

A null (and a NaN or infinite float, which the store cannot hold) leaves the feature out of the record:
the Feature Store's null. A timestamp without zone is taken as UTC; precision below a millisecond is
cut (the store's EventTime format has milliseconds). The EventTime feature must be a String feature
(or Fractional Unix seconds for :func:`delete_entities` reading it back). Binary, fixed, struct and
map columns are refused before anything is written.

One entity column is the record identifier (a feature group has exactly one); a composite entity key
needs a column computed from its parts first (a feature transform).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dativo_provider.exceptions import ConfigError, TerminalError, TransientError, UnsupportedTypeError

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.iceberg.catalog import CatalogConfig

log = logging.getLogger(__name__)

SERVICE = "sagemaker-featurestore-runtime"
#: ``BatchWriteRecordEntries`` max in botocore's service model (2020-07-01).
WRITE_BATCH_LIMIT = 25
#: ``RecordIdentifiers`` max per ``BatchGetRecordIdentifier``.
READ_BATCH_LIMIT = 100
#: Error codes worth another attempt; any other code is the service refusing the record.
TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestThrottled", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "SlowDown",
    "InternalFailure", "InternalServerError", "ServiceUnavailable",
    "RequestTimeout", "RequestTimeoutException",
})
_UNPROCESSED = "UnprocessedEntries"


class FeatureStoreWriteError(TransientError):
    """Records still failed with transient codes (or stayed unprocessed) after every attempt."""

    def __init__(self, feature_group: str, failed: int, attempts: int, codes: Mapping[str, int]) -> None:
        self.feature_group, self.failed, self.attempts = feature_group, failed, attempts
        self.codes = dict(codes)
        super().__init__(
            f"SageMaker feature group {feature_group!r}: {failed} record(s) not written after {attempts} "
            f"attempts ({_codes(codes)}). Records written before stay written; rerun the export (or raise "
            "RetryPolicy.max_attempts / lower concurrency) once the throttling passes")


class FeatureStoreRejectedError(TerminalError):
    """The service refused records (validation, missing group, access): retrying cannot help."""

    def __init__(self, feature_group: str, failed: int, codes: Mapping[str, int], operation: str) -> None:
        self.feature_group, self.failed, self.codes = feature_group, failed, dict(codes)
        super().__init__(
            f"SageMaker feature group {feature_group!r}: {operation} refused {failed} record(s) "
            f"({_codes(codes)}). Check that the group exists in this region, the role may write to it, "
            "and its feature definitions match the table's columns and types (docs/sagemaker.md)")


def _codes(codes: Mapping[str, int]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in sorted(codes.items()))


@dataclass(frozen=True)
class FeatureGroupTarget:
    """Where records go, and how a table row becomes one.

    :param feature_group_name: the feature group's name or ARN.
    :param record_identifier_feature_name: the group's record identifier feature.
    :param event_time_feature_name: the group's event time feature (a String feature).
    :param entity_columns: the table's entity key column (exactly one: it holds the record identifier).
    :param region: the AWS region of the group (None: the client's).
    :param target_stores: ``("OnlineStore",)``, ``("OfflineStore",)`` or empty for every store of the group.
    """

    feature_group_name: str
    record_identifier_feature_name: str
    event_time_feature_name: str
    entity_columns: tuple[str, ...]
    region: str | None = None
    target_stores: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.entity_columns) != 1:
            raise ConfigError(
                f"feature group {self.feature_group_name}: entity_columns {list(self.entity_columns)}: a "
                "feature group has one record identifier; give one column (compute a composite key first)")
        unknown = set(self.target_stores) - {"OnlineStore", "OfflineStore"}
        if unknown:
            raise ConfigError(f"target_stores: {sorted(unknown)} is not OnlineStore or OfflineStore")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> FeatureGroupTarget:
        """From a serving-ledger entry or an operator's arguments (unknown keys are ignored: the ledger
        also carries ``kind``, ``name`` and connection ids)."""
        missing = [k for k in ("feature_group_name", "record_identifier_feature_name",
                               "event_time_feature_name", "entity_columns") if not spec.get(k)]
        if missing:
            raise ConfigError(f"SageMaker target: {', '.join(missing)} missing in {sorted(spec)}")
        return cls(str(spec["feature_group_name"]), str(spec["record_identifier_feature_name"]),
                   str(spec["event_time_feature_name"]), tuple(str(c) for c in spec["entity_columns"]),
                   spec.get("region"), tuple(spec.get("target_stores") or ()))

    def to_dict(self) -> dict[str, Any]:
        return {"feature_group_name": self.feature_group_name, "region": self.region,
                "record_identifier_feature_name": self.record_identifier_feature_name,
                "event_time_feature_name": self.event_time_feature_name,
                "entity_columns": list(self.entity_columns), "target_stores": list(self.target_stores)}


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per batch (the first included) and the backoff between them: ``base * 2**n`` seconds,
    at most ``max_delay``, with full jitter. ``sleep`` is replaceable for tests."""

    max_attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts={self.max_attempts}: at least 1")

    def pause(self, attempt: int) -> None:
        self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_snapshot` wrote."""

    table: str
    snapshot_id: int | None
    feature_group_name: str
    rows_read: int
    records_written: int
    requests: int
    retried_records: int
    api: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        snapshot_id = None if self.snapshot_id is None else str(self.snapshot_id)
        return {"table": self.table, "snapshot_id": snapshot_id,
                "feature_group_name": self.feature_group_name, "rows_read": self.rows_read,
                "records_written": self.records_written, "requests": self.requests,
                "retried_records": self.retried_records, "api": self.api, "seconds": round(self.seconds, 3)}


def export_snapshot(
    client: Any,
    catalog: CatalogConfig,
    table: str,
    target: FeatureGroupTarget,
    *,
    timestamp_column: str,
    features: Sequence[str] = (),
    snapshot_id: int | None = None,
    ref: str | None = None,
    history: bool = False,
    retry: RetryPolicy | None = None,
    concurrency: int = 4,
) -> ExportResult:
    """Write ``table``'s snapshot into the feature group (steps and failure semantics: module docs).

    :param client: a boto3 ``sagemaker-featurestore-runtime`` client.
    :param timestamp_column: the column written as the EventTime feature.
    :param features: the columns to write besides the entity and timestamp; empty writes every column.
    :param snapshot_id: read this snapshot; or ``ref``, a tag or branch; default main's head.
    :param history: write every row instead of the newest per record identifier.
    """
    started = time.monotonic()
    iceberg = catalog.load().load_table(table)
    snapshot = _pinned(iceberg, table, snapshot_id, ref)
    if snapshot is None:
        return ExportResult(table, None, target.feature_group_name, 0, 0, 0, 0, "none", 0.0)
    entity = target.entity_columns[0]
    names = [c.name for c in iceberg.schema().fields]
    columns = _columns(names, entity, timestamp_column, features, table)
    scan = iceberg.scan(snapshot_id=snapshot.snapshot_id, selected_fields=tuple(columns))
    batches = scan.to_arrow_batch_reader() if history else _newest_per_entity(scan.to_arrow(), entity,
                                                                               timestamp_column).to_batches()
    rename = {entity: target.record_identifier_feature_name, timestamp_column: target.event_time_feature_name}
    writer = RecordWriter(client, target, retry or RetryPolicy(), concurrency)
    rows = writer.write(records_of(batches, rename, table))
    log.info("Exported %d rows of %s@%s to %s in %d requests (%d records retried)", rows, table,
             snapshot.snapshot_id, target.feature_group_name, writer.requests, writer.retried)
    return ExportResult(table, snapshot.snapshot_id, target.feature_group_name, rows, writer.written,
                        writer.requests, writer.retried, writer.api, time.monotonic() - started)


def _pinned(iceberg: Any, table: str, snapshot_id: int | None, ref: str | None) -> Any:
    if snapshot_id is not None and ref is not None:
        raise ConfigError(f"{table}: give snapshot_id or ref, not both")
    if snapshot_id is not None:
        snapshot = iceberg.metadata.snapshot_by_id(int(snapshot_id))
        if snapshot is None:
            raise ConfigError(f"{table}: no snapshot {snapshot_id}")
        return snapshot
    snapshot = iceberg.metadata.snapshot_by_name(ref or "main")
    if snapshot is None and ref is not None:
        raise ConfigError(f"{table}: no tag or branch {ref!r}")
    return snapshot


def _columns(names: Sequence[str], entity: str, timestamp: str, features: Sequence[str],
             table: str) -> list[str]:
    wanted = [entity, timestamp, *[f for f in (features or names) if f not in (entity, timestamp)]]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ConfigError(f"{table}: no column(s) {missing}; it has {list(names)}")
    return wanted


def _newest_per_entity(rows: pa.Table, entity: str, timestamp: str) -> pa.Table:
    """One row per entity, its newest by ``timestamp``; null keys and ambiguous duplicates refused."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in (entity, timestamp):
        nulls = rows.column(column).null_count
        if nulls:
            raise TerminalError(f"{nulls} row(s) with a null {column!r}: a record needs its identifier and "
                                "event time; filter them out or fix the table")
    counts = rows.group_by([entity, timestamp]).aggregate([([], "count_all")])
    duplicated = pc.sum(pc.greater(counts.column("count_all"), 1)).as_py() or 0
    if duplicated:
        raise TerminalError(f"{duplicated} ({entity}, {timestamp}) pair(s) hold more than one row: which "
                            "one is the newest is ambiguous; deduplicate the feature table")
    indexed = rows.append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
    ordered = indexed.sort_by([(timestamp, "ascending")])
    newest = ordered.group_by(entity, use_threads=False).aggregate([("__row", "last")])
    positions = newest.column("__row_last")
    return rows.take(pc.take(positions, pc.sort_indices(positions)))


# -- rows to records -------------------------------------------------------------------------------

def records_of(batches: Iterable[pa.RecordBatch], rename: Mapping[str, str], table: str
               ) -> Iterator[list[dict[str, Any]]]:
    """Each row as a Feature Store ``Record``; columns renamed by ``rename`` (entity -> identifier ...)."""
    checked = False
    for batch in batches:
        if not checked:
            _check_types(batch.schema, table)
            checked = True
        names = [rename.get(n, n) for n in batch.schema.names]
        for name in names:
            _check_feature_name(name, table)
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*columns, strict=True):
            record = [_feature(name, value) for name, value in zip(names, values, strict=True)]
            yield [r for r in record if r is not None]


def _check_types(schema: pa.Schema, table: str) -> None:
    import pyarrow as pa

    for column in schema:
        listed = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        kind = column.type.value_type if listed else column.type
        if not _supported(kind):
            raise UnsupportedTypeError(f"{table}.{column.name}: {column.type} has no Feature Store type "
                                       "(Integral, Fractional, String); leave it out of features or cast it")


def _supported(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if isinstance(kind, pa.ExtensionType):
        return str(kind.extension_name) in ("arrow.uuid", "uuid")
    return (pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_floating(kind)
            or pa.types.is_decimal(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_date(kind) or pa.types.is_time(kind) or pa.types.is_timestamp(kind))


def _check_feature_name(name: str, table: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}", name):
        raise ConfigError(f"{table}: column {name!r} is not a valid feature name (letters, digits, - and _ "
                          "between them, at most 64); rename it in a feature transform")


def _feature(name: str, value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        items = [feature_value(v) for v in value]
        return {"FeatureName": name, "ValueAsStringList": [v for v in items if v is not None]}
    text = feature_value(value)
    return None if text is None else {"FeatureName": name, "ValueAsString": text}


def feature_value(value: Any) -> str | None:
    """A Python value read from Iceberg as the Feature Store's string (mapping: module docs); None for
    a value the store holds as absent (null, NaN, infinity)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else None
    if isinstance(value, dt.datetime):
        return event_time_text(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (str, UUID)):
        return str(value)
    raise UnsupportedTypeError(f"{type(value).__name__} values have no Feature Store type")


def event_time_text(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with milliseconds, the store's EventTime format (a naive time is UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- writing ---------------------------------------------------------------------------------------

class RecordWriter:
    """Writes records to one feature group with bounded retries; counts requests and retried records."""

    def __init__(self, client: Any, target: FeatureGroupTarget, retry: RetryPolicy,
                 concurrency: int = 4) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency={concurrency}: at least 1")
        self.client, self.target, self.retry, self.concurrency = client, target, retry, concurrency
        self.api = "batch_write_record" if hasattr(client, "batch_write_record") else "put_record"
        self.rows = self.written = self.requests = self.retried = 0
        self._lock = threading.Lock()

    def write(self, records: Iterable[list[dict[str, Any]]]) -> int:
        """Write every record; return how many were read. Raises on the first batch that fails."""
        size = WRITE_BATCH_LIMIT if self.api == "batch_write_record" else 1
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="featurestore") as pool:
            running: set[Future[None]] = set()
            for chunk in _chunks(records, size):
                self.rows += len(chunk)
                if len(running) >= 2 * self.concurrency:
                    done, running = wait(running, return_when=FIRST_EXCEPTION)
                    _raise_first(done, running)
                running.add(pool.submit(self._write_chunk, chunk))
            done, _ = wait(running)
            _raise_first(done, set())
        return self.rows

    def _write_chunk(self, records: list[list[dict[str, Any]]]) -> None:
        pending = [self._entry(r) for r in records]
        for attempt in range(1, self.retry.max_attempts + 1):
            failed, codes = self._call(pending)
            with self._lock:
                self.requests += 1
                self.written += len(pending) - len(failed)
            if not failed:
                return
            if attempt == self.retry.max_attempts:
                raise FeatureStoreWriteError(self.target.feature_group_name, len(failed), attempt, codes)
            with self._lock:
                self.retried += len(failed)
            self.retry.pause(attempt)
            pending = failed

    def _entry(self, record: list[dict[str, Any]]) -> dict[str, Any]:
        entry: dict[str, Any] = {"FeatureGroupName": self.target.feature_group_name, "Record": record}
        if self.target.target_stores:
            entry["TargetStores"] = list(self.target.target_stores)
        return entry

    def _call(self, entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter[str]]:
        """One request; the entries to try again and their codes. Terminal codes raise."""
        operation = "BatchWriteRecord" if self.api == "batch_write_record" else "PutRecord"
        try:
            if self.api == "put_record":
                self.client.put_record(**entries[0])
                return [], Counter()
            response = self.client.batch_write_record(Entries=entries)
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError, told apart by its code
            code = _error_code(exc)
            if code not in TRANSIENT_CODES:
                raise FeatureStoreRejectedError(self.target.feature_group_name, len(entries),
                                                {code: len(entries)}, operation) from None
            return entries, Counter({code: len(entries)})
        errors, unprocessed = response.get("Errors") or [], response.get(_UNPROCESSED) or []
        codes = Counter(e["ErrorCode"] for e in errors)
        refused = {code: n for code, n in codes.items() if code not in TRANSIENT_CODES}
        if refused:
            raise FeatureStoreRejectedError(self.target.feature_group_name, sum(refused.values()), refused,
                                            operation)
        if unprocessed:
            codes[_UNPROCESSED] += len(unprocessed)
        return [e["Entry"] for e in errors] + list(unprocessed), codes


def _chunks(records: Iterable[list[dict[str, Any]]], size: int) -> Iterator[list[list[dict[str, Any]]]]:
    chunk: list[list[dict[str, Any]]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _raise_first(done: set[Future[None]], running: set[Future[None]]) -> None:
    for future in done:
        if future.exception() is not None:
            for other in running:
                other.cancel()
            wait(running)
            raise future.exception()  # type: ignore[misc]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    if type(exc).__name__ in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return "RequestTimeout"
    raise exc


# -- erasure ---------------------------------------------------------------------------------------

def delete_entities(target: dict[str, Any], keys: list[tuple[Any, ...]], client: Any = None,
                    retry: RetryPolicy | None = None) -> int:
    """Hard-delete the records of ``keys`` from the feature group's stores; return how many existed.

    :param target: a serving-ledger entry (:func:`~dativo_provider.ml.serving.serving_targets`) or
        :meth:`FeatureGroupTarget.to_dict`.
    :param keys: entity keys, one tuple per subject in ``entity_columns`` order (e.g. ``[(42,)]``),
        values as read from Iceberg; they become record identifiers as the export wrote them.
    :param client: a ``sagemaker-featurestore-runtime`` client; None builds one with boto3's default
        credentials in the target's region (in Airflow pass the amazon provider's, see
        ``dativo_provider.operators.sagemaker.featurestore_client``).

    Each record is read first (GetRecord) for its EventTime: ``DeleteRecord`` with
    ``DeletionMode="HardDelete"`` must carry a later one or the service refuses it, so the delete is
    stamped now, or 1 ms after the stored EventTime when that is later. The delete removes the record
    from the online store and appends a deleted marker to the offline store; the offline store's older
    rows stay there until removed from its Iceberg/Glue table (docs/sagemaker.md). A key with no record
    is skipped. Transient errors are retried as writes are.
    """
    spec = FeatureGroupTarget.from_mapping(target)
    client = client if client is not None else _default_client(spec)
    policy = retry or RetryPolicy()
    deleted = 0
    for key in keys:
        identifier = record_identifier(spec, key)
        read = partial(_stored_event_time, client, spec, identifier)
        stored = _with_retries(policy, spec, "GetRecord", read)
        if stored is None:
            continue
        when = max(dt.datetime.now(dt.UTC).replace(tzinfo=None), stored + dt.timedelta(milliseconds=1))
        request: dict[str, Any] = {"FeatureGroupName": spec.feature_group_name, "DeletionMode": "HardDelete",
                                   "RecordIdentifierValueAsString": identifier,
                                   "EventTime": event_time_text(when)}
        if spec.target_stores:
            request["TargetStores"] = list(spec.target_stores)
        _with_retries(policy, spec, "DeleteRecord", partial(client.delete_record, **request))
        deleted += 1
    return deleted


def count_entities(target: dict[str, Any], keys: list[tuple[Any, ...]], client: Any = None,
                   retry: RetryPolicy | None = None) -> int:
    """How many of ``keys`` have a record in the feature group's online store (BatchGetRecord, 100 at a
    time; unprocessed identifiers asked again). Arguments as :func:`delete_entities`."""
    spec = FeatureGroupTarget.from_mapping(target)
    client = client if client is not None else _default_client(spec)
    policy = retry or RetryPolicy()
    identifiers = sorted({record_identifier(spec, key) for key in keys})
    found = 0
    for start in range(0, len(identifiers), READ_BATCH_LIMIT):
        pending = identifiers[start:start + READ_BATCH_LIMIT]
        for attempt in range(1, policy.max_attempts + 1):
            identifiers_of = [{"FeatureGroupName": spec.feature_group_name,
                               "RecordIdentifiersValueAsString": pending,
                               "FeatureNames": [spec.record_identifier_feature_name]}]
            response = _with_retries(policy, spec, "BatchGetRecord",
                                     partial(client.batch_get_record, Identifiers=identifiers_of))
            errors = response.get("Errors") or []
            if errors:
                codes = Counter(e["ErrorCode"] for e in errors)
                raise FeatureStoreRejectedError(spec.feature_group_name, len(errors), codes, "BatchGetRecord")
            found += len(response.get("Records") or [])
            pending = [i for u in response.get("UnprocessedIdentifiers") or []
                       for i in u["RecordIdentifiersValueAsString"]]
            if not pending:
                break
            if attempt == policy.max_attempts:
                raise FeatureStoreWriteError(spec.feature_group_name, len(pending), attempt,
                                             {"UnprocessedIdentifiers": len(pending)})
            policy.pause(attempt)
    return found


def record_identifier(target: FeatureGroupTarget, key: tuple[Any, ...]) -> str:
    """The record identifier the export wrote for an entity key tuple."""
    if not isinstance(key, (tuple, list)) or len(key) != len(target.entity_columns):
        raise ConfigError(f"key {type(key).__name__} of {len(key) if isinstance(key, (tuple, list)) else 1} "
                          f"value(s): expected a tuple of {list(target.entity_columns)}")
    text = feature_value(key[0])
    if text is None:
        raise ConfigError(f"key for {target.entity_columns[0]}: a null cannot be a record identifier")
    return text


def _stored_event_time(client: Any, spec: FeatureGroupTarget, identifier: str) -> dt.datetime | None:
    response = client.get_record(FeatureGroupName=spec.feature_group_name,
                                 RecordIdentifierValueAsString=identifier,
                                 FeatureNames=[spec.event_time_feature_name])
    values = {v["FeatureName"]: v.get("ValueAsString") for v in response.get("Record") or []}
    if not response.get("Record"):
        return None
    text = values.get(spec.event_time_feature_name) or ""
    if "T" in text:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC).replace(tzinfo=None)
    return dt.datetime.fromtimestamp(float(text or 0), dt.UTC).replace(tzinfo=None)


def _with_retries(policy: RetryPolicy, spec: FeatureGroupTarget, operation: str,
                  call: Callable[[], Any]) -> Any:
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError, told apart by its code
            code = _error_code(exc)
            if code not in TRANSIENT_CODES:
                raise FeatureStoreRejectedError(spec.feature_group_name, 1, {code: 1}, operation) from None
            if attempt == policy.max_attempts:
                raise FeatureStoreWriteError(spec.feature_group_name, 1, attempt, {code: 1}) from None
            policy.pause(attempt)
    raise AssertionError("unreachable")


def _default_client(spec: FeatureGroupTarget) -> Any:
    from dativo_provider.optional import require

    boto3 = require("boto3", "sagemaker")
    return boto3.client(SERVICE, region_name=spec.region)
