"""An erasure whose heavy delete is handed to an external engine, with our certificate at the end.

### What it shows

The three steps of a hand-off (docs/handoff.md), one run per erasure request:

1. `plan`: discovery finds the subject's rows; the exact Trino `DELETE` per table is written to a
   file readable by its owner only (it holds the identifiers); the plan (tables, base snapshots,
   statement hashes, no identifier) goes to XCom and the audit trail;
2. `external_delete_standin`: the external step. **Here it is a stand-in, not Trino**: DuckDB runs the
   planned statement text verbatim over a copy of the table's rows and pyiceberg commits the result,
   marked `engine-name: dativo-standin-duckdb`. In production this task is the Trino provider's
   `SQLExecuteQueryOperator`/`TrinoHook`, or Spark's `SparkSqlOperator` with `engine="spark"`;
3. `verify`: finds the engine's commit after the planned snapshot, fails if it deleted nothing or left
   any of the subject's rows, purges, decodes every file, and writes the signed certificate naming the
   engine and its snapshot.

`seed` creates `examples.handoff_accounts` with a few accounts (customer 87 among them) when the table
does not exist yet.

### What it needs

- the `privacy` and `ml` extras (Ed25519 certificates; DuckDB for the stand-in);
- connections `dativo_dsr_signing` and `dativo_dsr_hash_key` (as for example_dsr);
- the `iceberg_default` catalog (the embedded one without it);
- optional variables: `dativo_dsr_output_dir` (statements under `statements/`, certificates under
  `certificates/`), `dativo_dsr_refs_policy`, `dativo_dsr_safety_window_minutes`.

### How to run it

`airflow dags trigger example_erasure_handoff --conf '{"request_id": "dsr-2024-0099", "subject_ids": ["87"]}'`.
One request at a time (`max_active_runs=1`): two erasures of one table would race each other.
"""

from __future__ import annotations

import os

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from dativo_provider.operators.handoff import ErasureHandoffPlanOperator, ErasureHandoffVerifyOperator

CONTRACTS = "contracts/handoff_accounts.odcs.yaml"  # next to this file
TABLE = "examples.handoff_accounts"
OUTPUT = (
    "{{ var.value.get('dativo_dsr_output_dir', '"
    + os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "dativo", "dsr")
    + "') }}"
)

with DAG(
    dag_id="example_erasure_handoff",
    schedule=None,
    params={
        "request_id": Param(type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{2,63}$"),
        "kind": Param("erasure", type="string", enum=["erasure"]),
        "subject_kind": Param("customer", type="string", pattern=r"^[a-z][a-z0-9_]{0,62}$"),
        "subject_ids": Param([], type="array", maxItems=100, items={"type": "string", "minLength": 1}),
        "emails": Param([], type="array", maxItems=100, items={"type": "string", "maxLength": 320}),
        "received_at": Param(None, type=["null", "string"], format="date-time"),
        "deadline": Param(None, type=["null", "string"], format="date-time"),
    },
    max_active_runs=1,
    tags=["dativo", "example", "privacy"],
    doc_md=__doc__,
):

    @task
    def seed() -> int:
        """Create the example table with a few accounts, once."""
        import pyarrow as pa

        from dativo_provider.hooks.iceberg import IcebergHook

        catalog = IcebergHook().get_conn()
        catalog.create_namespace_if_not_exists("examples")
        if catalog.table_exists(TABLE):
            return 0
        rows = pa.table({
            "account_id": pa.array([85, 86, 87, None, 88], pa.int64()),
            "email": ["ann@example.org", "bo@example.org", " O'Brien.Zoe@Example.org", "o'brien.zoe@example.org",
                      "cy@example.org"],
            "display_name": ["Ann", "Bo", "Zoë O'Brien", "anonymous", "Cy"],
            "plan": ["free", "pro", "pro", "free", "free"],
        })
        # counts only for identifying columns: a manifest's bounds must not keep an erased value
        table = catalog.create_table(TABLE, rows.schema, properties={
            f"write.metadata.metrics.column.{c}": "counts" for c in ("account_id", "email", "display_name")})
        table.append(rows)
        return rows.num_rows

    plan = ErasureHandoffPlanOperator(
        task_id="plan", contracts=CONTRACTS, engine="trino", engine_catalog="lake",
        statement_dir=OUTPUT + "/statements",
    )

    @task
    def external_delete_standin(ti=None) -> list[dict]:
        """A STAND-IN for Trino: DuckDB runs each planned statement verbatim, pyiceberg commits."""
        from dativo_provider.hooks.iceberg import IcebergHook
        from dativo_provider.hooks.privacy import HASH_KEY_CONN_ID, DsrKeyHook
        from dativo_provider.privacy.handoff import read_statement
        from dativo_provider.privacy.handoff_standin import run_standin_delete

        handed = ti.xcom_pull(task_ids="plan")
        catalog, hash_key = IcebergHook().get_catalog_config(), DsrKeyHook(HASH_KEY_CONN_ID).hash_key()
        done = [run_standin_delete(catalog, t["table"], read_statement(t, hash_key)) for t in handed["tables"]]
        return [{"table": d.table, "rows_deleted": d.rows_deleted, "snapshot_id": d.snapshot_id} for d in done]

    verify = ErasureHandoffVerifyOperator(
        task_id="verify", contracts=CONTRACTS,
        certificate_path=OUTPUT + "/certificates/{{ params.request_id }}.json",
        refs_policy="{{ var.value.get('dativo_dsr_refs_policy', 'fail') }}",
        safety_window_minutes="{{ var.value.get('dativo_dsr_safety_window_minutes', '30') }}",
    )

    seed() >> plan >> external_delete_standin() >> verify
