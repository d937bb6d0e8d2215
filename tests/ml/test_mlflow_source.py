"""MLflow round trip on a real local tracking store (file store in tmp_path) and real Iceberg tables: a
training set logged as a run input loads back, after later commits and a rebuild, as exactly the logged
rows (the manifest's content hash); the source carries no secret; the entry point registers it in a
fresh process; any table at a tag loads that tag's snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from dativo_provider.exceptions import ConfigError  # noqa: E402
from dativo_provider.iceberg.catalog import (  # noqa: E402
    CatalogConfig,
    embedded_catalog,
    public_properties,
    without_password,
)
from dativo_provider.ml.mlflow_source import (  # noqa: E402
    SOURCE_TYPE,
    IcebergDatasetSource,
    SnapshotLocation,
    log_iceberg_table,
    log_training_set,
)
from dativo_provider.ml.training_manifest import ContentHash, TrainingSetManifest  # noqa: E402
from dativo_provider.ml.training_set import build_training_set  # noqa: E402
from tests.ml.test_training_set import LABELS, feature_tables, later_commits, load, sample  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    """A local MLflow file store in tmp_path as the tracking URI."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def catalog(tmp_path) -> CatalogConfig:
    return embedded_catalog(tmp_path / "lake", name="lake")


def _build(catalog: CatalogConfig, tmp_path: Path, run_id: str) -> TrainingSetManifest:
    result = build_training_set(catalog, "churn", LABELS, feature_tables(), run_id=run_id,
                                manifest_path=str(tmp_path / f"{run_id}.json"),
                                output_table="ml.churn_training")
    return result.manifest


def _hash(table, columns) -> ContentHash:
    digest = ContentHash(columns)
    digest.add(table)
    return digest


def test_a_logged_training_set_loads_back_as_logged_after_later_commits(catalog, tmp_path, tracking):
    data = sample()
    load(catalog, data)
    manifest = _build(catalog, tmp_path, "march")
    with mlflow.start_run() as run:
        dataset = log_training_set(tmp_path / "march.json", context="training")
    assert dataset.digest == manifest.content_hash.removeprefix("sha256-sum:")[:32]

    # Three later commits to every input, and a rebuild that replaces the output table's rows.
    later_commits(catalog, data)
    later = _build(catalog, tmp_path, "june")
    assert later.content_hash != manifest.content_hash and later.row_count > manifest.row_count

    (logged,) = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training"}
    assert (logged.dataset.source_type, logged.dataset.name) == (SOURCE_TYPE, "churn")
    source = mlflow.data.get_source(logged)
    assert isinstance(source, IcebergDatasetSource)
    rows = source.load()  # no catalog given: the recorded (secret-free) SQLite catalog suffices
    assert rows.num_rows == manifest.row_count
    assert _hash(rows, manifest.columns).hexdigest == manifest.content_hash
    assert source.load(verify=True).num_rows == manifest.row_count
    current = catalog.load().load_table("ml.churn_training").scan().to_arrow()
    # The table moved on; the input did not.
    assert _hash(current, later.columns).hexdigest == later.content_hash

    # The output snapshot is pinned under the set's pin, and the manifest travels with the run.
    where = source.location
    assert where.ref == manifest.inputs[0].ref and where.snapshot_id == manifest.output_snapshot_id
    pinned = catalog.load().load_table("ml.churn_training").metadata.refs[where.ref]
    assert pinned.snapshot_id == manifest.output_snapshot_id
    artifact = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/dativo/training_sets/churn.json")
    assert artifact["content_hash"] == manifest.content_hash


