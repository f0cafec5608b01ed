"""Speed of the working tree against an earlier revision, interleaved in one run (for refactors).

    python benchmarks/compare_revisions.py --base 9ba935e --layers s4d lssl lem --lengths 1024 4096

The base revision is checked out with ``git worktree`` into a temporary folder. Every round runs one fresh
process per revision (their order alternating from round to round), each importing its own ``lindy`` via
PYTHONPATH and timing forward+backward of every case with ``lindy.bench.speed.make_case`` (the benchmark's
shapes: B=8, H=128 unless given). The figure is the median over rounds of each process's median; the
ratio is head / base, so 1.0 means no change. JSON lines (--out) plus a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, statistics, sys, time, torch, lindy
from lindy.bench.speed import make_case
layers, lengths, batch, d_model, reps, threads = json.loads(sys.argv[1])
torch.set_num_threads(threads)
out = {"lindy": lindy.__file__, "ms": {}}
for length in lengths:
    for name in layers:
        _, fwdbwd = make_case(name, batch, d_model, length, torch.device("cpu"))
        fwdbwd()  # warm-up: kernel builds, caches
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fwdbwd()
            times.append(time.perf_counter() - start)
        out["ms"][f"{name}/{length}"] = 1e3 * statistics.median(times)
print(json.dumps(out))
"""


def run_child(src: Path, config: list) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(config)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark process for {src} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["lindy"].startswith(str(src)):
        raise RuntimeError(f"expected lindy from {src}, the process imported {result['lindy']}")
    return result["ms"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the git revision to compare against")
    p.add_argument("--layers", nargs="+", default=["s4d", "lssl", "lem"])
    p.add_argument("--lengths", nargs="+", type=int, default=[1024, 4096])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3, help="timed forward+backward passes per process")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="append the JSON lines to this file")
    args = p.parse_args(argv)
    config = [args.layers, args.lengths, args.batch, args.d_model, args.reps, args.threads]
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree), args.base],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"base": base_tree / "src", "head": ROOT / "src"}
            samples: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
            for r in range(args.rounds):
                order = ["base", "head"] if r % 2 == 0 else ["head", "base"]
                for rev in order:
                    for case, ms in run_child(trees[rev], config).items():
                        samples[rev].setdefault(case, []).append(ms)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)],
                check=False,
                capture_output=True,
            )
    head_rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows = []
    for case in samples["head"]:
        base_ms = statistics.median(samples["base"][case])
        head_ms = statistics.median(samples["head"][case])
        layer, length = case.split("/")
        rows.append(
            dict(
                layer=layer,
                L=int(length),
                B=args.batch,
                H=args.d_model,
                base=args.base,
                head=f"{head_rev}+worktree",
                base_fwdbwd_ms=round(base_ms, 2),
                head_fwdbwd_ms=round(head_ms, 2),
                head_vs_base=round(head_ms / base_ms, 3),
                base_rounds=[round(x, 1) for x in samples["base"][case]],
                head_rounds=[round(x, 1) for x in samples["head"][case]],
                threads=args.threads,
            )
        )
    for row in rows:
        line = json.dumps(row)
        print(line)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    print("\n| layer | L | base fwd+bwd ms | head fwd+bwd ms | head / base |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['layer']} | {r['L']} | {r['base_fwdbwd_ms']} | {r['head_fwdbwd_ms']} "
            f"| {r['head_vs_base']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
