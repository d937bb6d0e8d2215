"""delete_rows against real tables in an embedded catalog: exact counts, untouched neighbours, pruning."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import EqualTo, In, Or

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.privacy.erase import IN_CHUNK, REQUEST_KEY, chunk_in_predicates, delete_rows
from tests.memory_source import TableSource

TABLE = "lake.customers"
BASE = 10_000_000
#: A subject whose id is the lowest of the second load (a manifest lower bound) and who also has a
#: row in the first load.
SUBJECT = BASE + 1000


def people(ids: list[int]) -> pa.Table:
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "email": pa.array([f"person{i}@example.com" for i in ids]),
        "seq": pa.array(range(len(ids)), pa.int64()),
    })


def load_in_batches(catalog, batches: list[list[int]], source: str = "memory://customers",
                    table: str = TABLE) -> list[int]:
    """One incremental run per batch (cursor ``seq`` keeps rising); returns the snapshot ids."""
    snapshots, loaded = [], []
    for ids in batches:
        rows = people(ids)
        offset = sum(len(t) for t in loaded)
        loaded.append(rows.set_column(2, "seq", pa.array(range(offset, offset + len(ids)), pa.int64())))
        # the source holds everything so far; the cursor makes each run read only the new batch
        source_rows = TableSource(pa.concat_tables(loaded), identity=source, cursor="seq")
        result = run_ingest(source_rows, catalog, table)
        snapshots.append(result.snapshot_id)
    return snapshots


def standard_batches() -> list[list[int]]:
    first = [BASE + i for i in range(1000)] + [SUBJECT]
    second = [BASE + 1000 + i for i in range(1, 1000)]  # SUBJECT's second row comes first below
    third = [BASE + 2000 + i for i in range(1000)]
    return [first, [SUBJECT, *second], third]


def read_all(table, snapshot_id: int | None = None) -> pa.Table:
    return table.scan(snapshot_id=snapshot_id).to_arrow()


def subject_rows(table, snapshot_id: int | None = None, subject: int = SUBJECT) -> int:
    return table.scan(row_filter=EqualTo("id", subject), snapshot_id=snapshot_id).to_arrow().num_rows


def others_checksum(rows: pa.Table, subjects: set[int]) -> tuple[int, str]:
    """Row count and a digest of every row that is not the subjects', independent of file order."""
    keep = rows.filter(pc.invert(pc.is_in(rows["id"], pa.array(sorted(subjects), pa.int64()))))
    keep = keep.select(["id", "email", "seq"]).sort_by([("id", "ascending"), ("seq", "ascending")])
    digest = hashlib.sha256()
    for row in keep.to_pylist():
        digest.update(repr(sorted(row.items())).encode())
    return keep.num_rows, digest.hexdigest()


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def test_deletes_exactly_the_subjects_rows_and_nothing_else(catalog):
    load_in_batches(catalog, standard_batches())
    table = catalog.load().load_table(TABLE)
    before = read_all(table)
    assert subject_rows(table) == 2

    deletion = delete_rows(catalog, TABLE, EqualTo("id", SUBJECT), request_id="req-1")

    table = catalog.load().load_table(TABLE)
    assert deletion.rows_deleted == 2
    assert subject_rows(table) == 0
    assert others_checksum(read_all(table), {SUBJECT}) == others_checksum(before, {SUBJECT})
    assert deletion.snapshot_id == table.current_snapshot().snapshot_id
    # copy-on-write: the two files holding the subject were replaced, the third load's file was not
    assert (deletion.files_removed, deletion.files_rewritten) == (2, 2)
    assert table.current_snapshot().summary[REQUEST_KEY] == "req-1"


def test_unknown_subject_commits_nothing(catalog):
    load_in_batches(catalog, standard_batches())
    head = catalog.load().load_table(TABLE).current_snapshot().snapshot_id

    deletion = delete_rows(catalog, TABLE, EqualTo("id", 42), request_id="req-2")

    assert (deletion.rows_deleted, deletion.files_removed, deletion.snapshot_id) == (0, 0, None)
    assert deletion.previous_snapshot_id == head
    assert catalog.load().load_table(TABLE).current_snapshot().snapshot_id == head


def test_a_file_whose_every_row_matches_is_dropped_not_rewritten(catalog):
    load_in_batches(catalog, [[BASE + 1, BASE + 2], [BASE + 10, BASE + 11]])

    deletion = delete_rows(catalog, TABLE, In("id", [BASE + 1, BASE + 2]), request_id="req-3")

    assert (deletion.rows_deleted, deletion.files_removed, deletion.files_rewritten) == (2, 1, 0)
    assert read_all(catalog.load().load_table(TABLE))["id"].to_pylist() == [BASE + 10, BASE + 11]


def test_more_than_200_values_keep_file_pruning(catalog):
    """pyiceberg ignores min/max bounds for an IN of >200 values; chunking keeps them in use."""
    load_in_batches(catalog, [[BASE + i * 1000 + j for j in range(500)] for i in range(6)])
    table = catalog.load().load_table(TABLE)
    subjects = [BASE + 2000 + j for j in range(300)]  # all in the third file

    whole = In("id", subjects)
    chunked = chunk_in_predicates(whole)
    assert isinstance(chunked, Or)
    assert len(list(table.scan(row_filter=whole).plan_files())) == 6
    assert len(list(table.scan(row_filter=chunked).plan_files())) == 1

    before = read_all(table)
    deletion = delete_rows(catalog, TABLE, whole, request_id="req-4")
    assert (deletion.rows_deleted, deletion.files_removed) == (300, 1)
    after = read_all(catalog.load().load_table(TABLE))
    assert others_checksum(after, set(subjects)) == others_checksum(before, set(subjects))


def test_chunks_hold_at_most_200_values_and_nested_expressions_are_rewritten():
    from pyiceberg.expressions import And, GreaterThan

    expression = And(GreaterThan("seq", 0), In("id", range(1000)))
    chunked = chunk_in_predicates(expression)
    chunks = []

    def collect(node):
        if isinstance(node, In):
            chunks.append(node)
        for child in ("left", "right"):
            if hasattr(node, child):
                collect(getattr(node, child))

    collect(chunked)
    assert [len(c.literals) for c in chunks] == [IN_CHUNK] * 5
    assert set().union(*(c.literals for c in chunks)) == In("id", range(1000)).literals


def test_request_id_is_required(catalog):
    load_in_batches(catalog, [[1]])
    with pytest.raises(ConfigError, match="request_id"):
        delete_rows(catalog, TABLE, EqualTo("id", 1), request_id="")


def test_a_row_matched_by_one_column_is_deleted_even_when_another_matched_column_is_null(catalog):
    """pyiceberg keeps rows with a null in any column the delete filter names; deleting column by
    column must not leave a ticket sent from the subject's address without a customer id."""
    rows = pa.table({"customer_id": pa.array([87, None, 5, None], pa.int64()),
                     "email": ["a@x.org", "zoe@x.org", "b@x.org", "c@x.org"]})
    run_ingest(TableSource(rows), catalog, "lake.tickets")
    deletion = delete_rows(catalog, "lake.tickets", Or(In("customer_id", [87]), In("email", ["zoe@x.org"])),
                           request_id="dsr-1")
    left = catalog.load().load_table("lake.tickets").scan().to_arrow()
    assert deletion.rows_deleted == 2
    assert left.sort_by("email").to_pylist() == [{"customer_id": 5, "email": "b@x.org"},
                                                  {"customer_id": None, "email": "c@x.org"}]
