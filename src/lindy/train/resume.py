"""The run folder, what a checkpoint holds, and resuming: the invariants that make a killed run resume
bit-identical (on CPU; tested by tests/train/test_resume.py).

What a checkpoint holds (``last.pt``, ``best.pt``: a plain dict that loads with ``weights_only=True``)
    model, optimizer, scheduler: their state_dicts.
    progress: epoch, batch (the next batch of that epoch), step (optimiser steps taken), best (validation
        score), loss_sum / loss_count (the epoch's running training loss), evaluated_step (last validation).
    rng: torch's CPU generator and every CUDA device's (dropout). Nothing else draws randomness after
        set-up: the loaders have their own generators and an item is a function of its index. Under DDP
        every rank draws the same stream (same seed, same shapes), so rank 0's state is every rank's.
    config (resolved YAML), model_config, info: enough to rebuild data and model (``lindy eval``).
    There is no GradScaler to save: fp32 and bf16 autocast scale no loss.

When, and in which order (rank 0 writes checkpoints, metrics.csv, curves.png, config.yaml, summary.json,
each through ``lindy._atomic``: temp file, fsync, rename, so a crash leaves the old file or the new one)
    Only between optimiser steps, once step s is complete (optimiser and scheduler stepped, gradients
    zeroed, progress.step = s, progress.batch + 1, running loss updated). Then at most one of:
      1. the epoch's last batch: epoch + 1, batch = 0, then 2. with the running loss reset before saving;
      2. every ``trainer.eval_every_steps``: validate, a metrics.csv row, best.pt if better, last.pt;
      3. every ``trainer.checkpoint_every_steps``: last.pt;
    and after the loop, 2. once more if the last step was not validated (max_steps inside an epoch).
    The order row -> best.pt -> last.pt means: a last.pt at step s has every metrics.csv row up to s; rows
    after s (a crash between a row and its last.pt) are dropped on resume, and a best.pt newer than last.pt
    is rewritten with the same weights when the resumed run replays those steps. Validation runs in eval
    mode and draws no randomness, so the RNG state saved is the one right after step s (a plateau
    schedule steps on the validation loss before the save, so its state is saved with it).

Resuming (``trainer.resume=auto``: ``<run_dir>/last.pt``, by default in the newest folder of
``<run_root>/<name>`` that has a last.pt and no summary.json; or ``trainer.resume=<path>``)
    The trainer builds everything as a fresh run does (seed -> data -> model -> optimiser -> scheduler),
    then loads model, optimiser, scheduler and progress, drops metrics.csv rows after progress.step,
    writes config.yaml, and sets the RNG state LAST: nothing between it and the first step may draw from
    torch's RNG. The epoch's sampler is rebuilt from (seed, epoch) and skips the ``batch`` batches run.
    Not restored: wall-clock counters (tokens_per_s, elapsed_s count from the restart) and TensorBoard
    events (steps after last.pt appear twice there).

Fault injection (tests only, hence not a config option): ``LINDY_DEBUG_KILL_AFTER_STEP=k`` makes the
process SIGKILL itself right after step k's checkpoints are written, as a crash would.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lindy.train import distributed
from lindy.train.checkpoint import load_checkpoint, rng_state

KILL_ENV = "LINDY_DEBUG_KILL_AFTER_STEP"


@dataclass
class Progress:
    epoch: int = 0
    batch: int = 0  # the next batch of this epoch to run
    step: int = 0  # optimiser steps taken
    best: float | None = None
    loss_sum: float = 0.0  # running training loss of this epoch (for the log)
    loss_count: int = 0
    evaluated_step: int = -1  # the step of the last validation (a resumed run must not repeat it)


def choose_run_dir(cfg: DictConfig, main: bool) -> Path:
    """``trainer.run_dir``, or the newest unfinished run of ``cfg.name`` (resume=auto), or a new stamped
    folder; rank 0 decides and creates it, every rank gets its choice."""
    t = cfg.trainer
    if t.run_dir:
        path = Path(t.run_dir)
    else:
        root = Path(t.run_root) / cfg.name
        path = None
        if t.resume == "auto" and root.is_dir():
            unfinished = [
                d
                for d in sorted(root.iterdir())
                if (d / "last.pt").exists() and not (d / "summary.json").exists()
            ]
            path = unfinished[-1] if unfinished else None
        if path is None:
            stamp = os.environ.get("LINDY_RUN_STAMP") or time.strftime("%Y%m%d-%H%M%S")
            path = root / stamp
    path = Path(distributed.broadcast_object(str(path)))
    if main:
        path.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    return path


def load_resume_state(resume, run_dir: Path, device) -> tuple[Path | None, dict | None]:
    """(path, checkpoint) to resume from per ``trainer.resume``; (None, None) to start fresh."""
    if resume in (None, "never", False):
        return None, None
    path = run_dir / "last.pt" if resume == "auto" else Path(resume)
    if not path.exists():
        if resume != "auto":
            raise FileNotFoundError(f"trainer.resume: checkpoint {path} does not exist")
        return None, None
    return path, load_checkpoint(path, map_location=device)


def restore(state: dict, model, optimizer, scheduler) -> Progress:
    """Load model, optimiser and scheduler from ``state``; its progress. The RNG is the caller's, last."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return Progress(**state["progress"])


def checkpoint_state(
    model, optimizer, scheduler, progress: Progress, cfg: DictConfig, model_cfg, info
) -> dict:
    """Everything a checkpoint holds (see the module docstring), taken now."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": vars(progress).copy(),
        "rng": rng_state(),
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "model_config": model_cfg,
        "info": vars(info).copy(),
    }


def kill_after_step() -> int | None:
    """The step after which to SIGKILL this process (``LINDY_DEBUG_KILL_AFTER_STEP``), or None."""
    value = os.environ.get(KILL_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{KILL_ENV} must be a step number, got {value!r}") from None


def kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
