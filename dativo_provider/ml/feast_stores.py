"""Writers for Feast's online stores (SQLite, Redis, Postgres) in the layouts Feast itself reads.

- **SQLite / Postgres**: one table ``<project>_<feature view>`` with a row per (entity key, feature):
  ``entity_key``, ``feature_name``, ``value`` (ValueProto bytes), ``value_text``, ``event_ts``,
  ``created_ts`` (and Feast's ``vector_value``/``value_num`` columns, left null). SQLite's ``event_ts``
  holds epoch seconds, as Feast's sqlite adapter stores a datetime. Rows are upserted with
  ``executemany`` (SQLite) or ``COPY`` into a temporary table and one ``INSERT ... ON CONFLICT``
  (Postgres), one transaction per batch.
- **Redis**: one hash per entity key (``serialize_entity_key`` + project) whose fields are the view's
  ``_ts:<view>`` (a protobuf Timestamp) and ``mmh3("<view>:<feature>")`` per feature. The ``HSET``
  commands are built as Redis protocol bytes for a whole batch and sent pipelined.

Each store also keeps our position: the last Iceberg snapshot materialized per project and view, in a
small ``dativo_feast_position`` table (SQL stores) or a ``dativo:feast:position:<project>:<view>`` key.
A store is described by a :class:`StoreLocation` (no secrets: a password is passed separately).
"""

from __future__ import annotations

import json
import sqlite3
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

_POSITION_TABLE = "dativo_feast_position"


@dataclass(frozen=True)
class StoreLocation:
    """Where an online store is, without credentials.

    :param kind: ``sqlite``, ``redis`` or ``postgres``.
    :param path: the SQLite file.
    :param host: Redis/Postgres host; ``port``, ``db`` (Redis database number), ``database``,
        ``schema``, ``user`` (Postgres).
    :param conn_id: the Airflow connection it came from, if any (recorded; never resolved here).
    """

    kind: str
    path: str | None = None
    host: str | None = None
    port: int | None = None
    db: int = 0
    database: str | None = None
    schema: str | None = None
    user: str | None = None
    conn_id: str | None = None

    def describe(self) -> dict[str, Any]:
        """The location as recorded in the serving ledger (only the fields that apply)."""
        keys = {"sqlite": ("path",), "redis": ("host", "port", "db"),
                "postgres": ("host", "port", "database", "schema", "user")}[self.kind]
        out: dict[str, Any] = {"kind": self.kind, **{key: getattr(self, key) for key in keys}}
        if self.conn_id:
            out["conn_id"] = self.conn_id
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> StoreLocation:
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"online store location: unknown field(s) {unknown}")
        if spec.get("kind") not in ("sqlite", "redis", "postgres"):
            raise ConfigError(f"online store location: kind {spec.get('kind')!r} is not sqlite, redis or postgres")
        return cls(**dict(spec))

    @property
    def name(self) -> str:
        """A short label: ``sqlite``, ``redis`` or ``postgres``."""
        return self.kind


def location_of_feast_config(online_store: Any, conn_id: str | None = None) -> tuple[StoreLocation, str | None]:
    """The location and password of a Feast online store config (Sqlite/Redis/PostgreSQL)."""
    kind = getattr(online_store, "type", None)
    if kind == "sqlite":
        return StoreLocation("sqlite", path=str(online_store.path), conn_id=conn_id), None
    if kind == "redis":
        if str(getattr(online_store.redis_type, "value", online_store.redis_type)) != "redis":
            raise ConfigError("online store: only a single Redis server is supported (not cluster or sentinel)")
        nodes, params = _redis_connection_string(online_store.connection_string)
        host, port = nodes[0]
        password = params.get("password")
        return StoreLocation("redis", host=host, port=port, db=int(params.get("db", 0)), conn_id=conn_id), password
    if kind == "postgres":
        schema = online_store.db_schema or online_store.user
        return (StoreLocation("postgres", host=online_store.host, port=int(online_store.port),
                              database=online_store.database, schema=schema, user=online_store.user,
                              conn_id=conn_id), online_store.password)
    raise ConfigError(f"online store type {kind!r}: the fast materializer writes sqlite, redis and postgres")


