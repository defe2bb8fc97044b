"""Typed errors. Each carries a message a user can act on; the CLI and HTTP edges
turn them into one line on stderr or a JSON error body."""

from __future__ import annotations

from typing import Any


class SemsearchError(Exception):
    """Base class: anything semsearch raises on purpose.

    `setting` names the setting at fault (`layers`, `k`, ...) in the library's words; the
    CLI and HTTP edges tell their users which option or field sets it."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class ConfigError(SemsearchError):
    """A setting is unknown, malformed or out of range."""


class ModelNotFoundError(SemsearchError):
    """A model name resolves to no local folder, packaged model or reachable hub copy."""


class InputError(SemsearchError):
    """Texts or files given to semsearch cannot be used as they are."""


class FilterError(InputError):
    """A `where` filter cannot be used: a syntax error (its message names the position),
    an unknown field or a value of the wrong kind (it names the field and the fields
    there are), or an index built before filters. HTTP answers 422 with the message."""


class IndexFolderError(SemsearchError):
    """An index folder is missing, corrupt, or from an incompatible version."""


class EncoderMismatchError(SemsearchError):
    """A query encoder differs from the one that built the index."""


def install_line(extra: str) -> str:
    """The exact command that installs one of semsearch's optional extras."""
    return f"pip install 'semsearch[{extra}]'"


class MissingExtraError(SemsearchError):
    """An optional package is not installed; the message names it and ends with the exact
    `pip install` line that adds it (see `install_line`)."""


# -- the HTTP service ------------------------------------------------------------------


class BatcherStoppedError(SemsearchError):
    """The server is shutting down; the job was not run (HTTP 503 with Retry-After)."""


# -- the Python client (semsearch.client) ----------------------------------------------


class ServiceError(SemsearchError):
    """The server answered with an error; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class ServiceUnavailableError(ServiceError):
    """No answer: the server is down, unreachable, timed out, or shutting down (503)."""


class AuthenticationError(ServiceError):
    """401: the server needs an API key, or refused the one given."""


class RequestRejectedError(ServiceError):
    """422 (a field is invalid; `fields` names them) or 413 (the body is too large)."""

    @property
    def fields(self) -> list[str]:
        return [str(e.get("field")) for e in self.body.get("errors") or []]


class ServerError(ServiceError):
    """5xx: the server failed on a valid request."""
