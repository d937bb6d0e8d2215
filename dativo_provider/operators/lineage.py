"""OpenLineage for every operator: the provider's ``get_openlineage_facets_on_start/complete/failure``.

An operator inherits :class:`OpenLineageFacets`; the OpenLineage provider finds the three methods by
duck typing and calls them in the process its listener forks from the task's. Each method hands the
task to its builder in :mod:`dativo_provider.operators.lineage_events` (by class name), which builds
the datasets and facets from :mod:`dativo_provider.operators.lineage_facets`:

* Iceberg tables are named as the OpenLineage Spark integration names them
  (:mod:`dativo_provider.lineage.openlineage_names`): the physical location, a ``TABLE`` symlink with the
  catalog URI and ``namespace.table``, a catalog facet, the snapshot id as dataset version; plus the
  schema and storage facets, and the contract's owner, description and classification tags.
* Outputs carry column lineage (:mod:`dativo_provider.lineage.column_lineage`) and statistics; a
  contract run's checks and a drift check's tests become ``dataQualityAssertions`` and
  ``dataQualityMetrics``.
* What an operation did beyond datasets (rows erased, snapshots expired...) goes in the run facet
  ``dativo``: counts only. Data-subject requests never put an identifier in an event.

Lineage never fails a task: a problem is logged as a warning and the event goes out without our
facets. Nothing here is imported at DAG-parse time but this small module.
"""

from __future__ import annotations

from typing import Any


class OpenLineageFacets:
    """The OpenLineage provider's three methods for an operator whose builder is in
    :mod:`dativo_provider.operators.lineage_events` (found by class name); a result the operator keeps
    in ``execute`` feeds complete and failure events."""

    def get_openlineage_facets_on_start(self) -> Any:
        """What the task's arguments name: the tables it will read and write, before it runs."""
        from dativo_provider.operators.lineage_events import START, lineage_for

        return lineage_for(self, START)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What the run read and wrote, at the snapshots involved, with its facets."""
        from dativo_provider.operators.lineage_events import COMPLETE, lineage_for

        return lineage_for(self, COMPLETE)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """What the run had done before it failed (a failed contract check still reports its checks)."""
        from dativo_provider.operators.lineage_events import FAILURE, lineage_for

        return lineage_for(self, FAILURE)
