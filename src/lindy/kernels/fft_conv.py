"""Convolution by FFT: causal, and bidirectional from a causal and an anti-causal kernel.

Time is the last dimension. The product of two length-L sequences' transforms on a circle of n = 2L points
has no wrap-around in its first L outputs, which are the causal convolution. Any L works (pocketfft and
cuFFT take every size). The FFT runs in float32 even under autocast (bf16 FFTs lose the kernel's tail);
float64 inputs stay float64, and the output has the input's dtype.

The backward pass is written by hand (``_FFTConv``): both gradients are correlations, computed with real
FFTs on the same 2L circle,

    grad_u = irfft(rfft(g) conj(rfft(k)))[:L],     grad_k = irfft(sum_batch rfft(g) conj(rfft(u)))[:L_k],

which costs two real transforms of the batch where autograd through rfft/irfft needs complex ones and
padding copies.
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


class _FFTConv(torch.autograd.Function):
    """y = irfft(rfft(u, 2L) rfft(k, 2L), 2L)[..., :L] for u (..., L) and k (..., L_k), L_k <= 2L."""

    @staticmethod
    def forward(ctx, u: Tensor, k: Tensor) -> Tensor:
        length, n = u.shape[-1], 2 * u.shape[-1]
        u_f = torch.fft.rfft(u, n=n)
        k_f = torch.fft.rfft(k, n=n)
        ctx.save_for_backward(u_f, k_f)
        ctx.shapes = (length, k.shape)
        ctx.u_shape = u.shape
        return torch.fft.irfft(u_f * k_f, n=n)[..., :length]

    @staticmethod
    def backward(ctx, grad: Tensor):
        u_f, k_f = ctx.saved_tensors
        length, k_shape = ctx.shapes
        n = 2 * length
        g_f = torch.fft.rfft(grad, n=n)
        grad_u = grad_k = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f * k_f.conj(), n=n)[..., :length]
            grad_u = grad_u.sum_to_size(ctx.u_shape)
        if ctx.needs_input_grad[1]:
            # sum over the batch dims that k was broadcast along, in frequency (cheap) before the inverse
            corr = (g_f * u_f.conj()).sum_to_size(*k_shape[:-1], g_f.shape[-1])
            grad_k = torch.fft.irfft(corr, n=n)[..., : k_shape[-1]]
        return grad_u, grad_k


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
        if k is not None:
            if k.shape[-1] > length:
                raise ValueError(f"kernel length must be <= the input length {length}, got {k.shape[-1]}")
            dtype = _fft_dtype(u, k)
            return _FFTConv.apply(u.to(dtype), k.to(dtype)).to(u.dtype)
        if k_f.shape[-1] != length + 1:
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
        y = _FFTConv.apply(u.to(dtype), k)
    return y.to(u.dtype)
