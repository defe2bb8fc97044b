"""CLI end to end: index, query (one-shot, piped, interactive), add, delete, info."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app

runner = CliRunner()

CSV = """id,question,answer,category
pw,How do I reset my password?,Use the reset link.,account
pw-2,I forgot my password,Use the reset link.,account
pdf,Can I export notes as PDF?,File > Export > PDF.,export
offline,Does it work without internet?,"Yes, offline mode.",sync
"""


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture()
def built(tiny_sbert, tmp_path):
    corpus = tmp_path / "faq.csv"
    corpus.write_text(CSV, encoding="utf-8")
    folder = tmp_path / "idx"
    result = run("index", corpus, "-o", folder, "--model", tiny_sbert, "--json")
    assert result.exit_code == 0, result.output
    return folder, json.loads(result.stdout)


def test_index_summary_json(built):
    folder, summary = built
    assert summary["count"] == 4 and summary["skipped"] == 0 and summary["truncated"] == 0
    assert (
        summary["dim"] == 32 and summary["index_type"] == "flat" and summary["index"] == str(folder)
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "generic.npy",
        "lexical.json",
        "lexical.npz",
        "manifest.json",
        "records.sqlite",
        "second.faiss",
        "vectors.faiss",
    ]


def test_index_reports_detected_fields_on_stderr(tiny_sbert, tmp_path):
    corpus = tmp_path / "faq.csv"
    corpus.write_text(CSV, encoding="utf-8")
    result = run("index", corpus, "-o", tmp_path / "i", "--model", tiny_sbert)
    assert "text from 'question', answer from 'answer', id from 'id'" in result.stderr
    assert "count: 4" in result.stdout


def test_query_one_shot_table_and_json(built):
    folder, _ = built
    table = run("query", folder, "I forgot my password", "-k", "2", "--mode", "dense")
    assert table.exit_code == 0, table.output
    in_force = json.loads(run("query", folder, "I forgot my password", "--json").stdout)
    header = f"Q: I forgot my password   (threshold {in_force['threshold']})\n"
    assert table.stdout.startswith(header + "  1. 1.000  [pw-2] I forgot my password")
    fused = run("query", folder, "I forgot my password", "-k", "2")  # hybrid: cosine, then fused
    assert fused.stdout.startswith(header + "  1. 1.000 fused 1.000  [pw-2] I")
    asked = ("query", folder, "I forgot my password", "-k", "3", "--threshold", "none", "--json")
    assert run(*asked[:-1]).stdout.startswith("Q: I forgot my password   (threshold none)\n")
    data = json.loads(run(*asked).stdout)
    assert data["answered"] is True and data["question"] == "I forgot my password"
    assert [r["rank"] for r in data["results"]] == [1, 2, 3]
    assert data["results"][0]["id"] == "pw-2" and data["results"][0]["metadata"] == {
        "category": "account"
    }
    assert sum(r["answer"] == "Use the reset link." for r in data["results"]) == 1  # deduplicated


def test_query_threshold_no_answer(built):
    folder, _ = built
    result = run("query", folder, "completely unrelated words", "--threshold", "0.9999", "--json")
    data = json.loads(result.stdout)
    assert data["answered"] is False and data["threshold"] == 0.9999
    text = run("query", folder, "completely unrelated words", "--threshold", "0.9999").stdout
    assert "No confident answer" in text


def test_query_piped_stdin_one_json_line_each(built):
    folder, _ = built
    result = run(
        "query",
        folder,
        "--json",
        "-k",
        "1",
        input="I forgot my password\n\nCan I export notes as PDF?\n",
    )
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["results"][0]["id"] for line in (lines[0], lines[2])] == ["pw-2", "pdf"]
    assert lines[1]["error"].startswith("every question must be a non-empty string")
    assert result.exit_code == 1  # output line N answers input line N; the blank one failed
    blocks = run(
        "query", folder, "-k", "1", input="I forgot my password\nCan I export notes as PDF?\n"
    ).stdout
    assert blocks.count("Q: ") == 2


def test_add_update_delete_info(built, tmp_path):
    folder, _ = built
    extra = tmp_path / "extra.csv"
    extra.write_text(
        "id,question,answer\n"
        "price,How much is Plus?,4 euros.\n"
        "pdf,Export to PDF?,Use File > Export.\n"
    )
    added = json.loads(run("add", folder, extra, "--json").stdout)
    assert (added["added"], added["updated"], added["count"]) == (1, 1, 5)
    top = json.loads(run("query", folder, "Export to PDF?", "-k", "1", "--json").stdout)["results"][
        0
    ]
    assert (top["id"], top["answer"]) == ("pdf", "Use File > Export.")
    deleted = json.loads(run("delete", folder, "price", "offline", "--json").stdout)
    assert deleted == {"index": str(folder), "deleted": 2, "count": 3}
    info = json.loads(run("info", folder, "--json").stdout)
    assert info["count"] == 3 and info["encoder"]["dim"] == 32 and info["index"]["type"] == "flat"
    assert "records" in run("info", folder).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "{missing}", "hello"], "no index folder at"),
        (["delete", "{folder}", "no-such-id"], "unknown id(s) 'no-such-id': nothing was deleted"),
        (["query", "{folder}", "hi", "--encoder", "bert", "--pooling", "cls"], "pooling='mean'"),
        (["index", "{corpus}", "-o", "{out}", "--text-field", "nope"], "no column 'nope'"),
        (["index", "{corpus}", "-o", "{out}", "--index-type", "kdtree"], "kdtree"),
        (["query", "{folder}", "hi", "-k", "0"], "k must be at least 1"),
    ],
)
def test_cli_errors(built, tmp_path, tiny_sbert, args, message):
    folder, _ = built
    corpus = tmp_path / "c.csv"
    corpus.write_text(CSV)
    names = {
        "missing": tmp_path / "absent",
        "folder": folder,
        "corpus": corpus,
        "out": tmp_path / "o",
    }
    args = [a.format(**names) for a in args]
    if args[0] == "index":
        args += ["--model", str(tiny_sbert)]
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("semsearch: error:") and message in result.stderr, result.stderr


def test_failed_index_keeps_the_previous_one(built, tmp_path, tiny_sbert):
    folder, _ = built
    before = run("query", folder, "I forgot my password", "--json").stdout
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,question,answer\na,fine,ok\nb,\xff\xfe,broken\n")
    result = run("index", bad, "-o", folder, "--model", tiny_sbert)
    assert result.exit_code == 1 and "line 3" in result.stderr and "UTF-8" in result.stderr
    assert run("query", folder, "I forgot my password", "--json").stdout == before


def _read_until(fd, marker, timeout=60.0):
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {marker!r}; got {seen.decode(errors='replace')}"
            )
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen.decode(errors="replace")


def test_interactive_prompt_in_a_terminal(built):
    folder, _ = built
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "semsearch", "query", str(folder)],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    try:
        assert "4 entries" in _read_until(leader, "? ")
        os.write(leader, b":k 1\n")
        assert "k = 1" in _read_until(leader, "? ")
        os.write(leader, b"I forgot my password\n")
        answer = _read_until(leader, "? ")
        assert "[pw-2] I forgot my password" in answer and "  2. " not in answer
        os.write(leader, b":help\n")
        assert ":threshold T" in _read_until(leader, "? ")
        os.write(leader, b":k zero\n")
        assert "bad value for :k: 'zero' is not a whole number, e.g. :k 3" in _read_until(
            leader, "? "
        )
        os.write(leader, b":threshold high\n")
        assert "'high' is not a cosine in [-1, 1], none or index, e.g. :threshold 0.4" in (
            _read_until(leader, "? ")
        )
        os.write(leader, b":quit\n")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
