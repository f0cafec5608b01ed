"""The training loop: a plain PyTorch loop in small functions, run under torchrun for DDP.

    for epoch:                                  # data order: randperm(seed, epoch), sliced per rank
        for global batch:
            train_step  -> loss, grad clip, optimiser and schedule step   (non-finite: stop, name group)
            every k steps / end of epoch: evaluate -> metrics.csv, TensorBoard, curves.png, last/best
    test with the best checkpoint -> summary.json

Resume (``trainer.resume=auto``) restores model, optimiser, scheduler, RNG state, epoch and the position
inside the epoch from ``last.pt``; the run then continues as if it had never stopped (bit-identical on CPU).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, Sampler

from lindy.data import build_data
from lindy.models import build_model
from lindy.train import distributed
from lindy.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from lindy.train.metrics import MetricSum, higher_is_better, loss_fn
from lindy.train.optim import build_optimizer, build_scheduler
from lindy.train.records import RunRecords, git_commit, write_summary


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients became NaN/inf; the message names the step and the parameter group."""


@dataclass
class Progress:
    epoch: int = 0
    batch: int = 0  # the next batch of this epoch to run
    step: int = 0  # optimiser steps taken
    best: float | None = None
    loss_sum: float = 0.0  # running training loss of this epoch (for the log)
    loss_count: int = 0


