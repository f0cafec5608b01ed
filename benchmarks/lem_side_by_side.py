"""LEM on the adding problem: the reference's own script beside ``lindy train experiment=lem/adding``.

The reference (tk-rusch/LEM ``src/adding/adding_task.py``, no licence: run, never copied) is executed as
shipped, in a fresh working folder per run, with only its command-line options changed
(``--seq_length T --max_iter N+1``: it logs the MSE on 1000 fresh sequences after the update of every
iteration i with i % 100 == 0, so its last line is the model after N+1 updates; it seeds nothing, so
every run is a different draw). lindy runs the experiment with ``data.length=T trainer.max_steps=N
seed=s``: the same model (one LEM cell of 128 units, dt 0.0242, Kaiming-normal readout), Adam 2.6e-3,
batch 50, a fresh batch each step; its test MSE is on its fixed 1000 test sequences with the best
validation checkpoint (validated every 100 steps), and its last validation MSE (1000 fixed sequences,
after step N) is stored beside it as the like-for-like of the reference's last line. Both on one thread
(OMP_NUM_THREADS=1).

    python benchmarks/lem_side_by_side.py --reference-dir LEM/src/adding --length 200 --steps 3000 \\
        --seeds 0 1 2 --out benchmarks/results/side_by_side_lem_adding.jsonl

``--reference-dir``: the folder holding ``adding_task.py`` and ``network.py`` of a checkout of tk-rusch/LEM
(commit 833da6b, the one ../shared/bench-references pins). ``--sides`` runs one side only. JSON lines go to
``--out`` (one per run, then one summary per side; runs already in the file are kept and skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("reference", "lindy")


def one_thread_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_reference(ref_dir: Path, length: int, steps: int) -> dict:
    """One run of the reference script as shipped in a scratch folder; its logged test MSEs."""
    for name in ("adding_task.py", "network.py"):
        if not (ref_dir / name).is_file():
            raise FileNotFoundError(f"--reference-dir must hold the reference's {name}; not in {ref_dir}")
    with tempfile.TemporaryDirectory() as work:
        for name in ("adding_task.py", "network.py"):
            shutil.copy(ref_dir / name, work)  # scratch copy to run: the script writes results/ beside it
        start = time.time()
        cmd = [sys.executable, "adding_task.py", "--seq_length", str(length), "--max_iter", str(steps + 1)]
        subprocess.run(cmd, cwd=work, env=one_thread_env(), check=True, capture_output=True)
        wall = time.time() - start
        log = Path(work, "results", f"adding_log_seqlength_{length}.txt").read_text().split()
    curve = [float(v) for v in log]
    return {"test_mse": curve[-1], "curve_every_100": curve, "wall_s": round(wall, 1)}


def run_lindy(length: int, steps: int, seed: int) -> dict:
    """``lindy train experiment=lem/adding`` at this length, steps and seed; its summary and last val MSE."""
    with tempfile.TemporaryDirectory() as work:
        run_dir = Path(work, "run")
        cmd = [
            sys.executable, "-m", "lindy.cli", "train", "experiment=lem/adding", f"data.length={length}",
            f"trainer.max_steps={steps}", f"seed={seed}", "trainer.threads=1", f"trainer.run_dir={run_dir}",
        ]  # fmt: skip
        subprocess.run(cmd, cwd=ROOT, env=one_thread_env(), check=True, capture_output=True)
        summary = json.loads((run_dir / "summary.json").read_text())
        rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    curve = [float(r.split(",")[header.index("val_metric")]) for r in rows[1:]]
    return {
        "test_mse": summary["test"]["mse"],
        "last_val_mse": curve[-1],
        "curve_every_100": curve,
        "wall_s": summary["wall_time_s"],
    }


def summarise(rows: list[dict], side: str) -> dict:
    values = [r["test_mse"] for r in rows if r["side"] == side]
    out = {"summary": side, "n": len(values), "test_mse_mean": statistics.mean(values)}
    out["test_mse_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    if side == "lindy":
        last = [r["last_val_mse"] for r in rows if r["side"] == side]
        out["last_val_mse_mean"] = statistics.mean(last)
        out["last_val_mse_std"] = statistics.stdev(last) if len(last) > 1 else 0.0
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference-dir", type=Path, help="tk-rusch/LEM's src/adding (needed for the reference)")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="lindy seeds")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if "reference" in args.sides and args.reference_dir is None:
        p.error("--reference-dir is required to run the reference side (or pass --sides lindy)")

    key = {"task": "adding", "length": args.length, "steps": args.steps}
    done = []
    if args.out.exists():
        done = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    runs = [r for r in done if "side" in r and all(r.get(k) == v for k, v in key.items())]
    for seed in args.seeds:
        for side in args.sides:
            if any(r["side"] == side and r["seed"] == seed for r in runs):
                continue
            if side == "reference":
                result = run_reference(args.reference_dir, args.length, args.steps)
            else:
                result = run_lindy(args.length, args.steps, seed)
            row = {**key, "side": side, "seed": seed, **result}
            runs.append(row)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{side} seed {seed}: test MSE {row['test_mse']:.3g} ({row['wall_s']:.0f} s)", flush=True)

    summaries = [summarise(runs, side) for side in SIDES if any(r["side"] == side for r in runs)]
    with args.out.open("a") as f:
        for s in summaries:
            f.write(json.dumps({**key, **s}) + "\n")
    print(f"| side | test MSE (mean +- std) | runs | (adding T={args.length}, {args.steps} steps) |")
    print("|---|---:|---:|---|")
    for s in summaries:
        print(f"| {s['summary']} | {s['test_mse_mean']:.3g} +- {s['test_mse_std']:.2g} | {s['n']} | |")


if __name__ == "__main__":
    main()
