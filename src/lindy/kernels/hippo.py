"""HiPPO transition matrices and their normal-plus-low-rank (NPLR / DPLR) forms.

Continuous system x' = A x + B u, indices n, k = 0..N-1 (Gu et al. 2020, 2021):

- LegS: A_nk = -sqrt((2n+1)(2k+1)) for n > k, -(n+1) for n = k, 0 above; B_n = sqrt(2n+1).
- LegT: A_nk = -sqrt((2n+1)(2k+1)) * (1 if n >= k else (-1)^(n-k)); B_n = sqrt(2n+1), each times 1/2 in
  the "halved" convention of state-spaces/s4's hippo.py (the first-release standalone LSSL is unhalved).
- LagT: A = 1/2 I - tril(ones) (diagonal -1/2, strictly lower -1), B = beta * 1.

Every measure has the form A = S - P P^T with S = shift * I + (skew-symmetric), normal (``low_rank``):
LegS with P_n = sqrt(n + 1/2) and shift -1/2; LegT with a rank-2 P (the even- and odd-indexed
sqrt(2n+1), times 1/sqrt(2) in the halved convention); LagT with P = 1/sqrt(2).

One decomposition serves every caller: S = V diag(w) V^* with V unitary, computed once per (measure, N)
by ``eigh`` of the Hermitian matrix -i (S - shift I), so the eigenvalues w = shift + i omega come out with
real part exactly ``shift`` and come in conjugate pairs (+omega, -omega). The public functions are thin
projections of it, each returning fresh tensors the caller may modify:

- ``nplr``: all N modes, as real pairs (LegS only).
- ``dplr``: the N/2 modes with Im w > 0, by decreasing Im w, with V^* B and V^* P (S4D's LegS init).
- ``normal_pairs``: the N/2 modes with Im w > 0, by increasing Im w, in complex128 (LSSL's structured form).
- ``normal_eig``: all N modes, conjugate pairs side by side by decreasing |Im w| (LDNN's HiPPO init).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import Tensor

from lindy._checks import check_positive_int
from lindy.kernels.complex_pairs import to_pairs

__all__ = [
    "legs",
    "legt",
    "lagt",
    "transition",
    "nplr",
    "dplr",
    "NPLR",
    "MEASURES",
    "low_rank",
    "normal_pairs",
    "normal_eig",
]

MEASURES = ("legs", "legt", "legt_unhalved", "lagt")


def legs(N: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """HiPPO-LegS (A (N, N), B (N,))."""
    q = torch.sqrt(2 * torch.arange(N, dtype=torch.float64) + 1)
    A = -torch.tril(torch.outer(q, q), diagonal=-1) - torch.diag(torch.arange(N, dtype=torch.float64) + 1)
    return A.to(dtype), q.to(dtype)


def legt(N: int, *, halved: bool = True, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """HiPPO-LegT (A (N, N), B (N,)); ``halved`` multiplies both by 1/2 (state-spaces/s4's hippo.py)."""
    n = torch.arange(N, dtype=torch.float64)
    q = torch.sqrt(2 * n + 1)
    sign = torch.where(n[:, None] >= n[None, :], 1.0, (-1.0) ** (n[:, None] - n[None, :]))
    A = -torch.outer(q, q) * sign
    scale = 0.5 if halved else 1.0
    return (scale * A).to(dtype), (scale * q).to(dtype)


def lagt(N: int, *, beta: float = 1.0, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Laguerre (LagT): A = I/2 - tril(ones), B = beta * 1."""
    A = 0.5 * torch.eye(N, dtype=torch.float64) - torch.tril(torch.ones(N, N, dtype=torch.float64))
    return A.to(dtype), torch.full((N,), beta, dtype=torch.float64).to(dtype)


def _check(measure: str, N: int) -> int:
    N = check_positive_int("N", N)
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    return N


def transition(measure: str, N: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """(A, B) for ``measure`` in MEASURES."""
    N = _check(measure, N)
    if measure == "legs":
        return legs(N, dtype)
    if measure == "legt":
        return legt(N, halved=True, dtype=dtype)
    if measure == "legt_unhalved":
        return legt(N, halved=False, dtype=dtype)
    return lagt(N, dtype=dtype)


def low_rank(measure: str, N: int) -> Tensor:
    """P (N, r) with S = A + P P^T = shift * I + (skew-symmetric), for legs (r=1), legt (r=2), lagt (r=1)."""
    n = torch.arange(N, dtype=torch.float64)
    if measure == "legs":
        return torch.sqrt(n + 0.5)[:, None]
    if measure in ("legt", "legt_unhalved"):
        q = torch.sqrt(2 * n + 1)
        even, odd = q.clone(), q.clone()
        even[1::2] = 0.0
        odd[0::2] = 0.0
        scale = 2**-0.5 if measure == "legt" else 1.0
        return torch.stack([even, odd], dim=1) * scale
    if measure == "lagt":
        return torch.full((N, 1), 2**-0.5, dtype=torch.float64)
    raise ValueError(f"measure must be one of {MEASURES} for a low-rank form, got {measure!r}")


class _Normal(NamedTuple):
    """S = A + P P^T = V diag(w) V^*: w (N,) complex128 = shift + i omega with omega (N,) ascending
    (the eigenvalues of -i (S - shift I)), V (N, N) complex128 unitary, P (N, r), B (N,)."""

    w: Tensor
    omega: Tensor
    V: Tensor
    P: Tensor
    B: Tensor


@functools.lru_cache(maxsize=16)
def _normal(measure: str, N: int) -> _Normal:
    """The one eigendecomposition of the normal part, cached: its tensors are shared, never modify them."""
    A, B = transition(measure, N)
    P = low_rank(measure, N)
    S = A + P @ P.T
    shift = torch.diagonal(S).mean()
    skew = S - shift * torch.eye(N, dtype=torch.float64)
    if (skew + skew.T).abs().max() > 1e-8 * max(1.0, skew.abs().max().item()):
        raise ValueError(f"A + P P^T is not a shifted skew-symmetric matrix for measure {measure!r}")
    # -i * skew is Hermitian: eigh gives exact real eigenvalues and a unitary V
    omega, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    return _Normal(shift + 1j * omega, omega, V, P, B)


def _require_legs(measure: str) -> None:
    if measure != "legs":
        raise ValueError(f"nplr/dplr support measure='legs' (a rank-1 correction), got {measure!r}")


class NPLR(NamedTuple):
    """A = V diag(w) V^* - P P^T. Complex values as real pairs (last dim 2).

    w: (M, 2) eigenvalues of the normal part; V: (N, M, 2) its eigenvectors (columns); P: (N,) the
    low-rank factor; B: (N,) the input matrix. For NPLR M = N; for DPLR M = N/2 and ``B``/``P`` are
    projected into the eigenbasis: (M, 2) each (V^* B, V^* P).
    """

    w: Tensor
    V: Tensor
    P: Tensor
    B: Tensor


def nplr(measure: str, N: int) -> NPLR:
    """Normal-plus-low-rank form of the HiPPO matrix: A = V diag(w) V^* - P P^T (float64).

    All N modes, with w by increasing Im w (``eigh``'s order).
    """
    N = _check(measure, N)
    _require_legs(measure)
    d = _normal(measure, N)
    return NPLR(to_pairs(d.w), to_pairs(d.V), d.P[:, 0].clone(), d.B.clone())


def dplr(measure: str, N: int) -> NPLR:
    """Diagonal-plus-low-rank initialisation: the N/2 eigenvalues of S with Im > 0, V^* B and V^* P.

    The conjugate halves are implicit (a real input gives conjugate-symmetric modes), which is how S4D,
    S4 and LDNN store their states. Modes by decreasing Im w. N must be even.
    """
    if N % 2:
        raise ValueError(f"N must be even for a DPLR form (conjugate pairs), got {N}")
    N = _check(measure, N)
    _require_legs(measure)
    d = _normal(measure, N)
    keep = torch.argsort(d.w.imag, descending=True)[: N // 2]  # the half with positive imaginary part
    w, V = d.w[keep], d.V[:, keep]
    Vh = V.conj().T
    B_proj = Vh @ d.B.to(torch.complex128)
    P_proj = Vh @ d.P[:, 0].to(torch.complex128)
    return NPLR(to_pairs(w), to_pairs(V), to_pairs(P_proj), to_pairs(B_proj))


def normal_pairs(measure: str, N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Conjugate-pair NPLR form A = 2 Re(V diag(w) V^*) - P P^T, in float64 / complex128.

    Returns w (N/2,) the eigenvalues of S with Im > 0 (by increasing Im w), V (N, N/2) their orthonormal
    eigenvectors (the other half are the conjugates), P (N, r) and B (N,). N must be even and S must have
    no real eigenvalue (true for legs, legt, lagt at even N).
    """
    if N % 2:
        raise ValueError(f"N must be even for the conjugate-pair form, got {N}")
    d = _normal(measure, _check(measure, N))
    keep = d.omega > 0
    if int(keep.sum()) != N // 2:
        raise ValueError(f"S has a real eigenvalue for measure {measure!r}, N={N}: no conjugate-pair form")
    return d.w[keep], d.V[:, keep], d.P.clone(), d.B.clone()


def normal_eig(measure: str, N: int) -> tuple[Tensor, Tensor]:
    """All eigenvalues w (N,) and eigenvectors V (N, N) (columns) of S = A + P P^T, complex128, ordered
    with conjugate pairs side by side by decreasing |Im w|, the Im w > 0 member first; for odd N the
    real eigenvalue (w = shift) comes last. V[:, 2k+1] is conj(V[:, 2k]) up to a phase.

    For LDNN's HiPPO init (HiPPO-LegS of size 2n): ``w[0::2]`` is the DPLR half (``dplr``'s modes, same
    order); the first n entries are what the reference keeps from ``torch.linalg.eig(S * -1j)`` (LAPACK's
    order, pairs by decreasing |Im|, checked for 2n <= 128; above that LAPACK's order drifts and an
    exact-reference init must call ``eig`` itself). The reference's eigenvalues are -1 + i omega, not
    w = -1/2 + i omega (it adds the real part to i * eig(S * -i) = i omega - 1/2): the layer's flag.
    """
    N = _check(measure, N)
    d = _normal(measure, N)
    # omega is ascending and symmetric about 0: omega[N-1-j] = -omega[j] pairs the conjugates structurally,
    # which a sort by |omega| would not do reliably (|omega| and |-omega| differ in the last bits)
    order = [i for j in range(N // 2) for i in (N - 1 - j, j)] + ([N // 2] if N % 2 else [])
    order = torch.tensor(order, dtype=torch.long)
    return d.w[order], d.V[:, order]
