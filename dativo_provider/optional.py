"""Gateway for optional heavy libraries: import them late, fail with the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from dativo_provider.exceptions import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name.split(".")[0]):
            raise MissingExtraError(module, extra) from exc
        raise
