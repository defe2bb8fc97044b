"""The question path without torch: a cached ONNX export answers from tokenizer.json, the
stored spec and ONNX Runtime alone, with the same vectors as before the change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from semsearch.corpus import open_corpus
from semsearch.encoders import load_encoder
from semsearch.index import IndexStore

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "examples" / "faq.csv"
REFERENCE = Path(__file__).parents[1] / "data" / "minilm-vectors.npz"
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "onnx")  # onnx: 1 s

REPORT_HEAVY = textwrap.dedent(
    f"""
    import json, sys
    def report():
        heavy = sorted(name for name in {HEAVY!r} if name in sys.modules)
        print("HEAVY " + json.dumps(heavy), file=sys.stderr)
    """
)
CLI = REPORT_HEAVY + textwrap.dedent(
    """
    sys.argv = ["semsearch", *sys.argv[1:]]
    from semsearch.cli.main import main
    try:
        main()
    finally:
        report()
    """
)
PYTHON_API = REPORT_HEAVY + textwrap.dedent(
    """
    from semsearch import SearchEngine
    hits = SearchEngine.open(sys.argv[1]).search("How can I get my notes out as PDF files?", k=1)
    print(hits[0].id)
    report()
    """
)
SERVICE = REPORT_HEAVY + textwrap.dedent(
    """
    from semsearch.service.server import build_service
    service = build_service(sys.argv[1])
    print(service.live.count)
    report()
    """
)


def run_python(script: str, *args: str, cache: Path) -> tuple[str, list[str]]:
    """stdout, and the heavy modules the process had imported when it ended."""
    env = {**os.environ, "SEMSEARCH_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("HEAVY ")]
    return done.stdout, json.loads(lines[-1].removeprefix("HEAVY "))


@pytest.fixture(scope="module")
def cached(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An index built on the onnx backend, and the cache holding its export."""
    cache = tmp_path_factory.mktemp("cold-cache")
    index = tmp_path_factory.mktemp("cold") / "faq"
    previous = os.environ["SEMSEARCH_CACHE"]
    os.environ["SEMSEARCH_CACHE"] = str(cache)
    try:
        encoder = load_encoder(model=str(tiny_sbert), backend="onnx")
        IndexStore.build(index, open_corpus(FAQ).chunks(64), encoder, index_type="flat").close()
    finally:
        os.environ["SEMSEARCH_CACHE"] = previous
    return index, cache


def test_one_shot_query_imports_no_torch(cached: tuple[Path, Path]) -> None:
    index, cache = cached
    out, heavy = run_python(
        CLI, "query", str(index), "How do I export to PDF?", "--threshold", "none", cache=cache
    )
    assert heavy == []
    assert "[export-pdf" in out


def test_similarity_tokens_embed_python_and_serve_start_import_no_torch(
    cached: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path
) -> None:
    index, cache = cached
    texts = tmp_path / "texts.txt"
    texts.write_text("a cat\na dog\n", encoding="utf-8")
    model = ["--model", str(tiny_sbert), "--backend", "onnx"]
    out, heavy = run_python(CLI, "embed", str(texts), "-o", str(tmp_path / "v.npy"), *model,
                            "--json", cache=cache)  # fmt: skip
    assert heavy == [] and json.loads(out)["texts"] == 2  # --tokens/--words need torch
    assert np.load(tmp_path / "v.npy").shape[0] == 2
    out, heavy = run_python(
        CLI, "similarity", "a cat", "a dog", "--model", str(tiny_sbert), "--json", cache=cache
    )
    assert heavy == [] and len(json.loads(out)["matrix"]) == 2
    out, heavy = run_python(CLI, "tokens", "Here is the sentence.", "--json", cache=cache)
    assert heavy == [] and json.loads(out)["tokens"][1] == "here"
    out, heavy = run_python(PYTHON_API, str(index), cache=cache)
    assert heavy == [] and out.strip() == "export-pdf-2"
    out, heavy = run_python(SERVICE, str(index), cache=cache)
    assert heavy == [] and int(out) > 100


