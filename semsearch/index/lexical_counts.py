"""The BM25 part built from shards: each shard keeps its entries' term counts, and the
merge scores them with the whole corpus's document frequencies and average length, so
the scores equal those `LexicalIndex.build` gives the same entries in one process.

A shard's counts (`TermCounts`, saved as one .npz) are its sorted vocabulary, for each
term the shard's entries that hold it (positions in the shard) and how often, and every
entry's length in tokens. The merge reads one shard at a time: it holds the merged
vocabulary and its document frequencies, and writes the score matrix into
memory-mapped files, so its memory grows with the vocabulary, not with the corpus.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semsearch.index.lexical import K1, B, LexicalIndex, Tokenizer


def tokenizer() -> Tokenizer:
    """The tokenizer `LexicalIndex.build` uses."""
    from bm25s.stopwords import STOPWORDS_EN

    return Tokenizer(frozenset(STOPWORDS_EN))


@dataclass
class TermCounts:
    """One shard's term counts (the arrays of its .npz file)."""

    vocab: np.ndarray  # sorted terms
    indptr: np.ndarray  # entries of term t: docs[indptr[t]:indptr[t + 1]]
    docs: np.ndarray  # positions in the shard, ascending within a term
    tfs: np.ndarray  # how often the term occurs in that entry
    lengths: np.ndarray  # every entry's length in tokens

    @classmethod
    def of(cls, texts: Sequence[str], split: Tokenizer | None = None) -> TermCounts:
        split = split or tokenizer()
        terms: list[str] = []
        docs: list[int] = []
        tfs: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int32)
        for position, text in enumerate(texts):
            tokens = split.tokens(text)
            lengths[position] = len(tokens)
            for term, times in collections.Counter(tokens).items():
                terms.append(term)
                docs.append(position)
                tfs.append(times)
        vocab, column = np.unique(np.array(terms, dtype=str), return_inverse=True)
        order = np.lexsort((np.array(docs, dtype=np.int64), column))
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(column, minlength=len(vocab)), out=indptr[1:])
        return cls(
            vocab,
            indptr,
            np.array(docs, dtype=np.int32)[order],
            np.array(tfs, dtype=np.int32)[order],
            lengths,
        )

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(
                handle,
                vocab=self.vocab,
                indptr=self.indptr,
                docs=self.docs,
                tfs=self.tfs,
                lengths=self.lengths,
            )

    @classmethod
    def load(cls, path: Path) -> TermCounts:
        with np.load(path, allow_pickle=False) as arrays:
            return cls(*(arrays[key] for key in ("vocab", "indptr", "docs", "tfs", "lengths")))


def _destinations(fill: np.ndarray, columns: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Where each entry of a shard's columns goes: its merged column's next free slots."""
    sizes = np.diff(indptr)
    return np.repeat(fill[columns] - indptr[:-1], sizes) + np.arange(indptr[-1])


def merged(shards: Sequence[Path], scratch: Path) -> LexicalIndex:
    """The BM25 index of every shard's entries, in shard order (rowids 1, 2, ...), its
    score arrays memory-mapped from files in `scratch`."""
    vocab = np.zeros(0, dtype=str)
    for path in shards:
        vocab = np.union1d(vocab, _array(path, "vocab"))
    frequencies = np.zeros(len(vocab), dtype=np.int64)
    total = length_sum = 0
    for path in shards:
        lengths, indptr = _array(path, "lengths"), _array(path, "indptr")
        frequencies[np.searchsorted(vocab, _array(path, "vocab"))] += np.diff(indptr)
        total += len(lengths)
        length_sum += int(lengths.sum(dtype=np.int64))
    rowids = np.arange(1, total + 1, dtype=np.int64)
    if not len(vocab):  # only stop words: nothing can match (as LexicalIndex.build)
        empty = np.zeros(0, dtype=np.float32)
        return LexicalIndex(
            np.array([], dtype=str), empty, np.zeros(0, np.int32), np.zeros(1, np.int64),
            rowids, tokenizer(),
        )  # fmt: skip
    average = np.float64(length_sum) / total  # = np.mean of the lengths, as bm25s takes it
    idf = _idf(frequencies, total)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(frequencies, out=indptr[1:])
    data = np.lib.format.open_memmap(scratch / "bm25-data.npy", "w+", np.float32, (indptr[-1],))
    indices = np.lib.format.open_memmap(scratch / "bm25-indices.npy", "w+", np.int32, (indptr[-1],))
    fill = indptr[:-1].copy()
    first = 0
    for path in shards:
        counts = TermCounts.load(path)
        columns = np.searchsorted(vocab, counts.vocab)
        at = _destinations(fill, columns, counts.indptr)
        data[at] = _scores(counts, np.repeat(idf[columns], np.diff(counts.indptr)), average)
        indices[at] = counts.docs + first
        fill[columns] += np.diff(counts.indptr)
        first += len(counts.lengths)
    data.flush()
    indices.flush()
    return LexicalIndex(vocab, data, indices, indptr, rowids, tokenizer())


def _array(path: Path, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as arrays:
        return arrays[key]


def _idf(frequencies: np.ndarray, total: int) -> np.ndarray:
    """bm25s's "lucene" idf, computed as it does (math.log, then float32), once per
    distinct document frequency."""
    distinct, inverse = np.unique(frequencies, return_inverse=True)
    values = [math.log(1 + (total - df + 0.5) / (df + 0.5)) for df in distinct.tolist()]
    return np.array(values, dtype=np.float32)[inverse]


def _scores(counts: TermCounts, idf: np.ndarray, average: np.float64) -> np.ndarray:
    """bm25s's lucene score of each (term, entry) pair, in its operations and types:
    float32 idf times the float64 term-frequency component, stored as float32."""
    lengths = counts.lengths[counts.docs].astype(np.int64)
    tf = counts.tfs.astype(np.float32)
    denominator = K1 * ((1 - B) + B * lengths / average)
    return (idf * (tf / (denominator + tf))).astype(np.float32)
