"""Each index chooses its own hybrid fusion at build time, from its corpus, without labels.

The question it answers: how much should this corpus's questions trust each part (the
indexed text's cosine, the second view's, BM25)? The corpus has no questions, so it
makes some: up to SAMPLE entries (drawn with a fixed seed) each give one pseudo-question,
a sentence of the entry's body (an FAQ entry's answer, a document's text past its
title), and its right answers are that entry and any entry sharing its question or
title (one question's answers). Leave-one-out: the entry is scored as if indexed without
that sentence (its views that held it encoded again, BM25 built again with it removed),
so no part finds it by reading the question back. The short view (the question, the
title) never holds the sentence and is kept as it is.

Every fusion of a small family, (dense_weight, text_share) on a grid with min-max
normalisation as the fixed fusion uses, ranks every pseudo-question's candidates exactly
as a real question's first pool is ranked (the top `candidates` of each part, each
scored for real in every part) and is scored by nDCG@10. The grid's best cell (smoothed
over its neighbours, so one noisy cell does not win) is then relaxed by the one-
standard-error rule: among the cells the pseudo-questions cannot tell from it, the one
that trusts BM25 least, because a sentence shares words with the rest of its own entry
more than a user's question does, so pseudo-questions lean to BM25. That cell replaces
the default (dense views 0.8, text share 0.5: today's fixed fusion, the views summed)
only when it gains at least MIN_GAIN nDCG@10 over it and at least Z standard errors of
the paired per-question gains; a small corpus, or one whose pseudo-questions barely
prefer anything, keeps the default. The margin is wide because pseudo-questions are not
real questions: on the shared FAQ sets, where users paraphrase the entry's question,
they prefer other fusions by up to 1-3 points that real questions do not confirm; on a
document collection (Cranfield) they gain 5-10 (README, Ranking; bench/adaptive.py).

The cost beside encoding the corpus: SAMPLE sentences and SAMPLE entries encoded again,
one more BM25 build over the corpus, SAMPLE hybrid searches and the grid's arithmetic.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from semsearch.config import DENSE_WEIGHT, SearchConfig
from semsearch.index.lexical import LexicalIndex
from semsearch.search import fusion

if TYPE_CHECKING:
    from semsearch.corpus import Record
    from semsearch.index import IndexStore
    from semsearch.index.views import Parts
    from semsearch.index.writes import VectorEncoder

log = logging.getLogger("semsearch")

SAMPLE = 300
"""Pseudo-questions at most: enough to tell a gain of a few points from noise."""
MIN_QUESTIONS = 30
"""Fewer usable entries than this: the default is kept (too little to go on)."""
SEED = 0
MIN_WORDS = 4
"""A sentence shorter than this is no question."""
MIN_GAIN = 0.03
"""The smallest gain in pseudo-nDCG@10 (a fraction) that moves the choice off the default."""
Z = 2.0
"""...and it must be this many standard errors of the paired gains."""
DEFAULT_SHARE = 0.5
"""The indexed text's share of the dense views in the default: the two views summed."""
DEPTH = 10
"""nDCG@10, as the evaluation reports it."""
WEIGHTS = tuple(round(0.3 + 0.05 * i, 2) for i in range(15))  # 0.3 .. 1.0
SHARES = tuple(round(0.1 * i, 1) for i in range(11))  # 0.0 .. 1.0

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text's sentences of MIN_WORDS words or more, in order."""
    found = (part.strip() for part in _SENTENCE_END.split(text))
    return [part for part in found if len(part.split()) >= MIN_WORDS]


def _without(view: str, sentence: str) -> str:
    return " ".join(view.replace(sentence, " ", 1).split())


@dataclass(frozen=True)
class Pseudo:
    """One pseudo-question: a sentence of entry `rowid`'s body, and the entry's views
    without it (None: the view never held it)."""

    rowid: int
    question: str
    text: str | None
    second: str | None
    lexical: str


