"""A toy spiking layer for the conformance suite's capability flags (not a lindy layer, not registered).

Membrane m_t = a m_{t-1} + W x_t (exact in ``step``); the parallel mode truncates the leaky sum to the last
``window`` inputs, m_t ~ sum_{j < window} a^j W x_{t-j}, so it only approximates the step
(``exact_recurrence=False``). Spikes s_t = H(m_t - 1) with a sigmoid surrogate gradient
(``differentiable=False``); output y_t = V s_t + x_t, so every output step still sees its input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lindy.layers.base import SequenceLayer


class _Spike(torch.autograd.Function):
    """Heaviside forward, d sigmoid(4 v)/dv backward."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        sig = torch.sigmoid(4 * v)
        return grad * 4 * sig * (1 - sig)


class ToySpiking(SequenceLayer):
    """x (B, L, H) -> y (B, L, H); state: the membrane (B, H)."""

    def __init__(self, d_model: int, *, decay: float = 0.5, window: int = 3):
        super().__init__(d_model)
        self.decay, self.window = decay, window
        self.W = nn.Parameter(torch.randn(d_model, d_model))
        self.V = nn.Parameter(torch.randn(d_model, d_model))

    def _forward(self, x: Tensor) -> Tensor:
        drive = x @ self.W.T
        m = torch.zeros_like(drive)
        for j in range(self.window):
            m[:, j:] = m[:, j:] + self.decay**j * drive[:, : drive.shape[1] - j]
        return _Spike.apply(m - 1.0) @ self.V.T + x

    def state_shape(self) -> tuple[int]:
        return (self.d_model,)

    def _step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        m = self.decay * state + x_t @ self.W.T
        return _Spike.apply(m - 1.0) @ self.V.T + x_t, m
