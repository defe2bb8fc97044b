"""`semsearch serve` end to end: a real uvicorn server on 127.0.0.1, a free port, the tiny
random BERT. Every route, validation, limits, auth, batching, hot reload, shutdown and
the Python client."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from semsearch.cli.main import app
from semsearch.client import Client
from semsearch.config import SearchConfig
from semsearch.errors import (
    AuthenticationError,
    BatcherStoppedError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from semsearch.index import IndexStore
from semsearch.search.results import Hit, SearchResult, batch_to_json
from semsearch.service.batcher import MicroBatcher
from semsearch.service.config import ServeConfig, load_serve_config
from semsearch.service.server import build_service, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
KEY = "s3cret-key-for-tests"
CSV = """id,question,answer,category
pw,How do I reset my password?,Use the reset link.,account
pw-2,I forgot my password,Use the reset link.,account
pdf,Can I export notes as PDF?,File > Export > PDF.,export
offline,Does it work without internet?,"Yes, offline mode.",sync
"""
QUESTIONS = ["I forgot my password", "export to PDF", "offline use", "how much does it cost"]


NO_THRESHOLD = SearchConfig(threshold="none")  # the plumbing: a tiny model's own would hide hits


def build_index(folder: Path, tiny_sbert: Path) -> Path:
    corpus = folder / "faq.csv"
    corpus.write_text(CSV, encoding="utf-8")
    out = folder / "faq"
    result = CliRunner().invoke(
        app, ["index", str(corpus), "-o", str(out), "--model", str(tiny_sbert)]
    )
    assert result.exit_code == 0, result.output
    return out


@contextmanager
def server(index: Path, **settings: Any) -> Iterator[tuple[str, Any]]:
    config = ServeConfig(port=0, **settings)
    service = build_service(index, config, NO_THRESHOLD)
    with serve_in_thread(service, config) as url:
        yield url, service


def call(url: str, method: str, path: str, body: Any = None, key: str | None = None,
         raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            status, got = response.status, response.headers
    except urllib.error.HTTPError as exc:
        payload, status, got = exc.read(), exc.code, exc.headers
    header = {name.lower(): value for name, value in got.items()}
    kind = header.get("content-type", "")
    return status, json.loads(payload) if "json" in kind else payload.decode(), header


@pytest.fixture(scope="module")
def index(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("serve"), tiny_sbert)


@pytest.fixture(scope="module")
def open_server(index: Path) -> Iterator[tuple[str, Any]]:
    with server(index) as running:
        yield running


@pytest.fixture(scope="module")
def url(open_server: tuple[str, Any]) -> str:
    return open_server[0]


@pytest.fixture(scope="module")
def key_url(index: Path) -> Iterator[str]:
    with server(index, api_key=KEY) as (address, _):
        yield address


# -- routes -------------------------------------------------------------------------


def test_health(url: str, index: Path) -> None:
    status, body, _ = call(url, "GET", "/health")
    assert status == 200
    assert body["status"] == "ok" and body["index"] == index.name and body["count"] == 4
    assert body["version"] == IndexStore.current_version(index)


def test_search_one_query(url: str) -> None:
    status, body, _ = call(url, "POST", "/search", {"query": "I forgot my password", "k": 3})
    assert status == 200 and body["answered"] is True and body["question"] == "I forgot my password"
    top = body["results"][0]
    assert {"id", "score", "text", "answer", "metadata"} <= set(top)
    assert (top["id"], top["text"]) == ("pw-2", "I forgot my password")
    assert top["answer"] == "Use the reset link." and top["metadata"] == {"category": "account"}
    assert top["score"] == pytest.approx(1.0, abs=1e-5)
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    answers = [r["answer"] for r in body["results"]]
    assert answers.count("Use the reset link.") == 1  # a shared answer comes back once


def test_search_threshold_gives_no_answer(url: str) -> None:
    question = {"query": "bananas and trains", "threshold": 0.9999}
    status, body, _ = call(url, "POST", "/search", question)
    assert status == 200 and body["answered"] is False and body["threshold"] == 0.9999
    assert body["results"] == [] and body["best_score"] < 0.9999  # how close it came


def test_batch_search_equals_single_searches(url: str) -> None:
    status, body, _ = call(url, "POST", "/search", {"queries": QUESTIONS, "k": 3})
    assert status == 200 and len(body["results"]) == len(QUESTIONS)
    for question, rows, answered in zip(QUESTIONS, body["results"], body["answered"], strict=True):
        single = call(url, "POST", "/search", {"query": question, "k": 3})[1]
        assert answered == single["answered"]
        assert [r["id"] for r in rows] == [r["id"] for r in single["results"]]
        assert [r["score"] for r in rows] == pytest.approx(
            [r["score"] for r in single["results"]], abs=1e-5
        )


def test_response_models_document_the_one_json_form(url: str) -> None:
    """/docs shows the pydantic models; the route returns `SearchResult.to_json()` and
    `batch_to_json()`. Both must validate with extra fields forbidden, and the models'
    field names must be exactly the JSON form's keys, so the docs cannot drift."""
    from semsearch.service.schemas import BatchSearchResponse, ResultItem, SearchResponse

    models = (ResultItem, SearchResponse, BatchSearchResponse)
    assert all(model.model_config.get("extra") == "forbid" for model in models)
    one = call(url, "POST", "/search", {"query": "I forgot my password", "k": 3})[1]
    many = call(url, "POST", "/search", {"queries": QUESTIONS, "k": 3})[1]
    SearchResponse.model_validate(one)
    BatchSearchResponse.model_validate(many)
    result = SearchResult.from_json(one)
    assert result.to_json() == one  # what the server sent is the one JSON form
    hit = result.hits[0].to_json()
    assert set(SearchResponse.model_fields) == set(result.to_json()) == set(one)
    assert set(ResultItem.model_fields) == set(hit) == set(one["results"][0])
    assert set(BatchSearchResponse.model_fields) == set(batch_to_json([result])) == set(many)
    # without a threshold and with no hits too (None and [] validate)
    empty = SearchResult("q", [], False, None)
    SearchResponse.model_validate(empty.to_json())
    BatchSearchResponse.model_validate(batch_to_json([empty, result]))
    BatchSearchResponse.model_validate(batch_to_json([]))
    with pytest.raises(ValueError, match="colour"):
        SearchResponse.model_validate({**one, "colour": "red"})


