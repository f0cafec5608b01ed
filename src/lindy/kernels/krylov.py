"""Dense Krylov kernels of a discrete system: the reference (and general fallback) for LSSL's kernel.

    X[..., :, l] = Abar^l Bbar,      K[..., m, l] = C[..., m, :] Abar^l Bbar,      l = 0..L-1

``krylov`` builds X by doubling: starting from X = [Bbar], it appends P X with P = Abar^(2^j) and squares
P, about log2(L) dense products (O(N^2 L + N^3 log L) time, O(N L) memory per system). This is what the
reference LSSL does for every feature; lindy keeps it for streaming chunks and as the tests' reference.

``blocked_krylov_kernel`` is exact for any A and never holds N x L per output: with T = 2^ceil(log2 sqrt L)
and l = j T + i,

    K[m, j T + i] = (C_m Abar^(jT)) (Abar^i Bbar) = Y[m, :, j] . X[:, i],

X = krylov(Abar, Bbar, T) (N x T) and Y the rows C_m (Abar^T)^j, j < L/T, by the same doubling on the
transpose: O(N^3 log L + N^2 sqrt(L) M + M N L) time and O(N^2 + M N sqrt L + M L) memory per feature,
all in real matmuls.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["krylov", "krylov_kernel", "krylov_loop", "blocked_krylov_kernel"]


def krylov(Abar: Tensor, Bbar: Tensor, length: int) -> Tensor:
    """X = [Bbar, Abar Bbar, ..., Abar^(L-1) Bbar]: Abar (..., N, N), Bbar (..., N) -> (..., N, L)."""
    return _krylov_and_power(Abar, Bbar, length)[0]


def _krylov_and_power(Abar: Tensor, Bbar: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """(krylov(Abar, Bbar, L), Abar^P) with P = 2^ceil(log2 L): the doubling's last power squared once."""
    X = Bbar.unsqueeze(-1)
    power = Abar
    while X.shape[-1] < length:
        need = min(X.shape[-1], length - X.shape[-1])
        X = torch.cat([X, power @ X[..., :need]], dim=-1)
        power = power @ power
    return X, power


def krylov_kernel(Abar: Tensor, Bbar: Tensor, C: Tensor, length: int) -> Tensor:
    """K = C X for C (..., M, N): (..., M, L)."""
    return C @ krylov(Abar, Bbar, length)


def krylov_loop(Abar: Tensor, Bbar: Tensor, C: Tensor, length: int) -> Tensor:
    """The same kernel one power at a time (the plainest possible reference, for tests)."""
    x, out = Bbar.unsqueeze(-1), []
    for _ in range(length):
        out.append(C @ x)
        x = Abar @ x
    return torch.cat(out, dim=-1)


def blocked_krylov_kernel(Abar: Tensor, Bbar: Tensor, C: Tensor, length: int) -> Tensor:
    """The same K as ``krylov_kernel`` by two levels of powers: Abar (H, N, N), Bbar (H, N), C (H, M, N)."""
    block = 1 << max(0, math.ceil(math.log2(math.sqrt(length))))
    n_blocks = -(-length // block)
    X, A_block = _krylov_and_power(Abar, Bbar, block)  # Abar^i Bbar (H, N, T) and Abar^T (T a power of 2)
    Y = krylov(A_block.transpose(-1, -2).unsqueeze(-3), C, n_blocks)  # (H, M, N, J): (C_m Abar^(jT))^T
    K = torch.einsum("hmnj,hni->hmji", Y, X)
    return K.reshape(*K.shape[:-2], n_blocks * block)[..., :length]
