"""Data contracts: ODCS v3 YAML files, loaded and linted.

Status: format and lint only. Compiling contracts to Soda and Great Expectations, running them and
enforcing them on ingest (write-audit-publish, quarantine) come next. See ``docs/contracts.md``.

This package imports neither Airflow nor a quality engine.
"""

from dativo_provider.contracts.loader import ContractError, LintIssue, lint, load_contract
from dativo_provider.contracts.model import Contract

__all__ = ["Contract", "ContractError", "LintIssue", "lint", "load_contract"]
