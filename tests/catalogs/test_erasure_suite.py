"""A data-subject erasure on every catalog kind: delete on every branch, purge of old snapshots and
files, the product's own decoded verification, a signed certificate — and an independent decoded scan
(tests/privacy/decoded.py) of every file the test's namespace holds in storage (for the REST catalog,
every S3 object under ``s3://lake/<namespace>/``, downloaded with boto3).

The warehouse: customers, orders and support tickets of the bundled sample (customers 1..100, the
subject is customer 87), loaded in several commits; a tag and a branch pin the subject's rows, and
the commit that loaded the subject's customer row carries an operator's note naming their e-mail in
its snapshot summary (so old ``metadata.json`` files hold it until the purge removes them).

Also on every kind: an ingest committing while the purge runs. On the REST catalog only: a catalog
that vends S3 credentials with each table, and the metadata the catalog serves from its own store.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import EqualTo

from dativo_provider.iceberg.catalog import CatalogConfig
from dativo_provider.iceberg.maintenance import maintain_table
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.privacy import audit
from dativo_provider.privacy.certificate import SigningKey, verify_certificate
from dativo_provider.privacy.dsr import erase_subject
from dativo_provider.privacy.erase import delete_rows
from dativo_provider.privacy.matching import Identifiers
from dativo_provider.privacy.purge import purge_table
from dativo_provider.privacy.request import SubjectRequest
from dativo_provider.privacy.verify import verify_erased
from tests.catalogs.storage import namespace_copy, referenced_files, s3_client, stored_files
from tests.catalogs.vending import vending_catalog
from tests.memory_source import TableSource
from tests.privacy.decoded import occurrences
from tests.privacy.test_erase import BASE, SUBJECT, load_in_batches, people, standard_batches
from tests.privacy.warehouse import (
    CONTRACTS,
    CUSTOMER_COLUMNS,
    ORDER_COLUMNS,
    SUBJECT_ID,
    TICKET_COLUMNS,
    read_sample,
)

CUSTOMERS = 100
HASH_KEY = b"catalog-suite-erasure-hash-key-32"
SIGNING = SigningKey.hmac(b"catalog-suite-erasure-signing-secret", "catalog-suite")
#: A test of what only a REST catalog does: the ``lake`` fixture of the REST kind alone.
REST_ONLY = pytest.mark.parametrize("lake", ["rest"], indirect=True)
#: The tables, each under the sample contract of the same name.
TABLES = ("customers", "orders", "support_tickets")


def contracts_for(lake, into: Path) -> list[Path]:
    """The sample's contracts, naming this test's namespace (and ids of their own: discovery also finds
    tables that record a contract id, and the REST catalog is shared by the session)."""
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in TABLES:
        text = (CONTRACTS / f"{name}.odcs.yaml").read_text()
        text = text.replace("examples.", f"{lake.namespace}.").replace("urn:dativo:examples:",
                                                                      f"urn:dativo:{lake.namespace}:")
        path = into / f"{name}.odcs.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def sample() -> dict[str, pa.Table]:
    keep = lambda t: t.filter(pc.or_kleene(pc.is_null(t["customer_id"]),  # noqa: E731
                                           pc.less_equal(t["customer_id"], CUSTOMERS)))
    return {"customers": keep(read_sample("customers.csv", CUSTOMER_COLUMNS)),
            "orders": keep(read_sample("orders_2024-0[123].csv", ORDER_COLUMNS)),
            "support_tickets": keep(read_sample("support_tickets.csv", TICKET_COLUMNS))}


def load(lake, data: dict[str, pa.Table], email: str) -> None:
    """customers in two commits (the second, holding the subject, with the note; tag ``onboarding``);
    orders in three, branch ``experiment`` from the second with one more commit; tickets in one."""
    people = data["customers"]
    first, second = people.filter(pc.less(people["customer_id"], 60)), people.filter(
        pc.greater_equal(people["customer_id"], 60))
    run_ingest(TableSource(first, identity="memory://customers/1"), lake.config, lake.table("customers"))
    # Another writer (plain pyiceberg) adds the rest, leaving a note that names the subject.
    customers = lake.load().load_table(lake.table("customers"))
    customers.append(second.cast(customers.schema().as_arrow()),
                     snapshot_properties={"operator-note": f"backfill requested by {email}"})
    _ref(lake, "customers", "onboarding", tag=True)
    orders = data["orders"]
    third = orders.num_rows // 3
    thirds = [orders.slice(0, third), orders.slice(third, third), orders.slice(2 * third)]
    for i, part in enumerate(thirds):
        run_ingest(TableSource(part, identity=f"memory://orders/{i}"), lake.config, lake.table("orders"))
        if i == 1:
            _ref(lake, "orders", "experiment", tag=False)
    subject_orders = orders.filter(pc.equal(orders["customer_id"], SUBJECT_ID))
    run_ingest(TableSource(subject_orders, identity="memory://orders/experiment"), lake.config,
               lake.table("orders"), WriteOptions(branch="experiment"))
    run_ingest(TableSource(data["support_tickets"], identity="memory://tickets"), lake.config,
               lake.table("support_tickets"))


def _ref(lake, table: str, name: str, *, tag: bool) -> None:
    loaded = lake.load().load_table(lake.table(table))
    head = loaded.current_snapshot().snapshot_id
    refs = loaded.manage_snapshots()
    (refs.create_tag(head, name) if tag else refs.create_branch(head, name)).commit()


def others(rows: pa.Table, email: str) -> tuple[int, str]:
    """Row count and digest of every row not the subject's (by id or normalised e-mail), order-free."""
    mask = pc.fill_null(pc.equal(rows["customer_id"], SUBJECT_ID), False)
    if "email" in rows.column_names:
        normalised = pc.utf8_lower(pc.utf8_trim_whitespace(rows["email"]))
        mask = pc.or_(mask, pc.fill_null(pc.equal(normalised, email), False))
    kept = rows.filter(pc.invert(mask))
    kept = kept.select(sorted(c for c in kept.column_names if not c.startswith("_dativo")))
    digest = hashlib.sha256()
    for line in sorted(json.dumps(r, sort_keys=True, default=str) for r in kept.to_pylist()):
        digest.update(line.encode())
    return kept.num_rows, digest.hexdigest()


