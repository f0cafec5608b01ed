"""The training loop: a plain PyTorch loop in small functions, run under torchrun for DDP.

    set up torch, data, model (DDP), optimiser, schedule, run folder; resume from last.pt if asked
    for epoch:                                  # data order: randperm(seed, epoch), sliced per rank
        for global batch:
            train_step  -> loss, grad clip, optimiser and schedule step   (non-finite: stop, name group)
            every k steps / end of epoch: evaluate -> metrics.csv, TensorBoard, curves.png, best/last
    test with the best checkpoint -> summary.json

Where the pieces live: the sampler and loaders in ``batches``, the config-to-model translation in
``config``, validation and test in ``evaluate``, the run folder, checkpoint contents and resume (with the
invariants that make a killed run resume bit-identical) in ``resume``, the files a run writes in ``records``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from lindy._atomic import atomic_write_text
from lindy.data import build_data
from lindy.kernels.cpp import fast_path_status
from lindy.models import build_model
from lindy.train import distributed
from lindy.train.batches import EpochBatches, batches_per_epoch, eval_loader, train_loader
from lindy.train.checkpoint import load_checkpoint, save_atomic, set_rng_state
from lindy.train.config import model_config, resolve_device, set_up_torch
from lindy.train.evaluate import autocast, evaluate
from lindy.train.metrics import higher_is_better, loss_fn
from lindy.train.optim import build_optimizer, build_scheduler
from lindy.train.records import RunRecords, git_commit, write_summary
from lindy.train.resume import (
    Progress,
    checkpoint_state,
    choose_run_dir,
    kill_after_step,
    kill_now,
    load_resume_state,
    restore,
)

# moved to their own modules; still importable from here
__all__ = ["EpochBatches", "NonFiniteLossError", "Progress", "Trainer", "batches_per_epoch", "eval_loader"]
__all__ += ["model_config", "resolve_device"]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients became NaN/inf; the message names the step and the parameter group."""


