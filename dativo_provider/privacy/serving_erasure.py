"""Erasure reaches the serving copies: the Feast online stores and SageMaker feature groups a feature
table was materialized or exported to.

Writers record each target on the *source* feature table (:mod:`dativo_provider.ml.serving`). For
every table discovery finds the subject in, the erasure reads those targets, works out the subject's
entity keys (the target's ``entity_columns`` in the subject's rows), deletes them from the target
through the module of its kind (:data:`SERVING_MODULES`, imported only when a target of that kind
exists) and counts them again: a target still holding one fails the request, so no certificate says
"passed" while a copy remains.

Where the keys come from, and why the order is delete → serving → purge:

* Serving copies are erased *after* the Iceberg delete committed, so a materialization running during
  the erasure cannot copy the subject's rows out again from the table's head.
* The keys are read from the table's whole retained history (:func:`history.history_batches` with the
  subject's row filter), not from the head: after the delete the head no longer holds the rows, but
  the snapshots before it do until the purge. A run that crashed between the Iceberg delete and the
  serving delete therefore finds the same keys on the rerun. The purge of any table starts only once
  every table's serving copies are erased and recorded, so the history is still there when needed.
* The keys are never written down: they are the subject's personal data (an entity key is often the
  customer id itself), and the audit trail and the progress table hold no identifier in clear. The
  progress table records per target only counts and the store's location.
* When the entity key is a single column the subject is matched by (``customer_id``), the matched
  values are keys too: a copy whose rows have left the table's history is still found.

Stores behind connections (Redis, Postgres, AWS) are reached through a *resolver* the caller passes:
target → keyword arguments for the kind module's ``delete_entities``/``count_entities`` (a client, a
store configuration). The engine never sees an Airflow connection; the Airflow layer builds the
resolver (:mod:`dativo_provider.operators.privacy`). Targets that need nothing (a Feast SQLite store)
work without one.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError, TerminalError, TransientError, redact

if TYPE_CHECKING:
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

#: Target kind → the module with ``delete_entities(target, keys, **options) -> int`` and
#: ``count_entities(target, keys, **options) -> int``.
SERVING_MODULES = {"feast": "dativo_provider.ml.feast_online", "sagemaker": "dativo_provider.ml.sagemaker"}
#: Target → keyword arguments for its kind module (a client or store configuration, resolved from the
#: connection ids the target names).
ServingResolver = Callable[[Mapping[str, Any]], Mapping[str, Any]]
#: Target fields that say what the target is or holds, not where: left out of the location.
_NOT_LOCATION = ("name", "entity_columns", "features", "join_key_types")
_SECRET_NAME = re.compile(r"pass|secret|token|credential|private|key$", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


class ServingTargetUnreachableError(TransientError):
    """A serving target could not be read or changed; the Iceberg rows may already be gone."""


class ServingCopyRemainsError(TerminalError):
    """A serving target still holds the subject's entities after they were deleted."""


@dataclass
class ServingErasure:
    """What the erasure did to one serving target of one table (counts only, no key values).

    :param store: where the target is, as recorded, without anything secret-looking.
    :param entity_keys: the subject's keys sent to the target.
    :param entities_deleted: records the store reported deleted, over every attempt that recorded it.
    :param entities_remaining: the subject's keys the store still holds afterwards (must be 0).
    """

    table: str
    kind: str
    name: str
    store: dict[str, Any]
    entity_columns: list[str]
    entity_keys: int
    entities_deleted: int
    entities_remaining: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TableServingKeys:
    """The subject's entity keys per entity-column list of one table, kept in memory only."""

    table: str
    targets: list[dict[str, Any]]
    keys: dict[tuple[str, ...], list[tuple[Any, ...]]] = field(default_factory=dict, repr=False)


def subject_keys(table: Table, entity_columns: Iterable[str], match: Mapping[str, list[Any]],
                 row_filter: Any) -> list[tuple[Any, ...]]:
    """The subject's entity keys: ``entity_columns`` of every row ``row_filter`` matches in any file of
    the table's retained history, plus the matched values when the key is one matched column.

    :param match: the discovery's match (column → the subject's values).
    :raises ConfigError: an entity column the table does not have.
    """
    from dativo_provider.privacy.history import history_batches
    from dativo_provider.privacy.identifiers import is_blank

    columns = list(entity_columns)
    missing = [c for c in columns if c not in table.schema().column_names]
    if missing:
        raise ConfigError(f"{'.'.join(table.name())}: serving target entity columns {missing} are not "
                          "columns of the table; fix the target's entity_columns (table property "
                          "dativo.serving.*)")
    keys: set[tuple[Any, ...]] = set()
    if len(columns) == 1 and columns[0] in match:
        keys.update((value,) for value in match[columns[0]] if not is_blank(value))
    for _path, batch in history_batches(table, columns, row_filter):
        values = [batch.column(c).to_pylist() for c in columns]
        keys.update(key for key in zip(*values) if not any(v is None for v in key))
    return sorted(keys, key=repr)


