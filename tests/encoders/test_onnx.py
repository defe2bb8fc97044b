"""Encoder backends: ONNX Runtime fp32 and int8 against torch, the export cache, and an
index refusing vectors of another precision."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import EncoderConfig, load_settings
from semsearch.corpus import open_corpus
from semsearch.encoders import base, load_encoder
from semsearch.encoders.runners import resolve_backend
from semsearch.errors import ConfigError, EncoderMismatchError, MissingExtraError
from semsearch.evaluation.common import encode_unique
from semsearch.evaluation.data import read_sts
from semsearch.index import IndexStore
from semsearch.search import SearchEngine
from tests.conftest import shared_data

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "examples" / "faq.csv"


def faq_texts() -> list[str]:
    """Real text that every clone has: the demo FAQ's questions and answers."""
    with FAQ.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["question"] for row in rows] + [row["answer"] for row in rows]


def onnx_folders(cache: Path) -> set[str]:
    folder = cache / "onnx"
    if not folder.exists():
        return set()
    return {p.name for p in folder.iterdir() if ".tmp-" not in p.name}


@pytest.fixture(scope="module")
def minilm_vectors(minilm_folder):
    """The default model's vectors of the FAQ texts, per backend."""
    texts = faq_texts()
    return {
        backend: load_encoder(model=str(minilm_folder), backend=backend).encode(texts)
        for backend in ("torch", "onnx", "onnx-int8")
    }


def test_onnx_fp32_gives_the_torch_vectors_on_real_text(minilm_vectors):
    difference = np.abs(minilm_vectors["onnx"] - minilm_vectors["torch"]).max()
    assert difference < 1e-5


def test_onnx_int8_stays_close_to_fp32_on_real_text(minilm_vectors):
    cosines = (minilm_vectors["onnx-int8"] * minilm_vectors["torch"]).sum(axis=1)
    assert cosines.mean() >= 0.99
    assert cosines.min() > 0.95
    assert np.abs(minilm_vectors["onnx-int8"] - minilm_vectors["torch"]).max() > 1e-4  # not fp32


def test_int8_keeps_stsb_dev_spearman_within_half_a_point(minilm_folder, stsb_dev_minilm):
    """fp32 is the default backend's result (its vectors equal torch's to 1e-5, above)."""
    from scipy.stats import spearmanr

    pairs = read_sts(shared_data("stsb"), split="dev")
    both = [*pairs.sentence1, *pairs.sentence2]
    encoder = load_encoder(model=str(minilm_folder), backend="onnx-int8")
    vectors, rows, _ = encode_unique(encoder, both, show_progress=False)  # each text once
    first, second = vectors[rows[: len(pairs)]], vectors[rows[len(pairs) :]]
    int8 = spearmanr((first * second).sum(axis=1), pairs.scores).statistic
    fp32 = stsb_dev_minilm.spearman
    assert stsb_dev_minilm.encoder["backend"] == "onnx"
    assert fp32 == pytest.approx(0.8672, abs=5e-4)  # all-MiniLM-L6-v2, STSb dev
    assert abs(int8 - fp32) * 100 < 0.5


@pytest.mark.parametrize(
    "options",
    [
        {"pooling": "cls"},
        {"pooling": "pooler"},
        {"pooling": "mean", "skip_special_tokens": True},
        {"pooling": "max", "layers": "-2,-1", "layer_combine": "sum"},
        {"pooling": "mean_max", "layers": "0,-1", "layer_combine": "concat"},
        {"pooling": "last", "layers": "-3,-2,-1", "layer_combine": "mean"},
    ],
    ids=lambda options: "-".join(str(v) for v in options.values()),
)
def test_raw_bert_onnx_matches_torch_for_every_pooling_and_layer_choice(tiny_bert, options):
    texts = [*faq_texts()[:40], "", "a"]
    expected = load_encoder(kind="bert", model=str(tiny_bert), backend="torch", **options)
    got = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx", **options)
    assert got.dim == expected.dim
    assert np.abs(got.encode(texts, batch_size=7) - expected.encode(texts)).max() < 1e-5