def test_erasure_purges_and_verifies_with_an_independent_decoded_scan(lake):
    data = sample()
    people = data["customers"]
    email = people.filter(pc.equal(people["customer_id"], SUBJECT_ID))["email"][0].as_py().strip().lower()
    load(lake, data, email)
    tables = [lake.table(t) for t in TABLES]
    before = {t: lake.load().load_table(t).scan().to_arrow() for t in tables}
    subject_rows = {t: before[t].num_rows - others(before[t], email)[0] for t in tables}
    assert all(subject_rows.values()), subject_rows  # the subject is in every table (tickets by e-mail too)
    orders = lake.load().load_table(lake.table("orders"))
    experiment = orders.scan(snapshot_id=orders.metadata.refs["experiment"].snapshot_id).to_arrow()
    on_branch = experiment.num_rows - others(experiment, email)[0]
    assert occurrences(namespace_copy(lake, lake.workdir / "before"), emails=[email], ids=[SUBJECT_ID])
    trail = audit.AuditTrail(audit.IcebergAuditStore(lake.load(), lake.table("dsr_audit")), HASH_KEY)
    request = SubjectRequest(f"dsr-{lake.namespace}", "erasure", "customer", subject_ids=[str(SUBJECT_ID)])

    outcome = erase_subject(lake.config, contracts_for(lake, lake.workdir / "contracts"), request,
                            signing_key=SIGNING, hash_key=HASH_KEY, trail=trail, refs_policy="repoint",
                            safety_window=timedelta(0), progress_table=lake.table("dsr_progress"))

    # The certificate passes and says what was deleted: the subject's rows on main, and on the branch.
    assert outcome.verified
    assert verify_certificate(outcome.certificate, SIGNING.verifying_key()).valid
    deleted = {t: entry["rows_deleted"] for t, entry in outcome.certificate["tables"].items()}
    assert on_branch > subject_rows[lake.table("orders")]
    assert deleted == {**subject_rows, lake.table("orders"): subject_rows[lake.table("orders")] + on_branch}
    catalog = lake.load()
    for name in tables:  # every other subject's rows intact, no snapshot returns the subject
        table = catalog.load_table(name)
        assert others(table.scan().to_arrow(), email) == others(before[name], email)
        for snapshot in table.snapshots():
            old = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
            assert others(old, email)[0] == old.num_rows, f"{name} snapshot {snapshot.snapshot_id}"
    customers = catalog.load_table(lake.table("customers"))
    assert customers.metadata.refs["onboarding"].snapshot_id == customers.current_snapshot().snapshot_id
    orders = catalog.load_table(lake.table("orders"))
    experiment = orders.scan(snapshot_id=orders.metadata.refs["experiment"].snapshot_id).to_arrow()
    assert others(experiment, email)[0] == experiment.num_rows > 0

    # The product's verification again, and the independent scan of every stored file.
    identifiers = Identifiers((str(SUBJECT_ID), email), columns=("customer_id",))
    again = verify_erased(lake.config, tables, identifiers)
    assert again.passed, again.findings
    assert again.files_scanned["parquet"] > 0 and again.files_scanned["metadata"] > 0
    stored = namespace_copy(lake, lake.workdir / "after")
    assert occurrences(stored, emails=[email], ids=[SUBJECT_ID]) == []
    # No file of the table is left that its metadata does not reach (old metadata files included).
    for name in TABLES:
        table = catalog.load_table(lake.table(name))
        listed = stored_files(lake, name)
        live, named = referenced_files(table)
        assert live <= listed <= named, (live - listed, listed - named)
        metadata = {f for f in listed if f.endswith(".metadata.json")}
        assert metadata == {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
        assert len(metadata) <= 3  # the current one and the purge's last two commits (post-expiry)


@REST_ONLY
def test_a_rest_catalog_that_vends_storage_credentials_is_erased_purged_and_verified(lake, rest_lake):
    """The client knows only the catalog's URI and credential; S3 access comes with each table (the
    ``config`` of a LoadTableResult, tests/catalogs/vending.py). Writing, the purge's sweep and the
    verification's decoding all go through the table's FileIO: the catalog's properties hold no S3 key."""
    namespace, name = lake.namespace, lake.table("people")
    emails = [f"person{i}@example.org" for i in range(1, 301)]
    people = pa.table({"id": pa.array(range(1, 301), pa.int64()), "email": emails})
    with vending_catalog(rest_lake) as properties:
        vending = CatalogConfig(f"vending_{namespace}", properties)
        assert not any(key.startswith("s3.") for key in vending.properties)
        vending.load().create_namespace(namespace)
        for part in range(3):
            source = TableSource(people.slice(part * 100, 100), identity=f"memory://people/{part}")
            run_ingest(source, vending, name)
        subject = EqualTo("id", SUBJECT_ID)
        assert delete_rows(vending, name, subject, request_id="dsr-vended").rows_deleted == 1

        purged = purge_table(vending, name, subject=subject, request_id="dsr-vended",
                             safety_window=timedelta(0))
        result = verify_erased(vending, [name], Identifiers((str(SUBJECT_ID), emails[SUBJECT_ID - 1]),
                                                            columns=("id",)))

        assert purged.files_removed > 0 and purged.metadata_files_removed > 0
        assert result.passed, result.findings
        assert result.files_scanned["parquet"] == 3 and result.files_scanned["metadata"] > 0
        assert vending.load().load_table(name).scan().to_arrow().num_rows == 299
        # Maintenance too goes through the table's FileIO.
        maintained = maintain_table(vending, name, compact=True, min_files_to_compact=2,
                                    expire_older_than=None, orphan_safety_window=timedelta(0))
        assert maintained.files_compacted == 3 and maintained.files_removed["data"] == 3
        assert vending.load().load_table(name).scan().to_arrow().num_rows == 299
    stored = namespace_copy(lake, lake.workdir / "stored")  # read with the key pair the proxy vends
    assert occurrences(stored, emails=[emails[SUBJECT_ID - 1]], ids=[SUBJECT_ID], id_columns=("id",)) == []


def test_an_ingest_committing_during_the_purge_loses_no_rows(lake):
    """A real thread runs an incremental source while the purge commits, expires and sweeps: the commit
    races each side loses are retried (the REST catalog answers a lost race with 409, the SQL catalogs
    with their own errors), and the safety window keeps the writer's files not committed yet."""
    table_name = lake.table("customers")
    load_in_batches(lake.config, standard_batches(), table=table_name)
    delete_rows(lake.config, table_name, EqualTo("id", SUBJECT), request_id="dsr-live")
    expected = lake.load().load_table(table_name).scan().to_arrow().num_rows
    live = people([BASE + 20_000 + i for i in range(600)])
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            for upper in range(100, 601, 100):  # six runs of a live source
                source = TableSource(live.slice(0, upper), identity="memory://live", cursor="id")
                run_ingest(source, lake.config, table_name)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=ingest)
    worker.start()
    purge_table(lake.config, table_name, subject=EqualTo("id", SUBJECT), request_id="dsr-live",
                refs_policy="remove")
    worker.join(timeout=120)
    assert not worker.is_alive() and not errors, errors

    table = lake.load().load_table(table_name)
    assert table.scan().to_arrow().num_rows == expected + 600
    for snapshot in table.snapshots():  # no snapshot returns the subject, and every one is readable
        assert SUBJECT not in table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()["id"].to_pylist()
    live_files, named = referenced_files(table)
    stored = stored_files(lake, "customers")
    assert live_files <= stored
    # Left besides: at most metadata files of the writer's commits since the purge's sweep.
    assert all(f.endswith(".metadata.json") for f in stored - named), stored - named


