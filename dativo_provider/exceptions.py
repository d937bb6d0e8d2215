"""One exception root for the project.

``TerminalError`` means "retrying will not help, fix the input"; ``TransientError`` means "try again".
The Airflow layer maps terminal errors to a failed task that skips its retries.
"""

from __future__ import annotations


class DativoError(Exception):
    """Root of every error this package raises on purpose."""

    retryable = False


class TerminalError(DativoError):
    """Bad configuration or bad data: retrying the same input fails the same way."""


class TransientError(DativoError):
    """A passing condition (network, lock, concurrent commit): a retry may succeed."""

    retryable = True


class ConfigError(TerminalError):
    """A parameter, spec or connection field is wrong. The message names it."""


class SourceError(TerminalError):
    """The source cannot be read as asked (missing table, bad credentials, malformed row)."""


class SchemaDriftError(TerminalError):
    """The source schema differs from the table schema in a way the schema policy forbids."""


class UnsupportedTypeError(TerminalError):
    """A source column has a type that cannot be stored in Iceberg without loss."""


class CommitConflictError(TransientError):
    """Concurrent writers kept winning the commit race after every retry."""


class ConcurrentRunError(TerminalError):
    """Another run of the same source committed while this one was writing: its rows would duplicate."""


class MissingExtraError(ImportError, TerminalError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module!r} is not installed. Install it with: pip install 'dativo-airflow-provider[{extra}]'"
        )
        self.module = module
        self.extra = extra


def redact(message: str, secrets: tuple[str | None, ...]) -> str:
    """Replace every non-empty secret in ``message`` with ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


class ContractViolationError(TerminalError):
    """The data breaks its contract and the contract says block: nothing was published."""
