"""Whole-process wall time: semsearch's commands, each a fresh process, against the
script a user would otherwise write with sentence-transformers.

Every figure is the wall time of one fresh process (``subprocess`` and
``time.perf_counter``, from start to exit), so it counts what a user waits for: the
interpreter, the imports, loading the model and the index, the work and the exit.
The sides of a case run interleaved (A B A B ...), so load on a shared machine hits
them alike; each side reports the median and the minimum of its runs.

Cases (``--only`` picks some):

* ``query``: ``semsearch query INDEX "how can I get my notes out as PDF?" -k 5`` on the
  demo index (``semsearch index examples/faq.csv`` with the default settings, built
  into a temporary folder). Reference: a Python process that imports
  sentence-transformers, loads all-MiniLM-L6-v2 from the packaged folder, encodes the
  question, loads the FAQ's 106 vectors from a .npy file (written beforehand by
  sentence-transformers), ranks them with NumPy and prints the top 5 ids. Ratio:
  semsearch / reference (target <= 0.15).
* ``tokens``, ``similarity``: ``semsearch tokens "..."`` and ``semsearch similarity
  "..." "..."``, against the same reference process.
* ``serve``: ``semsearch serve INDEX --port 0`` from start until ``GET /health``
  answers 200 (the port is read from the URL the server prints on stderr); the server
  gets SIGTERM after each run. The reference's time is shown for scale.
* ``embed``: ``semsearch embed GLOSSES.txt -o OUT.npy --backend onnx`` and
  ``--backend onnx-int8`` on the first ``--glosses`` WordNet glosses (one a line)
  against a process that loads the model with sentence-transformers, calls
  ``model.encode(texts, batch_size=32)`` and saves the vectors with ``np.save``.
  Ratio: reference / semsearch (a speed-up; targets onnx >= 1.8x, onnx-int8 >= 3.0x).
  The glosses are read from ``../shared/data/wordnet_glosses/glosses.jsonl`` relative
  to the repository root; without them this case is skipped with a message.

The ONNX exports are cached in one folder for the whole run (``SEMSEARCH_CACHE``;
``--cache``, default ``semsearch-cold-cache`` in the system temp folder), and every
command runs once untimed first (the embed commands on the first 256 glosses), so no
timed run pays for an export or a cold page cache. The outputs are also compared:
the reference's top 5 ids against semsearch's (their last runs), and the embed
warm-up vectors against the reference's.

Run it from the repository root::

    .venv/bin/python bench/cold.py                        # all cases, bench/results/cold.txt
    .venv/bin/python bench/cold.py --only query,serve --repeats 9
    .venv/bin/python bench/cold.py --repeats 1 --embed-repeats 1 --glosses 2000 --out /tmp/c.txt
    .venv/bin/python bench/cold.py --only embed          # the whole-process encoding alone
    .venv/bin/python bench/cold.py --smoke   # query and embed (16 glosses), 1 run, a tiny model

At ``--smoke`` size the reference scripts run inside this process (``runpy``) with the
tiny model, so sentence-transformers is imported once, not once per process; the
semsearch commands still run as fresh processes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import importlib.metadata
import io
import json
import os
import platform
import queue
import re
import runpy
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import _common
import numpy as np
from _common import FAQ, ROOT

GLOSSES = _common.DATA / "wordnet_glosses" / "glosses.jsonl"
SMOKE_TEXTS = ROOT / "semsearch" / "data" / "generic_questions.txt"
CASES = ("query", "tokens", "similarity", "serve", "embed")
SHORT_CASES = CASES[:4]
QUESTION = "how can I get my notes out as PDF?"
TOKENS_TEXT = "Here is the sentence I want embeddings for."
SIMILARITY_TEXTS = ("A man is eating food.", "A man is eating a piece of bread.")
TOP_K = 5
WARMUP_GLOSSES = 256
QUERY_TARGET = 0.15  # semsearch query / reference, at most
EMBED_TARGETS = {"onnx": 1.8, "onnx-int8": 3.0}  # reference / semsearch, at least
SHORT_TIMEOUT = 600.0  # seconds for one short command
EMBED_TIMEOUT = 3600.0  # seconds for one embed command
URL_RE = re.compile(r" at (https?://[^\s/]+)")
HIT_RE = re.compile(r"^\s*\d+\.\s+\S+(?:\s+(?:fused|bm25)\s+\S+)?\s+\[([^\]]+)\]")

PREPARE_SCRIPT = '''\
"""The FAQ's index texts (question column) encoded once with sentence-transformers."""
import csv
import sys

