"""Issue 24 item 13: idle slow-header sockets no longer deny service. They used to count
towards uvicorn's concurrency limit, so while they were held normal requests got 503.
Here more idle sockets than the whole limit are held open on loopback while normal
clients ask: every one is answered, and the idle sockets past their own budget are
closed with 408, oldest first. Bounded: 127.0.0.1 only, a few dozen sockets."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.service.config import ServeConfig
from semsearch.service.server import build_service, serve_in_thread

LIMIT = 16
IDLE = 40  # more than the limit: before the fix every normal request got 503


@pytest.fixture(scope="module")
def index(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("idle")
    (folder / "faq.csv").write_text("id,question,answer\na,How do I log in?,Email.\n")
    done = CliRunner().invoke(
        app,
        ["index", str(folder / "faq.csv"), "-o", str(folder / "idx"), "--model",
         str(tiny_sbert), "--quiet"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return folder / "idx"


def _slow_header(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    return sock


def test_normal_clients_are_served_while_idle_sockets_are_held(index: Path) -> None:
    config = ServeConfig(port=0, max_connections=LIMIT, header_timeout=30.0)
    with serve_in_thread(build_service(index, config), config) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        held = [_slow_header(host, int(port)) for _ in range(IDLE)]
        try:
            statuses = []
            for _ in range(30):
                client = http.client.HTTPConnection(host, int(port), timeout=10)
                client.request("GET", "/health")
                statuses.append(client.getresponse().status)
                client.close()
            assert statuses == [200] * 30
            evicted = 0
            for sock in held[: IDLE - LIMIT]:  # the oldest: past the idle budget
                sock.settimeout(10)
                answer = sock.recv(200)
                evicted += answer.startswith(b"HTTP/1.1 408")
            assert evicted == IDLE - LIMIT
        finally:
            for sock in held:
                sock.close()
