"""The discrete leaky integrate-and-fire (LIF) neuron with hard reset: reference loop, step, and the
iterative training neurons (BPTT, SLTT) with surrogate gradients.

m_t  = tau u_{t-1}                (the decayed potential before the input: SDN's target ``mem``)
u'_t = m_t + x_t
s_t  = H(u'_t - v_th)             (H(0) = 1)
u_t  = (1 - s_t) u'_t + s_t v_r   (hard reset to v_r),     u_{-1} = 0

With u_{-1} = v_r = 0 the neuron is scale invariant: LIF(x; v_th) = LIF(x / v_th; 1) (one SDN trained at
v_th = 1 serves every threshold).

Training through the loop (``lif_spikes``) uses a surrogate g (``lindy.kernels.surrogate``) for dH and, as
the SDN reference's baselines, a reset through the detached spike:

- ``bptt``: backpropagation through time, dL/du'_t = dL/ds_t g(u'_t - v_th) + dL/du_t (1 - s_t) and
  dL/du_{t-1} = tau dL/du'_t;
- ``sltt``: also detached on the temporal path (m_t = tau sg(u_{t-1})), so dL/dx_t = dL/ds_t g(u'_t - v_th):
  no backward recurrence at all.

The backward is written by hand (one fused loop, no autograd graph of 3T nodes), so both baselines are as
fast as a Python loop over T allows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lindy.kernels.surrogate import check_surrogate, surrogate_grad

__all__ = ["LIF_MODES", "lif_reference", "lif_step", "lif_spikes"]

LIF_MODES = ("bptt", "sltt")


def _check_tau(tau: float) -> None:
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")


def lif_reference(x: Tensor, tau: float, v_th: float = 1.0, v_r: float = 0.0) -> tuple[Tensor, Tensor]:
    """x: (..., T) input currents -> (mem (..., T), spike (..., T) in {0, 1}, x's dtype)."""
    _check_tau(tau)
    mem = torch.empty_like(x)
    spike = torch.empty_like(x)
    u = torch.zeros_like(x[..., 0])
    for t in range(x.shape[-1]):
        m = tau * u
        v = m + x[..., t]
        s = (v >= v_th).to(x.dtype)
        u = (1 - s) * v
        if v_r != 0.0:  # only then: keeps the v_r = 0 numbers bit for bit (no -0.0 + 0.0)
            u = u + s * v_r
        mem[..., t], spike[..., t] = m, s
    return mem, spike


def lif_step(
    u: Tensor, x_t: Tensor, tau: float, v_th: float = 1.0, v_r: float = 0.0
) -> tuple[Tensor, Tensor]:
    """One step from the membrane u_{t-1}: (s_t, u_t), no gradient through the spike (inference)."""
    v = tau * u + x_t
    s = (v >= v_th).to(v.dtype)
    return s, (1 - s) * v + s * v_r


class _LIFLoop(torch.autograd.Function):
    """x (T, ...) time first, u0 (...) -> (spikes (T, ...), u_T (...)); see the module docstring."""

    @staticmethod
    def forward(ctx, x, u0, tau, v_th, v_r, name, alpha, mode):
        v_all = torch.empty_like(x)
        s_all = torch.empty_like(x)
        u = u0
        for t in range(x.shape[0]):
            v = torch.add(x[t], u, alpha=tau)
            s = (v >= v_th).to(x.dtype)
            u = (1 - s) * v + s * v_r
            v_all[t], s_all[t] = v, s
        ctx.save_for_backward(v_all, s_all)
        ctx.params = (tau, v_th, name, alpha, mode)
        return s_all, u

    @staticmethod
    def backward(ctx, g_s, g_u):
        v_all, s_all = ctx.saved_tensors
        tau, v_th, name, alpha, mode = ctx.params
        g_s = torch.zeros_like(s_all) if g_s is None else g_s
        direct = g_s * surrogate_grad(v_all - v_th, name, alpha)
        g_u = torch.zeros_like(v_all[0]) if g_u is None else g_u
        if mode == "sltt":  # only the last step feeds u_T; the temporal path is cut
            direct[-1] += g_u * (1 - s_all[-1])
            return direct, None, None, None, None, None, None, None
        g_x = torch.empty_like(direct)
        for t in range(direct.shape[0] - 1, -1, -1):
            g_v = direct[t] + g_u * (1 - s_all[t])
            g_x[t] = g_v
            g_u = tau * g_v
        return g_x, g_u, None, None, None, None, None, None


def lif_spikes(
    x: Tensor,
    tau: float,
    v_th: float = 1.0,
    v_r: float = 0.0,
    *,
    u0: Tensor | None = None,
    surrogate: str = "piecewise_quadratic",
    alpha: float | None = None,
    mode: str = "bptt",
    dim: int = -1,
) -> tuple[Tensor, Tensor]:
    """The exact LIF over time ``dim`` of x: (spikes like x, final membrane u_T (x without ``dim``)).

    ``u0`` is u_{-1} (zeros by default). Gradients: ``mode`` "bptt" or "sltt" with the ``surrogate``.
    """
    _check_tau(tau)
    if mode not in LIF_MODES:
        raise ValueError(f"mode must be one of {LIF_MODES}, got {mode!r}")
    alpha = check_surrogate(surrogate, alpha)
    xt = x.movedim(dim, 0).contiguous()
    if u0 is None:
        u0 = torch.zeros_like(xt[0])
    s, u = _LIFLoop.apply(xt, u0, float(tau), float(v_th), float(v_r), surrogate, alpha, mode)
    return s.movedim(0, dim), u