import numpy as np
from sentence_transformers import SentenceTransformer

model_folder, faq, vectors_path, ids_path = sys.argv[1:5]
with open(faq, encoding="utf-8", newline="") as handle:
    rows = [row for row in csv.DictReader(handle) if row["question"].strip()]
model = SentenceTransformer(model_folder, device="cpu")
vectors = model.encode([row["question"] for row in rows], normalize_embeddings=True)
np.save(vectors_path, vectors.astype(np.float32))
with open(ids_path, "w", encoding="utf-8") as handle:
    handle.write("\\n".join(row["id"] for row in rows) + "\\n")
'''

REFERENCE_QUERY = '''\
"""One question against stored vectors, the sentence-transformers way."""
import sys

import numpy as np
from sentence_transformers import SentenceTransformer

model_folder, vectors_path, ids_path, question = sys.argv[1:5]
model = SentenceTransformer(model_folder, device="cpu")
query = model.encode([question], normalize_embeddings=True)[0]
vectors = np.load(vectors_path)
with open(ids_path, encoding="utf-8") as handle:
    ids = handle.read().splitlines()
scores = vectors @ query
for i in np.argsort(-scores)[:5]:
    print(ids[i], f"{scores[i]:.3f}")
'''

REFERENCE_EMBED = '''\
"""A text file, one text a line, to a .npy of sentence vectors, the sentence-transformers way."""
import sys

import numpy as np
from sentence_transformers import SentenceTransformer

model_folder, source, output = sys.argv[1:4]
with open(source, encoding="utf-8") as handle:
    texts = handle.read().splitlines()
