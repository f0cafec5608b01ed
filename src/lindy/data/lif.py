"""LIF membrane traces: the data set SDN (Shen et al. 2024) learns to compute LIF neurons in parallel.

x ~ N(mean, std) of shape (N, T); the targets are the LIF's decayed potential ``mem`` and its ``spike``
train (``lindy.kernels.lif``). ``generate_lif`` returns the dict SDN's training script loads (``input``,
``mem`` float, ``spike`` int, each (N, T)); ``lif_filename`` gives its file name, e.g.
``training-mem-T1024-N(0.0,1.0)-50000-tau_0.2.pt`` (``test-...`` for the test split).
As a lindy data set (``data=lif``): per-step regression, x (T, 1) -> mem (T, 1).
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lindy._checks import check_count, check_finite_number
from lindy.data.base import SPLITS, TaskInfo, check_seed, make_splits, register_dataset, split_sizes
from lindy.kernels.lif import lif_reference

SPLIT_PREFIX = {"train": "training", "test": "test"}


def lif_filename(split: str, num: int, length: int = 1024, tau: float = 0.2, mean=0.0, std=1.0) -> str:
    if split not in SPLIT_PREFIX:
        raise ValueError(f"split must be one of {list(SPLIT_PREFIX)}, got {split!r}")
    return f"{SPLIT_PREFIX[split]}-mem-T{length}-N({float(mean)},{float(std)})-{num}-tau_{tau}.pt"


def check_lif_options(num: int, length: int, tau: float, seed: int, mean=0.0, std=1.0) -> None:
    """Raise a ValueError naming the first bad option of ``generate_lif`` (counts, tau in [0, 1], ...)."""
    check_count("num", num)
    check_count("length", length)
    check_finite_number("tau", tau, low=0.0, high=1.0)
    check_seed("seed", seed)
    check_finite_number("mean", mean)
    check_finite_number("std", std, low=0.0)


def generate_lif(num: int, length: int = 1024, tau: float = 0.2, seed: int = 0, mean=0.0, std=1.0) -> dict:
    """{"input": (num, length) float32, "mem": float32, "spike": int64}, deterministic from ``seed``."""
    check_lif_options(num, length, tau, seed, mean, std)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num, length, generator=g, dtype=torch.float64) * std + mean
    mem, spike = lif_reference(x, tau)  # simulated in float64, stored in float32 as SDN's files are
    return {"input": x.float(), "mem": mem.float(), "spike": spike.long()}


@register_dataset("lif")
def lif(
    n_train: int = 45000,
    n_val: int = 5000,
    n_test: int = 10000,
    length: int = 1024,
    tau: float = 0.2,
    seed: int = 0,
):
    """Train/val/test membrane-trace sets (seeds seed, seed + 1, seed + 2)."""
    sizes = split_sizes(n_train, n_val, n_test)
    check_lif_options(1, length, tau, seed)

    def make(split: str, n: int) -> TensorDataset:
        d = generate_lif(n, length, tau, seed + SPLITS.index(split))
        return TensorDataset(d["input"].unsqueeze(-1), d["mem"].unsqueeze(-1))

    # SDN's training recipe: SmoothL1 on the membrane, scored by how often the predicted spikes are right
    info = TaskInfo(
        1, 1, length, "per_step_regression", "spike_agreement", source="synthetic", loss="smooth_l1"
    )
    return make_splits(sizes, make, info)