def test_fingerprint_names_backend_and_precision(tiny_bert):
    fp32 = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx").fingerprint
    int8 = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx-int8").fingerprint
    torch_ = load_encoder(kind="bert", model=str(tiny_bert), backend="torch").fingerprint
    assert (fp32["backend"], fp32["precision"]) == ("onnx", "fp32")
    assert (int8["backend"], int8["precision"]) == ("onnx-int8", "int8")
    assert (torch_["backend"], torch_["precision"]) == ("torch", "fp32")


def test_auto_backend_and_its_errors():
    cpu, cuda = "cpu", "cuda"
    assert resolve_backend("auto", cpu) == "onnx"
    assert resolve_backend("auto", cuda) == "torch"
    assert resolve_backend("torch", cuda) == "torch"
    with pytest.raises(ConfigError, match=r"backend 'onnx-int8' runs on the CPU"):
        resolve_backend("onnx-int8", cuda)
    with pytest.raises(ConfigError, match=r"unknown backend 'tensorrt': choose one of auto, torch"):
        EncoderConfig(backend="tensorrt")
    with pytest.raises(ConfigError, match=r"threads must be at least 1"):
        EncoderConfig(threads=0)


def test_without_onnxruntime_auto_falls_back_to_torch(tiny_bert, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    assert resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(MissingExtraError, match=r"need the 'onnxruntime' package: pip install"):
        load_encoder(kind="bert", model=str(tiny_bert), backend="onnx").prepare()


def test_default_threads_follow_a_container_quota(tmp_path, monkeypatch):
    from semsearch.encoders import runners as onnx

    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(onnx, "CGROUP_CPU_MAX", cpu_max)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert onnx.default_threads() == cores  # no quota file
    cpu_max.write_text("max 100000\n")
    assert onnx.default_threads() == cores
    cpu_max.write_text("50000 100000\n")  # half a CPU still gets one thread
    assert onnx.default_threads() == 1
    cpu_max.write_text(f"{(cores + 8) * 100000} 100000\n")  # a quota above the mask
    assert onnx.default_threads() == cores


def test_default_threads_obey_omp_num_threads(tmp_path, monkeypatch):
    """OMP_NUM_THREADS lowers an encoder's default threads (torch and FAISS obey it too)
    but never raises them past the cores; Ray's CPUs are the cores whatever it says."""
    from semsearch.encoders import runners

    monkeypatch.setattr(runners, "CGROUP_CPU_MAX", tmp_path / "cpu.max")  # no quota
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert (runners.default_threads(), runners.available_cores()) == (1, cores)
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 8))
    assert runners.default_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert runners.default_threads() == cores


def test_backend_from_a_config_file(tmp_path):
    assert load_settings(ROOT / "configs" / "int8.toml").encoder.backend == "onnx-int8"
    preset = tmp_path / "int8.toml"
    preset.write_text('[encoder]\nbackend = "onnx-int8"\nthreads = 1\n')
    settings = load_settings(preset)
    assert (settings.encoder.backend, settings.encoder.threads) == ("onnx-int8", 1)


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.toml")), ids=str)
def test_every_preset_loads(preset):
    load_settings(preset)


# -- the export cache -------------------------------------------------------------------
def test_export_is_cached_and_reused(tiny_bert, onnx_cache, caplog):
    caplog.set_level(logging.INFO, logger="semsearch")
    options = {"kind": "bert", "model": str(tiny_bert), "pooling": "max", "layers": "-2"}
    before = onnx_folders(onnx_cache)
    load_encoder(backend="onnx", **options).prepare()
    assert "exporting" in caplog.text
    caplog.clear()
    made = onnx_folders(onnx_cache) - before
    assert len(made) == 1
    model = onnx_cache / "onnx" / made.pop() / "model.onnx"
    stamp = model.stat().st_mtime_ns
    load_encoder(backend="onnx", **options).prepare()
    assert caplog.text == ""  # the second run exports nothing and says nothing
    assert model.stat().st_mtime_ns == stamp
    info = (model.parent / "export.json").read_text()
    assert '"precision": "fp32"' in info and '"seconds"' in info


