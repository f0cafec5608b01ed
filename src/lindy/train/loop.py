"""The training loop: a plain PyTorch loop in small functions, run under torchrun for DDP.

    check every setting and key; claim (create, lock) the run folder; load last.pt if resuming
    set up torch, data, model (DDP), optimiser, schedule (and GradScaler for fp16); restore the checkpoint
    for epoch:                                  # data order: randperm(seed, epoch), sliced per rank
        for global batch:
            train_step  -> loss (mean over ranks), grad clip, optimiser and schedule step
                           (non-finite loss or gradients: stop, naming the groups and the last checkpoint)
            every k steps / end of epoch: evaluate -> metrics.csv, TensorBoard, curves.png, best/last
                           (a NaN/inf validation score stops the run: it is never compared)
            Ctrl-C: last.pt at this step, then stop (``lindy.train.interrupt``)
    test with the best checkpoint -> summary.json

Where the pieces live: settings and their checks in ``settings`` (unknown keys in ``keys``), the sampler
and loaders in ``batches``, the config-to-model translation in ``config``, validation and test in
``evaluate``, checkpoint contents and resume (with the invariants that make a killed run resume
bit-identical) in ``resume``, run folders and their lock in ``rundir``, what may change on resume in
``fingerprint``, whole-run timing in ``timing``, the files a run writes in ``records``.
"""

from __future__ import annotations

import contextlib
import math
import sys

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from lindy._atomic import atomic_write_text
from lindy.data import build_data
from lindy.kernels.cpp import fast_path_status
from lindy.metrics import default_loss, get_loss
from lindy.models import build_model
from lindy.train import distributed
from lindy.train.batches import EpochBatches, batches_per_epoch, eval_loader, train_loader
from lindy.train.checkpoint import load_checkpoint, save_atomic, set_rng_state
from lindy.train.config import model_config, resolve_device, set_up_torch
from lindy.train.evaluate import autocast, evaluate
from lindy.train.fingerprint import fingerprint, result_overrides
from lindy.train.interrupt import Interrupted, StopOnSigint
from lindy.train.keys import check_known_keys
from lindy.train.metrics import higher_is_better, loss_fn
from lindy.train.optim import build_optimizer, build_scheduler
from lindy.train.records import RunRecords, git_commit, sparsity_line, write_summary
from lindy.train.resume import (
    Progress,
    check_same_run,
    checkpoint_state,
    kill_after_step,
    kill_now,
    load_resume_state,
    open_run,
    restore,
)
from lindy.train.settings import check_world, read_settings
from lindy.train.timing import RunClock

