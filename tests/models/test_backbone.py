"""The backbone (lindy.models): shapes of every head, streaming == forward, causality, gradients, errors.

The tests run around a tiny causal test layer defined here (passed as a class, never registered by
library code), and around the registered S4D / LEM layers when they are present.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.func import functional_call

from lindy.data import TaskInfo
from lindy.layers.base import LAYERS, LayerSpec, SequenceLayer, register_ssm_param
from lindy.models import (
    TASK_POOLING,
    FeedForward,
    ResidualBlock,
    SequenceModel,
    SequencePooling,
    build_model,
)

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------
# a tiny causal layer: per channel, h_t = a h_{t-1} + b x_t, y_t = c h_t + d x_t, a = sigmoid(alpha)
# ----------------------------------------------------------------------------------------------------
class ToyRecurrence(SequenceLayer):
    """Diagonal linear recurrence; parallel mode by the explicit (L, L) kernel a^(t-s), s <= t."""

    def __init__(self, d_model: int, *, d_input: int | None = None, lr: float | None = None):
        super().__init__(d_model, d_input=d_input)
        register_ssm_param(self, "alpha", torch.randn(d_model), lr=lr)
        self.b = nn.Parameter(torch.randn(self.d_input, d_model) / self.d_input**0.5)
        self.c = nn.Parameter(torch.randn(d_model))
        self.d = nn.Parameter(torch.randn(d_model))

    def _skip(self, x):
        return x * self.d if self.d_input == self.d_model else 0

    def initial_state(self, batch_size, device=None, dtype=None):
        return torch.zeros(batch_size, self.d_model, device=device, dtype=dtype or self.c.dtype)

    def _scan(self, x, h0):
        a = torch.sigmoid(self.alpha)
        t = torch.arange(x.shape[1], device=x.device)
        lag = (t[:, None] - t[None, :]).to(x.dtype)  # (L, L)
        kernel = torch.where(lag[..., None] >= 0, a ** lag.clamp(min=0)[..., None], torch.zeros_like(a))
        h = torch.einsum("tsh,bsh->bth", kernel, x @ self.b)
        if h0 is not None:
            h = h + a ** (t.to(x.dtype)[:, None] + 1) * h0[:, None]
        return h

    def _forward(self, x):
        return self._scan(x, None) * self.c + self._skip(x)

    def _forward_with_state(self, x, state):
        h = self._scan(x, state)
        return h * self.c + self._skip(x), h[:, -1]

    def _step(self, x_t, state):
        h = torch.sigmoid(self.alpha) * state + x_t @ self.b
        return h * self.c + self._skip(x_t), h


class ToyBidirectional(ToyRecurrence):
    """Sees the future: no recurrent form."""

    recurrent = False

    def _forward(self, x):
        return super()._forward(x) + super()._forward(x.flip(1)).flip(1)


def toy_model(d_input=3, d_output=5, *, dtype=F64, seed=0, **kw):
    torch.manual_seed(seed)
    base = dict(d_model=6, n_layers=2, layer=ToyRecurrence)
    return SequenceModel(d_input, d_output, **{**base, **kw}).to(dtype).eval()


def features(b=2, length=11, d=3, *, seed=1, dtype=F64):
    return torch.randn(b, length, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def warm_batch_norm(model, x):
    """Give batch norms non-trivial running statistics (one training-mode pass), then back to eval."""
    model.train()
    with torch.no_grad():
        model(x * 3 + 1)
    return model.eval()


def stream_steps(model, x):
    state, ys = model.initial_state(x.shape[0]), []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)
        ys.append(y_t)
    return ys, state


def stream_chunks(model, x, sizes):
    assert sum(sizes) == x.shape[1]
    state, ys = model.initial_state(x.shape[0]), []
    for chunk in x.split(list(sizes), dim=1):
        y, state = model.forward_with_state(chunk, state)
        ys.append(y)
    return ys, state


def assert_streams_like_forward(model, x, sizes=(4, 1, 6)):
    full = model(x)
    steps, _ = stream_steps(model, x)
    chunks, _ = stream_chunks(model, x, sizes)
    if model.pooling == "none":
        torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-10, atol=1e-11)
        torch.testing.assert_close(torch.cat(chunks, 1), full, rtol=1e-10, atol=1e-11)
    else:
        torch.testing.assert_close(steps[-1], full, rtol=1e-10, atol=1e-11)
        torch.testing.assert_close(chunks[-1], full, rtol=1e-10, atol=1e-11)
        # every intermediate output is the prediction for the prefix seen so far
        for t in (0, 4):
            torch.testing.assert_close(steps[t], model(x[:, : t + 1]), rtol=1e-10, atol=1e-11)
        torch.testing.assert_close(chunks[0], model(x[:, : sizes[0]]), rtol=1e-10, atol=1e-11)


NORMS = ["layer", "batch", "rms", "none"]
POOLINGS = ["mean", "last", "none"]
MLPS = [None, "mlp", "glu"]


# ----------------------------------------------------------------------------------------------------
# the test layer itself is right (so the backbone tests test the backbone)
# ----------------------------------------------------------------------------------------------------
def test_toy_layer_modes_agree():
    torch.manual_seed(0)
    layer = ToyRecurrence(4).double()
    x = features(d=4)
    state, ys = layer.initial_state(2), []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), layer(x))
    y1, s = layer.forward_with_state(x[:, :5], layer.initial_state(2))
    y2, _ = layer.forward_with_state(x[:, 5:], s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), layer(x))
    assert "toyrecurrence" not in LAYERS


# ----------------------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pooling,norm,prenorm,mlp", list(itertools.product(POOLINGS, NORMS, [True, False], MLPS))
)
def test_shapes_every_head_norm_and_block(pooling, norm, prenorm, mlp):
    model = toy_model(pooling=pooling, norm=norm, prenorm=prenorm, mlp=mlp, dtype=torch.float32)
    model.train()
    y = model(features(length=7, dtype=torch.float32))
    assert y.shape == ((2, 7, 5) if pooling == "none" else (2, 5))
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert (model.d_input, model.d_output, model.tokens, model.pooling) == (3, 5, False, pooling)
    assert isinstance(model.final_norm, nn.Identity) == (not prenorm or norm == "none")


@pytest.mark.parametrize("pooling", POOLINGS)
def test_token_inputs_shapes(pooling):
    model = toy_model(20, 7, tokens=True, pooling=pooling)
    x = torch.randint(0, 20, (3, 9))
    assert model(x).shape == ((3, 9, 7) if pooling == "none" else (3, 7))
    assert model(x.int()).shape == model(x).shape
    assert isinstance(model.encoder, nn.Embedding) and model.tokens


# ----------------------------------------------------------------------------------------------------
# recurrent mode == parallel mode (eval, float64)
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pooling,norm,prenorm,mlp",
    [(p, n, pre, m) for p, n, pre in itertools.product(POOLINGS, NORMS, [True, False]) for m in (None, "glu")]
    + [("none", "layer", True, "mlp"), ("mean", "rms", False, "mlp")],
)
def test_step_and_uneven_chunks_equal_forward(pooling, norm, prenorm, mlp):
    model = toy_model(pooling=pooling, norm=norm, prenorm=prenorm, mlp=mlp, dropout=0.3)
    x = features()
    if norm == "batch":
        warm_batch_norm(model, x)
    assert_streams_like_forward(model, x, sizes=(4, 1, 6))
    assert_streams_like_forward(model, x, sizes=(1, 1, 9))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_language_model_streams_as_an_rnn(pooling):
    model = toy_model(20, 20, tokens=True, pooling=pooling, tie_embeddings=pooling == "none")
    x = torch.randint(0, 20, (3, 10), generator=torch.Generator().manual_seed(0))
    assert_streams_like_forward(model, x, sizes=(3, 7))


def test_mixing_steps_and_chunks_and_the_state_structure():
    model = toy_model(pooling="mean", n_layers=3)
    x = features()
    state = model.initial_state(2)
    assert isinstance(state, tuple) and len(state) == 4
    total, count = state[-1]
    assert total.shape == (2, 6) and count.shape == (2, 1) and count.dtype == torch.long
    assert all(s.shape == (2, 6) for s in state[:3])
    y, state = model.forward_with_state(x[:, :3], state)
    for t in range(3, 6):
        y, state = model.step(x[:, t], state)
    y, state = model.forward_with_state(x[:, 6:], state)
    torch.testing.assert_close(y, model(x))
    assert state[-1][1].tolist() == [[11], [11]]
    assert len(toy_model(pooling="last").initial_state(1)) == 2  # nothing extra for last


def test_initial_state_follows_device_and_dtype():
    model = toy_model(pooling="mean", dtype=torch.float32)
    state = model.initial_state(3)
    assert state[0].dtype == torch.float32 and state[-1][0].dtype == torch.float32
    state = model.initial_state(3, device="cpu", dtype=F64)
    assert state[0].dtype == F64 and state[-1][0].dtype == F64


def test_streaming_in_float32_is_close():
    model = toy_model(pooling="none", dtype=torch.float32, mlp="mlp")
    x = features(dtype=torch.float32)
    steps, _ = stream_steps(model, x)
    torch.testing.assert_close(torch.stack(steps, 1), model(x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# causality, gradients, gradcheck
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prenorm,mlp", [(True, None), (False, "glu")])
def test_per_step_outputs_are_causal(prenorm, mlp):
    model = toy_model(pooling="none", prenorm=prenorm, mlp=mlp)
    x = features()
    x2 = x.clone()
    x2[:, 6:] += torch.randn_like(x2[:, 6:])
    y, y2 = model(x), model(x2)
    torch.testing.assert_close(y[:, :6], y2[:, :6], rtol=0, atol=1e-13)
    assert not torch.allclose(y[:, 6:], y2[:, 6:])


@pytest.mark.parametrize(
    "pooling,norm,mlp,tokens", [("mean", "layer", "glu", False), ("none", "batch", "mlp", True)]
)
def test_gradients_reach_every_parameter(pooling, norm, mlp, tokens):
    model = toy_model(7 if tokens else 3, pooling=pooling, norm=norm, mlp=mlp, tokens=tokens, dropout=0.1)
    model.train()
    x = torch.randint(0, 7, (2, 11)) if tokens else features()
    model(x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_float64_gradcheck_input_and_parameters():
    model = toy_model(2, 2, d_model=3, pooling="mean", mlp="glu", mlp_ratio=1, norm="layer")
    x = features(1, 4, 2).requires_grad_(True)
    names = [n for n, _ in model.named_parameters()]
    params = tuple(model.get_parameter(n).detach().clone().requires_grad_(True) for n in names)

    def fn(x, *ps):
        return functional_call(model, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_dropout_only_in_training():
    model = toy_model(dropout=0.5, pooling="none")
    x = features()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def _encoder_inputs(model, run) -> list[torch.Tensor]:
    """What reaches the encoder (the input after input dropout) during ``run()``."""
    seen = []
    handle = model.encoder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        run()
    finally:
        handle.remove()
    return seen


def test_input_dropout_zero_changes_nothing():
    x = features()
    plain, zero, half = toy_model(), toy_model(input_dropout=0.0), toy_model(input_dropout=0.5)
    torch.testing.assert_close(zero(x), plain(x), rtol=0, atol=0)
    torch.testing.assert_close(half(x), plain(x), rtol=0, atol=0)  # eval mode: no dropout, same weights
    assert zero.state_dict().keys() == half.state_dict().keys()  # the option adds no weights
    zero.train()
    (seen,) = _encoder_inputs(zero, lambda: zero(x))
    assert torch.equal(seen, x)


@pytest.mark.parametrize("encoder", [True, False])
def test_input_dropout_zeroes_features_in_training_and_is_the_identity_in_eval(encoder):
    kw = dict(input_dropout=0.5, pooling="none")
    if not encoder:  # LEM's Google12 network: the cell reads the dropped-out features itself
        _needs("lem")
        kw.update(encoder=False, residual=False, n_layers=1, norm="none", layer="lem")
    model, x = toy_model(**kw), features()
    (seen,) = _encoder_inputs(model, lambda: model(x))
    assert torch.equal(seen, x)  # eval: nothing dropped
    assert_streams_like_forward(model, x)
    model.train()
    (seen,) = _encoder_inputs(model, lambda: model(x))
    kept = seen != 0
    assert 0 < kept.sum() < x.numel()  # some of the 66 features dropped, some kept (fails w.p. 2^-65)
    torch.testing.assert_close(seen[kept], x[kept] * 2)  # the kept ones scaled by 1 / (1 - p)
    # the recurrent modes drop features in training too
    steps = _encoder_inputs(model, lambda: stream_steps(model, x))
    chunks = _encoder_inputs(model, lambda: stream_chunks(model, x, (4, 7)))
    for dropped in (torch.stack(steps, 1), torch.cat(chunks, 1)):
        assert (dropped == 0).any() and (dropped != 0).any()


def test_optimiser_hints_of_layers_survive_and_nothing_else_is_marked():
    model = toy_model(layer_kwargs=dict(lr=1e-3), mlp="mlp")
    hinted = {n for n, p in model.named_parameters() if hasattr(p, "_optim")}
    assert hinted == {f"blocks.{i}.layer.alpha" for i in range(2)}
    assert model.get_parameter("blocks.0.layer.alpha")._optim == {"lr": 1e-3, "weight_decay": 0.0}


# ----------------------------------------------------------------------------------------------------
# blocks, heads, residual options
# ----------------------------------------------------------------------------------------------------
def test_block_maths_prenorm_and_postnorm():
    torch.manual_seed(0)
    x = features(d=4)
    pre = ResidualBlock(4, ToyRecurrence, prenorm=True, norm="layer").double()
    torch.testing.assert_close(pre(x), x + pre.layer(pre.norm(x)))
    post = ResidualBlock(4, ToyRecurrence, prenorm=False, norm="rms", mlp="mlp").double()
    u = post.norm(x + post.layer(x))
    torch.testing.assert_close(post(x), post.ff_norm(u + post.ff(u)))
    plain = ResidualBlock(4, ToyRecurrence, norm="none", residual=False).double()
    torch.testing.assert_close(plain(x), plain.layer(x))


def test_batch_norm_normalises_features_over_batch_and_length():
    model = toy_model(norm="batch", prenorm=False, pooling="none")
    bn = model.blocks[0].norm
    assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == 6
    bn.train()
    h = torch.randn(4, 9, 6, dtype=F64) * 5 + 2
    out = bn(h)
    torch.testing.assert_close(out.mean((0, 1)), torch.zeros(6, dtype=F64), atol=1e-10, rtol=0)
    ref = nn.functional.batch_norm(h.transpose(1, 2), None, None, bn.weight, bn.bias, True).transpose(1, 2)
    torch.testing.assert_close(out, ref)


def test_feed_forward_widths():
    ff = FeedForward(8, "glu", ratio=1.5)
    assert ff.net[0].out_features == 24 and ff.out.in_features == 12
    assert FeedForward(8, "mlp", ratio=4).out.in_features == 32


def test_mean_pooling_is_decoder_of_the_mean_and_last_is_the_last_step():
    x = features()
    for pooling in ("mean", "last"):
        model = toy_model(pooling=pooling)
        per_step = toy_model(pooling="none")  # same seed: same weights
        ref = per_step(x).mean(1) if pooling == "mean" else per_step(x)[:, -1]
        torch.testing.assert_close(model(x), ref)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SequencePooling("max")


def test_tied_embeddings_share_one_matrix():
    model = toy_model(20, 20, tokens=True, pooling="none", tie_embeddings=True)
    assert model.decoder.weight is model.encoder.weight
    names = [n for n, _ in model.named_parameters()]
    assert "decoder.weight" not in names and "encoder.weight" in names


def test_kaiming_normal_decoder_init_draws_he_normal_weights_and_keeps_the_bias():
    torch.manual_seed(0)
    default = SequenceModel(3, 400, d_model=256, n_layers=1, layer=ToyRecurrence)
    torch.manual_seed(0)
    he = SequenceModel(3, 400, d_model=256, n_layers=1, layer=ToyRecurrence, decoder_init="kaiming_normal")
    w = he.decoder.weight.detach()
    # 102,400 draws: the std is within 1 % of sqrt(2 / H) and the draw is normal (not nn.Linear's uniform,
    # whose std is 1/sqrt(3 H) and whose |w| never exceeds 1/sqrt(H))
    assert abs(w.std().item() / (2 / 256) ** 0.5 - 1) < 0.01
    assert w.abs().max().item() > 3 / 256**0.5
    assert default.decoder.weight.abs().max().item() <= 1 / 256**0.5
    bound = 1 / 256**0.5
    assert he.decoder.bias.abs().max().item() <= bound and he.decoder.bias.std().item() > 0
    torch.testing.assert_close(he.encoder.weight, default.encoder.weight)  # nothing else redrawn


def test_layer_by_registered_name(monkeypatch):
    monkeypatch.setitem(LAYERS, "toy", LayerSpec("toy", ToyRecurrence))
    model = toy_model(layer="toy", layer_kwargs=dict(lr=0.01))
    assert isinstance(model.blocks[1].layer, ToyRecurrence)
    assert model(features()).shape == (2, 5)


# ----------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(norm="group"), ValueError, r"norm must be one of \['layer', 'batch', 'rms', 'none'\]"),
        (dict(pooling="max"), ValueError, "pooling must be one of"),
        (dict(mlp="swiglu"), ValueError, "mlp must be one of"),
        (dict(decoder_init="xavier"), ValueError, r"decoder_init must be one of \['default', 'kaiming"),
        (dict(layer="no-such-layer"), ValueError, r"layer must be one of \["),
        (dict(layer=3), TypeError, "layer must be a registered layer name"),
        (dict(layer=nn.Linear), TypeError, "SequenceLayer"),
        (dict(layer_kwargs=[1]), TypeError, "layer_kwargs"),
        (dict(layer_kwargs=dict(d_model=4)), ValueError, "d_model"),
        (dict(layer_kwargs=dict(d_input=2)), ValueError, r"needs a layer with d_input = \d+, d_model"),
        (dict(layer="lem", encoder=False), ValueError, "residual=False"),
        (dict(layer="lem", encoder=False, residual=False, tokens=True), ValueError, "encoder=False needs"),
        (dict(layer="s4d", encoder=False, residual=False), ValueError, "takes no d_input"),
        (
            dict(layer="lem", encoder=False, residual=False, layer_kwargs=dict(d_input=3)),
            ValueError,
            "must not",
        ),
        (dict(encoder=1), TypeError, "encoder"),
        (dict(n_layers=0), ValueError, "n_layers"),
        (dict(d_model=-1), ValueError, "d_model"),
        (dict(dropout=float("nan")), ValueError, "dropout"),
        (dict(dropout=1.5), ValueError, "dropout"),
        (dict(mlp="mlp", mlp_ratio=0), ValueError, "mlp_ratio"),
        (dict(prenorm="yes"), TypeError, "prenorm"),
        (dict(tokens=1), TypeError, "tokens"),
        (dict(tie_embeddings=True), ValueError, "tie_embeddings"),
        (dict(input_dropout=1.0), ValueError, r"input_dropout must be in \[0, 1\), got 1\.0"),
        (dict(input_dropout=-0.1), ValueError, r"input_dropout must be in \[0, 1\)"),
        (dict(input_dropout=float("nan")), ValueError, r"input_dropout must be a number in \[0, 1\)"),
        (dict(input_dropout="0.1"), ValueError, r"input_dropout must be a number in \[0, 1\)"),
        (dict(input_dropout=0.1, tokens=True), ValueError, r"input_dropout must be 0 for token inputs"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        toy_model(**kwargs)


def test_bad_widths():
    with pytest.raises(ValueError, match="d_input"):
        SequenceModel(0, 3, layer=ToyRecurrence)
    with pytest.raises(ValueError, match="d_output"):
        SequenceModel(3, 0, layer=ToyRecurrence)


def test_bad_feature_inputs():
    model = toy_model(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"x must have 3 dims \(batch, length, d_input=3\)"):
        model(torch.randn(11, 3))
    with pytest.raises(ValueError, match="last dim must be d_input=3"):
        model(torch.randn(2, 11, 4))
    with pytest.raises(TypeError, match="floating tensor of features.*tokens=True"):
        model(torch.ones(2, 11, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="length >= 1"):
        model(torch.randn(2, 0, 3))
    with pytest.raises(TypeError, match="dtype torch.float64 but the model's parameters are torch.float32"):
        model(torch.randn(2, 11, 3, dtype=F64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0] * 3])
    state = model.initial_state(2)
    with pytest.raises(ValueError, match=r"x_t must have 2 dims \(batch, d_input=3\)"):
        model.step(torch.randn(2, 1, 3), state)
    with pytest.raises(ValueError, match="x_t last dim"):
        model.step(torch.randn(2, 4), state)


def test_bad_token_inputs():
    model = toy_model(20, 5, tokens=True)
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.randn(2, 9))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"2 dims \(batch, length\)"):
        model(torch.zeros(2, 9, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in \[0, d_input=20\), got values in \[0, 20\]"):
        model(torch.tensor([[0, 20]]))
    with pytest.raises(ValueError, match=r"\[-1, 3\]"):
        model(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match="length >= 1"):
        model(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x_t must have 1 dims \(batch,\)"):
        model.step(torch.zeros(2, 1, dtype=torch.long), model.initial_state(2))


def test_bad_states():
    model = toy_model(pooling="mean")
    x = features()
    with pytest.raises(ValueError, match="state must be the tuple of 3 entries"):
        model.forward_with_state(x, model.initial_state(2)[:2])
    with pytest.raises(ValueError, match="state must be the tuple"):
        model.step(x[:, 0], None)
    with pytest.raises(ValueError, match="batch_size"):
        model.initial_state(0)


def test_bidirectional_model_refuses_to_stream():
    model = toy_model(layer=ToyBidirectional)
    assert not model.recurrent
    assert model(features()).shape == (2, 5)
    for call in (
        lambda: model.initial_state(2),
        lambda: model.step(features()[:, 0], ()),
        lambda: model.forward_with_state(features(), ()),
    ):
        with pytest.raises(NotImplementedError, match="bidirectional"):
            call()


def test_non_finite_checkpoint_is_refused():
    model = toy_model()
    state = model.state_dict()
    state["encoder.weight"] = torch.full_like(state["encoder.weight"], float("inf"))
    with pytest.raises(ValueError, match="encoder.weight"):
        model.load_state_dict(state)


# ----------------------------------------------------------------------------------------------------
# build_model: the head from the task
# ----------------------------------------------------------------------------------------------------
def info(task, d_input=3, d_output=4, tokens=False):
    metric = {"classification": "accuracy", "language_modeling": "perplexity"}.get(task, "mse")
    return TaskInfo(d_input=d_input, d_output=d_output, length=None, task=task, metric=metric, tokens=tokens)


@pytest.mark.parametrize("task", sorted(TASK_POOLING))
def test_build_model_picks_the_head_from_the_task(task):
    tokens = task == "language_modeling"
    cfg = dict(d_model=6, n_layers=1, layer=ToyRecurrence, pooling=None)
    model = build_model(
        cfg, info(task, d_input=10 if tokens else 3, d_output=10 if tokens else 4, tokens=tokens)
    )
    assert model.pooling == TASK_POOLING[task] and model.tokens == tokens
    x = torch.randint(0, 10, (2, 7)) if tokens else torch.randn(2, 7, 3)
    want = {"classification": (2, 4), "regression": (2, 4)}.get(task, (2, 7, 10 if tokens else 4))
    assert model(x).shape == want


def test_build_model_overrides_and_errors():
    cfg = dict(d_model=6, n_layers=1, layer=ToyRecurrence)
    assert build_model({**cfg, "pooling": "last"}, info("classification")).pooling == "last"
    with pytest.raises(ValueError, match=r"pooling must be one of \['none'\] for task 'per_step_regression'"):
        build_model({**cfg, "pooling": "mean"}, info("per_step_regression"))
    with pytest.raises(ValueError, match="must not set 'd_input'"):
        build_model({**cfg, "d_input": 3}, info("regression"))
    with pytest.raises(ValueError, match=r"unknown model config keys \['n_heads'\]"):
        build_model({**cfg, "n_heads": 3}, info("regression"))
    with pytest.raises(ValueError, match="language_modeling"):
        build_model(cfg, info("language_modeling"))


# ----------------------------------------------------------------------------------------------------
# the registered layers, when present
# ----------------------------------------------------------------------------------------------------
def _needs(name):
    if name not in LAYERS:
        pytest.skip(f"layer {name!r} is not registered (have {sorted(LAYERS)})")


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("norm,prenorm,mlp", [("layer", True, None), ("batch", False, "glu")])
def test_s4d_backbone_streams_like_forward(pooling, norm, prenorm, mlp):
    _needs("s4d")
    model = toy_model(
        layer="s4d", layer_kwargs=dict(d_state=4), pooling=pooling, norm=norm, prenorm=prenorm, mlp=mlp
    )
    x = features()
    if norm == "batch":
        warm_batch_norm(model, x)
    assert_streams_like_forward(model, x, sizes=(4, 1, 6))


def test_s4d_bidirectional_backbone_refuses_to_stream():
    _needs("s4d")
    model = toy_model(layer="s4d", layer_kwargs=dict(d_state=4, bidirectional=True))
    assert model(features()).shape == (2, 5)
    with pytest.raises(NotImplementedError, match="recurrent|bidirectional"):
        model.initial_state(1)


def test_lem_plain_stack_streams_like_forward():
    _needs("lem")
    model = toy_model(
        n_layers=1, residual=False, norm="none", pooling="last", layer="lem", layer_kwargs=dict(dt=0.5)
    )
    x = features()
    block = model.blocks[0].layer
    torch.testing.assert_close(model(x), model.decoder(block(model.encoder(x))[:, -1]))
    assert_streams_like_forward(model, x, sizes=(4, 1, 6))
