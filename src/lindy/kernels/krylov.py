"""Dense Krylov kernels of a discrete system: the reference (and general fallback) for LSSL's kernel.

    X[..., :, l] = Abar^l Bbar,      K[..., m, l] = C[..., m, :] Abar^l Bbar,      l = 0..L-1

``krylov`` builds X by doubling: starting from X = [Bbar], it appends P X with P = Abar^(2^j) and squares
P, about log2(L) dense products (O(N^2 L + N^3 log L) time, O(N L) memory per system). This is what the
reference LSSL does for every feature; lindy uses it only where no structure is known (a learned dense
A, zero-order hold) and in tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["krylov", "krylov_kernel", "krylov_loop"]


def krylov(Abar: Tensor, Bbar: Tensor, length: int) -> Tensor:
    """X = [Bbar, Abar Bbar, ..., Abar^(L-1) Bbar]: Abar (..., N, N), Bbar (..., N) -> (..., N, L)."""
    X = Bbar.unsqueeze(-1)
    power = Abar
    while X.shape[-1] < length:
        need = min(X.shape[-1], length - X.shape[-1])
        X = torch.cat([X, power @ X[..., :need]], dim=-1)
        if X.shape[-1] < length:
            power = power @ power
    return X


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
