"""A quick health check of every registered layer: one forward and backward pass on CPU, as a table.

    lindy smoke            # B=4, L=256, H=32

For each layer: output shape, whether the step loop equals forward on a short prefix, the gradient norm
and the wall time. It is what ``make demo`` runs until an experiment is trained instead.
"""

from __future__ import annotations

import argparse
import time

import torch

from lindy.bench.speed import _count
from lindy.layers import LAYERS, build_layer


def smoke_row(name: str, batch: int, length: int, d_model: int) -> dict:
    torch.manual_seed(0)
    layer = build_layer(name, d_model)
    x = torch.randn(batch, length, d_model, requires_grad=True)
    start = time.perf_counter()
    y = layer(x)
    y.square().mean().backward()
    seconds = time.perf_counter() - start
    grad = torch.sqrt(sum(p.grad.square().sum() for p in layer.parameters() if p.grad is not None))
    step_ok = "n/a (bidirectional)"
    if getattr(layer, "recurrent", True):
        layer.eval()
        with torch.no_grad():
            prefix = x[:, :16].detach()
            state, ys = layer.initial_state(batch), []
            for t in range(prefix.shape[1]):
                y_t, state = layer.step(prefix[:, t], state)
                ys.append(y_t)
            err = (torch.stack(ys, 1) - layer(prefix)).abs().max().item()
        step_ok = f"max |diff| {err:.1e}"
    return dict(
        layer=name, shape=tuple(y.shape), grad_norm=float(grad), seconds=seconds, step_vs_forward=step_ok
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lindy smoke", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=_count(1), default=4)
    p.add_argument("--length", type=_count(1), default=256)
    p.add_argument("--d-model", type=_count(1), default=32)
    args = p.parse_args(argv)
    print("| layer | output shape | grad norm | fwd+bwd s | step == forward (16 steps) |")
    print("|---|---|---:|---:|---|")
    for name in sorted(LAYERS):
        r = smoke_row(name, args.batch, args.length, args.d_model)
        cells = [r["layer"], r["shape"], f"{r['grad_norm']:.3g}", f"{r['seconds']:.3f}", r["step_vs_forward"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0