# moved to their own modules; still importable from here
__all__ = ["EpochBatches", "NonFiniteLossError", "Progress", "Trainer", "batches_per_epoch", "eval_loader"]
__all__ += ["Interrupted", "NonFiniteMetricError", "model_config", "resolve_device"]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients became NaN/inf; the message names the step, the parameter groups whose
    gradients (or values) are non-finite, and the last checkpoint written (or that there is none)."""


class NonFiniteMetricError(RuntimeError):
    """A validation loss or metric is NaN/inf: it is not a score, so the run stops."""


class Trainer:
    """Builds data, model, optimiser and run folder from a composed config and trains.

    ``overrides``: the command-line overrides the config was composed with; they name where a bad key
    came from and, without those that only say where or how long, what ran (folder name, summary.json).
    The order of ``__init__`` is part of the resume contract (see ``lindy.train.resume``): the seed before
    anything that draws from it, everything built before a checkpoint is loaded into it, the RNG state last.
    """

    def __init__(self, cfg: DictConfig, overrides=()):
        self.cfg, self.overrides = cfg, list(overrides)
        check_known_keys(cfg, self.overrides)
        self.settings = s = read_settings(cfg)
        self.rank, self.world, self.device = distributed.setup(resolve_device(s.device))
        self.main = distributed.is_main(self.rank)
        check_world(s, self.world)
        self.start = open_run(cfg, s, self.main, self.overrides)
        self.run_dir = self.start.run_dir
        self.records, self.stopper, self._stop = None, StopOnSigint(), False
        try:
            self._build(cfg, s)
        except BaseException:
            self.start.abandon()
            raise

    def _build(self, cfg: DictConfig, s) -> None:
        # the checkpoint first: a resume that changes the run's settings fails before anything is built
        state = load_resume_state(self.start.resume_path, self.device)
        self.history = [] if state is None else check_same_run(state, cfg, self.start.resume_path)
        set_up_torch(cfg)
        # the data fail here, before any training, with a message naming the files they expect
        self.data = build_data(**OmegaConf.to_container(cfg.data, resolve=True))
        self.info = self.data.info
        self._loss = get_loss(self.info.loss or default_loss(self.info.task))
        self.model = build_model(model_config(cfg), self.info).to(self.device)
        self.ddp = self.model
        if self.world > 1:
            ids = [self.device] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

        self.steps_per_epoch = batches_per_epoch(len(self.data.train), s.batch_size)
        self.total_steps = int(s.max_steps or self.steps_per_epoch * s.max_epochs)
        self.optimizer = build_optimizer(self.model, cfg.optimizer)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.scheduler, self.total_steps, self.steps_per_epoch
        )
        # fp16 autocast needs its loss scaled (bf16 and fp32 do not): the scaler skips overflowing steps
        self.scaler = torch.amp.GradScaler(self.device.type) if s.precision == "fp16" else None

        self.progress = Progress()
        self.last_saved_step = None
        if state is not None:
            self.progress = restore(state, self.model, self.optimizer, self.scheduler)
            if self.scaler is not None and "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
            self._check_limits()
            if self.start.resume_path == self.run_dir / "last.pt":
                self.last_saved_step = self.progress.step
        self.clock = RunClock(None if state is None else state.get("timing"), self.progress.step)
        if self.main:
            self.records = RunRecords(self.run_dir, self.info.metric, s.tensorboard, s.wandb)
            if state is not None:
                self.records.drop_rows_after(self.progress.step)
            atomic_write_text(self.run_dir / "config.yaml", self._config_text())
            for note in self.start.notes:
                print(note, flush=True)
        if state is not None:
            set_rng_state(state["rng"])  # last: the next draw is the first step's dropout
            if self.main:
                p = self.progress
                print(
                    f"resumed from {self.start.resume_path}: epoch {p.epoch}, batch {p.batch}, step {p.step}"
                )

    def _check_limits(self) -> None:
        """A resume may add steps or epochs, not remove those already run."""
        s, p = self.settings, self.progress
        if s.max_steps is not None and p.step > s.max_steps:
            raise ValueError(
                f"trainer.max_steps={s.max_steps} is below the {p.step} steps this run has already taken; "
                "a resume may add steps, not remove them"
            )
        if p.epoch > s.max_epochs:
            raise ValueError(
                f"trainer.max_epochs={s.max_epochs} is below the {p.epoch} epochs this run has already "
                "completed; a resume may add epochs, not remove them"
            )

    def _config_text(self) -> str:
        text = OmegaConf.to_yaml(self.cfg, resolve=True)
        if self.history:  # safe changes made on resume, each at the step it took effect
            text += OmegaConf.to_yaml(OmegaConf.create({"resume_history": self.history}))
        return text

    # ------------------------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        extra = {"timing": self.clock.state(self.progress.step), "history": self.history}
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        return checkpoint_state(
            self.model,
            self.optimizer,
            self.scheduler,
            self.progress,
            self.cfg,
            model_config(self.cfg),
            self.info,
            extra,
        )

    def save(self, name: str) -> None:
        if self.main:
            save_atomic(self.checkpoint_state(), self.run_dir / name)
        if name == "last.pt":
            self.last_saved_step = self.progress.step

    # ------------------------------------------------------------------------------------------------
    def _groups_with_non_finite(self, what: str) -> str:
        """The parameter groups (and a few names) whose gradients (``what="grads"``) or values are NaN/inf."""
        bad = []
        for group in self.optimizer.param_groups:
            names = []
            for n, p in zip(group["names"], group["params"]):
                t = p if what == "values" else p.grad
                if t is not None and not torch.isfinite(t).all():
                    names.append(n)
            if names:
                bad.append(f"{group['name']} {names[:4]}")
        return "; ".join(bad)

    def _checkpoint_note(self) -> str:
        if self.last_saved_step is None:
            return "no checkpoint has been written yet"
        return f"the last good checkpoint is {self.run_dir / 'last.pt'} (step {self.last_saved_step})"

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimiser step over a global batch, split into ``trainer.accumulate`` micro-batches.

        Micro-batch i's mean loss is weighted by n_i / n (its share of the scored elements), so the sum
        is the batch's mean loss whether or not ``accumulate`` divides the batch. Returns that loss,
        averaged over ranks.
        """
        self.ddp.train()
        k, n = self.settings.accumulate, float(self._loss.count(y))
        total = 0.0
        for i, (xc, yc) in enumerate(zip(x.tensor_split(k), y.tensor_split(k))):
            sync = i == k - 1 or self.world == 1
            ctx = self.ddp.no_sync() if not sync else contextlib.nullcontext()
            weight = float(self._loss.count(yc)) / n if n else 1.0 / k
            with ctx:
                with autocast(self.device, self.settings.precision):
                    out = self.ddp(xc)
                    # a micro-batch with nothing to score still runs, for DDP's gradient sync
                    loss = (
                        loss_fn(self.info.task, out, yc, loss=self.info.loss) * weight
                        if weight
                        else out.sum() * 0
                    )
                (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            total += loss.item()
        total, self._stop = distributed.mean_and_any(total, self.stopper.requested, self.device)
        where = f"step {self.progress.step + 1} (epoch {self.progress.epoch}, batch {self.progress.batch})"
        if not math.isfinite(total):
            grads = self._groups_with_non_finite("grads") or "none"
            values = self._groups_with_non_finite("values") or "none"
            raise NonFiniteLossError(
                f"non-finite training loss {total} at {where}; parameter groups with non-finite gradients: "
                f"{grads}; with non-finite values: {values}; {self._checkpoint_note()}"
            )
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # an overflow here is the scaler's to skip, not an error
        else:
            grads = self._groups_with_non_finite("grads")  # before clipping, which would spread a NaN
            if grads:
                raise NonFiniteLossError(
                    f"non-finite gradients at {where} in parameter group(s): {grads}; "
                    f"{self._checkpoint_note()}"
                )
        if self.settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
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
            batch=self.settings.eval_batch_size,
            device=self.device,
            precision=self.settings.precision,
            workers=self.settings.num_workers,
            world=self.world,
            rank=self.rank,
        )

    # ------------------------------------------------------------------------------------------------
    def _end_of_interval(self, epoch_done: bool = False) -> None:
        """Validate, log, and write last (and best) checkpoints; after an epoch, start its loss anew."""
        p, metric = self.progress, self.info.metric
        rate = self.clock.rate("eval")  # the interval's training, without the validation below
        p.evaluated_step = p.step
        val = self.evaluate(self.data.val)
        score = val[metric]
        if not (math.isfinite(score) and math.isfinite(val["loss"])):
            raise NonFiniteMetricError(
                f"validation {metric} {score} (loss {val['loss']}) at step {p.step} (epoch {p.epoch}): a NaN "
                "or inf is not a score, so the run stops rather than keep or compare it. Look for NaN/inf in "
                f"the validation data or a diverging model; {self._checkpoint_note()}"
            )
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val["loss"])
        better = p.best is None or (score > p.best if higher_is_better(metric) else score < p.best)
        if better:
            p.best = score
        row = {
            "epoch": p.epoch,
            "step": p.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": p.loss_sum / max(p.loss_count, 1),
            "val_loss": val["loss"],
            "val_metric": score,
            "tokens_per_s": round(rate),
            "elapsed_s": round(self.clock.elapsed(), 1),  # the whole run's, across resumes
        }
        if self.main:
            self.records.log_eval(row)
            if "sparsity" in val:  # models with spiking layers: firing rates and energy to TensorBoard
                self.records.log_sparsity(p.step, val["sparsity"])
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
        self.clock.restart_intervals()  # the next intervals start after this validation

    def fit(self) -> dict:
        """Train to the end (``finish``); stops with NonFiniteLossError, NonFiniteMetricError or, on
        Ctrl-C, Interrupted (after writing last.pt). The run folder is released however it ends."""
        try:
            with self.stopper:
                self._train()
            return self.finish()
        finally:
            self.close()

    def _train(self) -> None:
        s, p = self.settings, self.progress
        kill_after = kill_after_step()
        length = self.info.length or 1
        while p.epoch < s.max_epochs and p.step < self.total_steps:
            sampler = EpochBatches(
                len(self.data.train), s.batch_size, self.world, self.rank, s.seed, p.epoch, p.batch
            )
            loader = train_loader(self.data.train, sampler, s.num_workers, s.seed)
            bar = _progress_bar(self.main and s.progress, len(sampler), f"epoch {p.epoch}")
            for x, y in loader:
                x, y = x.to(self.device), y.to(self.device)
                loss = self.train_step(x, y)
                p.step, p.batch = p.step + 1, p.batch + 1
                p.loss_sum, p.loss_count = p.loss_sum + loss, p.loss_count + 1
                self.clock.add(x.shape[0] * length * self.world)
                lr = self.optimizer.param_groups[0]["lr"]
                if self.main:
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{self.clock.rate('bar'):.0f}"
                        )
                        bar.update(1)
                    elif p.step % s.log_every_steps == 0:
                        print(
                            f"step {p.step} epoch {p.epoch} loss {loss:.4f} lr {lr:.2e} "
                            f"{self.clock.rate('log'):.0f} tokens/s",
                            flush=True,
                        )
                    self.records.log_train(p.step, loss, lr)
                last_of_epoch = p.batch == self.steps_per_epoch
                if s.eval_every_steps and p.step % s.eval_every_steps == 0 and not last_of_epoch:
                    self._end_of_interval()
                elif (
                    s.checkpoint_every_steps and p.step % s.checkpoint_every_steps == 0 and not last_of_epoch
                ):
                    self.save("last.pt")
                if last_of_epoch:
                    p.epoch, p.batch = p.epoch + 1, 0
                    self._end_of_interval(epoch_done=True)
                if kill_after is not None and p.step == kill_after:
                    kill_now()  # fault injection for the resume tests (see lindy.train.resume)
                # one process sees its own Ctrl-C at once; DDP ranks agree on it in the next step's reduction
                if self._stop or (self.world == 1 and self.stopper.requested):
                    self.save("last.pt")
                    raise Interrupted(p.step, self.run_dir / "last.pt", self.world)
                if p.step >= self.total_steps:
                    break
            if bar is not None:
                bar.close()
        if p.evaluated_step != p.step:  # stopped by max_steps inside an epoch
            self._end_of_interval()

    def finish(self) -> dict:
        distributed.barrier()
        wall, tokens = self.clock.elapsed(), self.clock.tokens()
        best = load_checkpoint(self.run_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(best["model"])
        test = self.evaluate(self.data.test)
        sparsity = test.pop("sparsity", None)  # spiking models only; "test" keeps loss and metric
        overrides = result_overrides(self.overrides)
        summary = {
            "experiment": self.cfg.name,
            "overrides": overrides,  # what makes this run other than the experiment's own
            "run": " ".join([str(self.cfg.name), *overrides]),
            "fingerprint": fingerprint(self.cfg),
            "test": test,
            "best_val": self.progress.best,
            "metric": self.info.metric,
            "epochs": self.progress.epoch,
            "steps": self.progress.step,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "tokens_per_s": round(tokens / max(wall, 1e-9)),  # the whole run's, across resumes
            "wall_time_s": round(wall, 1),
            "segments": self.clock.segments(self.progress.step),  # each process of a resumed run
            "resume_history": self.history,
            "device": str(self.device),
            "world_size": self.world,
            "git_commit": git_commit(),
            "data_source": self.info.source,
            "fast_paths": fast_path_status(),  # a fast path that could not build is never silent
        }
        if sparsity is not None:
            summary["sparsity"] = sparsity
        if self.main:
            write_summary(self.run_dir, summary)
            print(f"test: {test}  ->  {self.run_dir}")
            if sparsity is not None:
                print(sparsity_line(sparsity))
        return summary

    def close(self) -> None:
        """Close the loggers and release the run folder and the process group (idempotent)."""
        if self.records is not None:
            self.records.close()
            self.records = None
        self.start.release()
        distributed.cleanup()


def _progress_bar(enabled, total: int, desc: str):
    """tqdm when attached to a terminal (or forced with trainer.progress=true); plain lines otherwise."""
    if enabled is False or enabled is None:
        return None
    if enabled == "auto" and not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
