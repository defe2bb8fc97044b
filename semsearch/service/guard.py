"""What uvicorn lacks at the edge: a deadline and a size cap for request headers, and an
access log that keeps query strings (and so any key a client put there) out.

uvicorn closes idle keep-alive connections and answers 503 past `limit_concurrency`,
but a client that connects and then sends nothing, or one header line now and then, is
kept forever (the "slowloris" attack: a few hundred such connections use up the
server's file descriptors), and the httptools parser has no cap on the size of the
headers. `guarded_protocol` subclasses the HTTP protocol uvicorn would pick (httptools
or h11) with a timer: from the moment a connection opens, or the first byte of a further
request on it arrives, the request's headers must be complete within `header_timeout`
seconds and `max_header_bytes` bytes; otherwise the client gets 408 (or 431) and the
connection is closed. The body has its own deadline in the app (see `BodyLimit`).

`RedactQuery` blanks the values of query strings in uvicorn's access log: the API takes
no query parameters, but a client may still send `?api_key=...`, and a log is read by
more people than a key should be.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("semsearch.service")


def _raw_response(status: int, reason: str, text: str) -> bytes:
    """A complete response written past the protocol's parser, for a connection about to
    be closed before any request on it could be read."""
    body = text.encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def guarded_protocol(
    header_timeout: float, max_header_bytes: int, max_idle: int = 512
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class with a header deadline and a header size cap, and
    idle connections kept apart from the concurrency limit.

    uvicorn answers 503 once `limit_concurrency` connections are open, counting those
    that have sent no request yet: 600 slow-header sockets made a third of normal
    requests fail. Here a connection counts towards that limit only while its bytes may
    complete a request's headers and until its response is complete; between requests
    it is idle, in a budget of its own (`max_idle`), and when that budget is full the
    connection idle the longest is closed with 408 to make room (a cheap socket is
    evicted, never a request being answered)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol
    idle: dict[Any, None] = {}  # connections awaiting a request's headers, oldest first

    class GuardedProtocol(base):
        _timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()
            self._idle()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            idle.pop(self, None)
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self._between_requests():
                self._idle()

        def _idle(self) -> None:
            """Out of the concurrency count, into the idle budget (evicting the oldest)."""
            self.connections.discard(self)
            idle.setdefault(self, None)
            while len(idle) > max_idle:
                oldest = next(iter(idle))
                idle.pop(oldest)
                oldest._refuse(408, "Request Timeout", "idle too long while the server is busy")

        def data_received(self, data: bytes) -> None:
            if idle.pop(self, 0) is None:  # counted while these bytes may start a request
                self.connections.add(self)
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self._between_requests():
                self._arm()
                self._idle()  # still no complete headers
                if self._awaiting_headers():
                    self._header_bytes += len(data)
                    if self._header_bytes > max_header_bytes:
                        self._refuse(431, "Request Header Fields Too Large", "headers too large")
            else:  # the headers are in: the app (and its body deadline) takes over
                self._disarm()
                self._header_bytes = 0

        def _between_requests(self) -> bool:
            """No request is being answered: any bytes now belong to the next one (or
            to the rest of a body the app did not read)."""
            return self.cycle is None or bool(self.cycle.response_complete)

        def _awaiting_headers(self) -> bool:
            return self.cycle is None or not self.cycle.more_body

        def _arm(self) -> None:
            if self._timer is None:
                self._timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self) -> None:
            self._timer = None
            if not self.transport.is_closing() and self._between_requests():
                log.debug("semsearch: closing a connection: no complete request headers in time")
                self._refuse(408, "Request Timeout", "request headers not received in time")

        def _refuse(self, status: int, reason: str, text: str) -> None:
            if self._awaiting_headers():
                self.transport.write(_raw_response(status, reason, text + "\n"))
            self._disarm()
            self.transport.close()

    return GuardedProtocol


REDACTED = "<redacted>"


def redact_query(target: str) -> str:
    """`path?a=1&b` -> `path?a=<redacted>&<redacted>`: names stay, values go."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    parts = (
        p.split("=", 1)[0] + "=" + REDACTED if "=" in p else REDACTED for p in query.split("&")
    )
    return f"{path}?{'&'.join(parts)}"


class RedactQuery(logging.Filter):
    """For uvicorn's access logger: its records carry (client, method, path?query, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    """Add `RedactQuery` to uvicorn's access logger, once (after uvicorn set up logging)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in logger.filters):
        logger.addFilter(RedactQuery())
