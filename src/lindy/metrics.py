"""Losses and metrics by name: small registries that a data set's ``TaskInfo`` refers to.

A loss maps ``(output, target)`` to a mean over its scored elements; a metric maps one batch to a
``(sum, count)`` pair, so that it accumulates over batches and reduces across ranks exactly, and
``finish(sum / count)`` gives the reported value. A metric with ``needs_input`` also receives the model's
input (e.g. a spiking family's agreement between its fast neuron and the exact one).

Defaults per task type (``TaskInfo.loss = None``): classification and language_modeling train with
cross-entropy (targets of -100 are not scored), regression and per_step_regression with MSE.

=============  ===========================================================  ===============
metric         per batch                                                    reported
=============  ===========================================================  ===============
accuracy       (argmax(output) == target) summed, over targets              mean
mse / rmse     squared error summed, over elements                          mean / sqrt
perplexity     token cross-entropy (nats) summed, over scored tokens        exp(mean)
bpc            token cross-entropy (nats) summed, over scored tokens        mean / ln 2
mae            absolute error summed, over elements                         mean
spike_         1[(output_t + x_t >= 1) == (target_t + x_t >= 1)] summed,    mean
agreement      over elements (output, target: membrane before the input x_t;
               needs the input: SDN, Shen et al. 2024, threshold v_th = 1)
=============  ===========================================================  ===============
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_LOSS",
    "LOSSES",
    "METRICS",
    "Loss",
    "Metric",
    "default_loss",
    "get_loss",
    "get_metric",
    "register_loss",
    "register_metric",
    "weighted_sum",
]

IGNORE_INDEX = -100  # F.cross_entropy's default: unscored language-modelling targets


@dataclass(frozen=True)
class Loss:
    """``fn(output, target)`` -> mean over ``count(target)`` scored elements (a 0-dim float32 tensor)."""

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    count: Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Metric:
    """``batch(output, target, input)`` -> (sum, count) as float64 tensors; reported ``finish(sum/count)``."""

    name: str
    batch: Callable[[Tensor, Tensor, Tensor | None], tuple[Tensor, Tensor]]
    higher_is_better: bool
    needs_input: bool = False
    finish: Callable[[float], float] = float


LOSSES: dict[str, Loss] = {}
METRICS: dict[str, Metric] = {}
DEFAULT_LOSS = {
    "classification": "cross_entropy",
    "language_modeling": "cross_entropy",
    "regression": "mse",
    "per_step_regression": "mse",
}


def _register(table: dict, kind: str, item) -> None:
    if item.name in table and table[item.name] != item:
        raise ValueError(f"{kind} name {item.name!r} is already registered")
    table[item.name] = item


def register_loss(name: str, *, count: Callable[[Tensor], Tensor] | None = None):
    """Decorator: register ``fn(output, target) -> mean`` as loss ``name`` (``count``: scored elements)."""

    def decorate(fn):
        _register(LOSSES, "loss", Loss(name, fn, count or _numel))
        return fn

    return decorate


def register_metric(name: str, *, higher_is_better: bool, needs_input: bool = False, finish=float):
    """Decorator: register ``batch(output, target, input) -> (sum, count)`` as metric ``name``."""

    def decorate(fn):
        _register(METRICS, "metric", Metric(name, fn, higher_is_better, needs_input, finish))
        return fn

    return decorate


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise ValueError(f"{kind} must be one of {sorted(table)}, got {name!r}")
    return table[name]


def get_loss(name: str) -> Loss:
    return _lookup(LOSSES, "loss", name)


def get_metric(name: str) -> Metric:
    return _lookup(METRICS, "metric", name)


def default_loss(task: str) -> str:
    return _lookup(DEFAULT_LOSS, "task", task)


# ----------------------------------------------------------------------------------------------- losses
def _numel(target: Tensor) -> Tensor:
    return torch.tensor(float(target.numel()), dtype=torch.float64, device=target.device)


def _scored(target: Tensor) -> Tensor:
    return (target != IGNORE_INDEX).sum().double()


def _flat_logits(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    # (B, C) with (B,) for classification; (B, L, V) with (B, L) for language modelling
    return output.float().reshape(target.numel(), -1), target.reshape(-1)


@register_loss("cross_entropy", count=_scored)
def _cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(*_flat_logits(output, target))


@register_loss("mse")
def _mse(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output.float(), target.float())


@register_loss("smooth_l1")
def _smooth_l1(output: Tensor, target: Tensor) -> Tensor:
    return F.smooth_l1_loss(output.float(), target.float())


@register_loss("l1")
def _l1(output: Tensor, target: Tensor) -> Tensor:
    return F.l1_loss(output.float(), target.float())


# ---------------------------------------------------------------------------------------------- metrics
@register_metric("accuracy", higher_is_better=True)
def _accuracy(output: Tensor, target: Tensor, input: Tensor | None) -> tuple[Tensor, Tensor]:
    return (output.argmax(-1) == target).sum().double(), _numel(target)


def _squared_error(output: Tensor, target: Tensor, input: Tensor | None) -> tuple[Tensor, Tensor]:
    n = _numel(target)
    return _mse(output, target).double() * n, n


def _token_nats(output: Tensor, target: Tensor, input: Tensor | None) -> tuple[Tensor, Tensor]:
    n = _scored(target)
    return weighted_sum(_cross_entropy(output, target), n), n


def weighted_sum(mean: Tensor, n: Tensor) -> Tensor:
    """``mean * n`` in float64; a batch with nothing scored has a NaN mean; it contributes nothing instead."""
    return torch.where(n > 0, mean.double() * n, torch.zeros_like(n))


register_metric("mse", higher_is_better=False)(_squared_error)
register_metric("rmse", higher_is_better=False, finish=math.sqrt)(_squared_error)
# exp overflows past ~709 nats; a diverged model's perplexity is reported as e^50 instead of inf
register_metric("perplexity", higher_is_better=False, finish=lambda nats: math.exp(min(nats, 50.0)))(
    _token_nats
)
register_metric("bpc", higher_is_better=False, finish=lambda nats: nats / math.log(2))(_token_nats)


@register_metric("mae", higher_is_better=False)
def _mae(output: Tensor, target: Tensor, input: Tensor | None) -> tuple[Tensor, Tensor]:
    return (output.double() - target.double()).abs().sum(), _numel(target)


@register_metric("spike_agreement", higher_is_better=True, needs_input=True)
def _spike_agreement(output: Tensor, target: Tensor, input: Tensor) -> tuple[Tensor, Tensor]:
    # a LIF neuron (v_th = 1) spikes when its decayed membrane plus this step's input reaches the threshold
    hits = ((output + input >= 1.0) == (target + input >= 1.0)).sum().double()
    return hits, _numel(target)
