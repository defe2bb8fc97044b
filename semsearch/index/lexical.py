"""The lexical part of an index: BM25 over each entry's question and answer.

Built with bm25s (scikit-learn's word pattern, English stop words, the Snowball English
stemmer, BM25 "lucene" k1=1.5 b=0.75) and saved as plain files: the precomputed score
matrix as numpy arrays, columns in sorted vocabulary order, and the tokenizer's settings
with its stop words. A question is scored with numpy and PyStemmer alone, so asking
never imports bm25s or scipy (a second and more of start-up). Tests hold the scores
equal to bm25s's own `get_scores`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.errors import IndexFolderError
from semsearch.index.layout import LEXICAL_ARRAYS, LEXICAL_SETTINGS

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
LANGUAGE = "english"
K1, B = 1.5, 0.75


@functools.lru_cache(maxsize=4)
def _stemmer(language: str) -> Any:
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer(language)


@dataclass(frozen=True)
class Tokenizer:
    """bm25s's tokenization: lower-case, words of two or more characters, stop words out,
    then stemmed; kept with the index so questions are split the way the entries were."""

    stopwords: frozenset[str]
    language: str = LANGUAGE
    pattern: str = TOKEN_PATTERN

    def tokens(self, text: str) -> list[str]:
        words = [w for w in re.findall(self.pattern, text.lower()) if w not in self.stopwords]
        return list(_stemmer(self.language).stemWords(words)) if words else []


class LexicalIndex:
    """BM25 scores of every live entry (position p is the record with rowid `rowids[p]`)."""

    def __init__(
        self,
        vocab: np.ndarray,
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        rowids: np.ndarray,
        tokenizer: Tokenizer,
    ) -> None:
        self.vocab = vocab
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.rowids = rowids
        self.tokenizer = tokenizer

    @classmethod
    def build(cls, texts: Sequence[str], rowids: np.ndarray) -> LexicalIndex:
        """Index `texts` (one per rowid) with bm25s."""
        import bm25s
        import scipy.sparse
        from bm25s.stopwords import STOPWORDS_EN

        tokenizer = Tokenizer(frozenset(STOPWORDS_EN))
        order = np.argsort(np.asarray(rowids, dtype=np.int64), kind="stable")
        rowids = np.asarray(rowids, dtype=np.int64)[order]  # sorted: `score_of` bisects
        tokenized = [tokenizer.tokens(texts[i]) for i in order.tolist()]
        terms = sorted({term for tokens in tokenized for term in tokens})
        if not terms:  # only stop words: nothing can match
            empty = np.zeros(0, dtype=np.float32)
            return cls(
                np.array([], dtype=str), empty, np.zeros(0, np.int32), np.zeros(1, np.int64),
                rowids, tokenizer,
            )  # fmt: skip
        column = {term: i for i, term in enumerate(terms)}
        model = bm25s.BM25(k1=K1, b=B, method="lucene")
        ids = [[column[term] for term in tokens] for tokens in tokenized]
        model.index((ids, column), show_progress=False, create_empty_token=False)
        scores = model.scores
        matrix = scipy.sparse.csc_matrix(
            (scores["data"], scores["indices"], scores["indptr"]),
            shape=(scores["num_docs"], len(terms)),
        )
        matrix.sort_indices()
        return cls(
            np.array(terms, dtype=str),
            matrix.data.astype(np.float32),
            matrix.indices.astype(np.int32),
            matrix.indptr.astype(np.int64),
            rowids,
            tokenizer,
        )

    # -- files -------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        with (folder / LEXICAL_ARRAYS).open("wb") as handle:
            np.savez(
                handle,
                vocab=self.vocab,
                data=self.data,
                indices=self.indices,
                indptr=self.indptr,
                rowids=self.rowids,
            )
        settings = {
            "method": "bm25s lucene",
            "k1": K1,
            "b": B,
            "language": self.tokenizer.language,
            "pattern": self.tokenizer.pattern,
            "stopwords": sorted(self.tokenizer.stopwords),
        }
        (folder / LEXICAL_SETTINGS).write_text(json.dumps(settings, indent=1) + "\n", "utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        try:
            settings = json.loads((folder / LEXICAL_SETTINGS).read_text("utf-8"))
            tokenizer = Tokenizer(
                frozenset(settings["stopwords"]), settings["language"], settings["pattern"]
            )
            with np.load(folder / LEXICAL_ARRAYS, allow_pickle=False) as arrays:
                vocab, data, indices, indptr, rowids = (
                    arrays[name] for name in ("vocab", "data", "indices", "indptr", "rowids")
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFolderError(
                f"the lexical index in {folder} cannot be read ({exc}): rebuild the index"
            ) from None
        return cls(vocab, data, indices, indptr, rowids, tokenizer)

    # -- scoring -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.rowids)

    def _columns(self, question: str) -> np.ndarray:
        tokens = self.tokenizer.tokens(question)
        if not tokens or not len(self.vocab):
            return np.zeros(0, dtype=np.int64)
        wanted = np.array(tokens, dtype=str)
        at = np.searchsorted(self.vocab, wanted).clip(max=len(self.vocab) - 1)
        return at[self.vocab[at] == wanted]  # a repeated word counts again, as in bm25s

    def mask_of(self, rowids: np.ndarray) -> np.ndarray:
        """Which positions hold the entries `rowids` (ascending): the `allowed` of a
        filtered question."""
        return np.isin(self.rowids, rowids, assume_unique=True)

    def matches(
        self, question: str, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions, scores) of the entries that share a word with the question (and
        are `allowed`, a mask by position, where given), positions ascending: the work
        grows with those entries, not with the index."""
        columns = self._columns(question)
        if not len(columns):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        spans = [np.arange(self.indptr[c], self.indptr[c + 1]) for c in columns.tolist()]
        at = np.concatenate(spans)
        if allowed is not None:
            at = at[allowed[self.indices[at]]]
        positions, inverse = np.unique(self.indices[at], return_inverse=True)
        sums = np.bincount(inverse, weights=self.data[at], minlength=len(positions))
        return positions.astype(np.int64), sums.astype(np.float32)

    def scores(self, question: str) -> np.ndarray:
        """The BM25 score of every entry, by position (0 where no word matches)."""
        scores = np.zeros(self.count, dtype=np.float32)
        positions, sums = self.matches(question)
        scores[positions] = sums
        return scores

    def top(
        self, question: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[int, float]], tuple[np.ndarray, np.ndarray]]:
        """The best `n` entries (`allowed` ones, where given) with a score above 0 as
        (rowid, score), best first, and the matches (to look up candidates found another
        way, `scores_of`).

        Equal scores go by rowid, so the first `n` are always the start of one order:
        asking for more only appends."""
        positions, sums = found = self.matches(question, allowed)
        n = min(n, len(sums))
        if n < 1:
            return [], found
        if n < len(sums):  # every entry tied with the n-th best, then the order among them
            nth = np.partition(sums, len(sums) - n)[len(sums) - n]
            best = np.flatnonzero(sums >= nth)
        else:
            best = np.arange(len(sums))
        best = best[np.lexsort((best, -sums[best]))][:n]  # positions ascend with rowids
        best = best[sums[best] > 0]
        rowids, scores = self.rowids[positions[best]].tolist(), sums[best].tolist()
        ranked = list(zip(rowids, scores, strict=True))
        return ranked, found

    def scores_of(self, found: tuple[np.ndarray, np.ndarray], rowids: np.ndarray) -> np.ndarray:
        """The entries' scores among the matches `found` (from `top`); 0 for an entry
        that shares no word with the question or is not indexed here."""
        rowids = np.asarray(rowids, dtype=np.int64)
        positions, sums = found
        if not self.count or not len(positions):
            return np.zeros(len(rowids), dtype=np.float32)
        at = np.searchsorted(self.rowids, rowids).clip(max=self.count - 1)
        known = self.rowids[at] == rowids
        match = np.searchsorted(positions, at).clip(max=len(positions) - 1)
        hit = known & (positions[match] == at)
        return np.where(hit, sums[match], 0.0).astype(np.float32)
