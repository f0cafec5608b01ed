"""Layer speed benchmark: forward and forward+backward time, tokens/s and peak memory, beside the floor.

For each layer and length L the input is x: (B, L, H). The floor is a bare causal FFT convolution of the
same shape (rfft/irfft padded to 2L with a fixed (H, L) kernel that needs a gradient): no SSM layer can
beat it. Cases are interleaved round by round in one process, so that machine noise hits all of them
alike; the figure quoted is the median over rounds. Peak memory is measured per case in a fresh
subprocess: on CUDA ``torch.cuda.max_memory_allocated``, on CPU the peak of the resident set sampled
every 0.2 ms during one forward+backward, minus the resident set just before it (after a warm-up pass, so
that one-off allocations of the first call do not count).

Output: one JSON object per line (stdout or --out), then a markdown table.

    python benchmarks/speed.py --layers s4d --lengths 1024 4096 16384 --rounds 5
    python benchmarks/speed.py --layers ldnn ldnn:bidirectional=true stu stu:form=approx --lengths 1024

A case is a registered name with optional constructor overrides (``name:key=value,...``) on top of the
registry's ``bench_kwargs``. The recurrent step's latency (microseconds per token, eval mode, batch B) is
timed for every causal case.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

from lindy._checks import check_count

FLOOR = "fft_conv_floor"


class FFTConvFloor(nn.Module):
    """The floor: y = causal FFT convolution of x (B, L, H) with a learnable (H, L) kernel."""

    def __init__(self, d_model: int, length: int):
        super().__init__()
        self.k = nn.Parameter(torch.randn(d_model, length) / length)

    def forward(self, x):
        n = 2 * x.shape[1]
        u_f = torch.fft.rfft(x.transpose(1, 2), n=n)
        y = torch.fft.irfft(u_f * torch.fft.rfft(self.k, n=n), n=n)[..., : x.shape[1]]
        return y.transpose(1, 2)


def parse_case(spec: str) -> tuple[str, dict]:
    """``"ldnn:bidirectional=true,heads=8"`` -> ("ldnn", {"bidirectional": True, "heads": 8}).

    A case is a registered layer name, optionally followed by constructor overrides of its benchmark
    kwargs (values parsed as YAML scalars), so variants of one family share a table.
    """
    import yaml

    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"a case's overrides must be key=value pairs, got {item!r} in {spec!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def build(spec: str, d_model: int, length: int) -> nn.Module:
    if spec == FLOOR:
        return FFTConvFloor(d_model, length)
    from lindy.layers import LAYERS, build_layer

    name, overrides = parse_case(spec)
    # the constructor arguments of the benchmark shape come from the layer's registry entry
    kwargs = {**(LAYERS[name].bench_kwargs if name in LAYERS else {}), **overrides}
    return build_layer(name, d_model, **kwargs)


def step_latency_us(spec: str, batch: int, d_model: int, device, steps: int = 64) -> float | None:
    """Median microseconds per token of the recurrent ``step`` (eval, no grad); None without one."""
    torch.manual_seed(0)
    module = build(spec, d_model, steps).to(device).eval()
    if not getattr(module, "recurrent", True) or not hasattr(module, "step"):
        return None
    x = torch.randn(batch, steps, d_model, device=device)
    with torch.no_grad():
        state = module.initial_state(batch, device=device)
        module.step(x[:, 0], state)  # warm-up: cached discretisations, builds
        times = []
        for t in range(steps):
            start = time.perf_counter()
            _, state = module.step(x[:, t], state)
            _sync(device)
            times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_once(fn: Callable[[], None], device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def make_case(name, batch, d_model, length, device):
    torch.manual_seed(0)
    module = build(name, d_model, length).to(device).train()
    x = torch.randn(batch, length, d_model, device=device, requires_grad=True)

    def forward():
        with torch.no_grad():
            module(x)

    def forward_backward():
        module(x).square().mean().backward()
        module.zero_grad(set_to_none=True)
        x.grad = None

    return forward, forward_backward


def peak_memory_mb(name, batch, d_model, length, device_name) -> float:
    """Peak memory of one forward+backward, measured in a fresh subprocess (MiB)."""
    code = (
        "import sys, json; sys.argv=['x']; from lindy.bench.speed import _peak_child; "
        f"print(json.dumps(_peak_child({name!r}, {batch}, {d_model}, {length}, {device_name!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_child(name, batch, d_model, length, device_name) -> float:
    device = torch.device(device_name)
    forward, forward_backward = make_case(name, batch, d_model, length, device)
    forward_backward()  # warm-up: lazy initialisation, caches
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward_backward()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return peak_rss_growth_mb(forward_backward)


def peak_rss_growth_mb(fn: Callable[[], object]) -> float:
    """Peak growth of the resident set (MiB) while ``fn()`` runs, sampled every 0.2 ms."""
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(2e-4)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fn()
    done.set()
    sampler.join()
    return (max(peak[0], _rss_bytes()) - base) / 2**20


def run(layers, lengths, batch, d_model, rounds, warmup, device, memory=True):
    rows = []
    for length in lengths:
        names = [FLOOR, *layers]
        cases = {n: make_case(n, batch, d_model, length, device) for n in names}
        times = {n: {"fwd": [], "fwdbwd": []} for n in names}
        for r in range(warmup + rounds):
            for n in names:  # interleaved: every round times every case
                fwd, fwdbwd = cases[n]
                t_fwd, t_fb = time_once(fwd, device), time_once(fwdbwd, device)
                if r >= warmup:
                    times[n]["fwd"].append(t_fwd)
                    times[n]["fwdbwd"].append(t_fb)
        floor_fb = statistics.median(times[FLOOR]["fwdbwd"])
        step_us = {n: None if n == FLOOR else step_latency_us(n, batch, d_model, device) for n in names}
        floor_mem = peak_memory_mb(FLOOR, batch, d_model, length, device.type) if memory else None
        for n in names:
            fwd = statistics.median(times[n]["fwd"])
            fb = statistics.median(times[n]["fwdbwd"])
            if n == FLOOR:
                mem = floor_mem
            else:
                mem = peak_memory_mb(n, batch, d_model, length, device.type) if memory else None
            rows.append(
                dict(
                    layer=n,
                    L=length,
                    B=batch,
                    H=d_model,
                    device=device.type,
                    fwd_ms=round(fwd * 1e3, 2),
                    fwdbwd_ms=round(fb * 1e3, 2),
                    fwd_tokens_per_s=round(batch * length / fwd),
                    fwdbwd_tokens_per_s=round(batch * length / fb),
                    fwdbwd_vs_floor=round(fb / floor_fb, 3),
                    peak_mem_mb=None if mem is None else round(mem, 1),
                    mem_vs_floor=None if mem is None or not floor_mem else round(mem / floor_mem, 3),
                    step_us_per_token=None if step_us[n] is None else round(step_us[n], 1),
                    rounds=rounds,
                )
            )
    return rows


def markdown(rows) -> str:
    head = (
        "| layer | L | fwd ms | fwd+bwd ms | fwd+bwd tokens/s | fwd+bwd / floor | peak MiB | mem / floor "
        "| step us/token |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['L']} | {r['fwd_ms']} | {r['fwdbwd_ms']} | {r['fwdbwd_tokens_per_s']} | "
            f"{r['fwdbwd_vs_floor']} | {r['peak_mem_mb']} | {r['mem_vs_floor']} | "
            f"{r.get('step_us_per_token')} |"
        )
    return "\n".join(lines)


def _count(minimum: int):
    """An argparse type: an int >= ``minimum`` (argparse names the option in its error)."""

    def parse(text: str) -> int:
        try:
            return check_count("value", int(text), minimum=minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {text!r}") from None

    return parse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lindy bench speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", nargs="+", default=["s4d"], help="registered layer names, or 'all'")
    p.add_argument("--lengths", nargs="+", type=_count(1), default=[1024, 4096, 16384])
    p.add_argument("--batch", type=_count(1), default=8)
    p.add_argument("--d-model", type=_count(1), default=128)
    p.add_argument("--rounds", type=_count(1), default=5)
    p.add_argument("--warmup", type=_count(0), default=1)
    p.add_argument("--threads", type=_count(1), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-memory", action="store_true", help="skip the per-case memory subprocesses")
    p.add_argument("--out", help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layers = args.layers
    from lindy.layers import LAYERS

    if layers == ["all"]:
        layers = sorted(LAYERS)

    try:
        unknown = [spec for spec in layers if spec != FLOOR and parse_case(spec)[0] not in LAYERS]
    except ValueError as err:
        p.error(f"--layers: {err}")
    if unknown:
        p.error(
            f"--layers must be registered names {sorted(LAYERS)} (name:key=value,...) or 'all', got {unknown}"
        )
    rows = run(
        layers,
        args.lengths,
        args.batch,
        args.d_model,
        args.rounds,
        args.warmup,
        torch.device(args.device),
        memory=not args.no_memory,
    )
    meta = dict(torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.processor())
    for r in rows:
        line = json.dumps({**r, **meta})
        print(line)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
