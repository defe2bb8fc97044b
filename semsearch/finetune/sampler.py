"""A batch sampler that never puts two pairs of one answer in a batch.

MultipleNegativesRankingLoss takes every other positive (and negative) in a batch as a
negative of each question. Two pairs of the same entry, or of two entries with the same
answer, in one batch would teach the model to push a question away from its own answer.
sentence-transformers' NoDuplicatesBatchSampler compares texts, which does not see that
two different questions belong to one entry; this one compares the entry groups each
row touches (its positive's and its mined negatives').
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler


class EntryBatchSampler(DefaultBatchSampler):
    """Shuffled batches whose rows touch disjoint sets of keys (`keys[i]`: row i's).

    Each epoch draws a permutation from the seed (seed + epoch) and fills batches
    greedily in that order; a row whose keys clash with the batch waits for a later one.
    Every row is yielded exactly once an epoch; the last batches may be short."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        keys: Sequence[frozenset[str]],
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if len(keys) != len(dataset):
            raise ValueError(f"{len(keys)} key sets for {len(dataset)} rows")
        self.keys = list(keys)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        """Exact for the current epoch: the trainer plans its learning-rate schedule on it."""
        return len(self._batches())

    def _batches(self) -> list[list[int]]:
        generator = self.generator or torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        waiting = torch.randperm(len(self.keys), generator=generator).tolist()
        batches = []
        while waiting:
            batch: list[int] = []
            taken: set[str] = set()
            later: list[int] = []
            for row in waiting:
                if len(batch) < self.batch_size and taken.isdisjoint(self.keys[row]):
                    batch.append(row)
                    taken |= self.keys[row]
                else:
                    later.append(row)
            waiting = later
            if len(batch) == self.batch_size or not self.drop_last:
                batches.append(batch)
        return batches


def entry_sampler(keys: Sequence[frozenset[str]]) -> Callable[..., EntryBatchSampler]:
    """What the trainer's `batch_sampler` argument takes: a factory given the dataset."""

    def build(dataset: Any, **options: Any) -> EntryBatchSampler:
        return EntryBatchSampler(dataset, keys=keys, **options)

    return build