def _redis_connection_string(text: str) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """Feast's Redis ``connection_string``: ``host:port[,host:port],key=value,...``."""
    nodes, params = [], {}
    for part in text.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            params[key.strip()] = value.strip()
        elif part.strip():
            host, _, port = part.strip().rpartition(":")
            nodes.append((host or "localhost", int(port or 6379)))
    if not nodes:
        raise ConfigError("online store: the Redis connection_string names no host:port")
    return nodes, params


@dataclass
class EncodedBatch:
    """One batch of entities ready to write: keys, ValueProto bytes per feature, event times.

    :param raw: the features' Arrow arrays (SQL stores derive ``value_text`` from them).
    :param value_types: Feast value type name per feature.
    """

    keys: pa.Array
    values: dict[str, pa.Array]
    event_ns: np.ndarray
    raw: dict[str, pa.Array] = field(default_factory=dict)
    value_types: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)


def value_texts(array: pa.Array, value_type: str) -> list[str | None]:
    """Feast's ``value_text`` column: the string, ``str()`` of a number or bool, None otherwise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if value_type == "STRING":
        return array.cast(pa.string()).to_pylist()
    if value_type == "BOOL":
        return [None if value is None else str(value) for value in array.to_pylist()]
    if value_type in ("INT32", "INT64"):
        return array.cast(pa.string()).to_pylist()
    if value_type not in ("DOUBLE", "FLOAT"):
        return [None] * len(array)
    doubles = array.cast(pa.float64())
    missing = pc.is_null(doubles, nan_is_null=True)
    text = pc.if_else(missing, pa.scalar(None, pa.string()), doubles.cast(pa.string()))
    # Arrow writes 1.0 as "1"; Python's str() writes "1.0". Both give the shortest round-trip digits, but
    # they switch to exponent notation at different magnitudes: those values (rare) go through str().
    plain = pc.invert(pc.match_substring_regex(text, "[.eni]"))
    text = pc.if_else(plain, pc.binary_join_element_wise(text, ".0", ""), text)
    tiny = pc.and_(pc.less(pc.abs(doubles), 1e-4), pc.not_equal(doubles, 0.0))
    odd = pc.or_(tiny, pc.match_substring(text, "e"))
    out = text.to_pylist()
    for index in np.flatnonzero(odd.fill_null(False).to_numpy(zero_copy_only=False)):
        out[index] = str(doubles[int(index)].as_py())
    return out


def _epoch_seconds_like_feast_sqlite(event_ns: np.ndarray) -> list[int]:
    """Feast's sqlite adapter stores ``int(naive_utc.timestamp())``: the naive UTC time read as local."""
    seconds = np.floor_divide(event_ns, 1_000_000_000)
    if time.timezone == 0 and not time.daylight:
        return seconds.tolist()
    import datetime as dt

    return [int(dt.datetime.utcfromtimestamp(value).timestamp()) for value in seconds.tolist()]


