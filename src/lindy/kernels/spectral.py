"""Spectral filters of the STU (Agarwal, Suo, Chen, Hazan 2024) and the two linear maps built on them.

Filters. The Hankel matrix of length L, for i, j = 1..L,

    standard:  Z_ij = 2 / ((i+j)^3 - (i+j))
    "L":       Z_ij = ((-1)^(i+j-2) + 1) * 8 / ((i+j+3) (i+j-1) (i+j+1))    (zero when i+j is odd)

is symmetric positive (semi)definite. Its top-K eigenpairs (sigma_k, v_k) come from a full ``eigh`` in
float64 on CPU (what both references do), kept in ascending order of sigma (the references' order: the
largest eigenvalue is the last filter), and the filters are phi_k = v_k sigma_k^(1/4) (L, K). Eigenvector
signs are arbitrary (LAPACK), so lindy fixes them: **the entry of largest magnitude of each v_k is
positive** (the first entry wins a tie). Eigenvalues below zero (round-off of the noise floor, sigma ~ 1e-17
sigma_max) are clamped to 0 before the fourth root. ``hankel_eigh`` caches per (L, K, variant) in memory
and, for L >= ``DISK_MIN_LEN``, on disk in lindy's cache folder (``$LINDY_CACHE`` or ``~/.cache/lindy``, see
``lindy.data.cache.default_cache_dir``), since ``eigh`` at L = 8192 takes minutes.

SpectraLDS (``spectral_lds``, Shah et al. 2025): the bank's filters as the impulse responses of a diagonal
LDS, f[s] ~ sum_n C[n, f] lambda_n^s, with the eigenvalues on a fixed grid (``lds_eigenvalues``) and the
readout C by least squares in float64 (``fit_lds``); deterministic, cached per (L, K, variant, N,
branches) in memory and on disk like the filters. The per-filter MSE comes with it.

Maps (``spectral_conv``, ``ar_filter``), each an autograd Function with a hand-written backward:

- ``spectral_conv(u, F_f, M)``: y[t] = sum_k sum_s f_k[s] u[t-s] M_k, u (B, L, d_in), fixed filters f_k
  given by their spectra F_f = rfft(f, 2L) (K, L+1), M (K, d_in, d_out). It never forms the (B, L, K, d)
  features: the frequency response W(m) = sum_k F_k(m) M_k (d_in x d_out per bin) does not depend on the
  batch, so y = irfft(rfft(u) W) costs the FFTs of d_in inputs and d_out outputs plus O(L K d_in d_out)
  shared by the batch. W is built and used over blocks of bins (about ``BLOCK_BYTES`` each), never whole.
  Backward, with G = rfft(grad_y), U = rfft(u) and c_m / n the weights of the 2L-point real spectrum
  (c_0 = c_L = 1, else 2): grad_u = irfft(G W^H)[:L] and
  grad_M_k = sum_m c_m / n Re(conj(F_k(m)) sum_b U(m)^H G(m)).
- ``ar_filter(x, M_y, y0)``: the output autoregression y_t = x_t + sum_{j=1}^p y_{t-j} M_y[j-1] (an IIR
  filter, sequential); its backward is the same recursion run backward in time with the transposed M_y.
  On CPU (float32/float64) both loops run in C++ (``lindy.kernels.ar_cpu``); elsewhere in Python.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from lindy._checks import check_choice, check_positive_int

__all__ = [
    "HANKELS",
    "hankel_matrix",
    "hankel_eigh",
    "spectral_filters",
    "sign_normalize",
    "spectral_conv",
    "ar_filter",
    "ar_filter_naive",
    "clear_memory_cache",
    "LDS_STATE",
    "LDSFit",
    "lds_eigenvalues",
    "lds_impulse",
    "fit_lds",
    "lds_fit_filters",
    "spectral_lds",
]

HANKELS = ("standard", "L")
DISK_MIN_LEN = 1024  # smaller eigh calls take under a second: not worth a file
FILTER_CACHE_VERSION = 1
# target bytes of one block of the frequency response W (complex, bins x d_in x d_out)
BLOCK_BYTES = 4 << 20

_MEMORY: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}
_LDS_MEMORY: dict[tuple, LDSFit] = {}
_LOCK = threading.Lock()


def hankel_matrix(length: int, variant: str = "standard") -> Tensor:
    """Z (L, L) float64, the ``standard`` or ``"L"`` Hankel matrix of the module docstring."""
    check_positive_int("length", length)
    check_choice("hankel", variant, HANKELS)
    i = torch.arange(1, length + 1, dtype=torch.float64)
    s = i[:, None] + i[None, :]
    if variant == "standard":
        return 2.0 / (s**3 - s)
    return ((-1.0) ** (s - 2.0) + 1.0) * 8.0 / ((s + 3.0) * (s - 1.0) * (s + 1.0))


def sign_normalize(vectors: Tensor) -> Tensor:
    """Columns of ``vectors`` (L, K) flipped so that each one's largest-|.| entry is positive."""
    idx = vectors.abs().argmax(0)
    signs = torch.sign(vectors.gather(0, idx[None]))[0]
    return vectors * torch.where(signs == 0, torch.ones_like(signs), signs)


