"""stage_delete against pyiceberg's own Transaction.delete, on twin real tables in an embedded catalog.

Every case builds the same table twice, deletes with pyiceberg on one and with ``stage_delete`` on the
other, and compares the rows left (sorted Arrow tables), the snapshots' deleted-records and the files
each approach took out and wrote.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import And, EqualTo, In, IsNull, LessThan, NotIn, Or
from pyiceberg.transforms import IdentityTransform

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy.erase import chunk_in_predicates
from dativo_provider.privacy.rewrite import stage_delete

PROPS = {"dativo.dsr-request": "r-1"}
COUNTRIES = ["DE", "FR", "PL", "US"]


def batch(start: int, rows: int, customers: range, null_every: int = 0) -> pa.Table:
    """Rows ``start..start+rows``; customer and e-mail cycle over ``customers``; some nulls and NaNs."""
    seq = list(range(start, start + rows))
    cust = [customers[i % len(customers)] for i in seq]
    if null_every:
        cust = [None if i % null_every == 0 else c for i, c in zip(seq, cust)]
    return pa.table({
        "seq": pa.array(seq, pa.int64()),
        "customer_id": pa.array(cust, pa.int64()),
        "email": pa.array([None if c is None else f"c{c}@example.com" for c in cust], pa.string()),
        "country": pa.array([COUNTRIES[i % 4] for i in seq], pa.string()),
        "amount": pa.array([float("nan") if i % 17 == 0 else float(i % 50) for i in seq], pa.float64()),
    })


def loads() -> list[pa.Table]:
    """Six files: spread customers (with nulls), a file of customer 7 only, a file of 1000-1999 only."""
    return [
        batch(0, 300, range(1, 41), null_every=11),
        batch(300, 300, range(1, 41)),
        batch(600, 50, range(7, 8)),                       # every row customer 7: dropped whole
        batch(650, 400, range(1000, 2000)),                # bounds exclude small ids
        batch(1050, 300, range(20, 61), null_every=5),
        batch(1350, 200, range(500, 900)),
    ]


def build(catalog, name: str, partitioned: bool = False, sort: bool = False, row_group_rows: int = 0) -> None:
    data = loads()
    properties = {"write.parquet.row-group-limit": str(row_group_rows)} if row_group_rows else {}
    table = catalog.create_table(name, schema=data[0].schema, properties=properties)
    if partitioned:
        with table.update_spec() as spec:
            spec.add_field("country", IdentityTransform(), "country")
    if sort:
        with table.update_sort_order() as order:
            order.asc("customer_id", IdentityTransform())
    for part in data:
        table.append(part)


@pytest.fixture
def twins(tmp_path):
    catalog = embedded_catalog(tmp_path).load()
    catalog.create_namespace("t")

    def make(**kwargs):
        build(catalog, "t.theirs", **kwargs)
        build(catalog, "t.ours", **kwargs)
        return catalog.load_table("t.theirs"), catalog.load_table("t.ours")

    return make


def rows_of(table, branch: str = "main") -> pa.Table:
    """The branch's rows by ``seq``; NaN amounts as -1 (NaN never equals itself; no amount is null)."""
    snapshot = table.metadata.snapshot_by_name(branch)
    rows = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow().sort_by("seq")
    amount = rows.column("amount")
    return rows.set_column(4, "amount", pc.if_else(pc.is_nan(amount), -1.0, amount))


def commit_summaries(table, before: int) -> dict[str, int]:
    """deleted-records, added-records, deleted/added data files over the snapshots after ``before``."""
    totals = dict.fromkeys(("deleted-records", "added-records", "deleted-data-files", "added-data-files"), 0)
    operations = []
    for snapshot in table.snapshots():
        if snapshot.sequence_number > before:
            operations.append(snapshot.summary.operation.value)
            for key in totals:
                totals[key] += int(snapshot.summary.get(key) or 0)
    totals["operations"] = operations
    return totals


