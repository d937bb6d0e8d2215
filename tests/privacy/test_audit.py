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
from dativo_provider.privacy.audit import (
    GENESIS,
    AuditTrail,
    IcebergAuditStore,
    ObjectAuditStore,
    event_hash,
    subject_hash,
    verify,
)
from dativo_provider.privacy.certificate import canonical_json
from dativo_provider.privacy.request import SubjectRequest
from tests.s3_server import moto_server

KEY = b"audit-trail-test-key-0123456789ab"
EMAIL = "ann.unique-subject@example.com"
SUBJECT_ID = "cust-7f3a9c"


class Tamper:
    """Reads a store's raw events and rewrites them wholesale, as an attacker with write access could."""

    def __init__(self, store, rows, replace) -> None:
        self.store, self.rows, self.replace = store, rows, replace


def _iceberg(tmp_path: Path) -> Tamper:
    import pyarrow as pa

    store = IcebergAuditStore(embedded_catalog(tmp_path / "lake").load(), "dativo.dsr_audit")

    def rows() -> list[dict]:
        return [item.event for item in store.read()]

    def replace(events: list[dict]) -> None:
        table = store.catalog.load_table(store.identifier)
        data = [{**e, "at": datetime.fromisoformat(e["at"]), "details": json.dumps(e["details"])} for e in events]
        table.overwrite(pa.Table.from_pylist(data, schema=table.schema().as_arrow()))

    return Tamper(store, rows, replace)


def _files(tmp_path: Path) -> Tamper:
    root = tmp_path / "trail"
    store = ObjectAuditStore(str(root))

    def rows() -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]

    def replace(events: list[dict]) -> None:
        for path in root.glob("*.json"):
            path.unlink()
        for event in events:
            (root / f"{event['seq']:08d}.json").write_bytes(canonical_json(event))

    return Tamper(store, rows, replace)


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
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def rows() -> list[dict]:
        return [json.loads(client.get_object(Bucket="audit-bucket", Key=k)["Body"].read()) for k in keys()]

    def replace(events: list[dict]) -> None:
        for key in keys():
            client.delete_object(Bucket="audit-bucket", Key=key)
        for event in events:
            client.put_object(Bucket="audit-bucket", Key=f"{prefix}/{event['seq']:08d}.json",
                              Body=canonical_json(event))

    return Tamper(store, rows, replace)


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


def test_truncated_tail_needs_the_anchor_or_the_iceberg_head(trail: Tamper) -> None:
    events = _fill(trail)
    trail.replace(events[:-1])
    check = verify(trail.store, KEY, anchor=events[-1]["hash"])
    assert (check.valid, check.position) == (False, 4)
    if isinstance(trail.store, IcebergAuditStore):  # the snapshot summaries remember the head
        assert not verify(trail.store, KEY).valid
    else:
        assert verify(trail.store, KEY).valid


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
