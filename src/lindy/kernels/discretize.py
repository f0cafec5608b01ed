"""Discretisation of x' = A x + B u with step dt, for dense and for complex diagonal A.

- Generalised bilinear transform (GBT), alpha in [0, 1] (0 forward Euler, 1/2 bilinear, 1 backward Euler):
      Abar = (I - alpha dt A)^-1 (I + (1 - alpha) dt A),   Bbar = dt (I - alpha dt A)^-1 B
- Zero-order hold (ZOH): Abar = exp(dt A), Bbar = A^-1 (exp(dt A) - I) B, the exact solution for a input
  held constant over each step; the dense form uses the block exponential
      exp(dt [[A, B], [0, 0]]) = [[Abar, Bbar], [0, 1]],  which needs no inverse of A.
Diagonal A is complex, given as real pairs (..., N, 2) (``complex_pairs``); there Bbar = factor * B.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lindy.kernels.complex_pairs import cabs2, cdiv, cexp

__all__ = ["gbt_dense", "zoh_dense", "discretize_diag"]


def _check_alpha(alpha: float) -> None:
    if not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(
            f"alpha must be in [0, 1] (0 forward Euler, 1/2 bilinear, 1 backward Euler), got {alpha}"
        )


def gbt_dense(A: Tensor, B: Tensor, dt: Tensor | float, alpha: float = 0.5) -> tuple[Tensor, Tensor]:
    """GBT of dense A (..., N, N), B (..., N) with dt broadcast over the leading dims: (Abar, Bbar)."""
    _check_alpha(alpha)
    dt = torch.as_tensor(dt, dtype=A.dtype, device=A.device)[..., None, None]
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    lhs = eye - alpha * dt * A
    rhs = torch.cat([eye + (1 - alpha) * dt * A, dt * B.unsqueeze(-1).expand(*lhs.shape[:-1], 1)], dim=-1)
    sol = _solve(lhs, rhs)
    return sol[..., :-1], sol[..., -1]


def _solve(lhs: Tensor, rhs: Tensor) -> Tensor:
    """torch.linalg.solve, one matrix at a time above N = 128 on CPU.

    With torch 2.13's CPU build, once ``torch.set_num_threads`` has been called, batched LU of matrices
    larger than 128 fails inside MKL ("Pivots given to lu_solve must all be greater or equal to 1";
    single matrices are fine), so large batches are solved in a loop (the same LAPACK work).
    """
    if lhs.device.type != "cpu" or lhs.shape[-1] <= 128 or lhs.dim() == 2:
        return torch.linalg.solve(lhs, rhs)
    batch = torch.broadcast_shapes(lhs.shape[:-2], rhs.shape[:-2])
    lhs_flat = lhs.expand(*batch, *lhs.shape[-2:]).reshape(-1, *lhs.shape[-2:])
    rhs_flat = rhs.expand(*batch, *rhs.shape[-2:]).reshape(-1, *rhs.shape[-2:])
    sol = torch.stack([torch.linalg.solve(a, b) for a, b in zip(lhs_flat, rhs_flat)])
    return sol.reshape(*batch, *sol.shape[-2:])


def zoh_dense(A: Tensor, B: Tensor, dt: Tensor | float) -> tuple[Tensor, Tensor]:
    """ZOH of dense A (..., N, N), B (..., N) by the block matrix exponential: (Abar, Bbar)."""
    N = A.shape[-1]
    dt = torch.as_tensor(dt, dtype=A.dtype, device=A.device)[..., None, None]
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-1], dt.shape[:-2])
    M = torch.zeros(*batch, N + 1, N + 1, dtype=A.dtype, device=A.device)
    M[..., :N, :N] = A
    M[..., :N, N] = B
    E = torch.linalg.matrix_exp(M * dt)
    return E[..., :N, :N], E[..., :N, N]


def discretize_diag(A: Tensor, dt: Tensor, method: str = "zoh") -> tuple[Tensor, Tensor, Tensor]:
    """Discretise complex diagonal A (..., N, 2) with dt (...,) (broadcast over N).

    Returns (log_Abar, Abar, factor), each (..., N, 2), with Bbar = factor * B:
      zoh:      Abar = exp(dt A),                   factor = (exp(dt A) - 1) / A
      bilinear: Abar = (1 + dt A/2) / (1 - dt A/2), factor = dt / (1 - dt A/2)
    log_Abar (the principal logarithm; = dt A for ZOH) feeds ``vandermonde_kernel``.
    """
    dt = dt[..., None, None]
    dtA = A * dt
    one = torch.zeros_like(dtA)
    one[..., 0] = 1.0
    if method == "zoh":
        abar = cexp(dtA)
        return dtA, abar, cdiv(abar - one, A)
    if method == "bilinear":
        half = dtA / 2
        abar = cdiv(one + half, one - half)
        log_abar = torch.stack([0.5 * torch.log(cabs2(abar)), torch.atan2(abar[..., 1], abar[..., 0])], -1)
        return log_abar, abar, cdiv(dt * one, one - half)
    raise ValueError(f"method must be one of ('zoh', 'bilinear'), got {method!r}")