def test_embed_matches_the_index_encoder(url: str, tiny_sbert: Path) -> None:
    from semsearch.encoders import load_encoder

    texts = ["How do I reset my password?", "a much longer sentence about exporting notes to PDF"]
    status, body, _ = call(url, "POST", "/embed", {"texts": texts})
    assert status == 200 and body["dim"] == 32
    vectors = np.array(body["embeddings"], dtype=np.float32)
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    local = load_encoder(model=str(tiny_sbert), device="cpu").encode(texts)
    assert np.abs(vectors - local).max() < 1e-5


def test_page_and_docs(url: str, index: Path) -> None:
    status, page, header = call(url, "GET", "/")
    assert status == 200 and header["content-type"].startswith("text/html")
    assert 'id="question"' in page and index.name in page and "sessionStorage" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no external assets
    assert call(url, "GET", "/docs")[0] == 200
    spec = call(url, "GET", "/openapi.json")[1]
    assert {"/health", "/search", "/embed"} <= set(spec["paths"])


def test_unknown_route_is_json_404(url: str) -> None:
    status, body, _ = call(url, "GET", "/nope")
    assert status == 404 and body["detail"] == "Not Found"


# -- validation and limits ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/search", {"query": "hi", "k": 0}, "k"),
        ("/search", {"query": "hi", "k": 101}, "k"),
        ("/search", {"query": "hi", "k": "5"}, "k"),
        ("/search", {"query": "hi", "threshold": 1.5}, "threshold"),
        ("/search", {"query": ""}, "query"),
        ("/search", {"query": "   "}, "query"),
        ("/search", {"query": 7}, "query"),
        ("/search", {"queries": []}, "queries"),
        ("/search", {"queries": ["fine", 3]}, "queries.1"),
        ("/search", {"queries": "not a list"}, "queries"),
        ("/search", {"query": "hi", "colour": "red"}, "colour"),
        ("/search", {}, "body"),
        ("/search", {"query": "a", "queries": ["b"]}, "body"),
        ("/embed", {"texts": "one string"}, "texts"),
        ("/embed", {"texts": []}, "texts"),
        ("/embed", {}, "texts"),
    ],
)
def test_validation_names_the_field(url: str, path: str, body: dict, field: str) -> None:
    status, answer, _ = call(url, "POST", path, body)
    assert status == 422, answer
    assert field in [e["field"] for e in answer["errors"]]
    assert answer["detail"].startswith(f"{field}: ") or f"; {field}: " in answer["detail"]
    if field == "body":
        assert "'query'" in answer["detail"] and "'queries'" in answer["detail"]


