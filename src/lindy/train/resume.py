"""The run folder, what a checkpoint holds, and resuming: the invariants that make a killed run resume
bit-identical (on CPU; tested by tests/train/test_resume.py).

What a checkpoint holds (``last.pt``, ``best.pt``: a plain dict that loads with ``weights_only=True``)
    model, optimizer, scheduler: their state_dicts; scaler: the GradScaler's (``trainer.precision=fp16``).
    progress: epoch, batch (the next batch of that epoch), step (optimiser steps taken), best (validation
        score), loss_sum / loss_count (the epoch's running training loss), evaluated_step (last validation).
    rng: torch's CPU generator and every CUDA device's (dropout). Nothing else draws randomness after
        set-up: the loaders have their own generators and an item is a function of its index. Under DDP
        every rank draws the same stream (same seed, same shapes), so rank 0's state is every rank's.
    config (resolved YAML), model_config, info: enough to rebuild data and model (``lindy eval``).
    timing: the wall time and tokens of every segment of the run so far (``lindy.train.timing``).
    history: the safe settings changed at each resume (``lindy.train.fingerprint``).
    checksum: of all the above, verified on load (``lindy.train.checkpoint``).
    fp32 and bf16 autocast scale no loss, so their checkpoints have no scaler.

When, and in which order (rank 0 writes checkpoints, metrics.csv, curves.png, config.yaml, summary.json,
each through ``lindy._atomic``: temp file, fsync, rename, so a crash leaves the old file or the new one)
    Only between optimiser steps, once step s is complete (optimiser and scheduler stepped, gradients
    zeroed, progress.step = s, progress.batch + 1, running loss updated). Then at most one of:
      1. the epoch's last batch: epoch + 1, batch = 0, then 2. with the running loss reset before saving;
      2. every ``trainer.eval_every_steps``: validate, a metrics.csv row, best.pt if better, last.pt;
      3. every ``trainer.checkpoint_every_steps``: last.pt;
    then, after a SIGINT (``lindy.train.interrupt``), last.pt at s and a clean stop; and after the loop,
    2. once more if the last step was not validated (max_steps inside an epoch).
    The order row -> best.pt -> last.pt means: a last.pt at step s has every metrics.csv row up to s; rows
    after s (a crash between a row and its last.pt) are dropped on resume, and a best.pt newer than last.pt
    is rewritten with the same weights when the resumed run replays those steps. Validation runs in eval
    mode and draws no randomness, so the RNG state saved is the one right after step s (a plateau
    schedule steps on the validation loss before the save, so its state is saved with it).

Which folder, and whether to resume (``open_run``, rank 0 decides, before anything is built)
    The folder is ``trainer.run_dir``, or a new ``<run_root>/<name>/<stamp>[_<overrides>]`` made atomically
    (``lindy.train.rundir``), locked for the run's life. A new run refuses a folder that is not empty
    unless ``trainer.overwrite=true`` (which removes the previous run's files). ``trainer.resume=auto``
    continues ``<run_dir>/last.pt``, or without run_dir the newest unfinished run under
    ``<run_root>/<name>`` whose configuration fingerprint is this one's (saying so when none is and a
    fresh run starts); a finished run (summary.json) is refused, and so is a resume that changes a setting
    outside ``fingerprint.SAFE`` (naming the keys and both values). ``trainer.resume=<path>`` starts from
    that checkpoint, in its own folder when it is that folder's last.pt, else in a new (empty) one.

Resuming
    The trainer builds everything as a fresh run does (seed -> data -> model -> optimiser -> scheduler),
    then loads model, optimiser, scheduler, scaler and progress, drops metrics.csv rows after
    progress.step, writes config.yaml (with the history of safe changes), and sets the RNG state LAST:
    nothing between it and the first step may draw from torch's RNG. The epoch's sampler is rebuilt from
    (seed, epoch) and skips the ``batch`` batches run. Wall time, tokens/s and metrics.csv's elapsed_s
    continue from the checkpoint's timing (the time a killed process spent after its last checkpoint is
    lost). TensorBoard events are not restored (steps after last.pt appear twice there).

Fault injection (tests only, hence not a config option): ``LINDY_DEBUG_KILL_AFTER_STEP=k`` makes the
process SIGKILL itself right after step k's checkpoints are written, as a crash would;
``LINDY_DEBUG_KILL_SIGNAL=INT`` sends SIGINT instead (Ctrl-C: a clean stop that writes last.pt at k).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lindy.train import distributed
from lindy.train.checkpoint import load_checkpoint, rng_state
from lindy.train.fingerprint import SAFE, describe, fingerprint, result_overrides, split_changes
from lindy.train.rundir import (
    LOCK_NAME,
    RUN_FILES,
    RUN_FOLDERS,
    RunFolderError,
    RunLock,
    clear_run_files,
    contents,
    folder_tag,
    new_run_folder,
)

KILL_ENV = "LINDY_DEBUG_KILL_AFTER_STEP"
SIGNAL_ENV = "LINDY_DEBUG_KILL_SIGNAL"


@dataclass
class Progress:
    epoch: int = 0
    batch: int = 0  # the next batch of this epoch to run
    step: int = 0  # optimiser steps taken
    best: float | None = None
    loss_sum: float = 0.0  # running training loss of this epoch (for the log)
    loss_count: int = 0
    evaluated_step: int = -1  # the step of the last validation (a resumed run must not repeat it)


@dataclass
class RunStart:
    """Where a run writes and what it resumes from (``open_run``); ``lock`` is rank 0's."""

    run_dir: Path
    resume_path: Path | None = None
    lock: RunLock | None = None
    created: bool = False  # this run made the folder (removed again if set-up fails)
    notes: list[str] = field(default_factory=list)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def abandon(self) -> None:
        """Set-up failed: release the folder, and remove it again if this run made it and left it empty."""
        lock, self.lock = self.lock, None
        if lock is None:
            return
        if self.created and not contents(self.run_dir):
            (self.run_dir / LOCK_NAME).unlink(missing_ok=True)
            lock.release()
            try:
                self.run_dir.rmdir()
            except OSError:  # something appeared meanwhile: leave it
                pass
        else:
            lock.release()


