"""The loss and metric registries: names a TaskInfo refers to, exact accumulation, clear errors."""

import math

import pytest
import torch

from lindy import metrics
from lindy.data.base import TaskInfo
from lindy.train.metrics import MetricSum, higher_is_better, loss_fn


def test_named_loss_overrides_the_task_default():
    out, target = torch.tensor([[0.0], [3.0]]), torch.zeros(2, 1)
    assert loss_fn("regression", out, target).item() == pytest.approx(4.5)  # MSE by default
    assert loss_fn("regression", out, target, loss="smooth_l1").item() == pytest.approx((0 + 2.5) / 2)
    m = MetricSum("regression", "mse", "cpu", loss="smooth_l1")
    m.update(out, target)
    assert m.result() == pytest.approx({"loss": 1.25, "mse": 4.5})  # the metric stays the metric


def test_unknown_names_are_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"loss must be one of .*'smooth_l1'.*got 'huber'"):
        TaskInfo(1, 1, 10, "regression", "mse", loss="huber")
    with pytest.raises(ValueError, match=r"metric must be one of .*'accuracy'.*got 'f1'"):
        TaskInfo(1, 2, 10, "classification", "f1")
    with pytest.raises(ValueError, match="already registered"):
        metrics.register_loss("mse")(lambda o, t: (o - t).abs().mean())


def test_metric_that_needs_the_input(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))

    @metrics.register_metric("input_sign_agreement", higher_is_better=True, needs_input=True)
    def _agree(output, target, input):
        hits = (output.sign() == input.sign()).sum().double()
        return hits, torch.tensor(float(output.numel()), dtype=torch.float64)

    m = MetricSum("per_step_regression", "input_sign_agreement", "cpu")
    x = torch.tensor([[[1.0], [-1.0], [1.0], [1.0]]])
    with pytest.raises(ValueError, match="needs the model input"):
        m.update(x, x)
    m.update(x, torch.zeros_like(x), input=3 * x)
    assert m.result()["input_sign_agreement"] == pytest.approx(1.0)
    assert higher_is_better("input_sign_agreement") and not higher_is_better("rmse")


def test_language_modelling_scores_only_scored_tokens_even_across_batches():
    m = MetricSum("language_modeling", "perplexity", "cpu")
    target = torch.full((1, 4), -100)
    m.update(torch.randn(1, 4, 3), target)  # nothing scored: contributes nothing, not NaN
    target[0, -1] = 2
    m.update(torch.zeros(1, 4, 3), target)
    r = m.result()
    assert r["loss"] == pytest.approx(math.log(3)) and r["perplexity"] == pytest.approx(3.0)
