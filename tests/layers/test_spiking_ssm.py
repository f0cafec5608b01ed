"""SpikingSSM specifics beyond the shared contract: the S4D-Lin kernel check values, the output path
composed by hand, the exact-LIF configuration's step == forward, surrogate gradients, tied dropout,
optimiser hints and the sparsity / energy report."""

import math

import pytest
import torch

from lindy.kernels.fft_conv import causal_conv
from lindy.kernels.surrogate import surrogate_grad
from lindy.layers.s4d import S4D
from lindy.layers.spiking_ssm import E_AC_PJ, E_MAC_PJ, SpikingSSM, TiedDropout, sparsity_report


def make(**kwargs):
    torch.manual_seed(0)
    return SpikingSSM(4, d_state=8, **kwargs).double().eval()


def inputs(b=2, length=30, h=4, seed=1):
    return torch.randn(b, length, h, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_s4d_lin_kernel_check_values():
    layer = SpikingSSM(1, d_state=4).double()
    with torch.no_grad():
        layer.log_dt.fill_(math.log(0.1))
        layer.C.zero_()
        layer.C[..., 0] = 1.0
        layer.D.zero_()
    k, _ = layer._kernels(5)
    expected = torch.tensor([0.387011, 0.350341, 0.300985, 0.244020, 0.184809], dtype=torch.float64)
    torch.testing.assert_close(k[0], expected, rtol=0, atol=5e-7)
    assert not layer.B.requires_grad  # B = 1 fixed unless trainable_B
    assert SpikingSSM(1, d_state=4, trainable_B=True).B.requires_grad


def test_forward_is_conv_threshold_neuron_glu():
    layer = make()
    with torch.no_grad():
        layer.ln_vth.uniform_(-0.5, 0.5)
    x = inputs()
    k, _ = S4D._kernels(layer, x.shape[1])  # S4D's kernel, before SpikingSSM folds the threshold in
    y = causal_conv(x.transpose(1, 2), k).transpose(1, 2)  # D is folded into k[0]
    s = layer.neuron(y / torch.exp(layer.ln_vth))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    expected = torch.nn.functional.glu(layer.output_linear(s), dim=-1)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    assert 0.0 < float(layer.firing_rate) < 1.0


@pytest.mark.parametrize("neuron", ["lif", "sdn", "bptt"])
def test_step_and_chunks_equal_forward(neuron):
    """Exact for the LIF configuration (the contract's exact-LIF case); the SDN's step keeps its window."""
    layer = make(neuron=neuron)
    x = inputs(length=40)
    y = layer(x)
    state = layer.initial_state(2)
    steps = []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, rtol=1e-9, atol=1e-10)
    state, parts = layer.initial_state(2), []
    for a, b in ((0, 7), (7, 8), (8, 40)):
        out, state = layer.forward_with_state(x[:, a:b], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), y, rtol=1e-9, atol=1e-10)


def test_surrogate_gradient_reaches_the_threshold_and_the_ssm():
    layer = make()
    layer.train()
    x = inputs().requires_grad_(True)
    layer(x).sum().backward()
    for name in ("ln_vth", "log_dt", "C", "D", "output_linear.weight"):
        grad = layer.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert all(p.grad is None for p in layer.neuron.parameters())  # the SDN stays frozen
    assert x.grad.abs().sum() > 0


def test_the_sdn_rule_gives_the_triangle_of_the_predicted_potential():
    layer = make()
    z = (inputs() * 0.8).requires_grad_(True)
    s = layer.neuron(z)
    s.sum().backward()
    torch.testing.assert_close(z.grad, surrogate_grad(layer.neuron.membrane(z) + z.detach() - 1.0))


def test_tied_dropout_keeps_one_mask_over_time():
    drop = TiedDropout(0.5).train()
    out = drop(torch.ones(3, 50, 8))
    assert (out == out[:, :1]).all() and set(out.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(3, 5, 8)), torch.ones(3, 5, 8))


def test_optimiser_hints_and_threshold_shapes():
    layer = SpikingSSM(4, d_state=8, lr=1e-3)
    assert layer.log_dt._optim == {"weight_decay": 0.0, "lr": 1e-3}
    assert not hasattr(layer.ln_vth, "_optim") and layer.ln_vth.shape == (4,)
    assert SpikingSSM(4, d_state=8, shared_vth=True).ln_vth.shape == (1,)
    assert not hasattr(SpikingSSM(4, d_state=8, learnable_vth=False), "ln_vth")


def test_bidirectional_has_no_recurrence_and_sees_the_future():
    layer = make(bidirectional=True)
    x = inputs()
    with pytest.raises(NotImplementedError, match="bidirectional"):
        layer.step(x[:, 0], None)
    x2 = x.clone()
    x2[:, -5:] += 3.0
    assert not torch.equal(layer(x)[:, :10], layer(x2)[:, :10])


def test_sparsity_report_and_energy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(SpikingSSM(4, d_state=8), SpikingSSM(4, d_state=8)).double().eval()
    model(inputs(length=64))
    report = sparsity_report(model, length=64)
    rates = report["firing_rate"]
    assert set(rates) == {"0", "1"}
    assert report["sparsity"] == pytest.approx(1 - (rates["0"] + rates["1"]) / 2)
    macs = 2 * 64 * 4 * 8
    assert report["energy_ann_j"] == pytest.approx(macs * E_MAC_PJ * 1e-12)
    acs = 64 * 4 * 8 * (rates["0"] + rates["1"])
    assert report["energy_snn_j"] == pytest.approx(acs * E_AC_PJ * 1e-12)
