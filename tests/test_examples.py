"""What a newcomer copies from the README works as written: the `semsearch eval` examples use
the sample data in examples/, whose figures the README quotes (tests/test_readme.py runs
every README command and compares what it prints), and the deployment files in deploy/
(the systemd unit's and the Dockerfile's command lines start a real server that answers
/health)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
UNIT = ROOT / "deploy" / "semsearch.service"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

# What the default model (all-MiniLM-L6-v2) measured on the samples; the Spearman of the
# STS sample is the same on the torch and ONNX backends to the last digit (ranks only).
STS_SAMPLE_SPEARMAN = 0.8265558552345007
BEIR_SAMPLE = {  # hybrid, the default mode
    "ndcg@10": 0.9855027925476982,
    "mrr@10": 0.9880952380952381,
    "recall@1": 0.9166666666666666,
    "recall@10": 0.9880952380952381,
    "map@100": 0.9775910364145659,
}


def readme_commands(program: str) -> list[list[str]]:
    """The argv of every line of a ```bash block in the README that runs `program`
    (comments dropped), e.g. program="semsearch eval"."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            if line.strip().startswith(program + " "):
                commands.append(shlex.split(line, comments=True))
    return commands


EVAL_EXAMPLES = [
    argv for argv in readme_commands("semsearch eval") if "examples/" in " ".join(argv)
]


def run_cli(argv: list[str]) -> Any:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, f"{shlex.join(argv)}\n{result.output}"
    return result


# -- item 18: eval examples on data in the repository ---------------------------------------
def test_readme_eval_examples_use_repository_data() -> None:
    subcommands = {argv[2] for argv in EVAL_EXAMPLES}
    assert subcommands == {"sts", "retrieval", "sweep", "classify"}
    for argv in readme_commands("semsearch eval"):  # none may need ../shared/data
        assert "../shared" not in " ".join(argv), shlex.join(argv)


@pytest.mark.real
def test_sts_sample_spearman_with_the_default_model(minilm_folder: Path) -> None:
    result = run_cli(["eval", "sts", str(EXAMPLES / "sts-sample.tsv"), "--json", "--quiet"])
    payload = json.loads(result.stdout)
    assert payload["pairs"] == 98 and payload["sentences"] == 164
    assert payload["spearman"] > 0.75
    assert payload["spearman"] == pytest.approx(STS_SAMPLE_SPEARMAN, abs=1e-6)
    assert f"Spearman x100: {100 * STS_SAMPLE_SPEARMAN:.2f}" in README.read_text()


@pytest.mark.real
def test_beir_sample_figures_match_the_readme(minilm_folder: Path) -> None:
    result = run_cli(["eval", "retrieval", str(EXAMPLES / "beir-sample"), "--json", "--quiet"])
    payload = json.loads(result.stdout)
    assert (payload["corpus"], payload["queries"], payload["skipped_queries"]) == (48, 42, 0)
    readme = README.read_text()
    for name, value in BEIR_SAMPLE.items():
        assert payload[name] == pytest.approx(value, abs=1e-6), name
    assert f"nDCG@10 x100: {100 * BEIR_SAMPLE['ndcg@10']:.2f}" in readme


def test_sts_sample_spreads_over_the_whole_scale() -> None:
    from semsearch.evaluation.data import read_sts

    pairs = read_sts(EXAMPLES / "sts-sample.tsv")
    assert len(pairs) == 98
    assert pairs.scores.min() == 0.0 and pairs.scores.max() == 5.0
    buckets = {int(score) for score in pairs.scores if score < 5}
    assert buckets == {0, 1, 2, 3, 4}
    assert all(((pairs.scores >= low) & (pairs.scores < low + 1)).sum() >= 6 for low in range(5))


def test_beir_sample_is_consistent() -> None:
    from semsearch.evaluation.retrieval import BeirFolder

    folder = EXAMPLES / "beir-sample"
    beir = BeirFolder.open(folder)
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    ids = [doc["_id"] for doc in corpus]
    assert len(ids) == len(set(ids)) == 48
    assert all(doc["title"] and doc["text"] for doc in corpus)
    assert set(beir.queries) == set(beir.qrels) and len(beir.queries) == 42
    for docs in beir.qrels.values():
        assert 1 <= len(docs) <= 2 and set(docs) <= set(ids)


# -- item 19: the deployment files ------------------------------------------------------------
def call_health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


@contextmanager
def started(argv: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """Run a `semsearch serve` command line; yield its announced URL and the process.
    Leaving the block sends SIGTERM, as systemd and docker stop do, and expects exit 0."""
    process = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = ""
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            seen += line
            found = re.search(r" at (http://127\.0\.0\.1:\d+) ", line)
            url = found.group(1) if found else None
        assert url, f"no URL announced by {shlex.join(argv)}: {seen}"
        yield url, process
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=45)
        assert process.returncode == 0, seen + rest
        assert "semsearch: stopped after" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def faq_index(demo_index: Path) -> Path:
    """The session's demo index; read only."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    return demo_index


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


def test_systemd_unit_parses() -> None:
    unit = read_unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["Type"] == "simple" and service["KillSignal"] == "SIGTERM"
    assert service["Environment"] == "SEMSEARCH_CACHE=/var/cache/semsearch"
    assert service["CacheDirectory"] == "semsearch"  # systemd creates /var/cache/semsearch
    # longer than the server's graceful shutdown (ServeConfig.graceful_timeout, 30 s)
    from semsearch.service.config import ServeConfig

    assert int(service["TimeoutStopSec"]) > ServeConfig().graceful_timeout
    argv = shlex.split(service["ExecStart"])
    assert argv[:3] == ["/opt/semsearch/.venv/bin/semsearch", "serve", "/srv/semsearch/faq"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def unit_for(index: Path, cache: Path) -> str:
    """The unit with its paths pointing at this test's venv, index and cache."""
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace("/opt/semsearch/.venv/bin/", f"{Path(sys.executable).parent}/")
    text = text.replace("/opt/semsearch", str(ROOT)).replace("/var/cache/semsearch", str(cache))
    return text.replace("/srv/semsearch/faq", str(index)).replace(
        "/srv/semsearch", str(index.parent)
    )


@pytest.mark.real
def test_systemd_execstart_serves_health(faq_index: Path, onnx_cache: Path, tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(unit_for(faq_index, onnx_cache))
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).is_file() and argv[argv.index("--port") + 1] == "8000"
    argv[argv.index("--port") + 1] = "0"  # a free port instead of 8000
    name, value = service["Environment"].split("=", 1)
    with started(argv, env={name: value}) as (url, _):
        health = call_health(url)
        assert (health["status"], health["index"], health["count"]) == ("ok", "faq", 106)
    verify = shutil.which("systemd-analyze")
    if verify:  # syntax, directives and the executable, checked by systemd itself
        copy = tmp_path / "semsearch.service"
        copy.write_text(unit_for(faq_index, onnx_cache))
        checked = subprocess.run([verify, "verify", str(copy)], capture_output=True, text=True)
        assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr


@pytest.mark.real
def test_two_processes_on_one_folder_both_follow_an_add(faq_index: Path, tmp_path: Path) -> None:
    """The README's several-processes-behind-a-balancer setup: each process reloads the
    shared folder by itself after a write."""
    index = tmp_path / "faq"
    shutil.copytree(faq_index, index)
    argv = [str(Path(sys.executable).parent / "semsearch"), "serve", str(index), "--port", "0"]
    with started(argv) as (first, _), started(argv) as (second, _):
        assert first != second
        new = tmp_path / "new.csv"
        new.write_text("id,question,answer\nicon,Can I change the app icon?,Settings > Icon.\n")
        run_cli(["add", str(index), str(new)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(call_health(url)["count"] == 107 for url in (first, second)):
                break
            time.sleep(0.2)
        assert [call_health(url)["count"] for url in (first, second)] == [107, 107]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_dockerfile_copies_files_that_exist_and_pins_the_makefiles_torch() -> None:
    steps = dockerfile()
    copies = [shlex.split(rest)[:-1] for word, rest in steps if word == "COPY"]
    assert copies and all((ROOT / source).exists() for sources in copies for source in sources)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not any(source.split("/")[0] in ignored for sources in copies for source in sources)
    pin = re.search(r"^TORCH \?= (\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert pin
    wanted = f"pip install {pin.group(1)} --index-url https://download.pytorch.org/whl/cpu"
    assert wanted in [rest for word, rest in steps if word == "RUN"]


@pytest.mark.real
def test_dockerfile_commands_build_an_index_and_serve_it(faq_index: Path, onnx_cache: Path) -> None:
    steps = dockerfile()
    builds = [
        shlex.split(rest) for word, rest in steps if word == "RUN" and rest.startswith("semsearch ")
    ]
    assert builds == [["semsearch", "index", "examples/faq.csv", "-o", "/srv/semsearch/demo"]]
    demo = faq_index  # the demo_index fixture (tests/conftest.py) is this build
    argv = json.loads(dict(steps)["ENTRYPOINT"]) + json.loads(dict(steps)["CMD"])
    assert argv == ["semsearch", "serve", "/srv/semsearch/demo", "--host", "0.0.0.0",
                    "--port", "8000"]  # fmt: skip
    argv[0] = str(Path(sys.executable).parent / "semsearch")
    argv[2], argv[4], argv[6] = str(demo), "127.0.0.1", "0"  # loopback, a free port
    with started(argv) as (url, _):
        assert call_health(url)["count"] == 106
        check = dict(steps)["HEALTHCHECK"].split(" CMD ", 1)[1]
        probe = json.loads(check)
        assert probe[0] == "python"
        probe = [sys.executable, *probe[1:-1], probe[-1].replace("http://127.0.0.1:8000", url)]
        assert subprocess.run(probe, timeout=30).returncode == 0


def test_readme_nginx_block_is_the_deploy_file() -> None:
    block = re.search(r"```nginx\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "the README's Production section shows the nginx block"
    lines = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):  # the file's header says where it goes
        lines.pop(0)
    assert block.group(1).strip() == "\n".join(lines).strip()
    assert "client_max_body_size 4m;" in block.group(1)
    from semsearch.service.config import ServeConfig

    assert ServeConfig().max_body_bytes == 4 * 1024 * 1024  # what the 4m above matches
