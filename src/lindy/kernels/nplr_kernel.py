"""The kernel of a normal-plus-low-rank system under the generalised bilinear transform, by Woodbury and
Cauchy products at the FFT frequencies (S4's algorithm, for LSSL's real NPLR parameterisation).

System (per feature h, real): A = 2 Re(V diag(w) V^*) - P P^T with V (N, N/2) orthonormal eigenvectors of
the normal part (the other half of its eigenvectors are their conjugates), P (N, r), B (N,), C (M, N).
GBT with step dt and alpha: Abar = (I - alpha dt A)^-1 (I + (1 - alpha) dt A),
Bbar = dt (I - alpha dt A)^-1 B.

The truncated generating function of K[l] = C Abar^l Bbar, l < L, at z on the L-th roots of unity is

    K^(z) = Ct (I - z Abar)^-1 Bbar = dt Ct (s I - t A)^-1 B,   Ct = C (I - Abar^L),
    s = 1 - z,  t = dt (alpha + (1 - alpha) z)

(no division by 1 + z, so z = -1 needs no special case). In the eigenbasis (all N modes, conjugates
included) A = diag(w) - p p^* with p = V^* P, so with D = diag(s - t w) the Woodbury identity gives

    K^(z) = dt [k_cb - t k_cp (I_r + t k_pp)^-1 k_pb],     k_xy = x^T D^-1 y,

four Cauchy products (``cauchy_matmul``) at the L//2 + 1 frequencies a real kernel needs, then an inverse
real FFT. Ct needs Abar^L: log2(L) dense squarings of the N x N matrices, which are small next to the
Cauchy products for N <= 64 (measured in benchmarks/lssl_speed.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lindy.kernels.cauchy import cauchy_matmul

__all__ = ["nplr_dense", "nplr_gbt_kernel", "frequencies"]


def nplr_dense(w: Tensor, V: Tensor, P: Tensor) -> Tensor:
    """A = 2 Re(V diag(w) V^*) - P P^T: w (G, N/2) complex, V (N, N/2) complex, P (G, N, r) -> (G, N, N)."""
    S = 2 * ((V * w[:, None, :]) @ V.conj().T).real
    return S - P @ P.transpose(-1, -2)


def frequencies(length: int, alpha: float, dtype: torch.dtype, device=None) -> tuple[Tensor, Tensor]:
    """s = 1 - z and alpha + (1 - alpha) z at z = exp(-2 pi i f / L), f = 0..L//2 (complex, (F,))."""
    f = torch.arange(length // 2 + 1, dtype=torch.float64, device=device)
    z = torch.polar(torch.ones_like(f), -2 * math.pi * f / length)
    return (1 - z).to(dtype), (alpha + (1 - alpha) * z).to(dtype)


def nplr_gbt_kernel(
    w: Tensor,
    V: Tensor,
    P: Tensor,
    B: Tensor,
    C_tail: Tensor,
    dt: Tensor,
    length: int,
    alpha: float = 0.5,
    chunk: int = 256,
) -> Tensor:
    """K[h, m, l] = C_hm Abar_h^l Bbar_h for l < L, given C_tail = C (I - Abar^L).

    Args:
        w: (G, N/2) complex eigenvalues of the normal part (G = 1 shared by all features, or G = H).
        V: (N, N/2) complex orthonormal eigenvectors. P: (G, N, r) real. B: (G, N) real.
        C_tail: (H, M, N) real. dt: (H,) real steps.
    Returns:
        (H, M, L) real, in dt's dtype.
    """
    cdtype = torch.complex128 if dt.dtype == torch.float64 else torch.complex64
    H, M, _ = C_tail.shape
    r = P.shape[-1]
    V_full = torch.cat([V, V.conj()], dim=-1).to(cdtype)  # (N, N)
    w_full = torch.cat([w, w.conj()], dim=-1).to(cdtype).expand(H, -1)  # (H, N)
    Vh = V_full.conj().T
    b = (Vh @ B.to(cdtype).unsqueeze(-1)).squeeze(-1).expand(H, -1)  # (H, N)
    p = (Vh @ P.to(cdtype)).expand(H, -1, -1)  # (H, N, r)
    c = C_tail.to(cdtype) @ V_full  # (H, M, N)
    left = torch.cat([c, p.conj().transpose(1, 2)], dim=1)  # (H, M + r, N)
    right = torch.cat([b.unsqueeze(-1), p], dim=-1)  # (H, N, 1 + r)
    W = (left.transpose(1, 2).unsqueeze(-1) * right.unsqueeze(-2)).reshape(H, -1, (M + r) * (1 + r))
    s, beta = frequencies(length, alpha, cdtype, dt.device)
    out = cauchy_matmul(dt.to(cdtype)[:, None] * w_full, W, s, beta, chunk)
    out = out.reshape(H, -1, M + r, 1 + r)  # (H, F, M + r, 1 + r)
    k_hat = out[..., :M, 0]  # (H, F, M)
    if r > 0:
        t = dt.to(cdtype)[:, None] * beta  # (H, F)
        k_cp, k_pb, k_pp = out[..., :M, 1:], out[..., M:, 0], out[..., M:, 1:]
        eye = torch.eye(r, dtype=cdtype, device=dt.device)
        solved = torch.linalg.solve(eye + t[..., None, None] * k_pp, k_pb.unsqueeze(-1))  # (H, F, r, 1)
        k_hat = k_hat - t[..., None] * (k_cp @ solved).squeeze(-1)
    k_hat = dt.to(cdtype)[:, None, None] * k_hat
    return torch.fft.irfft(k_hat.transpose(1, 2), n=length)  # (H, M, L)
