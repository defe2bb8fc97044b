"""Index builds past one process: the local engine against `--engine ray` with 1 and 2
workers, on the same WordNet glosses, in one run (so the ratio shares the machine's load).

What it measures, for each case, by running `semsearch index CORPUS -o OUT --json -q`
as a subprocess (the packaged all-MiniLM-L6-v2, the default backend: onnx on CPU):

* build texts/s: records / the build's own `seconds` (reading, encoding, SQLite, FAISS
  (`auto`: hnsw from 50,000 entries), BM25, the no-answer estimate and the swap; the
  encoder or the Ray actors are ready before it starts), and the whole command's wall
  time (with Python's start, the model load and, for Ray, starting Ray and its actors);
* peak RSS, sampled every 0.2 s: the driver (the `semsearch` process), the encoder
  actors (Ray worker processes, summed) and Ray's own processes (raylet, GCS, ...,
  summed); each is its own peak, so they need not have peaked at once;
* the driver's overhead alone: the same build fed the local build's vectors instead of
  an encoder and a flat index (`--driver-only`, in a subprocess; random unit vectors, as
  their values do not change the work), which is what one driver does per
  record whatever encodes: read, insert, index, BM25. Its rate bounds what a cluster can
  feed through one driver.

Texts: the first `--count` lines of ../shared/data/wordnet_glosses/glosses.jsonl (field
`text`, ids from `_id`). Run it from the repository root::

    .venv/bin/python bench/scale.py                  # 50,000 glosses, writes the table
    .venv/bin/python bench/scale.py --count 5000 --output -
    .venv/bin/python bench/scale.py --driver-alone --output -   # the driver's rate only
    .venv/bin/python bench/scale.py --smoke   # 40 glosses, a tiny model, local and 1 Ray worker

At --smoke size the builds are confined to at most 2 CPUs (so a local Ray starts with
2), and the script fails if any process a build started outlives it (Ray must stop).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common
import psutil

DATA = _common.DATA / "wordnet_glosses" / "glosses.jsonl"
MB = 1024 * 1024
SMOKE_CPUS = 2  # --smoke: the builds (and so a local Ray) see at most this many CPUs
LEFT_BEHIND_WAIT = 15.0  # seconds a build's children get to exit after it


def sample(
    process: psutil.Process, peaks: dict[str, float], seen: dict[int, psutil.Process]
) -> None:
    """Add the current RSS of the driver, its Ray actors and Ray's own processes."""
    driver = actors = ray = 0
    try:
        driver = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.Error:
        return
    seen.update((child.pid, child) for child in children)
    for child in children:
        try:
            name, rss = " ".join(child.cmdline()[:1]), child.memory_info().rss
        except psutil.Error:
            continue
        if name.startswith("ray::"):
            actors += rss if "ShardWorker" in name else 0
            ray += 0 if "ShardWorker" in name else rss
        else:
            ray += rss
    for key, value in (("driver", driver), ("actors", actors), ("ray", ray)):
        peaks[key] = max(peaks.get(key, 0), value / MB)
    with contextlib.suppress(psutil.Error):  # the driver's own CPU time, as last seen
        times = process.cpu_times()
        peaks["driver_cpu"] = times.user + times.system


