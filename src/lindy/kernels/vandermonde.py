"""Diagonal SSM convolution kernels: K[l] = Re(sum_n c_n z_n^l), l < L (a Vandermonde product).

With z_n = exp(log_z_n) (for S4D, log_z = dt A and c = 2 C Bbar), the naive form materialises the
(..., N, L) tensor of powers, which is what bounds the reference S4D's memory and time at long L.

The fast form writes l = T q + j with T = ceil(sqrt(L)), 0 <= j < T, 0 <= q < Q = ceil(L / T):

    K[T q + j] = Re( sum_n (c_n z_n^(T q)) z_n^j ) = sum_n Re(a_nq) Re(p_nj) - Im(a_nq) Im(p_nj)

with a = c z^(Tq): (..., N, Q) and p = z^j: (..., N, T). Each power comes from exp of its exact exponent
(no repeated products, so no error growth), and K is two real batched matmuls. Time O(N L) in BLAS,
memory O(N sqrt(L) + L); autograd saves only the (N, sqrt L) factors. Everything is real arithmetic on
(real, imag) pairs, so it traces and compiles like any other real code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lindy._checks import check_positive_int

__all__ = ["vandermonde_kernel", "vandermonde_kernel_naive"]


def _check(log_z: Tensor, c: Tensor, length: int) -> int:
    if log_z.shape[-1] != 2 or c.shape[-1] != 2:
        raise ValueError(
            f"log_z and c must be real pairs (..., N, 2), got {tuple(log_z.shape)}, {tuple(c.shape)}"
        )
    return check_positive_int("L", length)


def _powers(log_z: Tensor, exponents: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of z^e = exp(e log_z) for each exponent: (..., N, len(e))."""
    re = log_z[..., 0:1] * exponents
    im = log_z[..., 1:2] * exponents
    mag = torch.exp(re)
    return mag * torch.cos(im), mag * torch.sin(im)


def vandermonde_kernel(log_z: Tensor, c: Tensor, L: int) -> Tensor:
    """K[..., l] = Re(sum_n c[..., n] exp(l log_z[..., n])) for l < L, without the (N, L) powers.

    Args:
        log_z: (..., N, 2) exponents as (real, imag) pairs (e.g. dt * A).
        c: (..., N, 2) coefficients as pairs (e.g. 2 C Bbar); broadcast against log_z.
        L: kernel length.
    Returns:
        K: (..., L) real, in the inputs' dtype.
    """
    L = _check(log_z, c, L)
    T = math.isqrt(L - 1) + 1 if L > 1 else 1  # T = ceil(sqrt(L))
    Q = -(-L // T)
    dev, dt = log_z.device, log_z.dtype
    p_re, p_im = _powers(log_z, torch.arange(T, device=dev, dtype=dt))  # z^j, (..., N, T)
    s_re, s_im = _powers(log_z, torch.arange(Q, device=dev, dtype=dt) * T)  # z^(Tq), (..., N, Q)
    c_re, c_im = c[..., 0:1], c[..., 1:2]
    a_re = c_re * s_re - c_im * s_im  # a = c z^(Tq)
    a_im = c_re * s_im + c_im * s_re
    # (..., Q, N) @ (..., N, T) -> (..., Q, T); the minus sign of Re(a p) goes into the second factor
    k = a_re.transpose(-1, -2) @ p_re - a_im.transpose(-1, -2) @ p_im
    return k.flatten(-2)[..., :L]


def vandermonde_kernel_naive(log_z: Tensor, c: Tensor, L: int) -> Tensor:
    """The reference form: materialises exp(l log_z) for every l, (..., N, L). For tests and benchmarks."""
    L = _check(log_z, c, L)
    l = torch.arange(L, device=log_z.device, dtype=log_z.dtype)
    p_re, p_im = _powers(log_z, l)
    return (c[..., 0:1] * p_re - c[..., 1:2] * p_im).sum(-2)
