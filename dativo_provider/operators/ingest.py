"""IcebergIngestOperator: one source into one Iceberg table, in one atomic commit per run."""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from dativo_provider.compat import AirflowException, AirflowFailException, Asset, BaseOperator, Context
from dativo_provider.exceptions import TerminalError, TransientError
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.hooks.sources import source_connection_config


class IcebergIngestOperator(BaseOperator):
    """Stream a source into an Iceberg table and push the run summary to XCom.

    Incremental sources store their cursor in the commit that writes the rows, so rerunning the
    same data interval never writes a row twice.

    :param source: the source spec, e.g. ``{"type": "postgres", "conn_id": "pg", "table": "orders",
        "cursor": "updated_at"}``. It names connections by id only: secrets stay in Airflow.
    :param table: the target table, ``"namespace.table"``.
    :param write_options: :class:`~dativo_provider.ingest.options.WriteOptions` as a dict, e.g.
        ``{"mode": "merge", "merge_keys": ["id"]}``.
    :param iceberg_conn_id: the ``iceberg`` connection; without ``iceberg_default`` the embedded
        catalog under ``$AIRFLOW_HOME/dativo`` is used.
    :param upper_bound: inclusive upper bound for the cursor, e.g. ``"{{ data_interval_end }}"``;
        ISO timestamps are read as datetimes, an empty or ``"None"`` rendering as no bound.

    A lookback window for late-arriving rows belongs to the source spec (``"lookback": "2h"``): the
    source then reports that it may repeat rows, and the engine insists on ``merge``.
    """

    template_fields: Sequence[str] = ("source", "table", "write_options", "upper_bound")
    template_fields_renderers: ClassVar[dict[str, str]] = {"source": "json", "write_options": "json"}
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        source: Mapping[str, Any],
        table: str,
        write_options: Mapping[str, Any] | None = None,
        iceberg_conn_id: str = IcebergHook.default_conn_name,
        upper_bound: Any = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and not _is_template(table):
            kwargs["outlets"] = [table_asset(iceberg_conn_id, table)]
        super().__init__(**kwargs)
        self.source = source
        self.table = table
        self.write_options = write_options or {}
        self.iceberg_conn_id = iceberg_conn_id
        self.upper_bound = upper_bound
        self.ingest_result: dict[str, Any] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Build the catalog, source and options, run one ingest, return its summary."""
        from dativo_provider.ingest.engine import run_ingest
        from dativo_provider.ingest.options import WriteOptions
        from dativo_provider.sources import ReadBounds, build_source

        with _airflow_errors():
            catalog = IcebergHook(self.iceberg_conn_id).get_catalog_config()
            source = build_source(self.source, source_connection_config(self.source))
            options = WriteOptions.from_mapping(self.write_options)
            bounds = ReadBounds(upper=native_bound(self.upper_bound))
            result = run_ingest(source, catalog, self.table, options, bounds=bounds, run_id=context.get("run_id"))
        self.log.info("%s", result.summary_line())
        self.ingest_result = result.to_dict()
        return self.ingest_result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs, the output table and its schema, from the summary of the run that just ended."""
        from dativo_provider.operators.lineage import operator_lineage

        return operator_lineage(self.ingest_result, self.log)


def table_asset(iceberg_conn_id: str, table: str) -> Asset:
    """The Asset for a target table: ``iceberg://<conn id>/<namespace>/<table>`` (path parts quoted)."""
    parts = [urllib.parse.quote(part, safe="") for part in table.split(".")]
    return Asset(f"iceberg://{iceberg_conn_id}/{'/'.join(parts)}")


def native_bound(value: Any) -> Any:
    """A rendered bound as the cursor type: ISO strings become datetimes, ``""``/``"None"`` None."""
    if not isinstance(value, str):
        return value
    if value.strip() in ("", "None"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@contextlib.contextmanager
def _airflow_errors() -> Iterator[None]:
    """Terminal errors fail the task without retries; transient ones fail it for a retry."""
    try:
        yield
    except TerminalError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    except TransientError as exc:
        raise AirflowException(f"{type(exc).__name__} (will retry): {exc}") from exc
