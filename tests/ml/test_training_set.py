"""Training sets on real tables (embedded SQLite catalog, local warehouse): the as-of join equals a plain
Python as-of computation (no leakage, TTL gives null), a rebuild after later commits is identical, a
rebuild after an erasure is the set minus the subject (and says so), maintenance keeps the pins."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_provider.cli import main
from dativo_provider.exceptions import ConfigError, SourceError
from dativo_provider.iceberg.catalog import CatalogConfig, embedded_catalog
from dativo_provider.iceberg.maintenance import maintain_table
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.training_manifest import ContentHash
from dativo_provider.ml.training_reproduce import PinMovedError, reproduce_training_set
from dativo_provider.ml.training_set import FeatureTable, LabelTable, build_training_set, pin_name
from tests.memory_source import TableSource

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "dativo_provider/sample_data/contracts/customer_features.odcs.yaml"
UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
LABELS = LabelTable("ml.labels", ("customer_id",), "event_ts")


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)


def write(catalog, table: str, rows: list[dict], schema: pa.Schema, identity: str) -> None:
    run_ingest(TableSource(pa.Table.from_pylist(rows, schema), identity=identity), catalog, table,
               WriteOptions(mode="append"))


LABEL_SCHEMA = pa.schema([("customer_id", pa.int64()), ("event_ts", TS), ("churned", pa.bool_())])
ORDER_SCHEMA = pa.schema([("customer_id", pa.int64()), ("feature_ts", TS), ("orders_30d", pa.int64()),
                          ("spend_30d", pa.float64()), ("days_since_last_order", pa.int64())])
SEGMENT_SCHEMA = pa.schema([("customer_id", pa.int64()), ("segment_ts", TS), ("segment", pa.string())])


def sample(seed: int = 7) -> dict[str, list[dict]]:
    """Random labels and feature updates for 20 customers over 30 days, plus hand-placed edge cases."""
    rng = random.Random(seed)
    labels, orders, segments = [], [], []
    for customer in range(1, 21):
        for day in sorted(rng.sample(range(0, 30 * 24), 4)):
            orders.append({"customer_id": customer, "feature_ts": at(day / 24),
                           "orders_30d": rng.randint(0, 9), "spend_30d": round(rng.uniform(0, 500), 2),
                           "days_since_last_order": rng.randint(0, 40)})
        for day in sorted(rng.sample(range(0, 30), 2)):
            segments.append({"customer_id": customer, "segment_ts": at(day), "segment": rng.choice("abc")})
        for day in sorted(rng.sample(range(0, 35 * 24), 3)):
            labels.append({"customer_id": customer, "event_ts": at(day / 24), "churned": rng.random() < 0.3})
    # Customer 99: features on day 9 (2 orders) and day 10 (5 orders); TTL is 2 days.
    orders += [{"customer_id": 99, "feature_ts": at(9), "orders_30d": 2, "spend_30d": 20.0,
                "days_since_last_order": 1},
               {"customer_id": 99, "feature_ts": at(10), "orders_30d": 5, "spend_30d": 50.0,
                "days_since_last_order": 0}]
    labels += [{"customer_id": 99, "event_ts": at(9.99), "churned": False},  # before the update: old value
               {"customer_id": 99, "event_ts": at(10), "churned": False},  # at the update: the new value
               {"customer_id": 99, "event_ts": at(13), "churned": True},  # 3 days after: beyond the TTL, null
               {"customer_id": 99, "event_ts": at(4), "churned": False},  # before any feature: null
               {"customer_id": 123, "event_ts": at(4), "churned": False}]  # an entity with no features
    return {"labels": labels, "orders": orders, "segments": segments}


def load(catalog, data: dict[str, list[dict]], round_: int = 0) -> None:
    write(catalog, "ml.labels", data["labels"], LABEL_SCHEMA, f"memory://labels/{round_}")
    write(catalog, "ml.customer_features", data["orders"], ORDER_SCHEMA, f"memory://orders/{round_}")
    write(catalog, "ml.segments", data["segments"], SEGMENT_SCHEMA, f"memory://segments/{round_}")


def feature_tables() -> list[FeatureTable]:
    orders = FeatureTable.from_contract(str(CONTRACT), table="ml.customer_features")
    segments = FeatureTable("ml.segments", ("customer_id",), "segment_ts", ("segment",))
    return [orders, segments]


def plain_as_of(data: dict[str, list[dict]], ttl: timedelta) -> list[dict]:
    """The expected training set, computed without DuckDB: for each label, the newest feature row of the
    same customer at or before the event time; the order features null when that row is older than the TTL."""
    expected = []
    for label in data["labels"]:
        row = dict(label)
        past = [o for o in data["orders"] if o["customer_id"] == label["customer_id"]
                and o["feature_ts"] <= label["event_ts"]]
        newest = max(past, key=lambda o: o["feature_ts"]) if past else None
        fresh = newest is not None and label["event_ts"] - newest["feature_ts"] <= ttl
        for name in ("orders_30d", "spend_30d", "days_since_last_order"):
            row[name] = newest[name] if fresh else None
        seen = [s for s in data["segments"] if s["customer_id"] == label["customer_id"]
                and s["segment_ts"] <= label["event_ts"]]
        row["segment"] = max(seen, key=lambda s: s["segment_ts"])["segment"] if seen else None
        expected.append(row)
    return expected


def key(row: dict) -> tuple:
    return row["customer_id"], row["event_ts"]


@pytest.fixture
def catalog(tmp_path):
    return embedded_catalog(tmp_path / "lake")


def build(catalog, tmp_path, run_id: str = "run-1", output: str | None = "ml.churn_training"):
    return build_training_set(catalog, "churn", LABELS, feature_tables(), output_table=output,
                              manifest_path=str(tmp_path / "manifests" / f"{run_id}.json"), run_id=run_id)


def read_output(catalog, result) -> list[dict]:
    table = catalog.load().load_table(result.manifest.output_table)
    return table.scan(snapshot_id=result.manifest.output_snapshot_id).to_arrow().to_pylist()


def test_as_of_join_equals_plain_python_and_never_leaks(catalog, tmp_path):
    data = sample()
    load(catalog, data)
    result = build(catalog, tmp_path)
    rows = sorted(read_output(catalog, result), key=key)
    expected = sorted(plain_as_of(data, timedelta(days=2)), key=key)
    assert rows == expected
    assert result.manifest.row_count == len(data["labels"]) == 65
    edge = {r["event_ts"]: r for r in rows if r["customer_id"] == 99}
    assert edge[at(9.99)]["orders_30d"] == 2  # the label before the update gets the old value
    assert edge[at(10)]["orders_30d"] == 5  # feature time equal to event time is not the future
    assert edge[at(13)]["orders_30d"] is None and edge[at(13)]["spend_30d"] is None  # older than the TTL
    assert edge[at(4)]["orders_30d"] is None
    # Leakage, checked over every row: no value came from a feature row after its label's event time.
    by_value = {(o["customer_id"], o["orders_30d"], o["spend_30d"]): o["feature_ts"] for o in data["orders"]}
    for row in rows:
        if row["orders_30d"] is not None:
            assert by_value[(row["customer_id"], row["orders_30d"], row["spend_30d"])] <= row["event_ts"]
    assert sum(r["orders_30d"] is None for r in rows) > 5  # the TTL nulls random rows too


def test_manifest_records_pinned_snapshots_and_content_hash(catalog, tmp_path):
    load(catalog, sample())
    with_secret = CatalogConfig(catalog.name, {**catalog.properties, "s3.secret-access-key": "hunter2"})
    result = build(with_secret, tmp_path)
    text = Path(result.manifest_path).read_text()
    manifest = json.loads(text)
    tables = catalog.load()
    assert [i["table"] for i in manifest["inputs"]] == ["ml.labels", "ml.customer_features", "ml.segments"]
    for entry in manifest["inputs"]:
        table = tables.load_table(entry["table"])
        assert entry["ref"] == pin_name("churn", "run-1") == "dativo-training/churn/run-1"
        assert str(table.metadata.refs[entry["ref"]].snapshot_id) == entry["snapshot_id"]
        assert str(table.metadata.snapshot_by_name("main").snapshot_id) == entry["snapshot_id"]
    assert manifest["inputs"][1]["ttl_seconds"] == 2 * 86400  # from the contract's ttlDays
    assert manifest["row_count"] == 65
    again = ContentHash(manifest["columns"])
    again.add(pa.Table.from_pylist(list(reversed(read_output(catalog, result)))))
    assert again.hexdigest == manifest["content_hash"]  # order-independent, and equal to the rows written
    assert "hunter2" not in text and manifest["catalog"]["properties"] == dict(catalog.properties)


def test_content_hash_tells_rows_apart():
    one, two, three = (ContentHash(["a", "b"]) for _ in range(3))
    one.add(pa.table({"a": [1, 2], "b": ["x", "y"]}))
    two.add(pa.table({"b": ["y", "x"], "a": [2, 1]}))
    three.add(pa.table({"a": [1, 2, 2], "b": ["x", "y", "y"]}))
    assert one.hexdigest == two.hexdigest != three.hexdigest
    ints, floats = ContentHash(["a"]), ContentHash(["a"])
    ints.add(pa.table({"a": [1]}))
    floats.add(pa.table({"a": [1.0]}))
    assert ints.hexdigest != floats.hexdigest


def later_commits(catalog, data: dict[str, list[dict]], rounds: int = 3) -> None:
    """Rounds of new rows into every input, some of them at times the training set covers."""
    for round_ in range(1, rounds + 1):
        load(catalog, {
            "labels": [{"customer_id": 5, "event_ts": at(40 + round_), "churned": True}],
            "orders": [{"customer_id": 5, "feature_ts": at(2 + round_ / 10), "orders_30d": 100 + round_,
                        "spend_30d": 1.0, "days_since_last_order": 0}],
            "segments": [{"customer_id": 5, "segment_ts": at(round_ / 10), "segment": "late"}],
        }, round_)


def test_reproduce_after_three_later_commits_is_identical(catalog, tmp_path):
    data = sample()
    load(catalog, data)
    result = build(catalog, tmp_path)
    later_commits(catalog, data)
    rebuilt = reproduce_training_set(result.manifest_path)
    assert (rebuilt.status, rebuilt.row_count, rebuilt.rows_removed) == ("identical", 65, 0)
    assert rebuilt.content_hash == result.manifest.content_hash
    # The same definitions on the tables as they are now give another set: the pins are what kept it.
    fresh = build(catalog, tmp_path, run_id="run-2", output=None)
    assert fresh.manifest.content_hash != result.manifest.content_hash
    assert fresh.manifest.row_count == 68


def test_cli_reproduce_exits_0_when_identical_and_1_when_not(catalog, tmp_path, capsys):
    load(catalog, sample())
    result = build(catalog, tmp_path)
    report = tmp_path / "report.json"
    assert main(["training-set", "reproduce", result.manifest_path, "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert f"churn (run run-1): IDENTICAL: identical: 65 rows, content hash {result.manifest.content_hash}" \
           in printed
    assert json.loads(report.read_text())["status"] == "identical"
    tampered = json.loads(Path(result.manifest_path).read_text())
    tampered["content_hash"] = "sha256-sum:" + "0" * 64
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(tampered))
    assert main(["training-set", "reproduce", str(forged), "--warehouse", str(tmp_path / "lake")]) == 1
    assert "DIFFERENT: NOT reproduced: 65 rows (recorded 65)" in capsys.readouterr().out
    assert main(["training-set", "reproduce", str(tmp_path / "absent.json")]) == 1
    assert "training-set manifest" in capsys.readouterr().err


def test_a_rerun_of_the_same_run_reads_the_same_snapshots(catalog, tmp_path):
    load(catalog, sample())
    first = build(catalog, tmp_path)
    later_commits(catalog, sample(), rounds=1)
    again = build(catalog, tmp_path)
    assert [i.snapshot_id for i in again.manifest.inputs] == [i.snapshot_id for i in first.manifest.inputs]
    assert again.manifest.content_hash == first.manifest.content_hash


def erase(catalog, customer: int, request_id: str) -> None:
    """What a data-subject erasure does to each table: delete on every branch head, then purge."""
    from pyiceberg.expressions import In

    from dativo_provider.privacy.erase import delete_rows
    from dativo_provider.privacy.purge import purge_table

    for table in ("ml.labels", "ml.customer_features", "ml.segments"):
        delete_rows(catalog, table, In("customer_id", [customer]), request_id=request_id)
        purge_table(catalog, table, subject=In("customer_id", [customer]), request_id=request_id,
                    safety_window=timedelta(0))


def test_reproduce_after_an_erasure_is_the_set_minus_the_subject(catalog, tmp_path, capsys):
    data = sample()
    load(catalog, data)
    result = build(catalog, tmp_path)
    original = read_output(catalog, result)
    later_commits(catalog, data)
    erase(catalog, 7, "req-7")  # the default refs policy ("fail"): no pin stands in the erasure's way
    rebuilt = reproduce_training_set(result.manifest_path)
    kept = [r for r in original if r["customer_id"] != 7]
    expected = ContentHash(result.manifest.columns)
    expected.add(pa.Table.from_pylist(kept))
    assert rebuilt.status == "erased" and rebuilt.reproduced
    assert rebuilt.rows_removed == len(original) - len(kept) == 3
    assert rebuilt.content_hash == expected.hexdigest != result.manifest.content_hash
    assert rebuilt.erasures == {t: ["req-7"] for t in ("ml.labels", "ml.customer_features", "ml.segments")}
    assert "3 of 65 rows removed" in rebuilt.message and "req-7" in rebuilt.message
    assert main(["training-set", "reproduce", result.manifest_path]) == 0
    printed = capsys.readouterr().out
    assert "ERASED: the set minus erased data: 3 of 65 rows removed; the content hash differs because of " \
           "erasure request(s) ['req-7']" in printed
    tables = catalog.load()
    for pinned in result.manifest.inputs:  # the pinned snapshot that held customer 7 is gone for good
        assert tables.load_table(pinned.table).metadata.snapshot_by_id(pinned.snapshot_id) is None


def test_a_pin_written_to_or_removed_is_reported(catalog, tmp_path):
    load(catalog, sample())
    result = build(catalog, tmp_path)
    pin = pin_name("churn", "run-1")
    extra = pa.Table.from_pylist([{"customer_id": 1, "event_ts": at(3), "churned": True}], LABEL_SCHEMA)
    run_ingest(TableSource(extra, identity="memory://stray"), catalog, "ml.labels", WriteOptions(branch=pin))
    with pytest.raises(PinMovedError, match="was committed to the pin 'dativo-training/churn/run-1'"):
        reproduce_training_set(result.manifest_path)
    catalog.load().load_table("ml.segments").manage_snapshots().remove_branch(pin).commit()
    catalog.load().load_table("ml.labels").manage_snapshots().remove_branch(pin).commit()
    with pytest.raises(PinMovedError, match="was removed"):
        reproduce_training_set(result.manifest_path)


def test_maintenance_expiry_keeps_the_pinned_snapshots(catalog, tmp_path):
    from pyiceberg.expressions import EqualTo

    from dativo_provider.privacy.erase import delete_rows

    data = sample()
    load(catalog, data)
    # main's head (what gets pinned) now holds no source state; its parent does: expiry must not carry
    # that state onto the pin, which would move it off the snapshot the training set read.
    delete_rows(catalog, "ml.labels", EqualTo("customer_id", 123), request_id="req-123")
    data["labels"] = [r for r in data["labels"] if r["customer_id"] != 123]
    result = build(catalog, tmp_path)
    later_commits(catalog, data)
    tables = catalog.load()
    for pinned in result.manifest.inputs:
        table = tables.load_table(pinned.table)
        ref = table.metadata.refs[pinned.ref]
        assert (ref.snapshot_ref_type.value, ref.max_ref_age_ms) == ("branch", None)
        report = maintain_table(catalog, pinned.table, expire_older_than=None, retain_last=1,
                                orphan_safety_window=timedelta(0),
                                now=datetime.now(UTC) + timedelta(days=400))
        assert report.snapshots_expired >= 2  # everything else between the pin and main's head went
        after = catalog.load().load_table(pinned.table)
        assert after.metadata.refs[pinned.ref].snapshot_id == pinned.snapshot_id  # nothing carried onto it
        assert after.metadata.snapshot_by_id(pinned.snapshot_id) is not None
    rebuilt = reproduce_training_set(result.manifest_path)
    assert (rebuilt.status, rebuilt.content_hash) == ("identical", result.manifest.content_hash)


def test_definitions_are_checked_before_anything_is_written(catalog, tmp_path):
    load(catalog, sample())
    clash = FeatureTable("ml.labels", ("customer_id",), "event_ts", ("churned",))
    with pytest.raises(ConfigError, match="clashes"):
        build_training_set(catalog, "x", LABELS, [clash], manifest_path=str(tmp_path / "m.json"), run_id="r")
    missing = FeatureTable("ml.segments", ("customer_id",), "segment_ts", ("tier",))
    with pytest.raises(ConfigError, match=r"ml.segments \(snapshot \d+\) has no column\(s\) \['tier'\]"):
        build_training_set(catalog, "y", LABELS, [missing], manifest_path=str(tmp_path / "m.json"),
                           run_id="r")
    duplicated = {"orders": [], "labels": [], "segments": [
        {"customer_id": 1, "segment_ts": at(1), "segment": "a"},
        {"customer_id": 1, "segment_ts": at(1), "segment": "b"}]}
    load(catalog, duplicated, round_=9)
    with pytest.raises(SourceError, match="holds 2 rows for .*one row per entity and time"):
        build_training_set(catalog, "z", LABELS, feature_tables(), manifest_path=str(tmp_path / "m.json"),
                           run_id="r")


def test_a_real_erasure_request_goes_through_the_pins_and_the_rebuild_lacks_only_the_subject(tmp_path):
    """``erase_subject`` (discovery, delete, purge, verification) on the privacy tests' warehouse, with
    the default refs policy: the training-set pins do not stop it, and the rebuild lacks exactly the
    subject's tickets (found by id and by e-mail), every other row unchanged. The output table records
    the label table's contract dataset, so the erasure removes the same tickets from it (the anonymous
    one by its ticket id) and the certificate lists it: the table then equals the rebuild."""
    import dataclasses

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from dativo_provider.privacy.certificate import SigningKey
    from dativo_provider.privacy.dsr import erase_subject
    from dativo_provider.privacy.request import SubjectRequest
    from tests.privacy.warehouse import CONTRACTS, build_warehouse, contract_paths

    catalog = embedded_catalog(tmp_path / "lake")
    info = build_warehouse(catalog)
    tables = catalog.load()
    for name, tag in (("examples.customers", "onboarding"), ("examples.orders", "eoy-2024"),
                      ("examples.events", "q1-2024")):  # the warehouse's own tags would stop a "fail" policy
        tables.load_table(name).manage_snapshots().remove_tag(tag).commit()
    features = FeatureTable.from_contract(str(CONTRACTS / "customer_features.odcs.yaml"))
    result = build_training_set(
        catalog, "tickets", LabelTable("examples.support_tickets", ("customer_id",), "created_at",
                                       ("ticket_id", "channel")),
        [dataclasses.replace(features, ttl=timedelta(days=60))], output_table="ml.ticket_training",
        manifest_path=str(tmp_path / "tickets.json"), run_id="r1")
    original = read_output(catalog, result)
    assert sum(r["orders_30d"] is not None for r in original) > 100
    assert tables.load_table("ml.ticket_training").properties["dativo.contract"] == (
        "urn:dativo:examples:support-tickets")
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    request = SubjectRequest("dsr-ts-1", "erasure", "customer", subject_ids=[str(info.subject_id)])
    outcome = erase_subject(catalog, contract_paths(), request, signing_key=SigningKey.ed25519(pem, "k"),
                            hash_key=b"training-set-test-hash-key-32byte", safety_window=timedelta(0))
    assert outcome.verified
    subject_tickets = set(info.expected["examples.support_tickets"].column("ticket_id").to_pylist())
    assert len(subject_tickets) >= 2 and any(r["customer_id"] is None for r in original
                                             if r["ticket_id"] in subject_tickets)  # one sent anonymously
    rebuilt = reproduce_training_set(result.manifest_path)
    expected = ContentHash(result.manifest.columns)
    expected.add(pa.Table.from_pylist([r for r in original if r["ticket_id"] not in subject_tickets]))
    assert (rebuilt.status, rebuilt.rows_removed) == ("erased", len(subject_tickets))
    assert rebuilt.content_hash == expected.hexdigest
    assert set(rebuilt.erasures) == {"examples.support_tickets", "examples.customer_features"}
    left = catalog.load().load_table("ml.ticket_training").scan().to_arrow().to_pylist()
    assert sorted(r["ticket_id"] for r in left) == sorted(r["ticket_id"] for r in original
                                                          if r["ticket_id"] not in subject_tickets)
    assert not subject_tickets & {r["ticket_id"] for r in left}
    left_hash = ContentHash(result.manifest.columns)
    left_hash.add(pa.Table.from_pylist(sorted(left, key=lambda r: r["ticket_id"])))
    rebuilt_hash = ContentHash(result.manifest.columns)
    rebuilt_hash.add(pa.Table.from_pylist(sorted([r for r in original if r["ticket_id"] not in subject_tickets],
                                                 key=lambda r: r["ticket_id"])))
    assert left_hash.hexdigest == rebuilt_hash.hexdigest  # the table now holds the rebuild's rows
    listed = outcome.certificate["tables"]["ml.ticket_training"]
    assert listed["rows_deleted"] == len(subject_tickets)
    assert "(table recording contract dataset examples.support_tickets)" in json.dumps(outcome.certificate)


@pytest.mark.postgres
def test_a_manifest_never_records_the_catalog_password(tmp_path, postgres_config):
    """A manifest is shared with whoever reproduces the set: the catalog URI's password must not be in it
    (the server trusts local connections, so the password below is accepted and ignored)."""
    secret = f"S3CRET-{uuid.uuid4().hex[:8]}"
    catalog = CatalogConfig(f"pg_{uuid.uuid4().hex[:8]}", {
        "type": "sql",
        "uri": f"postgresql+psycopg://{postgres_config.user}:{secret}@{postgres_config.host}:"
               f"{postgres_config.port}/{postgres_config.database}",
        "warehouse": f"file://{tmp_path}/warehouse",
    })
    load(catalog, sample())
    result = build(catalog, tmp_path)
    text = Path(result.manifest_path).read_text()
    assert secret not in text
    recorded = json.loads(text)["catalog"]["properties"]["uri"]
    assert recorded == f"postgresql+psycopg://{postgres_config.user}@{postgres_config.host}:" \
                       f"{postgres_config.port}/{postgres_config.database}"
    no_warehouse = CatalogConfig("lake", {"type": "sql", "uri": f"postgresql://u:{secret}@db.example/lake"})
    assert no_warehouse.lineage_namespace == "postgresql://u@db.example/lake"
