"""Convolution by FFT: causal, and bidirectional from a causal and an anti-causal kernel.

Time is the last dimension. The product of two length-L sequences' transforms on a circle of n = 2L points
has no wrap-around in its first L outputs, which are the causal convolution. Any L works (pocketfft and
cuFFT take every size). The FFT runs in float32 even under autocast (bf16 FFTs lose the kernel's tail);
float64 inputs stay float64, and the output has the input's dtype.

The backward pass is written by hand (``_FFTConv``): both gradients are correlations, computed with real
FFTs on the same 2L circle,

    grad_u = irfft(rfft(g) conj(rfft(k)))[:L],     grad_k = irfft(sum_batch rfft(g) conj(rfft(u)))[:L_k],

which costs two real transforms of the batch where autograd through rfft/irfft needs complex ones and
padding copies. A fixed kernel may be passed as its spectrum k_f = rfft(k, 2L) (STU's filters): same
Function, same blocks, and k_f's gradient is the same correlation left in frequency space. irfft reads
bins 1..L-1 twice (as X and conj X) and bins 0 and L once, so with PyTorch's convention for complex
gradients (dLoss/dRe + i dLoss/dIm)

    grad_k_f[m] = c_m / (2L) sum_batch rfft(g)[m] conj(rfft(u)[m]),   c_0 = c_L = 1, c_m = 2 otherwise.

On CPU, forward and backward run over blocks of rows of the flattened (rows, L) input, each block's
spectra about ``CHUNK_BYTES`` in size (at least ``MIN_ROWS`` rows): the whole-batch formula streams
several batch-sized intermediates (padded input, spectrum, 2L-point output) through main memory, and
fresh large tensors page-fault on first touch; a block's intermediates stay in cache and reuse the same
few buffers. Rows are independent, so the results are the whole-batch formula's (up to the order of the
batch sum in grad_k). Blocks are ordered kernel rows outer, batch inner, so a block of the kernel's
spectrum and of grad_k's accumulator stays in cache across the batch. The backward recomputes rfft(u)
per block instead of keeping u's spectrum (twice u's size) from the forward: as fast, less memory.
Blocking needs u unbroadcast and k broadcast over leading dims only (``_block_plan``); other shapes and
CUDA take the whole-batch formula.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["causal_conv", "bidirectional_conv", "kernel_spectrum"]

# Target size in bytes of one block's complex spectrum on CPU (see the module docstring); tests lower it
# (and MIN_ROWS) to run many blocks on small shapes. Measured on a 2-core VM at B=8, H=128: 4-8 MiB were
# fastest for L from 1024 to 65536; 1-2 MiB lose to the per-call plan cost below. The blocks make many
# short multithreaded calls, which stall when other processes hold the cores (more torch threads than
# free cores): there, fewer threads or CHUNK_BYTES = 0 (no blocking) is faster.
CHUNK_BYTES = 4 << 20
# Blocks have at least this many rows however long L is: every torch CPU FFT call builds a new MKL plan,
# which costs about as much as transforming 10-20 rows.
MIN_ROWS = 16


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


def _block_plan(u: Tensor, k_batch_shape: torch.Size) -> tuple[int, int] | None:
    """(R_b, R_k) when u (..., L) is (R_b, R_k, L) and k broadcasts as (1, R_k) over its rows, else None.

    That is, u is not broadcast and k's batch shape, left-padded with ones, is a suffix of u's. Other
    broadcasts (and CUDA tensors) take the whole-batch path.
    """
    if u.device.type != "cpu" or u.numel() == 0 or CHUNK_BYTES <= 0:
        return None
    u_rows = tuple(u.shape[:-1])
    k_rows = (1,) * (len(u_rows) - len(k_batch_shape)) + tuple(k_batch_shape)
    if len(k_rows) != len(u_rows):
        return None
    lead = 0
    while lead < len(k_rows) and k_rows[lead] == 1:
        lead += 1
    if k_rows[lead:] != u_rows[lead:]:
        return None
    return math.prod(u_rows[:lead]), math.prod(u_rows[lead:])


def _blocks(r_b: int, r_k: int, rows: int):
    """(batch slice, kernel-row slice) blocks of at most ``rows`` rows: kernel rows outer, batch inner."""
    nj = min(rows, r_k)
    nb = max(1, rows // nj)
    for j in range(0, r_k, nj):
        for b in range(0, r_b, nb):
            yield slice(b, min(b + nb, r_b)), slice(j, min(j + nj, r_k))


class _Buffers:
    """A zero-padded (rows, 2L) input buffer reused by every block of one pass (``stack`` inputs side
    by side share one forward transform). Transforms return fresh tensors: with ``out=`` torch computes
    into a temporary and copies, and same-sized allocations are recycled by the allocator anyway."""

    def __init__(self, r_b: int, r_k: int, length: int, dtype: torch.dtype, stack: int = 1):
        spec_bytes = (length + 1) * (16 if dtype == torch.float64 else 8)
        self.rows = min(r_b * r_k, max(MIN_ROWS, CHUNK_BYTES // spec_bytes))
        self.blocks = list(_blocks(r_b, r_k, self.rows))
        cap = max((b.stop - b.start) * (j.stop - j.start) for b, j in self.blocks)
        self.length, self.n = length, 2 * length
        self.pad = torch.empty(stack * cap, self.n, dtype=dtype)
        self.pad[:, length:].zero_()

    def rfft(self, *xs: Tensor) -> list[Tensor]:
        """Spectra of the blocks xs, each (nb, nj, L), from one transform."""
        m = xs[0].shape[0] * xs[0].shape[1]
        for i, x in enumerate(xs):
            self.pad[i * m : (i + 1) * m, : self.length].view(x.shape).copy_(x)
        spec = torch.fft.rfft(self.pad[: len(xs) * m])
        return [spec[i * m : (i + 1) * m].view(*x.shape[:2], -1) for i, x in enumerate(xs)]

    def irfft_into(self, spec: Tensor, out: Tensor) -> None:
        """out (nb, nj, L_out) = first L_out points of the inverse of spec (nb, nj, L + 1)."""
        time = torch.fft.irfft(spec.reshape(-1, spec.shape[-1]), n=self.n)
        out.copy_(time.view(*spec.shape[:2], -1)[..., : out.shape[-1]])


class _FFTConv(torch.autograd.Function):
    """y = irfft(rfft(u, 2L) K, 2L)[..., :L] for u (..., L), with K = rfft(k, 2L) for a kernel k (..., L_k),
    L_k <= 2L, or K = k_f (..., L + 1) given (pass exactly one of k, k_f; the other is None)."""

    @staticmethod
    def forward(ctx, u: Tensor, k: Tensor | None, k_f: Tensor | None) -> Tensor:
        length, n = u.shape[-1], 2 * u.shape[-1]
        if k is not None:
            k_f = torch.fft.rfft(k, n=n)
        # the kernel's shape in the domain its gradient is returned in: time (k) or frequency (k_f)
        ctx.shapes = (length, k.shape if k is not None else k_f.shape, k is None)
        ctx.u_shape = u.shape
        plan = _block_plan(u, k_f.shape[:-1])
        ctx.plan = plan
        if plan is None:
            u_f = torch.fft.rfft(u, n=n)
            ctx.save_for_backward(u_f, k_f)
            return torch.fft.irfft(u_f * k_f, n=n)[..., :length]
        ctx.save_for_backward(u, k_f)
        return _blocked_forward(u, k_f, *plan)

    @staticmethod
    def backward(ctx, grad: Tensor):
        saved, k_f = ctx.saved_tensors
        length, k_shape, spectral = ctx.shapes
        need_u = ctx.needs_input_grad[0]
        need_k = ctx.needs_input_grad[2 if spectral else 1]
        with torch.autocast(grad.device.type, enabled=False):
            if ctx.plan is not None:
                grad_u, grad_k = _blocked_backward(
                    grad, saved, k_f, k_shape, spectral, *ctx.plan, need_u, need_k
                )
            else:
                u_f, n = saved, 2 * length
                g_f = torch.fft.rfft(grad, n=n)
                grad_u = grad_k = None
                if need_u:
                    grad_u = torch.fft.irfft(g_f * k_f.conj(), n=n)[..., :length]
                    grad_u = grad_u.sum_to_size(ctx.u_shape)
                if need_k:
                    # sum over the batch dims k was broadcast along, in frequency (cheap) before the inverse
                    corr = (g_f * u_f.conj()).sum_to_size(*k_shape[:-1], g_f.shape[-1])
                    if spectral:
                        grad_k = corr * _bin_weights(length, corr.real.dtype)
                    else:
                        grad_k = torch.fft.irfft(corr, n=n)[..., : k_shape[-1]]
        return (grad_u, None, grad_k) if spectral else (grad_u, grad_k, None)


def _bin_weights(length: int, dtype: torch.dtype) -> Tensor:
    """c_m / (2L) for the L + 1 bins of a 2L-point rfft: irfft counts bins 0 and L once, the others twice."""
    w = torch.full((length + 1,), 1.0 / length, dtype=dtype)
    w[0] = w[-1] = 0.5 / length
    return w


def _blocked_forward(u: Tensor, k_f: Tensor, r_b: int, r_k: int) -> Tensor:
    """Blocked y = irfft(rfft(u) k_f)[:L]: u (R_b, R_k, L) in any view, k_f (R_k, L + 1)."""
    length = u.shape[-1]
    y = torch.empty(u.shape, dtype=u.dtype)
    u3, y3, k_f = u.reshape(r_b, r_k, length), y.view(r_b, r_k, length), k_f.reshape(r_k, -1)
    buf = _Buffers(r_b, r_k, length, u.dtype)
    for b, j in buf.blocks:
        (spec,) = buf.rfft(u3[b, j])
        spec.mul_(k_f[j])
        buf.irfft_into(spec, y3[b, j])
    return y


def _blocked_backward(grad, u, k_f, k_shape, spectral, r_b, r_k, need_u, need_k):
    """Blocked grad_u = irfft(g_f conj(k_f))[:L] and grad_k = irfft(sum_b g_f conj(u_f))[:L_k] (or, when
    ``spectral``, the gradient of k_f: c / 2L sum_b g_f conj(u_f), see the module docstring)."""
    length = u.shape[-1]
    g3, u3 = grad.reshape(r_b, r_k, length), u.reshape(r_b, r_k, length)
    buf = _Buffers(r_b, r_k, length, u.dtype, stack=2 if need_k else 1)
    if need_u:
        k_conj = k_f.reshape(r_k, -1).conj_physical()
        grad_u = torch.empty(u.shape, dtype=u.dtype)
        gu3 = grad_u.view(r_b, r_k, length)
    if need_k:
        grad_k = None if spectral else torch.empty(r_k, k_shape[-1], dtype=u.dtype)
        acc = torch.zeros(r_k, length + 1, dtype=k_f.dtype)
    for b, j in buf.blocks:
        if need_k:
            g_f, u_f = buf.rfft(g3[b, j], u3[b, j])  # one transform for both
            corr = u_f.conj_physical_().mul_(g_f)
            acc[j] += corr[0] if corr.shape[0] == 1 else corr.sum(0)
            if b.stop == r_b and not spectral:  # this block of kernel rows has seen the whole batch
                buf.irfft_into(acc[j].unsqueeze(0), grad_k[j].unsqueeze(0))
        else:
            (g_f,) = buf.rfft(g3[b, j])
        if need_u:
            buf.irfft_into(g_f.mul_(k_conj[j]), gu3[b, j])
    if need_k and spectral:
        grad_k = acc.mul_(_bin_weights(length, u.dtype))
    return (grad_u if need_u else None), (grad_k.view(k_shape) if need_k else None)


def causal_conv(u: Tensor, k: Tensor | None = None, *, k_f: Tensor | None = None) -> Tensor:
    """y[..., t] = sum_{s <= t} k[..., s] u[..., t - s].

    Args:
        u: (..., H, L) input, time last.
        k: (H, L_k) or broadcastable to (..., H, L_k), L_k <= L (a shorter kernel is zero beyond L_k).
        k_f: instead of k, its spectrum ``kernel_spectrum(k, L)``: (..., H, L + 1), for a kernel fixed
            across calls. Same path and numbers as passing k; differentiable too (see the module docstring).
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
            return _FFTConv.apply(u.to(dtype), k.to(dtype), None).to(u.dtype)
        if k_f.shape[-1] != length + 1:
            raise ValueError(f"k_f must have last dim L + 1 = {length + 1}, got {k_f.shape[-1]}")
        wide = u.dtype == torch.float64 or k_f.dtype == torch.complex128
        dtype, cdtype = (torch.float64, torch.complex128) if wide else (torch.float32, torch.complex64)
        return _FFTConv.apply(u.to(dtype), None, k_f.to(cdtype)).to(u.dtype)


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
        y = _FFTConv.apply(u.to(dtype), k, None)
    return y.to(u.dtype)