def test_without_a_cached_export_torch_loads_once_then_never(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """A raw BERT's index: the exporting child loads the model with transformers alone,
    without the seconds that importing sentence-transformers costs."""
    index = tmp_path / "faq"
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx")
    IndexStore.build(index, open_corpus(FAQ).chunks(64), encoder, index_type="flat").close()
    empty = tmp_path / "fresh-cache"
    first, heavy = run_python(CLI, "query", str(index), "export to PDF", "--json", cache=empty)
    assert "torch" in heavy  # the export needs the model in torch, once
    second, heavy = run_python(CLI, "query", str(index), "export to PDF", "--json", cache=empty)
    assert heavy == []
    assert json.loads(first) == json.loads(second)


def test_cached_and_fresh_encoders_give_identical_vectors(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semsearch.encoders

    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))  # nothing exported yet
    real_loader = semsearch.encoders._load_torch_model
    options = {"kind": "bert", "model": str(tiny_bert), "pooling": "mean", "layers": "-2,-1"}
    texts = ["a first text", "", "and a much longer second text " * 20]
    for backend in ("onnx", "onnx-int8"):
        monkeypatch.setattr(semsearch.encoders, "_load_torch_model", real_loader)
        fresh = load_encoder(backend=backend, max_seq_length=64, **options)
        vectors = fresh.encode(texts)  # exports
        monkeypatch.setattr(semsearch.encoders, "_load_torch_model", _no_torch)
        cached = load_encoder(backend=backend, max_seq_length=64, **options)
        assert cached.fingerprint == fresh.fingerprint
        assert (cached.spec, cached.dim) == (fresh.spec, fresh.dim)
        np.testing.assert_array_equal(cached.encode(texts), vectors)
        assert cached.truncated == fresh.truncated == 1


def test_a_first_int8_run_after_fp32_quantizes_the_cached_export_without_torch(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where only the fp32 export is cached, int8 is quantized from it: the model is not
    loaded in torch, and the vectors are those of int8 made by exporting from torch."""
    import semsearch.encoders

    options = {"kind": "bert", "model": str(tiny_bert), "pooling": "mean"}
    texts = ["a first text", "", "and a much longer second text " * 20]
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "through-torch"))
    through_torch = load_encoder(backend="onnx-int8", **options)
    expected = through_torch.encode(texts)  # exports fp32, then quantizes it
    seeded = tmp_path / "fp32-only" / "onnx"
    seeded.mkdir(parents=True)
    for folder in (tmp_path / "through-torch" / "onnx").iterdir():
        if "-fp32-" in folder.name:
            shutil.copytree(folder, seeded / folder.name)
    monkeypatch.setenv("SEMSEARCH_CACHE", str(seeded.parent))
    monkeypatch.setattr(semsearch.encoders, "_load_torch_model", _no_torch)
    int8 = load_encoder(backend="onnx-int8", **options)
    np.testing.assert_array_equal(int8.encode(texts), expected)
    assert sorted(f.name.split("-")[-2] for f in seeded.iterdir()) == ["fp32", "int8"]
    assert int8.fingerprint == through_torch.fingerprint


def _no_torch(*args: object) -> None:
    raise AssertionError("the cached encoder loaded the model in torch")


INT8_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
"""The CPU features that pick ONNX Runtime's kernels (MLAS) on x86."""
INT8_ACROSS_CPUS = (0.035, 0.985)  # max abs difference, min cosine; see the test


def cpu_isa() -> str:
    """This CPU's kernel-picking features, as stored beside the int8 reference."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            line = next(line for line in handle if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    flags = set(line.split(":", 1)[1].split())
    return " ".join(flag for flag in INT8_ISA_FLAGS if flag in flags)


@pytest.mark.real
@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8"])
def test_vectors_match_the_committed_reference(minilm_folder: Path, backend: str) -> None:
    """tests/data/minilm-vectors.npz holds the default model's vectors of the FAQ rows:
    torch and onnx from the code before the torch-free path existed (commit 8844779);
    onnx-int8 rewritten when int8 began to run each text alone with 7-bit weights, by

        v = load_encoder(model=MINILM, backend="onnx-int8").encode(texts)[picked]

    saved as "onnx-int8" with `cpu_isa()` as "onnx-int8-isa".

    fp32 vectors match to 1e-6 on any CPU. int8 ones match to 1e-6 on a CPU with the
    same kernel-picking features as the one that wrote them, and only approximately on
    others: 7-bit weights make the integer products the same with or without VNNI, but
    the fp32 steps between them (LayerNorm, GELU, softmax, the quantization scales) run
    other kernels on other instruction sets, and int8 turns their last-bit differences
    into whole quantization steps. Measured on the reference texts by scaling the
    embedding output by 1 +- 1 to 3 ulp (the size of those differences): int8 vectors
    moved by up to 0.0176 (max abs), cosine down to 0.9929, in 18 to 27 of 62 texts,
    while fp32 ones moved by 1.8e-7. Elsewhere the test allows twice that:
    `INT8_ACROSS_CPUS`."""
    reference = np.load(REFERENCE)
    texts = [str(text) for text in reference["texts"]]
    exact = backend != "onnx-int8" or str(reference["onnx-int8-isa"]) == cpu_isa()
    for batch_size in (8, 32):  # the first load may export; the second reads the cache
        encoder = load_encoder(model=str(minilm_folder), backend=backend)
        vectors = encoder.encode(texts, batch_size=batch_size)[reference["picked"]]
        if exact:
            assert np.abs(vectors - reference[backend]).max() < 1e-6
        else:
            largest, lowest_cosine = INT8_ACROSS_CPUS
            assert np.abs(vectors - reference[backend]).max() < largest
            assert (vectors * reference[backend]).sum(axis=1).min() > lowest_cosine
