"""The LEM recurrence over a whole sequence, with a hand-written backward (BPTT through saved gates).

Inputs: x (B, L, d_in), inp2hid (V: 4d x d_in, b; rows [V2 | V1 | Vy | Vz]), hid2hid (W: 3d x d, rows
[W2 | W1 | Wz], bias c), transform_z (Wy: d x d, bias by), the initial state y_0, z_0 and the step dt.
The input projections, time-major, reordered and with every bias folded in (one matmul in the Python loop,
made step by step in the C++ one):

    G_n = [p_y | p_z | q_z | q_y] = [V2 | V1 | Vz | Vy] u_n + [b2 + c2 | b1 + c1 | bz + cz | by' + by]

and per step (y = y_{n-1}, z = z_{n-1}):

    [p_y | p_z | q_z] += W y                      (one addmm)
    z_n = z + dt sig(p_z) (tanh q_z - z)
    q_y += Wy z_n                                 (one addmm)
    y_n = y + dt sig(p_y) (tanh q_y - y)

The forward overwrites G with [sig p_y | sig p_z | tanh q_z | tanh q_y], all the backward needs beside the
states; the backward writes the gradients of the pre-activations into a buffer shaped alike (a = dt sig(p)):

    dq_y = dy a_y (1 - tanh^2 q_y),  dp_y = dy a_y (1 - sig p_y)(tanh q_y - y),   dz += dq_y Wy,
    dq_z = dz a_z (1 - tanh^2 q_z),  dp_z = dz a_z (1 - sig p_z)(tanh q_z - z),
    dy <- dy (1 - a_y) + [dp_y | dp_z | dq_z] W,   dz <- dz (1 - a_z).

Weight and input gradients are matmuls over the L B rows of those gradients. Saved for backward: G
(4 B L d) and the states (2 B L d), no autograd graph per step. On CPU (float32/float64) both loops run in
C++ (``lindy.kernels.lem_cpu``): the threads split the batch and each runs the whole loop on its rows,
the backward folding its gradients into per-thread weight gradients every ~1 MB of steps (no (L, B, 4d)
gradient buffer), and tanh q is taken as 2 sig(2q) - 1 (one vectorised sigmoid
for [p_y | p_z | q_z]; an absolute error of half an ulp of 1); elsewhere, or without a compiler, the same
loops run in Python with torch.tanh.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lindy.kernels import lem_cpu, memory

__all__ = ["LEMScan", "reorder"]

# up to this input width the C++ loop makes each step's projections itself (the step's G rows are then
# written once, in cache); wider inputs are projected by one large matmul before the loop
PER_STEP_PROJECTION_MAX_D_IN = 16
# the C++ backward folds its per-step gradients into the weight gradients every this many bytes of them
BACKWARD_TILE_BYTES = 1 << 20


def reorder(d: int, device=None) -> Tensor:
    """Row order taking inp2hid's chunks [V2 | V1 | Vy | Vz] to G's [V2 | V1 | Vz | Vy] (its own inverse)."""
    idx = torch.arange(4 * d, device=device)
    return torch.cat([idx[: 2 * d], idx[3 * d :], idx[2 * d : 3 * d]])


def _native(t: Tensor):
    """The C++ ops when they apply to this tensor (CPU, float32/float64), else None."""
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return None
    return lem_cpu.ops()


def _forward_loop(G: Tensor, W: Tensor, Wy: Tensor, ys: Tensor, zs: Tensor, dt: float) -> None:
    d = W.shape[1]
    Wt, Wyt = W.t(), Wy.t()
    for n in range(G.shape[0]):
        g = G[n]
        g[:, : 3 * d].addmm_(ys[n], Wt)
        g[:, : 2 * d].sigmoid_()
        tz = g[:, 2 * d : 3 * d].tanh_()
        torch.addcmul(zs[n], g[:, d : 2 * d], tz - zs[n], value=dt, out=zs[n + 1])
        ty = g[:, 3 * d :].addmm_(zs[n + 1], Wyt).tanh_()
        torch.addcmul(ys[n], g[:, :d], ty - ys[n], value=dt, out=ys[n + 1])


def _gate_backward(dx: Tensor, s: Tensor, t: Tensor, ds: Tensor, dtt: Tensor, x: Tensor, dt: float) -> Tensor:
    """Grads of o = x + a (t - x), a = dt s, into ds (pre-sigmoid), dtt (pre-tanh); returns dx (1 - a)."""
    a = dt * s
    torch.mul(dx * a, 1 - t * t, out=dtt)
    torch.mul(dx * a * (1 - s), t - x, out=ds)
    return dx * (1 - a)


def _backward_loop(G, dG, dYt, W, Wy, ys, zs, dy, dz, dt) -> tuple[Tensor, Tensor]:
    d = W.shape[1]
    for n in range(G.shape[0] - 1, -1, -1):
        g, dg = G[n], dG[n]
        carry = _gate_backward(dy + dYt[n], g[:, :d], g[:, 3 * d :], dg[:, :d], dg[:, 3 * d :], ys[n], dt)
        dz = torch.addmm(dz, dg[:, 3 * d :], Wy)
        sz, tz = slice(d, 2 * d), slice(2 * d, 3 * d)
        dz = _gate_backward(dz, g[:, sz], g[:, tz], dg[:, sz], dg[:, tz], zs[n], dt)
        dy = torch.addmm(carry, dg[:, : 3 * d], W)
    return dy, dz


class LEMScan(torch.autograd.Function):
    """(x, V, b, W, c, Wy, by, y0, z0, dt) -> (Y: (B, L, d) all y_n, y_L, z_L)."""

    @staticmethod
    def forward(ctx, x, V, b, W, c, Wy, by, y0, z0, dt: float):
        B, L, d_in = x.shape
        d = W.shape[1]
        perm = reorder(d, x.device)
        Vp = V[perm]
        x_rows = x.transpose(0, 1).reshape(L * B, d_in)  # time-major rows
        bias = b[perm] + torch.cat([c, by])
        W, Wy = W.contiguous(), Wy.contiguous()
        # the saved buffers (6 B L d) are the forward's main memory traffic: huge pages halve their cost
        ys = memory.empty(L + 1, B, d, dtype=x.dtype, device=x.device, reuse=True)
        zs = memory.empty(L + 1, B, d, dtype=x.dtype, device=x.device, reuse=True)
        G = memory.empty(L, B, 4 * d, dtype=x.dtype, device=x.device, reuse=True)
        ys[0], zs[0] = y0, z0
        native = _native(x)
        if native is not None:
            # the C++ loop takes tanh(q) = 2 sigmoid(2q) - 1: the q columns of G and q rows of W doubled
            scale = torch.ones(4 * d, 1, dtype=x.dtype, device=x.device)
            scale[2 * d :] = 2
            VfT, bias_f = (Vp * scale).t().contiguous(), (bias * scale[:, 0]).contiguous()
            WfT, WyfT = (W * scale[: 3 * d]).t().contiguous(), (2 * Wy).t().contiguous()
            if d_in <= PER_STEP_PROJECTION_MAX_D_IN:  # narrow inputs: projected inside the loop, in cache
                native.forward(x_rows.contiguous(), VfT, bias_f, G, WfT, WyfT, ys, zs, dt)
            else:  # wide inputs: one large matmul first (fast), the loop gets no input rows
                torch.addmm(bias_f, x_rows, VfT, out=G.view(L * B, 4 * d))
                native.forward(x_rows[:, :0].contiguous(), VfT[:0], bias_f, G, WfT, WyfT, ys, zs, dt)
        else:
            torch.addmm(bias, x_rows, Vp.t(), out=G.view(L * B, 4 * d))
            _forward_loop(G, W, Wy, ys, zs, dt)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x_rows, Vp, W, Wy, G, ys, zs)
        ctx.dt = dt
        return ys[1:].transpose(0, 1), ys[L], zs[L]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dY: Tensor, dy_last: Tensor, dz_last: Tensor):
        x_rows, Vp, W, Wy, G, ys, zs = ctx.saved_tensors
        L, B, four_d = G.shape
        d = four_d // 4
        dYt = dY.transpose(0, 1)
        if dYt.stride(-1) != 1:
            dYt = dYt.contiguous()
        dy = dy_last.clone(memory_format=torch.contiguous_format)  # unused outputs arrive as zeros
        dz = dz_last.clone(memory_format=torch.contiguous_format)
        native = _native(G)
        if native is not None:
            # blocked: the per-step gradients are folded into the outputs every `block` steps (~1 MB tile)
            block = max(1, BACKWARD_TILE_BYTES // (G[0].numel() * G.element_size()))
            dW, dWy, db_g = torch.zeros_like(W), torch.zeros_like(Wy), G.new_zeros(four_d)
            dx_rows, dVp = torch.empty_like(x_rows), torch.zeros_like(Vp)
            native.backward(
                G, dYt, W, Wy, ys, zs, x_rows, Vp, dy, dz, dW, dWy, db_g, dx_rows, dVp, ctx.dt, block
            )
        else:
            dG = torch.empty_like(G)
            dy, dz = _backward_loop(G, dG, dYt, W, Wy, ys, zs, dy, dz, ctx.dt)
            dG = dG.view(L * B, four_d)  # the gradients of [p_y | p_z | q_z | q_y]
            dW = dG[:, : 3 * d].t() @ ys[:-1].reshape(L * B, d)
            dWy = dG[:, 3 * d :].t() @ zs[1:].reshape(L * B, d)
            db_g = dG.sum(0)
            dx_rows, dVp = dG @ Vp, dG.t() @ x_rows
        perm = reorder(d, G.device)
        dx = dx_rows.view(L, B, -1).transpose(0, 1)
        return dx, dVp[perm], db_g[perm], dW, db_g[: 3 * d], dWy, db_g[3 * d :], dy, dz, None
