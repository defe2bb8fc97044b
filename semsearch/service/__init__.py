"""The HTTP service behind `semsearch serve`: FastAPI on uvicorn, an optional extra.

Importing this package needs nothing beyond semsearch itself, so the CLI can check for
the extra (`require_serve_extra`) and print the `pip install` line instead of a
traceback; `semsearch.service.app` and `semsearch.service.server` need FastAPI.
"""

from __future__ import annotations

import importlib

from semsearch.errors import MissingExtraError, install_line

__all__ = ["INSTALL_HINT", "MissingExtraError", "require_serve_extra"]

INSTALL_HINT = install_line("serve")


def require_serve_extra() -> None:
    """Refuse early, in one line, when FastAPI or uvicorn is missing."""
    missing = []
    for name in ("fastapi", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(
            f"`semsearch serve` needs {' and '.join(missing)}: run {INSTALL_HINT}"
        )
