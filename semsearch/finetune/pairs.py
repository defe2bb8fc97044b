"""Training pairs for fine-tuning: from the corpus itself and from labelled questions.

Every entry gives one pair, its question -> the text it is found by (an FAQ table's
question and answer together; a BEIR folder's title -> title and text). Labelled
questions (a user's question and the id of the entry that answered it) give one pair
each, with that entry's text as the positive. Entries that share one answer form one
*group*: the search engine treats them as one answer, so their texts must never serve
as negatives of each other, and finding any of them counts as a hit.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from semsearch.corpus import BEIR_TEXT, open_corpus
from semsearch.errors import InputError

TRAIN_SPLIT = "train"


@dataclass(frozen=True)
class Entry:
    """One corpus entry as training sees it: `query` asks for it, `document` is what is
    embedded for it, `group` is shared by every entry with the same answer."""

    id: str
    query: str
    document: str
    group: str


@dataclass(frozen=True)
class Pair:
    """A question and the entry that answers it (`negatives`: entry ids mined for it)."""

    question: str
    entry: str
    negatives: tuple[str, ...] = ()


@dataclass
class Labels:
    """Labelled questions read from a file, and the rows that could not be used."""

    path: Path
    pairs: list[Pair]
    unknown: list[str] = field(default_factory=list)  # ids not in the corpus, in file order
    unknown_rows: int = 0
    without_id: int = 0


@dataclass(frozen=True)
class Corpus:
    """The entries of a corpus by id, in corpus order."""

    path: Path
    entries: dict[str, Entry]

    def groups(self, ids: Iterable[str]) -> frozenset[str]:
        return frozenset(self.entries[ident].group for ident in ids)

    def self_pairs(self) -> list[Pair]:
        """Each entry's question -> its document, where the two differ (a corpus of bare
        texts teaches nothing this way)."""
        return [
            Pair(entry.query, entry.id)
            for entry in self.entries.values()
            if entry.query.strip() and entry.query.strip() != entry.document.strip()
        ]


def read_corpus(
    path: str | Path,
    *,
    text_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
) -> Corpus:
    """Read a corpus as `semsearch index` does; an FAQ table's document is its question
    and answer together, a BEIR folder's its title and text."""
    source = open_corpus(path, text_field=text_field, answer_field=answer_field, id_field=id_field)
    beir = source.fields.text == BEIR_TEXT
    entries: dict[str, Entry] = {}
    groups: dict[str, str] = {}
    for record in source:
        if beir:
            title = record.metadata.get("title")
            query = title.strip() if isinstance(title, str) and title.strip() else record.text
            document = record.text
        else:
            query = record.text
            answer = record.answer.strip()
            document = f"{record.text}\n{record.answer}" if answer != record.text else record.text
        group = groups.setdefault(record.answer.strip() or record.id, record.id)
        entries[record.id] = Entry(record.id, query, document, group)
    if not entries:
        raise InputError(f"{path}: the corpus holds no entries")
    return Corpus(Path(path), entries)


def read_labels(path: str | Path, corpus: Corpus) -> Labels:
    """Labelled questions: a .csv, .tsv or .jsonl file with `question` and `id`, or a
    BEIR folder's queries.jsonl with qrels/train.tsv. Ids the corpus lacks are counted."""
    path = Path(path)
    if path.is_dir():
        rows = _beir_rows(path)
    else:
        from semsearch.calibration import read_labelled

        labelled = read_labelled(path)
        rows = list(zip(labelled.questions, labelled.ids, strict=True))
    labels = Labels(path, [])
    for question, ident in rows:
        if ident is None:
            labels.without_id += 1
        elif ident not in corpus.entries:
            labels.unknown_rows += 1
            if ident not in labels.unknown:
                labels.unknown.append(ident)
        else:
            labels.pairs.append(Pair(question, ident))
    return labels


def _beir_rows(folder: Path) -> list[tuple[str, str | None]]:
    from semsearch.evaluation.data import read_qrels, read_queries

    qrels_file = folder / "qrels" / f"{TRAIN_SPLIT}.tsv"
    if not (folder / "queries.jsonl").is_file() or not qrels_file.is_file():
        raise InputError(
            f"{folder}: labelled questions in a folder are a BEIR folder's queries.jsonl "
            f"and qrels/{TRAIN_SPLIT}.tsv; one of them is missing"
        )
    queries = read_queries(folder / "queries.jsonl")
    rows: list[tuple[str, str | None]] = []
    for query, docs in read_qrels(qrels_file).items():
        if query not in queries:
            raise InputError(f"{qrels_file} judges query {query!r}, missing from queries.jsonl")
        rows.extend((queries[query], doc) for doc, level in docs.items() if level > 0)
    if not rows:
        raise InputError(f"{qrels_file} holds no labelled questions")
    return rows


def split_held_out(
    pairs: Sequence[Pair], fraction: float, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """(training, held out): a seeded draw of `fraction` of the distinct questions, so a
    question labelled with several entries lies wholly on one side."""
    questions = sorted({pair.question for pair in pairs})
    random.Random(seed).shuffle(questions)
    held = set(questions[: round(len(questions) * fraction)])
    return (
        [pair for pair in pairs if pair.question not in held],
        [pair for pair in pairs if pair.question in held],
    )


def relevance(held_out: Sequence[Pair], corpus: Corpus) -> dict[str, set[str]]:
    """Each held-out question's relevant entries: every entry sharing an answer with one
    it was labelled with."""
    members: dict[str, set[str]] = {}
    for entry in corpus.entries.values():
        members.setdefault(entry.group, set()).add(entry.id)
    wanted: dict[str, set[str]] = {}
    for pair in held_out:
        wanted.setdefault(pair.question, set()).update(members[corpus.entries[pair.entry].group])
    return wanted


def data_files(corpus: Path, labels: Path | None) -> list[Path]:
    """The files a training run reads: a BEIR corpus folder's corpus.jsonl, a BEIR
    labels folder's queries.jsonl and qrels/train.tsv, or the files themselves."""
    files = [corpus / "corpus.jsonl" if corpus.is_dir() else corpus]
    if labels is not None:
        split = labels / "qrels" / f"{TRAIN_SPLIT}.tsv"
        files += [labels / "queries.jsonl", split] if labels.is_dir() else [labels]
    return files


def files_sha256(files: Iterable[Path]) -> str:
    """One sha256 over the bytes of `files`, in order: what the model was trained on."""
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
