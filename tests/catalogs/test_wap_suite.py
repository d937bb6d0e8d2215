"""Write-audit-publish with a data contract on every catalog kind: publish, block, quarantine.

The run commits to an audit branch, the contract's checks read the new rows there, and main moves
only when they pass (the branch is removed either way). Runs on SQLite, Postgres and the REST catalog
with S3 (``lake`` fixture, tests/catalogs/conftest.py).
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dativo_provider.exceptions import CommitConflictError
from dativo_provider.ingest.engine import AuditRejectedError, run_ingest
from dativo_provider.quality.wap import ContractGate
from tests.memory_source import TableSource

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
version: 1.0.0
status: active
team: {{name: data}}
customProperties:
  - property: dativoViolationHandling
    value: {{schema: block, quality: {quality}, sla: warn}}
schema:
  - name: orders
    physicalName: {table}
    properties:
      - name: order_id
        logicalType: integer
        physicalType: bigint
        required: true
        unique: true
        primaryKey: true
      - name: email
        logicalType: string
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '[a-z0-9.]+@[a-z]+\\.[a-z]+'}}
            mustBe: 0
      - name: amount
        logicalType: number
        physicalType: double
        quality:
          - name: amount_positive
            type: custom
            engine: custom
            implementation: tests.quality.custom_checks:positive_amount
"""

BAD_EMAILS, BAD_AMOUNTS = range(0, 3_000, 100), range(50, 2_000, 100)  # 30 and 20 rows, no overlap


def orders(ids, *, bad: bool = False) -> pa.Table:
    ids = list(ids)
    email = [("not-an-email" if bad and i in BAD_EMAILS else f"user{i}@shop.com") for i in ids]
    amount = [(-5.0 if bad and i in BAD_AMOUNTS else float(i % 97 + 1)) for i in ids]
    return pa.table({"order_id": pa.array(ids, pa.int64()), "email": pa.array(email, pa.string()),
                     "amount": pa.array(amount, pa.float64())})


def gate(lake, quality: str) -> ContractGate:
    path = lake.workdir / f"orders-{quality}.yaml"
    path.write_text(CONTRACT.format(quality=quality, table=lake.table("orders")))
    return ContractGate(path, lake.config)


def scan(lake, name: str) -> pa.Table:
    return lake.load().load_table(lake.table(name)).scan().to_arrow().sort_by("order_id")


def refs(lake, name: str) -> set[str]:
    return set(lake.load().load_table(lake.table(name)).metadata.refs)


def test_a_passing_run_publishes_and_leaves_no_audit_branch(lake):
    first, second = orders(range(0, 2_000)), orders(range(2_000, 3_000))
    for rows in (first, second):
        result = run_ingest(TableSource(rows), lake.config, lake.table("orders"), audit=gate(lake, "block"))
        assert (result.rows_published, result.rows_quarantined, result.committed) == (rows.num_rows, 0, True)
        assert result.quality["decision"] == "publish"
    back = scan(lake, "orders")
    assert back.equals(pa.concat_tables([first, second]).cast(back.schema))
    assert refs(lake, "orders") == {"main"}
    head = lake.load().load_table(lake.table("orders")).current_snapshot()
    assert head.snapshot_id == result.snapshot_id and head.summary["added-records"] == "1000"


def test_a_failing_run_leaves_main_unchanged_and_removes_its_branch(lake):
    good = orders(range(0, 1_000))
    run_ingest(TableSource(good), lake.config, lake.table("orders"), audit=gate(lake, "block"))
    head = lake.load().load_table(lake.table("orders")).current_snapshot().snapshot_id

    with pytest.raises(AuditRejectedError, match="email_well_formed") as refused:
        run_ingest(TableSource(orders(range(1_000, 3_000), bad=True)), lake.config, lake.table("orders"),
                   audit=gate(lake, "block"))
    assert refused.value.result.quality["decision"] == "block"
    table = lake.load().load_table(lake.table("orders"))
    assert table.current_snapshot().snapshot_id == head
    assert set(table.metadata.refs) == {"main"}
    back = scan(lake, "orders")
    assert back.equals(good.cast(back.schema))
    # The refused snapshot stays in the metadata, on no branch, until maintenance expires it with its
    # files: the stored data files are exactly the ones it holds.
    refused_id = refused.value.result.snapshot_id
    assert refused_id not in {ref.snapshot_id for ref in table.metadata.refs.values()}
    refused_tasks = table.scan(snapshot_id=refused_id).plan_files()
    held = {task.file.file_path.split("://", 1)[1] for task in refused_tasks}
    assert {f for f in files_of_namespace(lake) if f.endswith(".parquet")} == held


