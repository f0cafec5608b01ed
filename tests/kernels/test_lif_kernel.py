"""The LIF neuron (check values of models.md 7.6), its settable constants, the surrogate spike functions,
and the BPTT / SLTT loops' hand-written backward against autograd through the same loop."""

import math

import pytest
import torch

from lindy.kernels.lif import lif_reference, lif_spikes, lif_step
from lindy.kernels.surrogate import SURROGATES, spike, surrogate_grad

X = torch.tensor([0.6, 0.7, 1.0, -0.3, 0.9, 0.5, 2.0, 0.95], dtype=torch.float64)
SPIKES = [0, 0, 1, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(
    "tau,mem",
    [
        (0.2, [0, 0.12, 0.164, 0, -0.06, 0.168, 0.1336, 0]),
        (0.125, [0, 0.075, 0.096875, 0, -0.0375, 0.107813, 0.075977, 0]),
    ],
)
def test_check_values(tau, mem):
    m, s = lif_reference(X, tau)
    torch.testing.assert_close(
        m, torch.tensor(mem, dtype=torch.float64), rtol=0, atol=1e-6
    )  # the table's 6 decimals
    assert s.tolist() == SPIKES
    assert lif_spikes(X, tau)[0].tolist() == SPIKES


def test_threshold_at_equality_fires_and_reset_value_is_settable():
    _, s = lif_reference(torch.tensor([1.0, 0.0]), 0.5)
    assert s.tolist() == [1.0, 0.0]  # H(0) = 1
    m, s = lif_reference(torch.tensor([1.0, 0.0]), 0.5, v_r=0.4)
    assert m.tolist() == pytest.approx([0.0, 0.2])  # u_0 = v_r after the spike, m_1 = tau v_r
    s2, u = lif_spikes(torch.tensor([1.0, 0.0]), 0.5, v_r=0.4)
    assert s2.tolist() == s.tolist() and u.item() == pytest.approx(0.2)
    s_t, u_t = lif_step(torch.tensor([0.0]), torch.tensor([1.0]), 0.5, v_r=0.4)
    assert s_t.item() == 1.0 and u_t.item() == pytest.approx(0.4)


def test_threshold_scale_invariance():
    x = torch.randn(4, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for v_th in (0.5, 2.0):
        m1, s1 = lif_reference(x, 0.2, v_th=v_th)
        m2, s2 = lif_reference(x / v_th, 0.2)
        assert torch.equal(s1, s2)
        torch.testing.assert_close(m1, m2 * v_th)


def test_loop_and_step_equal_the_reference_and_chunks_continue():
    x = torch.randn(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5
    _, s = lif_reference(x, 0.125)
    s_loop, u_end = lif_spikes(x, 0.125)
    assert torch.equal(s, s_loop)
    a, u = lif_spikes(x[:, :20], 0.125)
    b, u2 = lif_spikes(x[:, 20:], 0.125, u0=u)
    assert torch.equal(torch.cat([a, b], -1), s) and torch.equal(u2, u_end)
    u = torch.zeros(3, dtype=torch.float64)
    for t in range(64):
        s_t, u = lif_step(u, x[:, t], 0.125)
        assert torch.equal(s_t, s[:, t])


def test_piecewise_quadratic_surrogate_gradient():
    v = torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.5], requires_grad=True)
    s = spike(v)
    assert s.tolist() == [0, 0, 1, 1, 1]
    s.sum().backward()
    assert v.grad.tolist() == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert surrogate_grad(torch.tensor([0.5]), alpha=2.0).item() == pytest.approx(0.375)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogates_integrate_to_one_and_peak_at_zero(name):
    v = torch.linspace(-60, 60, 600001, dtype=torch.float64)
    g = surrogate_grad(v, name)
    assert torch.trapezoid(g, v).item() == pytest.approx(1.0, abs=2e-2 if name == "atan" else 1e-6)
    assert g.argmax().item() == len(v) // 2
    with pytest.raises(ValueError, match="alpha"):
        spike(v, name, alpha=-1.0)
    with pytest.raises(ValueError, match="surrogate"):
        spike(v, "relu")


def autograd_loop(x, tau, mode, v_th=1.0):
    """The reference's BPTT/SLTT neuron, written plainly (time last), for autograd to differentiate."""
    u = torch.zeros_like(x[..., 0])
    out = []
    for t in range(x.shape[-1]):
        u = (u.detach() if mode == "sltt" else u) * tau + x[..., t]
        s = spike(u - v_th)
        out.append(s)
        u = (1 - s.detach()) * u
    return torch.stack(out, -1), u


@pytest.mark.parametrize("mode", ["bptt", "sltt"])
def test_hand_written_backward_equals_autograd(mode):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(3, 5, 30, dtype=torch.float64, generator=g) + 0.5).requires_grad_(True)
    w = torch.randn(3, 5, 30, dtype=torch.float64, generator=g)
    wu = torch.randn(3, 5, dtype=torch.float64, generator=g)
    s, u = lif_spikes(x, 0.3, mode=mode)
    ((s * w).sum() + (u * wu).sum()).backward()
    got, x.grad = x.grad, None
    s_ref, u_ref = autograd_loop(x, 0.3, mode)
    assert torch.equal(s, s_ref)
    ((s_ref * w).sum() + (u_ref * wu).sum()).backward()
    torch.testing.assert_close(got, x.grad, rtol=1e-12, atol=1e-12)
    assert got.abs().sum() > 0


def test_time_dim_and_invalid_arguments():
    x = torch.randn(2, 40, 3, dtype=torch.float64)
    s1, _ = lif_spikes(x, 0.2, dim=1)
    s2, _ = lif_spikes(x.transpose(1, 2), 0.2)
    assert torch.equal(s1, s2.transpose(1, 2))
    with pytest.raises(ValueError, match="tau"):
        lif_spikes(x, 1.5)
    with pytest.raises(ValueError, match="mode"):
        lif_spikes(x, 0.2, mode="rtrl")
    assert not math.isnan(float(s1.sum()))
