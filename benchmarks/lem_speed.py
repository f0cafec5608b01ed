"""LEM forward+backward: lindy's scan with hand-written BPTT vs a plain per-step autograd loop.

Three cases on the same shapes (batch 32, d_in 1, d 128 by default), interleaved round by round in one
process; medians over rounds:

- ``lindy``: ``lindy.layers.LEM`` (input projections in one matmul, the recurrence in a tight loop, the
  backward written by hand);
- ``plain_loop``: the cell written the reference's way, time-major, one autograd graph per step;
- ``matmul_floor``: the matmuls no LEM can avoid and nothing else: a loop of the same two matmuls per step
  (y W^T and z Wy^T) forward and the two matching ones per step backward (g W, g Wy), plus the weight
  gradients dW = sum_n dH_n^T y_n and dWy as two single matmuls over all L B rows (the cheapest way to
  form them). ``step_matmuls`` is the per-step loops alone (the floor of earlier tables, without the
  weight gradients).

Memory: the bytes autograd keeps between forward and backward (saved-tensor hooks, each storage once),
which is what back-propagation through time grows with B L d. Output: JSON lines, then a markdown table.

    python benchmarks/lem_speed.py --lengths 784 2000 --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from lindy.layers import LEM


class PlainLEM(nn.Module):
    """The reference's way: a Python loop over time, autograd through every step. x: (L, B, d_in)."""

    def __init__(self, d_input: int, d: int, dt: float):
        super().__init__()
        self.d, self.dt = d, dt
        self.inp2hid = nn.Linear(d_input, 4 * d)
        self.hid2hid = nn.Linear(d, 3 * d)
        self.transform_z = nn.Linear(d, d)

    def forward(self, x):
        y = z = x.new_zeros(x.shape[1], self.d)
        ys = []
        for t in range(x.shape[0]):
            v2, v1, vy, vz = self.inp2hid(x[t]).chunk(4, 1)
            w2, w1, wz = self.hid2hid(y).chunk(3, 1)
            g_y, g_z = self.dt * torch.sigmoid(v2 + w2), self.dt * torch.sigmoid(v1 + w1)
            z = (1 - g_z) * z + g_z * torch.tanh(vz + wz)
            y = (1 - g_y) * y + g_y * torch.tanh(self.transform_z(z) + vy)
            ys.append(y)
        return torch.stack(ys)


def matmul_floor(x, W, Wy):
    """Forward: per step h = y W^T, z Wy^T; backward: per step g W and g Wy (the recurrent chain)."""
    L, B = x.shape[0], x.shape[1]
    d = Wy.shape[0]
    y = z = x.new_zeros(B, d)
    for _ in range(L):
        h = y @ W.t()
        z = h[:, :d]
        y = z @ Wy.t()
    g = x.new_ones(B, 3 * d)
    gz = x.new_ones(B, d)
    for _ in range(L):
        _ = g @ W
        _ = gz @ Wy
    return y


def make_forward(name, batch, d_input, d, length):
    """A closure running one forward with gradients enabled (lindy or plain loop)."""
    torch.manual_seed(0)
    x = torch.randn(batch, length, d_input, requires_grad=True)
    if name == "lindy":
        model = LEM(d, d_input=d_input, dt=0.2)
        return lambda: model(x)
    model = PlainLEM(d_input, d, 0.2)
    xt = x.detach().transpose(0, 1).contiguous().requires_grad_(True)
    return lambda: model(xt)


def make_case(name, batch, d_input, d, length):
    torch.manual_seed(0)
    x = torch.randn(batch, length, d_input)
    if name == "lindy":
        model = LEM(d, d_input=d_input, dt=0.2)
        xr = x.clone().requires_grad_(True)

        def run():
            model(xr).square().mean().backward()

    elif name == "plain_loop":
        model = PlainLEM(d_input, d, 0.2)
        xt = x.transpose(0, 1).contiguous().requires_grad_(True)

        def run():
            model(xt).square().mean().backward()

    else:
        W, Wy = torch.randn(3 * d, d) / d**0.5, torch.randn(d, d) / d**0.5
        xt = x.transpose(0, 1).contiguous()
        states = torch.randn(length * batch, d)
        dH, dQy = torch.randn(length * batch, 3 * d), torch.randn(length * batch, d)

        def run():
            with torch.no_grad():
                matmul_floor(xt, W, Wy)
                if name == "matmul_floor":  # the weight gradients, one matmul each
                    _ = states.t() @ dH
                    _ = states.t() @ dQy

    return run


def saved_mb(name, batch, d_input, d, length) -> float:
    """MiB of tensors autograd keeps for the backward of one forward (storages counted once).

    This is what grows with B L d in back-propagation through time; the matmul floor keeps nothing.
    """
    if name in ("matmul_floor", "step_matmuls"):
        return 0.0
    run_forward = make_forward(name, batch, d_input, d, length)
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run_forward()
    del out
    return sum(storages.values()) / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", nargs="+", type=int, default=[784, 2000])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--d-input", type=int, default=1)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = ["step_matmuls", "matmul_floor", "lindy", "plain_loop"]
    rows = []
    for length in args.lengths:
        runs = {n: make_case(n, args.batch, args.d_input, args.d, length) for n in names}
        times = {n: [] for n in names}
        for r in range(args.rounds + 1):
            for n in names:
                start = time.perf_counter()
                runs[n]()
                if r:  # round 0 is a warm-up
                    times[n].append(time.perf_counter() - start)
        med = {n: statistics.median(t) for n, t in times.items()}
        for n in names:
            rows.append(
                dict(
                    case=n,
                    L=length,
                    B=args.batch,
                    d=args.d,
                    fwdbwd_ms=round(med[n] * 1e3, 1),
                    speedup_vs_plain=round(med["plain_loop"] / med[n], 2),
                    vs_matmul_floor=round(med[n] / med["matmul_floor"], 2),
                    vs_step_matmuls=round(med[n] / med["step_matmuls"], 2),
                    saved_for_backward_mb=round(saved_mb(n, args.batch, args.d_input, args.d, length), 1),
                    threads=args.threads,
                    torch=torch.__version__,
                )
            )
    for r in rows:
        print(json.dumps(r))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")
    print(
        "\n| case | L | fwd+bwd ms | speed-up vs plain loop | / matmul floor | / step matmuls "
        "| saved for backward MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['L']} | {r['fwdbwd_ms']} | {r['speedup_vs_plain']} | "
            f"{r['vs_matmul_floor']} | {r['vs_step_matmuls']} | {r['saved_for_backward_mb']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
