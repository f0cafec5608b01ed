"""Learning a linear dynamical system (the synthetic task of STU, Agarwal et al. 2023).

One fixed system per data set,
    x_{t+1} = A x_t + B u_t + noise * w_t,        y_t = C x_t + D u_t + obs_noise * e_t,
with x_0 = 0, inputs u_t ~ N(0, I), w_t, e_t ~ N(0, I), t = 0..length-1. A sample is x = u (length, d_input)
-> y (length, d_output): per-step regression, metric MSE. The data set asks a model to learn this system.

``lds`` draws the system from ``seed`` (``random_lds``): B ~ N(0, 1/d_input), C ~ N(0, 1/d_state),
D ~ N(0, 1/d_input) entrywise, and A with spectral radius max |eig(A)| = ``spectral_radius`` exactly:
- ``diagonal``: A = diag(a), a_i ~ U[-1, 1], rescaled so that max |a_i| = spectral_radius (real modes).
- ``dense``: A = G * spectral_radius / rho(G) with G ~ N(0, 1/d_state) (complex modes; A may be non-normal,
  so transients can exceed rho^t).
- ``signs``: the STU paper's marginally stable system (paper-numbers.md 2.2): A = diag(spectral_radius Z)
  with Z uniform random signs, so every mode has |a_i| = spectral_radius (0.9999 there: memory ~ 1e4
  steps); B, C with i.i.d. N(0, 1) entries and D diagonal with N(0, 1) entries (its leading diagonal
  when d_output != d_input), unscaled as the paper draws them.
A radius near 1 (e.g. 0.99, memory ~ 1 / (1 - rho) = 100 steps) makes the task long-range.
``lds_from_system(A, B, C, D, ...)`` builds the same data set for a system you give.

The system, the inputs and the noise come from separate streams of ``seed`` (``stream_seed``):
``(seed, "system")``, ``(seed, "train" | "val" | "test")``. Simulated in float64, stored in float32.
The defaults (sizes, B/C/D scales) are lindy's choice, not STU's exact setting.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lindy._checks import check_choice, check_count, check_finite_number
from lindy.data.base import DataSplits, TaskInfo, make_splits, register_dataset, split_sizes
from lindy.data.streams import stream_generator

KINDS = ("diagonal", "dense", "signs")


def spectral_radius_of(A) -> float:
    """max |eig(A)| of a square matrix."""
    return float(np.abs(np.linalg.eigvals(np.asarray(A, dtype=np.float64))).max())


def random_lds(
    d_state: int,
    d_input: int,
    d_output: int,
    kind: str = "diagonal",
    radius: float = 0.99,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A, B, C, D float64 of shapes (d_state, d_state), (d_state, d_input), (d_output, d_state),
    (d_output, d_input), with max |eig(A)| = ``radius`` (``kind``: see the module docstring)."""
    for name, value in (("d_state", d_state), ("d_input", d_input), ("d_output", d_output)):
        check_count(name, value)
    check_choice("kind", kind, KINDS)
    if not (isinstance(radius, (int, float)) and 0.0 < radius < 1.0):
        raise ValueError(f"spectral_radius must be in (0, 1) for a stable system, got {radius!r}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    f64 = torch.float64
    if kind == "signs":
        signs = torch.randint(0, 2, (d_state,), generator=g).to(f64) * 2 - 1
        B = torch.randn(d_state, d_input, generator=g, dtype=f64)
        C = torch.randn(d_output, d_state, generator=g, dtype=f64)
        D = torch.zeros(d_output, d_input, dtype=f64)
        D.diagonal().copy_(torch.randn(min(d_output, d_input), generator=g, dtype=f64))
        return torch.diag(radius * signs), B, C, D
    if kind == "diagonal":
        a = torch.rand(d_state, generator=g, dtype=f64) * 2 - 1
        A = torch.diag(a * (radius / a.abs().max()))
    else:
        G = torch.randn(d_state, d_state, generator=g, dtype=f64) / d_state**0.5
        A = G * (radius / spectral_radius_of(G.numpy()))
    B = torch.randn(d_state, d_input, generator=g, dtype=f64) / d_input**0.5
    C = torch.randn(d_output, d_state, generator=g, dtype=f64) / d_state**0.5
    D = torch.randn(d_output, d_input, generator=g, dtype=f64) / d_input**0.5
    return A, B, C, D


def _as_matrix(name: str, value, shape: tuple[int | None, int | None]) -> torch.Tensor:
    try:
        m = torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 2-D array of numbers ({err})") from None
    want = "x".join("?" if s is None else str(s) for s in shape)
    if m.ndim != 2 or any(s is not None and s != m.shape[i] for i, s in enumerate(shape)):
        raise ValueError(f"{name} must have shape ({want}), got {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} holds NaN or inf")
    return m


def check_system(A, B, C, D) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (s, s), B (s, i), C (o, s), D (o, i) as float64 tensors; a ValueError names a bad one."""
    A = _as_matrix("A", A, (None, None))
    s = A.shape[0]
    if A.shape[1] != s:
        raise ValueError(f"A must be square (d_state x d_state), got {tuple(A.shape)}")
    B = _as_matrix("B", B, (s, None))
    C = _as_matrix("C", C, (None, s))
    D = _as_matrix("D", D, (C.shape[0], B.shape[1]))
    return A, B, C, D


def simulate_lds(
    A, B, C, D, u: torch.Tensor, noise: float = 0.0, obs_noise: float = 0.0, generator=None
) -> torch.Tensor:
    """y (n, L, d_output) float64 of the system driven by u (n, L, d_input), from x_0 = 0:
    y_t = C x_t + D u_t + obs_noise e_t, x_{t+1} = A x_t + B u_t + noise w_t (noise drawn from ``generator``
    only when nonzero)."""
    A, B, C, D = check_system(A, B, C, D)
    u = u.to(torch.float64)
    n, L, _ = u.shape
    Bu = (u @ B.T).transpose(0, 1).contiguous()  # (L, n, d_state): time-major, all input terms at once
    states = torch.empty(L, n, A.shape[0], dtype=torch.float64)  # x_0 .. x_{L-1}
    x = torch.zeros(n, A.shape[0], dtype=torch.float64)
    At = A.T.contiguous()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # L tiny matmuls: one thread is ~20x faster than many on a busy machine
    try:
        for t in range(L):
            states[t] = x
            x = torch.addmm(Bu[t], x, At)
            if noise:
                x += noise * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    finally:
        torch.set_num_threads(threads)
    ys = states.transpose(0, 1) @ C.T + u @ D.T
    if obs_noise:
        ys += obs_noise * torch.randn(ys.shape, generator=generator, dtype=torch.float64)
    return ys


def lds_from_system(
    A,
    B,
    C,
    D,
    length: int = 1000,
    n_train: int = 2048,
    n_val: int = 256,
    n_test: int = 256,
    noise: float = 0.0,
    obs_noise: float = 0.0,
    seed: int = 0,
) -> DataSplits:
    """Train/val/test sets of the given system: u ~ N(0, I) (length, d_input) -> y (length, d_output)."""
    A, B, C, D = check_system(A, B, C, D)
    check_count("length", length)
    for name, value in (("noise", noise), ("obs_noise", obs_noise)):
        check_finite_number(name, value, low=0.0)

    def make(split: str, n: int) -> TensorDataset:
        g = stream_generator(seed, split)
        u = torch.randn(n, length, B.shape[1], generator=g, dtype=torch.float64)
        y = simulate_lds(A, B, C, D, u, noise, obs_noise, generator=g)
        return TensorDataset(u.float(), y.float())

    info = TaskInfo(
        d_input=B.shape[1], d_output=C.shape[0], length=length, task="per_step_regression", metric="mse"
    )
    return make_splits(split_sizes(n_train, n_val, n_test), make, info)


@register_dataset("lds")
def lds(
    d_state: int = 16,
    d_input: int = 4,
    d_output: int = 4,
    length: int = 1000,
    kind: str = "diagonal",
    spectral_radius: float = 0.99,
    noise: float = 0.0,
    obs_noise: float = 0.0,
    n_train: int = 2048,
    n_val: int = 256,
    n_test: int = 256,
    seed: int = 0,
):
    """A random stable system from ``(seed, "system")`` (``random_lds``) and its train/val/test sets."""
    system = random_lds(d_state, d_input, d_output, kind, spectral_radius, stream_generator(seed, "system"))
    return lds_from_system(*system, length, n_train, n_val, n_test, noise, obs_noise, seed)
