"""Issue 24 item 3: naming one field means what a user means by it: `--text-field
Frage` on a German Frage/Antwort table makes Antwort the answer (it was metadata, and
the answer was the text itself); the help shows how each field is really chosen."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.corpus import open_corpus
from semsearch.corpus.base import ANSWER_NAMES, ID_NAMES, TEXT_NAMES

runner = CliRunner()


def _corpus(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faq.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_one_other_column_is_the_answer(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "Frage,Antwort\nWie setze ich mein Passwort zurück?,Über den Link.\n")
    corpus = open_corpus(path, text_field="Frage")
    assert (corpus.fields.text, corpus.fields.answer, corpus.fields.id) == (
        "Frage",
        "Antwort",
        None,
    )
    (record,) = list(corpus)
    assert (record.answer, record.metadata) == ("Über den Link.", {})


def test_an_id_column_known_by_name_is_not_the_other_column(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "id,Frage,Antwort\nx,F?,A.\n")
    fields = open_corpus(path, text_field="Frage").fields
    assert (fields.text, fields.answer, fields.id) == ("Frage", "Antwort", "id")


def test_several_other_columns_stay_metadata_and_the_text_answers(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "Frage,Antwort,Kategorie\nF?,A.,k\n")
    (record,) = list(open_corpus(path, text_field="Frage"))
    assert record.answer == "F?" and record.metadata == {"Antwort": "A.", "Kategorie": "k"}


def test_nothing_changes_without_a_named_text_field(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "question,notes\nq?,n\n")
    fields = open_corpus(path).fields
    assert (fields.text, fields.answer) == ("question", None)  # detection alone: as before


def test_the_cli_says_what_it_chose_and_the_help_says_how(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "Frage,Antwort\nF?,A.\n")
    args = ["index", str(path), "-o", str(tmp_path / "x"), "--text-field", "Frage"]
    done = runner.invoke(app, [*args, "--model", str(tmp_path / "none")])
    assert done.stderr.splitlines()[0] == (
        f"reading {path}: text from 'Frage', answer from 'Antwort', id is the row number "
        "(auto-detected); fields separated by ',' (detected)"
    )
    shown = " ".join(runner.invoke(app, ["index", "--help"], env={"COLUMNS": "200"}).stdout.split())
    shown = shown.replace("│ ", "").replace(" │", "")
    assert f"the first of {', '.join(TEXT_NAMES)})" in shown
    assert f"the first of {', '.join(ANSWER_NAMES)}; where --text-field is given" in shown
    assert f"the first of {', '.join(ID_NAMES)}; else the row number" in shown
