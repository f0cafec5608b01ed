"""Every family on the same offline tasks at the same parameter count and budget: a task x family table.

    python benchmarks/quality.py --out benchmarks/results/quality_cpu            # the whole suite
    python benchmarks/quality.py --tasks adding lds --families s4d ldnn --seeds 0 --out /tmp/q/quality
    python benchmarks/quality.py --seeds 0 --steps 300 --report --out benchmarks/results/quality_cpu

Each cell is one ``lindy train`` run in a subprocess (``experiment=quality/base data=<task> layer=<family>``
plus the task's reduced sizes), its width chosen so that the model has about ``--params`` parameters (the
count is stated per cell), trained for ``--steps`` optimiser steps at batch ``--batch``; its test metric is
read from the run's summary.json. Results are JSON lines in ``<out>.jsonl``; a cell already there is not
run again, so a killed suite resumes where it stopped (a cell killed halfway resumes from its own
``last.pt`` in ``<runs>/<task>/<family>/seed<k>`` through ``trainer.resume=auto``). A row records its
budget (steps, batch, parameter target) and its task's data options; only rows of the current budget and
task definitions count as done and enter the table (mean and spread over seeds, parameters and median wall
time per run, in ``<out>.md``) and the heat-map of the normalised scores (``<out>.png``), so one file can
hold runs of several budgets without mixing them. ``--report`` only tabulates the cells already there (of
the given budget, tasks, families and seeds), running none.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lindy._checks import check_count

#: task -> (data group, data overrides at the suite's reduced sizes)
TASKS: dict[str, tuple[str, dict]] = {
    "smnist_embedded": ("smnist_embedded", {}),
    "adding": ("adding", {"length": 1000, "n_train": 2000, "n_val": 200, "n_test": 200}),
    # the STU paper's marginally stable system: every A_ii = +-0.9999, B 4 x 3, C 3 x 4, D diagonal
    "lds": (
        "lds",
        {"kind": "signs", "d_state": 4, "d_input": 3, "d_output": 3, "spectral_radius": 0.9999}
        | {"length": 500, "n_train": 1024, "n_val": 128, "n_test": 128},
    ),
    "selective_copying": (
        "selective_copying",
        {"length": 256, "n_memorize": 8, "vocab": 8, "n_train": 2000, "n_val": 200, "n_test": 200},
    ),
    "induction_heads": ("induction_heads", {"length": 128, "n_train": 2000, "n_val": 200, "n_test": 200}),
    "listops_generated": (
        "listops_generated",
        {"n_train": 2000, "n_val": 200, "n_test": 200, "min_length": 100, "max_length": 400, "max_depth": 6},
    ),
    "pathfinder_generated": ("pathfinder_generated", {"n_train": 2000, "n_val": 200, "n_test": 200}),
}

#: family -> (layer group, layer overrides); the width comes from the parameter budget
FAMILIES: dict[str, tuple[str, dict]] = {
    "s4d": ("s4d", {"d_state": 64}),
    "lssl": ("lssl", {"d_state": 64}),
    "lem": ("lem", {}),
    "ldnn": ("ldnn", {"d_state": 64, "heads": 8}),
    "stu": ("stu", {"num_filters": 24}),
    "stu_approx": ("stu", {"num_filters": 24, "form": "approx"}),
    "spiking_ssm": ("spiking_ssm", {"d_state": 64}),
}
N_LAYERS = 4
WIDTHS = tuple(range(8, 257, 8))  # multiples of the largest head count used (LDNN: 8)


def _overrides(prefix: str, values: dict) -> list[str]:
    return [f"{prefix}.{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in values.items()]


def cell_overrides(task: str, family: str, width: int, steps: int, batch: int, seed: int) -> list[str]:
    data, data_kw = TASKS[task]
    layer, layer_kw = FAMILIES[family]
    return [
        "experiment=quality/base",
        f"data={data}",
        f"layer={layer}",
        *_overrides("data", data_kw),
        *_overrides("layer", layer_kw),
        f"model.d_model={width}",
        f"model.n_layers={N_LAYERS}",
        f"trainer.max_steps={steps}",
        f"loader.batch_size={batch}",
        f"seed={seed}",
        f"name=quality/{task}/{family}",
    ]


@functools.cache
def task_info(task: str):
    """The TaskInfo of a task at the suite's sizes (widths and classes decide the parameter count)."""
    from lindy.data.base import build_data

    data, data_kw = TASKS[task]
    return build_data(data, **data_kw).info


def parameter_count(task: str, family: str, width: int) -> int:
    """Parameters of the cell's model, built from its composed config."""
    from lindy.models import build_model
    from lindy.train.config import compose_config
    from lindy.train.loop import model_config

    cfg = compose_config(cell_overrides(task, family, width, 1, 1, 0))
    model = build_model(model_config(cfg), task_info(task))
    return sum(p.numel() for p in model.parameters())


def match_width(task: str, family: str, target: int) -> tuple[int, int]:
    """(width, parameters) of the width in WIDTHS whose model is closest to ``target`` parameters."""
    counts = {w: parameter_count(task, family, w) for w in WIDTHS}
    width = min(counts, key=lambda w: abs(counts[w] - target))
    return width, counts[width]