def delete_both(theirs, ours, row_filter, branch: str = "main", max_workers: int = 2):
    """pyiceberg's delete on ``theirs``, stage_delete on ``ours``; returns our stats and both summaries."""
    before = theirs.metadata.last_sequence_number
    assert ours.metadata.last_sequence_number == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with theirs.transaction() as tx:
            tx.delete(row_filter, snapshot_properties=PROPS, branch=branch)
    with ours.transaction() as tx:
        stats = stage_delete(tx, row_filter, branch=branch, snapshot_properties=PROPS,
                             max_workers=max_workers)
    theirs, ours = theirs.refresh(), ours.refresh()
    return stats, commit_summaries(theirs, before), commit_summaries(ours, before), theirs, ours


def assert_same(theirs, ours, row_filter, branch: str = "main", **kwargs):
    stats, their_sum, our_sum, theirs, ours = delete_both(theirs, ours, row_filter, branch, **kwargs)
    assert rows_of(ours, branch).equals(rows_of(theirs, branch))
    assert our_sum == their_sum
    assert stats.rows_deleted == their_sum["deleted-records"] - their_sum["added-records"]
    assert stats.files_removed == their_sum["deleted-data-files"]
    assert stats.files_written == their_sum["added-data-files"]
    return stats, their_sum


def test_int_id_spread_over_files_matches_pyiceberg(twins):
    stats, summary = assert_same(*twins(), EqualTo("customer_id", 7))
    # customer 7's own file dropped by metadata; 7 also sits in the two spread files
    assert summary["operations"] == ["delete", "overwrite"]
    expected = sum(pc.sum(pc.equal(t.column("customer_id"), 7)).as_py() or 0 for t in loads())
    assert stats.rows_deleted == expected == 64
    assert (stats.files_checked, stats.files_rewritten, stats.files_removed) == (2, 2, 3)


def test_string_values_match_pyiceberg(twins):
    stats, _ = assert_same(*twins(), In("email", ["c3@example.com", "c1500@example.com", "nobody@x.org"]))
    assert stats.rows_deleted > 0


def test_null_semantics_match_pyiceberg(twins):
    """NOT IN keeps null rows, IS NULL deletes them, and NaN amounts survive a comparison — as pyiceberg."""
    theirs, ours = twins()
    either = Or(EqualTo("customer_id", 25), EqualTo("email", "c30@example.com"))
    for row_filter in (NotIn("customer_id", list(range(1, 1000))), IsNull("customer_id"),
                       LessThan("amount", 3.0), either):
        _, _, _, theirs, ours = delete_both(theirs, ours, row_filter)
        assert rows_of(ours).equals(rows_of(theirs)), row_filter
    left = rows_of(ours)
    assert left.column("customer_id").null_count == 0
    assert len(left) > 0


def test_more_than_200_values_match_pyiceberg(twins):
    values = list(range(1, 31)) + list(range(1000, 1400)) + list(range(5000, 5100))
    stats, _ = assert_same(*twins(), In("customer_id", values))
    assert stats.rows_deleted > 400


def test_chunked_in_matches_pyiceberg_and_skips_files_by_bounds(twins):
    values = list(range(500, 900))  # only the last file holds these ids
    stats, summary = assert_same(*twins(), chunk_in_predicates(In("customer_id", values)))
    assert stats.rows_deleted == 200
    # bounds leave one file; it is read and all its rows go, so it is removed with no replacement
    assert stats.files_checked == 1 and stats.files_rewritten == 1 and stats.files_written == 0
    assert summary["deleted-data-files"] == 1


def test_partitioned_table_matches_pyiceberg(twins):
    assert_same(*twins(partitioned=True), In("customer_id", [3, 4, 5, 1200]))


def test_branch_matches_pyiceberg_and_leaves_main_alone(twins):
    theirs, ours = twins()
    for table in (theirs, ours):
        first = table.snapshots()[1].snapshot_id
        table.manage_snapshots().create_branch(first, "dev").commit()
        table.append(batch(2000, 100, range(7, 12)), branch="dev")
    main_before = rows_of(ours.refresh())
    stats, _ = assert_same(theirs.refresh(), ours.refresh(), EqualTo("customer_id", 7), branch="dev")
    assert stats.rows_deleted > 0
    assert rows_of(ours.refresh()).equals(main_before)