@REST_ONLY
def test_verification_searches_the_metadata_the_rest_catalog_serves(lake, rest_lake):
    """SeaweedFS's catalog serves table metadata from its own store, not by reading the current
    ``metadata.json`` object: with every metadata object gone from S3 the table still loads. The
    verification searches what the catalog serves too, so such a copy cannot hide the subject."""
    catalog = lake.load()
    catalog.create_namespace(lake.namespace)
    rows = pa.table({"id": pa.array([1, 2], pa.int64()), "email": ["a@example.org", "b@example.org"]})
    table = catalog.create_table(lake.table("notes"), rows.schema)
    table.append(rows, snapshot_properties={"operator-note": "backfill requested by subject@example.org"})
    identifiers = Identifiers(("subject@example.org",))

    in_files = verify_erased(lake.config, [lake.table("notes")], identifiers)
    assert {(f.file.rsplit("/", 1)[-1], f.where) for f in in_files.findings} == {
        (catalog.load_table(lake.table("notes")).metadata_location.rsplit("/", 1)[-1],
         "$.snapshots[0].summary.operator-note")}  # the served copy equals the file: not repeated
    client, bucket = s3_client(lake), rest_lake.warehouse
    for location in stored_files(lake, "notes"):
        if location.endswith(".metadata.json"):
            client.delete_object(Bucket=bucket, Key=location.removeprefix(f"s3://{bucket}/"))

    served = verify_erased(lake.config, [lake.table("notes")], identifiers)

    assert catalog.load_table(lake.table("notes")).scan().to_arrow().num_rows == 2  # still served
    assert [(f.file, f.where) for f in served.findings] == [
        (f"{lake.table('notes')} (metadata served by the catalog)", "$.snapshots[0].summary.operator-note")]
    assert not served.passed
