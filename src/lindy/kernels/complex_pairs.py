"""Complex arithmetic on real pairs: a complex tensor z is stored as a real tensor (..., 2) = (Re z, Im z).

Why pairs: torch.compile and several CPU kernels still break or slow down on complex dtypes, and
parameters stored as real tensors keep the optimiser, autocast and safetensors simple. The diagonal-SSM
kernels (S4D, LDNN, SpikingSSM: ``vandermonde``, ``discretize_diag``, ``diag_ssm``) use this module; the
dense and NPLR paths (LSSL: ``nplr_kernel``, ``cauchy``, ``hippo``) use torch complex inside one function
and return real results.

    cmul(a, b) = (a_r b_r - a_i b_i, a_r b_i + a_i b_r)      cdiv(a, b) = a conj(b) / |b|^2
    cexp(a)    = exp(a_r) (cos a_i, sin a_i)                 conj(a)    = (a_r, -a_i)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cmul", "cdiv", "cexp", "conj", "cabs2", "to_complex", "to_pairs"]


def cmul(a: Tensor, b: Tensor) -> Tensor:
    """a * b for pairs (..., 2), broadcasting over the leading dims."""
    ar, ai = a.unbind(-1)
    br, bi = b.unbind(-1)
    return torch.stack([ar * br - ai * bi, ar * bi + ai * br], -1)


def conj(a: Tensor) -> Tensor:
    """The complex conjugate of pairs (..., 2)."""
    return torch.stack([a[..., 0], -a[..., 1]], -1)


def cabs2(a: Tensor) -> Tensor:
    """|a|^2 of pairs (..., 2), shape (...,)."""
    return (a * a).sum(-1)


def cdiv(a: Tensor, b: Tensor) -> Tensor:
    """a / b for pairs (..., 2)."""
    return cmul(a, conj(b)) / cabs2(b).unsqueeze(-1)


def cexp(a: Tensor) -> Tensor:
    """exp(a) for pairs (..., 2)."""
    mag = torch.exp(a[..., 0])
    return torch.stack([mag * torch.cos(a[..., 1]), mag * torch.sin(a[..., 1])], -1)


def to_complex(a: Tensor) -> Tensor:
    """Pairs (..., 2) -> a torch complex tensor (...,) (a copy when ``a`` is not contiguous)."""
    return torch.view_as_complex(a.contiguous())


def to_pairs(z: Tensor) -> Tensor:
    """A torch complex tensor (...,) -> pairs (..., 2) (a real tensor sharing nothing with ``z``)."""
    return torch.view_as_real(z).clone()
