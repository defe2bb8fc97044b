"""Issue 11, items 12, 14, 15: a big request does not stall small ones, slow or
oversized connections are cut off, and a key in the URL never reaches the log. Real
uvicorn servers on 127.0.0.1 with the tiny random BERT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from semsearch.config import SearchConfig
from semsearch.errors import ConfigError
from semsearch.service.batcher import MicroBatcher
from semsearch.service.config import ServeConfig
from semsearch.service.guard import redact_query
from semsearch.service.jobs import estimate_tokens, spans
from semsearch.service.server import build_service, serve_in_thread
from tests.service.test_server import KEY, ROOT, _announced_url, build_index, call, server

LONG = 2_000  # characters: past the tiny model's 64 word-pieces


@pytest.fixture(scope="module")
def index(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("hardening"), tiny_sbert)


# -- item 12: a big request goes in pieces, small ones answered between them ------------


def test_estimate_tokens_and_spans() -> None:
    assert estimate_tokens("How do I reset my password?", 256) == 2 + 7  # 27 bytes
    assert estimate_tokens("x" * 10_000, 256) == 256
    assert estimate_tokens("é" * 4, 256) == 2 + 2  # UTF-8 bytes, not characters
    assert spans([], 10, 5) == []
    assert spans([3, 3, 3], 10, 5) == [(0, 3)]  # all fit: one piece
    assert spans([4, 4, 4, 4], 10, 5) == [(0, 2), (2, 4)]
    assert spans([20, 1, 1], 10, 5) == [(0, 1), (1, 3)]  # an oversized text goes alone
    assert spans([1] * 7, 100, 3) == [(0, 3), (3, 6), (6, 7)]  # and at most max_texts


def test_micro_batcher_bounds_a_batch_by_cost() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def process(jobs: list[str]) -> list[str]:
        seen.append(list(jobs))
        gate.wait(10)
        return jobs

    batcher: MicroBatcher = MicroBatcher(process, max_batch=64, max_cost=10)
    batcher.start()
    try:
        first = batcher.submit("first", 1, cost=1)
        while not seen:
            time.sleep(0.01)
        futures = [batcher.submit(name, 1, cost=4) for name in "abcde"]
        gate.set()
        assert first.result(10) == "first" and [f.result(10) for f in futures] == list("abcde")
    finally:
        batcher.stop()
    assert seen == [["first"], ["a", "b"], ["c", "d"], ["e"]]  # 8 <= 10 < 12


class LongTextsAreSlow:
    """The tiny encoder, but a long text costs 20 ms, as a real model's 256 tokens cost
    tens of milliseconds; logs each call's longest text."""

    def __init__(self, encoder: Any) -> None:
        self.inner = encoder
        self.report_truncation = encoder.report_truncation = False
        self.calls: list[tuple[str, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Any, batch_size: Any = None, show_progress: Any = None) -> np.ndarray:
        long = sum(len(text) >= LONG for text in texts)
        self.calls.append(("long" if long else "short", time.monotonic()))
        time.sleep(0.02 * long)
        return self.inner.encode(texts, batch_size, show_progress)


def test_small_requests_are_answered_while_a_big_one_runs(index: Path, tiny_sbert: Path) -> None:
    from semsearch.encoders import load_encoder

    encoder = LongTextsAreSlow(load_encoder(model=str(tiny_sbert)))
    config = ServeConfig(port=0, max_batch_tokens=64)  # one long text (64 pieces) a batch
    service = build_service(index, config, SearchConfig(threshold="none"), encoder=encoder)
    rng = np.random.default_rng(0)
    words = ["password", "export", "offline", "sync", "price", "note", "account", "print"]
    texts = [" ".join(rng.choice(words, LONG // 6)) for _ in range(256)]
    big: list[Any] = []
    small_done: list[float] = []
    with serve_in_thread(service, config) as address:
        thread = threading.Thread(
            target=lambda: big.append(
                call(address, "POST", "/search", {"queries": texts, "k": config.max_k})
            )
        )
        thread.start()
        while not any(kind == "long" for kind, _ in encoder.calls):
            time.sleep(0.005)
        for question in ("I forgot my password", "export to PDF", "offline use"):
            status, answer, _ = call(address, "POST", "/search", {"query": question, "k": 2})
            assert status == 200 and len(answer["results"]) == 2
            small_done.append(time.monotonic())
        embedded = call(address, "POST", "/embed", {"texts": ["hello there"]})
        assert embedded[0] == 200
        small_still_running = thread.is_alive()
        thread.join(timeout=120)
        during = list(encoder.calls)
        singles = [
            call(address, "POST", "/search", {"query": texts[i], "k": config.max_k})[1]
            for i in (0, 255)
        ]
    assert big and big[0][0] == 200, big
    results = big[0][1]["results"]
    assert len(results) == 256 and all(results)
    assert results[0] == singles[0]["results"] and results[255] == singles[1]["results"]
    # every small request was answered while the big one was still being worked on
    assert small_still_running
    last_long = max(at for kind, at in during if kind == "long")
    assert all(done < last_long for done in small_done)
    kinds = [kind for kind, _ in during]
    assert kinds.count("long") == 256  # one piece per long text
    first_short = kinds.index("short")
    assert 0 < first_short < len(kinds) - 1 and "long" in kinds[first_short:]


def test_big_embed_in_pieces_keeps_the_order(index: Path) -> None:
    texts = [f"{word} " * 600 for word in ("password", "export", "offline")]
    with server(index, max_batch_tokens=8) as (address, service):
        before = service.batcher.stats.batches
        status, whole, _ = call(address, "POST", "/embed", {"texts": [*texts, "short"]})
        assert status == 200 and service.batcher.stats.batches - before == 4
        apart = [call(address, "POST", "/embed", {"texts": [t]})[1] for t in [*texts, "short"]]
    together = np.array(whole["embeddings"])
    assert np.allclose(together, np.array([a["embeddings"][0] for a in apart]), atol=1e-6)


# -- item 14: header and body deadlines, header size, connection cap ---------------------


def _raw(address: str, data: bytes, wait: float = 30.0) -> tuple[bytes, float]:
    """Send `data` on a fresh socket and read until the server closes it; the answer and
    the seconds it took."""
    host, port = address.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        if data:
            sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def test_partial_headers_are_cut_off(index: Path) -> None:
    with server(index, header_timeout=0.5) as (address, _):
        answer, _ = _raw(address, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"connection: close" in answer and answer.endswith(b"not received in time\n")
        silent, _ = _raw(address, b"")  # a connection that never says anything
        assert silent.startswith(b"HTTP/1.1 408 ")
        # headers that come in pieces, all within the deadline, are served
        host, port = address.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.1)
            sock.sendall(b"Connection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in answer


def test_oversized_headers_are_refused(index: Path) -> None:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    with server(index, max_header_bytes=4096) as (address, _):
        filler = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        answer, _ = _raw(address, b"GET /health HTTP/1.1\r\nHost: x\r\n" + filler)
    # h11 (when httptools is absent) refuses by itself with a 400
    expected = b"HTTP/1.1 431 " if AutoHTTPProtocol.__name__ == "HttpToolsProtocol" else b"400"
    assert answer.startswith(expected) or expected in answer.split(b"\r\n", 1)[0]


def test_slow_body_gets_408(index: Path) -> None:
    with server(index, body_timeout=0.5) as (address, _):
        head = (
            b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        answer, _ = _raw(address, head + b'{"query": ')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert b"did not arrive within 0.5 seconds" in answer


def test_requests_beyond_the_limit_get_503(index: Path) -> None:
    """Requests in flight count towards max_connections (issue 24 item 13: idle sockets
    do not, tests/service/test_idle_sockets.py): four requests whose bodies never
    come hold the limit of 4, and the fifth gets 503."""
    with server(index, max_connections=4) as (address, _):
        host, port = address.removeprefix("http://").rsplit(":", 1)
        idle = [socket.create_connection((host, int(port)), timeout=30) for _ in range(4)]
        for sock in idle:
            sock.sendall(
                b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n"
            )
        try:
            time.sleep(0.2)  # the server has accepted them
            assert call(address, "GET", "/health")[0] == 503
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 30
        while call(address, "GET", "/health")[0] != 200:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.05)


def test_limits_are_settings() -> None:
    config = ServeConfig()
    assert (config.header_timeout, config.body_timeout, config.keep_alive_timeout) == (10, 60, 5)
    assert (config.max_connections, config.max_header_bytes) == (512, 16384)
    assert config.max_batch_tokens == 256
    for name, value in (("header_timeout", 0), ("max_connections", 0), ("body_timeout", -1)):
        with pytest.raises(ConfigError) as caught:
            ServeConfig(**{name: value})
        assert caught.value.setting == name and name in str(caught.value)


def test_cli_refuses_a_bad_limit(index: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "semsearch", "serve", str(index), "--header-timeout", "0"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1
    assert "header_timeout must be a positive number of seconds (option --header-timeout)" in (
        done.stderr
    )


# -- item 15: a key in the URL is refused and never logged ------------------------------


def test_redact_query() -> None:
    assert redact_query("/search") == "/search"
    assert redact_query("/search?api_key=S&x=1&bare") == (
        "/search?api_key=<redacted>&x=<redacted>&<redacted>"
    )


def test_key_in_the_url_is_refused_and_never_logged(index: Path) -> None:
    secret = "SECRET-in-the-url-0123"
    process = subprocess.Popen(
        [sys.executable, "-m", "semsearch", "serve", str(index), "--port", "0", "--access-log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "SEMSEARCH_API_KEY": KEY},
    )  # fmt: skip
    try:
        address, seen = _announced_url(process)
        status, answer, _ = call(address, "POST", f"/search?api_key={secret}", {"query": "hi"})
        assert status == 401 and "not accepted" in answer["detail"]
        assert secret not in answer["detail"]
        assert call(address, "GET", f"/health?token={secret}")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    log = seen + out + err
    assert secret not in log
    assert '"POST /search?api_key=<redacted> HTTP/1.1" 401' in log  # the access log was on
    assert '"GET /health?token=<redacted> HTTP/1.1" 200' in log


def test_pieces_take_turns_with_other_requests() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def process(jobs: list[str]) -> list[str]:
        seen.append(list(jobs))
        gate.wait(10)
        return jobs

    batcher: MicroBatcher = MicroBatcher(process, max_batch=64, max_cost=10)
    batcher.start()
    try:
        first = batcher.submit("first")
        while not seen:
            time.sleep(0.01)
        pieces = [batcher.submit(f"p{i}", 1, cost=10, piece=True) for i in (1, 2, 3)]
        others = [batcher.submit(name) for name in ("a", "b")]
        gate.set()
        assert [f.result(10) for f in (first, *pieces, *others)] == [
            "first", "p1", "p2", "p3", "a", "b"
        ]  # fmt: skip
    finally:
        batcher.stop()
    # one piece, then the requests waiting (one batch), then the next piece
    assert seen == [["first"], ["p1"], ["a", "b"], ["p2"], ["p3"]]


def test_pieces_get_their_share_while_others_wait() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def process(jobs: list[str]) -> list[str]:
        seen.append(list(jobs))
        gate.wait(10)
        return jobs

    batcher: MicroBatcher = MicroBatcher(process, max_batch=8, max_cost=10, piece_share=0.25)
    batcher.start()
    try:
        first = batcher.submit("first")
        while not seen:
            time.sleep(0.01)
        pieces = [batcher.submit(f"p{i}", 1, cost=10, piece=True) for i in (1, 2, 3)]
        others = [batcher.submit(f"q{i}") for i in range(40)]
        gate.set()
        assert [f.result(10) for f in (first, *pieces)] == ["first", "p1", "p2", "p3"]
        assert [f.result(10) for f in others] == [f"q{i}" for i in range(40)]
    finally:
        batcher.stop()
    shape = [job[0] if job[0].startswith("p") else len(job) for job in seen[1:]]
    # a piece (10), then others until the pieces' 10 are at most a quarter of the cost
    # run (32 after four batches of 8), a piece, the last batch, and the last piece
    assert shape == ["p1", 8, 8, 8, 8, "p2", 8, "p3"]


def test_with_two_workers_a_piece_never_holds_up_the_others() -> None:
    """One worker runs the piece; the other answers the waiting requests meanwhile, and
    a second piece waits for the first (at most workers - 1 pieces at a time)."""
    answered = threading.Event()
    running: list[str] = []
    most = [0]

    def process(jobs: list[str]) -> list[str]:
        running.extend(jobs)
        most[0] = max(most[0], sum(job.startswith("p") for job in running))
        if jobs[0].startswith("p"):
            assert answered.wait(10), "the question waited for the piece"
        for job in jobs:
            running.remove(job)
        return jobs

    batcher: MicroBatcher = MicroBatcher(process, max_cost=10, workers=2)
    batcher.start()
    try:
        pieces = [batcher.submit(f"p{i}", 1, cost=10, piece=True) for i in (1, 2)]
        while not running:
            time.sleep(0.01)
        assert batcher.submit("question").result(10) == "question"
        answered.set()
        assert [f.result(10) for f in pieces] == ["p1", "p2"]
    finally:
        batcher.stop()
    assert most[0] == 1