def test_the_entry_point_registers_the_source_in_a_fresh_process(catalog, tmp_path, tracking):
    """A process that never imports dativo_provider before asking MLflow finds the source by its entry
    point. The installed metadata may predate the entry point, so the test puts a distribution declaring
    exactly pyproject.toml's entry point on the path (importlib.metadata reads it like any install)."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    (name, target), = declared["mlflow.dataset_source"].items()
    assert name == SOURCE_TYPE
    dist = tmp_path / "site" / "dativo_entry_point_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dativo-entry-point-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[mlflow.dataset_source]\n{name} = {target}\n")

    load(catalog, sample())
    manifest = _build(catalog, tmp_path, "march")
    with mlflow.start_run() as run:
        log_training_set(tmp_path / "march.json")
    script = (
        "import sys, mlflow\n"
        "run = mlflow.MlflowClient().get_run(sys.argv[1])\n"
        "source = mlflow.data.get_source(run.inputs.dataset_inputs[0])\n"
        "from dativo_provider.ml.training_manifest import ContentHash\n"
        "rows = source.load()\n"
        "digest = ContentHash(rows.schema.names); digest.add(rows)\n"
        "print(type(source).__name__, rows.num_rows, digest.hexdigest)\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_ALLOW_FILE_STORE": "true"}

    def fresh_process(*path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, run.info.run_id], capture_output=True, text=True,
                              env={**env, "PYTHONPATH": os.pathsep.join(map(str, [*path, REPO]))},
                              timeout=120, cwd=tmp_path)

    done = fresh_process(tmp_path / "site")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["IcebergDatasetSource", str(manifest.row_count), manifest.content_hash]
    if not _installed_entry_point():  # without the entry point MLflow cannot read the input back
        unregistered = fresh_process()
        assert f"unrecognized source type: {SOURCE_TYPE}" in unregistered.stderr


def _installed_entry_point() -> bool:
    from importlib.metadata import entry_points

    return any(e.name == SOURCE_TYPE for e in entry_points(group="mlflow.dataset_source"))


def test_no_secret_reaches_the_tracking_store(tmp_path, tracking):
    lake = tmp_path / "lake"
    lake.mkdir()
    catalog = CatalogConfig("lake", {"type": "sql", "uri": f"sqlite:///{lake / 'catalog.db'}",
                                     "warehouse": f"file://{lake / 'warehouse'}", "token": "T0KEN-SECRET",
                                     "s3.secret-access-key": "S3-SECRET", "s3.region": "eu-west-1"})
    load(catalog, sample())
    with mlflow.start_run() as run:
        log_iceberg_table(catalog, "ml.labels", "training")
    (logged,) = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    stored = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "mlruns").rglob("*") if p.is_file())
    assert "T0KEN-SECRET" not in stored and "S3-SECRET" not in stored
    assert json.loads(logged.dataset.source)["catalog_properties"]["s3.region"] == "eu-west-1"
    assert without_password("postgresql+psycopg://ml:pa%3Ass@db:5432/lake") == \
        "postgresql+psycopg://ml@db:5432/lake"
    assert public_properties({"uri": "postgresql://u:pw@h/db", "rest.password": "x", "type": "sql"}) == {
        "uri": "postgresql://u@h/db", "type": "sql"}


def test_a_table_at_a_tag_loads_that_snapshot_and_a_bad_ref_is_named(catalog, tracking):
    load(catalog, sample())
    table = catalog.load().load_table("ml.labels")
    table.manage_snapshots().create_tag(table.metadata.current_snapshot_id, "v1").commit()
    tagged_rows = table.scan().to_arrow().num_rows
    with mlflow.start_run() as run:
        dataset = log_iceberg_table(catalog, "ml.labels", "training", ref="v1")
    later_commits(catalog, sample(), rounds=1)
    assert dataset.profile["num_rows"] == tagged_rows
    (logged,) = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    source = mlflow.data.get_source(logged)
    now = catalog.load().load_table("ml.labels").scan().count()
    assert source.load(catalog).num_rows == tagged_rows < now
    with pytest.raises(ConfigError, match=r"ml.labels: no tag or branch 'v2' \(its refs: main, v1\)"):
        log_iceberg_table(catalog, "ml.labels", ref="v2")
    with pytest.raises(ConfigError, match="no content hash recorded"):
        source.load(verify=True)


def test_the_catalog_comes_from_pyiceberg_configuration_when_nothing_is_recorded(catalog, monkeypatch):
    load(catalog, sample())
    snapshot = catalog.load().load_table("ml.labels").metadata.current_snapshot_id
    source = IcebergDatasetSource._resolve(f"dativo-iceberg://lake/ml.labels@{snapshot}")
    assert source.location == SnapshotLocation("lake", "ml.labels", snapshot, {})
    with pytest.raises(ConfigError, match="no pyiceberg configuration of that name; pass catalog="):
        source.load()
    for key, value in catalog.properties.items():
        monkeypatch.setenv(f"PYICEBERG_CATALOG__LAKE__{key.upper()}", value)
    assert source.load().num_rows == len(sample()["labels"])


def test_a_training_set_without_an_output_table_cannot_be_logged(catalog, tmp_path, tracking):
    load(catalog, sample())
    build_training_set(catalog, "hashed", LABELS, feature_tables(), run_id="r",
                       manifest_path=str(tmp_path / "hashed.json"))
    with pytest.raises(ConfigError, match="was not written to a table: give .* an output_table"):
        log_training_set(tmp_path / "hashed.json")


def test_after_an_erasure_moved_the_pin_load_reads_the_set_minus_the_subject(catalog, tmp_path, tracking,
                                                                              caplog):
    """An erasure deletes the subject's rows on every branch head, the output table's pin included (here its
    delete commit as privacy.erase makes it); load() then reads the pin's head, never the logged snapshot."""
    from dativo_provider.ml.mlflow_source import ContentMismatchError

    load(catalog, sample())
    manifest = _build(catalog, tmp_path, "march")
    with mlflow.start_run() as run:
        log_training_set(tmp_path / "march.json")
    output = catalog.load().load_table("ml.churn_training")
    subject_rows = output.scan(row_filter="customer_id == 7").count()
    assert subject_rows > 0
    output.delete("customer_id == 7", snapshot_properties={"dativo.dsr-request": "dsr-1"},
                  branch=manifest.inputs[0].ref)

    (logged,) = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    source = mlflow.data.get_source(logged)
    rows = source.load()
    assert rows.num_rows == manifest.row_count - subject_rows
    assert 7 not in rows.column("customer_id").to_pylist()
    assert "moved from snapshot" in caplog.text and "minus erased ones" in caplog.text
    with pytest.raises(ContentMismatchError, match="the manifest records sha256-sum:"):
        source.load(verify=True)
