"""Assemble and run the service: open the index, load its encoder once, bind, serve.

Binding happens here, before uvicorn starts, so a busy port is one clear error and
`--port 0` works (the chosen port is printed). uvicorn handles SIGTERM/SIGINT: it stops
accepting, lets in-flight requests finish, then the app's lifespan stops the reload
poller and the encoder thread.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semsearch.config import SearchConfig
from semsearch.errors import ConfigError
from semsearch.params import shown_threshold
from semsearch.service.config import ServeConfig

log = logging.getLogger("semsearch.service")

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from semsearch.service.batcher import MicroBatcher
    from semsearch.service.live import LiveIndex


@dataclass
class Service:
    """The pieces of one running service, for tests and the benchmark."""

    app: FastAPI
    live: LiveIndex
    batcher: MicroBatcher


def build_service(
    index_path: str | Path,
    config: ServeConfig | None = None,
    search: SearchConfig | None = None,
    *,
    device: str = "auto",
    encoder: Any = None,
) -> Service:
    """Open the index and its encoder (from the manifest unless one is given)."""
    from semsearch.encoders.runners import available_cores
    from semsearch.search.engine import SearchEngine
    from semsearch.service.app import create_app
    from semsearch.service.batcher import MicroBatcher
    from semsearch.service.jobs import QuietEncoder, processor
    from semsearch.service.live import LiveIndex

    config = config or ServeConfig()
    workers = config.workers or available_cores()
    # each batch worker encodes on its share of the cores
    overrides = {"threads": max(1, available_cores() // workers)}
    engine = SearchEngine.open(index_path, encoder=encoder, device=device, overrides=overrides)
    try:
        live = LiveIndex(
            index_path,
            QuietEncoder(engine.encoder),
            search,
            interval=config.reload_interval,
            store=engine.store,
        )
    except BaseException:
        engine.store.close()
        raise
    batcher: MicroBatcher = MicroBatcher(
        processor(live),
        enabled=config.batching,
        wait_ms=config.batch_wait_ms,
        max_batch=config.max_batch,
        max_cost=config.max_batch_tokens,
        workers=workers,
        piece_share=config.piece_share,
    )
    return Service(create_app(live, batcher, config), live, batcher)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket, or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another port or host",
            setting="port",
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_server(app: FastAPI, config: ServeConfig, log_level: str = "info") -> uvicorn.Server:
    """uvicorn with the [serve] limits: keep-alive, concurrency, header deadline and size
    (the body's deadline and size are the app's), and no query values in the access log."""
    import uvicorn

    from semsearch.service.guard import guarded_protocol, redact_access_log

    settings = uvicorn.Config(
        app,
        http=guarded_protocol(
            config.header_timeout, config.max_header_bytes, max_idle=config.max_connections
        ),
        log_level=log_level,
        access_log=config.access_log,
        timeout_graceful_shutdown=int(max(1, config.graceful_timeout)),
        timeout_keep_alive=config.keep_alive_timeout,
        limit_concurrency=config.max_connections,
        h11_max_incomplete_event_size=config.max_header_bytes,
        server_header=False,
        proxy_headers=False,
    )
    redact_access_log()  # uvicorn.Config has just (re)configured its loggers
    return uvicorn.Server(settings)


def _log_to_stderr() -> None:
    """Reload and error notes go to stderr next to uvicorn's lines."""
    logger = logging.getLogger("semsearch.service")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@contextlib.contextmanager
def _quiet_signals() -> Iterator[None]:
    """uvicorn re-raises the signal it shut down on; by then the work is done, so let it
    land on a no-op and exit 0 instead of dying by SIGTERM or KeyboardInterrupt."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, lambda *_: None)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def serve(service: Service, config: ServeConfig, log_level: str = "info") -> None:
    """Bind, listen, announce the URL on stderr, and serve until SIGTERM or Ctrl-C.

    The socket listens before the URL is announced, so a client that connects as soon as
    it reads the line waits in the backlog instead of being refused."""
    sock = bind(config.host, config.port)
    sock.listen(2048)  # uvicorn's own default backlog
    url = url_of(sock)
    with service.live.engine() as engine:  # the threshold in force, as every face says it
        threshold = engine.threshold()
    notes = [f"threshold {shown_threshold(threshold)}"]
    notes.append("API key required" if config.api_key else "no API key")
    notes.append("micro-batching on" if config.batching else "micro-batching off")
    notes.append(f"{service.batcher.workers} worker(s)")
    _log_to_stderr()
    log.info(
        "semsearch: serving %s (%d entries) at %s (%s); search page %s/, API docs %s/docs",
        service.live.path,
        service.live.count,
        url,
        ", ".join(notes),
        url,
        url,
    )
    if not config.api_key and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "semsearch: warning: listening on %s without an API key: anyone who can reach "
            "this port can query the index (set an API key, or SEMSEARCH_API_KEY)",
            config.host,
        )
    server = uvicorn_server(service.app, config, log_level)
    with _quiet_signals():
        server.run(sockets=[sock])
    log.info("semsearch: stopped after %s", service.batcher.stats.summary())


@contextlib.contextmanager
def serve_in_thread(
    service: Service,
    config: ServeConfig | None = None,
    *,
    log_level: str = "warning",
    startup_timeout: float = 60.0,
) -> Iterator[str]:
    """Run the service on a free loopback port in a background thread; yields its URL.

    For tests and embedding: leaving the block shuts it down gracefully (in-flight
    requests finish), as SIGTERM would."""
    config = config or ServeConfig()
    sock = bind(config.host, config.port)
    server = uvicorn_server(service.app, config, log_level)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="semsearch-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the semsearch test server did not start")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=config.graceful_timeout + 10)
