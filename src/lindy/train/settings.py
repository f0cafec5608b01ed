"""The trainer's and loader's settings, read once and checked where they are read.

``read_settings(cfg)`` turns ``cfg.trainer``, ``cfg.loader`` and ``cfg.seed`` into a frozen
``Settings``; every value is checked with ``lindy._checks`` and a bad one fails with a message naming the
key and what it accepts (``trainer.grad_clip must be >= 0.0, got -1.0``) before anything is built. The
optimiser's and schedule's values are checked where they are read, in ``lindy.train.optim``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lindy._checks import check_bool, check_choice, check_count, check_finite_number

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Settings:
    """What ``cfg.trainer`` / ``cfg.loader`` / ``cfg.seed`` say, checked (see config.yaml for meanings)."""

    seed: int
    max_epochs: int
    max_steps: int | None
    device: str
    precision: str
    grad_clip: float
    accumulate: int
    eval_every_steps: int | None
    checkpoint_every_steps: int | None
    log_every_steps: int
    run_root: str
    run_dir: str | None
    resume: str  # "never" | "auto" | a checkpoint path
    overwrite: bool
    tensorboard: bool
    wandb: dict | None
    progress: Any  # "auto" | True | False
    threads: int | None
    deterministic: bool
    batch_size: int
    eval_batch_size: int
    num_workers: int


def read_settings(cfg: DictConfig) -> Settings:
    t, loader = cfg.trainer, cfg.loader
    return Settings(
        seed=check_count("seed", cfg.seed, minimum=0),
        max_epochs=check_count("trainer.max_epochs", t.max_epochs),
        max_steps=_optional_count("trainer.max_steps", t.get("max_steps")),
        device=_device(t.get("device", "auto")),
        precision=check_choice("trainer.precision", t.get("precision", "fp32"), PRECISIONS),
        grad_clip=check_finite_number("trainer.grad_clip", t.get("grad_clip", 0.0), low=0.0),
        accumulate=check_count("trainer.accumulate", t.get("accumulate", 1)),
        eval_every_steps=_optional_count("trainer.eval_every_steps", t.get("eval_every_steps")),
        checkpoint_every_steps=_optional_count(
            "trainer.checkpoint_every_steps", t.get("checkpoint_every_steps")
        ),
        log_every_steps=check_count("trainer.log_every_steps", t.get("log_every_steps", 50)),
        run_root=_path("trainer.run_root", t.get("run_root", "runs")),
        run_dir=None if t.get("run_dir") is None else _path("trainer.run_dir", t.run_dir),
        resume=_resume(t.get("resume")),
        overwrite=check_bool("trainer.overwrite", t.get("overwrite", False)),
        tensorboard=check_bool("trainer.tensorboard", t.get("tensorboard", True)),
        wandb=_wandb(t.get("wandb")),
        progress=_progress(t.get("progress", "auto")),
        threads=_optional_count("trainer.threads", t.get("threads")),
        deterministic=check_bool("trainer.deterministic", t.get("deterministic", True)),
        batch_size=check_count("loader.batch_size", loader.batch_size),
        eval_batch_size=check_count("loader.eval_batch_size", loader.eval_batch_size),
        num_workers=check_count("loader.num_workers", loader.get("num_workers", 0), minimum=0),
    )


def check_world(settings: Settings, world: int) -> None:
    """The batch splits evenly over ``world`` processes and has an example per micro-batch."""
    if settings.batch_size % world:
        raise ValueError(
            f"loader.batch_size must be divisible by the number of processes ({world}), "
            f"got {settings.batch_size}"
        )
    per_rank = settings.batch_size // world
    if settings.accumulate > per_rank:
        raise ValueError(
            f"trainer.accumulate must be <= the {per_rank} examples each process gets per step "
            f"(loader.batch_size={settings.batch_size} over {world} process(es)), got {settings.accumulate}"
        )


def _optional_count(name: str, value) -> int | None:
    return None if value is None else check_count(name, value)


def _device(value) -> str:
    if not isinstance(value, str) or not DEVICE.match(value):
        raise ValueError(f"trainer.device must be auto, cpu, cuda, cuda:<index> or mps, got {value!r}")
    if value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"trainer.device={value} but torch sees no CUDA device; use cpu or auto")
    return value


def _path(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a folder path, got {value!r}")
    return value


def _resume(value) -> str:
    if value in (None, False, "never"):
        return "never"
    if not isinstance(value, str) or not value:
        raise ValueError(f"trainer.resume must be never, auto or the path of a last.pt, got {value!r}")
    return value


def _progress(value):
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f"trainer.progress must be auto, true or false, got {value!r}")


def _wandb(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, (dict, DictConfig)):
        raise ValueError(f"trainer.wandb must be null or a dict of wandb.init arguments, got {value!r}")
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else dict(value)
