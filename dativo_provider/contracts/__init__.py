"""Data contracts: ODCS v3 YAML files, loaded and linted.

Files are read by the bounded loader in ``dativo_provider.safe_yaml``; compiling and running the rules
lives in ``dativo_provider.quality``. See ``docs/contracts.md``.

This package imports neither Airflow nor a quality engine.
"""

from dativo_provider.contracts.loader import ContractError, LintIssue, lint, load_contract
from dativo_provider.contracts.model import Contract

__all__ = ["Contract", "ContractError", "LintIssue", "lint", "load_contract"]
