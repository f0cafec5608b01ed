"""FitzHugh-Nagumo traces (LEM's task, Rusch et al. 2022): predict the next sample of the fast variable.

The model neuron
    v' = v - v^3 / 3 - w + I,        w' = eps (v + a - b w),        I = 0.5, a = 0.7, b = 0.8, eps = 1/50,
starts at v(0) ~ U[-1, 1], w(0) = 0 and is solved on [0, t_end = 400] with scipy's ``solve_ivp`` (RK45,
default tolerances rtol 1e-3, atol 1e-6), each sample on its own as LEM's reference does (one adaptive
step-size sequence per sample; solving a batch as one 2n-dimensional system would share the step sizes
and give different numbers), and read at ``length + 1`` equispaced times t_k = k t_end / length.
x = v(t_0..t_{length-1}) of shape (length, 1), y = v(t_1..t_length) of shape (length, 1): per-step
regression, headline metric RMSE (LEM reports the test RMSE).

Deterministic from ``seed``: v(0) of split s comes from the numpy stream ``stream_seed(seed, s)``
(``lindy.data.streams``), so the three splits never share a stream. The reference draws v(0) from numpy's
global generator (seed 1234), so its exact trajectories are not reproduced, only their distribution.
Solving takes ~10 ms a sample (~12 s for the default 1280), so each split is cached (``cached_tensors``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lindy._checks import check_count, check_finite_number
from lindy.data.base import TaskInfo, check_bool, check_seed, make_splits, register_dataset, split_sizes
from lindy.data.cache import cached_tensors
from lindy.data.streams import stream_seed

FHN_I, FHN_A, FHN_B, FHN_EPS = 0.5, 0.7, 0.8, 1.0 / 50.0
FHN_VERSION = 1  # bump when the generated numbers change


def fhn_rhs(t: float, state: np.ndarray) -> np.ndarray:
    """d/dt [v, w] = [v - v^3/3 - w + I, eps (v + a - b w)]; ``state`` (2,) or (2, k) -> same shape."""
    v, w = state[0], state[1]
    return np.array([v - v**3 / 3.0 - w + FHN_I, FHN_EPS * (v + FHN_A - FHN_B * w)])


def fhn_trajectories(v0, length: int = 1000, t_end: float = 400.0) -> np.ndarray:
    """Solve FitzHugh-Nagumo from each v0 (w0 = 0): float64 array (n, 2, length + 1) of [v, w] at the
    times ``np.linspace(0, t_end, length + 1)``, one ``solve_ivp`` (RK45 defaults) per sample."""
    from scipy.integrate import solve_ivp

    v0 = np.atleast_1d(np.asarray(v0, dtype=np.float64))
    if v0.ndim != 1 or not np.isfinite(v0).all():
        raise ValueError(f"v0 must be a finite 1-D array of initial v values, got shape {v0.shape}")
    check_count("length", length)
    if not t_end > 0:
        raise ValueError(f"t_end must be > 0, got {t_end!r}")
    times = np.linspace(0.0, t_end, length + 1)
    out = np.empty((len(v0), 2, length + 1))
    for i, v in enumerate(v0):
        sol = solve_ivp(fhn_rhs, (0.0, t_end), np.array([v, 0.0]), t_eval=times)
        if not sol.success:
            raise RuntimeError(f"FitzHugh-Nagumo solve failed from v0={v}: {sol.message}")
        out[i] = sol.y
    return out


def fhn_split(n: int, length: int, t_end: float, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y float32 (n, length, 1) for one split, v0 from the numpy stream ``stream_seed(seed, split)``."""
    rng = np.random.default_rng(stream_seed(seed, split))
    v = fhn_trajectories(rng.uniform(-1.0, 1.0, n), length, t_end)[:, 0]
    v = torch.from_numpy(v).float().unsqueeze(-1)
    return v[:, :-1].contiguous(), v[:, 1:].contiguous()


@register_dataset("fhn")
def fhn(
    n_train: int = 128,
    n_val: int = 128,
    n_test: int = 1024,
    length: int = 1000,
    t_end: float = 400.0,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | None = None,
):
    """FitzHugh-Nagumo next-sample prediction (LEM's 128 / 128 / 1024 sets by default), cached per split."""
    sizes = split_sizes(n_train, n_val, n_test)
    check_count("length", length)
    check_finite_number("t_end", t_end, positive=True)
    check_seed("seed", seed)
    check_bool("cache", cache)

    def make(split: str, n: int) -> TensorDataset:
        options = {"n": n, "length": length, "t_end": float(t_end), "seed": seed, "split": split}

        def build():
            x, y = fhn_split(n, length, t_end, seed, split)
            return {"x": x, "y": y}

        d = cached_tensors("fhn", options, FHN_VERSION, build, cache_dir=cache_dir, enabled=cache)
        return TensorDataset(d["x"], d["y"])

    info = TaskInfo(d_input=1, d_output=1, length=length, task="per_step_regression", metric="rmse")
    return make_splits(sizes, make, info)
