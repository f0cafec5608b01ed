"""Optimiser groups from the parameters' own hints, optimisers and learning-rate schedules.

Groups: "decay" (weights of Linear/Embedding layers: the global weight decay), "no_decay" (1-D tensors:
biases, norm weights, skip scalars) and one group per distinct ``_optim`` hint that layers put on their
SSM parameters (A, B, dt, ...): the hinted weight decay (0 by default) and an lr that ``optimizer.hint_lr``
decides: "cap" (default) lr = min(global lr, hinted lr), so a small global lr is never raised; "absolute"
lr = hinted lr, even above the global lr (the state-spaces/s4 framework's meaning, which DeepLDNN's configs
rely on). Every schedule multiplies each group's own lr by the same factor, so the ratios hold all run.
The groups are decided by tags, never by tensor rank alone for SSM parameters, which are often 2-D.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lindy._checks import check_choice, check_count, check_finite_number

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "multistep", "plateau")
HINT_LRS = ("cap", "absolute")


def param_groups(model: nn.Module, lr: float, weight_decay: float, hint_lr: str = "cap") -> list[dict]:
    """The optimiser groups of ``model``'s trainable parameters (see the module docstring).

    ``hint_lr``: "cap" (a hinted lr is min(lr, hint)) or "absolute" (a hinted lr is used as is).
    """
    check_choice("optimizer.hint_lr", hint_lr, HINT_LRS)
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        hint = getattr(p, "_optim", None)
        if hint is not None:
            if "lr" not in hint:
                group_lr = lr
            else:
                group_lr = hint["lr"] if hint_lr == "absolute" else min(lr, hint["lr"])
            wd = hint.get("weight_decay", 0.0)
            key = f"ssm(lr={group_lr:g},wd={wd:g})"
            group = groups.setdefault(
                key, {"name": key, "params": [], "names": [], "lr": group_lr, "weight_decay": wd}
            )
        elif p.dim() < 2:
            group = groups.setdefault(
                "no_decay", {"name": "no_decay", "params": [], "names": [], "lr": lr, "weight_decay": 0.0}
            )
        else:
            group = groups.setdefault(
                "decay", {"name": "decay", "params": [], "names": [], "lr": lr, "weight_decay": weight_decay}
            )
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """cfg: name (adamw | adam | sgd), lr > 0, weight_decay >= 0, betas in [0, 1), momentum >= 0,
    hint_lr (cap | absolute: how a parameter's own lr hint relates to lr, see ``param_groups``)."""
    name = check_choice("optimizer.name", cfg.name, OPTIMIZERS)
    lr = check_finite_number("optimizer.lr", cfg.lr, positive=True)
    weight_decay = check_finite_number("optimizer.weight_decay", cfg.get("weight_decay", 0.0), low=0.0)
    hint_lr = check_choice("optimizer.hint_lr", cfg.get("hint_lr", "cap"), HINT_LRS)
    groups = param_groups(model, lr, weight_decay, hint_lr)
    if name == "sgd":
        momentum = check_finite_number("optimizer.momentum", cfg.get("momentum", 0.0), low=0.0)
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    betas = _betas(cfg.get("betas", [0.9, 0.999]))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    return torch.optim.Adam(groups, lr=lr, betas=betas)


def _betas(value) -> tuple[float, float]:
    if not hasattr(value, "__len__") or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"optimizer.betas must be two numbers in [0, 1), got {value!r}")
    out = tuple(check_finite_number("optimizer.betas", b, low=0.0) for b in value)
    if max(out) >= 1.0:
        raise ValueError(f"optimizer.betas must be two numbers in [0, 1), got {list(value)!r}")
    return out


def build_scheduler(optimizer, cfg, total_steps: int, steps_per_epoch: int = 1):
    """cfg.name: constant | cosine (linear warm-up then cosine to 0) | multistep | plateau.

    multistep milestones count optimiser steps, or epochs when ``cfg.unit == "epoch"``.

    Step-based schedules are stepped once per optimiser step; ``plateau`` once per evaluation with the
    validation loss (``Trainer`` does this).
    """
    name = check_choice("scheduler.name", cfg.name, SCHEDULES)
    warmup = check_count("scheduler.warmup_steps", cfg.get("warmup_steps", 0), minimum=0)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "cosine":

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    gamma = check_finite_number("scheduler.gamma", cfg.get("gamma", 0.1), positive=True)
    if name == "multistep":
        unit = check_choice("scheduler.unit", cfg.get("unit", "step"), ("step", "epoch"))
        milestones = cfg.get("milestones", [])
        if isinstance(milestones, str) or not hasattr(milestones, "__iter__"):
            raise ValueError(
                f"scheduler.milestones must be a list of step or epoch counts, got {milestones!r}"
            )
        milestones = [check_count("scheduler.milestones", m) for m in milestones]
        # the scheduler is stepped once per optimiser step, so epoch milestones become step counts
        scale = steps_per_epoch if unit == "epoch" else 1
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[m * scale for m in milestones], gamma=gamma
        )
    if gamma >= 1.0:
        raise ValueError(f"scheduler.gamma must be < 1 for the plateau schedule (lr *= gamma), got {gamma}")
    patience = check_count("scheduler.patience", cfg.get("patience", 5), minimum=0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=gamma, patience=patience)
