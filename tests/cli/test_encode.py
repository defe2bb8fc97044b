"""CLI: tokens, similarity, embed - output, --json, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.encoders import load_encoder

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_tokens_table_and_json():
    result = run("tokens", "Here is the sentence I want embeddings for.")
    assert result.exit_code == 0, result.output
    assert "##bed" in result.stdout and "14 tokens" in result.stdout
    data = json.loads(run("tokens", "Here is the sentence I want embeddings for.", "--json").stdout)
    assert data["tokens"][7:11] == ["em", "##bed", "##ding", "##s"]
    assert data["input_ids"][0] == 101 and data["input_ids"][-1] == 102
    assert data["attention_mask"] == [1] * 14 and data["count"] == 14


def test_tokens_sentence_pair_segments():
    data = json.loads(run("tokens", "How are you?", "Fine, thanks.", "--json").stdout)
    sep = data["tokens"].index("[SEP]")
    assert data["tokens"][0] == "[CLS]" and data["tokens"][-1] == "[SEP]"
    assert data["token_type_ids"] == [0] * (sep + 1) + [1] * (data["count"] - sep - 1)


def test_similarity_matrix_json_matches_encoder(tiny_sbert):
    texts = ["reset my password", "I forgot my password", "export to PDF"]
    result = run("similarity", *texts, "--model", str(tiny_sbert), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    vectors = load_encoder(model=str(tiny_sbert)).encode(texts)
    np.testing.assert_allclose(data["matrix"], vectors @ vectors.T, atol=1e-5)
    assert data["metric"] == "cosine" and data["texts"] == texts


def test_similarity_euclidean_and_table(tiny_bert):
    args = [
        "similarity",
        "a cat",
        "a dog",
        "--encoder",
        "bert",
        "--model",
        str(tiny_bert),
        "--pooling",
        "cls",
    ]
    data = json.loads(run(*args, "--metric", "euclidean", "--json").stdout)
    vectors = load_encoder(kind="bert", model=str(tiny_bert), pooling="cls").encode(
        ["a cat", "a dog"]
    )
    assert data["matrix"][0][1] == pytest.approx(
        float(np.linalg.norm(vectors[0] - vectors[1])), abs=1e-5
    )
    assert data["matrix"][0][0] == 0
    table = run(*args).stdout
    assert "[1] a cat" in table and "cosine" in table


def test_embed_sentences_to_npy(tiny_sbert, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("first text\nsecond text\n\n", encoding="utf-8")
    result = run(
        "embed", str(source), "-o", str(tmp_path / "out.npy"), "--model", str(tiny_sbert), "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "output": str(tmp_path / "out.npy"),
        "texts": 3,
        "dim": 32,
        "truncated": 0,
    }
    vectors = np.load(tmp_path / "out.npy")
    expected = load_encoder(model=str(tiny_sbert)).encode(["first text", "second text", ""])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_embed_stdin_words_npz_loads_without_pickle(tiny_bert, tmp_path):
    out = tmp_path / "words.npz"
    args = ["embed", "-", "-o", str(out), "--words", "--encoder", "bert", "--model", str(tiny_bert)]
    result = run(
        *args, "--layers", "-2,-1", "--layer-combine", "sum", input="Embeddings rock.\nBank river\n"
    )
    assert result.exit_code == 0, result.output
    data = np.load(out, allow_pickle=False)
    assert list(data["texts"]) == ["Embeddings rock.", "Bank river"]
    assert list(data["text_0_units"]) == ["Embeddings", "rock", "."]
    assert data["text_0_vectors"].shape == (3, 32)
    assert data["text_0_spans"].tolist() == [[0, 10], [11, 15], [15, 16]]


def test_embed_tokens_npz(tiny_bert, tmp_path):
    result = run(
        "embed",
        "-",
        "-o",
        str(tmp_path / "t"),
        "--tokens",
        "--encoder",
        "bert",
        "--model",
        str(tiny_bert),
        input="hi there\n",
    )
    assert result.exit_code == 0, result.output
    data = np.load(tmp_path / "t.npz", allow_pickle=False)
    assert list(data["text_0_units"]) == ["[CLS]", "hi", "there", "[SEP]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["similarity", "a", "b", "--encoder", "bert", "--pooling", "avg"],
            "unknown pooling 'avg': choose one of cls, pooler",
        ),
        (
            ["similarity", "a", "b", "--encoder", "bert", "--layers", "7"],
            "layer 7 is out of range: the model has 6 layers",
        ),
        (
            ["similarity", "a", "b", "--encoder", "bert", "--layers", "x"],
            "bad layers 'x': give integers like -1, -2 or -4,-3,-2,-1 (option --layers)",
        ),
        (["similarity", "a", "b", "--model", "/nonexistent/model"], "does not exist"),
        (["similarity", "only-one"], "at least two texts"),
        (["similarity", "a", "b", "--metric", "manhattan"], "unknown metric 'manhattan'"),
        (["similarity", "a", "b", "--config", "/nonexistent.toml"], "config file not found"),
        (["embed", "/nonexistent.txt", "-o", "x.npy"], "input file not found: /nonexistent.txt"),
    ],
)
def test_errors_are_one_line_on_stderr(args, message):
    result = run(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("semsearch: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_utf8_input_names_the_line(tmp_path):
    source = tmp_path / "bad.txt"
    source.write_bytes(b"fine\n\xff\xfe broken\n")
    result = run("embed", str(source), "-o", str(tmp_path / "x.npy"))
    assert result.exit_code == 1
    assert "bad.txt, line 2: not valid UTF-8" in result.stderr


def test_bad_config_key_names_the_known_keys(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[encoder]\npoolnig = "cls"\n')
    result = run("similarity", "a", "b", "--config", str(config))
    assert result.exit_code == 1 and "unknown key(s) in [encoder]: poolnig" in result.stderr


def test_console_script_exit_codes_and_debug():
    command = [
        sys.executable,
        "-m",
        "semsearch",
        "similarity",
        "a",
        "b",
        "--encoder",
        "bert",
        "--pooling",
        "avg",
    ]
    quiet = subprocess.run(command, capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    debug = subprocess.run([*command[:3], "--debug", *command[3:]], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_help_has_examples():
    for command in ("tokens", "similarity", "embed"):
        assert "Example: semsearch" in run(command, "--help").stdout
