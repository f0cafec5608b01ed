import math

import pytest
import torch

from lindy.train.metrics import MetricSum


def test_classification_accuracy_and_loss():
    m = MetricSum("classification", "accuracy", "cpu")
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    m.update(logits[:2], torch.tensor([0, 0]))
    m.update(logits[2:], torch.tensor([0]))
    r = m.result()
    assert r["accuracy"] == pytest.approx(2 / 3)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 0])).item()
    assert r["loss"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("metric", ["mse", "rmse"])
def test_regression(metric):
    m = MetricSum("regression", metric, "cpu")
    m.update(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]))
    assert m.result()[metric] == pytest.approx(5.0 if metric == "mse" else math.sqrt(5.0))


def test_per_step_regression_weights_every_step():
    m = MetricSum("per_step_regression", "mse", "cpu")
    m.update(torch.ones(1, 4, 1), torch.zeros(1, 4, 1))
    m.update(torch.full((1, 2, 1), 2.0), torch.zeros(1, 2, 1))
    assert m.result()["mse"] == pytest.approx((4 * 1 + 2 * 4) / 6)


@pytest.mark.parametrize("metric", ["perplexity", "bpc"])
def test_language_modelling(metric):
    m = MetricSum("language_modeling", metric, "cpu")
    logits = torch.zeros(2, 5, 4)  # uniform over 4 tokens: loss ln 4
    m.update(logits, torch.randint(0, 4, (2, 5)))
    r = m.result()
    assert r["loss"] == pytest.approx(math.log(4))
    assert r[metric] == pytest.approx(4.0 if metric == "perplexity" else 2.0)
