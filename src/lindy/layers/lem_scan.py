"""The LEM recurrence over a whole sequence, with a hand-written backward (BPTT through saved gates).

Given the input projections of every step, U = inp2hid(u): (B, L, 4d) = [V2 u + b2 | V1 u + b1 |
Vy u + by' | Vz u + bz'] and the recurrent weights W = hid2hid (3d x d, rows [W2 | W1 | Wz], bias c)
and Wy = transform_z (d x d, bias by):

    p_y = U_0 + W2 y + c_0      p_z = U_1 + W1 y + c_1      q_z = U_3 + Wz y + c_2      (y = y_{n-1})
    g_z = dt sig(p_z)           z_n = z + g_z (tanh(q_z) - z)
    q_y = U_2 + Wy z_n + by     g_y = dt sig(p_y)           y_n = y + g_y (tanh(q_y) - y)

Autograd through a Python loop would record ~20 nodes per step; here the forward keeps only what the
backward needs, (B, L, d) tensors of gates and activations (memory O(B L d)), and the backward runs
the chain rule step by step with two small matmuls per step. Gradients of the weights are summed over
all steps at the end in one matmul each.
"""

from __future__ import annotations

import torch
from torch import Tensor


class LEMScan(torch.autograd.Function):
    """(U, W, c, Wy, by, y0, z0, dt) -> (Y: (B, L, d) all y_n, y_L, z_L)."""

    @staticmethod
    def forward(
        ctx, U: Tensor, W: Tensor, c: Tensor, Wy: Tensor, by: Tensor, y0: Tensor, z0: Tensor, dt: float
    ):
        B, L, four_d = U.shape
        d = four_d // 4
        Wt, Wyt = W.t().contiguous(), Wy.t().contiguous()
        ys = U.new_empty(B, L + 1, d)  # y_0 .. y_L
        zs = U.new_empty(B, L + 1, d)
        sig_y = U.new_empty(B, L, d)  # sig(p_y)
        sig_z = U.new_empty(B, L, d)
        tz = U.new_empty(B, L, d)  # tanh(q_z)
        ty = U.new_empty(B, L, d)  # tanh(q_y)
        ys[:, 0], zs[:, 0] = y0, z0
        y, z = y0, z0
        for n in range(L):
            u = U[:, n]
            h = torch.addmm(c, y, Wt)  # (B, 3d)
            sz = torch.sigmoid(u[:, d : 2 * d] + h[:, d : 2 * d])
            t = torch.tanh(u[:, 3 * d :] + h[:, 2 * d :])
            z = torch.addcmul(z, dt * sz, t - z)
            sy = torch.sigmoid(u[:, :d] + h[:, :d])
            s = torch.tanh(torch.addmm(by, z, Wyt) + u[:, 2 * d : 3 * d])
            y = torch.addcmul(y, dt * sy, s - y)
            ys[:, n + 1], zs[:, n + 1] = y, z
            sig_y[:, n], sig_z[:, n], tz[:, n], ty[:, n] = sy, sz, t, s
        ctx.save_for_backward(W, Wy, ys, zs, sig_y, sig_z, tz, ty)
        ctx.dt = dt
        return ys[:, 1:], y, z

    @staticmethod
    def backward(ctx, dY: Tensor, dy_last: Tensor, dz_last: Tensor):
        W, Wy, ys, zs, sig_y, sig_z, tz, ty = ctx.saved_tensors
        dt = ctx.dt
        B, L, d = sig_y.shape
        dU = dY.new_empty(B, L, 4 * d)
        dy, dz = dy_last.clone(), dz_last.clone()  # unused outputs arrive as zeros (materialised grads)
        for n in range(L - 1, -1, -1):
            dy = dy + dY[:, n]
            y_prev, z_prev = ys[:, n], zs[:, n]
            sy, sz, t, s = sig_y[:, n], sig_z[:, n], tz[:, n], ty[:, n]
            gy, gz = dt * sy, dt * sz
            # y_n = y + g_y (s - y)
            dq_y = dy * gy * (1 - s * s)  # through tanh(q_y)
            dp_y = dy * (s - y_prev) * gy * (1 - sy)  # through g_y = dt sig(p_y)
            dz = dz + dq_y @ Wy
            # z_n = z + g_z (t - z)
            dq_z = dz * gz * (1 - t * t)
            dp_z = dz * (t - z_prev) * gz * (1 - sz)
            dH = torch.cat([dp_y, dp_z, dq_z], dim=1)  # (B, 3d): grads of the hid2hid pre-activations
            dU[:, n, :d], dU[:, n, d : 2 * d] = dp_y, dp_z
            dU[:, n, 2 * d : 3 * d], dU[:, n, 3 * d :] = dq_y, dq_z
            dy = dy * (1 - gy) + dH @ W
            dz = dz * (1 - gz)
        dH_all = torch.cat([dU[..., : 2 * d], dU[..., 3 * d :]], dim=-1)  # (B, L, 3d)
        dW = torch.einsum("blk,bld->kd", dH_all, ys[:, :-1])
        dc = dH_all.sum((0, 1))
        dq_y_all = dU[..., 2 * d : 3 * d]
        dWy = torch.einsum("blk,bld->kd", dq_y_all, zs[:, 1:])
        dby = dq_y_all.sum((0, 1))
        return dU, dW, dc, dWy, dby, dy, dz, None