def collect_keys(table_name: str, table: Table, match: Mapping[str, list[Any]],
                 row_filter: Any) -> TableServingKeys:
    """Every serving target of ``table`` and the subject's keys for each of their entity-column lists."""
    from dativo_provider.ml.serving import serving_targets

    found = TableServingKeys(table_name, serving_targets(table))
    for target in found.targets:
        columns = tuple(target.get("entity_columns") or ())
        if columns not in found.keys:
            found.keys[columns] = subject_keys(table, columns, match, row_filter)
    return found


def erase_targets(found: TableServingKeys, resolver: ServingResolver | None,
                  earlier: Mapping[str, Any] | None = None) -> list[ServingErasure]:
    """Delete the subject's keys from each target of one table and count them again.

    :param earlier: what an earlier attempt recorded for this table (its ``targets`` list): deleted
        counts add up over attempts.
    :raises ServingTargetUnreachableError: a target could not be reached (named, without secrets).
    :raises ServingCopyRemainsError: a target still holds a key after the delete.
    """
    before = {(t["kind"], t["name"]): t for t in (earlier or {}).get("targets", [])}
    results = []
    for target in found.targets:
        keys = found.keys[tuple(target.get("entity_columns") or ())]
        deleted = call(target, "delete_entities", keys, resolver, found.table) if keys else 0
        remaining = call(target, "count_entities", keys, resolver, found.table) if keys else 0
        earlier_deleted = int(before.get((target["kind"], target["name"]), {}).get("entities_deleted", 0))
        result = ServingErasure(
            found.table, str(target["kind"]), str(target["name"]), store_location(target),
            list(target.get("entity_columns") or ()), len(keys), deleted + earlier_deleted, remaining)
        log.info("%s: serving target %s %s: %d of the subject's keys, %d deleted, %d remaining", found.table,
                 result.kind, result.name, result.entity_keys, deleted, remaining)
        if remaining:
            raise ServingCopyRemainsError(
                f"{found.table}: serving target {result.kind} {result.name!r} ({_describe(result.store)}) "
                f"still holds {remaining} of the subject's {len(keys)} entity keys after deleting them; a "
                "writer may have copied them again. Stop its writers and run the request again")
        results.append(result)
    return results


def recount(found: TableServingKeys, resolver: ServingResolver | None) -> int:
    """How many of the subject's keys the table's targets hold now (for the final verification)."""
    return sum(call(target, "count_entities", keys, resolver, found.table)
               for target in found.targets
               if (keys := found.keys[tuple(target.get("entity_columns") or ())]))


def call(target: Mapping[str, Any], function: str, keys: list[tuple[Any, ...]],
         resolver: ServingResolver | None, table: str) -> int:
    """``function`` of the target's kind module, with the resolver's options; errors name the target."""
    kind, name = target.get("kind"), target.get("name")
    where = f"{table}: serving target {kind} {name!r} ({_describe(store_location(target))})"
    module_name = SERVING_MODULES.get(str(kind))
    if module_name is None:
        raise ConfigError(f"{where}: unknown kind {kind!r}; known: {sorted(SERVING_MODULES)}. Fix or remove "
                          f"the table property dativo.serving.{kind}.{name}")
    options: Mapping[str, Any] = {}
    try:
        options = resolver(target) if resolver is not None else {}
        module = importlib.import_module(module_name)
        return int(getattr(module, function)(dict(target), keys, **options))
    except TerminalError as exc:
        raise ConfigError(f"{where}: {redact(str(exc), _secrets(options))}") from exc
    except Exception as exc:  # noqa: BLE001 - any store or client error: the target is named, retry later
        message = redact(str(exc), _secrets(options))[:300]
        raise ServingTargetUnreachableError(
            f"{where} could not be reached ({type(exc).__name__}: {message}). The subject's Iceberg rows may "
            "already be deleted but this copy is not: make the store reachable and run the request again "
            "(it resumes)") from None


def store_location(target: Mapping[str, Any], *, nested: bool = False) -> dict[str, Any]:
    """The target's recorded location: every field but its identity and schema, secret-looking fields
    left out (nested ones too) and user information removed from URLs."""
    location: dict[str, Any] = {}
    for key, value in sorted(target.items()):
        if key in _NOT_LOCATION or (key == "kind" and not nested) or _SECRET_NAME.search(key):
            continue
        if isinstance(value, Mapping):
            location[key] = store_location(value, nested=True)
        else:
            location[key] = _URL_USERINFO.sub(r"\g<scheme>", value) if isinstance(value, str) else value
    return location


def _describe(location: Mapping[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in location.items():
        if isinstance(value, Mapping):
            parts.append(_describe(value, f"{prefix}{key}."))
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            parts.append(f"{prefix}{key}={value}")
    return ", ".join(p for p in parts if p) or ("" if prefix else "no location")


def _secrets(options: Mapping[str, Any]) -> tuple[str, ...]:
    """String values of secret-looking options (one level deep), to keep them out of messages."""
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found.extend(_secrets(value))
        elif isinstance(value, str) and _SECRET_NAME.search(key):
            found.append(value)
    return tuple(found)
