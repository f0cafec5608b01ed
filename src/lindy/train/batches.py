"""Which examples each process sees, in which order: the training sampler and the loaders.

Training: epoch e draws ``randperm(n)`` from a generator seeded by (seed, e), cuts it into global batches
of B and gives rank r rows [r B/W, (r+1) B/W) of each, so W processes see exactly the batches one would.
Evaluation: each rank takes a contiguous 1/W shard of the split, in order. No loader draws from torch's
global RNG (each has its own generator), so the dropout stream of a run does not depend on its loaders.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochBatches(Sampler):
    """Global batches of one epoch: randperm(n) from (seed, epoch), this rank's slice of each batch.

    Every rank draws the same permutation; rank r takes rows [r B/W, (r+1) B/W) of each global batch of
    B, so W ranks see exactly the batches one process would. ``start`` skips batches already run.
    """

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, epoch: int, start: int = 0):
        if batch % world:
            raise ValueError(
                f"loader.batch_size ({batch}) must be divisible by the number of processes ({world})"
            )
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.epoch, self.start = seed, epoch, start

    def __len__(self) -> int:
        return self.n // self.batch - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        per_rank = self.batch // self.world
        for b in range(self.start, self.n // self.batch):
            rows = order[b * self.batch : (b + 1) * self.batch]
            yield rows[self.rank * per_rank : (self.rank + 1) * per_rank].tolist()


def batches_per_epoch(n: int, batch: int) -> int:
    """Optimiser steps in one epoch of ``n`` examples: floor(n / batch) (the remainder is dropped)."""
    if n < batch:
        raise ValueError(f"the training set has {n} examples, fewer than loader.batch_size={batch}")
    return n // batch


def train_loader(dataset: Dataset, sampler: EpochBatches, workers: int, seed: int) -> DataLoader:
    """The loader of one epoch (``sampler.epoch``), from batch ``sampler.start`` on."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        # a DataLoader otherwise draws its base seed from the global RNG, which would shift the dropout
        # stream of a resumed run
        generator=torch.Generator().manual_seed(seed + sampler.epoch),
    )


def eval_loader(dataset: Dataset, batch: int, world: int, rank: int, workers: int) -> DataLoader:
    """This rank's contiguous shard of an evaluation split, in order."""
    n = len(dataset)
    shard = list(range(rank * n // world, (rank + 1) * n // world))
    return DataLoader(
        torch.utils.data.Subset(dataset, shard),
        batch_size=batch,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),  # leave the global (dropout) RNG untouched
    )