def test_one_export_serves_every_name_of_the_model(tiny_bert, onnx_cache, tmp_path, caplog):
    """The same weights and settings named otherwise (a copy of the folder here; the
    packaged model's short name against its path) reuse the export made under the first
    name: its key is the same, only the folder's readable prefix differs."""
    options = {"kind": "bert", "pooling": "mean", "layers": "-2,-1", "layer_combine": "sum"}
    first = load_encoder(model=str(tiny_bert), backend="onnx", **options)
    expected = first.encode(["one export, two names"])
    made = onnx_folders(onnx_cache)
    copy = shutil.copytree(tiny_bert, tmp_path / "elsewhere" / "same-bert")
    caplog.set_level(logging.INFO, logger="semsearch")
    second = load_encoder(model=str(copy), backend="onnx", **options)
    assert second.encode(["one export, two names"]).tolist() == expected.tolist()
    assert "exporting" not in caplog.text
    assert onnx_folders(onnx_cache) == made
    load_encoder(model=str(copy), backend="onnx", **{**options, "layers": "-1"}).prepare()
    (new,) = onnx_folders(onnx_cache) - made  # other settings: its own, under its own name
    assert new.startswith("elsewhere-same-bert-fp32-")


def test_export_is_rebuilt_when_settings_or_weights_change(tiny_bert, onnx_cache, tmp_path):
    load_encoder(kind="bert", model=str(tiny_bert), pooling="cls", backend="onnx").prepare()
    first = onnx_folders(onnx_cache)
    load_encoder(kind="bert", model=str(tiny_bert), pooling="last", backend="onnx").prepare()
    second = onnx_folders(onnx_cache)
    assert len(second - first) == 1  # another pooling, another export

    changed = tmp_path / "changed-bert"
    shutil.copytree(tiny_bert, changed)
    from transformers import BertModel

    model = BertModel.from_pretrained(changed)
    with torch.no_grad():
        model.pooler.dense.bias.add_(0.5)
    model.save_pretrained(changed)
    encoder = load_encoder(kind="bert", model=str(changed), pooling="cls", backend="onnx")
    vectors = encoder.encode(["the weights changed"])
    assert len(onnx_folders(onnx_cache) - second) == 1  # new weights, another export
    reference = load_encoder(kind="bert", model=str(changed), pooling="cls", backend="torch")
    assert np.abs(vectors - reference.encode(["the weights changed"])).max() < 1e-5


KILLED_EXPORT = textwrap.dedent(
    """
    import sys, time
    from semsearch.encoders import load_encoder, onnx

    real = onnx._export_fp32

    def export_then_hang(*args, **kwargs):
        real(*args, **kwargs)
        print("written", flush=True)
        time.sleep(120)

    onnx._export_fp32 = export_then_hang
    load_encoder(kind="bert", model=sys.argv[1], pooling="mean_max", backend="onnx").prepare()
    """
)


