"""What a run leaves in its folder: metrics.csv, TensorBoard events, PNG curves and summary.json.

A model with spiking layers also logs its firing rates, sparsity and energy estimate (``log_sparsity``);
summary.json then holds the test split's under "sparsity".

Only rank 0 writes. metrics.csv gets one row per evaluation (a resumed run continues the same file, from
the row of its checkpoint's step); plots are redrawn from it with matplotlib's Agg backend. metrics.csv,
curves.png and summary.json are replaced atomically (``lindy._atomic``): a crash leaves the old file or
the new one. TensorBoard's event files are append-only streams and are written as such.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

from lindy._atomic import atomic_write, atomic_write_text

FIELDS = ["epoch", "step", "lr", "train_loss", "val_loss", "val_metric", "tokens_per_s", "elapsed_s"]


class RunRecords:
    def __init__(self, run_dir: Path, metric: str, tensorboard: bool = True, wandb: dict | None = None):
        self.run_dir, self.metric = run_dir, metric
        self.csv_path = run_dir / "metrics.csv"
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.wandb = None
        if wandb:  # optional extra (`pip install wandb`), off by default
            try:
                import wandb as wandb_module
            except ImportError as err:
                raise ImportError(
                    "trainer.wandb is set but wandb is not installed: pip install wandb"
                ) from err
            self.wandb = wandb_module.init(dir=str(run_dir), **wandb)

    def log_eval(self, row: dict) -> None:
        old = self.csv_path.read_bytes() if self.csv_path.exists() else b""
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=FIELDS)
        if not old:
            w.writeheader()
        w.writerow({k: row.get(k) for k in FIELDS})
        new = buf.getvalue().encode("utf-8")
        atomic_write(self.csv_path, lambda tmp: tmp.write_bytes(old + new))
        if self.writer is not None:
            step = row["step"]
            for key in ("lr", "train_loss", "val_loss", "tokens_per_s"):
                if row.get(key) is not None:
                    self.writer.add_scalar(key, row[key], step)
            self.writer.add_scalar(f"val_{self.metric}", row["val_metric"], step)
            self.writer.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if v is not None}, step=row["step"])
        self.plot()

    def log_sparsity(self, step: int, report: dict, split: str = "val") -> None:
        """TensorBoard scalars of a spiking model's ``evaluate`` report: each layer's firing rate, the
        network sparsity and the energy estimates (per example, in joules)."""
        if self.writer is None:
            return
        for name, rate in report["firing_rate"].items():
            self.writer.add_scalar(f"{split}_firing_rate/{name}", rate, step)
        for key in ("sparsity", "energy_ann_j", "energy_snn_j"):
            if report.get(key) is not None:
                self.writer.add_scalar(f"{split}_{key}", report[key], step)
        self.writer.flush()

    def log_train(self, step: int, loss: float, lr: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train_loss_step", loss, step)
            self.writer.add_scalar("lr_step", lr, step)

    def read(self) -> list[dict]:
        if not self.csv_path.exists():
            return []
        with open(self.csv_path, newline="") as f:
            return list(csv.DictReader(f))

    def drop_rows_after(self, step: int) -> None:
        """Keep the rows of steps <= ``step``: a resumed run replays the steps after its checkpoint, and
        logs their evaluations again."""
        if not self.csv_path.exists():
            return
        lines = self.csv_path.read_bytes().splitlines(keepends=True)
        at = FIELDS.index("step")
        kept = lines[:1] + [b for b in lines[1:] if int(next(csv.reader([b.decode()]))[at]) <= step]
        if len(kept) < len(lines):
            atomic_write(self.csv_path, lambda tmp: tmp.write_bytes(b"".join(kept)))

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.read()
        if not rows:
            return
        step = [int(r["step"]) for r in rows]
        fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
        ax_loss.plot(step, [float(r["train_loss"]) for r in rows], "o-", label="train")
        ax_loss.plot(step, [float(r["val_loss"]) for r in rows], "o-", label="validation")
        ax_loss.set(xlabel="step", ylabel="loss", title="loss")
        ax_loss.legend()
        ax_metric.plot(step, [float(r["val_metric"]) for r in rows], "o-", color="C2")
        ax_metric.set(xlabel="step", ylabel=self.metric, title=f"validation {self.metric}")
        for ax in (ax_loss, ax_metric):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_write(self.run_dir / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()


def git_commit() -> str | None:
    """The commit of the lindy source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def sparsity_line(report: dict) -> str:
    """One line for a spiking model's sparsity report: sparsity, firing rates, the energy estimate."""
    rates = ", ".join(f"{name} {r:.4f}" for name, r in report["firing_rate"].items())
    if report.get("sparsity") is None:
        return "sparsity: no spiking layer ran"
    return (
        f"sparsity {report['sparsity']:.4f} (firing rates: {rates}); feature-mixing energy per example "
        f"{report['energy_snn_j']:.3e} J with spikes (ACs at 0.9 pJ) vs {report['energy_ann_j']:.3e} J "
        "dense (MACs at 4.6 pJ)"
    )


def write_summary(run_dir: Path, summary: dict) -> None:
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
