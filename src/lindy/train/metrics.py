"""The trainer's loss and headline metric, accumulated as sums so that they reduce exactly across ranks.

The loss and metric are named in the data set's ``TaskInfo`` and defined in ``lindy.metrics`` (the
registries); the loss defaults to the task type's (cross-entropy or MSE).
"""

from __future__ import annotations

import torch

from lindy.metrics import default_loss, get_loss, get_metric, weighted_sum


def loss_fn(
    task: str, output: torch.Tensor, target: torch.Tensor, *, loss: str | None = None
) -> torch.Tensor:
    """The training loss (a mean): ``loss`` by name, or the task type's default."""
    return get_loss(loss or default_loss(task)).fn(output, target)


class MetricSum:
    """Accumulates (loss sum, loss count, metric sum, metric count); ``result`` gives loss and the metric."""

    def __init__(self, task: str, metric: str, device, *, loss: str | None = None):
        self.task, self.metric = task, metric
        self._loss, self._metric = get_loss(loss or default_loss(task)), get_metric(metric)
        self.totals = torch.zeros(4, dtype=torch.float64, device=device)

    def update(self, output: torch.Tensor, target: torch.Tensor, input: torch.Tensor | None = None) -> None:
        if self._metric.needs_input and input is None:
            raise ValueError(f"metric {self.metric!r} needs the model input: pass input=")
        n = self._loss.count(target).to(self.totals.device)
        metric_sum, metric_n = self._metric.batch(output, target, input)
        loss_sum = weighted_sum(self._loss.fn(output, target), n)
        self.totals += torch.stack([loss_sum, n, metric_sum.double(), metric_n.double()])

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.totals)

    def result(self) -> dict[str, float]:
        loss_sum, n, metric_sum, metric_n = self.totals.tolist()
        return {"loss": loss_sum / max(n, 1), self.metric: self._metric.finish(metric_sum / max(metric_n, 1))}


def higher_is_better(metric: str) -> bool:
    return get_metric(metric).higher_is_better