def test_file_whose_bounds_match_but_no_row_does_is_left_alone(twins):
    """Customer 1500 is inside file 4's bounds (1000-1999) but not in its rows (1000-1049, 1650-1999)."""
    stats, summary = assert_same(*twins(), In("customer_id", [15, 1500]))
    assert stats.files_checked == 3
    assert stats.files_rewritten == 2 and summary["deleted-data-files"] == 2


def test_nothing_matches_stages_nothing(twins):
    _, ours = twins()
    head = ours.metadata.current_snapshot_id
    with ours.transaction() as tx:
        stats = stage_delete(tx, EqualTo("customer_id", 99_999), snapshot_properties=PROPS)
    assert stats.rows_deleted == 0 and stats.files_removed == 0
    assert ours.refresh().metadata.current_snapshot_id == head


def test_sorted_table_rows_stay_in_file_order(twins):
    theirs, ours = twins(sort=True)
    assert_same(theirs, ours, In("customer_id", [2, 22, 44]), max_workers=1)


def test_bad_arguments_name_the_parameter(twins):
    _, ours = twins()
    with pytest.raises(ConfigError, match="max_workers"):
        stage_delete(ours.transaction(), EqualTo("customer_id", 1), snapshot_properties=PROPS, max_workers=0)
    with pytest.raises(ConfigError, match="no branch 'nope'"):
        stage_delete(ours.transaction(), EqualTo("customer_id", 1), branch="nope")


