"""Named random streams of one seed, and the on-demand training split that every synthetic task shares.

``stream_seed(seed, *keys)`` gives statistically independent 64-bit seeds for different key tuples, e.g.
``(seed, "train")``, ``(seed, "val")`` and ``(seed, "fresh", i)``, so the splits of a data set never share
a stream and item i of an on-demand split is reproducible on its own.

``FreshDataset``: ``n`` virtual items, item i generated on demand from ``stream_generator(seed, "fresh",
i)``. Nothing is stored, so ``n`` can be huge (a long run sees new sequences at every step), yet any item is
reproducible, which keeps training deterministic and resumable.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from lindy._checks import check_count

__all__ = ["stream_seed", "stream_generator", "FreshDataset"]


def stream_seed(seed: int, *keys: int | str) -> int:
    """A 64-bit seed for the stream named by ``(seed, *keys)`` (``numpy.random.SeedSequence``).

    Different key tuples give statistically independent streams; string keys enter as their CRC-32.
    """
    seed = check_count("seed", seed, minimum=0)
    entropy = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def stream_generator(seed: int, *keys: int | str) -> torch.Generator:
    """A ``torch.Generator`` seeded with ``stream_seed(seed, *keys)``."""
    return torch.Generator().manual_seed(stream_seed(seed, *keys))


class FreshDataset(Dataset):
    """``n`` virtual items: item i is ``make(1, stream_generator(seed, "fresh", i))`` with the batch axis
    dropped, generated when asked for (nothing stored; picklable for DataLoader workers).

    ``make(n, generator)`` returns a tuple of tensors with a leading batch axis of n, e.g. ``adding_batch``.
    """

    def __init__(self, n: int, seed: int, make: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]):
        check_count("n_train", n)
        self.n, self.seed, self.make = n, seed, make

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(f"item {i} out of range for a FreshDataset of {self.n} items")
        return tuple(t[0] for t in self.make(1, stream_generator(self.seed, "fresh", i)))
