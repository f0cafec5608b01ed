"""The LEM recurrence over a whole sequence, with a hand-written backward (BPTT through saved gates).

Given the input projections of every step, U = inp2hid(u): (B, L, 4d) = [V2 u + b2 | V1 u + b1 |
Vy u + by' | Vz u + bz'] and the recurrent weights W = hid2hid (3d x d, rows [W2 | W1 | Wz], bias c)
and Wy = transform_z (d x d, bias by):

    [p_y | p_z | q_z] = [U_0 | U_1 | U_3] + c + W y          (y = y_{n-1}; one addmm)
    z_n = z + dt sig(p_z) (tanh(q_z) - z)
    q_y = U_2 + by + Wy z_n
    y_n = y + dt sig(p_y) (tanh(q_y) - y)

Per step the forward runs 9 tensor ops (two matmuls, the rest writing into preallocated time-major
buffers); the backward needs only per-step coefficients, computed for all steps at once after the
forward (O(B L d) memory, no autograd graph per step):

    dq_y = dy A_y,  dp_y = dy C_y,   dz += dq_y Wy,   dq_z = dz A_z,  dp_z = dz C_z,
    dy <- dy R_y + [dp_y | dp_z | dq_z] W,            dz <- dz R_z
    A_y = dt s_y (1 - tanh^2 q_y), C_y = dt s_y (1 - s_y)(tanh q_y - y), R_y = 1 - dt s_y, and alike for z.

The weight gradients are summed over all steps at the end, one matmul each.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _reorder(U: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """inp2hid chunks [p_y | p_z | q_y | q_z] -> time-major [p_y | p_z | q_z] (L, B, 3d) and q_y (L, B, d)."""
    Ut = U.transpose(0, 1)
    return torch.cat([Ut[..., : 2 * d], Ut[..., 3 * d :]], dim=-1), Ut[..., 2 * d : 3 * d]


class LEMScan(torch.autograd.Function):
    """(U, W, c, Wy, by, y0, z0, dt) -> (Y: (B, L, d) all y_n, y_L, z_L)."""

    @staticmethod
    def forward(
        ctx, U: Tensor, W: Tensor, c: Tensor, Wy: Tensor, by: Tensor, y0: Tensor, z0: Tensor, dt: float
    ):
        B, L, four_d = U.shape
        d = four_d // 4
        U3, Uy = _reorder(U, d)
        U3 = U3 + c  # (L, B, 3d), hidden biases folded in once
        Uy = Uy + by  # (L, B, d)
        Wt, Wyt = W.t(), Wy.t()
        ys = U.new_empty(L + 1, B, d)
        zs = U.new_empty(L + 1, B, d)
        sig = U.new_empty(L, B, 2 * d)  # [sig(p_y) | sig(p_z)]
        tz = U.new_empty(L, B, d)  # tanh(q_z)
        ty = U.new_empty(L, B, d)  # tanh(q_y)
        ys[0], zs[0] = y0, z0
        for n in range(L):
            y, z = ys[n], zs[n]
            pre = torch.addmm(U3[n], y, Wt)  # (B, 3d)
            torch.sigmoid(pre[:, : 2 * d], out=sig[n])
            torch.tanh(pre[:, 2 * d :], out=tz[n])
            torch.addcmul(z, sig[n, :, d:], tz[n] - z, value=dt, out=zs[n + 1])
            torch.tanh(torch.addmm(Uy[n], zs[n + 1], Wyt), out=ty[n])
            torch.addcmul(y, sig[n, :, :d], ty[n] - y, value=dt, out=ys[n + 1])
        if ctx.needs_input_grad[:7] != (False,) * 7:
            sy, sz = dt * sig[..., :d], dt * sig[..., d:]  # the gates dt sig(.)
            coef = torch.stack(
                [
                    sy * (1 - ty * ty),  # A_y
                    sy * (1 - sig[..., :d]) * (ty - ys[:-1]),  # C_y
                    1 - sy,  # R_y
                    sz * (1 - tz * tz),  # A_z
                    sz * (1 - sig[..., d:]) * (tz - zs[:-1]),  # C_z
                    1 - sz,  # R_z
                ]
            )  # (6, L, B, d)
            ctx.save_for_backward(W, Wy, ys, zs, coef)
        return ys[1:].transpose(0, 1), ys[L], zs[L]

    @staticmethod
    def backward(ctx, dY: Tensor, dy_last: Tensor, dz_last: Tensor):
        W, Wy, ys, zs, coef = ctx.saved_tensors
        A_y, C_y, R_y, A_z, C_z, R_z = coef
        L, B, d = A_y.shape
        dYt = dY.transpose(0, 1)
        dH = dY.new_empty(L, B, 3 * d)  # grads of [p_y | p_z | q_z]
        dQy = dY.new_empty(L, B, d)  # grads of q_y
        dy, dz = dy_last.clone(), dz_last.clone()  # unused outputs arrive as zeros (materialised grads)
        for n in range(L - 1, -1, -1):
            dy += dYt[n]
            torch.mul(dy, A_y[n], out=dQy[n])
            torch.mul(dy, C_y[n], out=dH[n, :, :d])
            dz = torch.addmm(dz, dQy[n], Wy)
            torch.mul(dz, A_z[n], out=dH[n, :, 2 * d :])
            torch.mul(dz, C_z[n], out=dH[n, :, d : 2 * d])
            dy = torch.addmm(dy * R_y[n], dH[n], W)
            dz = dz * R_z[n]
        dW = torch.einsum("lbk,lbd->kd", dH, ys[:-1])
        dc = dH.sum((0, 1))
        dWy = torch.einsum("lbk,lbd->kd", dQy, zs[1:])
        dby = dQy.sum((0, 1))
        # back to inp2hid's chunk order [p_y | p_z | q_y | q_z], batch-first
        dU = torch.cat([dH[..., : 2 * d], dQy, dH[..., 2 * d :]], dim=-1).transpose(0, 1)
        return dU, dW, dc, dWy, dby, dy, dz, None
