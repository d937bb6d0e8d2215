"""The audit trail: tampering in either store is found and named; identifiers never stored in clear."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy.anchors import Anchor, AnchorStore
from dativo_provider.privacy.audit import AuditTrail, event_hash, verify
from dativo_provider.privacy.audit_stores import GENESIS, IcebergAuditStore, ObjectAuditStore
from dativo_provider.privacy.hashing import canonical_json, subject_hash
from dativo_provider.privacy.request import SubjectRequest
from tests.s3_server import moto_server

KEY = b"audit-trail-test-key-0123456789ab"
EMAIL = "ann.unique-subject@example.com"
SUBJECT_ID = "cust-7f3a9c"


class Tamper:
    """Reads a store's raw events and rewrites them wholesale, as an attacker with write access could:
    ``save_head``/``restore_head`` put back the store's own head record as it was earlier (the table's
    older snapshot, with the newer ones expired; an older ``HEAD.json``), removing later events."""

    def __init__(self, store, rows, replace, save_head, restore_head) -> None:
        self.store, self.rows, self.replace = store, rows, replace
        self.save_head, self.restore_head = save_head, restore_head


def _iceberg(tmp_path: Path) -> Tamper:
    import pyarrow as pa

    store = IcebergAuditStore(embedded_catalog(tmp_path / "lake").load(), "dativo.dsr_audit")

    def rows() -> list[dict]:
        return [item.event for item in store.read()]

    def replace(events: list[dict]) -> None:
        table = store.catalog.load_table(store.identifier)
        data = [{**e, "at": datetime.fromisoformat(e["at"]), "details": json.dumps(e["details"])} for e in events]
        table.overwrite(pa.Table.from_pylist(data, schema=table.schema().as_arrow()))

    def save_head() -> int:
        return store.catalog.load_table(store.identifier).current_snapshot().snapshot_id

    def restore_head(snapshot_id: int) -> None:
        table = store.catalog.load_table(store.identifier)
        later = [s.snapshot_id for s in table.snapshots() if s.sequence_number > table.snapshot_by_id(
            snapshot_id).sequence_number]
        table.manage_snapshots().rollback_to_snapshot(snapshot_id).commit()
        table.maintenance.expire_snapshots().by_ids(later).commit()

    return Tamper(store, rows, replace, save_head, restore_head)


def _files(tmp_path: Path) -> Tamper:
    root = tmp_path / "trail"
    store = ObjectAuditStore(str(root))

    def rows() -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(root.glob("[0-9]*.json"))]

    def replace(events: list[dict]) -> None:
        for path in root.glob("[0-9]*.json"):
            path.unlink()
        for event in events:
            (root / f"{event['seq']:08d}.json").write_bytes(canonical_json(event))

    def save_head() -> tuple[int, bytes]:
        return len(rows()), (root / "HEAD.json").read_bytes()

    def restore_head(saved: tuple[int, bytes]) -> None:
        replace(rows()[:saved[0]])
        (root / "HEAD.json").write_bytes(saved[1])

    return Tamper(store, rows, replace, save_head, restore_head)


@pytest.fixture(scope="module")
def s3() -> Iterator[ObjectStoreConfig]:
    with moto_server() as endpoint:
        endpoint.client("s3").create_bucket(Bucket="audit-bucket")
        yield ObjectStoreConfig(access_key_id=endpoint.access_key_id,
                                secret_access_key=endpoint.secret_access_key,
                                region=endpoint.region, endpoint_url=endpoint.url)


def _s3(config: ObjectStoreConfig, prefix: str) -> Tamper:
    import boto3

    client = boto3.client("s3", endpoint_url=config.endpoint_url, aws_access_key_id=config.access_key_id,
                          aws_secret_access_key=config.secret_access_key, region_name=config.region)
    store = ObjectAuditStore(f"s3://audit-bucket/{prefix}", config)

    def keys() -> list[str]:
        listing = client.list_objects_v2(Bucket="audit-bucket", Prefix=f"{prefix}/")
        return sorted(item["Key"] for item in listing.get("Contents", []) if item["Key"][-13:-5].isdigit())

    def rows() -> list[dict]:
        return [json.loads(client.get_object(Bucket="audit-bucket", Key=k)["Body"].read()) for k in keys()]

    def replace(events: list[dict]) -> None:
        for key in keys():
            client.delete_object(Bucket="audit-bucket", Key=key)
        for event in events:
            client.put_object(Bucket="audit-bucket", Key=f"{prefix}/{event['seq']:08d}.json",
                              Body=canonical_json(event))

    def save_head() -> tuple[int, bytes]:
        return len(keys()), client.get_object(Bucket="audit-bucket", Key=f"{prefix}/HEAD.json")["Body"].read()

    def restore_head(saved: tuple[int, bytes]) -> None:
        replace(rows()[:saved[0]])
        client.put_object(Bucket="audit-bucket", Key=f"{prefix}/HEAD.json", Body=saved[1])

    return Tamper(store, rows, replace, save_head, restore_head)


@pytest.fixture(params=["iceberg", "files", "s3"])
def trail(request: pytest.FixtureRequest, tmp_path: Path) -> Tamper:
    if request.param == "iceberg":
        return _iceberg(tmp_path)
    if request.param == "files":
        return _files(tmp_path)
    return _s3(request.getfixturevalue("s3"), tmp_path.name)


def _fill(tamper: Tamper, count: int = 5) -> list[dict]:
    audit = AuditTrail(tamper.store, KEY)
    request = SubjectRequest("dsr-1", "erasure", "customer", subject_ids=(SUBJECT_ID,), emails=(EMAIL,))
    events = ["received", "discovered", "deleted", "purged", "verified", "completed"]
    return [audit.append_request(request, events[i % len(events)], {"step": i, "table": "crm.orders"})
            for i in range(count)]


def _renumbered(events: list[dict]) -> list[dict]:
    return [{**event, "seq": position} for position, event in enumerate(events)]


def test_appended_events_chain_and_verify(trail: Tamper) -> None:
    events = _fill(trail)
    assert [e["seq"] for e in events] == list(range(5))
    assert events[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(events, events[1:]))
    check = verify(trail.store, KEY)
    assert (check.valid, check.events, check.head_hash) == (True, 5, events[-1]["hash"])
    assert trail.rows() == events
    assert verify(trail.store, KEY, anchor=events[2]["hash"]).valid


def test_identifiers_never_stored_in_clear_text(trail: Tamper, tmp_path: Path) -> None:
    _fill(trail)
    decoded = json.dumps(trail.rows()).lower()
    assert EMAIL not in decoded and SUBJECT_ID not in decoded
    assert subject_hash(KEY, "customer", EMAIL) in decoded
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert EMAIL.encode() not in raw and SUBJECT_ID.encode() not in raw


def test_details_with_an_identifier_are_refused(tmp_path: Path) -> None:
    audit = AuditTrail(ObjectAuditStore(str(tmp_path)), KEY)
    with pytest.raises(ConfigError, match="clear text"):
        audit.append("dsr-1", "deleted", {"note": f"erased {EMAIL.upper()}"}, subject_kind="customer",
                     identifiers=[EMAIL])
    with pytest.raises(ConfigError, match="unknown"):
        audit.append("dsr-1", "shredded")
    assert list(tmp_path.iterdir()) == []


def _edit(events: list[dict]) -> list[dict]:
    events[2]["details"]["step"] = 99
    return events


def _delete(events: list[dict]) -> list[dict]:
    del events[2]
    return events


def _reorder(events: list[dict]) -> list[dict]:
    events[1], events[2] = events[2], events[1]
    return _renumbered(events)


def _insert_forged(events: list[dict]) -> list[dict]:
    forged = {**events[1], "event": "completed", "prev_hash": events[1]["hash"]}
    forged["hash"] = event_hash(b"not-the-trail-key-0123456789", forged)
    return _renumbered([*events[:2], forged, *events[2:]])


def _rechain_with_sha256(events: list[dict]) -> list[dict]:
    events[2]["details"]["step"] = 99
    for position in range(2, len(events)):
        events[position]["prev_hash"] = events[position - 1]["hash"]
        body = {k: v for k, v in events[position].items() if k != "hash"}
        events[position]["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    return events


@pytest.mark.parametrize(("tamper", "position", "words"), [
    (_edit, 2, "edited"),
    (_delete, 2, "missing"),
    (_reorder, 1, "edited"),
    (_insert_forged, 2, "edited"),
    (_rechain_with_sha256, 2, "edited"),
])
def test_tampering_is_found_and_named(trail: Tamper, tamper, position: int, words: str) -> None:
    _fill(trail)
    trail.replace(tamper(trail.rows()))
    check = verify(trail.store, KEY)
    assert not check.valid
    assert check.position == position, check.reason
    assert words in check.reason and str(position) in check.reason


def test_swapped_files_name_the_position(tmp_path: Path) -> None:
    trail = _files(tmp_path)
    _fill(trail)
    root = tmp_path / "trail"
    one, two = (root / "00000001.json").read_bytes(), (root / "00000002.json").read_bytes()
    (root / "00000001.json").write_bytes(two)
    (root / "00000002.json").write_bytes(one)
    check = verify(trail.store, KEY)
    assert (check.valid, check.position) == (False, 1)
    assert "named for seq 1 but holds seq 2" in check.reason


def test_truncated_tail_is_caught_by_the_sealed_head(trail: Tamper) -> None:
    events = _fill(trail)
    trail.replace(events[:-1])
    check = verify(trail.store, KEY)
    assert (check.valid, check.position) == (False, 4), check.reason
    assert "removed" in check.reason
    assert not verify(trail.store, KEY, anchor=events[-1]["hash"]).valid


def _rewrite_head_without_the_key(trail: Tamper, events: list[dict], mac: str) -> None:
    """Remove the last event and record the previous one as the head, as the old code wrote it."""
    if isinstance(trail.store, IcebergAuditStore):
        import pyarrow as pa

        table = trail.store.catalog.load_table(trail.store.identifier)
        data = [{**e, "at": datetime.fromisoformat(e["at"]), "details": json.dumps(e["details"])}
                for e in events[:-1]]
        properties = {"dativo.audit.head-seq": str(events[-2]["seq"]),
                      "dativo.audit.head-hash": events[-2]["hash"]}
        table.overwrite(pa.Table.from_pylist(data, schema=table.schema().as_arrow()),
                        snapshot_properties={**properties, **({"dativo.audit.head-mac": mac} if mac else {})})
        return
    trail.replace(events[:-1])
    head = {"seq": events[-2]["seq"], "hash": events[-2]["hash"], **({"mac": mac} if mac else {})}
    if isinstance(trail.store.files.location, str) and trail.store.files.s3:
        trail.store.files.replace("HEAD.json", canonical_json(head))
    else:
        Path(trail.store.location, "HEAD.json").write_bytes(canonical_json(head))


def test_head_rewritten_without_the_key_is_caught(trail: Tamper) -> None:
    """Issue 9 item 6: the head beside the data was not keyed, so removing the last event and
    rewriting the head to match went unnoticed."""
    events = _fill(trail)
    _rewrite_head_without_the_key(trail, events, "")
    check = verify(trail.store, KEY)
    assert (check.valid, check.position) == (False, 4), check.reason
    assert "not sealed with the trail key" in check.reason or "removed from the end" in check.reason


def test_sealed_head_copied_into_another_commit_is_caught(tmp_path: Path) -> None:
    """The seal covers the snapshot's parent: the genuine seal of the head at seq 3 does not fit a
    commit made on top of seq 4 (an older HEAD.json put back is the rollback case: anchors)."""
    trail = _iceberg(tmp_path)
    events = _fill(trail)
    trail.store.read()
    copied = next(head for head in trail.store.recorded_heads() if head.seq == 3)
    genuine = [s.snapshot_id for s in trail.store.catalog.load_table(trail.store.identifier).snapshots()]
    _rewrite_head_without_the_key(trail, events, copied.mac)
    table = trail.store.catalog.load_table(trail.store.identifier)
    table.maintenance.expire_snapshots().by_ids(genuine).commit()  # no older head left to compare
    check = verify(trail.store, KEY)
    assert (check.valid, check.position) == (False, 4)
    assert "not sealed with the trail key" in check.reason


def test_rolled_back_store_is_caught_by_the_anchor_of_the_completed_event(trail: Tamper) -> None:
    """Removing a request's final event and putting the store's genuine older head back leaves a valid
    shorter trail: only the anchor taken after ``completed`` (kept in the certificate) shows it."""
    audit = AuditTrail(trail.store, KEY)
    for event in ("received", "deleted", "purged", "verified"):
        audit.append("dsr-1", event, {"table": "crm.orders"})
    saved = trail.save_head()
    completed = audit.append("dsr-1", "completed", {"rows_deleted": 3})
    anchor = audit.anchor(completed)
    assert (anchor.seq, anchor.event, anchor.request_id) == (4, "completed", "dsr-1")
    assert anchor.hash == completed["hash"]
    assert verify(trail.store, KEY, anchors=[anchor]).valid
    trail.restore_head(saved)
    assert [row["event"] for row in trail.rows()][-1] == "verified"
    assert verify(trail.store, KEY).valid  # the store alone cannot tell
    check = verify(trail.store, KEY, anchors=[anchor])
    assert (check.valid, check.position) == (False, 4)
    assert "event 4 ('completed' of request 'dsr-1') is missing" in check.reason


def test_failed_and_abandoned_requests_are_anchored_outside_the_trail(trail: Tamper, tmp_path: Path) -> None:
    anchors = AnchorStore(str(tmp_path / "anchors"))
    audit = AuditTrail(trail.store, KEY, anchors=anchors)
    audit.append("dsr-ok", "received")
    audit.anchor(audit.append("dsr-ok", "completed"))
    audit.append("dsr-gone", "received")
    audit.append("dsr-gone", "deleted", {"table": "crm.orders"})  # then the worker was killed
    audit.append("dsr-bad", "received")
    saved = trail.save_head()
    audit.append("dsr-bad", "failed", {"error": "TerminalError"})
    recorded = {a.request_id: (a.seq, a.event) for a in anchors.read()}
    assert recorded == {"dsr-ok": (1, "completed"), "dsr-gone": (3, "deleted"), "dsr-bad": (5, "failed")}
    check = verify(trail.store, KEY, anchors=anchors.read())
    assert (check.valid, check.anchors) == (True, 3), check.reason
    trail.restore_head(saved)
    assert verify(trail.store, KEY).valid
    check = verify(trail.store, KEY, anchors=anchors.read())
    assert (check.valid, check.position) == (False, 5)
    assert "'failed' of request 'dsr-bad'" in check.reason


def test_anchors_are_sealed(tmp_path: Path) -> None:
    store = ObjectAuditStore(str(tmp_path / "trail"))
    audit = AuditTrail(store, KEY)
    first = audit.append("dsr-1", "received")
    anchor = audit.anchor(audit.append("dsr-1", "completed"))
    moved = Anchor(anchor.request_id, 0, anchor.event, first["hash"], anchor.mac)  # points at 'received'
    check = verify(store, KEY, anchors=[moved])
    assert not check.valid and "not sealed" in check.reason
    other = AuditTrail(store, b"another-key-0123456789abcdef")
    with pytest.raises(ConfigError, match="not appended with this trail's key"):
        other.anchor(first)
    assert Anchor.from_dict(anchor.to_dict()) == anchor
    legacy = Anchor.from_dict({"head_seq": 1, "head_hash": anchor.hash}, request_id="dsr-1")
    assert verify(store, KEY, anchors=[legacy]).valid
    (tmp_path / "trail" / "00000001.json").unlink()
    assert "event 1 is missing" in verify(store, KEY, anchors=[legacy]).reason
    with pytest.raises(ConfigError, match="not an audit anchor"):
        Anchor.from_dict({"seq": "1", "hash": "x", "request_id": "r"})


def test_trail_from_before_sealed_heads_verifies_with_a_warning(tmp_path: Path) -> None:
    class OldIcebergStore(IcebergAuditStore):
        def put(self, event, head, sealer):  # what earlier versions wrote: no -mac
            table = head.token
            original = table.append

            def append(data, snapshot_properties):
                snapshot_properties.pop("dativo.audit.head-mac")
                return original(data, snapshot_properties=snapshot_properties)

            table.append = append
            super().put(event, head, sealer)

    catalog = embedded_catalog(tmp_path / "lake").load()
    old = AuditTrail(OldIcebergStore(catalog, "dativo.dsr_audit"), KEY)
    for event in ("received", "completed"):
        old.append("dsr-1", event)
    store = IcebergAuditStore(catalog, "dativo.dsr_audit")
    check = verify(store, KEY)
    assert check.valid and "no sealed head" in check.warning, check
    AuditTrail(store, KEY).append("dsr-2", "received")
    check = verify(store, KEY)
    assert (check.valid, check.warning, check.events) == (True, "", 3)

    files = _files(tmp_path)
    _fill(files, 2)
    (tmp_path / "trail" / "HEAD.json").unlink()
    check = verify(files.store, KEY)
    assert check.valid and "no sealed head" in check.warning


def test_wrong_key_fails_at_the_first_event(trail: Tamper) -> None:
    _fill(trail, 2)
    check = verify(trail.store, b"another-key-0123456789abcdef")
    assert (check.valid, check.position) == (False, 0)


def test_racing_appends_keep_one_chain(trail: Tamper) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        audit = AuditTrail(trail.store, KEY)
        try:
            for i in range(8):
                audit.append(f"dsr-{name}", "received", {"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = trail.rows()
    assert sorted(r["seq"] for r in rows) == list(range(16))
    assert sorted((r["request_id"], r["details"]["i"]) for r in rows) == sorted(
        (f"dsr-{n}", i) for n in "ab" for i in range(8))
    assert verify(trail.store, KEY).valid


def test_short_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        AuditTrail(ObjectAuditStore(str(tmp_path)), b"short")
