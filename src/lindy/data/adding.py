"""The adding problem (Hochreiter & Schmidhuber 1997, in LEM's form).

x: (T, 2): channel 0 holds values U[0, 1]; channel 1 is a marker with exactly one 1 in the first half of
the sequence and one in the second half. y: (1,), the sum of the two marked values. Predicting the mean
(1.0) gives MSE 1/6 ~ 0.167, the baseline to beat. Deterministic from ``seed``: the fixed train,
validation and test sets use the streams seed, seed + 1, seed + 2.

``fresh=True`` makes the training split a ``FreshDataset`` (``lindy.data.streams``): ``n_train`` virtual
items, item i generated on demand from its own generator ``stream_generator(seed, "fresh", i)``.
Validation and test stay fixed. (The stream helpers lived here first and are still importable from here.)
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lindy._checks import check_bool, check_count
from lindy.data.base import SPLITS, TaskInfo, check_seed, make_splits, register_dataset, split_sizes
from lindy.data.streams import FreshDataset, stream_generator, stream_seed

__all__ = ["adding", "adding_batch", "check_count", "FreshDataset", "stream_generator", "stream_seed"]


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
    check_bool("fresh", fresh)
    check_count("length", length)
    if length < 2:
        raise ValueError(f"length must be >= 2 (one mark in each half), got {length}")
    check_seed("seed", seed)

    def make(split: str, n: int):
        if split == "train" and fresh:
            return FreshDataset(n, seed, _AddingMaker(length))
        x, y = adding_batch(n, length, torch.Generator().manual_seed(seed + SPLITS.index(split)))
        return TensorDataset(x, y)

    info = TaskInfo(d_input=2, d_output=1, length=length, task="regression", metric="mse", source="synthetic")
    return make_splits(split_sizes(n_train, n_val, n_test), make, info)
