"""IcebergIngestOperator: XCom summary, error mapping, outlet alias and asset event, OpenLineage facets.

The asset events of real runs (static, templated, mapped tables) are in test_assets.py."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pytest

from dativo_provider.compat import AirflowException, AirflowFailException, Asset, AssetAlias
from dativo_provider.exceptions import CommitConflictError
from dativo_provider.operators.common import native_bound
from dativo_provider.operators.ingest import IcebergIngestOperator
from tests.airflow.helpers import read_table

CSV = "id,name,score\n1,ada,9.5\n2,grace,8.25\n3,linus,\n"


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "people.csv").write_text(CSV)
    return folder


def _operator(csv_dir: Path, **kwargs) -> IcebergIngestOperator:
    return IcebergIngestOperator(
        task_id="ingest_people",
        source={"type": "files", "path": str(csv_dir), "glob": "*.csv"},
        table="tests.people",
        **kwargs,
    )


def test_execute_returns_the_run_summary_for_xcom(iceberg_default, csv_dir):
    summary = _operator(csv_dir).execute({"run_id": "manual__1"})
    assert (summary["table"], summary["mode"], summary["rows_read"], summary["rows_written"]) == (
        "tests.people", "append", 3, 3
    )
    assert summary["committed"] and summary["snapshot_id"]
    assert [field["name"] for field in summary["schema"]] == ["id", "name", "score"]
    assert sorted(read_table("tests.people").column("name").to_pylist()) == ["ada", "grace", "linus"]


def test_openlineage_facets_name_inputs_outputs_and_schema(iceberg_default, csv_dir):
    operator = _operator(csv_dir)
    operator.execute({"run_id": "manual__1"})
    lineage = operator.get_openlineage_facets_on_complete(task_instance=None)
    (source,) = lineage.inputs
    (target,) = lineage.outputs
    assert source.namespace.startswith("file") and "drop" in source.name
    assert target.name.endswith("/tests/people")  # the physical location; the catalog's name is the symlink
    assert target.facets["symlinks"].identifiers[0].name == "tests.people"
    assert [(field.name, field.type) for field in target.facets["schema"].fields] == [
        ("id", "long"), ("name", "string"), ("score", "double")
    ]
    assert target.outputFacets["outputStatistics"].rowCount == 3


def test_openlineage_never_fails_the_task(csv_dir):
    operator = _operator(csv_dir)
    assert operator.get_openlineage_facets_on_complete(None).outputs == []
    operator.ingest_result = {"table": "t", "outputs": [{"no_namespace": True}]}
    assert operator.get_openlineage_facets_on_complete(None).outputs == []


def test_terminal_errors_fail_without_retry(iceberg_default, csv_dir):
    operator = _operator(csv_dir, write_options={"mode": "upsert"})
    with pytest.raises(AirflowFailException, match="ConfigError: write option 'mode' is 'upsert'"):
        operator.execute({"run_id": "manual__1"})


def test_transient_errors_fail_for_a_retry(iceberg_default, csv_dir, monkeypatch):
    def lose_every_commit_race(*args, **kwargs):
        raise CommitConflictError("another writer won 10 times")

    monkeypatch.setattr("dativo_provider.ingest.engine.run_ingest", lose_every_commit_race)
    with pytest.raises(AirflowException, match="will retry") as raised:
        _operator(csv_dir).execute({"run_id": "manual__1"})
    assert not isinstance(raised.value, AirflowFailException)


def test_outlets_are_the_task_alias_unless_given(csv_dir):
    assert _operator(csv_dir).outlets == [AssetAlias("dativo:ingest_people")]  # no DAG: the task id alone
    templated = IcebergIngestOperator(task_id="t", source={"type": "files", "path": str(csv_dir)},
                                      table="raw.{{ params.name }}")
    assert templated.outlets == [AssetAlias("dativo:t")]
    own = Asset("iceberg://cat.example.com/lake/tests/people")
    assert _operator(csv_dir, outlets=[own]).outlets == [own]


class _Events(dict):
    """Airflow's outlet_events accessor, reduced to what the operator calls."""

    def __missing__(self, alias):
        self[alias] = _Added()
        return self[alias]


class _Added(list):
    def add(self, asset, extra=None):
        self.append((asset.uri, extra))


def test_a_committed_run_adds_its_table_to_the_alias(airflow_db, iceberg_default, csv_dir, dativo_home):
    events = _Events()  # airflow_db: on Airflow 2.11 the operator stores the alias before the event
    summary = _operator(csv_dir).execute({"run_id": "manual__1", "outlet_events": events})
    uri = f"iceberg://localhost{dativo_home}/catalog.db/dativo/tests/people"
    extra = {"table": "tests.people", "snapshot_id": str(summary["snapshot_id"]), "mode": "append",
             "rows_written": 3, "rows_published": 3}
    assert events == {AssetAlias("dativo:ingest_people"): [(uri, extra)]}
    assert summary["asset_event"] == {"uri": uri, "extra": extra}

    rerun = _Events()  # the file was read already: nothing to commit, no event
    assert _operator(csv_dir).execute({"run_id": "manual__2", "outlet_events": rerun})["asset_event"] is None
    assert rerun == {}


def test_an_asset_event_that_cannot_be_named_never_fails_the_task(iceberg_default, csv_dir, monkeypatch):
    def unnamed(*args, **kwargs):
        raise ValueError("no region")

    monkeypatch.setattr("dativo_provider.assets.table_uri", unnamed)
    summary = _operator(csv_dir).execute({"run_id": "manual__1", "outlet_events": _Events()})
    assert summary["committed"] and summary["asset_event"] is None


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("2024-01-02T00:00:00+00:00", dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
        ("None", None),
        ("", None),
        (42, 42),
        ("not a time", "not a time"),
    ],
)
def test_rendered_upper_bounds_become_cursor_values(rendered, expected):
    assert native_bound(rendered) == expected
