"""pyiceberg's SQL catalog on plain DB-API 2 connections, for environments without SQLAlchemy 2.

:class:`DbApiCatalog` keeps its state in the same two tables, columns and rows as pyiceberg's
``SqlCatalog`` (and Iceberg's Java ``JdbcCatalog``): ``iceberg_tables`` and
``iceberg_namespace_properties``, so either catalog opens a database the other one wrote.

URIs: ``sqlite:///relative.db`` and ``sqlite:////absolute.db`` use the standard library's
:mod:`sqlite3`; ``postgresql://`` and ``postgresql+psycopg://`` use psycopg 3.
Every operation runs on its own short connection, so a catalog is safe across threads and forks.
A commit is an atomic compare-and-swap on ``metadata_location``. SQLite writes start with
``BEGIN IMMEDIATE`` and wait up to :data:`SQLITE_BUSY_TIMEOUT` seconds for another process's lock.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pyiceberg import exceptions as errors
from pyiceberg.catalog import URI, Catalog, MetastoreCatalog, PropertiesUpdateSummary
from pyiceberg.io import load_file_io
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import CommitTableResponse, Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties
from pyiceberg.types import strtobool

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.table.update import TableRequirement, TableUpdate

log = logging.getLogger(__name__)

#: Seconds a SQLite writer waits for another connection's lock before failing.
SQLITE_BUSY_TIMEOUT = 60.0
TABLE_TYPE = "TABLE"
MINIMAL_NAMESPACE_PROPERTIES = {"exists": "true"}
#: The DDL SQLAlchemy emits for ``SqlCatalog``'s models (v1 schema), identical on SQLite and Postgres.
DDL = (
    ("CREATE TABLE IF NOT EXISTS iceberg_tables (catalog_name VARCHAR(255) NOT NULL, "
     "table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL, "
     "metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000), iceberg_type VARCHAR(5), "
     "PRIMARY KEY (catalog_name, table_namespace, table_name))"),
    ("CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (catalog_name VARCHAR(255) NOT NULL, "
     "namespace VARCHAR(255) NOT NULL, property_key VARCHAR(255) NOT NULL, "
     "property_value VARCHAR(1000) NOT NULL, PRIMARY KEY (catalog_name, namespace, property_key))"),
)
_ROW = "catalog_name = ? AND table_namespace = ? AND table_name = ?"
_PROPERTIES = "iceberg_namespace_properties WHERE catalog_name = ? AND namespace = ?"
#: Any constant: serializes concurrent ``CREATE TABLE IF NOT EXISTS`` on Postgres.
_DDL_LOCK_KEY = 0x1CEBE6

Execute = Callable[..., Any]


class _Database:
    """The database behind a catalog URI, opened anew for every transaction.

    :param uri: ``sqlite:///path``, ``postgresql://...`` or ``postgresql+psycopg://...``.
    :raises ValueError: another scheme, an in-memory database, or SQLite URI options.
    """

    def __init__(self, uri: str) -> None:
        scheme, _, rest = uri.partition("://")
        if scheme == "sqlite":
            self.driver: Any = sqlite3
            self._target = _sqlite_path(uri, rest)
        elif scheme in ("postgresql", "postgresql+psycopg"):
            self.driver, self._target = _import_psycopg(), f"postgresql://{rest}"
        else:
            raise ValueError(f"unsupported SQL catalog URI scheme {scheme!r}: use sqlite or postgresql")
        self.sqlite = self.driver is sqlite3

    def connect(self) -> Any:
        """A new connection (SQLite: in autocommit mode; :meth:`transaction` begins explicitly)."""
        if self.sqlite:
            return sqlite3.connect(self._target, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
        return self.driver.connect(self._target)

    @contextlib.contextmanager
    def transaction(self, write: bool = False) -> Iterator[Execute]:
        """One transaction, yielding ``execute(sql, *params) -> cursor`` (``?`` placeholders).

        :param write: on SQLite, take the write lock up front (``BEGIN IMMEDIATE``).
        """
        connection = self.connect()
        try:
            if write and self.sqlite:
                connection.execute("BEGIN IMMEDIATE")
            cursor = connection.cursor()
            placeholder = "?" if self.sqlite else "%s"
            yield lambda sql, *params: cursor.execute(sql.replace("?", placeholder), params)
            connection.commit()
        except BaseException:
            with contextlib.suppress(self.driver.Error):  # the original error matters more
                connection.rollback()
            raise
        finally:
            connection.close()

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement."""
        with self.transaction() as execute:
            return execute(sql, *params).fetchall()

    def update(self, sql: str, *params: Any) -> int:
        """Run one writing statement in its own transaction; the number of rows it changed."""
        with self.transaction(write=True) as execute:
            return execute(sql, *params).rowcount


