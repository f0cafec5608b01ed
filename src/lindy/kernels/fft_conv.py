"""Convolution by FFT: causal, and bidirectional from a causal and an anti-causal kernel.

Time is the last dimension. The product of two length-L sequences' transforms on a circle of n = 2L points
has no wrap-around in its first L outputs, which are the causal convolution. Any L works (pocketfft and
cuFFT take every size). The FFT runs in float32 even under autocast (bf16 FFTs lose the kernel's tail);
float64 inputs stay float64, and the output has the input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["causal_conv", "bidirectional_conv", "kernel_spectrum"]


def _fft_dtype(*tensors: Tensor) -> torch.dtype:
    return (
        torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32
    )


def kernel_spectrum(k: Tensor, length: int) -> Tensor:
    """rfft of the kernel k (..., L_k), L_k <= length, zero-padded to n = 2*length: (..., length + 1)."""
    if k.shape[-1] > length:
        raise ValueError(f"kernel length must be <= the input length {length}, got {k.shape[-1]}")
    with torch.autocast(k.device.type, enabled=False):
        return torch.fft.rfft(k.to(_fft_dtype(k)), n=2 * length)


def causal_conv(u: Tensor, k: Tensor | None = None, *, k_f: Tensor | None = None) -> Tensor:
    """y[..., t] = sum_{s <= t} k[..., s] u[..., t - s].

    Args:
        u: (..., H, L) input, time last.
        k: (H, L_k) or broadcastable to (..., H, L_k), L_k <= L (a shorter kernel is zero beyond L_k).
        k_f: instead of k, its spectrum ``kernel_spectrum(k, L)``: (..., H, L + 1).
    Returns:
        y: (..., H, L) with u's dtype.
    """
    if (k is None) == (k_f is None):
        raise ValueError("pass exactly one of k (the kernel) or k_f (its spectrum at n = 2L)")
    length = u.shape[-1]
    with torch.autocast(u.device.type, enabled=False):
        if k_f is None:
            k_f = kernel_spectrum(k, length)
        elif k_f.shape[-1] != length + 1:
            raise ValueError(f"k_f must have last dim L + 1 = {length + 1}, got {k_f.shape[-1]}")
        dtype = (
            torch.float64 if (u.dtype == torch.float64 or k_f.dtype == torch.complex128) else torch.float32
        )
        u_f = torch.fft.rfft(u.to(dtype), n=2 * length)
        y = torch.fft.irfft(u_f * k_f, n=2 * length)[..., :length]
    return y.to(u.dtype)


def bidirectional_conv(u: Tensor, k_causal: Tensor, k_anticausal: Tensor) -> Tensor:
    """y[t] = sum_{s <= t} k0[t - s] u[s] + sum_{s > t} k1[s - t - 1] u[s].

    On the circle of 2L points the combined kernel is [k0, 0] + [0, flip(k1)]: k1[j] sits at position
    2L - 1 - j, i.e. lag -(j + 1). Shapes as in ``causal_conv``; both kernels have length L.
    """
    length = u.shape[-1]
    if k_causal.shape[-1] != length or k_anticausal.shape[-1] != length:
        raise ValueError(
            f"both kernels must have length L = {length}, "
            f"got {k_causal.shape[-1]} and {k_anticausal.shape[-1]}"
        )
    with torch.autocast(u.device.type, enabled=False):
        dtype = _fft_dtype(u, k_causal, k_anticausal)
        k = torch.cat([k_causal.to(dtype), k_anticausal.to(dtype).flip(-1)], dim=-1)  # (..., 2L)
        y = torch.fft.irfft(torch.fft.rfft(u.to(dtype), n=2 * length) * torch.fft.rfft(k), n=2 * length)
    return y[..., :length].to(u.dtype)
