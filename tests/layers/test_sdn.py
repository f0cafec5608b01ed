"""SDN (training and fused forms, files, shipped weights) and the neurons built on it."""

import pytest
import torch

from lindy.kernels.lif import lif_reference
from lindy.kernels.surrogate import surrogate_grad
from lindy.layers.sdn import (
    SDN,
    FusedSDN,
    LIFNeuron,
    SDNNeuron,
    build_neuron,
    membrane_mae,
    neuron_agreement,
    pretrained_path,
    spike_agreement,
)


def trained_like_sdn(seed=0):
    """An SDN in eval mode with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(seed)
    model = SDN().double()
    with torch.no_grad():
        for bn in (model.temporal_norm, model.feature_norm):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    return model.eval()


def test_parameter_counts():
    assert sum(p.numel() for p in SDN().parameters()) == 193
    assert sum(p.numel() for p in SDN().fused().parameters()) == 153


def test_fused_equals_unfused_in_float64():
    model = trained_like_sdn()
    x = torch.randn(4, 300, dtype=torch.float64)
    torch.testing.assert_close(model.fused()(x), model(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("form", ["sdn", "fused"])
def test_strictly_causal(form):
    model = trained_like_sdn()
    model = model if form == "sdn" else model.fused()
    x = torch.randn(2, 50, dtype=torch.float64)
    for t in (0, 17, 49):
        x2 = x.clone()
        x2[:, t:] = torch.randn_like(x2[:, t:])
        assert torch.equal(model(x)[:, : t + 1], model(x2)[:, : t + 1])  # m_t excludes x_t
    x3 = x.clone()
    x3[:, 17 - 8] += 1.0
    assert not torch.equal(model(x)[:, 17], model(x3)[:, 17])  # ... but sees x_{t-8}


def test_fused_streams_with_history_and_keeps_leading_shape():
    fused = trained_like_sdn().fused()
    x = torch.randn(3, 2, 40, dtype=torch.float64)
    whole = fused(x)
    assert whole.shape == x.shape
    parts = torch.cat([fused(x[..., :13]), fused(x[..., 13:], x[..., 5:13])], -1)
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-14)


def test_safetensors_round_trip(tmp_path):
    fused = trained_like_sdn().fused().float()
    fused.tau = 0.2
    fused.save(tmp_path / "sdn.safetensors")
    loaded = FusedSDN.load(tmp_path / "sdn.safetensors")
    assert loaded.tau == 0.2 and not any(p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, 30)
    assert torch.equal(loaded(x), fused(x))


def test_torchscript_export_runs_like_the_module(tmp_path):
    fused = trained_like_sdn().fused().float()
    fused.to_torchscript(tmp_path / "sdn.pt", length=64)
    scripted = torch.jit.load(str(tmp_path / "sdn.pt"))
    x = torch.randn(5, 1, 100)
    torch.testing.assert_close(scripted(x), fused(x[:, 0]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("tau", [0.125, 0.2])
def test_shipped_sdns_meet_their_targets(tau):
    """Fresh N(0, 1) inputs 64 x 1024 (not the training seeds): agreement >= 99.9 %, MAE <= 2e-3."""
    if not pretrained_path(tau).exists():
        pytest.fail(f"missing {pretrained_path(tau)}; run benchmarks/train_sdn.py --tau {tau}")
    sdn = SDN.pretrained(tau=tau)
    assert sdn.tau == tau and sum(p.numel() for p in sdn.parameters()) == 153
    x = torch.randn(64, 1024, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    mem, spikes = lif_reference(x, tau)
    m_hat = sdn(x.float()).double()
    assert spike_agreement(m_hat, x, spikes) >= 0.999
    assert membrane_mae(m_hat, mem) <= 2e-3


def test_pretrained_refuses_an_untrained_tau():
    with pytest.raises(ValueError, match="tau"):
        SDN.pretrained(tau=0.3)


# ----------------------------------------------------------------------------------------------------
# neurons
# ----------------------------------------------------------------------------------------------------
def currents(b=3, length=40, h=5, seed=0, offset=0.3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, length, h, generator=g, dtype=torch.float64) + offset


def test_sdn_neuron_spikes_and_gradient_rule():
    neuron = SDNNeuron(tau=0.125).double()
    x = currents().requires_grad_(True)
    s = neuron(x)
    m_hat = neuron.membrane(x)
    assert not m_hat.requires_grad
    assert torch.equal(s, (m_hat + x >= 1.0).double())
    w = torch.randn_like(s)
    (s * w).sum().backward()
    # the surrogate gradient through the explicit x only: ds/dx = max(0, 1 - |m_hat + x - 1|)
    torch.testing.assert_close(x.grad, w * surrogate_grad(m_hat + x.detach() - 1.0))


def test_sdn_neuron_step_and_chunks_equal_forward():
    neuron = SDNNeuron(tau=0.125).double()
    x = currents()
    s = neuron(x)
    state = torch.zeros(3, 5, 8, dtype=torch.float64)
    steps = []
    for t in range(x.shape[1]):
        s_t, state = neuron.step(x[:, t], state)
        steps.append(s_t)
    assert torch.equal(torch.stack(steps, 1), s)
    a, st = neuron.forward_with_state(x[:, :3], torch.zeros(3, 5, 8, dtype=torch.float64))
    b, _ = neuron.forward_with_state(x[:, 3:], st)
    assert torch.equal(torch.cat([a, b], 1), s)


def test_sdn_neuron_threshold_by_scale_invariance():
    x = currents()
    s2 = SDNNeuron(tau=0.125, v_th=2.0).double()(x)
    s1 = SDNNeuron(tau=0.125).double()(x / 2)
    assert torch.equal(s1, s2)


def test_lif_swap_is_the_exact_lif_in_forward_and_step():
    x = currents()
    neuron = SDNNeuron(tau=0.125, neuron="lif").double()
    _, exact = lif_reference(x.transpose(1, 2), 0.125)
    assert torch.equal(neuron(x), exact.transpose(1, 2))
    u = torch.zeros(3, 5, dtype=torch.float64)
    for t in range(x.shape[1]):
        s_t, u = neuron.step(x[:, t], u)
        assert torch.equal(s_t, exact[..., t])


def test_sdn_agrees_with_the_lif_on_random_currents():
    x = currents(8, 512, 4, seed=3, offset=0.0)  # the SDN's training distribution, N(0, 1)
    sdn, lif = SDNNeuron(tau=0.125).double(), SDNNeuron(tau=0.125, neuron="lif").double()
    assert (sdn(x) == lif(x)).double().mean() >= 0.999


@pytest.mark.parametrize("mode", ["bptt", "sltt"])
def test_lif_neurons_forward_exactly_and_differ_in_backward(mode):
    x = currents().requires_grad_(True)
    neuron = LIFNeuron(0.2, mode=mode)
    s = neuron(x)
    _, exact = lif_reference(x.detach().transpose(1, 2), 0.2)
    assert torch.equal(s, exact.transpose(1, 2))
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert isinstance(build_neuron(mode, 0.2), LIFNeuron)


def test_neuron_agreement_on_a_models_activations():
    from lindy.layers.spiking_ssm import SpikingSSM

    torch.manual_seed(0)
    model = torch.nn.Sequential(SpikingSSM(6, d_state=8), SpikingSSM(6, d_state=8)).double().eval()
    report = neuron_agreement(model, currents(2, 200, 6))
    assert set(report) == {"0.neuron", "1.neuron"}
    assert all(0.99 <= v <= 1.0 for v in report.values())


def test_invalid_neuron_arguments():
    with pytest.raises(ValueError, match="neuron"):
        SDNNeuron(neuron="bptt")
    with pytest.raises(ValueError, match="v_th"):
        SDNNeuron(v_th=0.0)
    with pytest.raises(ValueError, match="mode"):
        LIFNeuron(mode="sdn")