def run_cell(task, family, seed, args) -> dict:
    width, params = match_width(task, family, args.params)
    run_dir = args.runs / task / family / f"seed{seed}"
    cmd = [
        sys.executable,
        "-m",
        "lindy.train",
        *cell_overrides(task, family, width, args.steps, args.batch, seed),
        f"trainer.run_dir={run_dir}",
        "trainer.resume=auto",
        "trainer.tensorboard=false",
        "trainer.progress=false",
        f"trainer.threads={args.threads}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row = dict(task=task, family=family, seed=seed, width=width, params=params, **budget(task, args))
    row["wall_s"] = round(time.perf_counter() - start, 1)
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return row
    summary = json.loads((run_dir / "summary.json").read_text())
    metric = summary["metric"]
    row.update(metric=metric, score=summary["test"][metric], higher_is_better=metric == "accuracy")
    return row


def budget(task: str, args) -> dict:
    """What makes two cells of a task and family comparable: steps, batch, parameter target, data options."""
    return dict(steps=args.steps, batch=args.batch, params_target=args.params, data=TASKS[task][1])


def load_rows(path: Path, args=None) -> list[dict]:
    """The rows of ``path``; with ``args``, only those of its budget and the current task definitions."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if args is None:
        return rows
    current = [r for r in rows if r["task"] in TASKS]
    return [r for r in current if all(r.get(k) == v for k, v in budget(r["task"], args).items())]


def scored_cells(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """The rows that have a score, grouped by (task, family): one list of seeds per table cell."""
    cells = {}
    for r in rows:
        if "score" in r:
            cells.setdefault((r["task"], r["family"]), []).append(r)
    return cells


def table(rows: list[dict], tasks, families) -> str:
    """Markdown: one row per task, one column per family, mean +- spread (population std) over seeds."""
    cells = scored_cells(rows)
    lines = ["| task (metric) | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]
    for task in tasks:
        metric = next((r["metric"] for (t, _), rs in cells.items() if t == task for r in rs), "")
        values = []
        for family in families:
            rs = cells.get((task, family), [])
            if not rs:
                values.append("")
                continue
            scores = [r["score"] for r in rs]
            spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
            mean = statistics.mean(scores)
            wall = statistics.median(r["wall_s"] for r in rs)
            values.append(
                f"{mean:.4g} +- {spread:.2g} ({len(scores)} seeds, {rs[0]['params']:,} params, {wall:.0f} s)"
            )
        lines.append(f"| {task} ({metric}) | " + " | ".join(values) + " |")
    return "\n".join(lines)


def normalised_grid(rows: list[dict], tasks, families):
    """(grid, means), each tasks x families: per task 1 = the best family's mean, 0 = the worst's.

    A task whose families all tie (every one at chance, say) gets 0.5 throughout: neither best nor worst.
    Cells without a score are NaN in both.
    """
    import numpy as np

    cells = scored_cells(rows)
    grid = np.full((len(tasks), len(families)), np.nan)
    means = np.full_like(grid, np.nan)
    for i, task in enumerate(tasks):
        for j, family in enumerate(families):
            if (task, family) in cells:
                means[i, j] = statistics.mean(r["score"] for r in cells[task, family])
        row = means[i][~np.isnan(means[i])]
        if not row.size:
            continue
        higher = next(rs[0]["higher_is_better"] for (t, _), rs in cells.items() if t == task)
        lo, hi = row.min(), row.max()
        norm = np.where(np.isnan(means[i]), np.nan, 0.5) if hi == lo else (means[i] - lo) / (hi - lo)
        grid[i] = norm if higher else 1.0 - norm
    return grid, means


def heatmap(rows: list[dict], tasks, families, path: Path) -> None:
    """The normalised grid as colours, each cell labelled with its mean score over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid, means = normalised_grid(rows, tasks, families)
    fig, ax = plt.subplots(figsize=(1.3 * len(families) + 2, 0.6 * len(tasks) + 1.5))
    ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), m in np.ndenumerate(means):
        if not np.isnan(m):
            ax.text(
                j, i, f"{m:.4g}", ha="center", va="center", fontsize=8, color="w" if grid[i, j] < 0.5 else "k"
            )
    ax.set_xticks(range(len(families)), families, rotation=30, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("mean test score; colour per task: 1 = best family, 0 = worst, 0.5 = all tie")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--params", type=int, default=100_000, help="parameter budget per model")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per run")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--out", type=Path, required=True, help="prefix of <out>.jsonl, <out>.md and <out>.png")
    p.add_argument("--runs", type=Path, default=Path("runs/quality"), help="folder of the cells' run folders")
    p.add_argument("--report", action="store_true", help="only tabulate the cells already in <out>.jsonl")
    args = p.parse_args(argv)
    for name in ("params", "steps", "batch", "threads"):
        check_count(f"--{name}", getattr(args, name))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = args.out.with_name(args.out.name + ".jsonl")
    done = {(r["task"], r["family"], r["seed"]) for r in load_rows(results, args) if "score" in r}
    for task in [] if args.report else args.tasks:
        for family in args.families:
            for seed in args.seeds:
                if (task, family, seed) in done:
                    continue
                row = run_cell(task, family, seed, args)
                print(json.dumps(row), flush=True)
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [r for r in load_rows(results, args) if r["task"] in args.tasks and r["family"] in args.families]
    rows = [r for r in rows if r["seed"] in args.seeds]
    if args.report:  # the tasks that have cells, in the suite's order
        args.tasks = [t for t in args.tasks if any(r["task"] == t for r in rows)]
    text = table(rows, args.tasks, args.families)
    args.out.with_name(args.out.name + ".md").write_text(text + "\n")
    if args.tasks:  # nothing to draw otherwise
        heatmap(rows, args.tasks, args.families, args.out.with_name(args.out.name + ".png"))
    print(text)
    return 0 if all("score" in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