model = SentenceTransformer(model_folder, device="cpu")
np.save(output, model.encode(texts, batch_size=32))
'''

SCRIPTS = {
    "prepare.py": PREPARE_SCRIPT,
    "reference_query.py": REFERENCE_QUERY,
    "reference_embed.py": REFERENCE_EMBED,
}
PACKAGES = (
    "semsearch",
    "torch",
    "onnxruntime",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "numpy",
)


class BenchError(RuntimeError):
    """A command failed or hung: the message says which and shows its stderr."""


@dataclass
class Side:
    """One process measured over several runs."""

    name: str
    command: list[str]
    measure: Callable[[], tuple[float, str]]  # wall seconds and stdout of one run
    runs: list[float] = field(default_factory=list)
    output: str = ""  # stdout of the last run

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def noisy(self) -> bool:
        return _common.noisy(self.runs)


class Report:
    """Lines printed as they come and kept for --out."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def write(self, path: Path) -> None:
        _common.write_result(path, "\n".join(self.lines) + "\n")


# -- inputs -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Wall time of fresh semsearch processes vs the sentence-transformers script."
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs, short cases (5)")
    parser.add_argument("--embed-repeats", type=int, default=3, help="timed runs, embed (3)")
    parser.add_argument("--glosses", type=int, default=16000, help="texts for embed (16000)")
    parser.add_argument(
        "--only", default=",".join(CASES), help=f"comma list of cases ({','.join(CASES)})"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="SEMSEARCH_CACHE for every process (default: semsearch-cold-cache in the temp dir;"
        " --smoke: $SEMSEARCH_CACHE where set)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the report here (default bench/results/cold.txt)",
    )
    _common.add_smoke_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # one run of `query`, `embed` and their references
        args.only, args.repeats, args.embed_repeats, args.glosses = "query,embed", 1, 1, 16
    args.out = _common.results_path("bench/cold.py", args.out, "cold.txt", args.smoke)
    if args.cache is None:
        inherited = os.environ.get("SEMSEARCH_CACHE") if args.smoke else None
        args.cache = Path(inherited or Path(tempfile.gettempdir()) / "semsearch-cold-cache")
    for name in ("repeats", "embed_repeats", "glosses"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.cases = [case.strip() for case in args.only.split(",") if case.strip()]
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown or not args.cases:
        parser.error(f"--only: unknown case(s) {', '.join(unknown)}; choose from {CASES}")
    return args


def executables() -> tuple[str, str]:
    """The Python running this script and the semsearch beside it (else on PATH)."""
    python = sys.executable
    beside = Path(python).with_name("semsearch")
    semsearch = str(beside) if beside.is_file() else shutil.which("semsearch")
    if semsearch is None:
        sys.exit("bench/cold.py: no semsearch executable beside the Python or on PATH")
    return python, semsearch


def write_glosses(path: Path, count: int, smoke: bool = False) -> int:
    """The first `count` WordNet glosses, one a line (--smoke: the shipped generic
    questions, so that the smoke run needs no data); how many were written."""
    texts: list[str] = []
    source = SMOKE_TEXTS if smoke else GLOSSES
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            text = " ".join((line if smoke else json.loads(line)["text"]).split())
            if text:
                texts.append(text)
                if len(texts) == count:
                    break
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return len(texts)


# -- running processes ------------------------------------------------------------------
def shown(command: Sequence[str]) -> str:
    """A command as one would type it from the repository root."""
    parts = []
    for part in command:
        try:
            parts.append(str(Path(part).relative_to(Path.cwd())) if part.startswith("/") else part)
        except ValueError:
            parts.append(part)
    return shlex.join(parts)


def run(command: Sequence[str], env: dict[str, str], timeout: float) -> tuple[float, str]:
    """Wall seconds of one process from start to exit, and its stdout."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{shown(command)}: still running after {timeout:.0f} s") from None
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(
            f"{shown(command)}: exit code {done.returncode}\n{done.stderr.strip()[-2000:]}"
        )
    return seconds, done.stdout


def run_here(command: Sequence[str]) -> tuple[float, str]:
    """--smoke: a reference script's command (`python SCRIPT ARGS`) run inside this
    process, where sentence-transformers is imported once: wall seconds and stdout."""
    out = io.StringIO()
    saved = sys.argv
    sys.argv = list(command[1:])
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(command[1], run_name="__main__")
    finally:
        sys.argv = saved
    return time.perf_counter() - started, out.getvalue()


def serve_startup(command: Sequence[str], env: dict[str, str], timeout: float) -> float:
    """Seconds from Popen until GET /health answers 200; the server gets SIGTERM after."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    urls: queue.Queue[str] = queue.Queue()
    tail: deque[str] = deque(maxlen=30)

    def read_stderr() -> None:  # drains stderr to the end, so the server never blocks on it
        assert process.stderr is not None
        for line in process.stderr:
            tail.append(line)
            match = URL_RE.search(line)
            if match:
                urls.put(match.group(1))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for us
    deadline = started + timeout
    try:
        url = wait_for_url(urls, process, deadline)
        if url is None:
            reader.join(2)
            raise BenchError(
                f"{shown(command)}: no URL on stderr"
                + (
                    f" after {timeout:.0f} s"
                    if process.poll() is None
                    else f", exit code {process.returncode}"
                )
                + "\n"
                + "".join(tail).strip()[-2000:]
            )
        while True:
            try:
                with opener.open(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or not ready (HTTPError is a URLError)
            if process.poll() is not None:
                raise BenchError(f"{shown(command)}: exited before /health answered 200")
            if time.perf_counter() > deadline:
                raise BenchError(f"{shown(command)}: /health not 200 after {timeout:.0f} s")
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)


def wait_for_url(
    urls: queue.Queue[str], process: subprocess.Popen[str], deadline: float
) -> str | None:
    """The URL the server announces, or None when it exits or the deadline passes first."""
    while process.poll() is None and time.perf_counter() < deadline:
        try:
            return urls.get(timeout=0.01)
        except queue.Empty:
            pass
    try:  # it may have printed the URL just before exiting
        return urls.get(timeout=0.5)
    except queue.Empty:
        return None


def rounds(sides: list[Side], repeats: int, what: str) -> None:
    """The sides interleaved: A B C, A B C, ... so load hits them alike."""
    for round_number in range(1, repeats + 1):
        for side in sides:
            seconds, side.output = side.measure()
            side.runs.append(seconds)
            progress(f"{what} round {round_number}/{repeats}: {side.name} {side.runs[-1]:.2f} s")


def progress(message: str) -> None:
    print(f"bench/cold.py: {message}", file=sys.stderr, flush=True)


# -- the commands -----------------------------------------------------------------------
@dataclass
class Plan:
    """Every command of a run, with its files in the temporary folder `work`."""

    python: str
    semsearch: str
    work: Path
    model: Path | None = None  # the index's encoder (--smoke: a tiny one); default MiniLM

    @property
    def reference_model(self) -> str:
        """The reference scripts' model folder: the same model as semsearch's."""
        from semsearch.models import resolve_model

        return str(self.model or resolve_model("all-MiniLM-L6-v2"))

    @property
    def index(self) -> Path:
        return self.work / "demo"

    @property
    def vectors(self) -> Path:
        return self.work / "faq-vectors.npy"

    @property
    def ids(self) -> Path:
        return self.work / "faq-ids.txt"

    def write_scripts(self) -> None:
        for name, source in SCRIPTS.items():
            (self.work / name).write_text(source, encoding="utf-8")

    def build(self) -> list[str]:
        model = ["--model", str(self.model)] if self.model else []
        return [self.semsearch, "index", str(FAQ), "-o", str(self.index), "--quiet", *model]

    def prepare(self) -> list[str]:
        script = str(self.work / "prepare.py")
        model = self.reference_model
        return [self.python, script, model, str(FAQ), str(self.vectors), str(self.ids)]

    def reference(self) -> list[str]:
        script = str(self.work / "reference_query.py")
        model = self.reference_model
        return [self.python, script, model, str(self.vectors), str(self.ids), QUESTION]

    def short(self, case: str) -> list[str]:
        return {
            "query": [self.semsearch, "query", str(self.index), QUESTION, "-k", str(TOP_K)],
            "tokens": [self.semsearch, "tokens", TOKENS_TEXT],
            "similarity": [self.semsearch, "similarity", *SIMILARITY_TEXTS],
            "serve": [self.semsearch, "serve", str(self.index), "--port", "0"],
        }[case]

    def embed(self, source: Path, tag: str = "") -> dict[str, list[str]]:
        """Reference first, then each backend; outputs named TAG{ref,BACKEND}.npy."""
        script = str(self.work / "reference_embed.py")
        made = {
            "reference (s-t encode, batch 32)": [
                self.python,
                script,
                self.reference_model,
                str(source),
                str(self.work / f"{tag}ref.npy"),
            ]
        }
        for backend in EMBED_TARGETS:
            output = str(self.work / f"{tag}{backend}.npy")
            made[f"semsearch embed --backend {backend}"] = [
                self.semsearch,
                "embed",
                str(source),
                "-o",
                output,
                "--backend",
                backend,
                "--quiet",
                *(["--model", str(self.model)] if self.model else []),
            ]
        return made


def timed_process(
    command: list[str], env: dict[str, str], timeout: float
) -> Callable[[], tuple[float, str]]:
    return lambda: run(command, env, timeout)


def timed_serve(command: list[str], env: dict[str, str]) -> Callable[[], tuple[float, str]]:
    return lambda: (serve_startup(command, env, SHORT_TIMEOUT), "")


# -- the cases --------------------------------------------------------------------------
def short_cases(
    cases: list[str], args: argparse.Namespace, plan: Plan, env: dict[str, str], out: Report
) -> None:
    progress(f"building the demo index: {shown(plan.build())}")
    build_seconds, _ = run(plan.build(), env, SHORT_TIMEOUT)
    reference_command = plan.reference()
    if args.smoke:  # the reference scripts inside this process: one import of s-t
        run_here(plan.prepare())
        measure_reference = lambda: run_here(reference_command)  # noqa: E731
    else:
        run(plan.prepare(), env, SHORT_TIMEOUT)
        measure_reference = timed_process(reference_command, env, SHORT_TIMEOUT)
    stored = np.load(plan.vectors).shape[0]
    reference = Side("reference (s-t + NumPy)", reference_command, measure_reference)
    sides = [reference]
    for case in cases:
        command = plan.short(case)
        if case == "serve":
            sides.append(
                Side("semsearch serve (to /health 200)", command, timed_serve(command, env))
            )
        else:
            sides.append(
                Side(f"semsearch {case}", command, timed_process(command, env, SHORT_TIMEOUT))
            )

    if not args.smoke:
        progress("warm-up: one untimed run of every command")
        for side in sides:
            _, side.output = side.measure()
    rounds(sides, args.repeats, "short cases")
    checks = [
        f"index built in {build_seconds:.1f} s (untimed); the reference ranks {stored} vectors"
    ]
    for side in sides[1:]:
        if side.command[1] == "query":
            checks.append(top_ids_check(side.output, reference.output))

    out(f"cold one-shot processes: {args.repeats} run(s) each, interleaved; wall seconds")
    out(f"  {'side':34} {'median':>7} {'min':>7}  {'vs reference (median, min)':>27}  target")
    out("  " + "-" * 94)
    for side in sides:
        line = f"  {side.name:34} {side.median:7.2f} {side.best:7.2f}"
        if side is reference:
            out(line)
            continue
        if side.command[1] == "serve":
            out(f"{line}  {'':27}  (for scale: reference {reference.median:.2f} s)")
            continue
        ratio = side.median / reference.median
        line += f"  {_common.ratio(ratio, 17, 3)} {_common.ratio(side.best / reference.best, 8, 3)}"
        if side.command[1] == "query":
            met = "met" if ratio <= QUERY_TARGET else "NOT met"
            line += f"  <= {QUERY_TARGET:.2f}x: {met}"
        out(line)
    for check in checks:
        out(f"  check: {check}")
    footer(sides, out)


def top_ids_check(query_out: str, reference_out: str) -> str:
    """semsearch's top ids (read from its table) against the reference's top 5.

    semsearch lists each answer once (at its best-scoring entry) while the reference
    ranks raw entries, so the reference's ids are compared with entries sharing an
    answer merged, the way semsearch lists them.
    """
    ours = [m.group(1) for m in map(HIT_RE.match, query_out.splitlines()) if m]
    theirs = [line.split()[0] for line in reference_out.splitlines() if line.strip()]
    if not ours:
        return "top ids not compared: no ranked ids found in semsearch query's output"
    with FAQ.open(encoding="utf-8", newline="") as handle:
        answers = {row["id"]: row["answer"] for row in csv.DictReader(handle)}
    merged: list[str] = []
    for entry in theirs:
        if all(answers.get(entry, entry) != answers.get(kept, kept) for kept in merged):
            merged.append(entry)
    shared = min(len(ours), len(merged))
    same = "match" if ours[:shared] == merged[:shared] else "DIFFER from"
    return (
        f"semsearch's top {shared} ids {same} the reference's, entries sharing an answer"
        f" merged (semsearch: {', '.join(ours)}; reference: {', '.join(theirs)})"
    )


def embed_case(args: argparse.Namespace, plan: Plan, env: dict[str, str], out: Report) -> None:
    if not GLOSSES.is_file() and not args.smoke:
        out(
            f"embed: skipped: WordNet glosses not found at {GLOSSES} "
            "(the case reads ../shared/data/wordnet_glosses/ relative to the repository)"
        )
        out()
        return
    texts, warm = plan.work / "glosses.txt", plan.work / "glosses-warmup.txt"
    count = write_glosses(texts, args.glosses, args.smoke)
    warm_count = write_glosses(warm, min(WARMUP_GLOSSES, count), args.smoke)

    progress(f"embed warm-up on {warm_count} texts (exports to ONNX where not cached)")
    for name, command in plan.embed(warm, "warmup-").items():
        if args.smoke and name.startswith("reference"):
            run_here(command)
        else:
            run(command, env, EMBED_TIMEOUT)
    expected = np.load(plan.work / "warmup-ref.npy")
    checks = []
    for backend in EMBED_TARGETS:
        got = np.load(plan.work / f"warmup-{backend}.npy")
        cosine = (got * expected).sum(axis=1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
        )
        checks.append(
            f"{backend} vs reference on the {warm_count} warm-up texts: max|diff| "
            f"{np.abs(got - expected).max():.1e}, mean cosine {cosine.mean():.5f}"
        )

    sides = [
        Side(
            name,
            command,
            functools.partial(run_here, command)
            if args.smoke and name.startswith("reference")
            else timed_process(command, env, EMBED_TIMEOUT),
        )
        for name, command in plan.embed(texts).items()
    ]
    rounds(sides, args.embed_repeats, "embed")

    reference = sides[0]
    out(
        f"whole-process encoding of {count} {'texts' if args.smoke else 'WordNet glosses'}: "
        f"{args.embed_repeats} run(s) each,"
        " interleaved; wall seconds"
    )
    out(
        f"  {'side':34} {'median':>7} {'min':>7} {'texts/s':>8}"
        f"  {'speed-up (median, min)':>23}  target"
    )
    out("  " + "-" * 94)
    for side, target in zip(sides, [None, *EMBED_TARGETS.values()], strict=True):
        line = f"  {side.name:34} {side.median:7.2f} {side.best:7.2f} {count / side.median:8.1f}"
        if target is None:
            out(line)
            continue
        speedup = reference.median / side.median
        met = "met" if speedup >= target else "NOT met"
        cells = f"{_common.ratio(speedup, 13, 2)} {_common.ratio(reference.best / side.best, 8, 2)}"
        out(f"{line}  {cells}  >= {target:.1f}x: {met}")
    for check in checks:
        out(f"  check: {check}")
    footer(sides, out)


def footer(sides: list[Side], out: Report) -> None:
    for side in sides:
        out(_common.runs_line(side.name, [round(seconds, 3) for seconds in side.runs]))
    noisy = [side.name for side in sides if side.noisy]
    if noisy:
        out(_common.noisy_warning(noisy))
    out()


# -- the header -------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header(
    cases: list[str], plan: Plan, env: dict[str, str], out: Report, smoke: bool = False
) -> None:
    rows = {
        "command": shown([plan.python, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": f"{os.cpu_count()} cores, {cpu_model()} ({platform.machine()})",
        "os": platform.platform(),
        "load_average_1min": f"{os.getloadavg()[0]:.2f}",
        "python": f"{platform.python_version()} ({shown([plan.python])})",
    }
    for package in PACKAGES:
        rows[package] = version(package)
    rows["SEMSEARCH_CACHE"] = env["SEMSEARCH_CACHE"]
    rows["TMP"] = f"{plan.work} (removed at the end)"
    for key, value in rows.items():
        out(f"{key + ':':24} {value}")
    if smoke:
        out("commands (each timed run a fresh process; --smoke: the scripts run in bench/cold.py):")
    else:
        out("commands (each timed run a fresh process):")
    listed: dict[str, list[str]] = {}
    short = [case for case in SHORT_CASES if case in cases]
    if short:
        listed["index (once, untimed)"] = plan.build()
        listed["reference vectors (once, untimed)"] = plan.prepare()
        listed["reference (s-t + NumPy)"] = plan.reference()
        listed.update({case: plan.short(case) for case in short})
    embed = "embed" in cases and GLOSSES.is_file()  # else the case says it is skipped
    if embed:
        listed.update(plan.embed(plan.work / "glosses.txt"))
    for name, command in listed.items():
        out(f"  {name}:")
        out(f"    {shown(command)}")
    scripts = [
        name
        for name, case in (
            ("prepare.py", short),
            ("reference_query.py", short),
            ("reference_embed.py", embed),
        )
        if case
    ]
    for name in scripts:
        out(f"{plan.work / name}:")
        for line in SCRIPTS[name].splitlines():
            out(f"    {line}" if line else "")
    out()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEMSEARCH_CACHE": str(args.cache.resolve())}
    out = Report()
    work = Path(tempfile.mkdtemp(prefix="semsearch-cold-"))
    try:
        plan = Plan(*executables(), work, _common.smoke_model(args) if args.smoke else None)
        plan.write_scripts()
        header(args.cases, plan, env, out, args.smoke)
        short = [case for case in SHORT_CASES if case in args.cases]
        if short:
            short_cases(short, args, plan, env, out)
        if "embed" in args.cases:
            embed_case(args, plan, env, out)
    except BenchError as error:
        print(f"bench/cold.py: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out(f"{'load_average_1min_after:':24} {os.getloadavg()[0]:.2f}")
    out.write(args.out)
    progress(f"written to {shown([str(args.out.resolve())])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