def open_run(cfg: DictConfig, settings, main: bool, overrides=()) -> RunStart:
    """Rank 0 chooses, creates and locks the run folder and decides whether to resume (see the module
    docstring); every rank gets its choice, or the same error."""
    start, error, box = None, None, None
    if main:
        try:
            start = _decide(cfg, settings, overrides)
            box = (str(start.run_dir), None if start.resume_path is None else str(start.resume_path), None)
        except (RunFolderError, FileNotFoundError) as err:
            error, box = err, (None, None, str(err))
    box = distributed.broadcast_object(box)
    if error is not None:
        raise error
    if box[2] is not None:
        raise RunFolderError(box[2])
    if not main:
        start = RunStart(Path(box[0]), None if box[1] is None else Path(box[1]))
    distributed.barrier()
    return start


def _decide(cfg: DictConfig, s, overrides) -> RunStart:
    notes = []
    if s.resume == "auto" and s.run_dir is None:
        found, why = find_resumable(Path(s.run_root) / cfg.name, cfg)
        if found is not None:
            return RunStart(found, found / "last.pt", RunLock(found))
        notes.append(why)
    if s.run_dir is not None:
        path, created = Path(s.run_dir), not Path(s.run_dir).exists()
        path.mkdir(parents=True, exist_ok=True)
    else:
        stamp = os.environ.get("LINDY_RUN_STAMP") or time.strftime("%Y%m%d-%H%M%S")
        tag = folder_tag(result_overrides(overrides))
        path, created = new_run_folder(Path(s.run_root) / cfg.name, stamp, tag), True
    start = RunStart(path, None, RunLock(path), created, notes)
    try:
        _resume_or_fresh(start, cfg, s)
    except BaseException:
        start.abandon()
        raise
    return start


def _resume_or_fresh(start: RunStart, cfg: DictConfig, s) -> None:
    path, existing = start.run_dir, contents(start.run_dir)
    finished = "summary.json" in existing
    if s.resume not in ("never", "auto"):
        start.resume_path = Path(s.resume)
        if not start.resume_path.is_file():
            raise FileNotFoundError(f"trainer.resume: checkpoint {start.resume_path} does not exist")
        if start.resume_path.resolve().parent == path.resolve():
            if finished:
                raise RunFolderError(_finished(path))
            return
    elif s.resume == "auto" and "last.pt" in existing and not finished:
        start.resume_path = path / "last.pt"
        return
    elif s.resume == "auto" and finished and not s.overwrite:
        raise RunFolderError(_finished(path))
    if not existing:
        if s.resume == "auto":
            start.notes.append(f"trainer.resume=auto: nothing to resume in {path}; starting a fresh run")
        return
    early = s.resume == "auto" and _same_run_died_early(path, existing, cfg)
    if not (s.overwrite or early):
        raise RunFolderError(
            f"run folder {path} is not empty (it holds {', '.join(existing[:6])}): a new run would overwrite "
            "or mix another run's files. Continue that run with trainer.resume=auto, replace it with "
            "trainer.overwrite=true, or choose another trainer.run_dir"
        )
    clear_run_files(path)
    why = "trainer.overwrite=true" if s.overwrite else "trainer.resume=auto: no last.pt yet in"
    start.notes.append(f"{why} {path}: removed the previous run's files; starting a fresh run")