def test_an_interrupted_export_leaves_nothing_that_loads(tiny_bert, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    env = {**os.environ, "SEMSEARCH_CACHE": str(cache)}
    process = subprocess.Popen(  # a process of its own: the writer is SIGKILLed mid-export
        [sys.executable, "-c", KILLED_EXPORT, str(tiny_bert)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "written"  # the file is in staging
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    leftovers = list((cache / "onnx").iterdir())
    assert leftovers and all(".tmp-" in p.name for p in leftovers)  # no finished export
    # the next load (here, in this process: its own PID is alive, the dead writer's is not)
    monkeypatch.setenv("SEMSEARCH_CACHE", str(cache))
    caplog.set_level(logging.INFO, logger="semsearch")
    encoder = load_encoder(kind="bert", model=str(tiny_bert), pooling="mean_max", backend="onnx")
    assert encoder.encode(["after the crash"]).shape == (1, 64)
    assert "exporting" in caplog.text
    names = [p.name for p in (cache / "onnx").iterdir()]
    assert len(names) == 1 and ".tmp-" not in names[0]  # the dead writer's staging is gone


def test_unwritable_cache_is_a_clear_error(tiny_bert, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SEMSEARCH_CACHE", str(blocker))
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx")
    with pytest.raises(ConfigError, match=r"cannot write the ONNX cache in"):
        encoder.prepare()


# -- indexes and precision ----------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_index(tiny_sbert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8") / "index"
    encoder = load_encoder(model=str(tiny_sbert), backend="onnx-int8")
    IndexStore.build(folder, open_corpus(FAQ).chunks(64), encoder, index_type="flat").close()
    return folder


def test_int8_index_refuses_fp32_query_vectors_naming_both_backends(int8_index, tiny_sbert):
    store = IndexStore.open(int8_index)
    assert store.manifest.encoder["precision"] == "int8"
    for backend in ("torch", "onnx"):
        with pytest.raises(EncoderMismatchError) as caught:
            SearchEngine(store, load_encoder(model=str(tiny_sbert), backend=backend))
        message = str(caught.value)
        assert "the index was built with backend 'onnx-int8' (int8 vectors)" in message
        assert f"this encoder uses backend '{backend}' (fp32 vectors)" in message


def test_int8_index_opens_with_its_own_backend(int8_index):
    engine = SearchEngine.open(int8_index)
    assert engine.encoder.fingerprint["backend"] == "onnx-int8"
    hits = engine.search("How can I get my notes out as PDF files?", k=1)
    assert hits[0].id == "export-pdf-2" and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_fp32_backends_share_an_index(tiny_sbert, tmp_path):
    folder = tmp_path / "index"
    built = load_encoder(model=str(tiny_sbert), backend="torch")
    IndexStore.build(folder, open_corpus(FAQ).chunks(64), built, index_type="flat").close()
    onnx_engine = SearchEngine(IndexStore.open(folder), load_encoder(model=str(tiny_sbert)))
    assert onnx_engine.encoder.fingerprint["backend"] == "onnx"
    with pytest.raises(EncoderMismatchError, match=r"built with backend 'torch' \(fp32 vectors\)"):
        SearchEngine(
            IndexStore.open(folder), load_encoder(model=str(tiny_sbert), backend="onnx-int8")
        )


def test_cli_backend_option_and_mismatch(tiny_sbert, tmp_path):
    runner = CliRunner()
    folder = tmp_path / "index"
    built = runner.invoke(
        app, ["index", str(FAQ), "-o", str(folder), "--model", str(tiny_sbert), "-q",
              "--backend", "onnx-int8", "--threads", "1"],
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    question = "How can I get my notes out as PDF files?"  # an entry's own text: rank 1
    asked = runner.invoke(app, ["query", str(folder), question, "-k", "1", "--json"])
    assert asked.exit_code == 0 and '"id": "export-pdf-2"' in asked.stdout, asked.output
    refused = runner.invoke(app, ["query", str(folder), "export", "--backend", "torch"])
    assert refused.exit_code == 1
    assert "built with backend 'onnx-int8' (int8 vectors)" in refused.stderr
    assert "uses backend 'torch' (fp32 vectors)" in refused.stderr


# -- the chunked, prefetching loop (the GPU path's shape, run on the CPU) ------------------
def test_chunked_prefetching_encode_equals_the_plain_loop(tiny_bert, monkeypatch):
    texts = faq_texts() * 2 + [" ".join(["word"] * 300)]
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend="torch")
    expected = encoder.encode(texts, batch_size=16)
    assert encoder.truncated == 1
    monkeypatch.setattr(base, "CHUNK_TEXTS", 50)
    encoder.prefetch = True
    got = encoder.encode(texts, batch_size=16)
    assert encoder.truncated == 1
    assert np.abs(got - expected).max() < 1e-6