def test_invalid_json_is_422(url: str) -> None:
    status, answer, _ = call(url, "POST", "/search", raw=b"{not json")
    assert status == 422 and "not valid JSON" in answer["detail"]


def test_default_limits(url: str) -> None:
    status, answer, _ = call(url, "POST", "/search", {"queries": ["q"] * 257})
    assert status == 422 and answer["errors"][0]["field"] == "queries" and "256" in answer["detail"]
    status, answer, _ = call(url, "POST", "/embed", {"texts": ["t"] * 257})
    assert status == 422 and answer["errors"][0]["field"] == "texts"
    status, answer, _ = call(url, "POST", "/search", {"queries": ["ok", "x" * 10_001]})
    assert status == 422 and answer["errors"][0]["field"] == "queries.1"
    assert "10000" in answer["detail"]
    assert call(url, "POST", "/search", {"query": "x" * 10_000, "k": 100})[0] == 200
    assert call(url, "POST", "/embed", {"texts": ["t"] * 256})[0] == 200


def test_configured_limits_and_body_cap(index: Path) -> None:
    limits = {"max_k": 3, "max_texts": 2, "max_text_chars": 50, "max_body_bytes": 300}
    with server(index, **limits) as (address, _):

        def field(path: str, body: dict) -> str:
            status, answer, _ = call(address, "POST", path, body)
            return "" if status == 200 else f"{status} {answer['errors'][0]['field']}"

        assert field("/search", {"query": "hi", "k": 3}) == ""
        assert field("/search", {"query": "hi", "k": 4}) == "422 k"
        assert field("/search", {"queries": ["a", "b", "c"]}) == "422 queries"
        assert field("/embed", {"texts": ["x" * 51]}) == "422 texts.0"
        status, answer, _ = call(address, "POST", "/embed", {"texts": ["y" * 400]})
        assert status == 413 and "300 bytes" in answer["detail"]
        host, port = address.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        chunks = iter([b'{"texts": ["', b"z" * 400, b'"]}'])  # no Content-Length: streamed
        json_type = {"Content-Type": "application/json"}
        connection.request("POST", "/embed", body=chunks, headers=json_type, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413 and "300 bytes" in json.loads(response.read())["detail"]
        connection.close()


def test_serve_config_from_toml(tmp_path: Path) -> None:
    from semsearch.errors import ConfigError

    preset = tmp_path / "serve.toml"
    preset.write_text("[serve]\nmax_k = 10\nbatch_wait_ms = 1.5\n[search]\nk = 3\n")
    config = load_serve_config(preset, port=9000)
    assert (config.max_k, config.batch_wait_ms, config.port) == (10, 1.5, 9000)
    assert config.host == "127.0.0.1" and config.batching
    preset.write_text("[serve]\nworkers = 2\npiece_share = 0.5\n")
    assert (load_serve_config(preset).workers, load_serve_config(preset).piece_share) == (2, 0.5)
    for key, value in (("workers", -1), ("piece_share", 0), ("piece_share", 1.5)):
        preset.write_text(f"[serve]\n{key} = {value}\n")
        with pytest.raises(ConfigError, match=key):
            load_serve_config(preset)
    preset.write_text("[serve]\nmax_kk = 10\n")
    with pytest.raises(ConfigError, match=r"unknown key.*max_kk"):
        load_serve_config(preset)
    with pytest.raises(ConfigError, match="max_texts"):
        ServeConfig(max_texts=0)
    assert KEY not in repr(ServeConfig(api_key=KEY))


# -- auth --------------------------------------------------------------------------


def test_auth_required_on_all_but_health(key_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert call(key_url, "GET", "/health")[0] == 200
    for path, body in (("/search", {"query": "hi"}), ("/embed", {"texts": ["hi"]})):
        status, answer, header = call(key_url, "POST", path, body)
        assert status == 401 and "API key" in answer["detail"]
        assert header["www-authenticate"] == "Bearer"
        assert call(key_url, "POST", path, body, key="wrong")[0] == 401
        assert call(key_url, "POST", path, body, key=KEY + "x")[0] == 401
        assert call(key_url, "POST", path, body, key=KEY)[0] == 200
    invalid = {"query": "hi", "k": 0}
    assert call(key_url, "POST", "/search", invalid)[0] == 401  # auth before validation
    spec = call(key_url, "GET", "/openapi.json")[1]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    captured = capfd.readouterr()
    assert KEY not in captured.out + captured.err


def test_auth_off_needs_no_header(url: str) -> None:
    assert call(url, "POST", "/search", {"query": "hi"}, key="anything")[0] == 200


# -- batching ----------------------------------------------------------------------


def _fake_process(jobs: list[list[str]]) -> list[Any]:
    """Rows of [len(text), 1] per job; a job holding "fail" gets its own error."""
    if any(text == "boom" for job in jobs for text in job):
        raise ValueError("cannot process boom")
    return [
        ValueError("this job fails") if "fail" in job else [[len(t), 1.0] for t in job]
        for job in jobs
    ]


def _concurrently(batcher: MicroBatcher, inputs: list[list[str]]) -> list[Any]:
    results: list[Any] = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = batcher.call(inputs[i], len(inputs[i]))
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.parametrize("enabled", [True, False])
def test_micro_batcher(enabled: bool) -> None:
    batcher: MicroBatcher = MicroBatcher(_fake_process, enabled=enabled, wait_ms=200, max_batch=8)
    batcher.start()
    try:
        inputs = [["x" * (i + 1)] * (1 + i % 3) for i in range(6)] + [["boom"], ["fail"]]
        results = _concurrently(batcher, inputs)
    finally:
        batcher.stop()
    for texts, result in zip(inputs[:-2], results[:-2], strict=True):
        assert result == [[len(t), 1.0] for t in texts]  # each caller gets its own rows
    assert isinstance(results[-2], ValueError) and "boom" in str(results[-2])
    assert isinstance(results[-1], ValueError) and "this job" in str(results[-1])
    assert batcher.stats.largest <= 8 and batcher.stats.jobs == 7
    if enabled:
        assert batcher.stats.batches < 7 and batcher.stats.largest > 3
    else:
        assert batcher.stats.batches == 7 and batcher.stats.largest == 3
    with pytest.raises(BatcherStoppedError):
        batcher.call(["late"])


def test_micro_batcher_drops_jobs_whose_caller_left() -> None:
    seen: list[str] = []
    gate = threading.Event()

    def process(jobs: list[str]) -> list[str]:
        seen.extend(jobs)
        gate.wait(10)  # the first batch holds the worker while the rest queue up
        return jobs

    batcher: MicroBatcher = MicroBatcher(process, wait_ms=0)
    batcher.start()
    try:
        first = batcher.submit("a")
        _wait_for(lambda: seen == ["a"])
        gone, kept = batcher.submit("b"), batcher.submit("c")
        assert gone.cancel()  # what asyncio does when a client disconnects
        gate.set()
        assert first.result(10) == "a" and kept.result(10) == "c"
    finally:
        batcher.stop()
    assert seen == ["a", "c"]


def test_concurrent_requests_share_encoder_calls(open_server: tuple[str, Any]) -> None:
    """Micro-batched answers (on every worker at once) are the answers asked alone."""
    address, service = open_server
    questions = [f"{QUESTIONS[i % 4]} {i}" for i in range(16)]
    alone = [call(address, "POST", "/search", {"query": q, "k": 3})[1] for q in questions]
    before = service.batcher.stats.batches
    barrier = threading.Barrier(16)
    answers: dict[int, tuple[int, Any]] = {}

    def one(i: int) -> None:
        barrier.wait()
        status, body, _ = call(address, "POST", "/search", {"query": questions[i], "k": 3})
        answers[i] = (status, body)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [answers[i][0] for i in range(16)] == [200] * 16
    assert service.batcher.stats.batches - before < 16 and service.batcher.stats.largest > 1
    for i, single in enumerate(alone):
        body = answers[i][1]
        assert body["answered"] == single["answered"]
        assert [r["id"] for r in body["results"]] == [r["id"] for r in single["results"]]
        assert [r["score"] for r in body["results"]] == pytest.approx(
            [r["score"] for r in single["results"]], abs=1e-5
        )


# -- hot reload ----------------------------------------------------------------------


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_hot_reload_under_load_without_failures(tiny_sbert: Path, tmp_path: Path) -> None:
    folder = build_index(tmp_path, tiny_sbert)
    extra = tmp_path / "extra.csv"
    extra.write_text("id,question,answer\nprice,How much is the Plus plan?,4 euros a month.\n")
    failures: list[str] = []
    done = threading.Event()
    counts = [0]

    with server(folder, reload_interval=0.1) as (address, service):

        def hammer(i: int) -> None:
            while not done.is_set():
                body = (
                    {"queries": QUESTIONS, "k": 5} if i % 2 else {"query": QUESTIONS[i % 4], "k": 5}
                )
                try:
                    status, answer, _ = call(address, "POST", "/search", body)
                    if status != 200:
                        failures.append(f"{status}: {answer}")
                except Exception as exc:
                    failures.append(repr(exc))
                counts[0] += 1

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        try:
            added = subprocess.run(
                [sys.executable, "-m", "semsearch", "add", str(folder), str(extra), "--json"],
                capture_output=True, text=True, timeout=300, cwd=ROOT,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            _wait_for(lambda: call(address, "GET", "/health")[1]["count"] == 5)
            question = {"query": "How much is the Plus plan?", "k": 1}
            top = call(address, "POST", "/search", question)[1]
            assert top["results"][0]["id"] == "price"
            with IndexStore.open(folder) as store:
                store.delete(["price", "offline"])
            _wait_for(lambda: call(address, "GET", "/health")[1]["count"] == 3)
            time.sleep(0.3)  # keep the load on just after the swap
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=60)
        assert service.live.reloads == 2
        assert call(address, "GET", "/health")[1]["version"] == IndexStore.current_version(folder)
    assert failures == [], failures[:5]
    assert counts[0] > 50


# -- shutdown -------------------------------------------------------------------------


class SlowEncoder:
    """The tiny encoder, a second slower: a request is surely in flight at shutdown."""

    def __init__(self, encoder: Any) -> None:
        self.inner = encoder
        self.report_truncation = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Any, batch_size: Any = None, show_progress: Any = None) -> np.ndarray:
        time.sleep(1.0)
        return self.inner.encode(texts, batch_size, show_progress)


def test_shutdown_lets_in_flight_requests_finish(index: Path, tiny_sbert: Path) -> None:
    from semsearch.encoders import load_encoder

    config = ServeConfig(port=0)
    service = build_service(
        index, config, NO_THRESHOLD, encoder=SlowEncoder(load_encoder(model=str(tiny_sbert)))
    )
    outcome: list[Any] = []
    with serve_in_thread(service, config) as address:
        thread = threading.Thread(
            target=lambda: outcome.append(call(address, "POST", "/search", {"query": "hi"}))
        )
        thread.start()
        time.sleep(0.3)  # the request is now waiting on the encoder
    thread.join(timeout=30)  # leaving the block shut the server down
    assert outcome and outcome[0][0] == 200 and outcome[0][1]["results"]


class BrokenEncoder(SlowEncoder):
    def encode(self, texts: Any, batch_size: Any = None, show_progress: Any = None) -> np.ndarray:
        raise RuntimeError("the model fell over")


def test_unexpected_errors_are_json_500(index: Path, tiny_sbert: Path) -> None:
    from semsearch.encoders import load_encoder

    config = ServeConfig(port=0)
    broken = BrokenEncoder(load_encoder(model=str(tiny_sbert)))
    with serve_in_thread(build_service(index, config, encoder=broken), config) as address:
        status, answer, _ = call(address, "POST", "/search", {"query": "hi"})
        assert status == 500 and answer["detail"].startswith("internal error (RuntimeError)")
        assert call(address, "GET", "/health")[0] == 200  # the server lives on


def _serve_process(index: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "semsearch", "serve", str(index), "--port", "0", "--no-access-log",
         *extra],
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _announced_url(process: subprocess.Popen, timeout: float = 120.0) -> tuple[str, str]:
    """Read stderr lines until the 'serving ... at URL' line (bounded)."""
    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        found = re.search(r"at (http://127\.0\.0\.1:\d+) ", line)
        if found:
            return found.group(1), seen
    process.kill()
    raise AssertionError(f"no URL announced; stderr: {seen}")


def test_cli_serve_with_env_key_and_sigterm(index: Path) -> None:
    process = _serve_process(index, env={"SEMSEARCH_API_KEY": KEY})
    try:
        address, seen = _announced_url(process)
        _wait_for(lambda: _alive(address))
        assert "API key required" in seen
        assert call(address, "POST", "/search", {"query": "hi"})[0] == 401
        assert call(address, "POST", "/search", {"query": "hi"}, key=KEY)[0] == 200
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "semsearch: stopped" in rest and KEY not in seen + rest


def _alive(address: str) -> bool:
    try:
        return call(address, "GET", "/health")[0] == 200
    except OSError:
        return False


def test_cli_serve_errors(index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["serve", str(tmp_path / "absent"), "--port", "0"])
    assert missing.exit_code == 1 and missing.stderr.startswith("semsearch: error: no index folder")
    bad = runner.invoke(app, ["serve", str(index), "--max-batch", "0"])
    assert bad.exit_code == 1 and "max_batch" in bad.stderr
    for option, value, key in (
        ("--piece-share", "2", "piece_share"),
        ("--workers", "-1", "workers"),
    ):
        bad = runner.invoke(app, ["serve", str(index), option, value])
        assert bad.exit_code == 1 and key in bad.stderr
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the extra were not installed
    result = runner.invoke(app, ["serve", str(index)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "semsearch: error: `semsearch serve` needs fastapi: run pip install 'semsearch[serve]'"
    ]


def test_cli_serve_busy_port(index: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(index), "--port", str(port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


# -- client ----------------------------------------------------------------------------


def test_client_against_the_server(url: str) -> None:
    client = Client(url)
    assert client.health()["count"] == 4
    hits = client.search("I forgot my password", k=2)
    assert isinstance(hits[0], Hit) and hits[0].id == "pw-2" and hits[0].rank == 1
    assert hits[0].metadata == {"category": "account"} and len(hits) == 2
    assert client.search("bananas and trains", threshold=0.9999) == []
    result = client.query("bananas and trains", threshold=0.9999)
    assert isinstance(result, SearchResult) and result.question == "bananas and trains"
    assert result.answered is False and result.hits == result.confident == []
    assert result.best_score is not None and result.best_score < 0.9999
    assert result.threshold == 0.9999
    batch = client.search_batch(QUESTIONS, k=2)
    assert [[h.id for h in row] for row in batch] == [
        [h.id for h in client.search(q, k=2)] for q in QUESTIONS
    ]
    results = client.query_batch(QUESTIONS, k=2)
    assert [r.question for r in results] == QUESTIONS
    assert [[h.id for h in r.hits] for r in results] == [[h.id for h in row] for row in batch]
    vectors = client.embed(["hello", "world"])
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    with pytest.raises(RequestRejectedError, match="k: ") as rejected:
        client.search("hi", k=0)
    assert rejected.value.status == 422 and rejected.value.fields == ["k"]
    with pytest.raises(TypeError, match="list"):
        client.embed("one string")


def test_client_auth(key_url: str) -> None:
    assert Client(key_url).health()["status"] == "ok"
    with pytest.raises(AuthenticationError, match="API key") as refused:
        Client(key_url).search("hi")
    assert refused.value.status == 401
    with pytest.raises(AuthenticationError):
        Client(key_url, api_key="wrong").embed(["hi"])
    assert Client(key_url, api_key=KEY).search("I forgot my password")[0].id == "pw-2"
    assert KEY not in repr(Client(key_url, api_key=KEY))


def test_client_server_down() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ServiceUnavailableError, match="cannot reach semsearch"):
        Client(f"http://127.0.0.1:{port}", timeout=5).health()