def _disk_cached(name: str, options: dict, version: int, build, cache_dir, disk: bool) -> dict[str, Tensor]:
    """``build()``'s tensors through lindy's versioned on-disk cache (``lindy.data.cache``) when ``disk``."""
    if not disk:
        return build()
    from lindy.data.cache import cached_tensors  # lazy: the data package is heavy to import

    return cached_tensors(name, options, version, build, cache_dir=cache_dir)


def hankel_eigh(
    length: int,
    k: int,
    variant: str = "standard",
    *,
    cache_dir: str | Path | None = None,
    disk: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """(sigma (K,), v (L, K)): the top-K eigenpairs of the Hankel matrix, ascending, float64, v with
    lindy's sign convention. Cached in memory, and on disk when ``disk`` (default: L >= DISK_MIN_LEN)."""
    check_positive_int("length", length)
    check_positive_int("num_filters", k)
    check_choice("hankel", variant, HANKELS)
    if k > length:
        raise ValueError(f"num_filters must be <= the filter length {length}, got {k}")
    key = (length, k, variant)
    with _LOCK:
        if key in _MEMORY:
            return _MEMORY[key]

    def build() -> dict[str, Tensor]:
        sigma, vectors = torch.linalg.eigh(hankel_matrix(length, variant))
        return {"sigma": sigma[-k:].clone(), "vectors": sign_normalize(vectors[:, -k:]).contiguous()}

    disk = length >= DISK_MIN_LEN if disk is None else disk
    name = f"hankel-{variant}-L{length}-K{k}"
    data = _disk_cached(
        name, dict(length=length, k=k, variant=variant), FILTER_CACHE_VERSION, build, cache_dir, disk
    )
    found = (data["sigma"], data["vectors"])
    with _LOCK:
        _MEMORY[key] = found
    return found


def spectral_filters(length: int, k: int, variant: str = "standard", **cache) -> Tensor:
    """phi (L, K) float64: the top-K eigenvectors times sigma^(1/4) (sigma clamped at 0), ascending."""
    sigma, vectors = hankel_eigh(length, k, variant, **cache)
    return vectors * sigma.clamp(min=0.0) ** 0.25


def clear_memory_cache() -> None:
    """Forget the filters kept in memory (the disk cache stays)."""
    with _LOCK:
        _MEMORY.clear()
        _LDS_MEMORY.clear()


# ----------------------------------------------------------------------------------------------------
# SpectraLDS: the filters as the impulse responses of a diagonal LDS
# ----------------------------------------------------------------------------------------------------
LDS_STATE = 160  # SpectraLDS's state size with both branches (80 eigenvalues each)
LDS_CACHE_VERSION = 1
_LDS_MARGIN = 3.0  # the slowest mode: 1 - lambda = e^-3 / L, nearly constant over the L taps


class LDSFit(NamedTuple):
    """A diagonal LDS whose impulse responses approximate F filters of L taps.

    h_t = diag(lambda) h_{t-1} + u_t (state N), filter f: f[s] ~ sum_n readout[n, f] lambda_n^s.
    eigenvalues (N,) real in (-1, 1), readout (N, F), mse (F,) the mean of (fit - filter)^2 over the L taps;
    all float64.
    """

    eigenvalues: Tensor
    readout: Tensor
    mse: Tensor


def lds_eigenvalues(length: int, state_size: int, symmetric: bool = False) -> Tensor:
    """The fixed eigenvalue grid (N,) float64: lambda_n = 1 - exp(-t_n), t_n = (log L + 3) ((n + 1) / N)^2.

    ``symmetric``: N/2 such values and their negatives (N even), for Hankel-L's filters.
    """
    check_positive_int("length", length)
    check_positive_int("state_size", state_size)
    if symmetric and state_size % 2:
        raise ValueError(f"state_size must be even for a symmetric (+-lambda) grid, got {state_size}")
    n = state_size // 2 if symmetric else state_size
    u = torch.arange(1, n + 1, dtype=torch.float64) / n
    lam = -torch.expm1(-(math.log(length) + _LDS_MARGIN) * u**2)
    return torch.cat([lam, -lam]) if symmetric else lam


def lds_impulse(eigenvalues: Tensor, readout: Tensor, length: int) -> Tensor:
    """(L, F): the impulse responses sum_n readout[n, f] lambda_n^s, s = 0..L-1, in readout's dtype."""
    s = torch.arange(length, dtype=torch.float64, device=eigenvalues.device)
    powers = eigenvalues.to(torch.float64)[None, :] ** s[:, None]  # integral exponents: signs are exact
    return (powers @ readout.to(torch.float64)).to(readout.dtype)


def fit_lds(filters: Tensor, eigenvalues: Tensor) -> LDSFit:
    """The least-squares readout of fixed eigenvalues for ``filters`` (L, F): argmin ||V C - filters||_F,
    V[s, n] = lambda_n^s, solved in float64 by SVD (gelsd) on V with unit columns (the minimum-norm solution
    where V is rank deficient, as when N > L)."""
    filters = filters.detach().to("cpu", torch.float64)
    lam = eigenvalues.detach().to("cpu", torch.float64)
    length = filters.shape[0]
    v = lam[None, :] ** torch.arange(length, dtype=torch.float64)[:, None]
    norms = v.norm(dim=0).clamp(min=1e-300)
    readout = torch.linalg.lstsq(v / norms, filters, driver="gelsd").solution / norms[:, None]
    mse = (v @ readout - filters).square().mean(0)
    return LDSFit(lam.clone(), readout.contiguous(), mse)


def lds_fit_filters(
    phi: Tensor, state_size: int = LDS_STATE, *, two_branches: bool = False, symmetric: bool = False
) -> LDSFit:
    """The LDS of ``spectral_lds`` for any filters ``phi`` (L, K) (e.g. filters computed elsewhere): the
    bank phi_k [, (-1)^s phi_k] fitted on ``lds_eigenvalues``; N/2 eigenvalues per branch with two."""
    length = phi.shape[0]
    if not two_branches:
        return fit_lds(phi, lds_eigenvalues(length, state_size, symmetric=symmetric))
    if state_size % 2:
        raise ValueError(f"state_size must be even with two branches, got {state_size}")
    half = fit_lds(phi, lds_eigenvalues(length, state_size // 2, symmetric=symmetric))
    readout = torch.block_diag(half.readout, half.readout)
    return LDSFit(torch.cat([half.eigenvalues, -half.eigenvalues]), readout, half.mse.repeat(2))


def spectral_lds(
    length: int,
    k: int,
    variant: str = "standard",
    *,
    state_size: int = LDS_STATE,
    two_branches: bool = True,
    cache_dir: str | Path | None = None,
    disk: bool | None = None,
) -> LDSFit:
    """SpectraLDS (Shah et al. 2025): a diagonal LDS of ``state_size`` modes for the STU's filter bank.

    Filters, in the STU's bank order: phi_k (``spectral_filters``), then, with ``two_branches``
    (standard Hankel only), (-1)^s phi_k, so F = K or 2K. Why a fixed grid works: Z = int_0^1 (1 - a)^2
    mu_a mu_a^T da with mu_a = (a^s)_s, so each eigenvector v = Z v / sigma is a mixture of geometric
    sequences a^s, a in [0, 1] (Hankel-L: Z_L = int_{-1}^1 (1 - a^2)^2 mu_a mu_a^T da, a in [-1, 1]);
    ``lds_eigenvalues`` discretises that mixture, densely near a = 1 where the slow modes of long filters
    live, and ``fit_lds`` solves the readout (a linear problem: one deterministic answer in well under a
    second at L = 8192, where descent on the eigenvalues would be a slow non-convex fit). Two branches:
    (-1)^s a^s = (-a)^s, so the negative branch is the same LDS with negated eigenvalues, same readout and
    same error; the state is split evenly (N/2 eigenvalues per branch). Measured at L = 8192, K = 24, N =
    160: the largest per-filter MSE is about 1e-25 (SpectraLDS reports 7.7e-19). Filters below the eigh
    noise floor (sigma_k < 1e-16 sigma_max, e.g. K = 24 at L <= 1024) are not geometric mixtures and fit
    only to their own noise (MSE ~ 1e-17 at L = 256). Cached like the filters (memory; disk for
    L >= DISK_MIN_LEN).

    Returns: ``LDSFit`` (eigenvalues (N,), readout (N, F) block-diagonal with two branches, mse (F,)).
    """
    check_positive_int("length", length)
    check_positive_int("num_filters", k)
    check_choice("hankel", variant, HANKELS)
    check_positive_int("state_size", state_size)
    two = bool(two_branches) and variant == "standard"
    key = (length, k, variant, state_size, two)
    with _LOCK:
        if key in _LDS_MEMORY:
            return _LDS_MEMORY[key]

    def build() -> dict[str, Tensor]:
        phi = spectral_filters(length, k, variant, cache_dir=cache_dir)  # the filters' own disk rule
        return lds_fit_filters(phi, state_size, two_branches=two, symmetric=variant == "L")._asdict()

    disk = length >= DISK_MIN_LEN if disk is None else disk
    name = f"lds-{variant}-L{length}-K{k}-N{state_size}-B{2 if two else 1}"
    options = dict(length=length, k=k, variant=variant, state_size=state_size, two_branches=two)
    found = LDSFit(**_disk_cached(name, options, LDS_CACHE_VERSION, build, cache_dir, disk))
    with _LOCK:
        _LDS_MEMORY[key] = found
    return found


# ----------------------------------------------------------------------------------------------------
# spectral_conv: y = sum_k (f_k * u) M_k through the batch-independent frequency response
# ----------------------------------------------------------------------------------------------------
def _bin_weights(n_bins: int, n: int, dtype: torch.dtype, device) -> Tensor:
    w = torch.full((n_bins,), 2.0 / n, dtype=dtype, device=device)
    w[0] = 1.0 / n
    if n % 2 == 0:
        w[-1] = 1.0 / n
    return w


def _bin_blocks(n_bins: int, d_in: int, d_out: int, itemsize: int):
    size = max(1, BLOCK_BYTES // max(1, d_in * d_out * 2 * itemsize))
    return [slice(a, min(a + size, n_bins)) for a in range(0, n_bins, size)]


def _response(f_ri: Tensor, m2: Tensor, nb: int, d_in: int, d_out: int) -> Tensor:
    """W (nb, d_in, d_out) complex from the block's [Re F; Im F] (2 nb, K) and M (K, d_in d_out)."""
    p = f_ri @ m2
    return torch.complex(p[:nb], p[nb:]).view(nb, d_in, d_out)


class _SpectralConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, f_spec: Tensor, m: Tensor) -> Tensor:
        batch, length, d_in = u.shape
        k, _, d_out = m.shape
        n, n_bins = 2 * length, length + 1
        u_f = torch.fft.rfft(u, n=n, dim=1).transpose(0, 1).contiguous()  # (bins, B, d_in)
        f_ri = torch.cat([f_spec.real.T, f_spec.imag.T], 0).contiguous()  # (2 bins, K): rows re..., im...
        m2 = m.reshape(k, d_in * d_out)
        blocks = _bin_blocks(n_bins, d_in, d_out, u.element_size())
        out = []
        for blk in blocks:
            nb = blk.stop - blk.start
            rows = torch.cat([f_ri[blk], f_ri[n_bins + blk.start : n_bins + blk.stop]], 0)
            out.append(torch.bmm(u_f[blk], _response(rows, m2, nb, d_in, d_out)))
        y_f = torch.cat(out, 0) if len(out) > 1 else out[0]
        ctx.save_for_backward(u_f, f_ri, m)
        ctx.length = length
        return torch.fft.irfft(y_f.transpose(0, 1), n=n, dim=1)[:, :length]

    @staticmethod
    def backward(ctx, grad: Tensor):
        u_f, f_ri, m = ctx.saved_tensors
        length = ctx.length
        n, n_bins = 2 * length, length + 1
        k, d_in, d_out = m.shape
        need_u, need_m = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        g_f = torch.fft.rfft(grad, n=n, dim=1).transpose(0, 1).contiguous()  # (bins, B, d_out)
        m2 = m.reshape(k, d_in * d_out)
        w = _bin_weights(n_bins, n, m.dtype, m.device)
        grad_u_f, grad_m = [], torch.zeros_like(m2) if need_m else None
        for blk in _bin_blocks(n_bins, d_in, d_out, grad.element_size()):
            nb = blk.stop - blk.start
            rows = torch.cat([f_ri[blk], f_ri[n_bins + blk.start : n_bins + blk.stop]], 0)
            if need_u:
                resp = _response(rows, m2, nb, d_in, d_out)
                grad_u_f.append(torch.bmm(g_f[blk], resp.conj().transpose(1, 2)))
            if need_m:
                corr = torch.bmm(u_f[blk].conj().transpose(1, 2), g_f[blk])  # (nb, d_in, d_out)
                corr = torch.cat([corr.real, corr.imag], 0).reshape(2 * nb, d_in * d_out)
                weighted = rows * torch.cat([w[blk], w[blk]])[:, None]  # Re(conj F C) = Fr Cr + Fi Ci
                grad_m.addmm_(weighted.T, corr)
        grad_u = None
        if need_u:
            spec = torch.cat(grad_u_f, 0) if len(grad_u_f) > 1 else grad_u_f[0]
            grad_u = torch.fft.irfft(spec.transpose(0, 1), n=n, dim=1)[:, :length]
        return grad_u, None, (grad_m.view(k, d_in, d_out) if need_m else None)


def spectral_conv(u: Tensor, f_spec: Tensor, m: Tensor) -> Tensor:
    """y[b, t] = sum_k sum_{s <= t} f_k[s] u[b, t - s] M_k (see the module docstring).

    Args:
        u: (B, L, d_in) real input.
        f_spec: (K, L + 1) complex, the filters' spectra rfft(f, n=2L) (filters of at most L taps).
        m: (K, d_in, d_out) real projections.
    Returns:
        y: (B, L, d_out) in u's dtype (computed in float32, or float64 when u or m is float64).
    """
    if u.dim() != 3 or m.dim() != 3 or u.shape[-1] != m.shape[1]:
        raise ValueError(
            f"u must be (B, L, d_in) and M (K, d_in, d_out), got {tuple(u.shape)}, {tuple(m.shape)}"
        )
    if tuple(f_spec.shape) != (m.shape[0], u.shape[1] + 1):
        raise ValueError(
            f"f_spec must have shape (K={m.shape[0]}, L + 1 = {u.shape[1] + 1}), got {tuple(f_spec.shape)}"
        )
    with torch.autocast(u.device.type, enabled=False):
        wide = torch.float64 in (u.dtype, m.dtype)
        dtype, cdtype = (torch.float64, torch.complex128) if wide else (torch.float32, torch.complex64)
        y = _SpectralConv.apply(u.to(dtype), f_spec.to(cdtype), m.to(dtype))
    return y.to(u.dtype)


# ----------------------------------------------------------------------------------------------------
# ar_filter: y_t = x_t + sum_j y_{t-j} M_y[j-1], sequential in time
# ----------------------------------------------------------------------------------------------------
class _ARFilter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, m_y: Tensor, y0: Tensor) -> Tensor:
        batch, length, d = x.shape
        p = m_y.shape[0]
        yp = torch.cat([y0, torch.empty_like(x)], 1)  # (B, p + L, d): the p past outputs, then y
        stack = m_y.flip(0).reshape(p * d, d)  # rows of the oldest lag first, as yp's window is ordered
        for t in range(length):
            yp[:, p + t] = torch.addmm(x[:, t], yp[:, t : t + p].reshape(batch, p * d), stack)
        ctx.save_for_backward(yp, m_y)
        return yp[:, p:].clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        yp, m_y = ctx.saved_tensors
        batch, length, d = grad.shape
        p = m_y.shape[0]
        # gp[:, p + t] = dLoss/dx_t for t in [0, L), zeros before and p zeros after
        gp = torch.zeros(batch, p + length + p, d, dtype=grad.dtype, device=grad.device)
        stack_t = m_y.transpose(1, 2).reshape(p * d, d)  # lag 1 first, as gp's future window is ordered
        for t in range(length - 1, -1, -1):
            future = gp[:, p + t + 1 : p + t + 1 + p].reshape(batch, p * d)
            gp[:, p + t] = torch.addmm(grad[:, t], future, stack_t)
        # the past outputs y0 (times -p..-1) feed the outputs at t >= 0 only, not each other
        g0 = torch.stack([gp[:, i + 1 : i + 1 + p].reshape(batch, p * d) @ stack_t for i in range(p)], 1)
        gx = gp[:, p : p + length]
        grad_m = None
        if ctx.needs_input_grad[1]:
            flat = gx.reshape(-1, d)
            grad_m = torch.stack(
                [yp[:, p - j : p - j + length].reshape(-1, d).T @ flat for j in range(1, p + 1)]
            )
        return gx.clone(), grad_m, g0


class _ARFilterCPU(torch.autograd.Function):
    """The same maps as ``_ARFilter`` with both time loops in C++ (``lindy.kernels.ar_cpu``); saves y and y0
    instead of their concatenation, and forms grad M_y by one batched matmul per lag."""

    @staticmethod
    def forward(ctx, x: Tensor, m_y: Tensor, y0: Tensor) -> Tensor:
        p, d = m_y.shape[0], x.shape[-1]
        native = _ar_native(x)
        if x.stride(-1) != 1:  # the loop takes any batch and time strides (the STU passes a slice)
            x = x.contiguous()
        y0 = y0.contiguous()
        y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        native.forward(x, m_y.flip(0).reshape(p * d, d).contiguous(), y0, y)  # oldest lag first
        ctx.save_for_backward(y, m_y, y0)
        ctx.native = native
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        y, m_y, y0 = ctx.saved_tensors
        p, d = m_y.shape[0], y.shape[-1]
        gx, g0 = torch.empty_like(y), torch.empty_like(y0)
        if grad.stride(-1) != 1:
            grad = grad.contiguous()
        ctx.native.backward(grad, m_y.transpose(1, 2).reshape(p * d, d).contiguous(), gx, g0)
        grad_m = _ar_weight_grad(y, y0, gx) if ctx.needs_input_grad[1] else None
        return gx, grad_m, g0


def _ar_weight_grad(y: Tensor, y0: Tensor, gx: Tensor) -> Tensor:
    """grad M_y[j-1] = sum_{b, t} y_{t-j}^T gx_t (y_s = y0[:, p + s] for s < 0): (p, d, d)."""
    batch, length, d = y.shape
    p = y0.shape[1]
    out = []
    for j in range(1, p + 1):
        n = min(j, length)  # the times whose lag-j output is in y0
        acc = torch.einsum("btd,bte->de", y0[:, p - j : p - j + n], gx[:, :n])
        if length > j:
            acc = acc + torch.bmm(y[:, : length - j].transpose(1, 2), gx[:, j:]).sum(0)
        out.append(acc)
    return torch.stack(out)


def _ar_native(x: Tensor):
    """The C++ ops when they apply (CPU, float32/float64), else None (then the Python loop runs)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    from lindy.kernels import ar_cpu  # lazy: cpp pulls in torch.utils.cpp_extension only when needed

    return ar_cpu.ops()


def ar_filter(x: Tensor, m_y: Tensor, y0: Tensor | None = None) -> Tensor:
    """y_t = x_t + sum_{j=1}^{p} y_{t-j} M_y[j-1]: x (B, L, d), M_y (p, d, d) (row vector times matrix),
    y0 (B, p, d) the outputs before t = 0 in time order (oldest first; default zeros). Returns (B, L, d).

    On CPU in float32/float64 both time loops run in C++ (``lindy.kernels.ar_cpu``, fast path
    ``lindy_ar_cpu``); elsewhere, or when it cannot build (said once in the log and in
    ``lindy.kernels.cpp.fast_path_status()``), the Python loop of ``_ARFilter`` runs.
    """
    p = m_y.shape[0]
    if y0 is None:
        y0 = x.new_zeros(x.shape[0], p, x.shape[-1])
    if p == 0:
        return x
    with torch.autocast(x.device.type, enabled=False):
        dtype = torch.promote_types(x.dtype, m_y.dtype)
        args = x.to(dtype), m_y.to(dtype), y0.to(dtype)
        fn = _ARFilterCPU if _ar_native(args[0]) is not None else _ARFilter
        return fn.apply(*args).to(x.dtype)


def ar_filter_naive(x: Tensor, m_y: Tensor, y0: Tensor | None = None) -> Tensor:
    """The same recursion written plainly (tests)."""
    p = m_y.shape[0]
    hist = [y0[:, i] for i in range(p)] if y0 is not None else [x.new_zeros(x[:, 0].shape)] * p
    out = []
    for t in range(x.shape[1]):
        y = x[:, t] + sum(hist[-j] @ m_y[j - 1] for j in range(1, p + 1))
        hist.append(y)
        out.append(y)
    return torch.stack(out, 1)
