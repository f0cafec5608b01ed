"""Cauchy matrix products without the Cauchy matrix: memory O(H N + H F), not O(H N F).

    out[h, f, q] = sum_n W[h, n, q] / (a[f] - b[f] mu[h, n])

for complex W (H, N, Q), mu (H, N) and fixed frequency terms a, b (F,). This is the core of the
normal-plus-low-rank SSM kernels (S4, LSSL): the resolvent of a diagonal matrix evaluated at F points.
The forward and the backward run over chunks of frequencies, so neither keeps the (H, F, N) matrix
R = 1/(a - b mu): only W, mu and the output are saved, and the backward rebuilds R chunk by chunk.

Gradients (PyTorch's convention for holomorphic maps, grad_in = grad_out * conj(d out / d in)), with G the
gradient of ``out``:
    grad_W[h, n, q]  = sum_f conj(R[h, f, n]) G[h, f, q]
    grad_mu[h, n]    = sum_f conj(b[f] R[h, f, n]^2) (G conj(W)^T)[h, f, n]
a and b are constants (the FFT frequencies), so they get no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cauchy_matmul", "cauchy_matmul_naive"]

DEFAULT_CHUNK = 256


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _resolvent(mu: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """R[h, f, n] = 1 / (a[f] - b[f] mu[h, n]) in two passes over (H, F, N)."""
    return torch.addcmul(a[:, None], b[:, None], mu[:, None, :], value=-1).reciprocal_()


class _CauchyMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu: Tensor, W: Tensor, a: Tensor, b: Tensor, chunk: int) -> Tensor:
        out = torch.empty(W.shape[0], a.shape[0], W.shape[2], dtype=W.dtype, device=W.device)
        for sl in _chunks(a.shape[0], chunk):
            torch.bmm(_resolvent(mu, a[sl], b[sl]), W, out=out[:, sl])
        ctx.save_for_backward(mu, W, a, b)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        mu, W, a, b = ctx.saved_tensors
        need_mu, need_W = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_mu = torch.zeros_like(mu) if need_mu else None
        grad_W = torch.zeros_like(W) if need_W else None
        W_h = W.conj().transpose(1, 2)  # (H, Q, N)
        for sl in _chunks(a.shape[0], ctx.chunk):
            R = _resolvent(mu, a[sl], b[sl])  # (H, Fc, N)
            g = grad[:, sl]  # (H, Fc, Q)
            if need_W:
                grad_W.baddbmm_(R.conj().transpose(1, 2), g)
            if need_mu:
                # sum_f conj(b R^2) (g conj(W)^T): conj(b) goes on the small g, vecdot conjugates R^2
                gw = torch.bmm(g * b[sl, None].conj(), W_h)  # (H, Fc, N)
                grad_mu += torch.linalg.vecdot(R.square_(), gw, dim=1)
        return grad_mu, grad_W, None, None, None


def cauchy_matmul(mu: Tensor, W: Tensor, a: Tensor, b: Tensor, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """out[h, f, q] = sum_n W[h, n, q] / (a[f] - b[f] mu[h, n]).

    Args:
        mu: (H, N) complex poles (scaled); W: (H, N, Q) complex numerators; a, b: (F,) complex constants.
        chunk: frequencies per block (peak extra memory H * chunk * N complex numbers).
    Returns:
        (H, F, Q) complex.
    """
    if not (mu.is_complex() and W.is_complex() and a.is_complex() and b.is_complex()):
        raise TypeError("cauchy_matmul takes complex mu, W, a and b")
    if mu.dim() != 2 or W.dim() != 3 or W.shape[:2] != mu.shape:
        raise ValueError(f"expected mu (H, N) and W (H, N, Q), got {tuple(mu.shape)} and {tuple(W.shape)}")
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(
            f"expected a and b of the same shape (F,), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return _CauchyMatmul.apply(mu, W, a, b, int(chunk))


def cauchy_matmul_naive(mu: Tensor, W: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """The same product with the (H, F, N) Cauchy matrix materialised (the reference for tests)."""
    return torch.reciprocal(a[:, None] - b[:, None] * mu[:, None, :]) @ W
