"""Typed errors. Each carries a message a user can act on; the CLI and HTTP edges
turn them into one line on stderr or a JSON error body."""

from __future__ import annotations


class SemsearchError(Exception):
    """Base class: anything semsearch raises on purpose."""


class ConfigError(SemsearchError):
    """A setting is unknown, malformed or out of range."""


class ModelNotFoundError(SemsearchError):
    """A model name resolves to no local folder, packaged model or reachable hub copy."""


class InputError(SemsearchError):
    """Texts or files given to semsearch cannot be used as they are."""


class IndexFolderError(SemsearchError):
    """An index folder is missing, corrupt, or from an incompatible version."""


class EncoderMismatchError(SemsearchError):
    """A query encoder differs from the one that built the index."""
