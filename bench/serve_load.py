"""Load test of `semsearch serve` on loopback: N concurrent clients for T seconds.

    python bench/serve_load.py                 # fp32 and int8, 32 clients, 30 s a row
    python bench/serve_load.py --backends onnx-int8 --clients 8 --duration 10
    python bench/serve_load.py --modes batched,single      # micro-batching on and off
    python bench/serve_load.py --workers 1     # the server's batch workers (0: one per core)
    python bench/serve_load.py --smoke         # seconds: a tiny model's FAQ index, 2 clients

For each backend (an index of --corpus built with `semsearch index --backend B`, once,
under --index-dir) and each mode it starts its own server process with the defaults,
warms it up, lets every client send POST /search {"query": ..., "k": 5} back to back
over one keep-alive connection until the time is up, and reports questions/s, latency
p50/p95/p99 and errors. Modes:

* batched: the server as shipped (micro-batching on);
* maximal: the same, while one more client keeps the largest request the server
  accepts (256 texts of 10,000 characters, k=100) in flight the whole time: it sends
  the next as soon as one is answered. The row says how many finished and their times;
* single: micro-batching off (one request per encoder call), the baseline.

The clients are a few lines of asyncio (no HTTP library), so on a small machine they
take as little CPU as possible from the server. Everything is bounded: each request
times out, the run stops by itself, and the server is shut down with SIGTERM (killed
if it does not stop).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _common
import numpy as np
from _common import ROOT

SERVER = """
import sys
from semsearch.service.config import ServeConfig
from semsearch.service.server import build_service, serve
index, batching, wait_ms, max_batch, workers = sys.argv[1:6]
config = ServeConfig(
    port=0, batching=batching == "on", batch_wait_ms=float(wait_ms), max_batch=int(max_batch),
    workers=int(workers), access_log=False,
)
serve(build_service(index, config), config, log_level="warning")
"""
BACKENDS = {"onnx": "fp32", "onnx-int8": "int8"}
REQUEST_TIMEOUT = 30.0


@dataclass
class ModeResult:
    mode: str
    clients: int
    seconds: float
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server: str = ""
    backend: str = ""
    big_done: list[float] = field(default_factory=list)  # seconds of each finished one
    big_errors: list[str] = field(default_factory=list)


def questions(corpus: Path) -> list[str]:
    with corpus.open(encoding="utf-8", newline="") as handle:
        return [row["question"] for row in csv.DictReader(handle) if row.get("question")]


# -- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + payload)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def client(
    host: str, port: int, texts: list[str], offset: int, until: float, record: bool,
    latencies: list[float], errors: dict[str, int],
) -> None:  # fmt: skip
    connection = Connection(host, port)
    i = offset
    try:
        while time.perf_counter() < until:
            payload = json.dumps({"query": texts[i % len(texts)], "k": 5}).encode()
            i += 7
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(
                    connection.post("/search", payload), REQUEST_TIMEOUT
                )
                kind = None if status == 200 and b'"results"' in body else f"HTTP {status}"
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                kind = type(exc).__name__
                await connection.close()
            if not record:
                continue
            if kind is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors[kind] = errors.get(kind, 0) + 1
    finally:
        await connection.close()


async def load(
    url: str, texts: list[str], clients: int, seconds: float, record: bool
) -> ModeResult:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(client(host, int(port), texts, n * 13, until, record, latencies, errors)
          for n in range(clients))
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    result = ModeResult(
        "", clients, round(elapsed, 2), len(latencies), sum(errors.values()), errors
    )
    if latencies:
        result.rps = round(len(latencies) / elapsed, 1)
        result.p50_ms, result.p95_ms, result.p99_ms, result.max_ms = (
            round(v, 1) for v in _common.percentiles_ms(latencies, [50, 95, 99, 100])
        )
    return result


# -- mode "maximal": one maximal request in flight all along -----------------------------------

BIG_TIMEOUT = 600.0


def maximal_body(texts: list[str], count: int, chars: int, k: int) -> bytes:
    """`count` distinct texts of `chars` characters each, made of the corpus's words."""
    rng = np.random.default_rng(0)
    words = " ".join(texts).split()
    items = []
    for _ in range(count):
        picked = [words[i] for i in rng.integers(len(words), size=chars // 3)]
        items.append(" ".join(picked)[:chars])
    return json.dumps({"queries": items, "k": k}).encode()


async def big_requests(
    host: str, port: int, body: bytes, stop: asyncio.Event, result: ModeResult
) -> None:
    """One maximal request after another until `stop`; the last is awaited to its end."""
    connection = Connection(host, port)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status, answer = await asyncio.wait_for(
                    connection.post("/search", body), BIG_TIMEOUT
                )
                if status == 200:
                    result.big_done.append(round(time.perf_counter() - started, 2))
                else:
                    result.big_errors.append(f"HTTP {status}: {answer[:200]!r}")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                result.big_errors.append(type(exc).__name__)
                await connection.close()
    finally:
        await connection.close()


async def load_with_big(url: str, texts: list[str], args: argparse.Namespace) -> ModeResult:
    """`load` while one maximal request is in flight from the window's start to its end."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = maximal_body(texts, args.big_texts, args.big_chars, args.big_k)
    stop = asyncio.Event()
    holder = ModeResult("maximal", args.clients, 0.0)
    big = asyncio.create_task(big_requests(host, int(port), body, stop, holder))
    await asyncio.sleep(0.5)  # the big request is parsed and its pieces queued
    result = await load(url, texts, args.clients, args.duration, record=True)
    stop.set()
    await big
    result.big_done, result.big_errors = holder.big_done, holder.big_errors
    result.errors += len(holder.big_errors)
    return result


# -- the server process ------------------------------------------------------------------------


def start_server(
    index: Path, batching: bool, wait_ms: float, max_batch: int, workers: int = 0
) -> tuple[subprocess.Popen, str, list[str]]:
    """Start a server process; returns it, its URL, and its stderr lines as they come."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(index), "on" if batching else "off", str(wait_ms),
         str(max_batch), str(workers)],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 180
    seen = ""
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        found = re.search(r" at (http://[\d.]+:\d+) ", line)
        if found:
            lines: list[str] = []  # drained in a thread so the pipe never fills
            threading.Thread(target=lines.extend, args=(process.stderr,), daemon=True).start()
            return process, found.group(1), lines
    process.kill()
    raise SystemExit(f"the server did not start:\n{seen}")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_mode(args: argparse.Namespace, index: Path, texts: list[str], mode: str) -> ModeResult:
    process, url, lines = start_server(
        index, mode != "single", args.batch_wait_ms, args.max_batch, args.workers
    )
    try:
        asyncio.run(load(url, texts, args.clients, args.warmup, record=False))
        if mode == "maximal":
            result = asyncio.run(load_with_big(url, texts, args))
        else:
            result = asyncio.run(load(url, texts, args.clients, args.duration, record=True))
    finally:
        stop_server(process)
    result.mode = mode
    time.sleep(0.2)
    stopped = [line for line in lines if "stopped after" in line]
    result.server = stopped[-1].split("stopped after ", 1)[1].strip() if stopped else ""
    return result


def ensure_index(
    index: Path, corpus: Path, model: list[str], smoke: bool = False, backend: str = "onnx"
) -> None:
    """`semsearch index CORPUS -o INDEX` where INDEX is absent (--smoke: in this process)."""
    if (index / "manifest.json").is_file():
        return
    print(f"building {index} from {corpus} ...", file=sys.stderr)
    command = ["index", str(corpus), "-o", str(index), "--backend", backend, *model]
    if smoke:
        done = _common.semsearch(command, in_process=True)
        if done.returncode != 0:
            raise SystemExit(f"bench/serve_load.py: semsearch index failed:\n{done.stderr}")
        return
    subprocess.run(
        [sys.executable, "-m", "semsearch", *command], check=True, cwd=ROOT, timeout=1800
    )


def smoke_size(args: argparse.Namespace) -> list[str]:
    """--smoke: a few seconds in all, on a tiny model's index of --corpus in a temp folder;
    the options of the index build."""
    folder = tempfile.mkdtemp(prefix="semsearch-bench-serve-")
    atexit.register(shutil.rmtree, folder, True)
    args.index_dir = Path(folder)
    args.clients, args.duration, args.warmup, args.modes = 2, 0.3, 0.05, "batched,maximal"
    args.backends = "onnx"
    args.big_texts, args.big_chars, args.big_k = 8, 300, 5
    return ["--model", str(_common.smoke_model(args))]


def print_table(results: list[ModeResult], args: argparse.Namespace) -> None:
    print(f"\n{args.clients} clients x {args.duration:g} s a row, POST /search one question, k=5")
    print(
        f"big request: {args.big_texts} texts x {args.big_chars} characters, k={args.big_k}, "
        "one in flight all along (mode maximal)"
    )
    columns = ("clients", "q/s", "p50 ms", "p95 ms", "p99 ms", "errors")
    print(f"{'backend':<8} {'mode':<8} " + " ".join(f"{c:>8}" for c in columns) + "  big requests")
    for r in results:
        big = ""
        if r.mode == "maximal":
            done = sorted(r.big_done)
            big = f"{len(done)} done"
            if done:
                big += f", median {done[len(done) // 2]:.1f} s, longest {done[-1]:.1f} s"
            if r.big_errors:
                big += f"; failed: {', '.join(r.big_errors)}"
        print(
            f"{r.backend:<8} {r.mode:<8} {r.clients:>8} {r.rps:>8.1f} {r.p50_ms:>8.1f} "
            f"{r.p95_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>8}  {big}"
        )
    for r in results:
        print(f"{r.backend} {r.mode} server: {r.server} (warm-up included)")
        if r.error_kinds:
            print(f"{r.backend} {r.mode} errors: {r.error_kinds}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index-dir", type=Path, default=ROOT / "indexes",
                        help="holds the indexes serve-load-BACKEND (built if absent)")  # fmt: skip
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "faq.csv",
                        help="questions are taken from its 'question' column (and indexed "
                        "when the index does not exist yet)")  # fmt: skip
    parser.add_argument("--backends", default="onnx,onnx-int8", help="onnx and/or onnx-int8")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds a row")
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds first")
    parser.add_argument("--modes", default="batched,maximal",
                        help="any of batched, maximal, single")  # fmt: skip
    parser.add_argument("--workers", type=int, default=0, help="[serve] workers (0: default)")
    parser.add_argument("--batch-wait-ms", type=float, default=0.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results here")
    maximal_options = parser.add_argument_group("mode maximal")
    maximal_options.add_argument("--big-texts", type=int, default=256)
    maximal_options.add_argument("--big-chars", type=int, default=10_000)
    maximal_options.add_argument("--big-k", type=int, default=100)
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    model = smoke_size(args) if args.smoke else []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"batched", "single", "maximal"}:
        parser.error("--modes takes batched, maximal and/or single")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - set(BACKENDS):
        parser.error("--backends takes onnx and/or onnx-int8")
    if min(args.clients, args.big_texts, args.big_chars, args.big_k) < 1 or args.workers < 0:
        parser.error("--clients and the --big-* options must be at least 1, --workers >= 0")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    texts = questions(args.corpus)
    load_before = os.getloadavg()
    results = []
    for backend in backends:
        index = args.index_dir / f"serve-load-{backend}"
        ensure_index(index, args.corpus, model, args.smoke, backend)
        for mode in modes:
            results.append(run_mode(args, index, texts, mode))
            results[-1].backend = BACKENDS[backend]
    machine = platform.processor() or platform.machine()
    load_after = os.getloadavg()
    print(
        f"\n{args.corpus.name}: {os.cpu_count()} CPUs, {machine}, load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print_table(results, args)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    by_mode = {(r.backend, r.mode): r for r in results}
    for backend in backends:
        name = BACKENDS[backend]
        single, batched = by_mode.get((name, "single")), by_mode.get((name, "batched"))
        if single is not None and batched is not None and single.rps:
            speedup = batched.rps / single.rps
            print(f"{name} micro-batching speed-up: {speedup:.2f}x")
    if any(r.errors for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
