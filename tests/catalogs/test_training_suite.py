"""Training sets on every catalog kind: the inputs are pinned as ``dativo-training/...`` branches, the set
reproduced after later commits and a maintenance run equals the original, and after a data-subject
erasure (delete on every branch head, purge) the pins are rewritten: the reproduced set is the original
minus the subject, and no stored file of the namespace holds the subject's id any more."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
from pyiceberg.expressions import EqualTo

from dativo_provider.iceberg.maintenance import maintain_table
from dativo_provider.ingest.engine import run_ingest
from dativo_provider.ingest.options import WriteOptions
from dativo_provider.ml.training_manifest import ContentHash
from dativo_provider.ml.training_reproduce import reproduce_training_set
from dativo_provider.ml.training_set import FeatureTable, LabelTable, build_training_set, pin_name
from dativo_provider.privacy.erase import delete_rows
from dativo_provider.privacy.purge import purge_table
from tests.catalogs.storage import namespace_copy
from tests.memory_source import TableSource
from tests.ml.test_training_set import CONTRACT, LABEL_SCHEMA, ORDER_SCHEMA, SEGMENT_SCHEMA, at, sample
from tests.privacy.decoded import occurrences

SUBJECT = 7
INPUTS = ("labels", "customer_features", "segments")
SCHEMAS = {"labels": LABEL_SCHEMA, "customer_features": ORDER_SCHEMA, "segments": SEGMENT_SCHEMA}
DATA_KEYS = {"labels": "labels", "customer_features": "orders", "segments": "segments"}


def load(lake, data: dict[str, list[dict]], round_: int = 0) -> None:
    for table, key in DATA_KEYS.items():
        rows = pa.Table.from_pylist(data[key], SCHEMAS[table])
        run_ingest(TableSource(rows, identity=f"memory://{table}/{round_}"), lake.config, lake.table(table),
                   WriteOptions(mode="append"))


def later_commits(lake) -> None:
    for round_ in range(1, 3):
        load(lake, {
            "labels": [{"customer_id": 5, "event_ts": at(40 + round_), "churned": True}],
            "orders": [{"customer_id": 5, "feature_ts": at(2 + round_ / 10), "orders_30d": 100 + round_,
                        "spend_30d": 1.0, "days_since_last_order": 0}],
            "segments": [{"customer_id": 5, "segment_ts": at(round_ / 10), "segment": "late"}],
        }, round_)


def build(lake):
    features = [FeatureTable.from_contract(str(CONTRACT), table=lake.table("customer_features")),
                FeatureTable(lake.table("segments"), ("customer_id",), "segment_ts", ("segment",))]
    labels = LabelTable(lake.table("labels"), ("customer_id",), "event_ts")
    return build_training_set(lake.config, "churn", labels, features,
                              output_table=lake.table("churn_training"),
                              manifest_path=str(lake.workdir / "churn.json"), run_id="run-1")


def test_a_pinned_training_set_is_reproduced_and_an_erasure_rewrites_its_pins(lake):
    load(lake, sample())
    result = build(lake)
    original = lake.load().load_table(lake.table("churn_training")).scan().to_arrow().to_pylist()
    assert result.manifest.row_count == len(original) == 65
    catalog = lake.load()
    pin = pin_name("churn", "run-1")
    for pinned in result.manifest.inputs:
        ref = catalog.load_table(pinned.table).metadata.refs[pin]
        assert (ref.snapshot_ref_type.value, ref.snapshot_id) == ("branch", pinned.snapshot_id)

    later_commits(lake)
    for table in INPUTS:  # maintenance expires everything else; the pinned snapshots stay
        maintain_table(lake.config, lake.table(table), expire_older_than=None, retain_last=1,
                       orphan_safety_window=timedelta(0), now=datetime.now(timezone.utc) + timedelta(days=1))
    # The manifest records the catalog without its secrets: the REST catalog's credential is given here.
    rebuilt = reproduce_training_set(result.manifest_path, lake.config)
    assert (rebuilt.status, rebuilt.row_count) == ("identical", 65)
    assert rebuilt.content_hash == result.manifest.content_hash

    for table in (*INPUTS, "churn_training"):
        delete_rows(lake.config, lake.table(table), EqualTo("customer_id", SUBJECT), request_id="req-7")
        purge_table(lake.config, lake.table(table), subject=EqualTo("customer_id", SUBJECT),
                    request_id="req-7", safety_window=timedelta(0))

    erased = reproduce_training_set(result.manifest_path, lake.config)
    kept = [r for r in original if r["customer_id"] != SUBJECT]
    expected = ContentHash(result.manifest.columns)
    expected.add(pa.Table.from_pylist(kept))
    assert (erased.status, erased.rows_removed) == ("erased", len(original) - len(kept))
    assert erased.rows_removed == 3
    assert erased.content_hash == expected.hexdigest
    assert erased.erasures == {lake.table(t): ["req-7"] for t in INPUTS}
    catalog = lake.load()
    for pinned in result.manifest.inputs:  # each pin moved to its erasure commit; the old snapshot is gone
        table = catalog.load_table(pinned.table)
        assert table.metadata.snapshot_by_id(pinned.snapshot_id) is None
        head = table.metadata.refs[pin].snapshot_id
        assert SUBJECT not in table.scan(snapshot_id=head).to_arrow()["customer_id"].to_pylist()
    assert occurrences(namespace_copy(lake, lake.workdir / "stored"), emails=[], ids=[SUBJECT]) == []
