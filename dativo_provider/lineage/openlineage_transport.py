"""An OpenLineage transport that keeps a run's request data out of every event it forwards.

Airflow's OpenLineage provider copies the DAG run's ``conf`` into the ``airflow`` and ``airflowDagRun``
run facets of every task and DAG event. A data-subject request DAG (``example_dsr``) receives the
subject's identifiers as run conf (``subject_ids``, ``emails``), so those events would carry them to
the lineage backend. Wrap the real transport in this one and the named conf keys are replaced by
``***`` before any event leaves the process, whichever process emits it (task, scheduler, triggerer)::

    [openlineage]
    transport = {"type": "dativo_provider.lineage.openlineage_transport.RunConfRedactingTransport",
                 "transport": {"type": "http", "url": "https://openmetadata.example.org", ...}}

``keys`` (default :data:`REQUEST_IDENTIFIER_KEYS`) lists the conf keys to hide. Airflow's own masking
(``[core] sensitive_var_conn_names``) reaches only some of these events (the DAG's, not the tasks' on
Airflow 3), hence a transport. Our operators' own facets never carry identifiers in the first place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attr
from openlineage.client.transport.transport import Config, Transport

#: The run conf keys of a data-subject request that identify the subject.
REQUEST_IDENTIFIER_KEYS = ("subject_ids", "emails")
MASK = "***"


@attr.define
class RunConfRedactingConfig(Config):
    """The wrapped transport's configuration and the conf keys to hide."""

    transport: dict[str, Any] = attr.field(factory=dict)
    keys: list[str] = attr.field(factory=lambda: list(REQUEST_IDENTIFIER_KEYS))

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> RunConfRedactingConfig:
        if not isinstance(params.get("transport"), Mapping) or not params["transport"].get("type"):
            raise ValueError(
                "RunConfRedactingTransport needs 'transport': the configuration of the transport "
                'it wraps, e.g. {"type": "http", "url": ...}'
            )
        keys = params.get("keys") or REQUEST_IDENTIFIER_KEYS
        return cls(transport=dict(params["transport"]), keys=[str(key) for key in keys])


class RunConfRedactingTransport(Transport):
    """Hides request identifiers in the run conf copied into events, then hands them on."""

    kind = "dativo_run_conf_redacting"
    config_class = RunConfRedactingConfig

    def __init__(self, config: RunConfRedactingConfig) -> None:
        from openlineage.client.transport import get_default_factory

        self.config = config
        self.inner = get_default_factory().create(dict(config.transport))

    def emit(self, event: Any) -> Any:
        run = getattr(event, "run", None)
        for facet in (getattr(run, "facets", None) or {}).values():
            redact_run_conf(facet, self.config.keys)
        return self.inner.emit(event)

    def close(self, timeout: float = -1) -> bool:
        return self.inner.close(timeout)


def redact_run_conf(facet: Any, keys: Sequence[str]) -> None:
    """Replace the values of ``keys`` in a run facet's ``dagRun["conf"]`` (the provider's shape) by
    ``***``."""
    dag_run = facet.get("dagRun") if isinstance(facet, dict) else getattr(facet, "dagRun", None)
    if not isinstance(dag_run, dict) or not isinstance(dag_run.get("conf"), dict):
        return
    dag_run["conf"] = {key: (MASK if key in keys else value) for key, value in dag_run["conf"].items()}