class OnlineWriter:
    """Writes one feature view's rows (and our position) into one online store."""

    def __init__(self, location: StoreLocation, project: str, view: str) -> None:
        self.location, self.project, self.view = location, project, view
        self.rows_written = 0

    def write(self, batch: EncodedBatch) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make every batch written so far durable (stores that stage rows write them here)."""

    def delete(self, keys: Sequence[bytes]) -> int:
        """Remove every feature of these serialized entity keys from this view; return how many existed."""
        raise NotImplementedError

    def count(self, keys: Sequence[bytes]) -> int:
        """How many of these serialized entity keys have values in this view."""
        raise NotImplementedError

    def read_position(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def write_position(self, position: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqlWriter(OnlineWriter):
    """SQLite and Postgres: the ``<project>_<view>`` table, created as Feast creates it if missing."""

    placeholder = "?"

    @property
    def table(self) -> str:
        return f"{self.project}_{self.view}"

    def _quoted(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _rows(self, batch: EncodedBatch, event_ts: Sequence[Any]) -> list[tuple[Any, ...]]:
        keys = batch.keys.to_pylist()
        rows: list[tuple[Any, ...]] = []
        for name, values in batch.values.items():
            texts = value_texts(batch.raw[name], batch.value_types[name])
            rows += zip(keys, repeat(name), values.to_pylist(), texts, event_ts, repeat(None))
        return rows

    def _key_batches(self, keys: Sequence[bytes], size: int = 500) -> list[Sequence[bytes]]:
        return [keys[start:start + size] for start in range(0, len(keys), size)]


class SqliteWriter(SqlWriter):
    """Stages every batch in a temporary table, one row per entity (a few bound parameters per row is what
    ``executemany`` does fastest), then upserts them all in one ``INSERT ... SELECT ... ORDER BY`` in the
    table's key order, so SQLite appends to its B-trees instead of splitting pages all over them. One
    transaction: a crash leaves the store as it was."""

    def __init__(self, location: StoreLocation, project: str, view: str) -> None:
        super().__init__(location, project, view)
        if not location.path:
            raise ConfigError("sqlite online store: path is required")
        self.connection = sqlite3.connect(location.path, isolation_level=None)
        self.connection.execute("PRAGMA cache_size = -262144")  # 256 MB, for this connection only
        self.features: list[str] = []
        self.staged = 0
        self.connection.execute("BEGIN")
        self.connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self._quoted(self.table)} (entity_key BLOB, feature_name TEXT, "
            "value BLOB, value_text TEXT, vector_value BLOB, event_ts timestamp, created_ts timestamp, "
            "PRIMARY KEY(entity_key, feature_name))")
        self.connection.execute(f"CREATE INDEX IF NOT EXISTS {self._quoted(self.table + '_ek')} "
                                f"ON {self._quoted(self.table)} (entity_key)")
        self.connection.execute("COMMIT")

    def write(self, batch: EncodedBatch) -> None:
        if not self.features:
            self.features = list(batch.values)
            columns = ", ".join(f"v{index}, t{index}" for index in range(len(self.features)))
            self.connection.execute("BEGIN")
            self.connection.execute(f"CREATE TEMP TABLE dativo_feast_stage (entity_key, event_ts, {columns})")
        parts: list[Any] = [batch.keys.to_pylist(), _epoch_seconds_like_feast_sqlite(batch.event_ns)]
        for name in self.features:
            parts += [batch.values[name].to_pylist(), value_texts(batch.raw[name], batch.value_types[name])]
        self.connection.executemany(f"INSERT INTO dativo_feast_stage VALUES ({', '.join('?' * len(parts))})",
                                    zip(*parts))
        self.staged += len(batch)

    def flush(self) -> None:
        if not self.features:
            return
        # the feature name is bound as a parameter: one SELECT per feature, unioned, in key order
        union = " UNION ALL ".join(f"SELECT entity_key, ? AS feature_name, v{index}, t{index}, event_ts, NULL "
                                   "FROM dativo_feast_stage" for index in range(len(self.features)))
        try:
            self.connection.execute(
                f"INSERT INTO {self._quoted(self.table)} (entity_key, feature_name, value, value_text, event_ts, "
                f"created_ts) SELECT * FROM ({union}) WHERE true ORDER BY entity_key, feature_name "
                "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, value_text = "
                "excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts",
                self.features)
            self.connection.execute("DROP TABLE dativo_feast_stage")
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.rows_written += self.staged
        self.features, self.staged = [], 0

    def delete(self, keys: Sequence[bytes]) -> int:
        found = self.count(keys)
        self.connection.execute("BEGIN")
        for part in self._key_batches(keys):
            self.connection.execute(f"DELETE FROM {self._quoted(self.table)} WHERE entity_key IN "
                                    f"({','.join('?' * len(part))})", list(part))
        self.connection.execute("COMMIT")
        return found

    def count(self, keys: Sequence[bytes]) -> int:
        total = 0
        for part in self._key_batches(keys):
            total += self.connection.execute(
                f"SELECT count(DISTINCT entity_key) FROM {self._quoted(self.table)} WHERE entity_key IN "
                f"({','.join('?' * len(part))})", list(part)).fetchone()[0]
        return total

    def read_position(self) -> dict[str, Any] | None:
        self._position_table()
        row = self.connection.execute(f"SELECT position FROM {_POSITION_TABLE} WHERE project = ? AND view = ?",
                                      (self.project, self.view)).fetchone()
        return json.loads(row[0]) if row else None

    def write_position(self, position: Mapping[str, Any]) -> None:
        self._position_table()
        self.connection.execute(  # autocommit: one statement, one transaction
            f"INSERT INTO {_POSITION_TABLE} (project, view, position) VALUES (?, ?, ?) "
            "ON CONFLICT(project, view) DO UPDATE SET position = excluded.position",
            (self.project, self.view, json.dumps(dict(position), sort_keys=True)))

    def _position_table(self) -> None:
        self.connection.execute(f"CREATE TABLE IF NOT EXISTS {_POSITION_TABLE} (project TEXT, view TEXT, "
                                "position TEXT, PRIMARY KEY(project, view))")

    def close(self) -> None:
        self.connection.close()


class PostgresWriter(SqlWriter):
    def __init__(self, location: StoreLocation, project: str, view: str, password: str | None) -> None:
        import psycopg

        super().__init__(location, project, view)
        schema = location.schema or location.user or "public"
        self.schema = schema
        self.connection = psycopg.connect(host=location.host, port=location.port, dbname=location.database,
                                          user=location.user, password=password, autocommit=False)
        with self.connection.transaction():
            self.connection.execute(f"CREATE SCHEMA IF NOT EXISTS {self._quoted(schema)}")
            self.connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self._target} (entity_key BYTEA, feature_name TEXT, value BYTEA, "
                "value_text TEXT NULL, vector_value BYTEA NULL, event_ts TIMESTAMPTZ, created_ts TIMESTAMPTZ, "
                "PRIMARY KEY(entity_key, feature_name))")
            self.connection.execute(f"CREATE INDEX IF NOT EXISTS {self._quoted(self.table + '_ek')} "
                                    f"ON {self._target} (entity_key)")

    @property
    def _target(self) -> str:
        return f"{self._quoted(self.schema)}.{self._quoted(self.table)}"

    def write(self, batch: EncodedBatch) -> None:
        import datetime as dt

        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        stamps = [epoch + dt.timedelta(microseconds=value // 1000) for value in batch.event_ns.tolist()]
        rows = self._rows(batch, stamps)
        with self.connection.transaction():
            self.connection.execute("CREATE TEMP TABLE IF NOT EXISTS dativo_feast_stage (entity_key BYTEA, "
                                    "feature_name TEXT, value BYTEA, value_text TEXT, event_ts TIMESTAMPTZ, "
                                    "created_ts TIMESTAMPTZ) ON COMMIT DELETE ROWS")
            with self.connection.cursor() as cursor, cursor.copy(
                    "COPY dativo_feast_stage FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            self.connection.execute(
                f"INSERT INTO {self._target} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
                "SELECT * FROM dativo_feast_stage ON CONFLICT (entity_key, feature_name) DO UPDATE SET "
                "value = EXCLUDED.value, value_text = EXCLUDED.value_text, event_ts = EXCLUDED.event_ts, "
                "created_ts = EXCLUDED.created_ts")
        self.rows_written += len(batch)

    def delete(self, keys: Sequence[bytes]) -> int:
        with self.connection.transaction():
            cursor = self.connection.execute(
                f"WITH gone AS (DELETE FROM {self._target} WHERE entity_key = ANY(%s) RETURNING entity_key) "
                "SELECT count(DISTINCT entity_key) FROM gone", (list(keys),))
            return int(cursor.fetchone()[0])  # type: ignore[index]

    def count(self, keys: Sequence[bytes]) -> int:
        with self.connection.transaction():
            cursor = self.connection.execute(
                f"SELECT count(DISTINCT entity_key) FROM {self._target} WHERE entity_key = ANY(%s)", (list(keys),))
            return int(cursor.fetchone()[0])  # type: ignore[index]

    def read_position(self) -> dict[str, Any] | None:
        with self.connection.transaction():
            self._position_table()
            row = self.connection.execute(
                f"SELECT position FROM {self._quoted(self.schema)}.{_POSITION_TABLE} WHERE project = %s AND view = %s",
                (self.project, self.view)).fetchone()
        return json.loads(row[0]) if row else None

    def write_position(self, position: Mapping[str, Any]) -> None:
        with self.connection.transaction():
            self._position_table()
            self.connection.execute(
                f"INSERT INTO {self._quoted(self.schema)}.{_POSITION_TABLE} (project, view, position) "
                "VALUES (%s, %s, %s) ON CONFLICT (project, view) DO UPDATE SET position = EXCLUDED.position",
                (self.project, self.view, json.dumps(dict(position), sort_keys=True)))

    def _position_table(self) -> None:
        self.connection.execute(f"CREATE TABLE IF NOT EXISTS {self._quoted(self.schema)}.{_POSITION_TABLE} "
                                "(project TEXT, view TEXT, position TEXT, PRIMARY KEY(project, view))")

    def close(self) -> None:
        self.connection.close()


def feast_field_hash(view: str, feature: str) -> bytes:
    """Feast's Redis hash field of a feature: murmur3-32 of ``<view>:<feature>``, 4 bytes little endian."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