class Trainer:
    """Builds data, model, optimiser and run folder from a composed config and trains.

    The order of ``__init__`` is part of the resume contract (see ``lindy.train.resume``): the seed before
    anything that draws from it, everything built before a checkpoint is loaded into it, the RNG state last.
    """

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        t = cfg.trainer
        set_up_torch(cfg)
        self.rank, self.world, self.device = distributed.setup(resolve_device(t.device))
        self.main = distributed.is_main(self.rank)

        # the data fail here, before any training, with a message naming the files they expect
        self.data = build_data(**OmegaConf.to_container(cfg.data, resolve=True))
        self.info = self.data.info
        self.model = build_model(model_config(cfg), self.info).to(self.device)
        self.ddp = self.model
        if self.world > 1:
            ids = [self.device] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

        self.steps_per_epoch = batches_per_epoch(len(self.data.train), cfg.loader.batch_size)
        self.total_steps = int(t.max_steps or self.steps_per_epoch * t.max_epochs)
        self.optimizer = build_optimizer(self.model, cfg.optimizer)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.scheduler, self.total_steps, self.steps_per_epoch
        )

        self.run_dir = choose_run_dir(cfg, self.main)
        resume_path, state = load_resume_state(t.resume, self.run_dir, self.device)
        self.progress = Progress()
        if state is not None:
            self.progress = restore(state, self.model, self.optimizer, self.scheduler)
        self.records = None
        if self.main:
            wandb = OmegaConf.to_container(t.wandb, resolve=True) if t.wandb else None
            self.records = RunRecords(self.run_dir, self.info.metric, t.tensorboard, wandb)
            if state is not None:
                self.records.drop_rows_after(self.progress.step)
            atomic_write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        if state is not None:
            set_rng_state(state["rng"])  # last: the next draw is the first step's dropout
            if self.main:
                p = self.progress
                print(f"resumed from {resume_path}: epoch {p.epoch}, batch {p.batch}, step {p.step}")

    # ------------------------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        return checkpoint_state(
            self.model,
            self.optimizer,
            self.scheduler,
            self.progress,
            self.cfg,
            model_config(self.cfg),
            self.info,
        )

    def save(self, name: str) -> None:
        if self.main:
            save_atomic(self.checkpoint_state(), self.run_dir / name)

    # ------------------------------------------------------------------------------------------------
    def _group_report(self, what: str) -> str:
        bad = []
        for group in self.optimizer.param_groups:
            names = [
                n
                for n, p in zip(group["names"], group["params"])
                if not torch.isfinite(p if what == "values" else (p.grad if p.grad is not None else p)).all()
            ]
            if names:
                bad.append(f"{group['name']} {names[:4]}")
        return "; ".join(bad)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimiser step over a global batch (split into ``trainer.accumulate`` micro-batches)."""
        self.ddp.train()
        k = self.cfg.trainer.accumulate
        total = 0.0
        for i, (xc, yc) in enumerate(zip(x.chunk(k), y.chunk(k))):
            sync = i == k - 1 or self.world == 1
            ctx = self.ddp.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                with autocast(self.device, self.cfg.trainer.precision):
                    loss = loss_fn(self.info.task, self.ddp(xc), yc, loss=self.info.loss) / k
                loss.backward()
            total += loss.item()
        where = f"step {self.progress.step + 1} (epoch {self.progress.epoch}, batch {self.progress.batch})"
        if not math.isfinite(total):
            groups = self._group_report("values") or self._group_report("grads") or "none (inputs or lr?)"
            raise NonFiniteLossError(
                f"non-finite training loss {total} at {where}; offending parameter group(s): {groups}; "
                f"the last good checkpoint is {self.run_dir / 'last.pt'}"
            )
        if self.cfg.trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip)
        grads = self._group_report("grads")
        if grads:
            raise NonFiniteLossError(
                f"non-finite gradients at {where} in parameter group(s): {grads}; "
                f"the last good checkpoint is {self.run_dir / 'last.pt'}"
            )
        self.optimizer.step()
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def evaluate(self, dataset: Dataset) -> dict[str, float]:
        """Loss and metric of the model on ``dataset`` (every rank its shard, summed over ranks)."""
        return evaluate(
            self.model,
            dataset,
            self.info,
            batch=self.cfg.loader.eval_batch_size,
            device=self.device,
            precision=self.cfg.trainer.precision,
            workers=self.cfg.loader.num_workers,
            world=self.world,
            rank=self.rank,
        )

    # ------------------------------------------------------------------------------------------------
    def _end_of_interval(self, started: float, tokens: int, epoch_done: bool = False) -> None:
        """Validate, log, and write last (and best) checkpoints; after an epoch, start its loss anew."""
        p, metric = self.progress, self.info.metric
        p.evaluated_step = p.step
        val = self.evaluate(self.data.val)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val["loss"])
        score = val[metric]
        better = p.best is None or (score > p.best if higher_is_better(metric) else score < p.best)
        if better:
            p.best = score
        elapsed = time.time() - started
        row = {
            "epoch": p.epoch,
            "step": p.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": p.loss_sum / max(p.loss_count, 1),
            "val_loss": val["loss"],
            "val_metric": score,
            "tokens_per_s": round(tokens / max(elapsed, 1e-9)),
            "elapsed_s": round(elapsed, 1),
        }
        if self.main:
            self.records.log_eval(row)
            print(
                f"epoch {p.epoch} step {p.step}: train loss {row['train_loss']:.4f}, "
                f"val loss {val['loss']:.4f}, val {metric} {score:.4f}, {row['tokens_per_s']} tokens/s",
                flush=True,
            )
        if epoch_done:  # before saving: a run resumed from this checkpoint starts the epoch's mean empty
            p.loss_sum, p.loss_count = 0.0, 0
        if better:
            self.save("best.pt")
        self.save("last.pt")

    def fit(self) -> dict:
        cfg, p = self.cfg, self.progress
        started, tokens = time.time(), 0
        eval_every = cfg.trainer.eval_every_steps
        ckpt_every = cfg.trainer.checkpoint_every_steps
        kill_after = kill_after_step()
        length = self.info.length or 1
        while p.epoch < cfg.trainer.max_epochs and p.step < self.total_steps:
            sampler = EpochBatches(
                len(self.data.train), cfg.loader.batch_size, self.world, self.rank, cfg.seed, p.epoch, p.batch
            )
            loader = train_loader(self.data.train, sampler, cfg.loader.num_workers, cfg.seed)
            bar = _progress_bar(self.main and cfg.trainer.progress, len(sampler), f"epoch {p.epoch}")
            for x, y in loader:
                x, y = x.to(self.device), y.to(self.device)
                loss = self.train_step(x, y)
                p.step, p.batch = p.step + 1, p.batch + 1
                p.loss_sum, p.loss_count = p.loss_sum + loss, p.loss_count + 1
                tokens += x.shape[0] * length * self.world
                lr = self.optimizer.param_groups[0]["lr"]
                if self.main:
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{loss:.4f}",
                            lr=f"{lr:.2e}",
                            tok_s=f"{tokens / (time.time() - started):.0f}",
                        )
                        bar.update(1)
                    elif p.step % cfg.trainer.log_every_steps == 0:
                        print(f"step {p.step} epoch {p.epoch} loss {loss:.4f} lr {lr:.2e}", flush=True)
                    self.records.log_train(p.step, loss, lr)
                last_of_epoch = p.batch == self.steps_per_epoch
                if eval_every and p.step % eval_every == 0 and not last_of_epoch:
                    self._end_of_interval(started, tokens)
                elif ckpt_every and p.step % ckpt_every == 0 and not last_of_epoch:
                    self.save("last.pt")
                if last_of_epoch:
                    p.epoch, p.batch = p.epoch + 1, 0
                    self._end_of_interval(started, tokens, epoch_done=True)
                if kill_after is not None and p.step == kill_after:
                    kill_now()  # fault injection for the resume tests (see lindy.train.resume)
                if p.step >= self.total_steps:
                    break
            if bar is not None:
                bar.close()
        if p.evaluated_step != p.step:  # stopped by max_steps inside an epoch
            self._end_of_interval(started, tokens)
        return self.finish(time.time() - started, tokens)

    def finish(self, wall: float, tokens: int) -> dict:
        distributed.barrier()
        best = load_checkpoint(self.run_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(best["model"])
        test = self.evaluate(self.data.test)
        summary = {
            "experiment": self.cfg.name,
            "test": test,
            "best_val": self.progress.best,
            "metric": self.info.metric,
            "epochs": self.progress.epoch,
            "steps": self.progress.step,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "tokens_per_s": round(tokens / max(wall, 1e-9)),
            "wall_time_s": round(wall, 1),
            "device": str(self.device),
            "world_size": self.world,
            "git_commit": git_commit(),
            "data_source": self.info.source,
            "fast_paths": fast_path_status(),  # a fast path that could not build is never silent
        }
        if self.main:
            write_summary(self.run_dir, summary)
            self.records.close()
            print(f"test: {test}  ->  {self.run_dir}")
        distributed.cleanup()
        return summary


def _progress_bar(enabled, total: int, desc: str):
    """tqdm when attached to a terminal (or forced with trainer.progress=bar); plain lines otherwise."""
    if enabled is False or enabled is None:
        return None
    if enabled == "auto" and not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
