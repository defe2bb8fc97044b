"""Issue 24 items 5-7: every file the README's commands name is shipped (examples/
questions.txt, new.csv and texts.txt, written for the demo FAQ), the commands that
use them run on the demo data, and the README says what the default model cannot do
(other languages) and why a fine-tuned index needs calibrating."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def _bash_lines() -> list[list[str]]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.extend(_words(part) for part in line.split("|"))
    return lines


def _words(part: str) -> list[str]:
    try:
        return shlex.split(part, comments=True)
    except ValueError:  # a continuation backslash, a quote closed on the next line
        return part.split("#", 1)[0].split()


def test_every_example_file_the_readme_names_is_shipped() -> None:
    named = {
        word
        for argv in _bash_lines()
        for word in argv
        if re.fullmatch(r"[\w./-]+\.(csv|tsv|jsonl|txt|toml)", word) and "/" in word
    }
    shipped = {name for name in named if name.startswith(("examples/", "configs/"))}
    assert {"examples/questions.txt", "examples/new.csv", "examples/texts.txt"} <= shipped
    assert [name for name in sorted(shipped) if not (ROOT / name).is_file()] == []
    assert [w for argv in _bash_lines() for w in argv if w in ("questions.txt", "new.csv")] == []
    assert "DESIGN.md" not in README


def test_the_readme_says_the_default_model_is_english_only() -> None:
    flat = " ".join(README.split())
    assert "That model is English-only" in flat
    assert "--model sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2" in flat
    assert 'semsearch query indexes/faq-tuned "talk to a human" -k 3 --threshold none' in flat


@pytest.fixture(scope="module")
def demo(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "faq"
    done = runner.invoke(
        app,
        ["index", str(ROOT / "examples/faq.csv"), "-o", str(folder), "--model", str(tiny_sbert),
         "--quiet"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return folder


def test_piped_questions_get_one_json_line_each(demo: Path) -> None:
    questions = (ROOT / "examples/questions.txt").read_text(encoding="utf-8")
    done = runner.invoke(app, ["query", str(demo), "--json"], input=questions)
    assert done.exit_code == 0, done.output
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["question"] for a in answers] == questions.splitlines()


def test_add_new_csv_appends_one_and_updates_one(demo: Path) -> None:
    done = runner.invoke(app, ["add", str(demo), str(ROOT / "examples/new.csv"), "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert (summary["added"], summary["updated"], summary["count"]) == (1, 1, 107)


def test_embed_texts_txt(tiny_sbert: Path, tmp_path: Path) -> None:
    out = tmp_path / "vectors.npy"
    done = runner.invoke(
        app, ["embed", str(ROOT / "examples/texts.txt"), "-o", str(out), "--model", str(tiny_sbert)]
    )
    assert done.exit_code == 0, done.output
    assert np.load(out).shape == (3, 32)
