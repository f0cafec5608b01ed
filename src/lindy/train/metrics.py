"""Loss and headline metric of each task type, accumulated as sums so that they reduce across ranks.

classification: cross-entropy, accuracy. regression / per_step_regression: MSE; metric mse or rmse.
language_modeling: token cross-entropy (nats); metric perplexity = exp(loss) or bpc = loss / ln 2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def loss_fn(task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task == "classification":
        return F.cross_entropy(output.float(), target)
    if task == "language_modeling":
        return F.cross_entropy(output.float().flatten(0, 1), target.flatten())
    return F.mse_loss(output.float(), target.float())


class MetricSum:
    """Accumulates (loss sum, correct, count) over batches; ``result`` gives loss and the metric."""

    def __init__(self, task: str, metric: str, device):
        self.task, self.metric = task, metric
        self.totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        if self.task == "language_modeling":
            n = target.numel()
        elif self.task == "classification":
            n = target.shape[0]
        else:
            n = target.numel()
        loss = loss_fn(self.task, output, target).double()
        correct = (output.argmax(-1) == target).sum().double() if self.task == "classification" else 0.0
        self.totals += torch.stack(
            [
                loss * n,
                torch.as_tensor(correct, dtype=torch.float64, device=loss.device),
                torch.tensor(float(n), dtype=torch.float64, device=loss.device),
            ]
        )

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.totals)

    def result(self) -> dict[str, float]:
        loss_sum, correct, n = self.totals.tolist()
        loss = loss_sum / max(n, 1)
        out = {"loss": loss}
        if self.metric == "accuracy":
            out["accuracy"] = correct / max(n, 1)
        elif self.metric == "rmse":
            out["rmse"] = math.sqrt(loss)
        elif self.metric == "mse":
            out["mse"] = loss
        elif self.metric == "perplexity":
            out["perplexity"] = math.exp(min(loss, 50.0))
        elif self.metric == "bpc":
            out["bpc"] = loss / math.log(2)
        return out


def higher_is_better(metric: str) -> bool:
    return metric == "accuracy"
