"""The adding problem (Hochreiter & Schmidhuber 1997, in LEM's form).

x: (T, 2): channel 0 holds values U[0, 1]; channel 1 is a marker with exactly one 1 in the first half of
the sequence and one in the second half. y: (1,), the sum of the two marked values. Predicting the mean
(1.0) gives MSE 1/6 ~ 0.167, the baseline to beat. Deterministic from ``seed``: the train, validation and
test sets use the streams seed, seed + 1, seed + 2.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lindy.data.base import DataSplits, TaskInfo, register_dataset


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


@register_dataset("adding")
def adding(length: int = 2000, n_train: int = 10000, n_val: int = 1000, n_test: int = 1000, seed: int = 0):
    """Fixed adding-problem sets of the given sizes and sequence length."""
    sets = []
    for offset, n in enumerate((n_train, n_val, n_test)):
        x, y = adding_batch(n, length, torch.Generator().manual_seed(seed + offset))
        sets.append(TensorDataset(x, y))
    info = TaskInfo(d_input=2, d_output=1, length=length, task="regression", metric="mse", source="synthetic")
    return DataSplits(*sets, info)
