"""A staged delete rebased onto a head another writer moved: exact rows, the other writer's files kept,
and the cases where it must be staged anew. Real tables in an embedded catalog."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import EqualTo

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.commit import disable_builtin_retries
from dativo_provider.privacy.erase import REQUEST_KEY, delete_rows
from dativo_provider.privacy.staged_delete import holds_match, stage

TABLE = "lake.people"
SUBJECT = 7


def _rows(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array([f"p{i}" for i in ids], pa.string())})


@pytest.fixture()
def catalog(tmp_path):
    config = embedded_catalog(tmp_path / "lake")
    loaded = config.load()
    loaded.create_namespace("lake")
    table = loaded.create_table(TABLE, schema=_rows([1]).schema)
    for start in (0, 10, 20):  # three files; the subject is in the first
        table.append(_rows(list(range(start, start + 10))))
    return config


def _ids(config) -> list[int]:
    return sorted(config.load().load_table(TABLE).scan().to_arrow()["id"].to_pylist())


def test_a_rebased_delete_keeps_what_another_writer_committed_meanwhile(catalog):
    table = disable_builtin_retries(catalog.load().load_table(TABLE))
    transaction, staged = stage(table, "main", [EqualTo("id", SUBJECT)], {REQUEST_KEY: "r1"})
    assert len(staged.removed) == 1 and len(staged.added) == 1
    catalog.load().load_table(TABLE).append(_rows([100, 101]))  # the other writer wins the race
    with pytest.raises(Exception, match="has changed|updated by another"):
        transaction.commit_transaction()

    rebased = staged.rebase(disable_builtin_retries(catalog.load().load_table(TABLE)), "main")
    assert rebased is not None
    committed = rebased.commit_transaction()

    assert _ids(catalog) == [i for i in range(30) if i != SUBJECT] + [100, 101]
    assert [f.record_count for f in staged.others_added] == [2]
    assert not holds_match(committed, staged.others_added, EqualTo("id", SUBJECT), ["id"])
    assert committed.current_snapshot().summary[REQUEST_KEY] == "r1"


def test_a_file_the_delete_removes_gone_meanwhile_means_staging_anew(catalog):
    table = disable_builtin_retries(catalog.load().load_table(TABLE))
    _, staged = stage(table, "main", [EqualTo("id", SUBJECT)], {REQUEST_KEY: "r1"})
    delete_rows(catalog, TABLE, EqualTo("id", 3), request_id="someone-else")  # rewrites the same file
    assert staged.rebase(catalog.load().load_table(TABLE), "main") is None


def test_subject_rows_another_writer_added_are_found_after_the_commit(catalog):
    table = disable_builtin_retries(catalog.load().load_table(TABLE))
    transaction, staged = stage(table, "main", [EqualTo("id", SUBJECT)], {REQUEST_KEY: "r1"})
    catalog.load().load_table(TABLE).append(_rows([SUBJECT, 200]))
    with pytest.raises(Exception, match="has changed|updated by another"):
        transaction.commit_transaction()
    committed = staged.rebase(disable_builtin_retries(catalog.load().load_table(TABLE)), "main").commit_transaction()
    assert holds_match(committed, staged.others_added, EqualTo("id", SUBJECT), ["id"])


def test_delete_rows_ends_with_no_subject_row_when_one_arrives_during_the_race(catalog, monkeypatch):
    """The whole loop: a concurrent append of the subject lands between staging and commit, once."""
    from dativo_provider.privacy import staged_delete

    real_stage, calls = staged_delete.stage, []

    def stage_then_race(table, branch, parts, properties):
        result = real_stage(table, branch, parts, properties)
        if not calls:
            catalog.load().load_table(TABLE).append(_rows([SUBJECT, 300]))
        calls.append(branch)
        return result

    monkeypatch.setattr(staged_delete, "stage", stage_then_race)
    deletion = delete_rows(catalog, TABLE, EqualTo("id", SUBJECT), request_id="r2")
    ids = pa.array(_ids(catalog))
    assert pc.sum(pc.equal(ids, SUBJECT).cast("int64")).as_py() == 0
    assert 300 in ids.to_pylist() and deletion.rows_deleted == 2 and len(calls) == 2