def test_a_refused_first_run_leaves_no_table_and_no_files(lake):
    """The table the run created for its audit is dropped with purge: a SQL catalog deletes the files
    itself, the REST catalog (purgeRequested) has its server delete them."""
    with pytest.raises(AuditRejectedError, match="email_well_formed"):
        run_ingest(TableSource(orders(range(3_000), bad=True)), lake.config, lake.table("orders"),
                   audit=gate(lake, "block"))
    assert not lake.load().table_exists(lake.table("orders"))
    assert files_of_namespace(lake) == []


def files_of_namespace(lake) -> list[str]:
    """Every file stored under the test's namespace: data, manifests and metadata."""
    from pyarrow import fs

    props = lake.config.properties
    if lake.kind == "rest":
        storage = fs.S3FileSystem(endpoint_override=props["s3.endpoint"],
                                  access_key=props["s3.access-key-id"],
                                  secret_key=props["s3.secret-access-key"], region=props["s3.region"])
        root = f"{props['warehouse']}/{lake.namespace}"
    else:
        storage, root = fs.LocalFileSystem(), props["warehouse"].removeprefix("file://")
    found = storage.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(f.path for f in found if f.type == fs.FileType.File and lake.namespace in f.path)


def test_quarantine_holds_failing_rows_and_publishes_the_rest(lake):
    rows = orders(range(3_000), bad=True)
    result = run_ingest(TableSource(rows, batch_rows=700), lake.config, lake.table("orders"),
                        audit=gate(lake, "quarantine"), run_id="run-1")

    failing = pc.or_(pc.is_in(rows["order_id"], value_set=pa.array(BAD_EMAILS, pa.int64())),
                     pc.is_in(rows["order_id"], value_set=pa.array(BAD_AMOUNTS, pa.int64())))
    expected_main, expected_held = rows.filter(pc.invert(failing)), rows.filter(failing)
    assert (result.rows_read, result.rows_published, result.rows_quarantined) == (3_000, 2_950, 50)
    assert result.rows_read == result.rows_published + result.rows_quarantined

    main = scan(lake, "orders")
    assert main.equals(expected_main.cast(main.schema))
    held = scan(lake, "orders_quarantine")
    assert held.select(rows.column_names).equals(expected_held.cast(held.select(rows.column_names).schema))
    reasons = pc.value_counts(pc.list_flatten(held["_dativo_failed_checks"])).to_pylist()
    assert {r["values"]: r["counts"] for r in reasons} == {"email_well_formed": 30, "amount_positive": 20}
    assert set(held["_dativo_run_id"].to_pylist()) == {"run-1"}
    assert refs(lake, "orders") == {"main"}
    assert lake.load().load_table(lake.table("orders")).current_snapshot().snapshot_id == result.snapshot_id


class _GateMeetingTheOtherRun(ContractGate):
    """A contract gate that audits only once the other run has committed to its own audit branch too.

    The audits themselves take turns: Soda's contract parser is not thread-safe (two threads of one
    process verifying at once fail with YAML errors); Airflow runs tasks in separate processes.
    """

    def __init__(self, *args, meeting: threading.Barrier, turns: threading.Lock, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.meeting = meeting
        self.turns = turns

    def audit(self, staged):
        self.meeting.wait(timeout=60)
        with self.turns:
            return super().audit(staged)


def test_two_audited_runs_racing_publish_one_and_refuse_the_other_whole(lake):
    """Both runs stage on branches of the same main head; the first to publish moves main, so the other's
    guarded fast-forward must not publish rows audited against a main that is gone."""
    base = orders(range(0, 500))
    run_ingest(TableSource(base), lake.config, lake.table("orders"), audit=gate(lake, "block"))
    contract = gate(lake, "block").contract
    meeting, turns = threading.Barrier(2), threading.Lock()
    parts = [orders(range(1_000, 1_600)), orders(range(2_000, 2_400))]
    outcomes: list[object] = [None, None]

    def race(slot: int) -> None:
        audit = _GateMeetingTheOtherRun(contract, lake.config, meeting=meeting, turns=turns)
        try:
            source = TableSource(parts[slot], identity=f"memory://part-{slot}")
            outcomes[slot] = run_ingest(source, lake.config, lake.table("orders"), audit=audit)
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted below
            outcomes[slot] = exc

    racers = [threading.Thread(target=race, args=(slot,)) for slot in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    published = [slot for slot, o in enumerate(outcomes) if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(published) == 1 and len(refused) == 1, outcomes
    assert isinstance(refused[0], CommitConflictError)
    assert "moved while the run was audited" in str(refused[0])
    main = scan(lake, "orders")
    assert main.equals(pa.concat_tables([base, parts[published[0]]]).sort_by("order_id").cast(main.schema))
    assert refs(lake, "orders") == {"main"}