def pseudo_questions(
    records: Sequence[tuple[int, Record]], parts: Parts, sample: int = SAMPLE, seed: int = SEED
) -> list[Pseudo]:
    """Up to `sample` pseudo-questions, one per entry drawn (with `seed`) among those
    whose body has a sentence the short view does not hold and whose views keep some
    text without it."""
    rng = np.random.default_rng(seed)
    found: list[Pseudo] = []
    for at in rng.permutation(len(records)).tolist():
        if len(found) >= sample:
            break
        rowid, record = records[at]
        # the body: the answer beside a question (or title); the text itself otherwise
        body = record.answer if parts.second else record.text
        short = record.text if parts.second == "joint" else parts.second_text(record)
        short = short.lower() if parts.second else ""
        usable = [s for s in sentences(body) if s.strip(" .?!").lower() not in short]
        if not usable:
            continue
        sentence = usable[int(rng.integers(len(usable)))]
        lexical = _without(parts.lexical_text(record), sentence)
        text = _without(record.text, sentence) if sentence in record.text else None
        second = None
        if parts.second == "joint":
            second = lexical  # question + answer, as the lexical part reads it
        if not lexical or text == "":
            continue
        found.append(Pseudo(rowid, sentence, text, second, lexical))
    return found


@dataclass(frozen=True)
class Scored:
    """Every pseudo-question's nDCG@10 under every (share, weight) of the grid."""

    gains: np.ndarray  # [questions, shares, weights]
    shares: tuple[float, ...]
    weights: tuple[float, ...]


def score_grid(
    store: IndexStore, encoder: VectorEncoder, pseudo: Sequence[Pseudo], candidates: int
) -> Scored:
    """Rank every pseudo-question's first candidate pool under every fusion of the grid
    and keep the source entry's nDCG@10 (its entry scored leave-one-out)."""
    assert store.lexical is not None
    questions = encoder.encode([p.question for p in pseudo])
    own_text = _own(encoder, [p.text for p in pseudo], questions)
    own_second = _own(encoder, [p.second for p in pseudo], questions)
    changed = {p.rowid: p.lexical for p in pseudo}
    live = list(store.records.live())
    answers = _answers(live, store.parts)
    lexical = LexicalIndex.build(
        [changed.get(rowid, store.parts.lexical_text(record)) for rowid, record in live],
        np.array([rowid for rowid, _ in live], dtype=np.int64),
    )
    vectors = np.ascontiguousarray(questions, dtype=np.float32)
    dense = store.search_rowids(vectors, candidates + 1)
    second = store.search_rowids(vectors, candidates + 1, second=True) if store.second else None
    shares = SHARES if store.second is not None else (1.0,)
    gains = np.zeros((len(pseudo), len(shares), len(WEIGHTS)))
    grid = np.array(WEIGHTS)
    for i, entry in enumerate(pseudo):
        lists = [_kept(dense[i], entry.rowid, own_text[i], candidates)]
        if second is not None:
            lists.append(_kept(second[i], entry.rowid, own_second[i], candidates))
        top, matches = lexical.top(entry.question, candidates)
        lists.append(top)
        pool = np.array(
            sorted({rowid for hits in lists for rowid, _ in hits} | {entry.rowid}), dtype=np.int64
        )
        source = int(np.searchsorted(pool, entry.rowid))
        right = answers.get(entry.rowid, [entry.rowid])
        found = np.flatnonzero(np.isin(pool, right))
        text = _scores(store.vectors, vectors[i], pool, source, own_text[i])
        other = None
        if store.second is not None:
            other = _scores(store.second, vectors[i], pool, source, own_second[i])
        words = lexical.scores_of(matches, pool).astype(np.float64)
        for s, share in enumerate(shares):
            views = fusion.Rule("convex", 1.0, share, "index").dense(text, other)
            gains[i, s] = _gains(fusion.convex(views, words, grid), found, len(right))
    return Scored(gains, shares, WEIGHTS)


