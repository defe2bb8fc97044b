"""`semsearch finetune`: pairs, the entry-keyed batch sampler, the written model folder
and its record, determinism, and every refusal. Tiny random models keep it fast; the
quality figures live in bench/finetune.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.finetune.pairs import read_corpus, read_labels, relevance, split_held_out

runner = CliRunner()

TOPICS = [
    ("pw", "How do I reset my password?", "Use the reset link on the sign-in page."),
    ("pw-2", "I forgot my password", "Use the reset link on the sign-in page."),
    ("pdf", "Can I export notes as PDF?", "Choose File, Export, PDF."),
    ("offline", "Does it work without internet?", "Yes, notes are kept offline."),
    ("price", "How much does it cost?", "Five euros a month."),
    ("trial", "Is there a free trial?", "Yes, thirty days."),
    ("delete", "How do I delete my account?", "Settings, Account, Delete."),
    ("share", "Can I share a note?", "Use the Share button."),
    ("tags", "How do tags work?", "Type a hash sign and a word."),
    ("dark", "Is there a dark mode?", "Settings, Appearance, Dark."),
]
LOGS = [
    ("can't log in, lost my password", "pw"),
    ("password reset please", "pw-2"),
    ("save as pdf", "pdf"),
    ("pdf export", "pdf"),
    ("use it on a plane", "offline"),
    ("what is the price", "price"),
    ("try before buying", "trial"),
    ("remove my account", "delete"),
    ("send a note to a friend", "share"),
    ("night theme", "dark"),
    ("labels for notes", "tags"),
    ("monthly fee", "price"),
]


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def write_csv(path: Path, header: str, rows: list[tuple[str, ...]]) -> Path:
    lines = [header] + [",".join(f'"{cell}"' for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def faq(tmp_path: Path) -> tuple[Path, Path]:
    corpus = write_csv(tmp_path / "faq.csv", "id,question,answer", TOPICS)
    logs = write_csv(tmp_path / "logs.csv", "question,id", LOGS)
    return corpus, logs


def train(corpus: Path, out: Path, base: Path, *extra: object):
    return run("finetune", corpus, "-o", out, "--base", base, "--batch-size", 4, "--json", *extra)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the sampler ----------------------------------------------------------------------------
# Imported where used: it imports sentence-transformers (3 s), which every pytest-xdist
# worker would pay while collecting, whether or not it runs these tests.
def test_the_sampler_never_puts_two_pairs_of_one_entry_in_a_batch() -> None:
    from semsearch.finetune.sampler import EntryBatchSampler

    keys = [frozenset({f"e{i % 5}"}) for i in range(20)]  # four pairs of each of 5 entries
    keys += [frozenset({"e0", "e6"}), frozenset({"e6", "e7"})]  # mined negatives count too
    sampler = EntryBatchSampler(list(range(len(keys))), batch_size=4, drop_last=False, keys=keys)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(row for batch in batches for row in batch) == list(range(len(keys)))
        for batch in batches:
            assert len(batch) <= 4
            touched = [key for row in batch for key in keys[row]]
            assert len(touched) == len(set(touched)), batch
    sampler.set_epoch(0)
    again = EntryBatchSampler(list(range(len(keys))), batch_size=4, drop_last=False, keys=keys)
    assert list(sampler) == list(again)
    sampler.set_epoch(1)
    assert list(sampler) != list(again)


def test_the_sampler_lets_unrelated_pairs_fill_whole_batches() -> None:
    from semsearch.finetune.sampler import EntryBatchSampler

    keys = [frozenset({str(i)}) for i in range(10)]
    sampler = EntryBatchSampler(list(range(10)), batch_size=4, drop_last=True, keys=keys)
    assert [len(batch) for batch in sampler] == [4, 4] and len(sampler) == 2


# -- pairs ------------------------------------------------------------------------------------
def test_corpus_pairs_groups_and_labels(faq: tuple[Path, Path], tmp_path: Path) -> None:
    corpus = read_corpus(faq[0])
    assert corpus.entries["pdf"].document == "Can I export notes as PDF?\nChoose File, Export, PDF."
    assert corpus.entries["pw-2"].group == corpus.entries["pw"].group == "pw"  # one answer
    assert len(corpus.self_pairs()) == 10
    bad = write_csv(tmp_path / "bad.csv", "question,id", [*LOGS, ("x", "nope"), ("y", "nope")])
    labels = read_labels(bad, corpus)
    assert (len(labels.pairs), labels.unknown_rows, labels.unknown) == (12, 2, ["nope"])
    train_part, held = split_held_out(labels.pairs, 0.25, seed=0)
    assert len({p.question for p in held}) == 3 and len(train_part) + len(held) == 12
    assert not {p.question for p in held} & {p.question for p in train_part}
    assert relevance([p for p in labels.pairs if p.entry == "pw"], corpus) == {
        "can't log in, lost my password": {"pw", "pw-2"}
    }


def test_a_beir_folder_is_a_corpus_and_its_train_qrels_are_labels(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": f"Question {i}?", "text": f"Answer {i}."} for i in range(3)]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [{"_id": "q1", "text": "first one"}, {"_id": "q2", "text": "second one"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tdx\t1\n"
    (folder / "qrels" / "train.tsv").write_text(qrels)
    corpus = read_corpus(folder)
    assert (corpus.entries["d0"].query, corpus.entries["d0"].document) == (
        "Question 0?",
        "Question 0? Answer 0.",
    )
    labels = read_labels(folder, corpus)
    assert [(p.question, p.entry) for p in labels.pairs] == [("first one", "d1")]
    assert labels.unknown == ["dx"]


# -- a run end to end --------------------------------------------------------------------------
def test_finetune_writes_a_model_folder_any_command_takes(
    faq: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    from semsearch.encoders import load_encoder

    corpus, logs = faq
    out = tmp_path / "models" / "faq"
    result = train(corpus, out, tiny_sbert, "--pairs", logs, "--eval-split", 0.25)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {
        "output", "semsearch_version", "base", "data", "settings", "pairs",
        "held_out_from", "before", "after", "seconds",
    }  # fmt: skip
    assert summary["pairs"] == {
        "corpus": 10, "labelled": 12, "unknown_ids": 0, "training": 19, "held_out": 3,
        "training_corpus": 10, "training_labelled": 9,  # issue 24 item 10: they add up
    }  # fmt: skip
    assert summary["held_out_from"] == "labelled"
    assert set(summary["before"]) == set(summary["after"]) == {"ndcg@10", "acc@1"}
    assert all(0 <= value <= 1 for value in summary["after"].values())
    record = json.loads((out / "semsearch.json").read_text())
    assert {key: record[key] for key in ("base", "data", "settings", "before", "after")} == {
        key: summary[key] for key in ("base", "data", "settings", "before", "after")
    }
    assert record["base"] == {
        "model": str(tiny_sbert),
        "weights_sha256": sha256(tiny_sbert / "model.safetensors"),
        "wrapped": False,
    }
    data = hashlib.sha256(corpus.read_bytes() + logs.read_bytes()).hexdigest()
    assert record["data"] == {"corpus": str(corpus), "pairs": str(logs), "sha256": data}
    assert record["settings"] == {
        "base": str(tiny_sbert), "epochs": 1, "batch_size": 4, "lr": 2e-5,
        "hard_negatives": 0, "seed": 0, "eval_split": 0.25, "strict": False,
        "max_seq_length": 128, "hard_negatives_used": 0,
    }  # fmt: skip
    assert sorted(p.name for p in out.parent.iterdir()) == ["faq"]  # no staging left
    vectors = SentenceTransformer(str(out)).encode(["a question"])
    assert vectors.shape == (1, 32)
    base = load_encoder(model=str(tiny_sbert), backend="torch").fingerprint
    for backend in ("torch", "onnx", "onnx-int8"):
        index = tmp_path / f"index-{backend}"
        built = run("index", corpus, "-o", index, "--model", out, "--backend", backend, "--json")
        assert built.exit_code == 0, built.stderr
        manifest = json.loads((index / "manifest.json").read_text())
        assert manifest["encoder"]["weights_sha256"] == sha256(out / "model.safetensors")
        assert manifest["encoder"]["weights_sha256"] != base["weights_sha256"]
    found = run("query", tmp_path / "index-onnx", "pdf", "--json", "-k", 1, "--threshold", "none")
    assert found.exit_code == 0 and len(json.loads(found.stdout)["results"]) == 1


def test_the_same_seed_gives_the_same_weights(
    faq: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path
) -> None:
    corpus, logs = faq
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = train(
            corpus, tmp_path / name, tiny_sbert, "--pairs", logs, "--seed", seed,
            "--eval-split", 0,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        runs[name] = sha256(tmp_path / name / "model.safetensors")
    assert runs["a"] == runs["b"] != runs["c"]
    assert runs["a"] != sha256(tiny_sbert / "model.safetensors")


def test_hard_negatives_are_mined_from_other_answers(faq: tuple[Path, Path], tiny_sbert) -> None:
    from semsearch.finetune.model import load_base, mine_negatives

    corpus = read_corpus(faq[0])
    model, wrapped = load_base(tiny_sbert)
    mined = mine_negatives(model, corpus.self_pairs(), corpus, 3)
    assert not wrapped and all(len(pair.negatives) == 3 for pair in mined)
    for pair in mined:
        groups = [corpus.entries[ident].group for ident in pair.negatives]
        assert corpus.entries[pair.entry].group not in groups and len(set(groups)) == 3


def test_a_raw_bert_base_is_wrapped_with_mean_pooling(
    faq: tuple[Path, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    result = train(faq[0], out, tiny_bert, "--hard-negatives", 1, "--eval-split", 0)
    assert result.exit_code == 0, result.stderr
    assert "is not a sentence-transformers model: wrapped with mean pooling" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["base"]["wrapped"] is True and summary["before"] is None
    assert summary["settings"]["hard_negatives_used"] == 1
    modules = json.loads((out / "modules.json").read_text())
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    assert kinds == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode"] == "mean"


# -- refusals: one line, exit 1, nothing written -------------------------------------------------
def refused(result, tmp_path: Path, message: str, names: list[str]) -> None:
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("semsearch: error:") and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_refusals(faq: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path) -> None:
    corpus = faq[0]
    names = ["faq.csv", "logs.csv"]
    (tmp_path / "taken").mkdir()
    result = train(corpus, tmp_path / "taken", tiny_sbert)
    refused(result, tmp_path, "already exists", [*names, "taken"])
    (tmp_path / "taken").rmdir()
    unknown = write_csv(tmp_path / "unknown.csv", "question,id", [*LOGS, ("what?", "nope")])
    names.append("unknown.csv")
    result = train(corpus, tmp_path / "m", tiny_sbert, "--pairs", unknown, "--strict")
    refused(result, tmp_path, "1 labelled question(s) name an id that is not in", names)
    assert "'nope'" in result.stderr and "(option --strict)" in result.stderr
    empty = write_csv(tmp_path / "empty.csv", "question,id", [])
    names.append("empty.csv")
    result = train(corpus, tmp_path / "m", tiny_sbert, "--pairs", empty)
    refused(result, tmp_path, "holds no labelled questions", names)
    result = train(corpus, tmp_path / "m", tiny_sbert, "--batch-size", 64)
    refused(result, tmp_path, "too few pairs for one batch: 8 training pairs", names)
    assert "(option --batch-size)" in result.stderr
    bare = tmp_path / "bare.txt"
    bare.write_text("one text\nanother text\n")
    names.append("bare.txt")
    result = train(bare, tmp_path / "m", tiny_sbert)
    refused(result, tmp_path, "the corpus alone gives no training pairs", names)
    assert "(option --pairs)" in result.stderr
    result = train(corpus, tmp_path / "m", tiny_sbert, "--eval-split", 1.5)
    refused(result, tmp_path, "eval split must be in [0, 1)", names)


def test_unknown_ids_are_counted_and_left_out(
    faq: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path
) -> None:
    unknown = write_csv(tmp_path / "unknown.csv", "question,id", [*LOGS, ("what?", "nope")])
    result = train(faq[0], tmp_path / "m", tiny_sbert, "--pairs", unknown, "--eval-split", 0)
    assert result.exit_code == 0, result.stderr
    assert "1 labelled question(s) name an id that is not in the corpus" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["pairs"]["unknown_ids"] == 1 and summary["pairs"]["training"] == 22


def test_without_the_extra_it_names_the_pip_line(
    faq: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semsearch.finetune.settings as settings

    monkeypatch.setattr(settings, "_installed", lambda module: module != "datasets")
    result = train(faq[0], tmp_path / "m", tiny_sbert)
    refused(result, tmp_path, "needs datasets, not installed", ["faq.csv", "logs.csv"])
    assert result.stderr.rstrip().endswith("pip install 'semsearch[finetune]'")


def test_an_interrupted_save_leaves_no_folder(
    faq: tuple[Path, Path], tiny_sbert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformer

    def half_save(self: SentenceTransformer, path: str, **options: object) -> None:
        (Path(path) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(SentenceTransformer, "save", half_save)
    result = train(faq[0], tmp_path / "m", tiny_sbert, "--eval-split", 0)
    assert result.exit_code != 0 and result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq.csv", "logs.csv"]


def test_before_and_after_are_printed(faq: tuple[Path, Path], tiny_sbert, tmp_path) -> None:
    result = run(
        "finetune", faq[0], "-o", tmp_path / "m", "--base", tiny_sbert, "--batch-size", 4,
        "--pairs", faq[1], "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"fine-tuned {tiny_sbert} on 20 pairs (10 from the corpus, 10 ")
    assert lines[1] == "held out: 2 questions (labelled)"
    assert lines[2].startswith("   nDCG@10 x100: ") and " -> " in lines[2]
    assert lines[3].startswith("     acc@1 x100: ")
    assert np.isfinite(float(lines[2].split()[2]))