def test_failed_rewrite_removes_the_files_it_wrote(twins, monkeypatch):
    from dativo_provider.privacy import rewrite

    _, ours = twins()
    data_dir = Path(ours.location().removeprefix("file://")) / "data"
    files_before = set(data_dir.rglob("*.parquet"))
    original, calls = rewrite._FileRewriter._write, []

    def write_then_fail(self, rows):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, rows)

    monkeypatch.setattr(rewrite._FileRewriter, "_write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        stage_delete(ours.transaction(), EqualTo("customer_id", 7), snapshot_properties=PROPS, max_workers=1)
    assert len(calls) == 2  # the first file was written, then removed
    assert set(data_dir.rglob("*.parquet")) == files_before


@pytest.mark.parametrize("row_filter", [
    EqualTo("customer_id", 7), NotIn("customer_id", list(range(1, 1000))), IsNull("customer_id"),
    LessThan("amount", 3.0), chunk_in_predicates(In("customer_id", list(range(1, 30)) + list(range(600, 1400)))),
    In("email", ["c3@example.com", "c1500@example.com"]),
], ids=["eq", "not-in", "is-null", "nan", "chunked-in", "strings"])
def test_files_of_many_row_groups_match_pyiceberg(twins, row_filter):
    """Files of several row groups are checked with the filter pushed down to Arrow: same result."""
    theirs, ours = twins(row_group_rows=64)
    assert len(theirs.scan().plan_files()[0].file.split_offsets) > 1
    assert_same(theirs, ours, row_filter)


def test_ors_of_in_on_one_column_are_tested_as_one_in():
    from dativo_provider.privacy.rewrite import merge_in_terms

    merged = merge_in_terms(chunk_in_predicates(In("customer_id", list(range(450)))))
    assert isinstance(merged, In) and sorted(lit.value for lit in merged.literals) == list(range(450))
    assert merge_in_terms(Or(EqualTo("a", 1), In("a", [2, 3]))) == In("a", [1, 2, 3])
    mixed = Or(EqualTo("a", 1), EqualTo("b", 2))
    assert merge_in_terms(mixed) is mixed


def test_stage_then_commit_with_other_updates_in_the_same_transaction(twins):
    """The staged snapshots commit with the rest of the transaction, as delete_rows uses it per column."""
    theirs, ours = twins()
    row_filter_a, row_filter_b = EqualTo("customer_id", 7), In("email", ["c33@example.com"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with theirs.transaction() as tx:
            tx.delete(row_filter_a, snapshot_properties=PROPS)
            tx.delete(row_filter_b, snapshot_properties=PROPS)
    with ours.transaction() as tx:
        first = stage_delete(tx, row_filter_a, snapshot_properties=PROPS)
        second = stage_delete(tx, row_filter_b, snapshot_properties=PROPS)
    assert rows_of(ours.refresh()).equals(rows_of(theirs.refresh()))
    assert first.rows_deleted + second.rows_deleted == 1550 - len(rows_of(ours.refresh()))
    assert all(s.summary.get("dativo.dsr-request") == "r-1" for s in ours.refresh().snapshots()[6:])


def test_rows_with_and_filter(twins):
    assert_same(*twins(), And(EqualTo("country", "DE"), In("customer_id", [1, 2, 3, 4, 5, 6, 7, 8])))


def test_files_with_no_matching_row_are_never_decoded_whole(twins, monkeypatch):
    """Counts-only metrics (a contract's subject column): no manifest bounds, every file is checked on
    its filter column and only the files holding the subject are read whole and rewritten."""
    from dativo_provider.privacy import rewrite

    theirs, ours = twins()
    for table in (theirs, ours):
        with table.transaction() as tx:
            tx.set_properties({"write.metadata.metrics.column.customer_id": "counts"})
        table.overwrite(pa.concat_tables(loads()))  # one file: rewrite it under the new metrics mode
        for part in loads():
            table.append(part)
    whole_reads = []
    original = rewrite._FileRewriter._read

    def counting(self, task, projected, always_true):
        if len(projected.fields) > 1:  # the whole row, not the filter column
            whole_reads.append(task.file.file_path)
        return original(self, task, projected, always_true)

    monkeypatch.setattr(rewrite._FileRewriter, "_read", counting)
    stats, _ = assert_same(theirs.refresh(), ours.refresh(), EqualTo("customer_id", 700))
    assert stats.files_checked == 7  # no bounds: every live file
    # customer 700 is in the overwrite's file and in the sixth load's only
    assert stats.files_rewritten == 2 and len(whole_reads) == 2


def test_a_contract_table_is_sorted_by_its_data_subject_column(tmp_path):
    from dativo_provider.contracts.loader import load_contract
    from dativo_provider.ingest.engine import run_ingest
    from dativo_provider.ingest.options import WriteOptions
    from dativo_provider.quality.wap import ContractGate, write_options_for
    from tests.memory_source import TableSource

    catalog = embedded_catalog(tmp_path / "lake")
    ids = [(i * 7919) % 5000 + 1 for i in range(5000)]  # every id once, shuffled
    rows = pa.table({"customer_id": pa.array(ids, pa.int64()), "email": [f"c{i}@x.org" for i in ids],
                     "first_name": ["A"] * 5000, "last_name": ["B"] * 5000, "country": ["DE"] * 5000,
                     "signup_at": pa.array([0] * 5000, pa.timestamp("us", "UTC")), "is_active": [True] * 5000,
                     "marketing_opt_in": [False] * 5000, "birth_year": pa.array([1980] * 5000, pa.int32())})
    contract = load_contract("contracts/customers.odcs.yaml")
    options = write_options_for(contract, None, WriteOptions())
    assert options.sort_by == ("customer_id",)
    assert write_options_for(contract, None, WriteOptions(sort_by=("email",))).sort_by == ("email",)
    run_ingest(TableSource(rows, batch_rows=5000), catalog, "lake.customers", options,
               audit=ContractGate("contracts/customers.odcs.yaml", catalog))
    table = catalog.load().load_table("lake.customers")
    order = table.sort_order()
    assert [table.schema().find_column_name(f.source_id) for f in order.fields] == ["customer_id"]
    written = table.scan().to_arrow().column("customer_id").to_pylist()
    assert written == sorted(ids)


def test_checking_first_stops_once_nearly_every_file_matches():
    from dativo_provider.privacy.rewrite import _HitRate

    all_hits, some_misses = _HitRate(), _HitRate()
    for i in range(8):
        assert all_hits.worth_checking() and some_misses.worth_checking()
        all_hits.record(True)
        some_misses.record(i % 3 != 0)
    assert not all_hits.worth_checking()
    assert some_misses.worth_checking()
