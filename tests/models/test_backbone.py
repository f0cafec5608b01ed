"""Backbone behaviour beyond the conformance suite: pooled heads streaming, tokens, build_model."""

import pytest
import torch

from lindy.data import TaskInfo
from lindy.models import SequenceModel, build_model


def small(**kw):
    torch.manual_seed(0)
    base = dict(d_model=8, n_layers=2, layer="s4d", layer_kwargs=dict(d_state=4))
    return SequenceModel(**{**base, **kw}).double().eval()


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("mlp", [None, "glu"])
def test_pooled_streaming_equals_forward(pooling, mlp):
    model = small(d_input=3, d_output=5, pooling=pooling, mlp=mlp)
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    full = model(x)
    assert full.shape == (2, 5)
    state = model.initial_state(2)
    for t in range(11):
        y_t, state = model.step(x[:, t], state)
    torch.testing.assert_close(y_t, full)
    state = model.initial_state(2)
    for chunk in x.split([4, 1, 6], dim=1):
        y, state = model.forward_with_state(chunk, state)
    torch.testing.assert_close(y, full)


def test_language_model_tokens_and_tied_embeddings():
    model = small(d_input=20, d_output=20, tokens=True, pooling="none", tie_embeddings=True)
    assert model.decoder.weight is model.encoder.weight
    x = torch.randint(0, 20, (3, 9))
    logits = model(x)
    assert logits.shape == (3, 9, 20)
    state, outs = model.initial_state(3), []
    for t in range(9):
        y_t, state = model.step(x[:, t], state)
        outs.append(y_t)
    torch.testing.assert_close(torch.stack(outs, 1), logits)
    with pytest.raises(TypeError, match="integer token"):
        model(torch.randn(3, 9))
    with pytest.raises(ValueError, match="tie_embeddings"):
        SequenceModel(4, 5, tokens=False, tie_embeddings=True)


def test_bidirectional_model_refuses_to_stream():
    model = small(d_input=2, d_output=2, layer_kwargs=dict(d_state=4, bidirectional=True))
    assert model(torch.randn(1, 5, 2, dtype=torch.float64)).shape == (1, 2)
    with pytest.raises(NotImplementedError, match="recurrent"):
        model.initial_state(1)


def test_build_model_picks_the_head_from_the_task():
    info = TaskInfo(d_input=1, d_output=10, length=784, task="classification", metric="accuracy")
    model = build_model(dict(d_model=8, n_layers=1, layer_kwargs=dict(d_state=4)), info)
    assert model.pooling == "mean" and model(torch.randn(2, 30, 1)).shape == (2, 10)
    info = TaskInfo(d_input=2, d_output=1, length=100, task="per_step_regression", metric="rmse")
    assert build_model(dict(d_model=8, n_layers=1), info).pooling == "none"
    with pytest.raises(ValueError, match="d_input"):
        build_model(dict(d_input=3), info)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(norm="group"), "norm"),
        (dict(pooling="max"), "pooling"),
        (dict(layer="transformer"), "layer must be one of"),
        (dict(n_layers=0), "n_layers"),
        (dict(dropout=float("nan")), "dropout"),
        (dict(mlp="swiglu"), "mlp"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceModel(2, 3, **kwargs)


def test_non_finite_checkpoint_is_refused():
    model = small(d_input=2, d_output=3)
    state = model.state_dict()
    state["encoder.weight"] = torch.full_like(state["encoder.weight"], float("inf"))
    with pytest.raises(ValueError, match="encoder.weight"):
        model.load_state_dict(state)


def test_plain_stack_without_residual():
    model = small(
        d_input=3,
        d_output=2,
        n_layers=1,
        residual=False,
        norm="none",
        pooling="none",
        layer="lem",
        layer_kwargs=dict(dt=0.5),
    )
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    block = model.blocks[0].layer
    torch.testing.assert_close(model(x), model.decoder(block(model.encoder(x))))