def _answers(live: Sequence[tuple[int, Record]], parts: Parts) -> dict[int, list[int]]:
    """For each entry that shares its question (or title) with others: all of them. The
    entries of one question are its answers, and a pseudo-question from one of them is
    answered by any (a thread's answers, an FAQ question listed twice)."""
    if parts.second is None:
        return {}
    groups: dict[str, list[int]] = {}
    for rowid, record in live:
        short = record.text if parts.second == "joint" else parts.second_text(record)
        groups.setdefault(" ".join(short.split()).lower(), []).append(rowid)
    return {rowid: group for group in groups.values() if len(group) > 1 for rowid in group}


_DISCOUNTS = 1.0 / np.log2(np.arange(2, DEPTH + 2))
# _PARTIAL[lo, hi]: the discounts of places lo..hi-1 summed, as np.sum sums them
_PARTIAL = np.array(
    [[np.sum(_DISCOUNTS[np.arange(lo, max(lo, hi))]) for hi in range(DEPTH + 1)]
     for lo in range(DEPTH + 1)]
)  # fmt: skip


def _gain(fused: np.ndarray, right: np.ndarray, count: int) -> float:
    """nDCG@10 of the `count` right entries, those at positions `right` of a pool ranked
    by `fused` (the others were not found). An entry tied with others gets the mean of
    the places the tie spans: its expected place when ties fall at random (the answers of
    one question tie in its view; no place is more right than another)."""
    return float(_gains(np.asarray(fused)[None, :], right, count)[0])


def _gains(fused: np.ndarray, right: np.ndarray, count: int) -> np.ndarray:
    """`_gain` of each row of `fused` (one ranking of the pool a row): the grid's weights
    at once, as a build scores them."""
    dcg = np.zeros(len(fused))
    for at in right.tolist():
        score = fused[:, at : at + 1]
        above = np.sum(fused > score, axis=1)
        tied = np.sum(fused == score, axis=1)  # itself included
        dcg += _PARTIAL[np.minimum(above, DEPTH), np.minimum(above + tied, DEPTH)] / tied
    return dcg / float(np.sum(_DISCOUNTS[: min(count, DEPTH)]))


def _own(
    encoder: VectorEncoder, texts: Sequence[str | None], questions: np.ndarray
) -> list[float | None]:
    """Each pseudo-question's cosine with its entry's view without the sentence (None:
    the view is as indexed)."""
    wanted = [i for i, text in enumerate(texts) if text is not None]
    found: list[float | None] = [None] * len(texts)
    if wanted:
        vectors = encoder.encode([texts[i] or "" for i in wanted])
        for i, vector in zip(wanted, vectors, strict=True):
            found[i] = float(np.dot(questions[i], vector))
    return found


def _kept(
    hits: list[tuple[int, float]], rowid: int, own: float | None, depth: int
) -> list[tuple[int, float]]:
    """A part's top `depth` for a pseudo-question with its source entry scored
    leave-one-out: `own` replaces the indexed score where the view held the sentence."""
    if own is None:
        return hits[:depth]
    others = [(r, s) for r, s in hits if r != rowid][:depth]
    if len(others) < depth or own >= others[-1][1]:
        others = sorted([*others, (rowid, own)], key=lambda hit: -hit[1])[:depth]
    return others


def _scores(
    vectors: Any, question: np.ndarray, pool: np.ndarray, source: int, own: float | None
) -> np.ndarray:
    scores = np.asarray(vectors.scores_of(question, pool), dtype=np.float64)
    if own is not None:
        scores[source] = own
    return scores


def smoothed(mean: np.ndarray) -> np.ndarray:
    """Each cell's mean over itself and its neighbours (3 x 3, fewer at the edges)."""
    out = np.zeros_like(mean)
    rows, cols = mean.shape
    for r in range(rows):
        for c in range(cols):
            out[r, c] = mean[max(0, r - 1) : r + 2, max(0, c - 1) : c + 2].mean()
    return out


