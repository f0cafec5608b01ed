"""Surrogate spike functions: the Heaviside step forward, a smooth pseudo-derivative backward.

Forward s = H(v) = 1[v >= 0] (H(0) = 1) for every surrogate; the backward replaces dH/dv = delta(v) by

- ``piecewise_quadratic`` (SDN's, named after its primitive): g(v) = max(0, 1 - |v| / a) / a, a triangle
  of half-width a (default 1: g(0) = 1, g(+-0.5) = 0.5, g(+-1) = 0);
- ``atan``:    g(v) = (a / 2) / (1 + (pi a v / 2)^2)          (default a = 2, SpikingJelly's);
- ``sigmoid``: g(v) = a sigma(a v) (1 - sigma(a v))            (default a = 4).

Each integrates to 1 over the real line. ``spike(v, name, alpha)`` applies one; ``surrogate_grad`` gives g
itself (for hand-written backward passes such as the LIF loop in ``lif``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SURROGATES", "check_surrogate", "spike", "surrogate_grad"]

#: name -> default width/slope parameter a
SURROGATES = {"piecewise_quadratic": 1.0, "atan": 2.0, "sigmoid": 4.0}


def check_surrogate(name: str, alpha: float | None) -> float:
    """The surrogate's parameter a (its default when ``alpha`` is None), checked; a ValueError otherwise."""
    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, got {name!r}")
    a = SURROGATES[name] if alpha is None else alpha
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a <= 0:
        raise ValueError(f"alpha (the surrogate's width/slope) must be a finite number > 0, got {alpha!r}")
    return float(a)


def surrogate_grad(v: Tensor, name: str = "piecewise_quadratic", alpha: float | None = None) -> Tensor:
    """g(v), the surrogate pseudo-derivative of H at v (same shape and dtype)."""
    a = check_surrogate(name, alpha)
    if name == "piecewise_quadratic":
        return (1.0 - v.abs() / a).clamp_min(0.0) / a
    if name == "atan":
        return (a / 2) / (1 + (math.pi / 2 * a * v) ** 2)
    sig = torch.sigmoid(a * v)
    return a * sig * (1 - sig)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: Tensor, name: str, alpha: float) -> Tensor:
        ctx.save_for_backward(v)
        ctx.name, ctx.alpha = name, alpha
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (v,) = ctx.saved_tensors
        return grad * surrogate_grad(v, ctx.name, ctx.alpha), None, None


def spike(v: Tensor, name: str = "piecewise_quadratic", alpha: float | None = None) -> Tensor:
    """H(v) = 1[v >= 0] in v's dtype, with the surrogate ``name``'s gradient g(v) (see the module doc)."""
    return _Spike.apply(v, name, check_surrogate(name, alpha))