def confine(cpus: int) -> None:
    """In the child before exec: run on at most `cpus` of the CPUs this process may use."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])


def build(
    corpus: Path,
    folder: Path,
    extra: list[str],
    cpus: int | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    command = [sys.executable, "-m", "semsearch", "index", str(corpus), "-o", str(folder)]
    command += ["--json", "-q", *extra]
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=None if cpus is None else lambda: confine(cpus),
        env=env,
    )
    process, peaks = psutil.Process(child.pid), {}
    seen: dict[int, psutil.Process] = {}
    while child.poll() is None:
        sample(process, peaks, seen)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    out, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    if cpus is not None:  # the smoke run: nothing it started may outlive it
        left_behind(list(seen.values()), command)
    summary = json.loads(out)
    cpu = peaks.pop("driver_cpu", 0.0)
    return {
        "count": summary["count"],
        "build_s": summary["seconds"],
        "wall_s": wall,
        "rate": summary["count"] / summary["seconds"],
        "driver_us": 1e6 * cpu / summary["count"],
        **{f"peak_{key}_mb": value for key, value in peaks.items()},
    }


def left_behind(children: list[psutil.Process], command: list[str]) -> None:
    """Fail (after stopping them) when processes a build started are still running."""
    _, alive = psutil.wait_procs(children, timeout=LEFT_BEHIND_WAIT)
    if not alive:
        return
    names = ", ".join(f"{child.pid} ({child.name()})" for child in alive)
    for child in alive:
        child.kill()
    raise SystemExit(f"{' '.join(command)} left processes running: {names} (killed)")


def driver_only(index: Path, corpus: Path, out: Path) -> None:
    """Build `out` from `corpus` with random unit vectors (what they hold does not change
    the work) and `index`'s fingerprint and generic questions: everything but encoding."""
    import numpy as np

    from semsearch.corpus import open_corpus
    from semsearch.index import IndexStore
    from semsearch.index.manifest import Manifest

    manifest = Manifest.read(index)
    generic = np.load(index / "generic.npy")
    count = sum(1 for _ in open_corpus(corpus))
    vectors = np.random.default_rng(0).standard_normal((count, generic.shape[1]), np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    class Recorded:
        """The encoder's face (fingerprint, dim, the generic questions), no model."""

        truncated = 0
        dim = vectors.shape[1]
        fingerprint = manifest.encoder

        def encode(self, texts: Any, batch_size: Any = None, show_progress: Any = None) -> Any:
            return generic

    def engine(chunks: Any, parts: Any) -> Any:
        start = 0
        for chunk in chunks:
            yield chunk, vectors[start : start + len(chunk)], None, 0
            start += len(chunk)

    source = open_corpus(corpus)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.perf_counter()
    store = IndexStore.build(out, source.chunks(4096), Recorded(), engine=engine, index_type="flat")
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    peak = usage.ru_maxrss / 1024
    print(
        json.dumps({"count": store.count, "build_s": seconds, "cpu_s": cpu, "peak_driver_mb": peak})
    )


def measure_driver(index: Path, corpus: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--driver-only", str(index), str(corpus), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    result["rate"] = result["count"] / result["build_s"]
    return dict(result)


@contextlib.contextmanager
def two_nodes(cpus_each: int) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster of two nodes on this machine as `ray start` makes one (token
    authentication on, a token of its own), `cpus_each` CPUs a node: (address, the
    environment its drivers need). Both nodes are killed when the block ends."""
    env = dict(
        os.environ,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    temp = tempfile.mkdtemp(prefix="raybench", dir="/tmp")  # short: Ray's socket paths
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    ray = str(Path(sys.executable).with_name("ray"))
    common = ["--block", "--num-cpus", str(cpus_each), "--node-ip-address", "127.0.0.1"]
    nodes: list[subprocess.Popen[str]] = []
    try:
        for extra in (
            ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp],
            ["--address", address],
        ):
            node = subprocess.Popen(
                [ray, "start", *common, *extra],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            nodes.append(node)
            assert node.stdout is not None
            if not any("Ray runtime started" in line for line in node.stdout):
                raise SystemExit(f"ray start failed ({node.wait()})")
        yield address, env
    finally:
        for node in reversed(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
        for entry in Path("/proc").iterdir():  # what a node started in a session of its own
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if temp.encode() in (entry / "cmdline").read_bytes():
                        os.kill(int(entry.name), signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def recall_at_10(folder: Path, model: Path, questions: list[str]) -> float:
    """How much of exact search's top 10 (over the index's own kept float16 vectors) an
    ivfpq folder's search finds, for `questions`."""
    import numpy as np

    from semsearch.encoders import load_encoder
    from semsearch.index import IndexStore

    queries = load_encoder(kind="bert", model=str(model)).encode(questions)
    with IndexStore.open(folder) as store:
        found = store.search_rowids(queries, 10)
        full = np.asarray(store.vectors.full, dtype=np.float32)
        exact = store.vectors.ids[np.argsort(-(queries @ full.T), axis=1, kind="stable")[:, :10]]
    hits = [
        len({rowid for rowid, _ in got} & set(want.tolist()))
        for got, want in zip(found, exact, strict=True)
    ]
    return sum(hits) / (10 * len(questions))


def write_corpus(data: Path, target: Path, count: int) -> None:
    """The first `count` glosses; past the file's end they come round again, their ids
    new and " (2)", " (3)", ... after the text (so that sizes past WordNet's 117,659
    glosses can be measured; the work per record is the same)."""
    with target.open("w") as out:
        written = 0
        for turn in itertools.count(1):
            with data.open() as source:
                for line in source:
                    if written == count:
                        return
                    row = json.loads(line)
                    if turn > 1:
                        row = {"_id": f"{row['_id']}-{turn}", "text": f"{row['text']} ({turn})"}
                    out.write(json.dumps(row) + "\n")
                    written += 1
            if not written:
                return


def questions(data: Path, skip: int, count: int = 200) -> list[str]:
    """Glosses after the first `skip` (or from the start again), as questions."""
    with data.open() as source:
        lines = source.readlines()
    start = skip % len(lines)
    chosen = (lines[start:] + lines)[:count]
    return [json.loads(line)["text"] for line in chosen]


def tiny_384(folder: Path) -> Path:
    """A random 1-layer BERT of 384 dimensions with MiniLM's word pieces (encoding then
    costs little beside the rest of a build, and the vectors are MiniLM's size)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from semsearch.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=1,
        num_attention_heads=6,
        intermediate_size=384,
        max_position_embeddings=128,
    )
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workers", default="1,2", help="Ray worker counts, e.g. 1,2")
    parser.add_argument(
        "--output", default=None, help="default bench/results/scale-ray.txt; '-': stdout only"
    )
    parser.add_argument("--driver-alone", action="store_true", help="only the driver's rate")
    parser.add_argument(
        "--sizes",
        default=None,
        help="entries per build, e.g. 50000,200000,800000 (default --count)",
    )
    parser.add_argument("--index-type", default=None, help="e.g. ivfpq (default: auto)")
    parser.add_argument("--ray-only", action="store_true", help="no local build beside Ray's")
    parser.add_argument(
        "--two-nodes",
        type=int,
        default=0,
        metavar="CPUS",
        help="Ray on a two-node cluster started here (ray start, token authentication), "
        "CPUS a node, through --address",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a random 1-layer 384-d BERT made here, not MiniLM"
    )
    parser.add_argument("--driver-only", nargs=3, type=Path, help=argparse.SUPPRESS)
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    if args.driver_only:
        driver_only(*args.driver_only)
        return
    _common.require("bench/scale.py", [args.data], args.smoke, "the WordNet glosses")
    model: list[str] = []
    cpus = None
    if args.smoke:  # a few glosses, a tiny model, one Ray worker on at most 2 CPUs
        args.count, args.workers, cpus = 40, "1", SMOKE_CPUS
        model = ["--model", str(_common.smoke_model(args))]
    if args.output != "-":
        given = None if args.output is None else Path(args.output)
        args.output = _common.results_path("bench/scale.py", given, "scale-ray.txt", args.smoke)
    sizes = [int(size) for size in (args.sizes or str(args.count)).split(",")]
    args.count = sizes[-1]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.tiny:
            model = ["--encoder", "bert", "--model", str(tiny_384(work / "tiny-384"))]
        if args.index_type:
            model += ["--index-type", args.index_type]
        warm = work / "warm.jsonl"
        write_corpus(args.data, warm, 300)
        # the ONNX export is cached before timing (--smoke: no warm-up, the driver's rate
        # is measured on the local build's index)
        fingerprinted = work / "local" if args.smoke and not args.driver_alone else work / "warm"
        if fingerprinted.name == "warm":
            build(warm, fingerprinted, model, cpus)
        cases: dict[str, dict[str, Any]] = {}
        with contextlib.ExitStack() as stack:
            address, env = None, None
            if args.two_nodes:
                address, env = stack.enter_context(two_nodes(args.two_nodes))
            for size in sizes:
                corpus = work / "glosses.jsonl"
                write_corpus(args.data, corpus, size)
                label = f" {size // 1000}k" if len(sizes) > 1 else ""
                if not args.driver_alone and not args.ray_only:
                    cases[f"local{label}"] = build(corpus, work / "local", model, cpus)
                    if args.index_type == "ivfpq" and args.tiny:
                        cases[f"local{label}"]["recall"] = recall_at_10(
                            work / "local", work / "tiny-384", questions(args.data, size)
                        )
                for workers in args.workers.split(",") if not args.driver_alone else []:
                    extra = ["--engine", "ray", "--workers", workers, *model]
                    extra += ["--address", address] if address else []
                    name = f"ray, {workers} worker{'s' * (workers != '1')}{label}"
                    cases[name] = build(corpus, work / f"ray{workers}", extra, cpus, env)
                    if args.index_type == "ivfpq" and args.tiny:
                        cases[name]["recall"] = recall_at_10(
                            work / f"ray{workers}", work / "tiny-384", questions(args.data, size)
                        )
                base = cases.get(f"local{label}")
                for name, case in cases.items():
                    if base is not None and name.endswith(label):
                        case.setdefault("vs", case["rate"] / base["rate"])
        driver = measure_driver(fingerprinted, corpus, work / "driver")
    load_after = os.getloadavg()
    lines = report(args, cases, driver, load_before, load_after)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.output != "-":
        _common.write_result(Path(args.output), text)


def report(
    args: argparse.Namespace,
    cases: dict[str, dict[str, Any]],
    driver: dict[str, Any],
    before: tuple[float, float, float],
    after: tuple[float, float, float],
) -> list[str]:
    local = next(iter(cases.values()))["rate"] if cases else 1.0
    lines = [
        f"# bench/scale.py --sizes {args.sizes or args.count} --workers {args.workers}"
        + (" --tiny" if args.tiny else "")
        + (" --ray-only" if args.ray_only else "")
        + (f" --two-nodes {args.two_nodes}" if args.two_nodes else "")
        + (f" --index-type {args.index_type}" if args.index_type else ""),
        f"# {platform.platform()}, {os.cpu_count()} CPUs; load average (1, 5, 15 min) "
        f"before {before[0]:.1f} {before[1]:.1f} {before[2]:.1f}, "
        f"after {after[0]:.1f} {after[1]:.1f} {after[2]:.1f} (other jobs share the CPUs)",
        (
            "# model: the tiny random BERT of --smoke"
            if args.smoke
            else "# model: a random 1-layer 384-d BERT (--tiny)"
            if args.tiny
            else "# model: packaged all-MiniLM-L6-v2"
        )
        + f", default backend (onnx fp32 on CPU); up to {args.count:,} WordNet glosses "
        "(past 117,659 they come round again)",
        "",
        f"{'case':<22} {'build texts/s':>13} {'vs local':>9} {'build s':>8} {'wall s':>7} "
        f"{'driver MB':>10} {'driver us/rec':>14} {'actors MB':>10} {'ray MB':>7}",
    ]
    for name, case in cases.items():
        recall = f"  recall@10 {case['recall']:.3f}" if "recall" in case else ""
        lines.append(
            f"{name:<22} {case['rate']:>13.0f} {case.get('vs', case['rate'] / local):>8.2f}x "
            f"{case['build_s']:>8.1f} {case['wall_s']:>7.1f} {case['peak_driver_mb']:>10.0f} "
            f"{case['driver_us']:>14.0f} "
            f"{case.get('peak_actors_mb', 0):>10.0f} {case.get('peak_ray_mb', 0):>7.0f}{recall}"
        )
    lines += [
        "",
        f"driver alone (no encoding: read, SQLite, FAISS flat, BM25, swap): "
        f"{driver['rate']:,.0f} records/s wall ({1e6 / driver['rate']:.0f} us a record), "
        f"{driver['count'] / driver['cpu_s']:,.0f} records/s of CPU time "
        f"({1e6 * driver['cpu_s'] / driver['count']:.0f} us), "
        f"peak RSS {driver['peak_driver_mb']:.0f} MB",
    ]
    return lines


if __name__ == "__main__":
    main()