def _same_run_died_early(path: Path, existing: list[str], cfg) -> bool:
    """The folder holds only what a run of this configuration writes before its first last.pt."""
    if not (path / "config.yaml").is_file() or not set(existing) <= set(RUN_FILES) | set(RUN_FOLDERS):
        return False
    try:
        return fingerprint((path / "config.yaml").read_text()) == fingerprint(cfg)
    except Exception:  # an unreadable config.yaml is not this run's
        return False


def _finished(path: Path) -> str:
    return (
        f"run folder {path} holds a finished run (summary.json): there is nothing to resume. Start a new "
        "run (another trainer.run_dir, or trainer.resume=never for a new folder), or replace it with "
        "trainer.overwrite=true"
    )


def find_resumable(root: Path, cfg: DictConfig) -> tuple[Path | None, str]:
    """The newest unfinished run under ``root`` (by its last.pt's time) whose fingerprint is ``cfg``'s,
    else (None, a sentence saying why a fresh run starts). A matching run that finished is refused."""
    want, matching, other = fingerprint(cfg), [], []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not (d / "config.yaml").is_file():
            continue
        try:
            text = (d / "config.yaml").read_text()
            same = fingerprint(text) == want
        except Exception:  # not a lindy config: not a candidate
            continue
        (matching if same else other).append((d, text))
    unfinished = [d for d, _ in matching if (d / "last.pt").is_file() and not (d / "summary.json").exists()]
    if unfinished:
        return max(unfinished, key=lambda d: (d / "last.pt").stat().st_mtime_ns), ""
    done = [d for d, _ in matching if (d / "summary.json").exists()]
    if done:
        raise RunFolderError(
            f"trainer.resume=auto: the run of {cfg.name!r} with this configuration has finished: {done[-1]} "
            "(summary.json), so there is nothing to resume; pass trainer.resume=never to train it again"
        )
    why = f"trainer.resume=auto: no unfinished run of {cfg.name!r} with this configuration under {root}"
    alive = [(d, t) for d, t in other if (d / "last.pt").is_file() and not (d / "summary.json").exists()]
    if alive:
        d, text = alive[-1]
        unsafe, _ = split_changes(text, cfg)
        why += f" ({d} differs: {describe(dict(list(unsafe.items())[:4]))})"
    return None, why + "; starting a fresh run"


def check_same_run(state: dict, cfg: DictConfig, source: Path) -> list[dict]:
    """The run's history plus this resume's safe changes; a change outside ``SAFE`` is refused."""
    unsafe, safe = split_changes(state.get("config", ""), cfg)
    if unsafe:
        raise RunFolderError(
            f"trainer.resume: {source} was trained with other settings: {describe(unsafe)}. A resume may "
            f"change only {', '.join(sorted(SAFE))}; start a new run to change the others"
        )
    history = list(state.get("history", []))
    if safe:
        step = state.get("progress", {}).get("step")
        history.append({"step": step, "changed": {k: {"from": a, "to": b} for k, (a, b) in safe.items()}})
    return history


def load_resume_state(resume_path: Path | None, device) -> dict | None:
    """The checkpoint to resume from (None: a fresh run)."""
    return None if resume_path is None else load_checkpoint(resume_path, map_location=device)


def restore(state: dict, model, optimizer, scheduler) -> Progress:
    """Load model, optimiser and scheduler from ``state``; its progress. The RNG is the caller's, last."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return Progress(**state["progress"])


def checkpoint_state(
    model, optimizer, scheduler, progress: Progress, cfg: DictConfig, model_cfg, info, extra=None
) -> dict:
    """Everything a checkpoint holds (see the module docstring), taken now; ``extra``: scaler, timing,
    history."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": vars(progress).copy(),
        "rng": rng_state(),
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "model_config": model_cfg,
        "info": vars(info).copy(),
        **(extra or {}),
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
    """Send this process ``LINDY_DEBUG_KILL_SIGNAL`` (KILL by default, or INT)."""
    name = os.environ.get(SIGNAL_ENV, "KILL").strip().upper() or "KILL"
    if name not in ("KILL", "INT"):
        raise ValueError(f"{SIGNAL_ENV} must be KILL or INT, got {name!r}")
    os.kill(os.getpid(), signal.SIGKILL if name == "KILL" else signal.SIGINT)
