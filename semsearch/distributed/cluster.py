"""Reaching Ray: importing it (an optional extra), joining a cluster at an address
or starting a local one, and keeping Ray's own notes off the user's terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from semsearch.errors import ConfigError, MissingExtraError, SemsearchError, install_line
from semsearch.quiet import silenced

log = logging.getLogger("semsearch")

CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before giving up


def import_ray() -> Any:
    """The ray module, or the pip line that installs it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            f"the ray engine needs Ray, which is not installed: {install_line('ray')}"
        ) from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide to encode: `address` None starts a local Ray on this
    machine's cores (or joins RAY_ADDRESS when that is set)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError("workers must be at least 1", setting="workers")
        if self.gpus_per_worker < 0:
            raise ConfigError("gpus per worker cannot be negative", setting="gpus_per_worker")


def _unreachable(address: str, reason: object) -> ConfigError:
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    if text.startswith("Failed to connect to Ray cluster"):  # Ray's words add nothing
        text = f"no Ray cluster answered there within {CONNECT_TIMEOUT:g} seconds"
    return ConfigError(f"cannot reach the Ray cluster at {address}: {text}", setting="address")


TOKEN_HELP = (
    "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or the file "
    "~/.ray/auth_token; `ray get-auth-token` prints it on the head node)"
)


def _token_problem(address: str | None, exc: BaseException) -> ConfigError | None:
    """A cluster with token authentication (a head node started by Ray 2.60 has it on)
    that refused this process, as one line naming what to set; None for other
    failures. Ray says it in an AuthenticationError a few causes deep (also where
    RAY_AUTH_MODE=token is set and no token is found)."""
    where = f"the Ray cluster at {address}" if address else "the Ray cluster"
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        text = str(seen)
        if type(seen).__name__ == "AuthenticationError" or "InvalidAuthToken" in text:
            if "no authentication token was found" in text:
                return ConfigError(
                    f"RAY_AUTH_MODE=token is set but no token was found for {where}: {TOKEN_HELP}",
                    setting="address",
                )
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                return ConfigError(
                    f"{where} uses token authentication: {TOKEN_HELP}", setting="address"
                )
            return ConfigError(
                f"{where} refused this process's token: give the cluster's own; {TOKEN_HELP}",
                setting="address",
            )
        seen = seen.__cause__ or seen.__context__
    return None


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""A gRPC client's first bytes (the HTTP/2 preface and an empty SETTINGS frame)."""


def probe(address: str) -> None:
    """Fail in seconds where a HOST:PORT or ray://HOST:PORT address does not answer as
    a gRPC server (Ray's GCS and Ray Client both do); ray.init would retry for minutes.

    A gRPC server answers the HTTP/2 preface with a SETTINGS frame at once."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"bad Ray address {address!r}: give auto, HOST:PORT or ray://HOST:PORT",
            setting="address",
        )
    try:
        connection = socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT)
    except OSError as exc:
        raise _unreachable(address, exc.strerror or exc) from None
    with connection:
        try:
            connection.sendall(HTTP2_PREFACE)
            header = connection.recv(9)  # length (3 bytes), type, flags, stream (4)
        except OSError:
            header = b""
    if len(header) < 4 or header[3] != 4:  # 4: SETTINGS
        raise _unreachable(address, "Failed to connect to Ray cluster")


def _quiet_environment() -> None:
    """Keep Ray's own notes off the user's terminal: semsearch reports what matters."""
    for name, value in {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DEDUP_LOGS": "0",
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    }.items():
        os.environ.setdefault(name, value)


def _route_ray_notes() -> None:
    """Ray's driver prints the errors its raylets publish (a worker died, a task is
    retried) with tracebacks on stdout, where `--json` writes; make each one line on
    the `semsearch` logger instead. (A private function of Ray's: left alone where it
    is missing.)"""
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return
    if not hasattr(ray_worker, "print_to_stdstream"):
        return

    def note(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        for message in data.get("lines", []):
            first = str(message).strip().splitlines()[0] if str(message).strip() else ""
            if first:
                log.warning("Ray: %s", first.split(" Error:")[0])

    ray_worker.print_to_stdstream = note


@contextlib.contextmanager
def connected(ray: Any, settings: RaySettings) -> Iterator[None]:
    """Ray for the block: the one this process already runs, the cluster at the
    address, or a local one (shut down when the block ends)."""
    if ray.is_initialized():
        yield
        return
    _quiet_environment()
    address = settings.address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            probe(address)
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(int(CONNECT_TIMEOUT)))
            with silenced(2):  # Ray's core logs each failed try there
                ray.init(address=address, **quiet)
        else:
            from semsearch.encoders.runners import available_cores

            with silenced(2):
                ray.init(num_cpus=available_cores(), include_dashboard=False, **quiet)
    except SemsearchError:
        raise
    except Exception as exc:  # ConnectionError, Ray Client's ImportError, ...
        refused = _token_problem(address, exc)
        if refused is not None:
            raise refused from None
        raise _unreachable(address or "a new local Ray", exc) from None
    _route_ray_notes()
    try:
        yield
    finally:
        ray.shutdown()
