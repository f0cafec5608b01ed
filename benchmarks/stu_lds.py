"""STU's spectral term distilled into an LDS (SpectraLDS): fit error, output error, step latency and memory.

Three sections, one process, CPU:

- ``fit``: ``lindy.kernels.spectral.spectral_lds`` from scratch (filters from their cache, the LDS not):
  the per-filter MSE over the max_len taps (largest, median, smallest over the bank's 2K filters), the
  largest |readout|, the fit's time, and the rms of the LDS's impulse responses on [L, 2L) (the tail the
  exact filters do not have, which streaming past max_len sees), per state size;
- ``output``: ``STU(recurrent="lds")``'s step loop over L = max_len tokens against the exact forward
  (small B and d), float64 and float32, both forms: max |dy| / max |y| and rms(dy) / rms(y);
- ``latency``: per-token cost at B, d, K, max_len of the serving shapes: ``step`` with the window
  (``recurrent="exact"``), ``step`` with the LDS, and a forward over the whole prefix of max_len tokens
  (what a model without a recurrent form pays per generated token). Medians; memory is the state's bytes
  and the peak RSS growth during one call (sampled).

JSON lines go to ``--out``; a markdown table is printed.

    python benchmarks/stu_lds.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from lindy.bench.speed import peak_rss_growth_mb
from lindy.kernels import spectral
from lindy.layers import STU


def median_ms(fn, rounds: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def fit_rows(max_len: int, k: int, states: list[int]) -> list[dict]:
    rows = []
    for n in states:
        spectral.clear_memory_cache()  # the filters come back from disk, the LDS is fitted again
        spectral.spectral_filters(max_len, k)
        start = time.perf_counter()
        fit = spectral.spectral_lds(max_len, k, state_size=n, disk=False)
        seconds = time.perf_counter() - start
        tail = spectral.lds_impulse(fit.eigenvalues, fit.readout, 2 * max_len)[max_len:]
        mse = fit.mse.sort().values
        rows.append(
            dict(
                section="fit",
                max_len=max_len,
                K=k,
                state=n,
                mse_max=mse[-1].item(),
                mse_median=mse[len(mse) // 2].item(),
                mse_min=mse[0].item(),
                readout_max=fit.readout.abs().max().item(),
                fit_s=round(seconds, 3),
                tail_rms=tail.square().mean().sqrt().item(),
                filter_rms=spectral.spectral_filters(max_len, k).square().mean().sqrt().item(),
            )
        )
    return rows


def output_rows(max_len: int, k: int, state: int, batch: int, d: int) -> list[dict]:
    rows = []
    for form in ("exact", "approx"):
        for dtype in (torch.float64, torch.float32):
            torch.manual_seed(0)
            m = STU(
                d, num_filters=k, max_len=max_len, form=form, output="none", recurrent="lds", lds_state=state
            )
            m = m.to(dtype).eval()
            x = torch.randn(batch, max_len, d, dtype=dtype)
            with torch.no_grad():
                y = m(x)
                s, ys = m.initial_state(batch), []
                for t in range(max_len):
                    y_t, s = m.step(x[:, t], s)
                    ys.append(y_t)
                dy = (torch.stack(ys, 1) - y).double()
            y = y.double()
            rows.append(
                dict(
                    section="output",
                    form=form,
                    dtype=str(dtype).removeprefix("torch."),
                    L=max_len,
                    B=batch,
                    d=d,
                    K=k,
                    state=state,
                    max_rel=(dy.abs().max() / y.abs().max()).item(),
                    rms_rel=(dy.square().mean().sqrt() / y.square().mean().sqrt()).item(),
                )
            )
    return rows


def state_mb(state) -> float:
    tensors = state if isinstance(state, tuple) else (state,)
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def prefix_call(m: STU, x: torch.Tensor):
    """One token by recomputing the forward over the whole prefix."""

    def call():
        m(x)[:, -1]

    return call


def step_call(m: STU, x: torch.Tensor):
    """One step from the state after x[:, :-1] (a full window), the state kept in a box."""
    box = [m.forward_with_state(x[:, :-1], m.initial_state(x.shape[0]))[1]]

    def call():
        box[0] = m.step(x[:, -1], box[0])[1]

    return call, box


def latency_rows(max_len: int, k: int, state: int, batch: int, d: int, rounds: int) -> list[dict]:
    rows = []
    x = torch.randn(batch, max_len, d)
    for form in ("exact", "approx"):
        for mode in ("exact", "lds", "prefix-forward"):
            torch.manual_seed(0)
            recurrent = "lds" if mode == "lds" else "exact"
            m = STU(
                d,
                num_filters=k,
                max_len=max_len,
                form=form,
                output="none",
                recurrent=recurrent,
                lds_state=state,
            ).eval()
            with torch.no_grad():
                if mode == "prefix-forward":
                    call = prefix_call(m, x)
                    mem_state = x.numel() * x.element_size() / 2**20  # the prefix it must keep
                    ms = median_ms(call, max(1, rounds // 5), warmup=1)
                else:
                    call, state_box = step_call(m, x)
                    mem_state = state_mb(state_box[0])
                    ms = median_ms(call, rounds)
                peak = peak_rss_growth_mb(call)
            rows.append(
                dict(
                    section="latency",
                    form=form,
                    mode=mode,
                    max_len=max_len,
                    B=batch,
                    d=d,
                    K=k,
                    state=state if mode == "lds" else None,
                    ms_per_token=round(ms, 3),
                    state_mb=round(mem_state, 3),
                    peak_rss_mb=round(peak, 1),
                    threads=torch.get_num_threads(),
                    torch=torch.__version__,
                )
            )
    return rows


def markdown(rows: list[dict]) -> str:
    out = [
        "| max_len | K | state | MSE max | MSE median | MSE min | max readout | fit s | tail rms "
        "/ filter rms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["section"] == "fit"):
        out.append(
            f"| {r['max_len']} | {r['K']} | {r['state']} | {r['mse_max']:.2e} | {r['mse_median']:.2e} "
            f"| {r['mse_min']:.2e} | {r['readout_max']:.1f} | {r['fit_s']:.2f} "
            f"| {r['tail_rms']:.2e} / {r['filter_rms']:.2e} |"
        )
    out += [
        "",
        "| form | dtype | L | B | d | state | max abs err / max abs y | rms err / rms y |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["section"] == "output"):
        out.append(
            f"| {r['form']} | {r['dtype']} | {r['L']} | {r['B']} | {r['d']} | {r['state']} "
            f"| {r['max_rel']:.2e} | {r['rms_rel']:.2e} |"
        )
    out += [
        "",
        "| form | per token | max_len | B | d | ms / token | state (MiB) | peak RSS growth (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"exact": "step, window (exact)", "lds": "step, LDS", "prefix-forward": "forward over prefix"}
    for r in (r for r in rows if r["section"] == "latency"):
        out.append(
            f"| {r['form']} | {names[r['mode']]} | {r['max_len']} | {r['B']} | {r['d']} "
            f"| {r['ms_per_token']:.2f} | {r['state_mb']:.2f} | {r['peak_rss_mb']:.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-len", type=int, default=8192)
    p.add_argument("--num-filters", type=int, default=24)
    p.add_argument("--state", type=int, default=160)
    p.add_argument("--fit-states", type=int, nargs="+", default=[40, 80, 160, 320])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--quality-batch", type=int, default=1)
    p.add_argument("--quality-d", type=int, default=8)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/stu_lds_cpu.jsonl")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = fit_rows(args.max_len, args.num_filters, args.fit_states)
    rows += output_rows(args.max_len, args.num_filters, args.state, args.quality_batch, args.quality_d)
    rows += latency_rows(args.max_len, args.num_filters, args.state, args.batch, args.d, args.rounds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
