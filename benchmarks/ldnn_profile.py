"""Where LDNN's forward+backward time goes: each stage timed alone (forward and backward, medians).

`python benchmarks/ldnn_profile.py --length 4096 [--bidirectional]`, at the speed table's shape
(B=8, H=128, d_state=128, heads=32). Each stage gets a fresh leaf input and a random output gradient, so
the stage times add up to about the whole layer's (the whole layer and the bare FFT floor are timed too).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lindy.bench.speed import build
from lindy.kernels.fft_conv import bidirectional_conv, causal_conv


def _time(fn, rounds: int, clock=time.perf_counter) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * statistics.median(times)


def _stage(fn, *inputs):
    """A closure running fn(*inputs) forward and backward with a fixed random output gradient."""
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    grad = torch.randn_like(fn(*leaves))

    def run():
        fn(*leaves).backward(grad)
        for t in leaves:
            t.grad = None

    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with the process's CPU time (steadier than wall time when others share the cores)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, L, H = args.batch, args.length, 128
    layer = build(f"ldnn:bidirectional={str(args.bidirectional).lower()}", H, L).train()
    floor = build("fft_conv_floor", H, L).train()
    x = torch.randn(B, L, H)
    with torch.no_grad():
        u = layer._heads(x)
        v = layer._lift(u)
        k = layer._kernel(L)
        states = bidirectional_conv(v, k, k) if layer.bidirectional else causal_conv(v, k)
        y = layer._readout(states, u)

    def conv(v, k):
        return bidirectional_conv(v, k, k) if layer.bidirectional else causal_conv(v, k)

    def kernel_run():
        layer._kernel(L).sum().backward()
        layer.zero_grad(set_to_none=True)

    stages = {
        "heads+lift (B u)": _stage(lambda x: layer._lift(layer._heads(x)), x),
        "kernel (S n, L)": kernel_run,
        "conv (B, S n, L)": _stage(conv, v, k),
        "readout (C x + D u)": _stage(layer._readout, states, u),
        "output (GLU)": _stage(layer._output, y),
        "whole layer": _stage(layer, x),
        "floor": _stage(floor, x),
    }
    clock = time.process_time if args.cpu_time else time.perf_counter
    for name, fn in stages.items():
        print(f"{name:22s} {_time(fn, args.rounds, clock):9.2f} ms")
        layer.zero_grad(set_to_none=True)
        floor.zero_grad(set_to_none=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