class RedisWriter(OnlineWriter):
    def __init__(self, location: StoreLocation, project: str, view: str, password: str | None,
                 features: Sequence[str] = ()) -> None:
        import redis

        super().__init__(location, project, view)
        self.client = redis.Redis(host=location.host or "localhost", port=location.port or 6379, db=location.db,
                                  password=password)
        self.ts_field = f"_ts:{view}".encode()
        self.features = tuple(features)
        self.connection: Any = None
        self.pending = 0

    def _keys(self, entity_keys: pa.Array) -> pa.Array:
        from dativo_provider.ml.feast_encoding import concat_constant

        return concat_constant(entity_keys, self.project.encode())

    def write(self, batch: EncodedBatch) -> None:
        """Send this batch's HSETs, then read the replies of the batch before: Redis works through one
        batch while the next is being encoded."""
        from dativo_provider.ml.feast_encoding import encode_timestamps, resp_commands

        keys = self._keys(batch.keys)
        fields: list[tuple[bytes, pa.Array]] = [(self.ts_field, encode_timestamps(batch.event_ns))]
        fields += [(feast_field_hash(self.view, name), values) for name, values in batch.values.items()]
        payload = resp_commands(b"HSET", keys, fields)
        if self.connection is None:
            self.connection = self.client.connection_pool.get_connection()
        self.connection.send_packed_command([payload], check_health=False)
        self._read_replies()
        self.pending = len(keys)
        self.rows_written += len(batch)

    def _read_replies(self) -> None:
        assert self.connection is not None
        pending, self.pending = self.pending, 0
        for _ in range(pending):
            reply = self.connection.read_response()
            if isinstance(reply, Exception):
                raise reply

    def flush(self) -> None:
        if self.connection is not None:
            self._read_replies()
            self.client.connection_pool.release(self.connection)
            self.connection = None

    def _redis_keys(self, keys: Sequence[bytes]) -> list[bytes]:
        return [key + self.project.encode() for key in keys]

    def delete(self, keys: Sequence[bytes]) -> int:
        found = self.count(keys)
        fields = [self.ts_field, *(feast_field_hash(self.view, name) for name in self.features)]
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._redis_keys(keys):
                pipe.execute_command("HDEL", key, *fields)
            pipe.execute()
        return found

    def count(self, keys: Sequence[bytes]) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._redis_keys(keys):
                pipe.execute_command("HEXISTS", key, self.ts_field)
            return sum(bool(found) for found in pipe.execute())

    @property
    def _position_key(self) -> str:
        return f"dativo:feast:position:{self.project}:{self.view}"

    def read_position(self) -> dict[str, Any] | None:
        value: Any = self.client.get(self._position_key)
        return json.loads(value) if value else None

    def write_position(self, position: Mapping[str, Any]) -> None:
        self.flush()
        self.client.set(self._position_key, json.dumps(dict(position), sort_keys=True))

    def close(self) -> None:
        if self.connection is not None:  # a failed run: the connection may hold unread replies
            self.connection.disconnect()
            self.client.connection_pool.release(self.connection)
        self.client.close()


def open_writer(location: StoreLocation, project: str, view: str, *, password: str | None = None,
                features: Sequence[str] = ()) -> OnlineWriter:
    """The writer for ``location``'s kind."""
    if location.kind == "sqlite":
        return SqliteWriter(location, project, view)
    if location.kind == "redis":
        return RedisWriter(location, project, view, password, features)
    if location.kind == "postgres":
        return PostgresWriter(location, project, view, password)
    raise ConfigError(f"online store kind {location.kind!r} is not sqlite, redis or postgres")