class EpochBatches(Sampler):
    """Global batches of one epoch: randperm(n) from (seed, epoch), this rank's slice of each batch.

    Every rank draws the same permutation; rank r takes rows [r B/W, (r+1) B/W) of each global batch of
    B, so W ranks see exactly the batches one process would. ``start`` skips batches already run.
    """

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, epoch: int, start: int = 0):
        if batch % world:
            raise ValueError(
                f"loader.batch_size ({batch}) must be divisible by the number of processes ({world})"
            )
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.epoch, self.start = seed, epoch, start

    def __len__(self) -> int:
        return self.n // self.batch - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        per_rank = self.batch // self.world
        for b in range(self.start, self.n // self.batch):
            rows = order[b * self.batch : (b + 1) * self.batch]
            yield rows[self.rank * per_rank : (self.rank + 1) * per_rank].tolist()


def batches_per_epoch(n: int, batch: int) -> int:
    if n < batch:
        raise ValueError(f"the training set has {n} examples, fewer than loader.batch_size={batch}")
    return n // batch


def eval_loader(dataset: Dataset, batch: int, world: int, rank: int, workers: int) -> DataLoader:
    """This rank's contiguous shard of an evaluation split, in order."""
    n = len(dataset)
    shard = list(range(rank * n // world, (rank + 1) * n // world))
    return DataLoader(
        torch.utils.data.Subset(dataset, shard),
        batch_size=batch,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),  # leave the global (dropout) RNG untouched
    )


def model_config(cfg: DictConfig) -> dict:
    """The SequenceModel arguments: cfg.model plus the layer group (name + its keyword arguments)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    layer = OmegaConf.to_container(cfg.layer, resolve=True)
    model["layer"] = layer.pop("name")
    model["layer_kwargs"] = layer
    return {k: v for k, v in model.items() if v is not None}


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class Trainer:
    """Builds data, model, optimiser and run folder from a composed config and trains."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        t = cfg.trainer
        if t.threads:
            torch.set_num_threads(int(t.threads))
        self.rank, self.world, self.device = distributed.setup(resolve_device(t.device))
        self.main = distributed.is_main(self.rank)
        torch.manual_seed(cfg.seed)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        # the data fail here, before any training, with a message naming the files they expect
        self.data = build_data(**OmegaConf.to_container(cfg.data, resolve=True))
        self.info = self.data.info
        self.model = build_model(model_config(cfg), self.info).to(self.device)
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
            if self.world > 1
            else self.model
        )
        self.steps_per_epoch = batches_per_epoch(len(self.data.train), cfg.loader.batch_size)
        total = cfg.trainer.max_steps or self.steps_per_epoch * cfg.trainer.max_epochs
        self.total_steps = int(total)
        self.optimizer = build_optimizer(self.model, cfg.optimizer)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.scheduler, self.total_steps, self.steps_per_epoch
        )
        self.progress = Progress()
        self._last_eval_step = -1
        self.run_dir = self._run_dir()
        self._maybe_resume()
        wandb = OmegaConf.to_container(t.wandb, resolve=True) if t.wandb else None
        self.records = RunRecords(self.run_dir, self.info.metric, t.tensorboard, wandb) if self.main else None
        if self.main:
            (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    # ------------------------------------------------------------------------------------------------
    def _run_dir(self) -> Path:
        t = self.cfg.trainer
        if t.run_dir:
            path = Path(t.run_dir)
        else:
            root = Path(t.run_root) / self.cfg.name
            path = None
            if t.resume == "auto" and root.is_dir():  # the newest unfinished run of this experiment
                unfinished = [
                    d
                    for d in sorted(root.iterdir())
                    if (d / "last.pt").exists() and not (d / "summary.json").exists()
                ]
                path = unfinished[-1] if unfinished else None
            if path is None:
                stamp = os.environ.get("LINDY_RUN_STAMP") or time.strftime("%Y%m%d-%H%M%S")
                path = root / stamp
        path = Path(distributed.broadcast_object(str(path)))  # every rank uses rank 0's choice
        if self.main:
            path.mkdir(parents=True, exist_ok=True)
        distributed.barrier()
        return path

    def _maybe_resume(self) -> None:
        resume = self.cfg.trainer.resume
        if resume in (None, "never", False):
            return
        path = self.run_dir / "last.pt" if resume == "auto" else Path(resume)
        if not path.exists():
            if resume != "auto":
                raise FileNotFoundError(f"trainer.resume: checkpoint {path} does not exist")
            return
        state = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        if self.main:
            print(
                f"resumed from {path}: epoch {self.progress.epoch}, "
                f"batch {self.progress.batch}, step {self.progress.step}"
            )

    def checkpoint_state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": vars(self.progress).copy(),
            "rng": rng_state(),
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),
            "model_config": model_config(self.cfg),
            "info": vars(self.info).copy(),
        }

    def save(self, name: str) -> None:
        if self.main:
            save_atomic(self.checkpoint_state(), self.run_dir / name)

    # ------------------------------------------------------------------------------------------------
    def autocast(self):
        enabled = self.cfg.trainer.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

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
                with self.autocast():
                    loss = loss_fn(self.info.task, self.ddp(xc), yc) / k
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

    @torch.no_grad()
    def evaluate(self, dataset: Dataset) -> dict[str, float]:
        self.model.eval()
        sums = MetricSum(self.info.task, self.info.metric, self.device)
        loader = eval_loader(
            dataset, self.cfg.loader.eval_batch_size, self.world, self.rank, self.cfg.loader.num_workers
        )
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            with self.autocast():
                out = self.model(x)
            sums.update(out, y)
        sums.all_reduce()
        return sums.result()

    # ------------------------------------------------------------------------------------------------
    def _end_of_interval(self, started: float, tokens: int, epoch_done: bool = False) -> None:
        """Validate, log, and write last (and best) checkpoints; after an epoch, start its loss anew."""
        p, metric = self.progress, self.info.metric
        self._last_eval_step = p.step
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
        kill_after = cfg.trainer.debug_kill_after_step
        length = self.info.length or 1
        while p.epoch < cfg.trainer.max_epochs and p.step < self.total_steps:
            sampler = EpochBatches(
                len(self.data.train), cfg.loader.batch_size, self.world, self.rank, cfg.seed, p.epoch, p.batch
            )
            # its own generator: a DataLoader otherwise draws its base seed from the global RNG, which
            # would shift the dropout stream of a resumed run
            loader = DataLoader(
                self.data.train,
                batch_sampler=sampler,
                num_workers=cfg.loader.num_workers,
                generator=torch.Generator().manual_seed(cfg.seed + p.epoch),
            )
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
                    os.kill(os.getpid(), signal.SIGKILL)  # fault injection for the resume test
                if p.step >= self.total_steps:
                    break
            if bar is not None:
                bar.close()
        if self._last_eval_step != p.step:  # stopped by max_steps inside an epoch
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
