"""LEM: Long Expressive Memory (Rusch, Mishra, Erichson, Mahoney, ICLR 2022).

A two-time-scale gated recurrent network, the discretisation of a multiscale ODE. For input u_n and
states y_n, z_n in R^d, a fixed step dt, sigma = sigmoid, y_0 = z_0 = 0:

    dt_n    = dt * sigma(W1 y_{n-1} + V1 u_n + b1)                 (the z gate)
    dtbar_n = dt * sigma(W2 y_{n-1} + V2 u_n + b2)                 (the y gate)
    z_n = (1 - dt_n) z_{n-1}    + dt_n    tanh(Wz y_{n-1} + Vz u_n + bz)
    y_n = (1 - dtbar_n) y_{n-1} + dtbar_n tanh(Wy z_n     + Vy u_n + by)

Parameters are packed as the reference code packs them, so that its checkpoints load: ``inp2hid`` =
Linear(d_in -> 4d) with output chunks [V2 | V1 | Vy | Vz], ``hid2hid`` = Linear(d -> 3d) with chunks
[W2 | W1 | Wz], ``transform_z`` = Linear(d -> d) = Wy; every tensor ~ U(-1/sqrt d, 1/sqrt d).

Parallel mode: the whole recurrence in a C++ loop on CPU (BLAS matmuls and fused gate loops; a Python loop
over the same buffers elsewhere) with a hand-written backward (``lindy.kernels.lem_scan.LEMScan``).
Recurrent mode: the same cell one step at a time.
Contract shapes: x (batch, length, d_input) -> all y_n (batch, length, d_model); state (y, z), each
(batch, d_model).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from lindy.kernels.lem_scan import LEMScan
from lindy.layers.base import SequenceLayer, check_finite_number, register_layer

__all__ = ["LEM"]


class LEM(SequenceLayer):
    """Long Expressive Memory layer. x: (batch, length, d_input) -> y: (batch, length, d_model).

    Args:
        d_model: d, the size of each state (y and z) and of the output.
        d_input: input features per step (default d_model).
        dt: the fixed step in (0, 1] (the reference's tasks use 1.7e-4 to 1).
    State: (y, z), each (batch, d_model).
    """

    def __init__(self, d_model: int, *, d_input: int | None = None, dt: float = 1.0):
        super().__init__(d_model, d_input=d_input)
        self.dt = check_finite_number("dt", dt, positive=True, high=1.0)
        d, d_in = self.d_model, self.d_input
        self.inp2hid = nn.Linear(d_in, 4 * d)
        self.hid2hid = nn.Linear(d, 3 * d)
        self.transform_z = nn.Linear(d, d)
        bound = 1.0 / math.sqrt(d)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def state_shape(self) -> tuple[tuple[int], tuple[int]]:
        """(y, z) of one example: ((d_model,), (d_model,)); the initial state is zeros."""
        return (self.d_model,), (self.d_model,)

    def _scan(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        # under autocast the whole recurrence runs in the autocast dtype (the Function sees no autocast)
        device = x.device.type
        autocast = device in ("cpu", "cuda") and torch.is_autocast_enabled(device)
        dtype = torch.get_autocast_dtype(device) if autocast else x.dtype
        params = [
            self.inp2hid.weight,
            self.inp2hid.bias,
            self.hid2hid.weight,
            self.hid2hid.bias,
            self.transform_z.weight,
            self.transform_z.bias,
        ]
        y0, z0 = (s.to(dtype) for s in state)
        with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
            Y, y, z = LEMScan.apply(x.to(dtype), *(p.to(dtype) for p in params), y0, z0, self.dt)
        return Y, (y, z)

    def _forward(self, x: Tensor) -> Tensor:
        return self._scan(x, self.initial_state(x.shape[0], device=x.device, dtype=x.dtype))[0]

    def _forward_with_state(self, x: Tensor, state) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        return self._scan(x, state)

    def _step(self, x_t: Tensor, state) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        y, z = state
        d, dt = self.d_model, self.dt
        v2, v1, vy, vz = self.inp2hid(x_t).split(d, dim=-1)
        w2, w1, wz = self.hid2hid(y).split(d, dim=-1)
        g_z = dt * torch.sigmoid(w1 + v1)
        g_y = dt * torch.sigmoid(w2 + v2)
        z = (1 - g_z) * z + g_z * torch.tanh(wz + vz)
        y = (1 - g_y) * y + g_y * torch.tanh(self.transform_z(z) + vy)
        return y, (y, z)


register_layer(
    "lem",
    LEM,
    test_configs={"default": dict(dt=0.5), "narrow-input": dict(d_input=2, dt=1.0)},
    invalid_configs=[dict(dt=0.0), dict(dt=float("nan")), dict(dt=1.5), dict(d_input=0)],
)
