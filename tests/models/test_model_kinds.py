"""The SpikingSSM post-norm flag (``postnorm_compat``), the bare SDN model kind, and the model configs.

- ``postnorm_compat=True``: a post-norm block's output is the un-normalised residual sum x + f(x) (the
  SpikingSSM reference computes its post-norm and discards it); False: the normalised one.
- ``model.kind: sdn`` builds ``SDNModel``: the 193-parameter SDN on membrane data (1 -> 1 channels).
- every ``configs/model/*.yaml`` lists exactly the keys its kind's constructor takes.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from omegaconf import OmegaConf

from lindy.data import TaskInfo
from lindy.layers import SDN
from lindy.models import MODEL_KINDS, ResidualBlock, SDNModel, SequenceModel, build_model
from lindy.models.build import config_keys
from lindy.train.config import CONFIG_DIR

F64 = torch.float64


def features(b=3, length=12, d=4, seed=1):
    return torch.randn(b, length, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def block(norm="layer", **kw):
    torch.manual_seed(0)
    b = ResidualBlock(4, "s4d", dict(d_state=4), prenorm=False, norm=norm, **kw).double().eval()
    for p in b.norm.parameters():  # not the identity: a skipped norm must show
        p.data.uniform_(0.5, 1.5)
    return b


# ----------------------------------------------------------------------------------------------------
# postnorm_compat
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["layer", "batch", "rms"])
def test_postnorm_compat_block_is_the_unnormalised_residual_sum(norm):
    x = features()
    compat, working = block(norm, postnorm_compat=True), block(norm)
    if norm == "batch":  # running statistics away from (0, 1), so that the norm is not near the identity
        compat.norm.running_mean.fill_(0.3), compat.norm.running_var.fill_(2.0)
        working.norm.load_state_dict(compat.norm.state_dict())
    residual = x + compat.layer(x)
    torch.testing.assert_close(compat(x), residual)
    torch.testing.assert_close(working(x), working.norm(residual))
    assert not torch.allclose(working(x), residual)
    assert compat.state_dict().keys() == working.state_dict().keys()  # the norm is still built


def test_postnorm_compat_with_a_feed_forward_part_skips_both_norms():
    x = features()
    b = block(mlp="glu", postnorm_compat=True)
    u = x + b.layer(x)
    torch.testing.assert_close(b(x), u + b.ff(u))


def test_postnorm_compat_model_and_its_streaming():
    torch.manual_seed(0)
    kw = dict(d_model=4, n_layers=2, layer="s4d", layer_kwargs=dict(d_state=4), prenorm=False, pooling="none")
    model = SequenceModel(3, 2, postnorm_compat=True, **kw).double().eval()
    x = features(d=3)
    h = model.encoder(x)
    for b in model.blocks:
        assert b.postnorm_compat
        h = h + b.layer(h)
    torch.testing.assert_close(model(x), model.decoder(h))
    state, steps = model.initial_state(x.shape[0]), []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), model(x))
    default = SequenceModel(3, 2, **kw)
    assert not any(b.postnorm_compat for b in default.blocks)


def test_postnorm_compat_errors():
    with pytest.raises(ValueError, match="needs prenorm=False"):
        SequenceModel(3, 2, d_model=4, n_layers=1, layer="s4d", prenorm=True, postnorm_compat=True)
    with pytest.raises(TypeError, match="postnorm_compat must be True or False"):
        SequenceModel(3, 2, d_model=4, n_layers=1, layer="s4d", prenorm=False, postnorm_compat=1)


# ----------------------------------------------------------------------------------------------------
# the SDN model kind
# ----------------------------------------------------------------------------------------------------
def per_step(d_input=1, d_output=1):
    return TaskInfo(d_input, d_output, 32, "per_step_regression", "spike_agreement", loss="smooth_l1")


def test_sdn_kind_is_the_bare_sdn():
    with pytest.raises(ValueError, match="no sequence layer"):
        build_model({"kind": "sdn", "layer": "s4d"}, per_step())
    model = build_model({"kind": "sdn", "d_model": 8, "kernel_size": 8}, per_step()).double().eval()
    assert isinstance(model, SDNModel) and model.readout is None
    assert sum(p.numel() for p in model.parameters()) == 193
    assert model.sdn.state_dict().keys() == SDN().state_dict().keys()
    x = features(d=1)
    y = model(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[..., 0], model.sdn(x[..., 0]))
    x2 = x.clone()
    x2[:, 6:] += 5.0  # strictly causal: m_t sees x_{t-8} .. x_{t-1}
    assert torch.equal(model(x2)[:, :7], y[:, :7]) and not torch.equal(model(x2)[:, 7:], y[:, 7:])
    fused = model.sdn.fused()
    torch.testing.assert_close(fused(x[..., 0]), y[..., 0], rtol=1e-10, atol=1e-10)


def test_sdn_kind_other_widths_share_the_sdn_and_read_out():
    torch.manual_seed(0)
    model = build_model({"kind": "sdn"}, per_step(2, 3)).double().eval()
    x = features(d=2)
    m = torch.stack([model.sdn(x[..., c]) for c in range(2)], -1)
    torch.testing.assert_close(model(x), model.readout(m))


def test_sdn_kind_errors():
    with pytest.raises(ValueError, match=r"model kind must be one of \['sdn', 'sequence'\]"):
        build_model({"kind": "snn"}, per_step())
    with pytest.raises(ValueError, match=r"unknown model config keys \['n_layers'\]"):
        build_model({"kind": "sdn", "n_layers": 2}, per_step())
    with pytest.raises(ValueError, match="needs task 'per_step_regression'"):
        build_model({"kind": "sdn"}, TaskInfo(1, 10, 32, "classification", "accuracy"))
    with pytest.raises(ValueError, match="must not set 'd_input'"):
        build_model({"kind": "sdn", "d_input": 1}, per_step())
    model = build_model({"kind": "sdn"}, per_step())
    with pytest.raises(ValueError, match="last dim must be d_model=1"):
        model(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="NaN|inf|non-finite"):
        model(torch.full((2, 5, 1), float("nan")))


# ----------------------------------------------------------------------------------------------------
# the model configs
# ----------------------------------------------------------------------------------------------------
MODEL_YAMLS = sorted((CONFIG_DIR / "model").glob("*.yaml"))


@pytest.mark.parametrize("path", MODEL_YAMLS, ids=lambda p: p.stem)
def test_model_yaml_lists_exactly_its_kinds_keys(path):
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    kind = cfg.pop("kind", "sequence")
    assert kind in MODEL_KINDS
    from_group = {"layer", "layer_kwargs"} if kind == "sequence" else set()  # the layer group's
    assert set(cfg) == set(config_keys(kind)) - from_group
    defaults = inspect.signature(MODEL_KINDS[kind].__init__).parameters
    for key, value in cfg.items():
        if key != "pooling":  # null in the config: the task's head
            assert value == defaults[key].default or key in ("d_model", "n_layers"), key
    info = per_step() if kind == "sdn" else TaskInfo(2, 3, 16, "classification", "accuracy")
    layer = {} if kind == "sdn" else {"layer": "s4d", "layer_kwargs": {"d_state": 4}}
    model = build_model({**OmegaConf.to_container(OmegaConf.load(path)), **layer}, info)
    assert isinstance(model, MODEL_KINDS[kind])
