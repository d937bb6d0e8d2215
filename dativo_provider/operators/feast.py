"""Feast online materialization from Iceberg (issue 13): :class:`FeastMaterializeOperator`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dativo_provider.compat import BaseHook, BaseOperator, Context
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.operators.common import airflow_errors, contract_path
from dativo_provider.operators.lineage import OpenLineageFacets


class FeastMaterializeOperator(OpenLineageFacets, BaseOperator):
    """Write each entity's latest feature values from an Iceberg snapshot into Feast's online store.

    One call of :func:`~dativo_provider.ml.feast_online.materialize_online`: the rows are read at
    ``snapshot_id`` (default: main's head), each entity's latest row is written in Feast's own
    serialization (``FeatureStore.get_online_features`` returns it), and the snapshot is kept in the
    store as the position: the next run writes only the entities that changed since (appended rows
    alone are read when the table only grew), deletes entities that left the table, and a rerun writes
    nothing. The store is recorded on the table (connection id, never a password) so a data-subject
    erasure reaches it. See ``docs/feast.md``.

    :param table: the feature table, ``"namespace.table"`` (templated).
    :param feature_view: the Feast feature view (templated); with ``contract``, default the contract
        dataset's name.
    :param project: the Feast project (templated).
    :param registry: the Feast registry: a file path or a SQL registry URL (templated).
    :param online_store_path: a SQLite online store file (templated); or
    :param online_store_conn_id: a ``redis`` connection (host, port, password; ``{"db": 0}`` in extra) or a
        ``postgres`` connection (host, port, login, password, schema = database; ``{"db_schema": ...,
        "sslmode": ...}`` in extra).
    :param repo_path: an existing Feast feature repo instead of project/registry/online store.
    :param contract: an ODCS contract whose dataset declares ``dativoFeatures``: its entities and view
        are applied to the registry first (unchanged definitions are not rewritten).
    :param contract_dataset: the contract's dataset, if it has several.
    :param snapshot_id: the snapshot to materialize (templated); default main's head.
    :param full: ignore the position and write every entity.
    :param batch_rows: entities per write batch.
    :param duckdb_settings: DuckDB settings for the latest-row query, e.g. ``{"memory_limit": "2GB"}``.
    :param iceberg_conn_id: the ``iceberg`` connection (default: the embedded catalog).
    """

    template_fields: Sequence[str] = ("table", "feature_view", "project", "registry", "online_store_path",
                                      "snapshot_id", "contract")
    ui_color = "#e3d7fb"

    def __init__(
        self,
        *,
        table: str,
        feature_view: str | None = None,
        project: str = "",
        registry: str = "",
        online_store_path: str | None = None,
        online_store_conn_id: str | None = None,
        repo_path: str | None = None,
        contract: str | None = None,
        contract_dataset: str | None = None,
        snapshot_id: int | str | None = None,
        full: bool = False,
        batch_rows: int = 100_000,
        duckdb_settings: Mapping[str, str] | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if repo_path is None and (online_store_path is None) == (online_store_conn_id is None):
            raise ValueError(f"{self.task_id}: give exactly one of online_store_path, online_store_conn_id "
                             "(or repo_path)")
        if feature_view is None and contract is None:
            raise ValueError(f"{self.task_id}: give feature_view or contract")
        self.table = table
        self.feature_view = feature_view
        self.project = project
        self.registry = registry
        self.online_store_path = online_store_path
        self.online_store_conn_id = online_store_conn_id
        self.repo_path = repo_path
        self.contract = contract
        self.contract_dataset = contract_dataset
        self.snapshot_id = snapshot_id
        self.full = full
        self.batch_rows = batch_rows
        self.duckdb_settings = dict(duckdb_settings or {})
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Apply the contract's view (if given), materialize, return the run summary."""
        from dativo_provider.ml.feast_online import materialize_online

        with airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            store = self._feature_store(catalog)
            try:
                view = self._apply_contract(catalog, store) if self.contract else str(self.feature_view)
                snapshot = int(self.snapshot_id) if self.snapshot_id not in (None, "") else None
                result = materialize_online(catalog, self.table, store, view, snapshot_id=snapshot,
                                            conn_id=self.online_store_conn_id, full=self.full,
                                            batch_rows=self.batch_rows, duckdb_settings=self.duckdb_settings)
            finally:
                _release(store)
        summary = self.run_summary = result.to_dict()
        self.log.info("Feast %s/%s: %s run on snapshot %s, %d rows read, %d entities written, %d deleted",
                      summary["project"], summary["feature_view"], summary["mode"], summary["snapshot_id"],
                      summary["rows_read"], summary["entities_written"], summary["entities_deleted"])
        return summary

    def _feature_store(self, catalog: Any) -> Any:
        from dativo_provider.ml.feast_registry import feature_store

        if self.repo_path is not None:
            return feature_store(repo_path=self.repo_path)
        online: Mapping[str, Any] | str
        if self.online_store_conn_id is not None:
            online = online_store_from_connection(self.online_store_conn_id)
        else:
            online = str(self.online_store_path)
        return feature_store(project=self.project, registry=self.registry, online_store=online, catalog=catalog)

    def _apply_contract(self, catalog: Any, store: Any) -> str:
        from dativo_provider.ml.feast_registry import FeastFeatureTable, apply_features, definitions_for

        spec = FeastFeatureTable.from_contract(contract_path(self, str(self.contract)), self.contract_dataset,
                                               table=self.table, name=self.feature_view or None)
        applied = apply_features(store, definitions_for(catalog, [spec]))
        self.log.info("Feast definitions from %s: %s", self.contract, applied)
        return spec.name


def online_store_from_connection(conn_id: str) -> dict[str, Any]:
    """A Feast online store config from a ``redis`` or ``postgres`` Airflow connection."""
    conn = BaseHook.get_connection(conn_id)
    extra = _extra(conn)
    kind = (conn.conn_type or "").lower()
    if kind == "redis":
        parts = [f"{conn.host or 'localhost'}:{conn.port or 6379}", f"db={int(extra.get('db', 0))}"]
        if conn.password:
            parts.append(f"password={conn.password}")
        if extra.get("ssl"):
            parts.append("ssl=true")
        return {"type": "redis", "connection_string": ",".join(parts)}
    if kind in ("postgres", "postgresql"):
        config: dict[str, Any] = {"type": "postgres", "host": conn.host or "localhost", "port": int(conn.port or 5432),
                                  "database": conn.schema or "postgres", "user": conn.login or "postgres",
                                  "password": conn.password or ""}
        for key in ("db_schema", "sslmode"):
            if extra.get(key):
                config[key] = str(extra[key])
        return config
    raise ConfigError(f"connection {conn_id!r}: type {conn.conn_type!r} is not a Feast online store this "
                      "operator reads (redis, postgres); for SQLite pass online_store_path")


def _release(store: Any) -> None:
    """Close the connection Feast's own online store opened (``apply`` creates its tables through it).

    Feast has no synchronous close; its Postgres and Redis stores keep a client until garbage collection.
    """
    try:
        online = store._get_provider().online_store
    except Exception:  # noqa: BLE001 - a store that never built its provider holds nothing
        return
    for attribute in ("_conn", "_client"):
        resource = getattr(online, attribute, None)
        if resource is not None and hasattr(resource, "close"):
            resource.close()
            setattr(online, attribute, None)


def _extra(conn: Any) -> dict[str, Any]:
    value = getattr(conn, "extra_dejson", None)
    if isinstance(value, dict):
        return value
    return json.loads(conn.extra) if conn.extra else {}
