"""The adding problem (Hochreiter & Schmidhuber 1997, in LEM's form), and the seeding helpers that every
synthetic lindy data set shares.

x: (T, 2): channel 0 holds values U[0, 1]; channel 1 is a marker with exactly one 1 in the first half of
the sequence and one in the second half. y: (1,), the sum of the two marked values. Predicting the mean
(1.0) gives MSE 1/6 ~ 0.167, the baseline to beat. Deterministic from ``seed``: the fixed train,
validation and test sets use the streams seed, seed + 1, seed + 2.

``fresh=True`` makes the training split a ``FreshDataset``: ``n_train`` virtual items, item i generated on
demand from its own generator ``stream_generator(seed, "fresh", i)``. Nothing is stored, so ``n_train`` can
be huge (a long run then sees new sequences at every step), yet any item is reproducible, which keeps
training deterministic and resumable. Validation and test stay fixed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from lindy.data.base import DataSplits, TaskInfo, register_dataset


def stream_seed(seed: int, *keys: int | str) -> int:
    """A 64-bit seed for the stream named by ``(seed, *keys)`` (``numpy.random.SeedSequence``).

    Different key tuples give statistically independent streams, e.g. ``(seed, "train")``,
    ``(seed, "val")`` and ``(seed, "fresh", i)``; string keys enter as their CRC-32.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    entropy = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
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


def check_count(name: str, n) -> int:
    """``n`` as an int, or a ValueError naming ``name`` when it is not a positive integer."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def adding_batch(n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences (n, length, 2) and targets (n, 1)."""
    if length < 2:
        raise ValueError(f"length must be >= 2 (one mark in each half), got {length}")
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    marker = torch.zeros(n, length)
    rows = torch.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    target = (values[rows, first] + values[rows, second]).unsqueeze(-1)
    return torch.stack([values, marker], dim=-1), target


class _AddingMaker:
    """``make(n, generator)`` for ``FreshDataset`` (a class, not a lambda, so that it pickles)."""

    def __init__(self, length: int):
        self.length = length

    def __call__(self, n: int, generator: torch.Generator):
        return adding_batch(n, self.length, generator)


@register_dataset("adding")
def adding(
    length: int = 2000,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    fresh: bool = False,
):
    """Adding-problem sets of the given sizes and sequence length; ``fresh``: the train split is a
    ``FreshDataset`` of ``n_train`` on-demand items (see the module docstring)."""
    if not isinstance(fresh, bool):
        raise ValueError(f"fresh must be true or false, got {fresh!r}")
    if length < 2:
        raise ValueError(f"length must be >= 2 (one mark in each half), got {length}")
    sets = []
    for offset, (name, n) in enumerate((("n_train", n_train), ("n_val", n_val), ("n_test", n_test))):
        check_count(name, n)
        if offset == 0 and fresh:
            sets.append(FreshDataset(n, seed, _AddingMaker(length)))
            continue
        x, y = adding_batch(n, length, torch.Generator().manual_seed(seed + offset))
        sets.append(TensorDataset(x, y))
    info = TaskInfo(d_input=2, d_output=1, length=length, task="regression", metric="mse", source="synthetic")
    return DataSplits(*sets, info)
