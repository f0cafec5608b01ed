"""AR-STU forward+backward on CPU: the cost of the output autoregression (``ar_y``), C++ loops vs Python.

Cases on the same shapes (batch 8, d_model 128, K 24 filters, max_len = L), interleaved round by round in
one process (the order rotates each round), medians over rounds after one warm-up round:

- ``stu``: ``STU(d, num_filters=K, ar_y=0)``, the layer without the AR term;
- ``ar_stu``: the same layer with ``ar_y=2`` (same other weights, M_y ~ N(0, 0.01^2)), the AR term's time
  loops in C++ (``lindy.kernels.ar_cpu``);
- ``ar_stu_python``: that module with ``LINDY_NO_CPP=1``: the Python loop it replaces;
- ``ar_filter_cpp`` / ``ar_filter_python``: ``lindy.kernels.spectral.ar_filter`` alone on (B, L, d), p = 2.

Forward+backward is ``layer(x).sum().backward()`` with x requiring grad. ``ratio_vs_stu`` is the median
over rounds of the per-round ratio to ``stu`` (pairs measured seconds apart, so slow drifts of a shared
machine's load cancel); ``p25``/``p75`` show the spread over rounds, and the load average before and after
is recorded: on a shared machine quote the ratios, not the milliseconds.

    python benchmarks/stu_ar.py --lengths 1024 4096 --rounds 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from lindy.kernels import ar_cpu, cpp
from lindy.kernels.spectral import ar_filter
from lindy.layers import STU

CASES = ("stu", "ar_stu", "ar_stu_python", "ar_filter_cpp", "ar_filter_python")


def make_cases(batch: int, d: int, k: int, length: int) -> dict:
    """name -> (callable running one forward+backward, whether it runs with the C++ fast paths off)."""
    torch.manual_seed(0)
    plain = STU(d, num_filters=k, max_len=length, ar_y=0)
    torch.manual_seed(0)
    ar = STU(d, num_filters=k, max_len=length, ar_y=2)
    with torch.no_grad():
        ar.M_y.normal_(0.0, 0.01)
    x = torch.randn(batch, length, d, requires_grad=True)
    u = torch.randn(batch, length, d, requires_grad=True)
    m_y = (0.01 * torch.randn(2, d, d)).requires_grad_(True)

    def layer(m):
        return lambda: m(x).sum().backward()

    def bare():
        ar_filter(u, m_y).sum().backward()

    return {
        "stu": (layer(plain), False),
        "ar_stu": (layer(ar), False),
        "ar_stu_python": (layer(ar), True),
        "ar_filter_cpp": (bare, False),
        "ar_filter_python": (bare, True),
    }


def timed(fn, python: bool) -> float:
    if python:
        os.environ[cpp.DISABLE_ENV] = "1"
    else:
        os.environ.pop(cpp.DISABLE_ENV, None)
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        os.environ.pop(cpp.DISABLE_ENV, None)


def quantile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=4, method="inclusive")[int(q * 4) - 1]
        if len(values) > 1
        else values[0]
    )


def measure(args, length: int) -> list[dict]:
    cases = make_cases(args.batch, args.d, args.num_filters, length)
    times: dict[str, list[float]] = {n: [] for n in CASES}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds + 1):
        order = CASES[r % len(CASES) :] + CASES[: r % len(CASES)]
        for name in order:
            t = timed(*cases[name])
            if r:  # round 0 is a warm-up (filters, spectra, first build of the extension)
                times[name].append(t)
    load_after = os.getloadavg()[0]
    fast_path = "built" if ar_cpu.ops() is not None else cpp.fast_path_status()[ar_cpu.NAME]
    rows = []
    for name in CASES:
        ts = times[name]
        base = "stu" if name.startswith(("stu", "ar_stu")) else "ar_filter_python"
        ratios = [a / b for a, b in zip(ts, times[base])]
        rows.append(
            dict(
                case=name,
                L=length,
                B=args.batch,
                d=args.d,
                K=args.num_filters,
                fwdbwd_ms=round(1e3 * statistics.median(ts), 2),
                p25_ms=round(1e3 * quantile(ts, 0.25), 2),
                p75_ms=round(1e3 * quantile(ts, 0.75), 2),
                ratio_vs=base,
                ratio=round(statistics.median(ratios), 3),
                ratio_min=round(min(ratios), 3),
                ratio_max=round(max(ratios), 3),
                rounds=args.rounds,
                threads=torch.get_num_threads(),
                load_avg_before=round(load_before, 2),
                load_avg_after=round(load_after, 2),
                fast_path=fast_path,
                torch=torch.__version__,
            )
        )
    return rows


def markdown(rows: list[dict]) -> str:
    out = [
        "| case | L | fwd+bwd ms (p25-p75) | ratio (per-round median, min-max) | vs | load avg |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['case']} | {r['L']} | {r['fwdbwd_ms']} ({r['p25_ms']}-{r['p75_ms']}) "
            f"| {r['ratio']} ({r['ratio_min']}-{r['ratio_max']}) | {r['ratio_vs']} "
            f"| {r['load_avg_before']} -> {r['load_avg_after']} |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", nargs="+", type=int, default=[1024, 4096])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--num-filters", type=int, default=24)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/stu_ar_cpu.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [row for length in args.lengths for row in measure(args, length)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
