"""The recurrence of a complex diagonal SSM, exactly: one step, and a closed-form chunk.

Modes are complex numbers stored as real pairs (..., N, 2) (``complex_pairs``); each of the H channels
drives its N modes with one real input u_h:

    x_t = Abar x_{t-1} + Bbar u_t,        y_t = 2 Re(sum_n C_n x_{t,n})          (per channel h)

S4D uses it with N/2 conjugate modes per feature; a MIMO layer (LDNN) puts each state on its own channel
(N = 1, C = 1) and mixes the real parts itself. The driven response of a chunk is a convolution with the
layer's kernel K[l] = 2 Re(sum_n C_n Bbar_n Abar_n^l), which the layer computes (and caches) itself, so a
chunk here adds what the kernel cannot see, the state carried in:

    free response  y0_l = 2 Re(sum_n C_n Abar_n^(l+1) x0_n),          l = 0..L-1
    new state      x_L  = Abar^L x0 + sum_s Abar^(L-1-s) Bbar u_s,

with the powers Abar^l = exp(l log Abar) in closed form (no sequential product, no drift). The chunk holds
(H, N, L, 2) powers: meant for streaming chunks, not for whole training sequences.

Shapes: Abar, log Abar, Bbar, C (H, N, 2); state (B, H, N, 2); u (B, H) per step or (B, H, L) per chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lindy.kernels.complex_pairs import cexp, cmul

__all__ = ["diag_step", "diag_chunk", "diag_powers"]


def diag_step(abar: Tensor, bbar: Tensor, c: Tensor, state: Tensor, u_t: Tensor) -> tuple[Tensor, Tensor]:
    """One step: (y_t (B, H) = 2 Re(sum_n C_n x_t), x_t (B, H, N, 2)) from x_{t-1} and u_t (B, H)."""
    state = cmul(abar, state) + bbar * u_t[:, :, None, None]
    return 2 * cmul(c, state)[..., 0].sum(-1), state


def diag_powers(log_abar: Tensor, length: int) -> Tensor:
    """Abar^l for l = 0..length-1 in closed form: (H, N, 2) -> (H, N, L, 2)."""
    steps = torch.arange(length, device=log_abar.device, dtype=log_abar.dtype)
    return cexp(log_abar.unsqueeze(-2) * steps[:, None])


def diag_chunk(
    log_abar: Tensor, abar: Tensor, bbar: Tensor, c: Tensor, state: Tensor, u: Tensor
) -> tuple[Tensor, Tensor]:
    """A chunk u (B, H, L) from state x0: (free response y0 (B, H, L), new state x_L (B, H, N, 2)).

    The output of the chunk is y0 plus the driven response (the layer's causal convolution of u with its
    kernel); together they equal L calls of ``diag_step``.
    """
    length = u.shape[-1]
    powers = diag_powers(log_abar, length)  # (H, N, L, 2)
    # Re(a b) = a_r b_r - a_i b_i: the real part of c0 * Abar^l as one real contraction
    sign = torch.tensor([1.0, -1.0], dtype=u.dtype, device=u.device)
    c0 = 2 * cmul(cmul(c, abar), state) * sign
    free = torch.einsum("bhnc,hnlc->bhl", c0, powers)
    driven = torch.einsum("bhl,hnlc->bhnc", u, powers.flip(-2))
    new_state = cmul(cexp(log_abar * length), state) + cmul(bbar, driven)
    return free, new_state
