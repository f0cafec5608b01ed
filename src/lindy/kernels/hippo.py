"""HiPPO transition matrices and their normal-plus-low-rank (NPLR / DPLR) forms.

Continuous system x' = A x + B u, indices n, k = 0..N-1 (Gu et al. 2020, 2021):

- LegS: A_nk = -sqrt((2n+1)(2k+1)) for n > k, -(n+1) for n = k, 0 above; B_n = sqrt(2n+1).
- LegT: A_nk = -sqrt((2n+1)(2k+1)) * (1 if n >= k else (-1)^(n-k)); B_n = sqrt(2n+1), each times 1/2 in
  the "halved" convention of state-spaces/s4's hippo.py (the first-release standalone LSSL is unhalved).
- LagT: A = 1/2 I - tril(ones) (diagonal -1/2, strictly lower -1), B = beta * 1.

NPLR (LegS): A = S - P P^T with P_n = sqrt(n + 1/2) and S = -I/2 + (skew-symmetric), normal.
S = V diag(w) V^* with V unitary, computed from the Hermitian matrix -i (S + I/2), so the eigenvalues come
out with real part exactly -1/2. DPLR keeps one of each conjugate pair (imaginary part > 0).
LegT and LagT have the same form with S skew-symmetric (``low_rank``): LegT with a rank-2 P (the
even- and odd-indexed sqrt(2n+1), times 1/sqrt(2) in the halved convention), LagT with P = 1/sqrt(2);
``normal_pairs`` gives the conjugate-pair form of any of them (used by LSSL).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

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


def transition(measure: str, N: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """(A, B) for ``measure`` in MEASURES."""
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise ValueError(f"N must be a positive int, got {N!r}")
    if measure == "legs":
        return legs(N, dtype)
    if measure == "legt":
        return legt(N, halved=True, dtype=dtype)
    if measure == "legt_unhalved":
        return legt(N, halved=False, dtype=dtype)
    if measure == "lagt":
        return lagt(N, dtype=dtype)
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


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


def _low_rank(measure: str, N: int) -> Tensor:
    if measure != "legs":
        raise ValueError(f"nplr/dplr support measure='legs' (a rank-1 correction), got {measure!r}")
    return torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)


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


def normal_pairs(measure: str, N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Conjugate-pair NPLR form A = 2 Re(V diag(w) V^*) - P P^T, in float64 / complex128.

    Returns w (N/2,) the eigenvalues of S with Im > 0, V (N, N/2) their orthonormal eigenvectors (the
    other half are the conjugates), P (N, r) and B (N,). N must be even and S must have no real
    eigenvalue (true for legs, legt, lagt at even N).
    """
    if N % 2:
        raise ValueError(f"N must be even for the conjugate-pair form, got {N}")
    A, B = transition(measure, N)
    P = low_rank(measure, N)
    S = A + P @ P.T
    shift = torch.diagonal(S).mean()
    skew = S - shift * torch.eye(N, dtype=torch.float64)
    if (skew + skew.T).abs().max() > 1e-8 * max(1.0, skew.abs().max().item()):
        raise ValueError(f"A + P P^T is not a shifted skew-symmetric matrix for measure {measure!r}")
    evals, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    keep = evals > 0
    if int(keep.sum()) != N // 2:
        raise ValueError(f"S has a real eigenvalue for measure {measure!r}, N={N}: no conjugate-pair form")
    return shift + 1j * evals[keep], V[:, keep], P, B


def _nplr_complex(measure: str, N: int):
    A, B = transition(measure, N)
    P = _low_rank(measure, N)
    S = A + torch.outer(P, P)
    shift = torch.diagonal(S).mean()  # -1/2 for LegS: S - shift I is skew-symmetric
    skew = S - shift * torch.eye(N, dtype=torch.float64)
    # -i * skew is Hermitian: eigh gives exact real eigenvalues and a unitary V
    evals, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    w = shift + 1j * evals  # eigenvalues of S
    return w, V, P, B


def nplr(measure: str, N: int) -> NPLR:
    """Normal-plus-low-rank form of the HiPPO matrix: A = V diag(w) V^* - P P^T (float64)."""
    w, V, P, B = _nplr_complex(measure, N)
    return NPLR(torch.view_as_real(w), torch.view_as_real(V), P, B)


def dplr(measure: str, N: int) -> NPLR:
    """Diagonal-plus-low-rank initialisation: the N/2 eigenvalues of S with Im > 0, V^* B and V^* P.

    The conjugate halves are implicit (a real input gives conjugate-symmetric modes), which is how S4D,
    S4 and LDNN store their states. N must be even.
    """
    if N % 2:
        raise ValueError(f"N must be even for a DPLR form (conjugate pairs), got {N}")
    w, V, P, B = _nplr_complex(measure, N)
    keep = torch.argsort(w.imag, descending=True)[: N // 2]  # the half with positive imaginary part
    w, V = w[keep], V[:, keep]
    Vh = V.conj().T
    B_proj = Vh @ B.to(torch.complex128)
    P_proj = Vh @ P.to(torch.complex128)
    return NPLR(
        torch.view_as_real(w), torch.view_as_real(V), torch.view_as_real(P_proj), torch.view_as_real(B_proj)
    )