def decide(scored: Scored) -> dict[str, Any]:
    """The fusion to keep (see the module's text): the smoothed grid's best cell, then
    among the cells the pseudo-questions cannot tell from it (the paired difference within
    one standard error, as the one-standard-error rule has it) the one that trusts BM25
    least, kept where it clearly beats the default; else the default."""
    default = (scored.shares.index(DEFAULT_SHARE) if len(scored.shares) > 1 else 0,
               scored.weights.index(DENSE_WEIGHT))  # fmt: skip
    gains = scored.gains
    mean = gains.mean(axis=0)
    best = np.unravel_index(int(np.argmax(smoothed(mean))), mean.shape)
    # the pseudo-questions lean to BM25 (a sentence shares words with the rest of its
    # entry more than a user's question does): among the cells they cannot tell from the
    # best, the one with the highest dense weight, then the best smoothed
    losses = gains[:, best[0], best[1]][:, None, None] - gains
    near = np.abs(losses.mean(axis=0)) <= _errors(losses)  # a lone better cell is noise
    smooth = smoothed(mean)
    order = np.lexsort((-smooth.ravel(), -np.indices(mean.shape)[1].ravel()))
    pick = np.unravel_index(int(next(i for i in order if near.ravel()[i])), mean.shape)
    paired = gains[:, pick[0], pick[1]] - gains[:, default[0], default[1]]
    gain, error = float(paired.mean()), float(_errors(paired[:, None])[0])
    moved = gain >= MIN_GAIN and gain >= Z * error
    share, weight = (scored.shares[pick[0]], scored.weights[pick[1]]) if moved else (
        scored.shares[default[0]], DENSE_WEIGHT)  # fmt: skip
    found = (
        f"nDCG@10 {100 * mean[pick]:.2f} against the default's {100 * mean[default]:.2f}, "
        f"{100 * gain:+.2f} +- {100 * error:.2f}"
    )
    if moved:
        rule = f"chosen on {len(paired)} pseudo-questions: {found}"
    else:
        rule = (
            f"default kept: {len(paired)} pseudo-questions found no clear gain (best: dense "
            f"views {scored.weights[pick[1]]:.2f}, text {scored.shares[pick[0]]:.1f} of them, "
            f"{found}; {100 * MIN_GAIN:.0f} points and {Z:g} standard errors needed)"
        )
    return {
        "dense_weight": weight,
        "text_share": share,
        "normalisation": "minmax",
        "origin": "estimated" if moved else "default",
        "rule": rule,
        "questions": len(paired),
        "ndcg@10": {
            "candidate": round(float(mean[pick]), 6),
            "default": round(float(mean[default]), 6),
        },
        "gain": round(gain, 6),
        "standard_error": round(error, 6),
    }


def _errors(differences: np.ndarray) -> np.ndarray:
    """The standard error of the mean of each column of paired differences (0 for one)."""
    if len(differences) < 2:
        return np.zeros(differences.shape[1:])
    return np.asarray(differences.std(axis=0, ddof=1) / np.sqrt(len(differences)))


def choose(store: IndexStore, encoder: VectorEncoder) -> dict[str, Any] | None:
    """The fusion object the manifest keeps (semsearch.index.fusion_choice), chosen from
    the index's own entries; None where the index has no lexical part."""
    if store.lexical is None:
        return None
    started = time.perf_counter()
    records = list(store.records.live())
    pseudo = pseudo_questions(records, store.parts, SAMPLE, SEED)
    if len(pseudo) < MIN_QUESTIONS:
        choice = {
            "dense_weight": DENSE_WEIGHT,
            "text_share": DEFAULT_SHARE if store.second is not None else 1.0,
            "normalisation": "minmax",
            "origin": "default",
            "rule": f"default kept: {len(pseudo)} entries give a pseudo-question, "
            f"{MIN_QUESTIONS} are needed to choose",
            "questions": len(pseudo),
        }
    else:
        reported = getattr(encoder, "report_truncation", False)
        if reported:  # the build already said how many of the entries were truncated
            encoder.report_truncation = False  # type: ignore[attr-defined]
        try:
            choice = decide(score_grid(store, encoder, pseudo, SearchConfig().candidates))
        finally:
            if reported:
                encoder.report_truncation = True  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    log.info("hybrid fusion: %s (%.1f s)", choice["rule"], seconds)
    return {**choice, "count": store.count, "seconds": round(seconds, 3)}
