"""RunConfRedactingTransport: request identifiers in the run conf the Airflow provider copies into events
are hidden before the wrapped transport writes them; everything else passes unchanged."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openlineage.client")


def test_identifiers_in_the_run_conf_never_reach_the_wrapped_transport(tmp_path):
    import attr
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class AirflowLikeRunFacet(RunFacet):  # the provider's AirflowRunFacet: the DAG run as a dict
        dagRun: dict

    out = tmp_path / "events.jsonl"
    client = OpenLineageClient(
        config={
            "transport": {
                "type": "dativo_provider.lineage.openlineage_transport.RunConfRedactingTransport",
                "transport": {"type": "file", "log_file_path": str(out), "append": True},
            }
        }
    )
    conf = {"request_id": "dsr-1", "kind": "erasure", "subject_ids": ["87"], "emails": ["zoe@example.net"]}
    airflow_facet = AirflowLikeRunFacet(dagRun={"dag_id": "example_dsr", "conf": conf})
    client.emit(
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime="2024-01-01T00:00:00Z",
            run=Run(runId="01941f29-7c00-7087-8d4a-7b5f1a3b2c11", facets={"airflow": airflow_facet}),
            job=Job(namespace="airflow", name="example_dsr.erase"),
        )
    )
    (event,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert event["run"]["facets"]["airflow"]["dagRun"]["conf"] == {
        "request_id": "dsr-1",
        "kind": "erasure",
        "subject_ids": "***",
        "emails": "***",
    }
    assert "zoe@example.net" not in out.read_text()


def test_the_wrapped_transport_is_required():
    from dativo_provider.lineage.openlineage_transport import RunConfRedactingConfig

    with pytest.raises(ValueError, match="needs 'transport'"):
        RunConfRedactingConfig.from_dict({"type": "x"})
