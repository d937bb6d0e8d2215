"""The actions DAG the page triggers: a run with the page's conf purges exactly the named run's rows.

Run with ``airflow dags test`` and the conf the page's API builds, on a lake of its own (the session's
demo lake stays as it is for the other tests). The release takes the same path into
``QuarantineReleaseOperator``, which tests/airflow/test_contract_operators.py covers.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.quality import quarantine as q
from dativo_provider.ui.service import CatalogUi
from dativo_provider.ui.settings import UiSettings
from tests.ui.airflow_server import ACTIONS_DAG_FILE, AIRFLOW

pytestmark = pytest.mark.timeout(900)


def _hold(catalog, run_id: str, ids: list[int]) -> None:
    rows = pa.table({"order_id": pa.array(ids, pa.int64())})
    held = q.with_reasons(rows, [["status_known"]] * len(ids), ["failed status_known (invalid on status)"] * len(ids),
                          run_id, None, datetime(2024, 4, 2, tzinfo=timezone.utc))
    q.write_quarantine(catalog, "shop.orders_quarantine", held.schema, iter(held.to_batches()), run_id,
                       guarded_table="shop.orders")


def test_a_purge_run_with_the_pages_conf_deletes_that_runs_rows(tmp_path: Path):
    lake = tmp_path / "lake"
    catalog = embedded_catalog(lake)
    catalog.load().create_namespace("shop")
    _hold(catalog, "run-a", [1, 2, 3])
    _hold(catalog, "run-b", [4])
    conf = CatalogUi(UiSettings(catalogs={"shop_lake": catalog})).quarantine_action(
        "shop_lake", "shop.orders_quarantine", "purge", ["run-a"])

    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "dativo_quarantine_actions.py").write_text(ACTIONS_DAG_FILE, encoding="utf-8")
    env = {"PATH": str(Path(AIRFLOW).parent), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "AIRFLOW__OPENLINEAGE__DISABLED": "True",
           "AIRFLOW_CONN_SHOP_LAKE": json.dumps({
               "conn_type": "dativo_iceberg", "host": f"sqlite:///{lake / 'catalog.db'}",
               "extra": {"catalog_type": "sql", "warehouse": f"file://{lake / 'warehouse'}"}})}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    done = subprocess.run([AIRFLOW, "dags", "test", "dativo_quarantine_actions", "-c", json.dumps(conf)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    left = catalog.load().load_table("shop.orders_quarantine").scan().to_arrow()
    assert left.column(q.RUN_ID).to_pylist() == ["run-b"] and left.column("order_id").to_pylist() == [4]