def _sqlite_path(uri: str, rest: str) -> str:
    """The file of a SQLAlchemy-style SQLite URI: relative after ``///``, absolute after ``////``."""
    path = rest[1:] if rest.startswith("/") else ""
    if path in ("", ":memory:") or "?" in path:
        raise ValueError(f"unsupported SQLite catalog URI {uri!r}: use sqlite:///rel.db or sqlite:////abs.db")
    return path


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError("a Postgres Iceberg catalog needs psycopg 3: "
                          "pip install 'dativo-airflow-provider[postgres-catalog]'") from exc
    return psycopg


def _split(identifier: str | Identifier) -> tuple[str, str]:
    """``("a.b", "t")`` for the table identifier ``a.b.t``."""
    namespace = Catalog.namespace_to_string(Catalog.namespace_from(identifier))
    return namespace, Catalog.table_name_from(identifier)


def _like_prefix(namespace: str) -> str:
    """A LIKE pattern (escape ``!``) for the namespaces nested under ``namespace``."""
    return namespace.replace("!", "!!").replace("_", "!_").replace("%", "!%") + ".%"


class DbApiCatalog(MetastoreCatalog):
    """pyiceberg's ``SqlCatalog`` (same tables, same semantics) over ``sqlite3`` or psycopg 3.

    Properties as for ``SqlCatalog``: ``uri`` (required), ``warehouse``, ``init_catalog_tables``
    (default true), ``schema_version`` (``v1`` migrates a v0 database; by default it is left as is).

    :param name: the catalog name; rows of other names in the same database are other catalogs.
    :raises NoSuchPropertyException: ``uri`` is missing.
    """

    def __init__(self, name: str, **properties: str) -> None:
        super().__init__(name, **properties)
        if not (uri := self.properties.get(URI)):
            raise errors.NoSuchPropertyException("SQL connection URI is required")
        self._db = _Database(uri)
        self._schema_version = self._init_catalog()

    def _init_catalog(self) -> str:
        """Create absent tables (v1 schema), migrate a v0 schema if asked to; the schema version in use."""
        requested = self.properties.get("schema_version", "v0")
        if requested not in ("v0", "v1"):
            raise ValueError(f"Invalid schema_version property: '{requested}'. Must be 'v0' or 'v1'.")
        tables = ("iceberg_tables", "iceberg_namespace_properties")
        if not all(self._succeeds(f"SELECT 1 FROM {table} LIMIT 0") for table in tables):
            if strtobool(self.properties.get("init_catalog_tables", "true")):
                self.create_tables()
            return "v1"
        if self._succeeds("SELECT iceberg_type FROM iceberg_tables LIMIT 0"):
            return "v1"
        if requested == "v1":
            self._succeeds("ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)", write=True)
            return "v1"
        log.warning("DbApiCatalog found a v0 schema (no iceberg_type); schema_version='v1' migrates it.")
        return "v0"

    def _succeeds(self, sql: str, write: bool = False) -> bool:
        """Run one statement; False if the database rejects it (a missing table or column)."""
        try:
            with self._db.transaction(write) as execute:
                execute(sql)
        except (self._db.driver.OperationalError, self._db.driver.ProgrammingError):
            return False
        return True

    def create_tables(self) -> None:
        """Create the catalog tables where they do not exist (concurrent callers are fine)."""
        with self._db.transaction(write=True) as execute:
            if not self._db.sqlite:
                execute("SELECT pg_advisory_xact_lock(?)", _DDL_LOCK_KEY)
            for statement in DDL:
                execute(statement)

    def _tables_only(self) -> tuple[str, tuple[str, ...]]:
        """SQL and parameters that skip views (rows other engines write) on a v1 schema."""
        if self._schema_version != "v1":
            return "", ()
        return " AND (iceberg_type = ? OR iceberg_type IS NULL)", (TABLE_TYPE,)

    def _insert_table(self, namespace: str, table_name: str, metadata_location: str) -> None:
        values: tuple[Any, ...] = (self.name, namespace, table_name, metadata_location, None)
        columns = "catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location"
        if self._schema_version == "v1":
            values, columns = (*values, TABLE_TYPE), f"{columns}, iceberg_type"
        sql = f"INSERT INTO iceberg_tables ({columns}) VALUES ({', '.join('?' * len(values))})"
        try:
            self._db.update(sql, *values)
        except self._db.driver.IntegrityError as exc:
            raise errors.TableAlreadyExistsError(f"Table {namespace}.{table_name} already exists") from exc

    def _existing_namespace(self, identifier: str | Identifier) -> tuple[str, str]:
        """:func:`_split`, after checking that the namespace exists."""
        namespace, table_name = _split(identifier)
        if not self.namespace_exists(namespace):
            raise errors.NoSuchNamespaceError(f"Namespace does not exist: {namespace}")
        return namespace, table_name

    def create_table(
        self, identifier: str | Identifier, schema: Schema | pa.Schema, location: str | None = None,
        partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
        sort_order: SortOrder = UNSORTED_SORT_ORDER, properties: Properties = EMPTY_DICT,
    ) -> Table:
        """Write the first metadata file and add the table (``TableAlreadyExistsError`` if it exists)."""
        version = int(properties.get(TableProperties.FORMAT_VERSION, TableProperties.DEFAULT_FORMAT_VERSION))
        iceberg_schema = self._convert_schema_if_needed(schema, version)  # type: ignore[arg-type]
        namespace, table_name = self._existing_namespace(identifier)
        location = self._resolve_table_location(location, namespace, table_name)
        metadata_location = load_location_provider(location, properties).new_table_metadata_file_location()
        metadata = new_table_metadata(location=location, schema=iceberg_schema, partition_spec=partition_spec,
                                      sort_order=sort_order, properties=properties)
        self._write_metadata(metadata, load_file_io(self.properties, metadata_location), metadata_location)
        self._insert_table(namespace, table_name, metadata_location)
        return self.load_table(identifier)

    def register_table(self, identifier: str | Identifier, metadata_location: str, overwrite: bool = False
                       ) -> Table:
        """Add a table whose metadata file exists (``TableAlreadyExistsError`` if the name is taken)."""
        if overwrite:
            raise NotImplementedError("`overwrite` isn't supported")
        namespace, table_name = self._existing_namespace(identifier)
        self._insert_table(namespace, table_name, metadata_location)
        return self.load_table(identifier)

    def load_table(self, identifier: str | Identifier) -> Table:
        """The table at its current metadata file (``NoSuchTableError`` if there is none)."""
        namespace, table_name = _split(identifier)
        tables_only, type_params = self._tables_only()
        sql = f"SELECT metadata_location FROM iceberg_tables WHERE {_ROW}{tables_only}"
        rows = self._db.query(sql, self.name, namespace, table_name, *type_params)
        if not rows:
            raise errors.NoSuchTableError(f"Table does not exist: {namespace}.{table_name}")
        if not (metadata_location := rows[0][0]):
            raise errors.NoSuchTableError("Table property metadata_location is missing")
        io = load_file_io(self.properties, metadata_location)
        metadata = FromInputFile.table_metadata(io.new_input(metadata_location))
        return Table(identifier=Catalog.identifier_to_tuple(namespace) + (table_name,), metadata=metadata,
                     metadata_location=metadata_location, catalog=self,
                     io=self._load_file_io(metadata.properties, metadata_location))

    def drop_table(self, identifier: str | Identifier) -> None:
        """Remove the table from the catalog, not its files (``NoSuchTableError`` if there is none)."""
        namespace, table_name = _split(identifier)
        tables_only, type_params = self._tables_only()
        sql = f"DELETE FROM iceberg_tables WHERE {_ROW}{tables_only}"
        if self._db.update(sql, self.name, namespace, table_name, *type_params) < 1:
            raise errors.NoSuchTableError(f"Table does not exist: {namespace}.{table_name}")

    def rename_table(self, from_identifier: str | Identifier, to_identifier: str | Identifier) -> Table:
        """Rename a table, maybe into another namespace (``TableAlreadyExistsError`` if the name is taken)."""
        from_namespace, from_name = _split(from_identifier)
        to_namespace, to_name = self._existing_namespace(to_identifier)
        tables_only, type_params = self._tables_only()
        sql = f"UPDATE iceberg_tables SET table_namespace = ?, table_name = ? WHERE {_ROW}{tables_only}"
        params = (to_namespace, to_name, self.name, from_namespace, from_name, *type_params)
        try:
            renamed = self._db.update(sql, *params)
        except self._db.driver.IntegrityError as exc:
            raise errors.TableAlreadyExistsError(f"Table {to_namespace}.{to_name} already exists") from exc
        if renamed < 1:
            raise errors.NoSuchTableError(f"Table does not exist: {from_name}")
        return self.load_table(to_identifier)

    def commit_table(
        self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]
    ) -> CommitTableResponse:
        """Write the new metadata, then swap it in if the table still is where ``requirements`` saw it.

        :raises CommitFailedException: a requirement failed, or another writer committed first.
        :raises TableAlreadyExistsError: a create transaction lost to another creator.
        """
        try:
            current: Table | None = self.load_table(table.name())
        except errors.NoSuchTableError:
            current = None
        staged = self._update_and_stage_table(current, table.name(), requirements, updates)
        if current is not None and staged.metadata == current.metadata:
            return CommitTableResponse(metadata=current.metadata, metadata_location=current.metadata_location)
        self._write_metadata(metadata=staged.metadata, io=staged.io, metadata_path=staged.metadata_location)
        namespace, table_name = _split(table.name())
        if current is None:
            self._insert_table(namespace, table_name, staged.metadata_location)
        else:
            self._swap(namespace, table_name, current.metadata_location, staged.metadata_location)
        return CommitTableResponse(metadata=staged.metadata, metadata_location=staged.metadata_location)

    def _swap(self, namespace: str, table_name: str, expected: str, new: str) -> None:
        """Point the table at ``new`` if it still points at ``expected``: an atomic compare-and-swap."""
        sql = ("UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? "
               f"WHERE {_ROW} AND metadata_location = ?")
        if self._db.update(sql, new, expected, self.name, namespace, table_name, expected) != 1:
            raise errors.CommitFailedException(
                f"Table has been updated by another process: {namespace}.{table_name}"
            )

    def list_tables(self, namespace: str | Identifier) -> list[Identifier]:
        """The tables directly in ``namespace`` (``NoSuchNamespaceError`` if it does not exist)."""
        if namespace and not self.namespace_exists(namespace):
            raise errors.NoSuchNamespaceError(f"Namespace does not exist: {namespace}")
        tables_only, type_params = self._tables_only()
        sql = ("SELECT table_namespace, table_name FROM iceberg_tables WHERE catalog_name = ? "
               f"AND table_namespace = ?{tables_only}")
        rows = self._db.query(sql, self.name, Catalog.namespace_to_string(namespace), *type_params)
        return [Catalog.identifier_to_tuple(ns) + (table_name,) for ns, table_name in rows]

    def namespace_exists(self, namespace: str | Identifier) -> bool:
        """Whether the namespace, or one nested in it, has properties or tables."""
        name = Catalog.namespace_to_string(namespace, errors.NoSuchNamespaceError)
        sql = ("SELECT 1 FROM iceberg_tables WHERE catalog_name = ? AND (table_namespace = ? "
               "OR table_namespace LIKE ? ESCAPE '!') UNION ALL SELECT 1 FROM iceberg_namespace_properties "
               "WHERE catalog_name = ? AND (namespace = ? OR namespace LIKE ? ESCAPE '!') LIMIT 1")
        return bool(self._db.query(sql, *(self.name, name, _like_prefix(name)) * 2))

    def create_namespace(self, namespace: str | Identifier, properties: Properties = EMPTY_DICT) -> None:
        """Create a namespace with ``properties``, by default ``{"exists": "true"}``."""
        if self.namespace_exists(namespace):
            raise errors.NamespaceAlreadyExistsError(f"Namespace {namespace} already exists")
        name = Catalog.namespace_to_string(namespace, errors.NoSuchNamespaceError)
        try:
            with self._db.transaction(write=True) as execute:
                self._insert_properties(execute, name, properties or MINIMAL_NAMESPACE_PROPERTIES)
        except self._db.driver.IntegrityError as exc:  # a concurrent creator won
            raise errors.NamespaceAlreadyExistsError(f"Namespace {namespace} already exists") from exc

    def _insert_properties(self, execute: Execute, namespace: str, properties: Properties) -> None:
        for key, value in properties.items():
            execute("INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, "
                    "property_value) VALUES (?, ?, ?, ?)", self.name, namespace, key, value)

    def drop_namespace(self, namespace: str | Identifier) -> None:
        """Drop a namespace (``NamespaceNotEmptyError`` while it holds tables)."""
        if not self.namespace_exists(namespace):
            raise errors.NoSuchNamespaceError(f"Namespace does not exist: {namespace}")
        name = Catalog.namespace_to_string(namespace)
        if tables := self.list_tables(namespace):
            raise errors.NamespaceNotEmptyError(f"Namespace {name} is not empty. {len(tables)} tables exist.")
        self._db.update(f"DELETE FROM {_PROPERTIES}", self.name, name)

    def list_namespaces(self, namespace: str | Identifier = ()) -> list[Identifier]:
        """The namespaces one level below ``namespace``, by default the top-level ones."""
        if namespace and not self.namespace_exists(namespace):
            raise errors.NoSuchNamespaceError(f"Namespace does not exist: {namespace}")
        sql = ("SELECT table_namespace FROM iceberg_tables WHERE catalog_name = ? "
               "UNION SELECT namespace FROM iceberg_namespace_properties WHERE catalog_name = ?")
        found = [Catalog.identifier_to_tuple(row[0]) for row in self._db.query(sql, self.name, self.name)]
        parent = Catalog.identifier_to_tuple(namespace)
        depth = len(parent) + 1
        return list({ns[:depth] for ns in found if len(ns) >= depth and ns[: depth - 1] == parent})

    def load_namespace_properties(self, namespace: str | Identifier) -> Properties:
        """The namespace's properties (``NoSuchNamespaceError`` if it does not exist)."""
        name = Catalog.namespace_to_string(namespace)
        if not self.namespace_exists(namespace):
            raise errors.NoSuchNamespaceError(f"Namespace {name} does not exists")
        sql = f"SELECT property_key, property_value FROM {_PROPERTIES}"
        return dict(self._db.query(sql, self.name, name))

    def update_namespace_properties(
        self, namespace: str | Identifier, removals: set[str] | None = None, updates: Properties = EMPTY_DICT
    ) -> PropertiesUpdateSummary:
        """Remove and set namespace properties in one transaction (``ValueError`` if they overlap)."""
        name = Catalog.namespace_to_string(namespace)
        current = self.load_namespace_properties(namespace)
        summary, _ = self._get_updated_props_and_update_summary(current, removals, updates)
        with self._db.transaction(write=True) as execute:
            for key in sorted(set(removals or ()) | set(updates)):
                execute(f"DELETE FROM {_PROPERTIES} AND property_key = ?", self.name, name, key)
            self._insert_properties(execute, name, updates)
        return summary

    def _views_are_not_supported(self, *args: Any, **kwargs: Any) -> Any:
        """Views: not supported, as in pyiceberg's ``SqlCatalog``."""
        raise NotImplementedError

    list_views = view_exists = register_view = drop_view = load_view = _views_are_not_supported
