"""verify_erased on real tables (SQLite catalog under tmp_path, and an S3 warehouse on moto): it finds
a subject in live data files, in files of old snapshots, in manifest bounds, in orphans and in
metadata, decodes compressed pages that a byte search misses, fails on undecodable files, and passes
once the files are really gone. No identifier value ever appears in what it returns."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.privacy.matching import Identifiers
from dativo_provider.privacy.verify import verify_erased
from tests.memory_source import TableSource
from tests.s3_server import moto_server

SUBJECT_ID = 9_876_543_210
SUBJECT_EMAIL = "subject.person@example.com"
SUBJECT = Identifiers((str(SUBJECT_ID), SUBJECT_EMAIL))
FULL_METRICS = {"write.metadata.metrics.default": "full"}


def _people(rows: int = 2_000, *, with_subject: bool = True, at_edge: bool = False) -> pa.Table:
    """Customers with distinct ids and e-mails. The subject (if any) sits in the middle and is neither
    the minimum nor the maximum of a column, unless ``at_edge``: then its id is the largest and its
    e-mail the smallest (so manifest bounds and Parquet statistics carry them)."""
    ids = [1_000_000 + i for i in range(rows)]
    emails = [f"person{i:06d}@example.org" for i in range(rows)]
    if with_subject:
        ids[rows // 2], emails[rows // 2] = SUBJECT_ID, "Subject.Person@Example.com"
        if not at_edge:
            ids[-1], emails[0] = 10**12, "Aaron@example.org"  # "A" < "S" < "p" in byte order
    return pa.table({
        "customer_id": pa.array(ids, pa.int64()),
        "email": emails,
        "quantity": pa.array([i % 7 for i in range(rows)], pa.int32()),
    })


def _ingest(catalog: CatalogConfig, table: str, rows: pa.Table, **properties: str) -> None:
    options = WriteOptions(table_properties={**FULL_METRICS, **properties})
    run_ingest(TableSource(rows, batch_rows=100_000), catalog, table, options)


def _location(catalog: CatalogConfig, table: str) -> Path:
    return Path(catalog.load().load_table(table).location().removeprefix("file://"))


def _assert_no_identifier(result, identifiers: Identifiers = SUBJECT) -> None:
    text = json.dumps(result.to_dict()).lower()
    for value in identifiers.values:
        assert value.lower() not in text
    assert SUBJECT_EMAIL not in repr(identifiers)


def _wheres(result, kind: str | None = None) -> list[str]:
    return [f.where for f in result.findings if kind is None or f.kind == kind]


@pytest.fixture
def catalog(tmp_path) -> CatalogConfig:
    return embedded_catalog(tmp_path / "lake")


def test_finds_the_subject_in_a_live_data_file(catalog):
    _ingest(catalog, "crm.customers", _people())

    result = verify_erased(catalog, ["crm.customers"], SUBJECT, rediscover=lambda: 1)

    assert not result.passed and result.discovery_rows == 1
    parquet = _wheres(result, "parquet")
    assert "column customer_id row group 0 (1 value)" in parquet
    assert "column email row group 0 (1 value)" in parquet  # matched case-insensitively
    assert result.files_scanned["parquet"] == 1 and result.files_scanned["metadata"] >= 1
    assert result.bytes_scanned > 0
    _assert_no_identifier(result)


def test_passes_on_a_table_that_never_held_the_subject(catalog):
    _ingest(catalog, "crm.customers", _people(with_subject=False))

    result = verify_erased(catalog, ["crm.customers"], SUBJECT, rediscover=lambda: 0)

    assert result.passed, result.findings
    assert result.discovery_rows == 0 and result.files_scanned["avro"] == 2
    assert not verify_erased(catalog, ["crm.customers"], SUBJECT, rediscover=lambda: 2).passed


def test_a_delete_alone_leaves_old_data_files_and_manifest_bounds(catalog):
    _ingest(catalog, "crm.customers", _people(at_edge=True))
    table = catalog.load().load_table("crm.customers")
    table.delete(f"customer_id = {SUBJECT_ID}")
    assert table.scan(row_filter=f"customer_id = {SUBJECT_ID}").to_arrow().num_rows == 0

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert not result.passed
    # the pre-delete data file is still on disk
    assert "column email row group 0 (1 value)" in _wheres(result, "parquet")
    # full metrics: the deleted file's bounds are the subject's values, in the old snapshot's manifest
    # and in the current snapshot's manifest of DELETED entries
    avro = {(Path(f.file).name, f.where) for f in result.findings if f.kind == "avro"}
    assert {w for _, w in avro} == {"data_file.lower_bounds[2] (column email) in entry 0",
                                    "data_file.upper_bounds[1] (column customer_id) in entry 0"}
    assert len({name for name, _ in avro}) == 2  # two manifests
    statistics = {w for w in _wheres(result, "parquet") if "statistics" in w}
    assert statistics == {"column customer_id row group 0 statistics (max)",
                          "column email row group 0 statistics (min)"}
    _assert_no_identifier(result)


def test_truncated_string_bounds_are_found(catalog):
    """pyiceberg's default metrics keep 16 characters: the lower bound is the e-mail's prefix, the upper
    bound that prefix with its last character incremented. Both still identify the subject."""
    truncate = {"write.metadata.metrics.default": "truncate(16)"}
    lowest = pa.table({"customer_id": pa.array([1, 2], pa.int64()), "email": [SUBJECT_EMAIL, "zed@example.org"]})
    highest = pa.table({"customer_id": pa.array([3, 4], pa.int64()), "email": ["Aaron@example.org", SUBJECT_EMAIL]})
    _ingest(catalog, "crm.customers", lowest, **truncate)
    _ingest(catalog, "crm.customers", highest, **truncate)

    result = verify_erased(catalog, ["crm.customers"], Identifiers((SUBJECT_EMAIL,)))

    bounds = {w.split(" in entry")[0] for w in _wheres(result, "avro")}
    assert bounds == {"data_file.lower_bounds[2] (column email)", "data_file.upper_bounds[2] (column email)"}


def test_an_orphan_file_nobody_references_is_found(catalog):
    _ingest(catalog, "crm.customers", _people(with_subject=False))
    orphan = _location(catalog, "crm.customers") / "data" / "leftover-from-a-failed-write"
    pq.write_table(_people(50), orphan, compression="zstd")  # no .parquet suffix: found by content

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert not result.passed
    assert {f.file.rsplit("/", 1)[-1] for f in result.findings} == {orphan.name}
    assert "column customer_id row group 0 (1 value)" in _wheres(result, "parquet")


def test_a_file_referenced_from_outside_the_location_is_followed(catalog, tmp_path):
    _ingest(catalog, "crm.customers", _people(with_subject=False))
    outside = tmp_path / "elsewhere" / "imported.parquet"
    outside.parent.mkdir()
    pq.write_table(_people(40).cast(catalog.load().load_table("crm.customers").schema().as_arrow()), outside)
    catalog.load().load_table("crm.customers").add_files([str(outside)])

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert {Path(f.file).name for f in result.findings if f.kind == "parquet"} == {"imported.parquet"}
    assert result.files_scanned["parquet"] == 2


def test_a_text_export_left_under_the_table_is_found(catalog):
    _ingest(catalog, "crm.customers", _people(with_subject=False))
    export = _location(catalog, "crm.customers") / "exports" / "subject.csv"
    export.parent.mkdir()
    export.write_text(f"customer_id,email\n{SUBJECT_ID},{SUBJECT_EMAIL.upper()}\n")

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert [(f.kind, f.where) for f in result.findings] == [("other", "text content")]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_pages_are_decoded_where_a_byte_search_finds_nothing(catalog, codec):
    _ingest(catalog, "crm.customers", _people(5_000), **{"write.parquet.compression-codec": codec})
    [data_file] = (_location(catalog, "crm.customers") / "data").glob("*.parquet")
    assert pq.ParquetFile(data_file).metadata.row_group(0).column(1).compression == codec.upper()
    raw = data_file.read_bytes().lower()
    assert SUBJECT_EMAIL.encode() not in raw  # grep proves nothing ...

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)  # ... decoding finds it

    parquet = _wheres(result, "parquet")
    assert "column email row group 0 (1 value)" in parquet
    assert "column customer_id row group 0 (1 value)" in parquet
    assert not any("statistics" in w for w in parquet)  # not a min or max: only the pages hold it


def test_nested_list_and_struct_columns_are_flattened(catalog):
    iceberg = catalog.load()
    iceberg.create_namespace("crm")
    rows = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "contact": pa.array([{"email": "a@example.org", "ids": [5, 6]},
                             {"email": "b@example.org", "ids": [7, SUBJECT_ID]}],
                            pa.struct([("email", pa.string()), ("ids", pa.list_(pa.int64()))])),
        "aliases": pa.array([["x@example.org"], ["y@example.org", f"  {SUBJECT_EMAIL}  "]]),
    })
    table = iceberg.create_table("crm.contacts", rows.schema, properties={"write.metadata.metrics.default": "none"})
    table.append(rows)

    result = verify_erased(catalog, ["crm.contacts"], SUBJECT)

    values = sorted(w for w in _wheres(result, "parquet") if "statistics" not in w)
    assert values == ["column aliases.element row group 0 (1 value)", "column contact.ids.element row group 0 (1 value)"]
    statistics = sorted(w for w in _wheres(result, "parquet") if "statistics" in w)
    assert statistics == ["column aliases.element row group 0 statistics (min)",  # leading spaces sort first
                          "column contact.ids.element row group 0 statistics (max)"]


def test_metadata_json_is_decoded_even_gzip_compressed(catalog):
    iceberg = catalog.load()
    iceberg.create_namespace("crm")
    rows = _people(10, with_subject=False)
    table = iceberg.create_table("crm.customers", rows.schema)
    table.append(rows, snapshot_properties={"erasure-note": f"request by {SUBJECT_EMAIL}",
                                            f"erased:{SUBJECT_EMAIL}": "yes"})
    newest = Path(catalog.load().load_table("crm.customers").metadata_location.removeprefix("file://"))
    # pyiceberg only reads compressed metadata; other engines write it (write.metadata.compression-codec)
    compressed = newest.with_name("00009-written-by-spark.gz.metadata.json")
    compressed.write_bytes(gzip.compress(newest.read_bytes()))
    assert SUBJECT_EMAIL.encode() not in compressed.read_bytes()

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    metadata = {(Path(f.file).name, f.where) for f in result.findings if f.kind == "metadata"}
    assert metadata == {(name, where) for name in (newest.name, compressed.name)
                        for where in ("$.snapshots[0].summary.erasure-note", "$.snapshots[0].summary (a key)")}
    _assert_no_identifier(result)


def test_an_identifier_in_a_partition_path_is_found_and_scrubbed(catalog):
    _ingest(catalog, "crm.customers", _people(20), **{"write.metadata.metrics.default": "counts"})
    table = catalog.load().load_table("crm.customers")
    with table.update_spec() as spec:
        spec.add_identity("customer_id")
    subject_rows = _people(20).filter(pa.compute.equal(_people(20)["customer_id"], SUBJECT_ID))
    table.append(subject_rows)  # a file under data/customer_id=9876543210/

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert "file path" in _wheres(result, "parquet")
    assert any(w.startswith("data_file.partition.customer_id") for w in _wheres(result, "avro"))
    assert any("lower_bound" in w for w in _wheres(result, "avro") if w.startswith("partitions["))
    assert any("customer_id=***" in f.file for f in result.findings)
    _assert_no_identifier(result)


def test_small_numeric_ids_are_matched_only_in_the_named_columns(catalog):
    _ingest(catalog, "crm.customers", _people(with_subject=False))  # quantity holds 0..6

    anywhere = verify_erased(catalog, ["crm.customers"], Identifiers(("5",)))
    in_id_columns = verify_erased(catalog, ["crm.customers"], Identifiers(("5",), columns=("customer_id",)))

    assert "column quantity row group 0 (285 values)" in _wheres(anywhere)
    assert in_id_columns.passed, in_id_columns.findings


def test_an_undecodable_file_fails_verification(catalog):
    _ingest(catalog, "crm.customers", _people(with_subject=False))
    location = _location(catalog, "crm.customers")
    (location / "data" / "broken.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 8)
    (location / "metadata" / "snap-1-broken.avro").write_bytes(b"Obj\x01\x00\x00garbage")
    (location / "data" / "blob.bin").write_bytes(bytes(range(256)))

    result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert not result.passed
    undecodable = {Path(f.file).name: f.kind for f in result.findings if f.where.startswith("cannot be decoded")}
    assert undecodable == {"broken.parquet": "parquet", "snap-1-broken.avro": "avro", "blob.bin": "other"}


def test_a_missing_table_fails_verification(catalog):
    result = verify_erased(catalog, ["crm.nowhere"], SUBJECT)

    assert not result.passed
    assert result.findings[0].where.startswith("table cannot be loaded")


def test_passes_once_the_files_are_really_gone(catalog):
    """delete -> one more commit (drops the manifest of DELETED entries) -> expire the older
    snapshots -> remove every file the current metadata does not reach."""
    _ingest(catalog, "crm.customers", _people())
    table = catalog.load().load_table("crm.customers")
    table.delete(f"customer_id = {SUBJECT_ID}")
    table.append(_people(10, with_subject=False))
    table = catalog.load().load_table("crm.customers")
    older = [s.snapshot_id for s in table.snapshots() if s.snapshot_id != table.current_snapshot().snapshot_id]
    table.maintenance.expire_snapshots().by_ids(older).commit()
    table = catalog.load().load_table("crm.customers")
    assert not verify_erased(catalog, ["crm.customers"], SUBJECT).passed  # expiring deletes no file

    for path in _location(catalog, "crm.customers").rglob("*"):
        if path.is_file() and f"file://{path}" not in _reachable(table):
            path.unlink()
    result = verify_erased(catalog, ["crm.customers"], SUBJECT, rediscover=lambda: 0)

    assert result.passed, result.findings
    assert result.files_scanned == {"parquet": 2, "avro": 3, "metadata": 1, "other": 0}


def _reachable(table) -> set[str]:
    files = {table.metadata_location}
    for snapshot in table.snapshots():
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            files.add(manifest.manifest_path)
            files |= {e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io)}
    return files


def test_an_s3_warehouse_is_listed_and_decoded(tmp_path):
    with moto_server() as moto:
        bucket = f"lake-{uuid.uuid4().hex[:8]}"
        moto.client("s3").create_bucket(Bucket=bucket)
        catalog = CatalogConfig("s3lake", {
            "type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": f"s3://{bucket}/wh",
            "s3.endpoint": moto.url, "s3.access-key-id": moto.access_key_id,
            "s3.secret-access-key": moto.secret_access_key, "s3.region": moto.region,
        })
        _ingest(catalog, "crm.customers", _people())
        moto.client("s3").put_object(Bucket=bucket, Key="wh/crm/customers/data/orphan.parquet",
                                     Body=Path(_orphan(tmp_path)).read_bytes())

        result = verify_erased(catalog, ["crm.customers"], SUBJECT)

    assert {f.file.split("/")[-1] for f in result.findings if f.kind == "parquet"} >= {"orphan.parquet"}
    assert result.files_scanned["parquet"] == 2 and result.files_scanned["avro"] == 2
    assert all(f.file.startswith(f"s3://{bucket}/wh/crm/customers/") for f in result.findings)


def _orphan(tmp_path: Path) -> Path:
    path = tmp_path / "orphan.parquet"
    pq.write_table(_people(30), path)
    return path


def test_identifiers_need_a_value():
    with pytest.raises(ConfigError):
        Identifiers(("  ",))


def test_time_to_verify_a_million_row_table(catalog):
    _ingest(catalog, "crm.big", _people(1_000_000))

    started = time.monotonic()
    result = verify_erased(catalog, ["crm.big"], SUBJECT)
    seconds = time.monotonic() - started

    assert not result.passed
    print(f"\nverify 1M rows: {seconds:.2f} s, {result.bytes_scanned / 1e6:.1f} MB, "
          f"{sum(result.files_scanned.values())} files")


def test_many_identifiers_are_searched_in_chunks_with_the_same_answer():
    import pyarrow.compute as pc

    from dativo_provider.privacy.matching import Identifiers

    values = tuple([str(1000 + i) for i in range(600)] + [f"person{i}@example.org" for i in range(600)])
    ids = Identifiers(values)
    assert len(ids.column_patterns) == 6
    texts = pa.array(["x person599@example.org y", "PERSON5@EXAMPLE.ORG", "person5@example.org.uk",
                      "1599", "order 1599 shipped", "nothing here", None, "person600@example.org"])
    one = pc.match_substring_regex(texts, ids.pattern, ignore_case=True)
    chunked = pc.match_substring_regex(texts, ids.column_patterns[0], ignore_case=True)
    for pattern in ids.column_patterns[1:]:
        chunked = pc.or_(chunked, pc.match_substring_regex(texts, pattern, ignore_case=True))
    assert chunked.to_pylist() == one.to_pylist()
    assert one.to_pylist()[:2] == [True, True] and one.to_pylist()[5] is False


# --- e-mails on token boundaries (issue 9, item 8) ------------------------------------------------------

LOOKALIKES = ["x@example.org.uk", "X@EXAMPLE.ORG.UK", "john.x@example.org", "x@example.org-mail.net",
              "ax@example.org", "x@example.organic.com", "mail from x@example.org.uk today"]


def _contacts(emails: list[str], notes: list[str] | None = None) -> pa.Table:
    n = len(emails)
    return pa.table({"contact_id": pa.array(range(1, n + 1), pa.int64()), "email": emails,
                     "note": notes or ["-"] * n})


def test_an_email_inside_a_longer_address_is_not_the_subject(catalog):
    _ingest(catalog, "crm.contacts", _contacts(LOOKALIKES, [f"reply to {e}" for e in LOOKALIKES]))

    result = verify_erased(catalog, ["crm.contacts"], Identifiers(("x@example.org",)))

    assert result.passed, result.findings
    assert result.files_scanned["parquet"] == 1


def test_the_email_is_found_in_every_case_and_as_a_token_in_text(catalog):
    stored = ["  X@EXAMPLE.ORG ", "other@example.org", "x@example.org.uk"]
    notes = ["-", "forwarded by X@Example.Org.", "cc: <x@EXAMPLE.org>; x@example.org.uk"]
    _ingest(catalog, "crm.contacts", _contacts(stored, notes))

    result = verify_erased(catalog, ["crm.contacts"], Identifiers(("x@example.org",)))

    assert not result.passed
    assert "column email row group 0 (1 value)" in _wheres(result, "parquet")
    assert "column note row group 0 (2 values)" in _wheres(result, "parquet")
    _assert_no_identifier(result, Identifiers(("x@example.org",)))


def test_blank_identifier_values_are_refused():
    for values in (("42", ""), ("x@example.org", "   "), (None,)):
        with pytest.raises(ConfigError, match="empty or whitespace-only"):
            Identifiers(values)
