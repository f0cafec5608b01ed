"""The discrete leaky integrate-and-fire (LIF) neuron with hard reset, simulated step by step.

m_t  = tau u_{t-1}                (the decayed potential before the input: SDN's target ``mem``)
u'_t = m_t + x_t
s_t  = [u'_t >= v_th]             (H(0) = 1)
u_t  = (1 - s_t) u'_t             (hard reset to 0),     u_{-1} = 0
"""

from __future__ import annotations

import torch
from torch import Tensor


def lif_reference(x: Tensor, tau: float, v_th: float = 1.0) -> tuple[Tensor, Tensor]:
    """x: (..., T) input currents -> (mem (..., T), spike (..., T) in {0, 1}, x's dtype)."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    mem = torch.empty_like(x)
    spike = torch.empty_like(x)
    u = torch.zeros_like(x[..., 0])
    for t in range(x.shape[-1]):
        m = tau * u
        v = m + x[..., t]
        s = (v >= v_th).to(x.dtype)
        u = (1 - s) * v
        mem[..., t], spike[..., t] = m, s
    return mem, spike
