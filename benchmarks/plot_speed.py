"""Tokens/s of forward+backward against L, one line per case, from speed.py's JSON lines (log axes).

cd benchmarks/results && python ../plot_speed.py speed_families_cpu.jsonl speed_families_cpu.png
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(rows: list[dict], out: str) -> None:
    series = defaultdict(list)
    for r in rows:
        series[r["layer"]].append((r["L"], r["fwdbwd_tokens_per_s"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in series.items():
        points.sort()
        style = dict(color="black", linestyle="--") if name == "fft_conv_floor" else {}
        ax.plot(*zip(*points), marker="o", label=name, **style)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("forward+backward tokens/s")
    first = rows[0]
    ax.set_title(f"B={first['B']}, H={first['H']}, {first['device']}, {first.get('threads', '?')} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python benchmarks/plot_speed.py RESULTS.jsonl OUT.png")
    with open(sys.argv[1]) as f:
        plot([json.loads(line) for line in f if line.strip()], sys.argv[2])
