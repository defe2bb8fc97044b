"""Load test of `semsearch serve` on loopback: N concurrent clients for T seconds.

    python bench/serve_load.py                       # 32 clients, 60 s, batched then single
    python bench/serve_load.py --clients 8 --duration 10 --modes batched
    python bench/serve_load.py --modes maximal        # questions while a maximal request runs
    python bench/serve_load.py --smoke                # seconds: a tiny model's FAQ index, 2 clients

For each mode it starts its own server process over the index (micro-batching on, then
off: one request per encoder call), warms it up, lets every client send POST /search
back to back over one keep-alive connection until the time is up, and reports
requests/s, latency p50/p95/p99 and errors. The clients are a few lines of asyncio (no
HTTP library), so on a small machine they take as little CPU as possible from the
server. Everything is bounded: each request times out, the run stops by itself, and the
server is shut down with SIGTERM (killed if it does not stop).

Mode `maximal` asks whether one big request stalls everyone else: a few clients send
single questions back to back while one client sends the largest request the server
accepts (256 texts of 10,000 characters, k=100), several rounds. It reports the
single questions' latency p50/p95/p99 while the big request runs, the same with the
server otherwise idle, and the big request's own time.
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
index, batching, wait_ms, max_batch = sys.argv[1:5]
config = ServeConfig(
    port=0, batching=batching == "on", batch_wait_ms=float(wait_ms), max_batch=int(max_batch),
    access_log=False,
)
serve(build_service(index, config), config, log_level="warning")
"""
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


# -- mode "maximal": single questions while the largest allowed request runs --------------------

BIG_TIMEOUT = 300.0


@dataclass
class MaximalResult:
    mode: str
    clients: int
    rounds: int
    big_texts: int
    big_chars: int
    big_k: int
    big_seconds: list[float] = field(default_factory=list)
    big_errors: list[str] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=dict)
    during: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    server: str = ""


