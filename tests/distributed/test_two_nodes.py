"""A real Ray cluster of two nodes on this machine, as `ray start` sets one up (token
authentication on), built through `--address`: the same answers as the local engine,
and a missing or wrong token refused in one line naming what to set.

The nodes are `ray start --block` processes in sessions of their own, each with one
CPU, so the two workers of the build run one on each node; both are killed (their
process groups, then anything left that names the cluster's temporary folder) when
the module ends. The head node's ONNX cache starts empty, so its worker exports the
model on its node; the other node's holds the export already, as a node that built
before would.
"""

from __future__ import annotations

import contextlib
import json
import os
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

import numpy as np
import pytest

from semsearch.encoders import load_encoder
from semsearch.index import IndexStore
from tests.distributed.test_ray_engine import faq_rows, tiny, write_jsonl

pytest.importorskip("ray", reason="ray is not installed (pip install 'semsearch[ray]')")

RAY = str(Path(sys.executable).with_name("ray"))
STARTED = "Ray runtime started"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    node = subprocess.Popen(
        [RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert node.stdout is not None
    seen = []
    for line in node.stdout:  # the node is up once it says so
        seen.append(line)
        if STARTED in line:
            return node
    raise AssertionError(f"ray start ended ({node.wait()}): {''.join(seen)[-2000:]}")


def _stop(nodes: list[subprocess.Popen[str]], temp: str) -> None:
    for node in reversed(nodes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)
    # anything a node started in a session of its own still names the folder
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if temp.encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(onnx_cache: Path, tiny_bert: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """(address, the environment a driver of it needs, the head node's ONNX cache) of a
    two-node cluster."""
    load_encoder(kind="bert", model=str(tiny_bert), backend="onnx").prepare()  # onnx_cache
    env = dict(
        os.environ,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),  # not the user's ~/.ray/auth_token
        RAY_USAGE_STATS_ENABLED="0",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    temp = tempfile.mkdtemp(prefix="ray2n", dir="/tmp")  # short: Ray's socket paths
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head_cache = Path(temp) / "head-cache"
    nodes: list[subprocess.Popen[str]] = []
    try:
        nodes.append(
            _start(
                ["--head", "--port", str(port), "--include-dashboard", "false",
                 "--temp-dir", temp, "--disable-usage-stats"],
                dict(env, SEMSEARCH_CACHE=str(head_cache)),
            )
        )  # fmt: skip
        nodes.append(_start(["--address", address, "--resources", '{"second": 1}'], env))
        yield address, env, head_cache
    finally:
        _stop(nodes, temp)


def _index(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "semsearch", "index", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_build_on_two_nodes_answers_as_the_local_engine(
    cluster: tuple[str, dict[str, str], Path], tiny_bert: Path, tmp_path: Path
) -> None:
    address, env, head_cache = cluster
    corpus = write_jsonl(tmp_path / "faq.jsonl", faq_rows(1000, seed=11))
    model = tiny(tiny_bert, "onnx")
    common = [str(corpus), *model, "--index-type", "flat", "--json"]
    remote = _index([*common, "-o", str(tmp_path / "ray"), "--engine", "ray",
                     "--address", address, "--workers", "2"], env)  # fmt: skip
    out, err = remote.communicate(timeout=300)
    assert remote.returncode == 0, err
    assert json.loads(out)["count"] == 1000
    assert "encoding on 2 Ray workers, 1 CPU each" in err  # one a node: a CPU each
    exported = [p.name.split("-")[-2] for p in (head_cache / "onnx").iterdir()]
    assert exported == ["fp32"]  # by the worker on the head node, into its empty cache
    local = _index([*common, "-o", str(tmp_path / "local"), "-q"], dict(env, OMP_NUM_THREADS="1"))
    assert local.wait(timeout=300) == 0
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx")
    queries = encoder.encode([row["question"] for row in faq_rows(30, seed=12)])
    found = {}
    for name in ("ray", "local"):
        with IndexStore.open(tmp_path / name) as store:
            found[name] = [
                [(r.id, round(s, 5)) for r, s in hits] for hits in store.search(queries, 10)
            ]
    assert found["ray"] == found["local"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq.jsonl", "local", "ray"]
    assert np.isfinite([s for hits in found["ray"] for _, s in hits]).all()


def test_a_missing_or_wrong_token_is_one_line(
    cluster: tuple[str, dict[str, str], Path], tmp_path: Path
) -> None:
    address, env, _ = cluster
    corpus = write_jsonl(tmp_path / "faq.jsonl", faq_rows(3))
    missing = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    wrong = dict(env, RAY_AUTH_TOKEN=secrets.token_hex(16))
    args = [str(corpus), "-o", str(tmp_path / "idx"), "--engine", "ray", "--address", address, "-q"]
    started = time.monotonic()
    runs = [_index(args, missing), _index(args, wrong)]  # side by side: each waits seconds
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [1, 1]
    help_line = (
        "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or the file "
        "~/.ray/auth_token; `ray get-auth-token` prints it on the head node) (option --address)"
    )
    assert errors[0].splitlines() == [
        f"semsearch: error: the Ray cluster at {address} uses token authentication: {help_line}"
    ]
    assert errors[1].splitlines() == [
        f"semsearch: error: the Ray cluster at {address} refused this process's token: give "
        f"the cluster's own; {help_line}"
    ]
    assert time.monotonic() - started < 60 and not (tmp_path / "idx").exists()
