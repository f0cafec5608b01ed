"""Optimiser groups from the parameters' own hints, optimisers and learning-rate schedules.

Groups: "decay" (weights of Linear/Embedding layers: the global weight decay), "no_decay" (1-D tensors:
biases, norm weights, skip scalars) and one group per distinct ``_optim`` hint that layers put on their
SSM parameters (A, B, dt, ...): the hinted weight decay (0 by default) and lr = min(global lr, hinted lr).
The groups are decided by tags, never by tensor rank alone for SSM parameters, which are often 2-D.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        hint = getattr(p, "_optim", None)
        if hint is not None:
            group_lr = min(lr, hint["lr"]) if "lr" in hint else lr
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
    """cfg: name (adamw | adam | sgd), lr, weight_decay, betas, momentum."""
    groups = param_groups(model, cfg.lr, cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"optimizer.name must be one of ['adamw', 'adam', 'sgd'], got {cfg.name!r}")


def build_scheduler(optimizer, cfg, total_steps: int, steps_per_epoch: int = 1):
    """cfg.name: constant | cosine (linear warm-up then cosine to 0) | multistep | plateau.

    multistep milestones count optimiser steps, or epochs when ``cfg.unit == "epoch"``.

    Step-based schedules are stepped once per optimiser step; ``plateau`` once per evaluation with the
    validation loss (``Trainer`` does this).
    """
    name = cfg.name
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "cosine":
        warmup = int(cfg.warmup_steps)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if name == "multistep":
        unit = cfg.get("unit", "step")
        if unit not in ("step", "epoch"):
            raise ValueError(f"scheduler.unit must be one of ['step', 'epoch'], got {unit!r}")
        # the scheduler is stepped once per optimiser step, so epoch milestones become step counts
        scale = steps_per_epoch if unit == "epoch" else 1
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[int(m) * scale for m in cfg.milestones], gamma=cfg.gamma
        )
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=cfg.patience)
    raise ValueError(
        f"scheduler.name must be one of ['constant', 'cosine', 'multistep', 'plateau'], got {name!r}"
    )