def percentiles(latencies: list[float]) -> dict[str, float]:
    """Count and p50/p95/p99/max in milliseconds."""
    if not latencies:
        return {"requests": 0}
    p50, p95, p99, top = (round(v, 1) for v in _common.percentiles_ms(latencies, [50, 95, 99, 100]))
    return {"requests": len(latencies), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": top}


def maximal_body(texts: list[str], count: int, chars: int, k: int) -> bytes:
    """`count` distinct texts of `chars` characters each, made of the corpus's words."""
    rng = np.random.default_rng(0)
    words = " ".join(texts).split()
    items = []
    for _ in range(count):
        picked = [words[i] for i in rng.integers(len(words), size=chars // 3)]
        items.append(" ".join(picked)[:chars])
    return json.dumps({"queries": items, "k": k}).encode()


async def singles(
    host: str, port: int, texts: list[str], offset: int, stop: asyncio.Event,
    samples: list[tuple[float, float]], errors: dict[str, int],
) -> None:  # fmt: skip
    """One question at a time until `stop`; records (start, latency) of each answer."""
    connection = Connection(host, port)
    i = offset
    try:
        while not stop.is_set():
            payload = json.dumps({"query": texts[i % len(texts)], "k": 5}).encode()
            i += 7
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(
                    connection.post("/search", payload), BIG_TIMEOUT
                )
                kind = None if status == 200 and b'"results"' in body else f"HTTP {status}"
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                kind = type(exc).__name__
                await connection.close()
            if kind is None:
                samples.append((started, time.perf_counter() - started))
            else:
                errors[kind] = errors.get(kind, 0) + 1
    finally:
        await connection.close()


async def maximal(url: str, texts: list[str], args: argparse.Namespace) -> MaximalResult:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = maximal_body(texts, args.big_texts, args.big_chars, args.big_k)
    result = MaximalResult(
        "maximal", args.singles, args.rounds, args.big_texts, args.big_chars, args.big_k
    )

    async def with_singles(seconds: float | None) -> tuple[list[tuple[float, float]], float, float]:
        """Run the single-question clients alone for `seconds`, or around one big request."""
        stop = asyncio.Event()
        samples: list[tuple[float, float]] = []
        tasks = [
            asyncio.create_task(
                singles(host, int(port), texts, n * 13, stop, samples, result.error_kinds)
            )
            for n in range(args.singles)
        ]
        await asyncio.sleep(0.3)  # the clients are busy before the window opens
        start = time.perf_counter()
        if seconds is not None:
            await asyncio.sleep(seconds)
        else:
            big = Connection(host, int(port))
            try:
                status, answer = await asyncio.wait_for(big.post("/search", body), BIG_TIMEOUT)
                if status != 200:
                    result.big_errors.append(f"HTTP {status}: {answer[:200]!r}")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                result.big_errors.append(type(exc).__name__)
            finally:
                await big.close()
        end = time.perf_counter()
        stop.set()
        await asyncio.gather(*tasks)
        return samples, start, end

    samples, start, end = await with_singles(args.warmup)  # warm-up, then the idle baseline
    samples, start, end = await with_singles(args.idle)
    result.idle = percentiles([lat for began, lat in samples if start <= began <= end])
    during: list[float] = []
    for _ in range(args.rounds):
        samples, start, end = await with_singles(None)
        result.big_seconds.append(round(end - start, 2))
        during.extend(lat for began, lat in samples if start <= began <= end)
    result.during = percentiles(during)
    result.errors = sum(result.error_kinds.values()) + len(result.big_errors)
    return result


def run_maximal(args: argparse.Namespace, texts: list[str]) -> MaximalResult:
    process, url, lines = start_server(args.index, True, args.batch_wait_ms, args.max_batch)
    try:
        result = asyncio.run(maximal(url, texts, args))
    finally:
        stop_server(process)
    time.sleep(0.2)
    stopped = [line for line in lines if "stopped after" in line]
    result.server = stopped[-1].split("stopped after ", 1)[1].strip() if stopped else ""
    return result


def print_maximal(r: MaximalResult) -> None:
    print(
        f"\nsingle questions from {r.clients} clients while one request of {r.big_texts} "
        f"texts x {r.big_chars} characters, k={r.big_k} runs ({r.rounds} rounds)"
    )
    print(f"{'window':<22} {'requests':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, row in (("idle server", r.idle), ("during the big request", r.during)):
        cells = " ".join(f"{row.get(c, 0):>9}" for c in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        print(f"{name:<22} {row.get('requests', 0):>9} {cells}")
    print(f"big request: {', '.join(f'{s:.2f}' for s in r.big_seconds)} s")
    if r.errors:
        print(f"errors: {r.error_kinds} {r.big_errors}")
    print(f"maximal server: {r.server} (warm-up included)")


# -- the server process ------------------------------------------------------------------------


def start_server(
    index: Path, batching: bool, wait_ms: float, max_batch: int
) -> tuple[subprocess.Popen, str, list[str]]:
    """Start a server process; returns it, its URL, and its stderr lines as they come."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(index), "on" if batching else "off", str(wait_ms),
         str(max_batch)],
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


def run_mode(args: argparse.Namespace, texts: list[str], batching: bool) -> ModeResult:
    mode = "batched" if batching else "single"
    process, url, lines = start_server(args.index, batching, args.batch_wait_ms, args.max_batch)
    try:
        asyncio.run(load(url, texts, args.clients, args.warmup, record=False))
        result = asyncio.run(load(url, texts, args.clients, args.duration, record=True))
    finally:
        stop_server(process)
    result.mode = mode
    time.sleep(0.2)
    stopped = [line for line in lines if "stopped after" in line]
    result.server = stopped[-1].split("stopped after ", 1)[1].strip() if stopped else ""
    return result


def ensure_index(index: Path, corpus: Path, model: list[str], smoke: bool = False) -> None:
    """`semsearch index CORPUS -o INDEX` where INDEX is absent (--smoke: in this process)."""
    if (index / "manifest.json").is_file():
        return
    print(f"building {index} from {corpus} ...", file=sys.stderr)
    command = ["index", str(corpus), "-o", str(index), *model]
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
    args.index = Path(folder) / "index"
    args.clients, args.duration, args.warmup, args.modes = 2, 0.3, 0.05, "batched,maximal"
    args.rounds, args.singles, args.idle = 1, 1, 0.2
    args.big_texts, args.big_chars, args.big_k = 8, 300, 5
    return ["--model", str(_common.smoke_model(args))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "demo")
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "faq.csv",
                        help="questions are taken from its 'question' column (and indexed "
                        "into --index when that does not exist yet)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per mode")
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds first")
    parser.add_argument("--modes", default="batched,single,maximal",
                        help="any of batched, single, maximal")  # fmt: skip
    parser.add_argument("--batch-wait-ms", type=float, default=0.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results here")
    maximal_options = parser.add_argument_group("mode maximal")
    maximal_options.add_argument("--rounds", type=int, default=3, help="big requests in turn")
    maximal_options.add_argument("--singles", type=int, default=2,
                                 help="clients sending single questions")  # fmt: skip
    maximal_options.add_argument("--idle", type=float, default=5.0,
                                 help="seconds of questions alone (the baseline)")  # fmt: skip
    maximal_options.add_argument("--big-texts", type=int, default=256)
    maximal_options.add_argument("--big-chars", type=int, default=10_000)
    maximal_options.add_argument("--big-k", type=int, default=100)
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    model = smoke_size(args) if args.smoke else []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"batched", "single", "maximal"}:
        parser.error("--modes takes batched, single and/or maximal")
    if min(args.clients, args.singles, args.rounds, args.big_texts, args.big_chars, args.big_k) < 1:
        parser.error("--clients, --singles, --rounds and the --big-* options must be at least 1")
    if args.duration <= 0 or args.idle <= 0:
        parser.error("--duration and --idle must be positive")
    ensure_index(args.index, args.corpus, model, args.smoke)
    texts = questions(args.corpus)
    results = [run_mode(args, texts, mode == "batched") for mode in modes if mode != "maximal"]
    big = run_maximal(args, texts) if "maximal" in modes else None

    machine = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    print(f"\n{args.index}: {os.cpu_count()} CPUs, {machine}, load average {load:.2f}")
    if big is not None:
        print_maximal(big)
    if args.json:
        found = [asdict(r) for r in results] + ([asdict(big)] if big is not None else [])
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    if not results:
        sys.exit(1 if big is not None and big.errors else 0)
    print(f"\n{args.clients} clients x {args.duration:g} s per mode")
    columns = ("requests", "req/s", "p50 ms", "p95 ms", "p99 ms")
    print(f"{'mode':<8} " + " ".join(f"{c:>9}" for c in columns) + f" {'errors':>7}")
    for r in results:
        print(f"{r.mode:<8} {r.requests:>9} {r.rps:>9.1f} {r.p50_ms:>9.1f} {r.p95_ms:>9.1f} "
              f"{r.p99_ms:>9.1f} {r.errors:>7}")  # fmt: skip
    for r in results:
        print(f"{r.mode} server: {r.server} (warm-up included)")
    by_mode = {r.mode: r for r in results}
    if {"batched", "single"} <= set(by_mode) and by_mode["single"].rps:
        print(f"micro-batching speed-up: {by_mode['batched'].rps / by_mode['single'].rps:.2f}x")
    if any(r.errors for r in results) or (big is not None and big.errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
