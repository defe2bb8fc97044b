"""Optional dependencies of `semsearch eval`, imported on use with a one-line fix when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from semsearch.errors import MissingExtraError, install_line

INSTALL = install_line("eval")
_PACKAGES = {"sklearn": "scikit-learn", "matplotlib": "matplotlib", "scipy": "scipy"}


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise one clear line naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = _PACKAGES.get(module.split(".")[0], module)
        raise MissingExtraError(
            f"{purpose} needs {package}, which is not installed: {INSTALL}"
        ) from None
